//! Failover: the primary has not answered for `failover_after` seconds.
//!
//! Managed clusters: fence the old primary (mark, then stop it), promote the most caught-up
//! healthy replica, stop its commits from waiting for replicas it no longer has, point the
//! other replicas at it, and re-point the primary pool. Configured servers: dbagent promotes
//! nothing; it looks for a configured replica that has become a primary (promoted by Patroni,
//! an operator ...) and re-points the primary pool there.
//!
//! The promotion itself (fence, promote, release commits) is [`promote`], which
//! `dbagent instance promote` calls too.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::topology::{Cluster, follow, release_commits};
use super::{Managed, Supervisor};
use crate::instance::Settings;
use crate::{db, instance};

/// One failover, done or refused.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FailoverEvent {
    pub at: String,
    /// `promoted` (a managed replica), `followed` (a configured host that became primary),
    /// `refused`, `switchover` (planned, `POST /replication/switchover`) or
    /// `switchover_refused`.
    pub outcome: &'static str,
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// How long the primary had been unreachable when failover began.
    pub primary_down_ms: u64,
    /// From the decision to the pools pointing at the new primary.
    pub took_ms: u64,
    pub detail: String,
}

/// Why failover did not happen.
#[derive(Debug)]
struct Refusal(String);

/// Why [`promote`] stopped; the old primary stays fenced if it got that far.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error("cannot fence the old primary")]
    Fence(#[source] instance::Error),
    #[error("cannot promote {}", data_dir.display())]
    Promote {
        data_dir: PathBuf,
        #[source]
        source: instance::Error,
    },
}

/// Makes the managed replica `replica` the primary in place of `primary`: fences the old
/// primary (marked with its successor, then stopped) before anything else, promotes the
/// replica, then stops the promoted server's commits from waiting for replicas it no longer
/// has (a failure there is logged, not returned: the promotion stands). Pointing the other
/// replicas and the pools at it is the caller's part. Automatic failover and
/// `dbagent instance promote` both promote through here.
pub async fn promote(primary: &Settings, replica: &Cluster, database: &str) -> Result<(), PromoteError> {
    let data_dir = &replica.settings.data_dir;
    instance::fence(primary, data_dir).await.map_err(PromoteError::Fence)?;
    instance::promote(&replica.settings)
        .await
        .map_err(|source| PromoteError::Promote { data_dir: data_dir.clone(), source })?;
    if let Err(err) = release_commits(&replica.running, database).await {
        tracing::error!(error = %err, "cannot reset synchronous_standby_names on the promoted replica; commits may wait");
    }
    Ok(())
}

impl Supervisor {
    pub(super) async fn fail_over(&self, down_for: Duration) {
        if !self.claim() {
            return;
        }
        let started = Instant::now();
        let from = self.pools.primary().location();
        let result = match self.managed() {
            Some(managed) => self.promote_managed(managed).await,
            None => self.follow_configured().await,
        };
        let promoted = matches!(result, Ok(("promoted", _)));
        {
            let mut state = self.lock_state();
            state.failing_over = false;
            let event = |outcome, to, detail| FailoverEvent {
                at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                outcome,
                from: from.clone(),
                to,
                primary_down_ms: down_for.as_millis() as u64,
                took_ms: started.elapsed().as_millis() as u64,
                detail,
            };
            match result {
                Ok((outcome, to)) => {
                    tracing::warn!(%from, %to, down_ms = down_for.as_millis() as u64, took_ms = started.elapsed().as_millis() as u64, "failed over to a new primary");
                    state.down_since = None;
                    state.refusal_logged = false;
                    state.protected = false;
                    state.events.push(event(outcome, Some(to), String::new()));
                }
                Err(Refusal(reason)) => {
                    if !state.refusal_logged {
                        tracing::error!(%from, %reason, "the primary is down and no failover is possible");
                        state.refusal_logged = true;
                        state.events.push(event("refused", None, reason));
                    }
                }
            }
        }
        if promoted && self.policy.auto_rejoin {
            match self.rejoin().await {
                Ok(report) => tracing::info!(rejoined = report.rejoined.len(), "replication.auto_rejoin: the old primary follows the new one"),
                Err(err) => tracing::error!(error = %err, "replication.auto_rejoin: cannot rejoin the old primary; it stays fenced"),
            }
        }
    }

    /// Promotes managed replica `to` now, at an operator's request (`POST
    /// /replication/promote`): the old primary is fenced and the pools follow the promoted
    /// one, as in an automatic failover. While the primary still answers this is refused
    /// without `force`: writes the replica has not received would be lost, and a switchover
    /// loses none.
    pub async fn promote_now(&self, to: u32, force: bool) -> Result<FailoverEvent, super::SwitchoverError> {
        use super::SwitchoverError;
        let managed = self.managed().ok_or(SwitchoverError::NotManaged)?;
        let chosen = managed.replicas.iter().find(|r| r.pool_index + 1 == to as usize).map(|r| r.pool_index).ok_or(SwitchoverError::NoSuchReplica(to))?;
        self.pools.check_health().await;
        if !self.pools.replicas()[chosen].is_healthy() {
            return Err(SwitchoverError::NotReady(format!("replica {to} does not answer (see /stats/replication)")));
        }
        if self.pools.primary().is_healthy() && !force {
            return Err(SwitchoverError::PrimaryUp);
        }
        if !self.claim() {
            return Err(SwitchoverError::Busy);
        }
        let started = Instant::now();
        let from = self.pools.primary().location();
        let result = self.promote_managed_to(managed, Some(chosen)).await;
        let event = {
            let mut state = self.lock_state();
            state.failing_over = false;
            let event = FailoverEvent {
                at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                outcome: if result.is_ok() { "promoted" } else { "refused" },
                from,
                to: result.as_ref().ok().map(|(_, to)| to.clone()),
                primary_down_ms: 0,
                took_ms: started.elapsed().as_millis() as u64,
                detail: match &result {
                    Ok(_) => format!("replica {to} promoted on request{}", if force { " (forced while the primary answered)" } else { "" }),
                    Err(Refusal(reason)) => reason.clone(),
                },
            };
            state.events.push(event.clone());
            if result.is_ok() {
                state.down_since = None;
                state.protected = false;
            }
            event
        };
        if let Err(Refusal(reason)) = result {
            return Err(SwitchoverError::Failed(reason));
        }
        tracing::warn!(from = %event.from, to = ?event.to, took_ms = event.took_ms, forced = force, "promoted a replica on request");
        if self.policy.auto_rejoin {
            match self.rejoin().await {
                Ok(report) => tracing::info!(rejoined = report.rejoined.len(), "replication.auto_rejoin: the old primary follows the new one"),
                Err(err) => tracing::error!(error = %err, "replication.auto_rejoin: cannot rejoin the old primary; it stays fenced"),
            }
        }
        Ok(event)
    }

    async fn promote_managed(&self, managed: Managed) -> Result<(&'static str, String), Refusal> {
        self.promote_managed_to(managed, None).await
    }

    /// Promotes `chosen` (a pool index), or the most caught-up healthy replica.
    async fn promote_managed_to(&self, managed: Managed, chosen: Option<usize>) -> Result<(&'static str, String), Refusal> {
        // An operator naming the replica has accepted what it may miss.
        if chosen.is_none() && self.policy.synchronous && !self.lock_state().protected {
            return Err(Refusal(
                "commits were not waiting for a replica when the primary was last seen, so a replica may miss \
                 acknowledged writes; promote one by hand (`dbagent instance promote`) if that is acceptable"
                    .into(),
            ));
        }
        let replicas = self.pools.replicas();
        let chosen = managed
            .replicas
            .iter()
            .filter(|r| chosen.is_none_or(|c| c == r.pool_index))
            .filter(|r| replicas.get(r.pool_index).is_some_and(|p| p.is_healthy() && !p.is_retired()))
            .max_by_key(|r| replicas[r.pool_index].received_lsn())
            .cloned()
            .ok_or_else(|| Refusal("no healthy managed replica to promote".into()))?;
        promote(&managed.primary.settings, &chosen.cluster, &managed.database)
            .await
            .map_err(|e| Refusal(db::error_chain(&e)))?;
        let config = managed.config_of(&chosen.cluster);
        for other in managed.replicas.iter().filter(|r| r.pool_index != chosen.pool_index) {
            if let Err(err) = follow(&other.cluster, &chosen.cluster.running, &managed.database).await {
                tracing::warn!(data_dir = %other.cluster.settings.data_dir.display(), error = %err, "cannot point a replica at the new primary");
            }
        }
        self.pools.primary().repoint(config);
        replicas[chosen.pool_index].retire();
        let to = self.pools.primary().location();
        let mut guard = self.managed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = guard.as_mut() {
            let old = std::mem::replace(&mut current.primary, Cluster { ..chosen.cluster.clone() });
            current.replicas.retain(|r| r.pool_index != chosen.pool_index);
            tracing::warn!(fenced = %old.settings.data_dir.display(), "the old primary stays fenced until it is re-created as a replica");
        }
        Ok(("promoted", to))
    }

    async fn follow_configured(&self) -> Result<(&'static str, String), Refusal> {
        for replica in self.pools.replicas().iter().filter(|r| !r.is_retired()) {
            let probe = tokio::time::timeout(Duration::from_secs(2), replica.rows("SELECT pg_is_in_recovery()::text")).await;
            let in_recovery = match probe {
                Ok(Ok(rows)) => rows.first().and_then(|r| r.first().cloned().flatten()),
                _ => continue,
            };
            if in_recovery.as_deref() == Some("false") {
                self.pools.primary().repoint(replica.configured().clone());
                replica.retire();
                return Ok(("followed", self.pools.primary().location()));
            }
        }
        Err(Refusal("no configured replica has become a primary (dbagent promotes only servers it manages)".into()))
    }
}
