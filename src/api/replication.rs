//! `POST /replication/switchover` and `POST /replication/rejoin`: the managed instance's
//! planned switchover, and former primaries made replicas again after a failover;
//! `POST /replication/promote`: a replica promoted now (a failover on request);
//! `GET /replication/replicas`: the read replicas, managed or configured;
//! `POST /replication/replicas`: a managed replica created in a free read pool.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::AppState;
use super::answer::{Succeeded, ok};
use super::body::JsonBody;
use super::error::ApiError;
use crate::replication::{FailoverEvent, RejoinReport, Rejoined, SwitchoverReport};

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

/// `POST /replication/promote`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// The managed replica to promote: its place among the replicas, from 1.
    pub to: u32,
    /// Promote even though the primary answers (writes the replica has not received are
    /// lost; `/replication/switchover` loses none). Default false.
    #[serde(default)]
    pub force: bool,
}

/// Promotes managed replica `to` now and fences the old primary, as an automatic failover
/// would (the answer is the failover event). Runs to the end even when the client hangs up.
pub async fn promote(State(state): State<AppState>, JsonBody(request): JsonBody<PromoteRequest>) -> Result<Json<Succeeded<FailoverEvent>>, ApiError> {
    if request.to == 0 {
        return Err(ApiError::invalid_request("to is a replica's place, from 1"));
    }
    let supervisor = state.replication.clone();
    let event = tokio::spawn(async move { supervisor.promote_now(request.to, request.force).await }).await.map_err(ApiError::internal)??;
    Ok(ok(event))
}

/// One read replica.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ReplicaEntry {
    /// Its place, from 1 (what `to` names in switchover and promote).
    pub replica: u32,
    pub name: String,
    /// `host:port`.
    pub location: String,
    /// A cluster dbagent runs (`replication.replicas`), or a configured server.
    pub managed: bool,
    /// Answers its health check and streams.
    pub healthy: bool,
    /// Takes reads now (healthy, within `max_lag_seconds`, not promoted).
    pub serving_reads: bool,
    /// Promoted to primary since the agent started: no longer a replica.
    pub retired: bool,
    pub lag_seconds: Option<f64>,
    pub lag_bytes: Option<u64>,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub struct ReplicaList {
    pub replicas: Vec<ReplicaEntry>,
}

/// The read replicas in pool order (lag and the primary's view: `/stats/replication`).
pub async fn replicas(State(state): State<AppState>) -> Json<Succeeded<ReplicaList>> {
    let managed: Vec<usize> = state.replication.managed().map(|m| m.replicas.iter().map(|r| r.pool_index).collect()).unwrap_or_default();
    let replicas = state
        .executor
        .pools
        .stats()
        .replicas
        .into_iter()
        .enumerate()
        .map(|(i, p)| ReplicaEntry {
            replica: i as u32 + 1,
            managed: managed.contains(&i),
            serving_reads: p.usable && !p.retired,
            name: p.name,
            location: p.location,
            healthy: p.healthy,
            retired: p.retired,
            lag_seconds: p.lag_seconds,
            lag_bytes: p.lag_bytes,
        })
        .collect();
    ok(ReplicaList { replicas })
}

/// Creates a managed replica in the read pool a promoted replica left (`pg_basebackup` from the
/// primary), and starts it serving reads. Runs to the end even when the client hangs up.
pub async fn create_replica(State(state): State<AppState>) -> Result<Json<Succeeded<Rejoined>>, ApiError> {
    let supervisor = state.replication.clone();
    let created = tokio::spawn(async move { supervisor.add_replica().await }).await.map_err(ApiError::internal)??;
    Ok(ok(created))
}
