//! `/keys` (create, list, revoke, rotate) and `/audit` (admin scope).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::Serialize;

use super::AppState;
use super::body::{Params, PathParam};
use super::answer::{Succeeded, ok};
use super::auth::Note;
use super::body::JsonBody;
use super::error::ApiError;
use crate::db::{self, Purpose};
use crate::security::{self, audit, keys};

async fn client(state: &AppState) -> Result<tokio_postgres::Client, ApiError> {
    db::admin::connect(state.security.db(), Purpose::Security)
        .await
        .map_err(|e| ApiError::from(security::Error::from(e)))
}

#[derive(Serialize, JsonSchema)]
pub struct KeyList {
    keys: Vec<keys::KeyInfo>,
}

pub async fn list(State(state): State<AppState>) -> Result<Json<Succeeded<KeyList>>, ApiError> {
    let client = client(&state).await?;
    Ok(ok(KeyList { keys: keys::list(&client).await? }))
}

/// `POST /keys {name, scopes, expires, rate, burst, max_concurrent, allow_from}`: the secret
/// is in this answer and nowhere else, ever.
pub async fn create(
    State(state): State<AppState>,
    note: Option<axum::Extension<Note>>,
    JsonBody(new): JsonBody<keys::NewKey>,
) -> Result<(StatusCode, Json<Succeeded<keys::Created>>), ApiError> {
    let mut client = client(&state).await?;
    // The roles must be able to enforce the new key's scope before it can be used.
    security::roles::ensure(&client, &state.security.settings).await?;
    state.security.keys.set_roles_ready();
    let created = keys::create(&mut client, &new).await?;
    // Known here at once (other agents hear of it by NOTIFY).
    state.security.keys.reload(&client).await?;
    if let Some(note) = note {
        note.with(|n| n.related = Some(created.key.id.clone()));
    }
    Ok((StatusCode::CREATED, ok(created)))
}

#[derive(Serialize, JsonSchema)]
pub struct Revoked {
    key: keys::KeyInfo,
}

pub async fn revoke(State(state): State<AppState>, note: Option<axum::Extension<Note>>, PathParam(id): PathParam) -> Result<Json<Succeeded<Revoked>>, ApiError> {
    let mut client = client(&state).await?;
    let key = keys::revoke(&mut client, &id).await?;
    state.security.keys.reload(&client).await?;
    if let Some(note) = note {
        note.with(|n| n.related = Some(key.id.clone()));
    }
    Ok(ok(Revoked { key }))
}

pub async fn rotate(State(state): State<AppState>, note: Option<axum::Extension<Note>>, PathParam(id): PathParam) -> Result<Json<Succeeded<keys::Created>>, ApiError> {
    let mut client = client(&state).await?;
    let created = keys::rotate(&mut client, &id, state.security.settings.rotate_grace()).await?;
    state.security.keys.reload(&client).await?;
    if let Some(note) = note {
        note.with(|n| n.related = Some(format!("{} -> {}", id, created.key.id)));
    }
    Ok(ok(created))
}

#[derive(Serialize, JsonSchema)]
pub struct AuditRows {
    entries: Vec<audit::Row>,
}

/// `GET /audit?since=&until=&key=&action=&table=&outcome=&limit=`, newest first.
pub async fn audit(State(state): State<AppState>, Params(filter): Params<audit::Filter>) -> Result<Json<Succeeded<AuditRows>>, ApiError> {
    if state.security.audit.is_none() {
        return Err(ApiError::not_found("the audit log is off (security.audit)"));
    }
    let client = client(&state).await?;
    Ok(ok(AuditRows { entries: audit::list(&client, &filter).await? }))
}
