//! `GET /stats/...`: database, tables, indexes, slow queries, activity, the host, replication.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
pub use crate::monitor::dbstats::SlowQueries;
use crate::monitor::dbstats::{self, Activity, DatabaseStats, IndexStats, SlowQuery, TableStats};
use crate::monitor::system::{self, SystemStats};
use crate::replication::ReplicationReport;

pub use super::body::Params;

/// `?limit=N` of the list endpoints.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    #[serde(default = "default_limit")]
    limit: u32,
}

fn default_limit() -> u32 {
    100
}

/// Replication: standbys as the primary sees them, each replica's lag, failover state.
pub async fn replication(State(state): State<AppState>) -> Json<ReplicationReport> {
    Json(state.replication.report().await)
}

/// Connections, TPS, cache hit ratio, deadlocks, sizes, oldest transaction, wraparound, disk.
pub async fn database(State(state): State<AppState>, Params(_): Params<NoParams>) -> Result<Json<DatabaseStats>, ApiError> {
    let previous = state.monitor.collector.as_ref().and_then(|c| c.snapshot().database);
    let data_dir = state.monitor.data_dir.as_deref();
    Ok(Json(dbstats::database(&state.executor.pools, previous, data_dir).await?))
}

/// No parameters are taken (an unknown one is a 400, not silently ignored).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

pub async fn tables(State(state): State<AppState>, Params(q): Params<Limit>) -> Result<Json<Vec<TableStats>>, ApiError> {
    Ok(Json(dbstats::tables(&state.executor.pools, q.limit).await?))
}

pub async fn indexes(State(state): State<AppState>, Params(q): Params<Limit>) -> Result<Json<Vec<IndexStats>>, ApiError> {
    Ok(Json(dbstats::indexes(&state.executor.pools, q.limit).await?))
}

/// `?threshold_ms=&order=&limit=` over `pg_stat_statements`.
pub async fn slow_queries(State(state): State<AppState>, Params(q): Params<SlowQueries>) -> Result<Json<Vec<SlowQuery>>, ApiError> {
    Ok(Json(dbstats::slow_queries(&state.executor.pools, &q, state.monitor.managed).await?))
}

pub async fn activity(State(state): State<AppState>, Params(q): Params<Limit>) -> Result<Json<Activity>, ApiError> {
    Ok(Json(dbstats::activity(&state.executor.pools, q.limit).await?))
}

pub async fn system(State(state): State<AppState>, Params(_): Params<NoParams>) -> Json<SystemStats> {
    Json(system::report(state.monitor.data_dir.as_deref()).await)
}
