//! `/roles` and `/grants` (admin scope, audited): the server's roles and their privileges.
//! The audit row names the role (`related`), never a password: request bodies are not copied
//! into audit rows, and no statement of these routes is noted (a CREATE ROLE holds a verifier).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Serialize;

use super::AppState;
use super::answer::{Succeeded, ok};
use super::auth::Note;
use super::body::{JsonBody, Params, PathParam};
use super::error::ApiError;
use crate::access::grants::{self, GrantRequest, Granted};
use crate::access::list::{self, RoleFilter, RoleInfo, RoleList};
use crate::access::roles::{self, DropOptions, Dropped, NewRole, RoleChange};

fn related(note: Option<Extension<Note>>, text: String) {
    if let Some(Extension(note)) = note {
        note.with(|n| n.related = Some(text));
    }
}

/// `GET /roles?role=&include_system=`.
pub async fn list(State(state): State<AppState>, Params(filter): Params<RoleFilter>) -> Result<Json<Succeeded<RoleList>>, ApiError> {
    let client = crate::access::connect(&state.executor.pools).await?;
    Ok(ok(list::roles(&client, &filter).await?))
}

/// One role, as created or changed.
#[derive(Serialize, schemars::JsonSchema)]
pub struct RoleAnswer {
    role: RoleInfo,
}

/// `POST /roles`.
pub async fn create(State(state): State<AppState>, note: Option<Extension<Note>>, JsonBody(new): JsonBody<NewRole>) -> Result<(StatusCode, Json<Succeeded<RoleAnswer>>), ApiError> {
    related(note, format!("role {:?}", new.name));
    let mut client = crate::access::connect(&state.executor.pools).await?;
    let role = roles::create(&mut client, &new).await?;
    Ok((StatusCode::CREATED, ok(RoleAnswer { role })))
}

/// `PATCH /roles/{name}`.
pub async fn alter(State(state): State<AppState>, note: Option<Extension<Note>>, PathParam(name): PathParam, JsonBody(change): JsonBody<RoleChange>) -> Result<Json<Succeeded<RoleAnswer>>, ApiError> {
    related(note, format!("role {name:?}{}", if change.password.is_some() { " (password changed)" } else { "" }));
    let mut client = crate::access::connect(&state.executor.pools).await?;
    let role = roles::alter(&mut client, &state.config.security, &name, &change).await?;
    Ok(ok(RoleAnswer { role }))
}

/// `DELETE /roles/{name}?reassign_to=&drop_owned=`.
pub async fn drop(State(state): State<AppState>, note: Option<Extension<Note>>, PathParam(name): PathParam, Params(options): Params<DropOptions>) -> Result<Json<Succeeded<Dropped>>, ApiError> {
    related(note, format!("role {name:?}"));
    let mut client = crate::access::connect(&state.executor.pools).await?;
    Ok(ok(roles::drop(&mut client, &state.config.security, &name, &options).await?))
}

/// `POST /grants`.
pub async fn grant(State(state): State<AppState>, note: Option<Extension<Note>>, JsonBody(request): JsonBody<GrantRequest>) -> Result<Json<Succeeded<Granted>>, ApiError> {
    apply(state, note, request, false).await
}

/// `DELETE /grants` (the same body).
pub async fn revoke(State(state): State<AppState>, note: Option<Extension<Note>>, JsonBody(request): JsonBody<GrantRequest>) -> Result<Json<Succeeded<Granted>>, ApiError> {
    apply(state, note, request, true).await
}

async fn apply(state: AppState, note: Option<Extension<Note>>, request: GrantRequest, revoke: bool) -> Result<Json<Succeeded<Granted>>, ApiError> {
    let mut client = crate::access::connect(&state.executor.pools).await?;
    let granted = grants::apply(&mut client, &request, revoke).await?;
    related(note, granted.statements.join("; "));
    Ok(ok(granted))
}
