//! WAL for point-in-time recovery of a server dbagent does not run: `pg_receivewal` streams
//! through a physical replication slot into `<location>/wal/streaming/`, and every completed
//! segment is stored in the archive exactly as `dbagent wal push` stores what the managed
//! instance's `archive_command` hands over (`wal.rs`: zstd, SHA-256 sidecar, never
//! overwritten), so one recovery path (`pitr.rs`, `window.rs`) serves both. This is Barman's
//! streaming mode, supervised here.
//!
//! - The slot is created when missing (`pg_create_physical_replication_slot(slot, true)`,
//!   which reserves WAL at once): while dbagent is down the server keeps every segment it has
//!   not received, up to `max_slot_wal_keep_size`. A slot the server invalidated (`wal_status =
//!   'lost'`) is dropped and made again, with the loss reported: the archive then has a gap
//!   that `backup status` shows, and a new base backup starts a new window.
//! - `pg_receivewal` runs as a child (`--no-loop`: it exits when the connection goes) and is
//!   restarted with backoff (1 s doubling to 60 s; back to 1 s after a minute of running). It
//!   resumes from the newest segment in its directory, so the newest completed segment is kept
//!   there after it is archived; older ones are removed once archived.
//! - The segment being written (`<name>.partial`) is served by `dbagent wal fetch` when the
//!   archive does not hold that segment yet (`wal.rs`), so a recovery reaches the last WAL
//!   received, not the last completed segment.
//! - Once a second the server's WAL position and what is safe (the stream's written position,
//!   its flushed one with `synchronous`; the end of the last archived segment with
//!   `archive_command`) feed the RPO tracker (`rpo.rs`), and the slot's lag is read.
//!
//! As root, `pg_receivewal` runs as the server's OS user (as the managed instance's
//! `archive_command` does) so that a recovering server, which runs as that user, can read what
//! it wrote.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use super::rpo::RpoTracker;
use super::tools::{self, Pipes, Target, Tool};
use super::wal::{self, WalFile};
use super::{Error, Settings, WalSource, threads};
use crate::db::{Pools, Purpose};
use crate::instance::ServerUser;

/// The directory `pg_receivewal` writes into, inside the archive.
pub const STREAM_DIR: &str = "streaming";
/// `pg_receivewal`'s `application_name`: what `pg_stat_replication` shows and what
/// `synchronous_standby_names` can list.
pub const APPLICATION_NAME: &str = "dbagent_wal";
/// How often the WAL positions are read.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A run this long resets the backoff.
const STEADY_RUN: Duration = Duration::from_secs(60);

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
            source: match pitr.source {
                WalSource::ArchiveCommand => "archive_command",
                WalSource::Stream(_) => "pg_receivewal",
            },
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
            source: match pitr.source {
                WalSource::ArchiveCommand => "archive_command",
                WalSource::Stream(_) => "pg_receivewal",
            },
            rpo_seconds,
            rpo_basis: "newest_file",
            rpo_target_seconds: target,
            rpo_exceeded: rpo_seconds.is_some_and(|s| s > target),
            stream: None,
        })
    }

    fn update_stream(&self, change: impl FnOnce(&mut StreamStatus)) {
        let mut state = self.state.lock().expect("not poisoned");
        change(state.stream.get_or_insert_with(StreamStatus::default));
    }

    fn observe(&self, at: DateTime<Utc>, server: u64, safe: Option<u64>) {
        self.state.lock().expect("not poisoned").rpo.observe(at, server, safe);
    }
}

/// Watches the archive's freshness and, when the source is streaming, runs `pg_receivewal`,
/// until `stop` changes or is dropped. Does nothing when `settings.pitr` is off.
pub async fn run(watch: Arc<WalWatch>, pools: Arc<Pools>, settings: Arc<Settings>, stop: watch::Receiver<()>) {
    let Some(pitr) = settings.pitr.clone() else { return };
    let root = match super::location::root(&settings) {
        Ok(root) => root,
        Err(err) => {
            tracing::error!(error = %err, "the WAL archive cannot be watched: its location is unusable");
            return;
        }
    };
    let archive = super::window::archive_dir(&root);
    let sampler = sample(watch.clone(), pools.clone(), pitr.source.clone(), archive.clone(), stop.clone());
    match pitr.source {
        WalSource::ArchiveCommand => sampler.await,
        WalSource::Stream(stream) => {
            let receiver = Receiver { watch, pools, settings: settings.clone(), archive, stream };
            tokio::join!(sampler, receiver.supervise(stop));
        }
    }
}

/// Reads the server's WAL position and the archive's safe position once a second.
async fn sample(watch: Arc<WalWatch>, pools: Arc<Pools>, source: WalSource, archive: PathBuf, mut stop: watch::Receiver<()>) {
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
                        s.server_lsn = Some(format_lsn(positions.server));
                        s.received_lsn = slot.received.map(format_lsn);
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

/// `X/Y`, as PostgreSQL writes a WAL position.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Runs and restarts `pg_receivewal`.
struct Receiver {
    watch: Arc<WalWatch>,
    pools: Arc<Pools>,
    settings: Arc<Settings>,
    archive: PathBuf,
    stream: crate::config::WalStream,
}

/// How a run of `pg_receivewal` ended.
enum Ended {
    Stopped,
    Failed(String),
}

impl Receiver {
    async fn supervise(self, mut stop: watch::Receiver<()>) {
        self.watch.update_stream(|s| {
            s.slot = self.stream.slot.clone();
            s.synchronous = self.stream.synchronous;
        });
        let mut backoff = BACKOFF_FIRST;
        let mut first = true;
        loop {
            if !first {
                self.watch.update_stream(|s| s.restarts += 1);
            }
            first = false;
            let started = Instant::now();
            let ended = self.run_once(&mut stop).await;
            self.watch.update_stream(|s| s.running = false);
            let reason = match ended {
                Ended::Stopped => break,
                Ended::Failed(reason) => reason,
            };
            tracing::warn!(slot = %self.stream.slot, error = %reason, retry_in_s = backoff.as_secs(), "WAL streaming stopped");
            self.watch.update_stream(|s| {
                s.last_error = Some(reason);
                s.last_error_at = Some(Utc::now());
            });
            if started.elapsed() >= STEADY_RUN {
                backoff = BACKOFF_FIRST;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => break,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
        // What was completed before the stop still goes into the archive.
        let mut shipped = BTreeSet::new();
        if let Err(err) = self.ship(&mut shipped).await {
            tracing::warn!(error = %err, "cannot archive the last streamed segments");
        }
    }

    /// Prepares the slot and the directory, then runs `pg_receivewal` until it exits or `stop`.
    async fn run_once(&self, stop: &mut watch::Receiver<()>) -> Ended {
        let prepared = self.prepare().await;
        let (tools, dir, user) = match prepared {
            Ok(ready) => ready,
            Err(err) => return Ended::Failed(err),
        };
        let mut args: Vec<OsString> = vec![
            format!("--directory={}", dir.display()).into(),
            format!("--slot={}", self.stream.slot).into(),
            "--no-loop".into(),
            "--status-interval=1".into(),
            "--verbose".into(),
        ];
        if self.stream.synchronous {
            args.push("--synchronous".into());
        }
        let config = self.pools.admin_config();
        let target = Target::new(&config, config.get_dbname().unwrap_or("postgres")).named(APPLICATION_NAME);
        let child = match tools::spawn_as(&tools, Tool::PgReceivewal, &args, &target, Pipes { stdin: false, stdout: false }, &user) {
            Ok(child) => child,
            Err(err) => return Ended::Failed(err.to_string()),
        };
        tracing::info!(slot = %self.stream.slot, dir = %dir.display(), "WAL streaming started (pg_receivewal)");
        self.watch.update_stream(|s| {
            s.running = true;
            s.started_at = Some(Utc::now());
        });
        let exited = child.wait_with_stderr();
        tokio::pin!(exited);
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        let mut shipped = BTreeSet::new();
        loop {
            tokio::select! {
                outcome = &mut exited => {
                    let _ = self.ship(&mut shipped).await;
                    return Ended::Failed(match outcome {
                        Ok(stderr) => format!("pg_receivewal exited: {}", last_line(&stderr)),
                        Err(err) => err.to_string(),
                    });
                }
                _ = tick.tick() => {
                    if let Err(err) = self.ship(&mut shipped).await {
                        // The archive cannot be written (a full disk, say): pg_receivewal goes
                        // on receiving; the RPO shows what is at stake.
                        tracing::warn!(error = %err, "cannot archive a streamed segment");
                        self.watch.update_stream(|s| {
                            s.last_error = Some(format!("archiving a streamed segment: {err}"));
                            s.last_error_at = Some(Utc::now());
                        });
                    }
                }
                _ = stop.changed() => return Ended::Stopped,
            }
        }
    }

    /// The tools, the streaming directory, and the slot, made ready; a message for the
    /// operator when something is missing.
    async fn prepare(&self) -> Result<(tools::Tools, PathBuf, ServerUser), String> {
        let config = self.pools.admin_config();
        let db = crate::db::admin::connect(&config, Purpose::Backup).await.map_err(|e| crate::db::error_chain(&e))?;
        let row = db
            .query_one(
                "SELECT current_setting('server_version_num')::int4 AS version,
                        r.rolreplication OR r.rolsuper AS may_replicate, current_user::text AS who,
                        s.wal_status, s.active
                   FROM pg_roles r LEFT JOIN pg_replication_slots s ON s.slot_name = $1
                  WHERE r.rolname = current_user",
                &[&self.stream.slot],
            )
            .await
            .map_err(|e| crate::db::error_chain(&e))?;
        let who: String = row.get("who");
        if !row.get::<_, bool>("may_replicate") {
            return Err(format!(
                "the role {who} may not stream WAL: give it the REPLICATION attribute (ALTER ROLE {who} REPLICATION) \
                 and allow it a replication connection in pg_hba.conf"
            ));
        }
        let slot = &self.stream.slot;
        let dir = self.archive.join(STREAM_DIR);
        let user = ServerUser::resolve().map_err(|e| crate::db::error_chain(&e))?;
        make_private_dir(&self.archive, &user)?;
        make_private_dir(&dir, &user)?;
        match row.get::<_, Option<String>>("wal_status").as_deref() {
            None => {
                db.execute("SELECT pg_create_physical_replication_slot($1, true)", &[slot])
                    .await
                    .map_err(|e| format!("cannot create the replication slot {slot}: {}", crate::db::error_chain(&e)))?;
                tracing::info!(slot = %slot, "replication slot created for WAL streaming");
            }
            Some("lost") if !row.get::<_, Option<bool>>("active").unwrap_or(false) => {
                // The server removed WAL the slot was keeping: what the stream had not
                // received is gone from everywhere. Archive what is here, start again from
                // the server's present, and say so.
                let mut shipped = BTreeSet::new();
                self.ship(&mut shipped).await.map_err(|e| e.to_string())?;
                clear_stream_dir(&dir).map_err(|e| e.to_string())?;
                db.execute("SELECT pg_drop_replication_slot($1)", &[slot]).await.map_err(|e| crate::db::error_chain(&e))?;
                db.execute("SELECT pg_create_physical_replication_slot($1, true)", &[slot]).await.map_err(|e| crate::db::error_chain(&e))?;
                let warning = format!(
                    "the server removed WAL the slot {slot} was keeping (max_slot_wal_keep_size): the archive has a gap \
                     (see backup status); the slot was made again at {}; take a new base backup",
                    Utc::now().format("%Y-%m-%d %H:%M:%S UTC")
                );
                tracing::error!("{warning}");
                self.watch.update_stream(|s| s.warnings.push(warning));
            }
            Some(_) => {}
        }
        let version = row.get::<_, i32>("version").max(0) as u32;
        let tools = tools::find(self.settings.bin_dir.as_deref(), tools::server_major(version)).await.map_err(|e| e.to_string())?;
        if !tools.dir.join(Tool::PgReceivewal.name()).is_file() {
            return Err(format!("{} has no pg_receivewal (install the PostgreSQL client programs)", tools.dir.display()));
        }
        Ok((tools, dir, user))
    }

    /// Moves completed segments (and timeline history files) from the streaming directory
    /// into the archive; see the module documentation.
    async fn ship(&self, shipped: &mut BTreeSet<String>) -> Result<(), Error> {
        let dir = self.archive.join(STREAM_DIR);
        let archive = self.archive.clone();
        let known = std::mem::take(shipped);
        let (known, stored, last, failed) = threads::blocking(move || Ok(ship_dir(&dir, &archive, known))).await?;
        *shipped = known;
        if stored > 0 {
            self.watch.update_stream(|s| {
                s.segments_archived += stored;
                s.last_segment = last.clone();
            });
        }
        failed.map_or(Ok(()), Err)
    }
}

/// One pass of [`Receiver::ship`], on a blocking thread: `(shipped names, how many stored now,
/// the newest segment stored, the first failure)`.
fn ship_dir(dir: &Path, archive: &Path, mut shipped: BTreeSet<String>) -> (BTreeSet<String>, u64, Option<String>, Option<Error>) {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(err) => return (shipped, 0, None, Some(Error::io("list", dir)(err))),
    };
    names.sort();
    let segments: Vec<&String> = names.iter().filter(|n| matches!(WalFile::parse(n), Some(WalFile::Segment { .. }))).collect();
    let newest = segments.last().map(|s| s.as_str()).unwrap_or_default().to_owned();
    let newest_timeline = names.iter().filter_map(|n| n.get(..8)).filter_map(|t| u32::from_str_radix(t, 16).ok()).max().unwrap_or(0);
    let (mut stored, mut last) = (0, None);
    for name in &names {
        let kind = WalFile::parse(name);
        // A `.partial` of an older timeline is finished: the server switched timelines.
        let old_partial = matches!(kind, Some(WalFile::Partial))
            && name.get(..8).and_then(|t| u32::from_str_radix(t, 16).ok()).is_some_and(|t| t < newest_timeline);
        let wanted = matches!(kind, Some(WalFile::Segment { .. } | WalFile::History { .. })) || old_partial;
        if !wanted || shipped.contains(name) {
            continue;
        }
        let path = dir.join(name);
        match wal::push(archive, &path, name) {
            Ok(pushed) => {
                if pushed == wal::Pushed::Stored && matches!(kind, Some(WalFile::Segment { .. })) {
                    stored += 1;
                    last = Some(name.clone());
                }
                // pg_receivewal resumes from the newest segment in its directory: that one
                // stays (remembered as shipped); the others go.
                if name != &newest && (matches!(kind, Some(WalFile::Segment { .. })) || old_partial) {
                    let _ = std::fs::remove_file(&path);
                } else {
                    shipped.insert(name.clone());
                }
            }
            Err(err) => return (shipped, stored, last, Some(err)),
        }
    }
    // Forget names no longer in the directory.
    shipped.retain(|n| names.contains(n));
    (shipped, stored, last, None)
}

/// Empties the streaming directory (after a lost slot: its segments are archived, and
/// `pg_receivewal` must not resume from a position the server no longer has).
fn clear_stream_dir(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

fn make_private_dir(dir: &Path, user: &ServerUser) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    user.give(dir).map_err(|e| crate::db::error_chain(&e))
}

/// The last line of a program's messages (the reason it stopped).
fn last_line(stderr: &str) -> String {
    let line = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
    line.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_segments_move_into_the_archive_and_the_newest_stays() {
        let root = std::env::temp_dir().join(format!("dbagent-stream-{}", uuid::Uuid::new_v4().simple()));
        let (dir, archive) = (root.join("wal").join(STREAM_DIR), root.join("wal"));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, byte) in [
            ("000000010000000000000002", 2u8),
            ("000000010000000000000003", 3),
            ("000000010000000000000004.partial", 4),
            ("00000002.history", 9),
            ("000000020000000000000004.partial", 5),
        ] {
            std::fs::write(dir.join(name), vec![byte; 1000]).unwrap();
        }
        let (shipped, stored, last, failed) = ship_dir(&dir, &archive, BTreeSet::new());
        assert!(failed.is_none(), "{failed:?}");
        assert_eq!(stored, 2);
        assert_eq!(last.as_deref(), Some("000000010000000000000003"));
        let archived: Vec<String> = wal::list(&archive).unwrap().into_keys().collect();
        assert_eq!(
            archived,
            ["000000010000000000000002", "000000010000000000000003", "000000010000000000000004.partial", "00000002.history"]
        );
        let mut left: Vec<String> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left, ["000000010000000000000003", "00000002.history", "000000020000000000000004.partial"]);
        // A second pass stores nothing again and reads nothing again.
        let (_, stored, _, failed) = ship_dir(&dir, &archive, shipped);
        assert!(failed.is_none());
        assert_eq!(stored, 0);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn positions_print_as_postgres_prints_them() {
        assert_eq!(format_lsn(0x2000028), "0/2000028");
        assert_eq!(format_lsn((1 << 32) + 0xFF), "1/FF");
        assert_eq!(wal::parse_lsn(&format_lsn(0x1234_5678_9ABC)), Some(0x1234_5678_9ABC));
    }
}
