//! `GET /health`, `/health/live`, `/health/ready`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde::Serialize;

use super::AppState;
use crate::monitor::health::{self, HealthReport};

/// The full report; 503 when the primary cannot be reached, so load balancers can use it too.
pub async fn full(State(state): State<AppState>) -> (StatusCode, Json<HealthReport>) {
    let mut report = health::report(&state.executor.pools, &state.executor.stats, state.executor.cache.as_deref(), state.started).await;
    if state.backup.schedule.is_some() && state.config.backup.enable {
        report.backups = Some(state.backup_schedule.snapshot());
    }
    let archiving = state.backup.pitr.as_ref().is_some_and(|p| p.source == crate::backup::WalSource::ArchiveCommand);
    if archiving && report.database.reachable {
        let archive = health::wal_archive(&state.executor.pools).await;
        if archive.failing && report.status == "healthy" {
            report.status = "degraded";
        }
        report.wal_archive = Some(archive);
    }
    if let Some(wal) = state.wal_watch.freshness(&state.backup) {
        let stream_down = wal.stream.as_ref().is_some_and(|s| !s.running || s.slot_wal_status.as_deref() == Some("lost"));
        if (stream_down || wal.rpo_exceeded) && report.status == "healthy" {
            report.status = "degraded";
        }
        report.wal = Some(wal);
    }
    if let Some(remote) = &state.backup.remote {
        let remote = remote.status();
        if (remote.state == "failing" || remote.lag_seconds > remote.max_lag_seconds) && report.status == "healthy" {
            report.status = "degraded";
        }
        report.backup_remote = Some(remote);
    }
    report.security = Some(state.security.report());
    if state.config.alerts.enabled {
        let alerts = state.alerts.report();
        // A channel that cannot deliver means alerts may go unseen.
        if alerts.failing && report.status == "healthy" {
            report.status = "degraded";
        }
        report.alerts = Some(alerts);
    }
    if state.config.maintenance.enable && !state.config.maintenance.jobs.is_empty() {
        report.maintenance = Some(state.maintenance_jobs.snapshot());
    }
    let status = if report.is_healthy() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(report))
}

#[derive(Serialize, JsonSchema)]
pub struct Liveness {
    /// `alive`.
    status: &'static str,
}

/// The process is up (no database check).
pub async fn live() -> Json<Liveness> {
    Json(Liveness { status: "alive" })
}

#[derive(Serialize, JsonSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    /// While auto-migrate has not finished: where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    migrations: Option<crate::migrate::AutoState>,
    /// Why the primary did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Ready to serve: the primary answers and auto-migrate (when configured) is done.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    if !state.auto_migrate.is_ready() {
        let migrations = Some(state.auto_migrate.get());
        return (StatusCode::SERVICE_UNAVAILABLE, Json(Readiness { status: "not_ready", migrations, error: None }));
    }
    match state.executor.pools.primary().ping().await {
        Ok(()) => (StatusCode::OK, Json(Readiness { status: "ready", migrations: None, error: None })),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, Json(Readiness { status: "not_ready", migrations: None, error: Some(err.to_string()) })),
    }
}

/// Seed 004's `GET /api/database/connections/stats`: the pools, in dbagent's terms and in
/// SQLAlchemy's (`pool_size`, `checked_out`, ...), without pinging the database.
pub async fn connections(State(state): State<AppState>) -> Json<PoolsAnswer> {
    use crate::monitor::components::pool_details;
    let all = state.executor.pools.stats();
    let replicas = all.replicas.iter().map(|r| NamedPool { name: r.name.clone(), details: pool_details(r), pool_stats: r.clone() }).collect();
    Json(PoolsAnswer { success: true, primary: Pool { details: pool_details(&all.primary), pool_stats: all.primary }, replicas })
}

#[derive(Serialize, JsonSchema)]
pub struct PoolsAnswer {
    success: bool,
    primary: Pool,
    replicas: Vec<NamedPool>,
}

#[derive(Serialize, JsonSchema)]
pub struct Pool {
    /// SQLAlchemy's names (`pool_size`, `checked_out`, `overflow` ...).
    details: crate::monitor::components::PoolDetails,
    pool_stats: crate::db::PoolStats,
}

#[derive(Serialize, JsonSchema)]
pub struct NamedPool {
    name: String,
    details: crate::monitor::components::PoolDetails,
    pool_stats: crate::db::PoolStats,
}
