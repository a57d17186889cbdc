//! `GET /schema`, `GET /schema/{table}`, the ERD (`GET /schema/erd`) and the data dictionary
//! (`GET /schema/dictionary`).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::body::{JsonBody, Params, PathParam};
use crate::schema::{self, catalog, dictionary, erd};
use crate::seeddata;

#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct TableList {
    success: bool,
    count: usize,
    tables: Vec<schema::TableSummary>,
}

pub async fn list(State(state): State<AppState>) -> Result<Json<TableList>, ApiError> {
    let tables = schema::tables(&state.executor.pools).await?;
    Ok(Json(TableList { success: true, count: tables.len(), tables }))
}

pub async fn describe(State(state): State<AppState>, PathParam(table): PathParam) -> Result<Json<schema::TableDetail>, ApiError> {
    Ok(Json(schema::describe(&state.executor.pools, &table).await?))
}

/// `?schema=public,sales&table=film`: which relations a document covers.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErdQuery {
    #[serde(default)]
    pub format: erd::Format,
    /// Comma-separated schema names (default: every schema but dbagent's own).
    pub schema: Option<String>,
    /// One table and its neighbours (one foreign key away, either direction).
    pub table: Option<String>,
    /// `keys` (default) or `all`.
    #[serde(default)]
    pub columns: erd::Columns,
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DictionaryQuery {
    #[serde(default)]
    pub format: dictionary::Format,
    pub schema: Option<String>,
    /// One table only.
    pub table: Option<String>,
}

fn schemas(list: Option<&str>) -> Vec<String> {
    list.map(|s| s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()).unwrap_or_default()
}

fn text(content_type: &'static str, body: String) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// The ERD as Mermaid (`text/vnd.mermaid`) or Graphviz dot (`text/vnd.graphviz`).
pub async fn erd(State(state): State<AppState>, Params(q): Params<ErdQuery>) -> Result<Response, ApiError> {
    let filter = catalog::Filter { schemas: schemas(q.schema.as_deref()), table: q.table, neighbours: true };
    let tables = catalog::load(&state.executor.pools, &filter).await?;
    let body = erd::render(&tables, q.format, q.columns);
    Ok(match q.format {
        erd::Format::Mermaid => text("text/vnd.mermaid; charset=utf-8", body),
        erd::Format::Dot => text("text/vnd.graphviz; charset=utf-8", body),
    })
}

/// The data dictionary as Markdown, HTML or JSON.
pub async fn dictionary(State(state): State<AppState>, Params(q): Params<DictionaryQuery>) -> Result<Response, ApiError> {
    let filter = catalog::Filter { schemas: schemas(q.schema.as_deref()), table: q.table, neighbours: false };
    let tables = catalog::load(&state.executor.pools, &filter).await?;
    let body = dictionary::render(&tables, q.format);
    Ok(match q.format {
        dictionary::Format::Markdown => text("text/markdown; charset=utf-8", body),
        dictionary::Format::Html => text("text/html; charset=utf-8", body),
        dictionary::Format::Json => text("application/json", body),
    })
}

/// `POST /seed/generate`: plausible rows for a table, parents first, in one transaction.
pub async fn generate(State(state): State<AppState>, JsonBody(request): JsonBody<seeddata::Request>) -> Result<Json<seeddata::Report>, ApiError> {
    let db = state.executor.pools.admin_config();
    Ok(Json(seeddata::generate(&db, &request).await?))
}
