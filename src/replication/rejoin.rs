//! Rejoin after a failover: a managed cluster fenced by a failover (stopped at once, perhaps
//! with WAL its successor never got) is rewound with `pg_rewind` onto the new primary's history
//! and started as its replica, in the read pool the promoted replica left (`POST
//! /replication/rejoin`, `dbagent instance rejoin`, and after every failover with
//! `replication.auto_rejoin`). Instead of being left fenced for a human to re-create.
//!
//! The clusters considered are the configured primary's directory and the replica
//! directories `1..=replication.replicas`: each fenced one that is not rejoined yet. What the
//! old primary had written after the split and the new primary never received is discarded by
//! the rewind (with synchronous replication, nothing that was acknowledged).

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::switchover::SwitchoverError;
use super::topology::{Cluster, ManagedReplica, primary_conninfo, replica_settings};
use super::{Managed, Supervisor};
use crate::db;
use crate::instance;

/// What a rejoin did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RejoinReport {
    /// The primary the rejoined clusters follow.
    pub primary: PathBuf,
    pub rejoined: Vec<Rejoined>,
}

/// One former primary, now a replica.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Rejoined {
    pub data_dir: PathBuf,
    /// Its place among the replicas, from 1 (as in `/stats/replication`); null when no read
    /// pool was free for it (it replicates, but serves no reads until the agent restarts).
    pub replica: Option<usize>,
    pub port: u16,
    /// The rewind, the start and the pool.
    pub took_ms: u64,
}

impl Supervisor {
    /// Rejoins every fenced managed cluster (see the module documentation). Nothing to rejoin
    /// is not an error: the report lists none.
    pub async fn rejoin(&self) -> Result<RejoinReport, SwitchoverError> {
        if !self.claim() {
            return Err(SwitchoverError::Busy);
        }
        let outcome = self.rejoin_fenced().await;
        self.release();
        outcome
    }

    async fn rejoin_fenced(&self) -> Result<RejoinReport, SwitchoverError> {
        let managed = self.managed().ok_or(SwitchoverError::NotManaged)?;
        let primary = managed.primary.clone();
        let conninfo = primary_conninfo(&primary.running);
        let serving: Vec<PathBuf> = std::iter::once(primary.settings.data_dir.clone())
            .chain(managed.replicas.iter().map(|r| r.cluster.settings.data_dir.clone()))
            .collect();
        let candidates = std::iter::once(managed.configured.clone())
            .chain((1..=managed.slots).map(|n| replica_settings(&managed.configured, n)))
            .filter(|s| !serving.contains(&s.data_dir));
        let mut rejoined = Vec::new();
        let mut checkpointed = false;
        for settings in candidates {
            let fence = instance::fenced(&settings.data_dir).map_err(|e| SwitchoverError::Failed(db::error_chain(&e)))?;
            if fence.is_none_or(|f| f.rejoined_at.is_some()) {
                continue;
            }
            let started = Instant::now();
            let failed = |what: &str, err: instance::Error| {
                SwitchoverError::Failed(format!("cannot {what} {}: {}", settings.data_dir.display(), db::error_chain(&err)))
            };
            // The fence's stop was immediate, or the server may still run (fenced but not
            // stopped): stopped first, bounded.
            instance::stop(&settings, instance::StopMode::Fast).await.map_err(|e| failed("stop", e))?;
            // pg_rewind reads the source's timeline from its control file, which a just
            // promoted server updates only at its first checkpoint: without one, it would see
            // both on the old timeline and rewind nothing.
            if !checkpointed {
                let source = Managed::config_for(&primary, "postgres");
                db::admin::execute(&source, db::Purpose::Replication, &["CHECKPOINT"])
                    .await
                    .map_err(|e| SwitchoverError::Failed(format!("cannot checkpoint the primary before pg_rewind: {e}")))?;
                checkpointed = true;
            }
            instance::rewind(&settings, &primary.running, &conninfo).await.map_err(|e| {
                SwitchoverError::Failed(format!(
                    "cannot rewind {}: {} (when its WAL back to the last checkpoint before the split is gone, \
                     past wal_keep_size, re-create it as a replica: remove the directory and start the agent)",
                    settings.data_dir.display(),
                    db::error_chain(&e)
                ))
            })?;
            instance::make_standby(&settings, &primary.settings.data_dir, &conninfo).map_err(|e| failed("mark as a replica", e))?;
            let running = instance::start(&settings).await.map_err(|e| failed("start", e))?;
            let cluster = Cluster { settings: settings.clone(), running: running.clone() };
            let replica = self.take_free_pool(&cluster, &managed);
            tracing::warn!(data_dir = %settings.data_dir.display(), port = running.port, "rejoined the former primary as a replica");
            rejoined.push(Rejoined { data_dir: settings.data_dir.clone(), replica: replica.map(|i| i + 1), port: running.port, took_ms: started.elapsed().as_millis() as u64 });
        }
        Ok(RejoinReport { primary: primary.settings.data_dir, rejoined })
    }

    /// Creates a managed replica (`POST /replication/replicas`) in a read pool no replica uses
    /// (the one a promoted replica left), with `pg_basebackup` from the primary into a replica
    /// directory that holds no cluster, and starts it there: a replica whose old primary could
    /// not be rewound (its directory removed), or a lost replica, comes back without a restart.
    /// Refused, creating nothing, when every pool is in use or no directory is free.
    pub async fn add_replica(&self) -> Result<Rejoined, SwitchoverError> {
        if !self.claim() {
            return Err(SwitchoverError::Busy);
        }
        let outcome = self.create_in_free_pool().await;
        self.release();
        outcome
    }

    async fn create_in_free_pool(&self) -> Result<Rejoined, SwitchoverError> {
        let managed = self.managed().ok_or(SwitchoverError::NotManaged)?;
        let used: Vec<usize> = managed.replicas.iter().map(|r| r.pool_index).collect();
        let pools = self.pools.replicas();
        if !(0..pools.len().min(managed.slots as usize)).any(|i| !used.contains(&i) && pools[i].is_retired()) {
            return Err(SwitchoverError::NotReady(format!(
                "every managed read pool is in use (replication.replicas: {}): raise it and restart the agent to add a replica",
                managed.slots
            )));
        }
        let serving: Vec<PathBuf> = std::iter::once(managed.primary.settings.data_dir.clone())
            .chain(managed.replicas.iter().map(|r| r.cluster.settings.data_dir.clone()))
            .collect();
        let settings = std::iter::once(managed.configured.clone())
            .chain((1..=managed.slots).map(|n| replica_settings(&managed.configured, n)))
            .find(|s| !serving.contains(&s.data_dir) && !s.data_dir.join("PG_VERSION").exists())
            .ok_or_else(|| {
                SwitchoverError::NotReady(
                    "no free replica directory: a fenced former primary holds it; POST /replication/rejoin makes it a replica \
                     (or, when it cannot be rewound, remove its directory and try again)"
                        .into(),
                )
            })?;
        let started = Instant::now();
        let failed = |what: &str, err: instance::Error| SwitchoverError::Failed(format!("cannot {what} {}: {}", settings.data_dir.display(), db::error_chain(&err)));
        let primary = managed.primary.clone();
        let mut running = instance::create_replica(&primary.running, &settings).await.map_err(|e| failed("create a replica in", e))?;
        if settings.data_dir == managed.configured.data_dir {
            // The configured primary's own directory: fenced as a replica of the primary, or
            // the next start would take it for the primary.
            instance::stop(&settings, instance::StopMode::Fast).await.map_err(|e| failed("stop", e))?;
            instance::make_standby(&settings, &primary.settings.data_dir, &primary_conninfo(&primary.running)).map_err(|e| failed("mark as a replica", e))?;
            running = instance::start(&settings).await.map_err(|e| failed("start", e))?;
        }
        let cluster = Cluster { settings: settings.clone(), running: running.clone() };
        let replica = self.take_free_pool(&cluster, &managed);
        tracing::warn!(data_dir = %settings.data_dir.display(), port = running.port, replica = ?replica.map(|i| i + 1), "created a replica in a free read pool");
        Ok(Rejoined { data_dir: settings.data_dir.clone(), replica: replica.map(|i| i + 1), port: running.port, took_ms: started.elapsed().as_millis() as u64 })
    }

    /// Puts `cluster` in a read pool no managed replica uses (the promoted replica's), and in
    /// the topology; its index.
    fn take_free_pool(&self, cluster: &Cluster, managed: &Managed) -> Option<usize> {
        let mut guard = self.managed.lock().unwrap_or_else(|p| p.into_inner());
        let current = guard.as_mut()?;
        let used: Vec<usize> = current.replicas.iter().map(|r| r.pool_index).collect();
        let pools = self.pools.replicas();
        // Only the managed replicas' pools (they come first); configured replicas keep theirs.
        let index = (0..pools.len().min(managed.slots as usize)).find(|i| !used.contains(i) && pools[*i].is_retired())?;
        pools[index].repoint(Managed::config_for(cluster, &current.database));
        pools[index].reinstate();
        current.replicas.push(ManagedReplica { pool_index: index, cluster: cluster.clone() });
        current.replicas.sort_by_key(|r| r.pool_index);
        Some(index)
    }
}
