//! Point-in-time recovery for managed instances: which times can be recovered
//! ([`status`]), and recovering one into a new cluster ([`recover_to`]).
//!
//! A recovery picks the newest base backup that was complete before the target time, unpacks
//! it (decrypting, decompressing and checking every byte against the manifest) into a new
//! data directory, and starts a server there that fetches archived WAL through
//! `dbagent wal fetch` and stops at the target (`recovery_target_time`), then promotes
//! itself. The original cluster is never touched. A target past the end of the archived WAL
//! fails the way PostgreSQL does ("recovery ended before configured recovery target was
//! reached"), with the server's log, and the new directory is removed: a recovery never
//! silently stops short of the time asked for.
//!
//! The recoverable window of a base backup runs from the moment it was complete to the
//! archiving time of the last segment of the unbroken run of archived segments after its
//! start on its timeline (commits are archived within `archive_timeout` of being made). A
//! missing segment ends the window; [`status`] lists every gap.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::load::Backup;
use super::location;
use super::manifest::{BaseInfo, Manifest};
use super::pipeline::{self, Opener};
use super::threads;
use super::wal::{self, Archived, WalFile};
use super::{BackupKind, Error, Settings};
use crate::instance;

/// How long a recovery may replay WAL before we give up on it.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// What a recovery should produce.
#[derive(Debug, Clone)]
pub struct PitrRequest {
    /// Recover up to this time; `None`: replay every archived segment.
    pub to_time: Option<DateTime<Utc>>,
    /// Start from this base backup; default: the newest one complete before `to_time`.
    pub backup_id: Option<String>,
    /// Where the new cluster goes (must be empty or missing), and how to run it (its port,
    /// binaries and superuser). Its `archive` is ignored: a recovered cluster does not
    /// archive into the original's archive.
    pub cluster: instance::Settings,
}

/// A finished recovery.
#[derive(Debug, Clone, Serialize)]
pub struct PitrReport {
    pub base_backup_id: String,
    pub target_time: Option<DateTime<Utc>>,
    pub data_dir: PathBuf,
    pub port: u16,
    /// `postgresql://...` for the recovered cluster's superuser.
    pub url: String,
    /// The timeline the recovered cluster continues on.
    pub timeline: Option<u32>,
    /// The commit time of the last transaction replayed.
    pub last_replayed_commit: Option<DateTime<Utc>>,
    pub duration_ms: u64,
}

/// The WAL archive and what it makes recoverable.
#[derive(Debug, Clone, Serialize)]
pub struct PitrStatus {
    /// `backup.pitr` is on.
    pub enabled: bool,
    pub archive: PathBuf,
    pub archived_segments: usize,
    pub archived_bytes: u64,
    pub last_archived: Option<Archived>,
    pub base_backups: Vec<BaseWindow>,
    /// The times a recovery can target (base-backup windows, merged).
    pub recoverable: Vec<Window>,
    /// Segments missing between the first and the last archived segment of a timeline.
    pub gaps: Vec<Gap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseWindow {
    pub backup_id: String,
    pub timeline: u32,
    pub start_segment: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The last segment of the unbroken run of archived WAL after the backup's start.
    pub last_segment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub timeline: u32,
    /// The first and last missing segment.
    pub first_missing: String,
    pub last_missing: String,
    pub segments: u64,
}

/// The archive directory of `root`.
pub(crate) fn archive_dir(root: &Path) -> PathBuf {
    root.join(wal::ARCHIVE_DIR)
}

/// The archive, its gaps and the recoverable windows.
pub fn status(settings: &Settings) -> Result<PitrStatus, Error> {
    let root = location::root(settings)?;
    let archive = archive_dir(&root);
    let files = wal::list(&archive)?;
    let bases = base_backups(&root)?;
    let size = bases.first().map_or(wal::DEFAULT_SEGMENT_SIZE, |(_, b)| b.wal_segment_size);
    let segments = segments_by_timeline(&files, size);
    let base_backups: Vec<BaseWindow> = bases.iter().map(|(m, b)| window_of(&m.id, b, &segments)).collect();
    let last_archived = files
        .values()
        .filter(|a| matches!(WalFile::parse(&a.name), Some(WalFile::Segment { .. })))
        .max_by_key(|a| a.archived_at)
        .cloned();
    Ok(PitrStatus {
        enabled: settings.pitr.is_some(),
        archive,
        archived_segments: segments.values().map(BTreeMap::len).sum(),
        archived_bytes: files.values().map(|a| a.bytes).sum(),
        last_archived,
        recoverable: merge(base_backups.iter().map(|w| Window { from: w.from, to: w.to }).collect()),
        base_backups,
        gaps: gaps(&segments, size),
    })
}

/// Removes the archived WAL no remaining base backup needs: everything before the start of
/// the oldest. Without any base backup nothing is removed (WAL without a base backup is
/// useless, but deleting it all is how archives silently lose their history).
pub(crate) fn prune_archive(settings: &Settings) -> Result<usize, Error> {
    let root = location::root(settings)?;
    let Some((manifest, oldest)) = base_backups(&root)?.into_iter().min_by_key(|(_, b)| b.finished_at) else {
        return Ok(0);
    };
    let Some(WalFile::Segment { log, seg, .. }) = WalFile::parse(&oldest.start_segment) else {
        return Ok(0);
    };
    let size = oldest.wal_segment_size;
    let removed = wal::prune(&archive_dir(&root), oldest.timeline, wal::segment_number(log, seg, size), size)?;
    if removed > 0 {
        tracing::info!(removed, oldest_base_backup = %manifest.id, "pruned archived WAL older than the oldest base backup");
    }
    Ok(removed)
}

/// Recovers a new cluster as `req` says (see the module documentation).
pub async fn recover_to(
    settings: &Settings,
    req: &PitrRequest,
    progress: &(dyn Fn(super::Progress) + Send + Sync),
) -> Result<PitrReport, Error> {
    let Some(pitr) = settings.pitr.clone() else {
        return Err(Error::invalid(
            "point-in-time recovery needs WAL archiving: the managed instance with backup.pitr: true",
        ));
    };
    let started = Instant::now();
    let now = Utc::now();
    if let Some(t) = req.to_time
        && t > now
    {
        return Err(Error::invalid(format!("to_time {t} is in the future")));
    }
    let root = location::root(settings)?;
    let chosen = choose_base(&root, req)?;
    let backup = Backup::open(&root, settings, &chosen).await?;
    tracing::info!(backup_id = %backup.manifest.id, to_time = ?req.to_time, data_dir = %req.cluster.data_dir.display(), "point-in-time recovery");

    let mut cluster = req.cluster.clone();
    cluster.archive = None;
    let data_dir = instance::prepare_recovery(&cluster).map_err(instance_error)?;
    let made = Made { dir: data_dir.clone(), keep: false };
    unpack(&backup, &data_dir, started, progress).await?;
    let recovery = instance::Recovery {
        program: pitr.program.clone(),
        archive_dir: archive_dir(&root),
        target_time: req.to_time.map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()),
    };
    let running = match instance::recover(&cluster, Some(&recovery)).await {
        Ok(running) => running,
        Err(err) => return Err(recovery_failed(err, &cluster).await),
    };
    let (timeline, last_commit) = match wait_for_promotion(&running).await {
        Ok(found) => found,
        Err(err) => {
            let log = instance::logs(&cluster, 30).unwrap_or_default();
            let _ = instance::stop(&cluster, instance::StopMode::Immediate).await;
            return Err(Error::Conflict { reason: format!("recovery did not finish: {err}\n{log}") });
        }
    };
    made.keep();
    Ok(PitrReport {
        base_backup_id: backup.manifest.id.clone(),
        target_time: req.to_time,
        data_dir,
        port: running.port,
        url: running.url("postgres"),
        timeline,
        last_replayed_commit: last_commit,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// Verification level 2 of a base backup: unpack it into a scratch cluster under `/tmp`,
/// start it on its own (crash recovery with the WAL the backup holds, no archive, no
/// target), check that it accepts connections, then stop and remove it.
pub(crate) async fn trial_start(
    backup: &Backup,
    settings: &Settings,
    started: Instant,
    progress: &(dyn Fn(super::Progress) + Send + Sync),
) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    // Under /tmp, not the location: the server's Unix socket lives beside the data directory,
    // and socket paths are limited to 107 bytes, which a deep location would exceed.
    let work = location::WorkDir::create(Path::new("/tmp"), "dbagent-verify")?;
    // The server's OS user must reach the cluster inside; others may only pass through.
    std::fs::set_permissions(&work.path, std::fs::Permissions::from_mode(0o711)).map_err(Error::io("set the mode of", &work.path))?;
    let mut cluster = instance::Settings::new(work.path.join("pgdata"));
    cluster.bin_dir = settings.bin_dir.clone();
    let data_dir = instance::prepare_recovery(&cluster).map_err(instance_error)?;
    unpack(backup, &data_dir, started, progress).await?;
    let file = backup.manifest.files.first().map(|f| f.stored.clone()).unwrap_or_default();
    let outcome = instance::recover(&cluster, None).await;
    let _ = instance::stop(&cluster, instance::StopMode::Immediate).await;
    drop(work);
    outcome.map(drop).map_err(|err| Error::VerificationFailed {
        file,
        reason: format!("the copy does not start: {}", crate::db::error_chain(&err)),
    })
}

/// The base backup to start from: the one asked for, or the newest complete before the
/// target.
fn choose_base(root: &Path, req: &PitrRequest) -> Result<String, Error> {
    let bases = base_backups(root)?;
    if let Some(id) = &req.backup_id {
        let (_, manifest) = location::resolve(root, id)?;
        let Some(base) = &manifest.base else {
            return Err(Error::invalid(format!(
                "backup {} is a pg_dump backup; point-in-time recovery starts from a base backup (kind: base)",
                manifest.id
            )));
        };
        if let Some(t) = req.to_time
            && t < base.finished_at
        {
            return Err(Error::invalid(format!(
                "base backup {} was complete at {}; it cannot be recovered to the earlier {t}",
                manifest.id, base.finished_at
            )));
        }
        return Ok(manifest.id);
    }
    let target = req.to_time.unwrap_or_else(Utc::now);
    match bases.iter().rev().find(|(_, b)| b.finished_at <= target) {
        Some((m, _)) => Ok(m.id.clone()),
        None => Err(match bases.first() {
            Some((m, b)) => Error::invalid(format!(
                "no base backup was complete by {target}; the earliest recoverable time is {} (backup {})",
                b.finished_at, m.id
            )),
            None => Error::invalid("there is no base backup yet: take one with `dbagent backup create --kind base`"),
        }),
    }
}

/// Every complete base backup, oldest first.
fn base_backups(root: &Path) -> Result<Vec<(Manifest, BaseInfo)>, Error> {
    let mut bases: Vec<(Manifest, BaseInfo)> = location::scan(root)?
        .into_iter()
        .filter(|(_, m)| m.kind == BackupKind::Base)
        .filter_map(|(_, m)| m.base.clone().map(|b| (m, b)))
        .collect();
    bases.sort_by_key(|(_, b)| b.finished_at);
    Ok(bases)
}

/// Decrypts, decompresses and checks the base backup's tar while unpacking it into `dir`.
async fn unpack(
    backup: &Backup,
    dir: &Path,
    started: Instant,
    progress: &(dyn Fn(super::Progress) + Send + Sync),
) -> Result<(), Error> {
    let entry = backup.manifest.files.first().cloned().ok_or_else(|| Error::VerificationFailed {
        file: "manifest.json".to_owned(),
        reason: "it lists no file".to_owned(),
    })?;
    let (from, to) = (backup.dir.clone(), dir.to_path_buf());
    let (compression, key) = (backup.manifest.compression, backup.key.clone());
    let aad = pipeline::associated_data(&backup.manifest.id, &entry.name);
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let task = {
        let counter = counter.clone();
        tokio::task::spawn_blocking(move || -> Result<(), Error> {
            let opener = Opener::open_for_restore(&from, &entry, compression, key.as_ref().map(|k| (k, aad)))?;
            let mut reader = Plaintext { opener, failure: None, counter };
            let mut archive = tar::Archive::new(&mut reader);
            archive.set_preserve_permissions(true);
            archive.set_overwrite(false);
            let unpacked = archive.unpack(&to);
            if let Some(err) = reader.failure.take() {
                return Err(err);
            }
            unpacked.map_err(Error::io("unpack the base backup into", &to))?;
            // The tar ends before the stream does (padding): read the rest so the checksums
            // cover the whole file.
            io::copy(&mut reader, &mut io::sink()).map_err(Error::io("read", &from))?;
            if let Some(err) = reader.failure.take() {
                return Err(err);
            }
            reader.opener.finish()
        })
    };
    let report = |bytes| progress(super::Progress { phase: "read", bytes, elapsed: started.elapsed() });
    threads::watch(task, &counter, &report).await
}

/// [`Opener`] as an [`io::Read`] for the tar reader; the backup's own error is kept aside so
/// it is reported as what it is, not as a tar error.
struct Plaintext {
    opener: Opener,
    failure: Option<Error>,
    counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Read for Plaintext {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.opener.read(buf) {
            Ok(n) => {
                self.counter.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                Ok(n)
            }
            Err(err) => {
                let message = err.to_string();
                self.failure = Some(err);
                Err(io::Error::other(message))
            }
        }
    }
}

/// Waits until the recovered server has promoted itself; returns its timeline and last
/// replayed commit time.
async fn wait_for_promotion(running: &instance::Running) -> Result<(Option<u32>, Option<DateTime<Utc>>), String> {
    let mut config = tokio_postgres::Config::new();
    config.host("127.0.0.1").port(running.port).user(&running.superuser).dbname("postgres");
    config.connect_timeout(Duration::from_secs(5));
    let deadline = Instant::now() + REPLAY_TIMEOUT;
    let mut last_commit = None;
    loop {
        let client = crate::db::admin::connect(&config, "dbagent-pitr").await.map_err(|e| crate::db::error_chain(&e))?;
        let row = client
            .query_one("SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp()", &[])
            .await
            .map_err(|e| e.to_string())?;
        if let Some(t) = row.get::<_, Option<std::time::SystemTime>>(1) {
            last_commit = Some(DateTime::<Utc>::from(t));
        }
        if !row.get::<_, bool>(0) {
            let timeline = client
                .query_one("SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)", &[])
                .await
                .ok()
                .and_then(|r| u32::from_str_radix(&r.get::<_, String>(0), 16).ok());
            return Ok((timeline, last_commit));
        }
        if Instant::now() >= deadline {
            return Err(format!("still replaying after {} s", REPLAY_TIMEOUT.as_secs()));
        }
        drop(client);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn recovery_failed(err: instance::Error, cluster: &instance::Settings) -> Error {
    let _ = instance::stop(cluster, instance::StopMode::Immediate).await;
    let text = crate::db::error_chain(&err);
    if text.contains("recovery ended before configured recovery target was reached") {
        return Error::invalid(format!(
            "the archived WAL ends before the target time; see `dbagent backup status` for the recoverable window ({text})"
        ));
    }
    Error::Conflict { reason: format!("the recovered cluster did not start: {text}") }
}

fn instance_error(err: instance::Error) -> Error {
    match err {
        instance::Error::DataDirNotEmpty { path } => {
            Error::invalid(format!("{} is not empty; a recovery builds a new cluster", path.display()))
        }
        other => Error::Conflict { reason: crate::db::error_chain(&other) },
    }
}

/// The data directory of a recovery in progress; removed unless kept.
struct Made {
    dir: PathBuf,
    keep: bool,
}

impl Made {
    fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Made {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Archived segment numbers per timeline, with their records.
fn segments_by_timeline(files: &BTreeMap<String, Archived>, size: u64) -> BTreeMap<u32, BTreeMap<u64, &Archived>> {
    let mut out: BTreeMap<u32, BTreeMap<u64, &Archived>> = BTreeMap::new();
    for (name, record) in files {
        if let Some(WalFile::Segment { timeline, log, seg }) = WalFile::parse(name) {
            out.entry(timeline).or_default().insert(wal::segment_number(log, seg, size), record);
        }
    }
    out
}

fn window_of(id: &str, base: &BaseInfo, segments: &BTreeMap<u32, BTreeMap<u64, &Archived>>) -> BaseWindow {
    let size = base.wal_segment_size;
    let start = match WalFile::parse(&base.start_segment) {
        Some(WalFile::Segment { log, seg, .. }) => wal::segment_number(log, seg, size),
        _ => 0,
    };
    let mut last: Option<&Archived> = None;
    if let Some(run) = segments.get(&base.timeline) {
        let mut n = start;
        while let Some(record) = run.get(&n) {
            last = Some(record);
            n += 1;
        }
    }
    BaseWindow {
        backup_id: id.to_owned(),
        timeline: base.timeline,
        start_segment: base.start_segment.clone(),
        from: base.finished_at,
        to: last.map_or(base.finished_at, |a| a.archived_at.max(base.finished_at)),
        last_segment: last.map(|a| a.name.clone()),
    }
}

/// Overlapping windows joined.
fn merge(mut windows: Vec<Window>) -> Vec<Window> {
    windows.sort_by_key(|w| w.from);
    let mut out: Vec<Window> = Vec::new();
    for w in windows {
        match out.last_mut() {
            Some(last) if w.from <= last.to => last.to = last.to.max(w.to),
            _ => out.push(w),
        }
    }
    out
}

fn gaps(segments: &BTreeMap<u32, BTreeMap<u64, &Archived>>, size: u64) -> Vec<Gap> {
    let mut out = Vec::new();
    for (&timeline, run) in segments {
        let mut previous: Option<u64> = None;
        for &n in run.keys() {
            if let Some(p) = previous
                && n > p + 1
            {
                let name = |segno: u64| wal::segment_name(timeline, segno * size, size);
                out.push(Gap { timeline, first_missing: name(p + 1), last_missing: name(n - 1), segments: n - p - 1 });
            }
            previous = Some(n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archived(name: &str, minute: u32) -> (String, Archived) {
        let at = format!("2026-11-29T10:{minute:02}:00Z").parse().unwrap();
        (name.to_owned(), Archived { name: name.to_owned(), bytes: 16, sha256: String::new(), archived_at: at })
    }

    #[test]
    fn windows_end_at_the_first_missing_segment_and_gaps_are_named() {
        let size = wal::DEFAULT_SEGMENT_SIZE;
        let files: BTreeMap<String, Archived> = [
            archived("000000010000000000000002", 1),
            archived("000000010000000000000003", 2),
            archived("000000010000000000000004", 3),
            archived("000000010000000000000007", 9),
            archived("000000010000000000000008", 10),
        ]
        .into_iter()
        .collect();
        let segments = segments_by_timeline(&files, size);
        let base = BaseInfo {
            timeline: 1,
            start_lsn: "0/2000028".into(),
            end_lsn: "0/2000100".into(),
            start_segment: "000000010000000000000002".into(),
            wal_segment_size: size,
            finished_at: "2026-11-29T10:00:30Z".parse().unwrap(),
        };
        let window = window_of("b1", &base, &segments);
        assert_eq!(window.last_segment.as_deref(), Some("000000010000000000000004"));
        assert_eq!(window.to, "2026-11-29T10:03:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(
            gaps(&segments, size),
            vec![Gap {
                timeline: 1,
                first_missing: "000000010000000000000005".into(),
                last_missing: "000000010000000000000006".into(),
                segments: 2
            }]
        );
        let t = |m: u32| format!("2026-11-29T10:{m:02}:00Z").parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            merge(vec![Window { from: t(5), to: t(9) }, Window { from: t(0), to: t(3) }, Window { from: t(2), to: t(4) }]),
            vec![Window { from: t(0), to: t(4) }, Window { from: t(5), to: t(9) }]
        );
    }
}
