//! `GET /schema` and `GET /schema/{table}`.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::error::ApiError;
use super::AppState;
use crate::schema;

pub async fn list(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let tables = schema::tables(&state.executor.pools).await?;
    Ok(Json(json!({ "success": true, "count": tables.len(), "tables": tables })))
}

pub async fn describe(State(state): State<AppState>, Path(table): Path<String>) -> Result<Json<schema::TableDetail>, ApiError> {
    Ok(Json(schema::describe(&state.executor.pools, &table).await?))
}
