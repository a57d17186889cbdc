//! `GET /health`, `/health/live`, `/health/ready`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;
use crate::monitor::health::{self, HealthReport};

/// The full report; 503 when the primary cannot be reached, so load balancers can use it too.
pub async fn full(State(state): State<AppState>) -> (StatusCode, Json<HealthReport>) {
    let mut report = health::report(&state.executor.pools, &state.executor.stats, state.executor.cache.as_deref(), state.started).await;
    if state.backup.schedule.is_some() && state.config.backup.enable {
        report.backups = Some(state.backup_schedule.snapshot());
    }
    if state.backup.pitr.is_some() && report.database.reachable {
        let archive = health::wal_archive(&state.executor.pools).await;
        if archive.failing && report.status == "healthy" {
            report.status = "degraded";
        }
        report.wal_archive = Some(archive);
    }
    report.security = Some(state.security.report());
    if state.config.maintenance.enable && !state.config.maintenance.jobs.is_empty() {
        report.maintenance = Some(state.maintenance_jobs.snapshot());
    }
    let status = if report.is_healthy() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(report))
}

/// The process is up (no database check).
pub async fn live() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

/// Ready to serve: the primary answers and auto-migrate (when configured) is done.
pub async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if !state.auto_migrate.is_ready() {
        let migrations = serde_json::to_value(state.auto_migrate.get()).unwrap_or_default();
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not_ready", "migrations": migrations })));
    }
    match state.executor.pools.primary().ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not_ready", "error": err.to_string() }))),
    }
}

/// Seed 004's `GET /api/database/connections/stats`: the pools, in dbagent's terms and in
/// SQLAlchemy's (`pool_size`, `checked_out`, ...), without pinging the database.
pub async fn connections(State(state): State<AppState>) -> Json<Value> {
    use crate::monitor::components::pool_details;
    let all = state.executor.pools.stats();
    let replicas: Vec<Value> = all.replicas.iter().map(|r| json!({ "name": r.name, "details": pool_details(r), "pool_stats": r })).collect();
    Json(json!({
        "success": true,
        "primary": { "details": pool_details(&all.primary), "pool_stats": all.primary },
        "replicas": replicas,
    }))
}
