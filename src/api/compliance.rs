//! `GET /security/compliance` (seed 004's `/api/database/security/compliance`): the compliance
//! report as JSON or Markdown.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::answer::ok;
use super::body::Params;
use super::error::ApiError;
use crate::compliance;

/// The report's form.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    /// A document to hand to an auditor (`text/markdown`).
    Markdown,
}

/// `GET /security/compliance?format=`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ComplianceQuery {
    /// `json` (default) or `markdown`.
    #[serde(default)]
    pub format: Format,
}

pub async fn report(State(state): State<AppState>, Params(query): Params<ComplianceQuery>) -> Result<Response, ApiError> {
    let report = compliance::report(&state.executor.pools, &state.config, &state.backup, state.security.required).await?;
    Ok(match query.format {
        Format::Json => ok(report).into_response(),
        Format::Markdown => ([(header::CONTENT_TYPE, "text/markdown; charset=utf-8")], compliance::markdown::render(&report)).into_response(),
    })
}
