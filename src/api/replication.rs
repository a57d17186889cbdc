//! `POST /replication/switchover` and `POST /replication/rejoin`: the managed instance's
//! planned switchover, and former primaries made replicas again after a failover.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::AppState;
use super::answer::{Succeeded, ok};
use super::body::JsonBody;
use super::error::ApiError;
use crate::replication::{RejoinReport, SwitchoverReport};

/// `POST /replication/switchover`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchoverRequest {
    /// The managed replica to promote: its place among the replicas, from 1, as in
    /// `/stats/replication`.
    pub to: u32,
    /// How long to wait for the replica to come within 16 MB of the primary before writes are
    /// paused (1 to 600). Default 30.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// Promotes replica `to`, makes the old primary its replica and measures the write pause. Runs
/// to the end even when the client hangs up (a switchover cut half-way would be worse).
pub async fn switchover(State(state): State<AppState>, JsonBody(request): JsonBody<SwitchoverRequest>) -> Result<Json<Succeeded<SwitchoverReport>>, ApiError> {
    let timeout = request.timeout_seconds.unwrap_or(30);
    if !(1..=600).contains(&timeout) {
        return Err(ApiError::invalid_request("timeout_seconds must be between 1 and 600"));
    }
    if request.to == 0 {
        return Err(ApiError::invalid_request("to is a replica's place, from 1"));
    }
    let supervisor = state.replication.clone();
    let report = tokio::spawn(async move { supervisor.switchover(request.to, Duration::from_secs(timeout)).await })
        .await
        .map_err(ApiError::internal)??;
    Ok(ok(report))
}

/// Rewinds every fenced former primary with `pg_rewind` and starts it as a replica of the
/// primary. Runs to the end even when the client hangs up.
pub async fn rejoin(State(state): State<AppState>) -> Result<Json<Succeeded<RejoinReport>>, ApiError> {
    let supervisor = state.replication.clone();
    let report = tokio::spawn(async move { supervisor.rejoin().await }).await.map_err(ApiError::internal)??;
    Ok(ok(report))
}
