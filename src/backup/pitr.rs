//! Point-in-time recovery (of the managed instance or a streamed server): recovering into a new cluster
//! ([`recover_to`]) and the trial start of a base backup (verification level 2). Which times
//! can be recovered is `window.rs`.
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
//! Commits are archived within `archive_timeout` of being made; a missing segment ends a
//! base backup's window (see `window.rs`).

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::load::Backup;
use super::location;
use super::pipeline::{self, Opener};
use super::threads;
use super::window::{archive_dir, base_backups};
use super::{Error, Settings};
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

impl PitrRequest {
    /// A recovery into `data_dir`, by default beside the managed instance's
    /// (`<data_dir>-pitr-<timestamp>`), with the managed instance's binaries and superuser, on
    /// a free port. The API and the CLI both build their requests here.
    pub fn new(
        config: &crate::config::Config,
        to_time: Option<DateTime<Utc>>,
        backup_id: Option<String>,
        data_dir: Option<PathBuf>,
    ) -> Result<PitrRequest, Error> {
        let instance = &config.instance;
        let mut cluster = instance::Settings::from_config(instance).map_err(Error::io("resolve", &instance.data_dir))?;
        cluster.port = None;
        cluster.data_dir = match data_dir {
            Some(dir) => instance::normalize(&std::path::absolute(&dir).map_err(Error::io("resolve", &dir))?),
            None => {
                let mut name = cluster.data_dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                name.push(format!("-pitr-{}", Utc::now().format("%Y%m%dT%H%M%S%3f")));
                cluster.data_dir.with_file_name(name)
            }
        };
        Ok(PitrRequest { to_time, backup_id, cluster })
    }
}

/// A finished recovery.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
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

/// Recovers a new cluster as `req` says (see the module documentation).
pub async fn recover_to(
    settings: &Settings,
    req: &PitrRequest,
    progress: &(dyn Fn(super::Progress) + Send + Sync),
) -> Result<PitrReport, Error> {
    let Some(pitr) = settings.pitr.clone() else {
        return Err(Error::invalid(
            "point-in-time recovery needs backup.pitr: true (WAL archived by the managed instance, or streamed from a configured server)",
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
    // With a remote store: the base backup the recovery starts from and the WAL after it come
    // from the bucket when the location lacks them (a lost machine).
    super::remote::prepare_recovery(settings, req.backup_id.as_deref(), req.to_time).await?;
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
            // A hot standby accepts connections before replay ends: the server can start, then
            // stop short of the target.
            if let Some(err) = ended_before_target(&log) {
                return Err(err);
            }
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
    let config = crate::db::PgConfig::new(config, crate::instance::certs::client_tls(&running.data_dir));
    let deadline = Instant::now() + REPLAY_TIMEOUT;
    let mut last_commit = None;
    loop {
        let client = crate::db::admin::connect(&config, crate::db::Purpose::Pitr).await.map_err(|e| crate::db::error_chain(&e))?;
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
    ended_before_target(&text).unwrap_or_else(|| Error::Conflict { reason: format!("the recovered cluster did not start: {text}") })
}

/// PostgreSQL's own refusal of a target past the end of the archive, found in `text`.
fn ended_before_target(text: &str) -> Option<Error> {
    text.contains("recovery ended before configured recovery target was reached").then(|| {
        Error::invalid(format!(
            "the archived WAL ends before the target time; see `dbagent backup status` for the recoverable window ({text})"
        ))
    })
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
