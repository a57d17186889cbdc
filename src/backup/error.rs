//! The one error type of the `backup` module: what went wrong finding the tools, dumping,
//! storing, reading back, verifying, restoring or cataloguing a backup.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Classify, ErrorKind, INTERNAL};

/// Everything that can go wrong while managing backups.
///
/// [`Classify`] gives each variant's kind and code; messages describe this layer and the
/// underlying error, when there is one, is the [`std::error::Error::source`]. No message ever
/// contains a key or a passphrase.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is unusable (a name, a table, a database name, a backup id).
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },

    /// The configured key is neither 32 bytes in hex or base64, nor a usable passphrase.
    #[error("invalid encryption key: {reason}")]
    InvalidKey { reason: &'static str },

    /// The cron schedule does not parse.
    #[error("invalid backup schedule {schedule:?}")]
    InvalidSchedule {
        schedule: String,
        #[source]
        source: croner::errors::CronError,
    },

    /// A restore named a path that is not inside the backup location. The message names the
    /// path as given, never where it leads nor where the location is (an API caller learns
    /// nothing of the server's files).
    #[error(
        "{} is not a backup in the backup location; name a backup by its id (`GET /backups`, `dbagent backup list`)",
        .path.display()
    )]
    OutsideLocation { path: PathBuf, location: PathBuf },

    /// No complete backup has this id.
    #[error("no backup {id:?} in the backup location")]
    NotFound { id: String },

    /// The backup is kept or pinned and deleting it was not forced.
    #[error("backup {id} is {reason}; delete it with force if you really mean to")]
    Pinned { id: String, reason: String },

    /// The restore target exists and `drop_existing` was not given.
    #[error(
        "database {database:?} already exists; restore into a new database, or pass \
         drop_existing to replace it"
    )]
    TargetExists { database: String },

    /// A destructive call that needs the caller to name what it destroys (`confirm`).
    #[error("{reason}")]
    ConfirmationRequired { reason: String },

    /// A destructive call on something protected (the `postgres` database, a template, the
    /// database dbagent keeps its own schema in, the newest good backup) without `force`.
    #[error("{reason}")]
    ForceRequired { reason: String },

    /// No database replaced by a restore has this id.
    #[error("no replaced database {id:?} is kept (see GET /restores or `dbagent backup list --replaced`)")]
    ReplacedNotFound { id: String },

    /// Another job holds what this one needs (a scratch database of the same name).
    #[error("{reason}")]
    Conflict { reason: String },

    /// The backup is encrypted and no key is configured.
    #[error("backup {id} is encrypted and no encryption key is configured")]
    KeyRequired { id: String },

    /// The configured key or passphrase does not open this backup (its key check fails).
    #[error("the configured key does not open backup {id} (wrong key or passphrase)")]
    WrongKey { id: String },

    /// A segment of an encrypted file failed authentication.
    #[error("wrong key or corrupted file {file}")]
    Decrypt { file: String },

    /// A stored file is missing, truncated, altered or undecodable.
    #[error("backup file {file} failed verification: {reason}")]
    VerificationFailed { file: String, reason: String },

    /// After a trial restore, row counts differ from the manifest.
    #[error("restored row counts of backup {id} differ from its manifest: {}", mismatches(.tables))]
    RowCountMismatch { id: String, tables: Vec<RowMismatch> },

    /// A `manifest.json` is not valid.
    #[error("{} is not a valid backup manifest", .path.display())]
    InvalidManifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// No `pg_dump`/`pg_restore` able to handle this server was found.
    #[error(
        "no {tool} for PostgreSQL {server_major} or newer found; looked in: {}. Install the \
         client (Debian/Ubuntu: `apt-get install postgresql-client-{server_major}`; macOS: \
         `brew install postgresql@{server_major}`) or set backup.bin_dir",
        list(.searched)
    )]
    ToolsNotFound {
        tool: &'static str,
        server_major: u32,
        searched: Vec<PathBuf>,
    },

    /// The configured (or only) tool is older than the server or the archive needs.
    #[error(
        "{} is PostgreSQL {found}, but {needed_for} needs {needed} or newer; install \
         postgresql-client-{needed} or point backup.bin_dir at its bin directory",
        .binary.display()
    )]
    ToolTooOld {
        binary: PathBuf,
        found: u32,
        needed: u32,
        needed_for: &'static str,
    },

    /// A tool could not be started at all.
    #[error("could not run {}", .binary.display())]
    ToolNotRunnable {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A tool exited with an error; its stderr is the only explanation it gives.
    #[error("{tool} failed: {stderr}")]
    ToolFailed { tool: &'static str, stderr: String },

    /// A tool ran past its time limit and was killed.
    #[error("{tool} did not finish within {seconds} s and was killed")]
    ToolTimedOut { tool: &'static str, seconds: u64 },

    /// The disk of the backup location (or WAL archive) is full.
    #[error("no space left on the disk of the backup location: free space there (or point backup.location at a larger disk) and retry")]
    NoSpace,

    /// A file or directory in the backup location could not be read or written.
    #[error("could not {action} {}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// One of dbagent's own statements was refused by the server (privileges, ...).
    #[error("could not {action}")]
    Database {
        action: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },

    /// The remote store (`backup.remote`) refused or could not be reached. The message names
    /// the object; the store's own answer is the source.
    #[error("the remote backup store could not {action} {key}")]
    Remote {
        action: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },

    /// Streaming a file to or from the remote store failed.
    #[error("the remote backup store could not {action} {key}")]
    RemoteIo {
        action: &'static str,
        key: String,
        #[source]
        source: io::Error,
    },

    /// A call that needs `backup.remote` without it.
    #[error("no remote store is configured (backup.remote)")]
    RemoteNotConfigured,

    /// The database could not be reached, or the connection was lost.
    #[error("the database is unavailable")]
    Unavailable {
        #[source]
        source: tokio_postgres::Error,
    },
}

/// One table whose restored row count differs from the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowMismatch {
    pub table: String,
    pub expected: i64,
    /// `None`: the table is missing from the restored database.
    pub found: Option<i64>,
}

impl Error {
    /// The SQLSTATE PostgreSQL reported, if this error came from the server.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Database { source, .. } | Error::Unavailable { source } => {
                source.as_db_error().map(|db| db.code().code())
            }
            _ => None,
        }
    }

    /// Whether this error says the backup itself is bad (as opposed to our key, tools or
    /// database): such failures are recorded in the manifest by `verify`.
    pub fn is_backup_damaged(&self) -> bool {
        matches!(
            self,
            Error::Decrypt { .. }
                | Error::VerificationFailed { .. }
                | Error::RowCountMismatch { .. }
        )
    }

    /// Adapter for `map_err` on dbagent's own statements: a lost connection is
    /// [`Error::Unavailable`], a server error is [`Error::Database`].
    pub(crate) fn db(action: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Error {
        move |source| {
            if source.as_db_error().is_none() {
                Error::Unavailable { source }
            } else {
                Error::Database { action, source }
            }
        }
    }

    /// Adapter for `map_err`: an I/O failure of `action` on `path`.
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| match source.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Error::NoSpace,
            _ => Error::Io {
                action,
                path,
                source,
            },
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Error {
        Error::InvalidRequest {
            reason: reason.into(),
        }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidRequest { .. }
            | Error::InvalidKey { .. }
            | Error::InvalidSchedule { .. }
            | Error::OutsideLocation { .. }
            | Error::RemoteNotConfigured => ErrorKind::BadRequest,
            Error::NotFound { .. } | Error::ReplacedNotFound { .. } => ErrorKind::NotFound,
            Error::ConfirmationRequired { .. } | Error::ForceRequired { .. } => ErrorKind::Conflict,
            Error::Pinned { .. } | Error::TargetExists { .. } | Error::Conflict { .. } => ErrorKind::Conflict,
            Error::KeyRequired { .. }
            | Error::WrongKey { .. }
            | Error::Decrypt { .. }
            | Error::VerificationFailed { .. }
            | Error::RowCountMismatch { .. }
            | Error::InvalidManifest { .. } => ErrorKind::Unprocessable,
            Error::ToolsNotFound { .. }
            | Error::ToolTooOld { .. }
            | Error::ToolNotRunnable { .. }
            | Error::ToolFailed { .. }
            | Error::ToolTimedOut { .. }
            | Error::Io { .. }
            | Error::Database { .. } => ErrorKind::Internal,
            Error::Unavailable { .. } | Error::NoSpace | Error::Remote { .. } | Error::RemoteIo { .. } => ErrorKind::Unavailable,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::InvalidRequest { .. } | Error::InvalidKey { .. } | Error::InvalidSchedule { .. } => "invalid_request",
            Error::OutsideLocation { .. } => "outside_backup_location",
            Error::NotFound { .. } => "backup_not_found",
            Error::ReplacedNotFound { .. } => "replaced_not_found",
            Error::ConfirmationRequired { .. } => "confirmation_required",
            Error::ForceRequired { .. } => "force_required",
            Error::Pinned { .. } | Error::TargetExists { .. } | Error::Conflict { .. } => "conflict",
            Error::KeyRequired { .. } => "key_required",
            Error::InvalidManifest { .. } => "invalid_manifest",
            Error::WrongKey { .. } | Error::Decrypt { .. } | Error::VerificationFailed { .. } | Error::RowCountMismatch { .. } => {
                "verification_failed"
            }
            Error::ToolsNotFound { .. }
            | Error::ToolTooOld { .. }
            | Error::ToolNotRunnable { .. }
            | Error::ToolFailed { .. }
            | Error::ToolTimedOut { .. }
            | Error::Io { .. }
            | Error::Database { .. } => INTERNAL,
            Error::Unavailable { .. } => "database_unavailable",
            Error::Remote { .. } | Error::RemoteIo { .. } => "remote_store_unavailable",
            Error::RemoteNotConfigured => "remote_not_configured",
            Error::NoSpace => "insufficient_storage",
        }
    }
}

fn list(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "(nowhere)".to_owned();
    }
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

fn mismatches(tables: &[RowMismatch]) -> String {
    let shown: Vec<String> = tables
        .iter()
        .map(|m| match m.found {
            Some(found) => format!("{} (expected {}, found {found})", m.table, m.expected),
            None => format!("{} (expected {}, table missing)", m.table, m.expected),
        })
        .collect();
    shown.join(", ")
}
