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
//! - [`run`] also starts the freshness sampler (`freshness.rs`: the RPO and the slot's lag),
//!   for either source.
//!
//! As root, `pg_receivewal` runs as the server's OS user (as the managed instance's
//! `archive_command` does) so that a recovering server, which runs as that user, can read what
//! it wrote.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::watch;

use super::freshness::{SAMPLE_EVERY, WalWatch, sample};
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
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A run this long resets the backoff.
const STEADY_RUN: Duration = Duration::from_secs(60);

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

}
