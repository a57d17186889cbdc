//! Planned switchover of the managed instance: a chosen replica becomes the primary and the
//! old primary becomes its replica, with no acknowledged write lost (`POST
//! /replication/switchover`, `dbagent instance switchover --to N`).
//!
//! 1. Wait (bounded) until the replica is within [`CATCH_UP_BYTES`] of the primary, so the
//!    pause that follows is short.
//! 2. Pause: new checkouts of the primary pool wait (`Endpoint::pause`) instead of failing.
//! 3. Stop the old primary cleanly (`fast`: open transactions roll back, so nothing they did
//!    was acknowledged). Its last record is the shutdown checkpoint (`pg_controldata`);
//!    PostgreSQL sends its WAL to connected standbys before it exits.
//! 4. Wait (bounded) until the replica has replayed past that checkpoint: it has every
//!    acknowledged commit. If it does not, the old primary is started again as the primary and
//!    the switchover is refused: nothing changed.
//! 5. Fence the old primary (stopped already; the mark keeps it from ever starting as a
//!    primary, even if the agent dies now), promote the replica; its commits stop waiting for
//!    replicas it no longer has.
//! 6. The old primary becomes a replica of the new one (`standby.signal`, `primary_conninfo`,
//!    and a fence marked rejoined: it starts only as a standby from then on) and is started.
//!    It needs no `pg_rewind`: it stopped cleanly at a point the new primary has replayed.
//! 7. The pools are pointed at the new primary, and the replica's pool at the old primary;
//!    the other replicas follow the new primary; the pause ends.
//!
//! The pause (2 to 7) is measured and reported.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::failover::FailoverEvent;
use super::topology::{Cluster, follow, primary_conninfo, release_commits};
use super::{Managed, Supervisor};
use crate::db::{self, Purpose};
use crate::instance;

/// The replica must be this close to the primary before writes are paused.
const CATCH_UP_BYTES: u64 = 16 * 1024 * 1024;
/// How long the replica may take to replay the old primary's last record once it stopped.
const FINAL_CATCH_UP: Duration = Duration::from_secs(30);

/// What a switchover did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SwitchoverReport {
    /// The old primary's data directory (now a replica).
    pub old_primary: std::path::PathBuf,
    /// The promoted replica's data directory (now the primary).
    pub new_primary: std::path::PathBuf,
    /// Where the pools point now.
    pub primary: String,
    /// The old primary's shutdown checkpoint, which the new primary had replayed.
    pub checkpoint_lsn: String,
    /// Waiting for the replica before pausing.
    pub catch_up_ms: u64,
    /// How long new writes waited: from the pause to the pools on the new primary.
    pub pause_ms: u64,
    pub took_ms: u64,
}

/// Why a switchover did not happen (or stopped: `Failed` says in what state).
#[derive(Debug, thiserror::Error)]
pub enum SwitchoverError {
    #[error("switchover is for the managed instance; dbagent does not promote a server it does not run")]
    NotManaged,
    #[error("there is no managed replica {0}; the replicas are numbered from 1 as in /stats/replication")]
    NoSuchReplica(u32),
    #[error("{0}")]
    NotReady(String),
    #[error("a failover or switchover is already in progress")]
    Busy,
    #[error(
        "the primary answers: promoting a replica now would lose the writes it has not received; \
         use POST /replication/switchover (no acknowledged write lost), or pass force: true"
    )]
    PrimaryUp,
    #[error("{0}")]
    Failed(String),
}

impl crate::error::Classify for SwitchoverError {
    fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            SwitchoverError::NotManaged => ErrorKind::BadRequest,
            SwitchoverError::NoSuchReplica(_) => ErrorKind::NotFound,
            SwitchoverError::NotReady(_) | SwitchoverError::Busy | SwitchoverError::Failed(_) | SwitchoverError::PrimaryUp => ErrorKind::Conflict,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            SwitchoverError::NotManaged => "not_managed",
            SwitchoverError::NoSuchReplica(_) => "replica_not_found",
            SwitchoverError::NotReady(_) => "replica_not_ready",
            SwitchoverError::Busy => "failover_in_progress",
            SwitchoverError::Failed(_) => "switchover_failed",
            SwitchoverError::PrimaryUp => "primary_available",
        }
    }
}

impl Supervisor {
    /// Switches the primary to managed replica `to` (1-based pool order); see the module
    /// documentation. `timeout` bounds the wait for the replica before the pause.
    pub async fn switchover(&self, to: u32, timeout: Duration) -> Result<SwitchoverReport, SwitchoverError> {
        if !self.claim() {
            return Err(SwitchoverError::Busy);
        }
        let started = Instant::now();
        let from = self.pools.primary().location();
        let outcome = self.switch(to, timeout, started).await;
        let mut state = self.lock_state();
        state.failing_over = false;
        state.down_since = None;
        let (kind, to_location, detail) = match &outcome {
            Ok(report) => ("switchover", Some(report.primary.clone()), format!("pause {} ms", report.pause_ms)),
            // A request naming no replica changed nothing and is not an event.
            Err(SwitchoverError::NotManaged | SwitchoverError::NoSuchReplica(_)) => return outcome,
            Err(err) => ("switchover_refused", None, err.to_string()),
        };
        state.events.push(FailoverEvent {
            at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            outcome: kind,
            from,
            to: to_location,
            primary_down_ms: 0,
            took_ms: started.elapsed().as_millis() as u64,
            detail,
        });
        outcome
    }

    async fn switch(&self, to: u32, timeout: Duration, started: Instant) -> Result<SwitchoverReport, SwitchoverError> {
        let managed = self.managed().ok_or(SwitchoverError::NotManaged)?;
        // Fresh checks (a CLI agent has just started, and has not checked yet).
        self.pools.check_health().await;
        let chosen = managed
            .replicas
            .iter()
            .find(|r| r.pool_index + 1 == to as usize)
            .cloned()
            .ok_or(SwitchoverError::NoSuchReplica(to))?;
        let replica_pool = &self.pools.replicas()[chosen.pool_index];
        if !replica_pool.is_healthy() {
            return Err(SwitchoverError::NotReady(format!("replica {to} is not streaming (see /stats/replication)")));
        }
        let old = managed.primary.clone();
        let primary_db = managed.config_of(&old);
        let replica_db = managed.config_of(&chosen.cluster);

        // 1. Close enough to pause for a moment only.
        let deadline = Instant::now() + timeout;
        loop {
            let primary_lsn = lsn(&primary_db, "SELECT pg_current_wal_lsn()::text").await.map_err(SwitchoverError::NotReady)?;
            let replayed = lsn(&replica_db, "SELECT pg_last_wal_replay_lsn()::text").await.map_err(SwitchoverError::NotReady)?;
            if primary_lsn.saturating_sub(replayed) <= CATCH_UP_BYTES {
                break;
            }
            if Instant::now() >= deadline {
                return Err(SwitchoverError::NotReady(format!(
                    "replica {to} is {} bytes behind after {} s; try again when it has caught up",
                    primary_lsn.saturating_sub(replayed),
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let catch_up_ms = started.elapsed().as_millis() as u64;

        // 2.–4. Pause, stop the old primary, wait for its last record on the replica.
        let paused = Instant::now();
        let primary_pool = self.pools.primary();
        primary_pool.pause();
        let old_settings = old.settings.clone();
        let resume_on_failure = |reason: String| async move {
            if let Err(err) = instance::start(&old_settings).await {
                tracing::error!(error = %db::error_chain(&err), "cannot start the old primary again after a refused switchover");
            }
            self.pools.primary().resume();
            SwitchoverError::Failed(format!("{reason}; the old primary was started again and nothing changed"))
        };
        if let Err(err) = instance::stop(&old.settings, instance::StopMode::Fast).await {
            return Err(resume_on_failure(format!("cannot stop the old primary: {}", db::error_chain(&err))).await);
        }
        let checkpoint = match instance::checkpoint_lsn(&old.settings).await {
            Ok(lsn) => lsn,
            Err(err) => return Err(resume_on_failure(db::error_chain(&err)).await),
        };
        let final_deadline = Instant::now() + FINAL_CATCH_UP;
        loop {
            match lsn(&replica_db, "SELECT pg_last_wal_replay_lsn()::text").await {
                Ok(replayed) if replayed > checkpoint => break,
                _ if Instant::now() >= final_deadline => {
                    return Err(resume_on_failure(format!(
                        "replica {to} did not replay the old primary's last record ({}) within {} s",
                        db::Lsn(checkpoint),
                        FINAL_CATCH_UP.as_secs()
                    ))
                    .await);
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }

        // 5. Fence, then promote: from here the old primary never runs as a primary again,
        //    even if this agent dies before step 6.
        let promoted = &chosen.cluster;
        if let Err(err) = instance::fence(&old.settings, &promoted.settings.data_dir).await {
            return Err(resume_on_failure(format!("cannot fence the old primary: {}", db::error_chain(&err))).await);
        }
        if let Err(err) = instance::promote(&promoted.settings).await {
            primary_pool.resume();
            return Err(SwitchoverError::Failed(format!(
                "cannot promote replica {to} ({}); the old primary is stopped and fenced — promote the replica \
                 by hand (`dbagent instance promote --replica {to}`): {}",
                promoted.settings.data_dir.display(),
                db::error_chain(&err)
            )));
        }
        if let Err(err) = release_commits(&promoted.running, &managed.database).await {
            tracing::error!(error = %err, "cannot reset synchronous_standby_names on the promoted replica; commits may wait");
        }
        if instance::fenced(&promoted.settings.data_dir).ok().flatten().is_some() {
            // A former primary rejoined earlier, primary again now.
            if let Err(err) = instance::unfence(&promoted.settings.data_dir) {
                tracing::error!(error = %db::error_chain(&err), "cannot remove the fence of the promoted replica");
            }
        }

        // 6. The old primary follows the new one.
        let old_running = instance::make_standby(&old.settings, &promoted.settings.data_dir, &primary_conninfo(&promoted.running))
            .map_err(|e| db::error_chain(&e));
        let old_running = match old_running {
            Ok(()) => instance::start(&old.settings).await.map_err(|e| db::error_chain(&e)),
            Err(err) => Err(err),
        };

        // 7. The pools, the other replicas, the topology.
        primary_pool.repoint(managed.config_of(promoted));
        for other in managed.replicas.iter().filter(|r| r.pool_index != chosen.pool_index) {
            if let Err(err) = follow(&other.cluster, &promoted.running, &managed.database).await {
                tracing::warn!(data_dir = %other.cluster.settings.data_dir.display(), error = %err, "cannot point a replica at the new primary");
            }
        }
        primary_pool.resume();
        let pause_ms = paused.elapsed().as_millis() as u64;
        let mut guard = self.managed.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = guard.as_mut() {
            current.primary = promoted.clone();
            match &old_running {
                Ok(running) => {
                    let rejoined = Cluster { settings: old.settings.clone(), running: running.clone() };
                    replica_pool.repoint(Managed::config_for(&rejoined, &current.database));
                    replica_pool.reinstate();
                    if let Some(slot) = current.replicas.iter_mut().find(|r| r.pool_index == chosen.pool_index) {
                        slot.cluster = rejoined;
                    }
                }
                Err(_) => {
                    replica_pool.retire();
                    current.replicas.retain(|r| r.pool_index != chosen.pool_index);
                }
            }
        }
        drop(guard);
        if let Err(err) = &old_running {
            return Err(SwitchoverError::Failed(format!(
                "replica {to} is the primary now (writes go there), but the old primary could not be started as its replica: {err}"
            )));
        }
        tracing::warn!(old = %old.settings.data_dir.display(), new = %promoted.settings.data_dir.display(), pause_ms, "switchover done");
        Ok(SwitchoverReport {
            old_primary: old.settings.data_dir.clone(),
            new_primary: promoted.settings.data_dir.clone(),
            primary: primary_pool.location(),
            checkpoint_lsn: db::Lsn(checkpoint).to_string(),
            catch_up_ms,
            pause_ms,
            took_ms: started.elapsed().as_millis() as u64,
        })
    }
}

/// One WAL position read on a dedicated connection.
async fn lsn(config: &db::PgConfig, sql: &str) -> Result<u64, String> {
    let client = db::admin::connect(config, Purpose::Replication).await.map_err(|e| db::error_chain(&e))?;
    let row = client.query_one(sql, &[]).await.map_err(|e| db::error_chain(&e))?;
    let text: Option<String> = row.get(0);
    text.as_deref().and_then(crate::backup::wal::parse_lsn).ok_or_else(|| format!("no WAL position from {sql}"))
}
