//! How fresh the WAL archive is: where its files come from, the measured RPO, and the
//! `pg_receivewal` stream's state, shared by the watcher task (`stream::run`) and the
//! handlers that report it (`/health`, `/backups/status`, `/metrics`, the alerts).
//!
//! Once a second the server's WAL position and what is safe in the archive (the stream's
//! written position, its flushed one with `synchronous`; the end of the last archived segment
//! with `archive_command`) feed the RPO tracker (`rpo.rs`), and the streaming slot's lag is
//! read.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use super::rpo::RpoTracker;
use super::stream::STREAM_DIR;
use super::wal::{self, WalFile};
use super::{Settings, WalSource};
use crate::db::{Lsn, Pools, Purpose};

/// How often the WAL positions are read.
pub(super) const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// How WAL reaches the archive, and how safe it is: shared by the watcher task and the
/// handlers that report it.
#[derive(Default)]
pub struct WalWatch {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    rpo: RpoTracker,
    stream: Option<StreamStatus>,
}

/// `pg_receivewal` as supervised (`backup.wal_stream`).
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct StreamStatus {
    /// `pg_receivewal` is running.
    pub running: bool,
    pub slot: String,
    pub synchronous: bool,
    /// When the current run started.
    pub started_at: Option<DateTime<Utc>>,
    /// Runs after the first (each after an exit or failure).
    pub restarts: u64,
    /// Why the last run ended, or why it could not start.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Segments this agent moved into the archive.
    pub segments_archived: u64,
    pub last_segment: Option<String>,
    /// The server's WAL position at the last sample.
    pub server_lsn: Option<String>,
    /// What `pg_receivewal` has written (flushed, with `synchronous`), as the server sees it.
    pub received_lsn: Option<String>,
    /// WAL the slot keeps on the server (`pg_current_wal_lsn() - restart_lsn`).
    pub slot_lag_bytes: Option<i64>,
    /// The slot's `wal_status`: `reserved`, `extended`, `unreserved` or `lost`.
    pub slot_wal_status: Option<String>,
    /// The server's `max_slot_wal_keep_size` (`-1`: unlimited).
    pub max_slot_wal_keep_size: Option<String>,
    /// What an operator should know (an unlimited slot, WAL lost and the slot made again).
    pub warnings: Vec<String>,
}

/// What `/health`, `backup status` and the alerts show of the WAL archive's freshness.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WalFreshness {
    /// `archive_command` (the managed instance) or `pg_receivewal` (a server dbagent does not
    /// run).
    pub source: &'static str,
    /// The measured recovery point objective: seconds since everything the server had
    /// written was last safe in the archive (0 when nothing is pending). Null before the first
    /// sample.
    pub rpo_seconds: Option<f64>,
    /// How `rpo_seconds` was measured: `tracked` (a serving agent compares the server's WAL
    /// position with the archive's once a second) or `newest_file` (`dbagent backup status`,
    /// which reads no database: the age of the newest WAL written into the archive, an upper
    /// bound that also grows while the server writes nothing).
    pub rpo_basis: &'static str,
    /// `backup.rpo_target` in seconds.
    pub rpo_target_seconds: f64,
    pub rpo_exceeded: bool,
    /// Streaming, when it is the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamStatus>,
}

impl WalWatch {
    /// What is known now, for `settings` (whose `pitr` is on).
    pub fn freshness(&self, settings: &Settings) -> Option<WalFreshness> {
        let pitr = settings.pitr.as_ref()?;
        let state = self.state.lock().expect("not poisoned");
        let rpo_seconds = state.rpo.seconds(Utc::now());
        let target = pitr.rpo_target.as_secs_f64();
        Some(WalFreshness {
            source: pitr.source.name(),
            rpo_seconds,
            rpo_basis: "tracked",
            rpo_target_seconds: target,
            rpo_exceeded: rpo_seconds.is_some_and(|s| s > target),
            stream: state.stream.clone(),
        })
    }

    /// What the files alone tell (no agent, no database): the age of the newest WAL in the
    /// archive or in `pg_receivewal`'s directory.
    pub fn freshness_offline(settings: &Settings) -> Option<WalFreshness> {
        let pitr = settings.pitr.as_ref()?;
        let archive = super::window::archive_dir(&super::location::root(settings).ok()?);
        let archived = wal::list(&archive).ok().and_then(|files| files.into_values().map(|a| a.archived_at).max());
        let streamed = std::fs::read_dir(archive.join(STREAM_DIR))
            .ok()
            .and_then(|entries| entries.flatten().filter_map(|e| e.metadata().ok()?.modified().ok()).max())
            .map(DateTime::<Utc>::from);
        let newest = archived.max(streamed);
        let rpo_seconds = newest.map(|t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
        let target = pitr.rpo_target.as_secs_f64();
        Some(WalFreshness {
            source: pitr.source.name(),
            rpo_seconds,
            rpo_basis: "newest_file",
            rpo_target_seconds: target,
            rpo_exceeded: rpo_seconds.is_some_and(|s| s > target),
            stream: None,
        })
    }

    pub(super) fn update_stream(&self, change: impl FnOnce(&mut StreamStatus)) {
        let mut state = self.state.lock().expect("not poisoned");
        change(state.stream.get_or_insert_with(StreamStatus::default));
    }

    fn observe(&self, at: DateTime<Utc>, server: u64, safe: Option<u64>) {
        self.state.lock().expect("not poisoned").rpo.observe(at, server, safe);
    }
}

/// Reads the server's WAL position and the archive's safe position once a second.
pub(super) async fn sample(watch: Arc<WalWatch>, pools: Arc<Pools>, source: WalSource, archive: PathBuf, mut stop: watch::Receiver<()>) {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = crate::db::admin::connect(&pools.admin_config(), Purpose::Monitor).await.ok();
        }
        let Some(db) = &client else { continue };
        let read = tokio::time::timeout(Duration::from_secs(5), read_positions(db, &source, &archive)).await;
        match read {
            Ok(Ok(positions)) => {
                watch.observe(Utc::now(), positions.server, positions.safe);
                if let Some(slot) = positions.slot {
                    watch.update_stream(|s| {
                        s.server_lsn = Some(Lsn(positions.server).to_string());
                        s.received_lsn = slot.received.map(|l| Lsn(l).to_string());
                        s.slot_lag_bytes = slot.lag_bytes;
                        s.slot_wal_status = slot.wal_status;
                        s.max_slot_wal_keep_size = Some(slot.max_keep.clone());
                        let unlimited = "max_slot_wal_keep_size is -1 (unlimited): while the stream is down the slot keeps \
                                         every WAL segment on the server until its disk is full; set a limit the disk can hold";
                        s.warnings.retain(|w| w != unlimited);
                        if slot.max_keep == "-1" {
                            s.warnings.push(unlimited.to_owned());
                        }
                    });
                }
            }
            Ok(Err(err)) => {
                tracing::debug!(error = %crate::db::error_chain(&err), "cannot read the WAL positions");
                client = None;
            }
            Err(_) => client = None,
        }
    }
}

struct Positions {
    server: u64,
    safe: Option<u64>,
    slot: Option<SlotReading>,
}

struct SlotReading {
    received: Option<u64>,
    lag_bytes: Option<i64>,
    wal_status: Option<String>,
    max_keep: String,
}

async fn read_positions(db: &tokio_postgres::Client, source: &WalSource, archive: &Path) -> Result<Positions, tokio_postgres::Error> {
    const SERVER: &str = "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END";
    match source {
        WalSource::ArchiveCommand => {
            let row = db
                .query_one(
                    &format!(
                        "SELECT ({SERVER})::text AS server, a.last_archived_wal,
                                (SELECT setting::int8 * CASE unit WHEN '8kB' THEN 8192 WHEN 'MB' THEN 1048576 ELSE 1 END
                                   FROM pg_settings WHERE name = 'wal_segment_size') AS segment_size
                           FROM pg_stat_archiver a"
                    ),
                    &[],
                )
                .await?;
            let server = row.get::<_, Option<String>>("server").and_then(|t| wal::parse_lsn(&t)).unwrap_or(0);
            let size = row.get::<_, Option<i64>>("segment_size").filter(|s| *s > 0).map_or(wal::DEFAULT_SEGMENT_SIZE, |s| s as u64);
            // The end of the last archived segment is safe (what the archive holds, not only
            // what the server says it archived: the sidecar is the truth).
            let safe = row.get::<_, Option<String>>("last_archived_wal").and_then(|name| match WalFile::parse(&name) {
                Some(WalFile::Segment { log, seg, .. }) if archive.join(format!("{name}.json")).exists() => {
                    Some((wal::segment_number(log, seg, size) + 1) * size)
                }
                _ => None,
            });
            Ok(Positions { server, safe, slot: None })
        }
        WalSource::Stream(stream) => {
            let row = db
                .query_one(
                    &format!(
                        "SELECT ({SERVER})::text AS server,
                                CASE WHEN $2 THEN r.flush_lsn ELSE r.write_lsn END::text AS received,
                                CASE WHEN pg_is_in_recovery() THEN NULL
                                     ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), s.restart_lsn)::int8 END AS lag_bytes,
                                s.wal_status,
                                current_setting('max_slot_wal_keep_size') AS max_keep
                           FROM (SELECT 1) AS one
                           LEFT JOIN pg_replication_slots s ON s.slot_name = $1
                           LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid"
                    ),
                    &[&stream.slot, &stream.synchronous],
                )
                .await?;
            let server = row.get::<_, Option<String>>("server").and_then(|t| wal::parse_lsn(&t)).unwrap_or(0);
            let received = row.get::<_, Option<String>>("received").and_then(|t| wal::parse_lsn(&t));
            let slot = SlotReading {
                received,
                lag_bytes: row.get("lag_bytes"),
                wal_status: row.get("wal_status"),
                max_keep: row.get("max_keep"),
            };
            Ok(Positions { server, safe: received, slot: Some(slot) })
        }
    }
}
