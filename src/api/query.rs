//! `POST /query`: one statement (seed 000's contract), plus read-your-writes: `commit_lsn` on
//! writes, `min_lsn` / `consistency` on reads, and the `Dbagent-Session` header that lets
//! dbagent remember a caller's last commit for `consistency: "read_your_writes"`.

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;

use super::body::{JsonBody, JsonParts, ObjectWriter};
use super::error::ApiError;
use super::AppState;
use super::auth::Note;
use crate::security::Caller;
use crate::db::Lsn;
use crate::query::{Consistency, Freshness, QueryRequest};
use crate::txn::{self, TransactionRequest};

/// `POST /query`'s answer, as [`handle`] writes it (rows are copied into the answer as
/// PostgreSQL sent them, so the writer is by hand; this type describes it for the document).
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
pub struct QueryAnswer {
    success: bool,
    /// One object per row, keyed by column name (at most `max_rows`).
    rows: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Rows the statement returned or affected (the command tag's count).
    row_count: u64,
    /// More rows existed than `max_rows`.
    truncated: bool,
    columns: Vec<crate::query::ColumnInfo>,
    execution_time_ms: f64,
    /// `select`, `insert`, `update`, `delete`, `ddl` ...
    query_type: String,
    from_cache: bool,
    /// `primary`, a replica's name, or `cache`.
    served_by: String,
    /// A write's commit position, for `min_lsn` on later reads.
    commit_lsn: Option<String>,
    /// With `transaction: true`: how many times it was retried.
    retries: Option<u32>,
    /// Why a `use_cache` read was not cached.
    cache_bypass: Option<String>,
}

/// Header naming the caller's session for read-your-writes.
pub const SESSION_HEADER: &str = "dbagent-session";
const MAX_SESSION_LEN: usize = 256;

pub async fn handle(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    note: Option<Extension<Note>>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<QueryRequest>,
) -> Result<JsonParts, ApiError> {
    crate::timing::mark("read");
    let session = session(&headers)?;
    if req.transaction {
        if let Some(Extension(note)) = &note {
            note.statement(&state.executor, &req.sql);
        }
        return in_transaction(&state, &caller, note, req, session.as_deref()).await;
    }
    let mut freshness = freshness(&state, &req, session.as_deref())?;
    freshness.login = caller.login();
    freshness.masked = caller.masked(&state.config.security.masking);
    let out = match req.use_cache {
        true => state.executor.query_cached(&req.sql, &req.params, freshness, &caller.cache_identity()).await,
        false => state.executor.query(&req.sql, &req.params, freshness).await,
    };
    // Noted after it ran: a "read" the server caught writing is a write by now.
    if let Some(Extension(note)) = &note {
        note.statement(&state.executor, &req.sql);
        if let Ok(out) = &out {
            note.with(|n| n.rows = Some(out.rows.row_count as i64));
        }
    }
    let mut out = out?;
    remember(&state, session.as_deref(), out.commit_lsn);
    let mut w = ObjectWriter::with_capacity(512);
    w.value("success", &true)
        .rows_owned(&mut out.rows)
        .millis("execution_time_ms", out.execution_time)
        .value("query_type", out.query_type)
        .value("from_cache", &out.from_cache)
        .value("served_by", &out.served_by);
    if let Some(lsn) = out.commit_lsn {
        w.value("commit_lsn", &lsn);
    }
    if let Some(reason) = &out.cache_bypass {
        w.value("cache_bypass", reason);
    }
    let parts = w.into_parts();
    crate::timing::mark("json");
    Ok(JsonParts(parts))
}

/// The caller's session, from the `Dbagent-Session` header.
pub(super) fn session(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(SESSION_HEADER) else { return Ok(None) };
    let text = value
        .to_str()
        .ok()
        .filter(|t| !t.is_empty() && t.len() <= MAX_SESSION_LEN)
        .ok_or_else(|| ApiError::invalid_request(format!("the {SESSION_HEADER} header must be 1 to {MAX_SESSION_LEN} visible ASCII characters")))?;
    Ok(Some(text.to_owned()))
}

/// Records a write's commit position for the caller's session.
pub(super) fn remember(state: &AppState, session: Option<&str>, lsn: Option<Lsn>) {
    if let (Some(session), Some(lsn)) = (session, lsn) {
        state.executor.caller_commits.record(session, lsn);
    }
}

fn freshness(state: &AppState, req: &QueryRequest, session: Option<&str>) -> Result<Freshness, ApiError> {
    Ok(match req.consistency {
        Consistency::Eventual => Freshness { min_lsn: req.min_lsn, primary_only: false, ..Default::default() },
        Consistency::Strong => Freshness { min_lsn: req.min_lsn, primary_only: true, ..Default::default() },
        Consistency::ReadYourWrites => {
            let session = session.ok_or_else(|| {
                ApiError::invalid_request(format!(
                    "consistency \"read_your_writes\" needs the caller's session: send the {SESSION_HEADER} header on writes and reads (or pass min_lsn)"
                ))
            })?;
            let floor = state.executor.caller_commits.floor(session);
            Freshness { min_lsn: req.min_lsn.max(floor), primary_only: false, ..Default::default() }
        }
    })
}

/// `transaction: true`: the statement runs in an explicit transaction with the retry policy.
async fn in_transaction(state: &AppState, caller: &Caller, note: Option<Extension<Note>>, req: QueryRequest, session: Option<&str>) -> Result<JsonParts, ApiError> {
    let mut request = TransactionRequest::single(req.sql, req.params);
    request.login = caller.login();
    request.masked = caller.masked(&state.config.security.masking);
    let mut out = txn::run(&state.executor, &state.config.transactions, &request).await?;
    if let (Some(Extension(note)), Some(first)) = (&note, out.results.first()) {
        note.with(|n| n.rows = Some(first.rows.row_count as i64));
    }
    remember(state, session, out.commit_lsn);
    let Some(result) = out.results.first_mut() else {
        return Err(ApiError::invalid_request("the transaction has no statements"));
    };
    let mut w = ObjectWriter::with_capacity(512);
    w.value("success", &true)
        .rows_owned(&mut result.rows)
        .millis("execution_time_ms", out.execution_time)
        .value("query_type", result.query_type)
        .value("from_cache", &false)
        .value("served_by", "primary")
        .value("retries", &out.retries);
    if let Some(lsn) = out.commit_lsn {
        w.value("commit_lsn", &lsn);
    }
    Ok(JsonParts(w.into_parts()))
}
