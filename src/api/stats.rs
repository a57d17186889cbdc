//! `GET /stats/...`: operational statistics.

use axum::Json;
use axum::extract::State;

use super::AppState;
use crate::replication::ReplicationReport;

/// Replication: standbys as the primary sees them, each replica's lag, failover state.
pub async fn replication(State(state): State<AppState>) -> Json<ReplicationReport> {
    Json(state.replication.report().await)
}
