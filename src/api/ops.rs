//! Operations: `/connections`, `/locks`, signalling sessions, `/maintenance/*`.

use axum::Json;
use axum::extract::State;
use axum::Extension;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::answer::{Succeeded, ok};
use super::auth::Note;
use super::error::ApiError;
use super::body::{OptionalJsonBody, Params, PathParam};
use crate::ops::jobs::{self, Run};
use crate::ops::locks::{self, LockReport};
use crate::ops::maintenance::{self, AnalyzeRequest, Maintained, Progress, VacuumRequest};
use crate::ops::report::{self, Report};
use crate::ops::settings::{self, AdviceRequest, Applied, ApplyRequest, ConfigAdvice};
use crate::ops::sessions::{self, ConnectionFilter, ConnectionStats, Session};
use crate::ops::signal::{self, CloseIdle, Signal, SignalReport};

fn pid(text: &str) -> Result<i32, ApiError> {
    text.parse().map_err(|_| ApiError::invalid_request(format!("{text:?} is not a process id")))
}

/// `GET /connections` (seed 004's `/connections/details`).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Connections {
    pub success: bool,
    pub count: usize,
    pub connections: Vec<Session>,
}

pub async fn connections(State(state): State<AppState>, Params(filter): Params<ConnectionFilter>) -> Result<Json<Connections>, ApiError> {
    let connections = sessions::list(&state.executor.pools, &filter).await?;
    Ok(Json(Connections { success: true, count: connections.len(), connections }))
}

pub async fn connection_stats(State(state): State<AppState>, Params(_): Params<super::stats::NoParams>) -> Result<Json<ConnectionStats>, ApiError> {
    Ok(Json(sessions::stats(&state.executor.pools).await?))
}

pub async fn locks(State(state): State<AppState>, Params(_): Params<super::stats::NoParams>) -> Result<Json<LockReport>, ApiError> {
    Ok(Json(locks::report(&state.executor.pools).await?))
}

/// The body of `POST /connections/{pid}/cancel|terminate` (optional).
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    /// Signal dbagent's own or a superuser's session too.
    #[serde(default)]
    pub force: bool,
}

/// What a signalling call did.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Signalled {
    pub success: bool,
    #[serde(flatten)]
    pub report: SignalReport,
}

fn noted(note: Option<Extension<Note>>, report: SignalReport) -> Json<Signalled> {
    if let Some(Extension(note)) = note {
        note.with(|n| {
            n.writes = !report.dry_run;
            n.related = Some(format!("pids [{}]", report.pids()));
        });
    }
    Json(Signalled { success: true, report })
}

async fn send(state: AppState, note: Option<Extension<Note>>, pid_text: &str, request: SignalRequest, signal: Signal) -> Result<Json<Signalled>, ApiError> {
    let pid = pid(pid_text)?;
    let report = signal::signal(&state.executor.pools, pid, signal, request.force).await?;
    Ok(noted(note, report))
}

pub async fn cancel(State(state): State<AppState>, note: Option<Extension<Note>>, PathParam(pid): PathParam, OptionalJsonBody(request): OptionalJsonBody<SignalRequest>) -> Result<Json<Signalled>, ApiError> {
    send(state, note, &pid, request, Signal::Cancel).await
}

pub async fn terminate(State(state): State<AppState>, note: Option<Extension<Note>>, PathParam(pid): PathParam, OptionalJsonBody(request): OptionalJsonBody<SignalRequest>) -> Result<Json<Signalled>, ApiError> {
    send(state, note, &pid, request, Signal::Terminate).await
}

pub async fn close_idle(State(state): State<AppState>, note: Option<Extension<Note>>, OptionalJsonBody(request): OptionalJsonBody<CloseIdle>) -> Result<Json<Signalled>, ApiError> {
    let report = signal::close_idle(&state.executor.pools, &request).await?;
    Ok(noted(note, report))
}

fn note_statement(note: Option<Extension<Note>>, statement: &str) {
    if let Some(Extension(note)) = note {
        note.with(|n| {
            n.writes = true;
            n.statement = Some(statement.to_owned());
        });
    }
}

/// `POST /maintenance/vacuum`. Runs to the end even when the client hangs up.
pub async fn vacuum(State(state): State<AppState>, note: Option<Extension<Note>>, OptionalJsonBody(request): OptionalJsonBody<VacuumRequest>) -> Result<Json<Succeeded<Maintained>>, ApiError> {
    let pools = state.executor.pools.clone();
    let answer = tokio::spawn(async move { maintenance::vacuum(&pools, &request).await }).await.map_err(ApiError::internal)??;
    note_statement(note, &answer.done);
    Ok(ok(answer))
}

/// `POST /maintenance/analyze`.
pub async fn analyze(State(state): State<AppState>, note: Option<Extension<Note>>, OptionalJsonBody(request): OptionalJsonBody<AnalyzeRequest>) -> Result<Json<Succeeded<Maintained>>, ApiError> {
    let pools = state.executor.pools.clone();
    let answer = tokio::spawn(async move { maintenance::analyze(&pools, &request).await }).await.map_err(ApiError::internal)??;
    note_statement(note, &answer.done);
    Ok(ok(answer))
}

/// `GET /maintenance/progress`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Running {
    pub success: bool,
    pub running: Vec<Progress>,
}

pub async fn progress(State(state): State<AppState>, Params(_): Params<super::stats::NoParams>) -> Result<Json<Running>, ApiError> {
    Ok(Json(Running { success: true, running: maintenance::progress(&state.executor.pools).await? }))
}

pub async fn report(State(state): State<AppState>, Params(_): Params<super::stats::NoParams>) -> Result<Json<Succeeded<Report>>, ApiError> {
    Ok(ok(report::report(&state.executor.pools).await?))
}

/// `GET /maintenance/history?job=&limit=`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    pub job: Option<String>,
    #[serde(default = "default_history_limit")]
    pub limit: u32,
}

fn default_history_limit() -> u32 {
    50
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct History {
    pub success: bool,
    pub runs: Vec<Run>,
}

pub async fn history(State(state): State<AppState>, Params(q): Params<HistoryParams>) -> Result<Json<History>, ApiError> {
    Ok(Json(History { success: true, runs: jobs::history(&state.executor.pools, q.job.as_deref(), q.limit).await? }))
}

/// `GET /advisor/config?memory=&cpus=&storage=`.
pub async fn config_advice(State(state): State<AppState>, Params(q): Params<AdviceRequest>) -> Result<Json<Succeeded<ConfigAdvice>>, ApiError> {
    Ok(ok(settings::advise(&state.executor.pools, &q, state.monitor.managed).await?))
}

/// What `POST /advisor/config/apply` did, setting by setting.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct AppliedSettings {
    pub success: bool,
    pub settings: Vec<Applied>,
}

pub async fn config_apply(
    State(state): State<AppState>,
    note: Option<Extension<Note>>,
    super::body::JsonBody(request): super::body::JsonBody<ApplyRequest>,
) -> Result<Json<AppliedSettings>, ApiError> {
    let applied = settings::apply(&state.executor.pools, &request).await?;
    if let Some(Extension(note)) = note {
        let statements: Vec<&str> = applied.iter().filter_map(|a| a.statement.as_deref()).collect();
        note.with(|n| {
            n.writes = !statements.is_empty();
            n.statement = Some(statements.join("\n"));
        });
    }
    Ok(Json(AppliedSettings { success: true, settings: applied }))
}
