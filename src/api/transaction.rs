//! `POST /transaction`: several statements, one transaction, retried on conflicts.

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;

use super::body::{JsonBody, ObjectWriter, RawJson};
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
) -> Result<RawJson, ApiError> {
    if let Some(Extension(note)) = &note {
        note.with(|n| n.writes = !req.read_only);
        for q in &req.queries {
            note.statement(&state.executor, &q.sql);
        }
    }
    req.login = caller.login();
    let session = super::query::session(&headers)?;
    let out = txn::run(&state.executor, &state.config.transactions, &req).await?;
    if let Some(Extension(note)) = &note {
        note.with(|n| n.rows = Some(out.results.iter().map(|r| r.rows.row_count as i64).sum()));
    }
    super::query::remember(&state, session.as_deref(), out.commit_lsn);
    let size: usize = out.results.iter().map(|r| r.rows.json.len() + 128).sum();
    let mut results = Vec::with_capacity(size + 2);
    results.push(b'[');
    for (i, result) in out.results.iter().enumerate() {
        if i > 0 {
            results.push(b',');
        }
        let mut item = ObjectWriter::with_capacity(result.rows.json.len() + 128);
        item.value("query_type", result.query_type).rows(&result.rows);
        results.extend_from_slice(&item.finish());
    }
    results.push(b']');
    let mut w = ObjectWriter::with_capacity(results.len() + 256);
    w.value("success", &true)
        .value("queries_executed", &out.results.len())
        .value("retries", &out.retries)
        .value("isolation_level", &out.isolation_level)
        .value("read_only", &out.read_only)
        .millis("execution_time_ms", out.execution_time)
        .raw("results", &results);
    if let Some(lsn) = out.commit_lsn {
        w.value("commit_lsn", &lsn);
    }
    Ok(RawJson(w.finish()))
}
