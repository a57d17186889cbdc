//! Logical backups of one database with `pg_dump`: compressed, encrypted, checksummed,
//! catalogued, pruned, scheduled, verified and restored without ever leaving a target
//! half-restored.
//!
//! Point-in-time recovery: `wal.rs` (the WAL archive the managed server's `archive_command`
//! fills), `stream.rs` (the same archive filled by `pg_receivewal` from any server),
//! `freshness.rs` (where the archive's WAL comes from, the measured RPO and the stream's state),
//! `rpo.rs` (the RPO tracker), `base.rs` (base backups with
//! `pg_basebackup`), `window.rs` (the recoverable windows and gaps), `pitr.rs` (recovery into a
//! new cluster).
//!
//! Code map:
//! - `settings` (this file): [`Settings`], and [`Compression`] (the config's type).
//! - `error.rs`: [`Error`], with the kind and code of each variant.
//! - `key.rs`: [`Key`] (a raw key or a passphrase) and the per-backup data key derived from it.
//! - `tools.rs`: which `pg_dump` / `pg_restore` / `pg_basebackup` (the binaries whose major
//!   version suits the server), started through `instance::process`, the one launcher.
//! - `pipeline.rs`: bytes → SHA-256 → zstd/gzip → AES-256-GCM STREAM → file, and back, in
//!   bounded memory; `segments.rs`: the encrypted file format; `threads.rs`: running the
//!   synchronous pipeline on blocking threads from async code.
//! - `manifest.rs`: the `manifest.json` beside each backup (what the catalog is rebuilt from).
//! - `location.rs`: the backup location on disk: ids, directories, the in-progress lock,
//!   incomplete backups, paths that must stay inside the location.
//! - `database.rs`: connections, the exported snapshot, row counts, scratch and swapped
//!   databases.
//! - `catalog.rs`: `list`, `get`, `delete`, `pin` and the `dbagent.backups` mirror.
//! - `create.rs`, `verify.rs`, `restore.rs`: the three long jobs; `load.rs`: reading a backup
//!   into `pg_restore` (shared by restore and verify).
//! - `retention.rs`: which backups to delete (a pure function) and `prune`.
//! - `schedule.rs`: the cron schedule and the one-agent-runs-it advisory lock.
//! - `remote/`: off-site copies in object storage (`backup.remote`): the background uploader,
//!   the remote catalogue, downloads when the local copy is gone.
//!
//! Invariants kept here:
//! - a backup exists when, and only when, its `manifest.json` exists: the manifest is written
//!   last, atomically; directories without one are incomplete and listing removes them once
//!   their creator is gone (it holds a lock on `.in-progress` while it works);
//! - the manifests are the truth, `dbagent.backups` is a mirror updated best-effort and
//!   rebuilt from them by [`rebuild_catalog`];
//! - keys and passphrases are never logged, written or put in an error; manifests carry the
//!   KDF parameters, the salt and a key check, never the key;
//! - a whole-database restore writes only into a database it created; `drop_existing` swaps
//!   that database in by rename after the restore succeeded, so a failed restore leaves the
//!   original untouched; rows loaded into an existing database go in one transaction;
//! - every restore and trial restore re-reads every stored file through its checksums;
//! - every child process and scratch database is cleaned up on every path (kill on drop, drop
//!   guards).

mod base;
mod catalog;
mod create;
mod database;
mod error;
mod export;
mod freshness;
mod key;
mod leftovers;
mod load;
mod location;
mod manifest;
mod pipeline;
mod pitr;
pub mod remote;
mod replaced;
mod restore;
mod retention;
mod rpo;
mod schedule;
mod segments;
pub mod stream;
mod threads;
mod tools;
mod verify;
pub mod wal;
mod window;

use std::path::PathBuf;
use std::time::Duration;

pub use catalog::{RebuildReport, delete, get, list, pin, rebuild_catalog};
pub use create::{BackupKind, CreateRequest, Format, Progress, create};
pub use error::{Error, RowMismatch};
pub use export::{Exported, export};
pub use key::Key;
pub use leftovers::clean_up_after_crashes;
pub use manifest::{
    BaseInfo, CountMethod, EncryptionInfo, FileEntry, Kdf, Manifest, TableRows, Verification,
};
pub use pitr::{PitrReport, PitrRequest, recover_to};
pub use window::{BaseWindow, Gap, PitrStatus, Window, status};
pub use rpo::RpoTracker;
pub use freshness::{StreamStatus, WalFreshness, WalWatch};
pub use replaced::{Replaced, ReplacedState, Undone, list_replaced, sweep_replaced, undo};
pub use restore::{RestoreMode, RestoreReport, RestoreRequest, restore};
pub use retention::{Candidate, Decision, Policy, decide, prune};
pub use schedule::{
    LOCK_KEY, ScheduleStats, ScheduleStatsSnapshot, ScheduledRun, next_run, run_schedule,
    run_scheduled,
};
pub use verify::{FileCheck, TableCheck, VerifyLevel, VerifyReport, verify};

/// How backups are taken and kept (config `backup.*`).
#[derive(Clone)]
pub struct Settings {
    /// Directory holding one sub-directory per backup (config `backup.location`, default
    /// `./backups`). Made absolute when used.
    pub location: PathBuf,
    /// Compression of every stored file. Default [`Compression::Zstd`].
    pub compression: Compression,
    /// The compressor's level (config `backup.compression_level`). Default: its default.
    pub compression_level: Option<i32>,
    /// Encrypts every stored file with AES-256-GCM when set (config `backup.encryption_key`,
    /// or a key file / passphrase). Default none.
    pub encryption: Option<Key>,
    /// Backups older than this many days may be pruned. Default `None` (no age limit).
    pub retention_days: Option<u32>,
    /// The newest this-many backups are always kept. Default `None` (no count rule).
    pub keep_last: Option<u32>,
    /// Cron schedule (5 or 6 fields, croner syntax) of automatic backups. Default none.
    pub schedule: Option<String>,
    /// Directory holding `pg_dump` and `pg_restore`; default: searched (see `tools.rs`).
    pub bin_dir: Option<PathBuf>,
    /// Parallel jobs for directory-format dumps and restores. Default 2.
    pub jobs: u32,
    /// Longest a single `pg_dump` or `pg_restore` may run before it is killed. Default 6 h.
    pub tool_timeout: Duration,
    /// Point-in-time recovery (config `backup.pitr`): the managed instance archives WAL into
    /// `<location>/wal`. Default none.
    pub pitr: Option<Pitr>,
    /// Hours a database replaced by a restore is kept before it is dropped (config
    /// `backup.keep_replaced_hours`); 0 drops it at once. Default 24.
    pub keep_replaced_hours: u32,
    /// Off-site copies (`backup.remote`), with the uploader's state. Default none.
    pub remote: Option<std::sync::Arc<remote::Remote>>,
}

/// How WAL reaches the archive, and how recovery reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pitr {
    /// The dbagent executable the server runs as `archive_command` / `restore_command`.
    pub program: PathBuf,
    /// `archive_timeout` in seconds.
    pub archive_timeout: u32,
    /// Where the archive's WAL comes from.
    pub source: WalSource,
    /// `backup.rpo_target`.
    pub rpo_target: Duration,
}

/// Where the WAL archive's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalSource {
    /// The managed instance's `archive_command` (`dbagent wal push`).
    ArchiveCommand,
    /// `pg_receivewal` through a replication slot, from a server dbagent does not run
    /// (`stream.rs`).
    Stream(crate::config::WalStream),
}

impl WalSource {
    /// What `/health` and `backup status` call it: `archive_command` or `pg_receivewal`.
    pub fn name(&self) -> &'static str {
        match self {
            WalSource::ArchiveCommand => "archive_command",
            WalSource::Stream(_) => "pg_receivewal",
        }
    }
}

impl Pitr {
    /// `backup.pitr` and its settings; `None` when it is off. A configured server
    /// (`postgresql.url`) streams its WAL; the managed instance archives it.
    pub fn from_config(config: &crate::config::Config) -> Result<Option<Pitr>, Error> {
        let b = &config.backup;
        if !b.pitr {
            return Ok(None);
        }
        let program = match &b.agent_binary {
            // The server runs it from its data directory: the path must be absolute.
            Some(path) => std::path::absolute(path).map_err(Error::io("resolve", path))?,
            None => std::env::current_exe().map_err(Error::io("find", std::path::Path::new("the dbagent executable")))?,
        };
        let source = if config.postgresql.is_configured() { WalSource::Stream(b.wal_stream.clone()) } else { WalSource::ArchiveCommand };
        let rpo_target = Duration::from_secs_f64(b.rpo_target_seconds());
        Ok(Some(Pitr { program, archive_timeout: b.archive_timeout, source, rpo_target }))
    }

    /// The managed instance's archiving settings for a backup location at `location`.
    pub fn archive(&self, location: &std::path::Path) -> Result<crate::instance::Archive, Error> {
        let location = std::path::absolute(location).map_err(Error::io("resolve", location))?;
        Ok(crate::instance::Archive {
            dir: location.join(wal::ARCHIVE_DIR),
            program: self.program.clone(),
            timeout_seconds: self.archive_timeout,
        })
    }
}

impl Settings {
    /// The settings `config` describes (the key read from its file or derived from the
    /// passphrase here; the schedule's cron text checked).
    pub fn from_config(config: &crate::config::Config) -> Result<Settings, Error> {
        let b = &config.backup;
        let mut settings = Settings::new(&b.location);
        settings.compression = b.compression;
        settings.compression_level = b.compression_level;
        settings.encryption = if let Some(key) = &b.encryption_key {
            let (key, passphrase) = Key::parse_or_passphrase(key.expose())?;
            if passphrase {
                tracing::info!("backup.encryption_key is not a 32-byte key (64 hex digits or base64): it is used as a passphrase (Argon2id)");
            }
            Some(key)
        } else if let Some(file) = &b.encryption_key_file {
            let text = std::fs::read_to_string(file).map_err(|source| Error::Io { action: "read", path: file.clone(), source })?;
            Some(Key::parse(text.trim())?)
        } else if let Some(passphrase) = &b.encryption_passphrase {
            Some(Key::passphrase(passphrase.expose())?)
        } else {
            None
        };
        settings.retention_days = b.retention_days;
        settings.keep_last = b.keep_last;
        settings.schedule = b.schedule.clone().filter(|s| !s.trim().is_empty());
        if let Some(cron) = &settings.schedule {
            schedule::next_run(cron, chrono::Utc::now())?;
        }
        settings.bin_dir = config.instance.bin_dir.clone();
        settings.jobs = b.jobs;
        settings.pitr = Pitr::from_config(config)?;
        settings.keep_replaced_hours = b.keep_replaced_hours;
        settings.remote = b.remote.as_ref().map(remote::Remote::from_config).transpose()?.map(std::sync::Arc::new);
        Ok(settings)
    }

    /// The same settings for the managed instance, whose own `archive_command` fills the WAL
    /// archive (`from_config` sees the managed instance's URL once the agent points the
    /// config at it, and would take it for a server to stream from).
    pub fn archived_by_managed_instance(mut self) -> Settings {
        if let Some(pitr) = &mut self.pitr {
            pitr.source = WalSource::ArchiveCommand;
        }
        self
    }

    /// Settings for `location` with the documented defaults.
    pub fn new(location: impl Into<PathBuf>) -> Settings {
        Settings {
            location: location.into(),
            compression: Compression::Zstd,
            compression_level: None,
            encryption: None,
            retention_days: None,
            keep_last: None,
            schedule: None,
            bin_dir: None,
            jobs: 2,
            tool_timeout: Duration::from_secs(6 * 3600),
            pitr: None,
            keep_replaced_hours: 24,
            remote: None,
        }
    }

    /// How new files are compressed.
    pub(crate) fn packing(&self) -> pipeline::Packing {
        let default = pipeline::Packing::from(self.compression);
        pipeline::Packing { level: self.compression_level.unwrap_or(default.level), ..default }
    }

    /// The retention rules as a [`Policy`].
    pub fn policy(&self) -> Policy {
        Policy {
            retention_days: self.retention_days,
            keep_last: self.keep_last,
        }
    }
}

impl std::fmt::Debug for Settings {
    // Written by hand so that the key can never reach a log through `{:?}` of the settings
    // (`Key`'s own Debug is redacted too; this keeps the shape obvious).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("location", &self.location)
            .field("compression", &self.compression)
            .field("compression_level", &self.compression_level)
            .field("encryption", &self.encryption.as_ref().map(|_| "<redacted>"))
            .field("retention_days", &self.retention_days)
            .field("keep_last", &self.keep_last)
            .field("schedule", &self.schedule)
            .field("bin_dir", &self.bin_dir)
            .field("jobs", &self.jobs)
            .field("tool_timeout", &self.tool_timeout)
            .field("keep_replaced_hours", &self.keep_replaced_hours)
            .finish()
    }
}

/// Compression of the stored files: the configuration's type (`backup.compression` decodes
/// straight into it), so a manifest, a request and the config share one set of names.
pub use crate::config::Compression;

impl Compression {
    /// The suffix stored files get (`.zst`, `.gz`, or nothing).
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
            Compression::None => "",
        }
    }
}
