//! `/alerts` (list, one, acknowledge, rules, test a channel) and `/silences`.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Note;
use super::body::{JsonBody, OptionalJsonBody, Params, PathParam};
use super::error::ApiError;
use crate::alerts::{self, Alert, RuleStatus, store};
use crate::db::{self, Purpose};

async fn client(state: &AppState) -> Result<tokio_postgres::Client, ApiError> {
    let client = db::admin::connect(&state.executor.pools.admin_config(), Purpose::Alerts)
        .await
        .map_err(|e| ApiError::from(alerts::Error::driver(e)))?;
    store::ensure(&client).await?;
    Ok(client)
}

/// Who did it: the key's name, or `api` without keys.
pub(super) fn who(caller: Option<&Extension<crate::security::Caller>>) -> String {
    match caller.and_then(|Extension(c)| c.key_name().map(str::to_owned)) {
        Some(name) => format!("api key {name}"),
        None => "api".to_owned(),
    }
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AlertList {
    pub success: bool,
    pub alerts: Vec<Alert>,
}

/// `GET /alerts?state=active|pending|firing|resolved|all&rule=&severity=&subject=&since=&limit=`,
/// newest first (default: the active ones).
pub async fn list(State(state): State<AppState>, Params(filter): Params<store::Filter>) -> Result<Json<AlertList>, ApiError> {
    let client = client(&state).await?;
    Ok(Json(AlertList { success: true, alerts: store::list(&client, &filter).await? }))
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AlertAnswer {
    pub success: bool,
    pub alert: Alert,
}

/// `GET /alerts/{id}`: the alert with its history.
pub async fn get(State(state): State<AppState>, PathParam(id): PathParam) -> Result<Json<AlertAnswer>, ApiError> {
    let client = client(&state).await?;
    Ok(Json(AlertAnswer { success: true, alert: store::get(&client, &id).await? }))
}

/// `POST /alerts/{id}/ack` body (optional).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    pub comment: Option<String>,
}

/// Acknowledges an alert as the caller's key: it stops repeating (an escalation is still sent).
pub async fn ack(
    State(state): State<AppState>,
    caller: Option<Extension<crate::security::Caller>>,
    note: Option<Extension<Note>>,
    PathParam(id): PathParam,
    OptionalJsonBody(req): OptionalJsonBody<AckRequest>,
) -> Result<Json<AlertAnswer>, ApiError> {
    let client = client(&state).await?;
    let alert = store::ack(&client, &id, &who(caller.as_ref()), req.comment.as_deref()).await?;
    if let Some(Extension(note)) = note {
        note.with(|n| n.related = Some(alert.id.clone()));
    }
    Ok(Json(AlertAnswer { success: true, alert }))
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct RulesAnswer {
    pub success: bool,
    /// This agent evaluates the rules; on the others, `rules` carry no observations.
    pub leader: bool,
    pub evaluated_at: Option<DateTime<Utc>>,
    /// How long the last evaluation took (its reads and writes).
    pub evaluation_ms: f64,
    pub rules: Vec<RuleStatus>,
}

/// `GET /alerts/rules`: each rule, its thresholds, and what the last evaluation saw.
pub async fn rules(State(state): State<AppState>) -> Json<RulesAnswer> {
    let status = state.alerts.status();
    let rules = if status.rules.is_empty() {
        state.alerts.rules.iter().map(|rule| RuleStatus { rule: rule.clone(), observations: Vec::new() }).collect()
    } else {
        status.rules
    };
    Json(RulesAnswer { success: true, leader: status.leader, evaluated_at: status.evaluated_at, evaluation_ms: status.evaluation_ms, rules })
}

/// `POST /alerts/test` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    pub channel: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct TestAnswer {
    pub success: bool,
    pub channel: String,
    /// The attempt that got through.
    pub attempts: u32,
}

/// Sends a test notification on one channel now (with the configured retries).
pub async fn test(State(state): State<AppState>, JsonBody(req): JsonBody<TestRequest>) -> Result<Json<TestAnswer>, ApiError> {
    let attempts = state.alerts.test(&req.channel).await?;
    Ok(Json(TestAnswer { success: true, channel: req.channel, attempts }))
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SilenceList {
    pub success: bool,
    pub silences: Vec<store::Silence>,
}

/// `GET /silences?all=true`: the silences in force (with `all`, the expired ones kept too).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceFilter {
    #[serde(default)]
    pub all: bool,
}

pub async fn silences(State(state): State<AppState>, Params(filter): Params<SilenceFilter>) -> Result<Json<SilenceList>, ApiError> {
    let client = client(&state).await?;
    Ok(Json(SilenceList { success: true, silences: store::silences(&client, filter.all).await? }))
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct SilenceAnswer {
    pub success: bool,
    pub silence: store::Silence,
}

/// `POST /silences {rule, subject, duration | until, comment}`.
pub async fn create_silence(
    State(state): State<AppState>,
    caller: Option<Extension<crate::security::Caller>>,
    note: Option<Extension<Note>>,
    JsonBody(new): JsonBody<store::NewSilence>,
) -> Result<(StatusCode, Json<SilenceAnswer>), ApiError> {
    let client = client(&state).await?;
    let silence = store::create_silence(&client, &new, &who(caller.as_ref())).await?;
    if let Some(Extension(note)) = note {
        note.with(|n| n.related = Some(silence.id.clone()));
    }
    Ok((StatusCode::CREATED, Json(SilenceAnswer { success: true, silence })))
}

/// `DELETE /silences/{id}`: the silence ends now (kept, expired).
pub async fn expire_silence(State(state): State<AppState>, note: Option<Extension<Note>>, PathParam(id): PathParam) -> Result<Json<SilenceAnswer>, ApiError> {
    let client = client(&state).await?;
    let silence = store::expire_silence(&client, &id).await?;
    if let Some(Extension(note)) = note {
        note.with(|n| n.related = Some(silence.id.clone()));
    }
    Ok(Json(SilenceAnswer { success: true, silence }))
}
