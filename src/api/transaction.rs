//! `POST /transaction`: several statements, one transaction, retried on conflicts.

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;

use super::body::{JsonBody, JsonParts, ObjectWriter};
use axum::body::Bytes;
use super::error::ApiError;
use super::AppState;
use super::auth::Note;
use crate::security::Caller;
use crate::txn::{self, TransactionRequest};

/// `POST /transaction`'s answer, as [`handle`] writes it (rows copied as PostgreSQL sent
/// them); this type describes it for the document.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
pub struct TransactionAnswer {
    success: bool,
    queries_executed: usize,
    /// Serialization failures and deadlocks retried before the commit.
    retries: u32,
    isolation_level: String,
    read_only: bool,
    execution_time_ms: f64,
    /// One result per statement, in order.
    results: Vec<StatementResult>,
    commit_lsn: Option<String>,
}

#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
struct StatementResult {
    query_type: String,
    rows: Vec<serde_json::Map<String, serde_json::Value>>,
    row_count: u64,
    truncated: bool,
    columns: Vec<crate::query::ColumnInfo>,
}

pub async fn handle(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    note: Option<Extension<Note>>,
    headers: HeaderMap,
    JsonBody(mut req): JsonBody<TransactionRequest>,
) -> Result<JsonParts, ApiError> {
    if let Some(Extension(note)) = &note {
        note.with(|n| n.writes = !req.read_only);
        for q in &req.queries {
            note.statement(&state.executor, &q.sql);
        }
    }
    req.login = caller.login();
    req.masked = caller.masked(&state.config.security.masking);
    let session = super::query::session(&headers)?;
    let mut out = txn::run(&state.executor, &state.config.transactions, &req).await?;
    if let Some(Extension(note)) = &note {
        note.with(|n| n.rows = Some(out.results.iter().map(|r| r.rows.row_count as i64).sum()));
    }
    super::query::remember(&state, session.as_deref(), out.commit_lsn);
    // The rows' JSON moves into the answer as it is (no copy of a big result).
    let mut results = vec![Bytes::from_static(b"[")];
    for (i, result) in out.results.iter_mut().enumerate() {
        if i > 0 {
            results.push(Bytes::from_static(b","));
        }
        let mut item = ObjectWriter::with_capacity(256);
        item.value("query_type", result.query_type).rows_owned(&mut result.rows);
        results.extend(item.into_parts());
    }
    results.push(Bytes::from_static(b"]"));
    let mut w = ObjectWriter::with_capacity(512);
    w.value("success", &true)
        .value("queries_executed", &out.results.len())
        .value("retries", &out.retries)
        .value("isolation_level", &out.isolation_level)
        .value("read_only", &out.read_only)
        .millis("execution_time_ms", out.execution_time)
        .raw_parts("results", results);
    if let Some(lsn) = out.commit_lsn {
        w.value("commit_lsn", &lsn);
    }
    Ok(JsonParts(w.into_parts()))
}
