//! `POST /optimize` (EXPLAIN analysis and suggestions) and `POST /indexes` (suggest, upkeep).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::body::JsonBody;
use super::error::ApiError;
use crate::advisor::{self, IndexesAnswer, IndexesRequest, OptimizeRequest};

pub async fn optimize(State(state): State<AppState>, JsonBody(req): JsonBody<OptimizeRequest>) -> Result<Json<Value>, ApiError> {
    let db = state.executor.pools.admin_config();
    let slow = Duration::from_secs_f64(state.config.optimization.slow_query_threshold_ms / 1000.0);
    let report = advisor::optimize(&state.executor, &db, &req, slow).await?;
    let mut body = serde_json::to_value(&report).unwrap_or_default();
    if let Value::Object(map) = &mut body {
        map.insert("success".into(), Value::Bool(true));
    }
    Ok(Json(body))
}

/// An answer with `"success": true` beside its own fields.
#[derive(Serialize)]
pub struct Succeeded<T> {
    success: bool,
    #[serde(flatten)]
    answer: T,
}

pub async fn indexes(State(state): State<AppState>, JsonBody(req): JsonBody<IndexesRequest>) -> Result<Json<Succeeded<IndexesAnswer>>, ApiError> {
    let db = state.executor.pools.admin_config();
    // Index builds run to completion even when the client hangs up.
    let executor = state.executor.clone();
    let run = tokio::spawn(async move { advisor::indexes(&executor, &db, &req).await });
    let answer = run.await.map_err(ApiError::internal)??;
    Ok(Json(Succeeded { success: true, answer }))
}
