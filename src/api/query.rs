//! `POST /query`: one statement (seed 000's contract).

use axum::extract::State;

use super::body::{JsonBody, ObjectWriter, RawJson};
use super::error::ApiError;
use super::AppState;
use crate::query::QueryRequest;
use crate::txn::{self, TransactionRequest};

pub async fn handle(State(state): State<AppState>, JsonBody(req): JsonBody<QueryRequest>) -> Result<RawJson, ApiError> {
    if req.transaction {
        return in_transaction(&state, req).await;
    }
    let out = state.executor.query(&req.sql, &req.params).await?;
    let mut w = ObjectWriter::with_capacity(out.rows.json.len() + 256);
    w.value("success", &true)
        .rows(&out.rows)
        .millis("execution_time_ms", out.execution_time)
        .value("query_type", out.query_type)
        .value("from_cache", &false)
        .value("served_by", &out.served_by);
    Ok(RawJson(w.finish()))
}

/// `transaction: true`: the statement runs in an explicit transaction with the retry policy.
async fn in_transaction(state: &AppState, req: QueryRequest) -> Result<RawJson, ApiError> {
    let request = TransactionRequest::single(req.sql, req.params);
    let out = txn::run(&state.executor, &state.config.transactions, &request).await?;
    let Some(result) = out.results.first() else {
        return Err(ApiError::invalid_request("the transaction has no statements"));
    };
    let mut w = ObjectWriter::with_capacity(result.rows.json.len() + 256);
    w.value("success", &true)
        .rows(&result.rows)
        .millis("execution_time_ms", out.execution_time)
        .value("query_type", result.query_type)
        .value("from_cache", &false)
        .value("served_by", "primary")
        .value("retries", &out.retries);
    Ok(RawJson(w.finish()))
}
