//! `POST /optimize` (EXPLAIN analysis and suggestions) and `POST /indexes` (suggest, upkeep).

use std::time::Duration;

use axum::extract::State;
use axum::{Extension, Json};
use super::AppState;
use super::answer::{Succeeded, ok};
use super::body::JsonBody;
use super::error::ApiError;
use super::auth::Note;
use crate::advisor::{self, IndexesAnswer, IndexesRequest, OptimizeRequest};
use crate::security::{self, Caller, Scope};

pub async fn optimize(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    note: Option<Extension<Note>>,
    JsonBody(mut req): JsonBody<OptimizeRequest>,
) -> Result<Json<Succeeded<advisor::OptimizeReport>>, ApiError> {
    if let Some(Extension(note)) = &note {
        note.statement(&state.executor, &req.sql);
        // Reads are only explained; a write is run (and rolled back) only with ANALYZE.
        note.with(|n| n.writes &= req.analyze);
    }
    req.login = caller.login();
    if caller.scope() < Scope::Admin && req.suggest_indexes && may_run_user_code(&state, &req.sql) {
        // Index suggestions plan the query on dbagent's own session, where the planner may
        // evaluate the user's functions: only for admin keys.
        req.suggest_indexes = false;
    }
    let db = state.executor.pools.admin_config();
    let slow = Duration::from_secs_f64(state.config.optimization.slow_query_threshold_ms / 1000.0);
    let report = advisor::optimize(&state.executor, &db, &req, slow).await?;
    Ok(ok(report))
}

fn may_run_user_code(state: &AppState, sql: &str) -> bool {
    state.executor.classifier.classify(sql).map(|class| state.executor.guard.may_run_user_code(&class) || !class.is_read_only()).unwrap_or(true)
}

pub async fn indexes(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    note: Option<Extension<Note>>,
    JsonBody(req): JsonBody<IndexesRequest>,
) -> Result<Json<Succeeded<IndexesAnswer>>, ApiError> {
    use IndexesRequest as R;
    let (action, changes) = match &req {
        R::Suggest { .. } => ("suggest", false),
        R::Unused { .. } => ("unused", false),
        R::Duplicates { .. } => ("duplicates", false),
        R::Invalid { .. } => ("invalid", false),
        R::Bloat { .. } => ("bloat", false),
        R::Analyze { .. } => ("analyze", true),
        R::Rebuild { .. } => ("rebuild", true),
        R::Create { .. } => ("create", true),
        R::Drop { .. } => ("drop", true),
        R::Apply { .. } => ("apply", true),
        R::ApplySet { .. } => ("apply_set", true),
    };
    if let Some(Extension(note)) = &note {
        note.with(|n| {
            n.action = Some(action.into());
            n.writes = changes;
        });
    }
    if caller.scope() < Scope::Admin {
        let user_code = match &req {
            R::Suggest { queries, .. } => queries.iter().any(|q| may_run_user_code(&state, &q.sql)),
            _ => false,
        };
        if changes || user_code {
            let why = if changes { format!("the {action} action changes the database") } else { "these queries call code dbagent cannot vouch for".into() };
            return Err(security::Error::Forbidden(format!("{why}: it needs an admin key")).into());
        }
    }
    let db = state.executor.pools.admin_config();
    // Index builds run to completion even when the client hangs up.
    let executor = state.executor.clone();
    let run = tokio::spawn(async move { advisor::indexes(&executor, &db, &req).await });
    let answer = run.await.map_err(ApiError::internal)??;
    Ok(ok(answer))
}
