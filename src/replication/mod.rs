//! Replication: the loop that watches the primary and the replicas, keeps a managed cluster's
//! commits synchronous while a replica is connected, fails over when the primary is gone,
//! switches over on request, and the replication report (`GET /stats/replication`).
//!
//! Invariants:
//! - the pools only ever point at a server that answered `pg_is_in_recovery() = false`
//!   (promoted by us, or found among the configured hosts);
//! - a managed primary that lost its role is fenced before its replica is promoted, so at no
//!   moment can dbagent write to two primaries; a switchover (`switchover.rs`) also stops it
//!   cleanly first and promotes only a replica that replayed its last record, and the fence
//!   of a former primary made a replica lets it start as a standby only;
//! - with `synchronous: true`, a managed replica is promoted automatically only if commits were
//!   waiting for a replica when the primary was last seen, so no acknowledged write is lost.

mod failover;
mod rejoin;
mod report;
mod switchover;
pub mod topology;

pub use failover::{FailoverEvent, PromoteError, promote};
pub use report::{ReplicationReport, StandbyReport};
pub use rejoin::{RejoinReport, Rejoined};
pub use switchover::{SwitchoverError, SwitchoverReport};
pub use topology::{Managed, ManagedReplica};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config;
use crate::db::Pools;

/// How often the servers are checked.
pub const CHECK_EVERY: Duration = Duration::from_secs(1);

/// What `synchronous_standby_names` is set to while a managed replica is connected.
const SYNC_STANDBYS: &str = "ANY 1 (*)";

/// Watches the servers and acts on what it sees. One per agent.
pub struct Supervisor {
    pools: Arc<Pools>,
    policy: config::Replication,
    /// The managed clusters, when dbagent runs them.
    managed: Mutex<Option<Managed>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// When the primary's first unanswered check began.
    down_since: Option<Instant>,
    /// Commits were waiting for a replica at the primary's last successful check.
    protected: bool,
    failing_over: bool,
    /// Failovers done (or refused), newest last.
    events: Vec<FailoverEvent>,
    /// A refusal is logged once per outage, not every second.
    refusal_logged: bool,
}

impl Supervisor {
    pub fn new(pools: Arc<Pools>, policy: config::Replication, managed: Option<Managed>) -> Arc<Supervisor> {
        Arc::new(Supervisor { pools, policy, managed: Mutex::new(managed), state: Mutex::new(State::default()) })
    }

    /// Runs [`Supervisor::tick`] every [`CHECK_EVERY`] until the supervisor is dropped or the
    /// task aborted.
    pub fn spawn(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(CHECK_EVERY).await;
                let Some(supervisor) = weak.upgrade() else { return };
                supervisor.tick().await;
            }
        })
    }

    /// One round: check every server, then keep commits synchronous or fail over.
    pub async fn tick(&self) {
        let began = Instant::now();
        self.pools.check_health().await;
        if self.pools.primary().is_healthy() {
            let protected = self.keep_synchronous().await;
            let mut state = self.lock_state();
            state.down_since = None;
            state.refusal_logged = false;
            // Unknown (the primary stopped answering since its health check): what was known
            // at the last answer stands, or a failover would be withheld for good.
            if let Some(protected) = protected {
                state.protected = protected;
            }
            return;
        }
        let down_for = {
            let mut state = self.lock_state();
            began.saturating_duration_since(*state.down_since.get_or_insert(began)) + began.elapsed()
        };
        if self.policy.failover == config::FailoverMode::Auto && down_for >= self.policy.failover_after() {
            self.fail_over(down_for).await;
        }
    }

    /// The managed clusters as they are now (the primary may have changed by failover).
    pub fn managed(&self) -> Option<Managed> {
        self.managed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn events(&self) -> Vec<FailoverEvent> {
        self.lock_state().events.clone()
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims the one change of topology that may run at a time (failover, switchover,
    /// promotion, rejoin, a new replica); `false` when another holds it. Released with
    /// [`Supervisor::release`].
    fn claim(&self) -> bool {
        let mut state = self.lock_state();
        !std::mem::replace(&mut state.failing_over, true)
    }

    fn release(&self) {
        self.lock_state().failing_over = false;
    }

    /// Managed clusters with replicas and `synchronous: true`: commits wait for one replica
    /// while one is streaming, and stop waiting when none is (a write must not hang because
    /// its replica died). Returns whether commits are protected right now; `None` when the
    /// primary did not answer.
    async fn keep_synchronous(&self) -> Option<bool> {
        let has_replicas = self.managed().is_some_and(|m| !m.replicas.is_empty());
        if !self.policy.synchronous || !has_replicas {
            return Some(false);
        }
        const SQL: &str = "SELECT current_setting('synchronous_standby_names'), \
             (SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming')::text";
        let primary = self.pools.primary();
        let Ok(rows) = primary.rows(SQL).await else { return None };
        let row = rows.first()?;
        let current = row.first().cloned().flatten().unwrap_or_default();
        let streaming: u64 = row.get(1).cloned().flatten().and_then(|n| n.parse().ok()).unwrap_or(0);
        let wanted = if streaming > 0 { SYNC_STANDBYS } else { "" };
        if current == wanted {
            return Some(streaming > 0);
        }
        let set = format!("ALTER SYSTEM SET synchronous_standby_names = {}", crate::db::sql::literal(wanted));
        match primary.rows(&set).await {
            Ok(_) => {
                let _ = primary.rows("SELECT pg_reload_conf()").await;
                if streaming > 0 {
                    tracing::info!("a replica is streaming: commits now wait for it (synchronous replication)");
                } else {
                    tracing::warn!("no replica is streaming: commits no longer wait for one; automatic failover is withheld until one is back");
                }
                // The new setting applies from the reload on; protection starts next round.
                Some(false)
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot change synchronous_standby_names");
                None
            }
        }
    }
}
