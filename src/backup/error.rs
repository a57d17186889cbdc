//! The one error type of the `backup` module: what went wrong finding the tools, dumping,
//! storing, reading back, verifying, restoring or cataloguing a backup.

use std::io;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Everything that can go wrong while managing backups.
///
/// Each variant's doc names the HTTP status it should become; messages describe this layer and
/// the underlying error, when there is one, is the [`std::error::Error::source`]. No message
/// ever contains a key or a passphrase.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is unusable (a name, a table, a database name, a backup id). HTTP 400.
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },

    /// The configured key is neither 32 bytes in hex or base64, nor a usable passphrase.
    /// HTTP 400.
    #[error("invalid encryption key: {reason}")]
    InvalidKey { reason: &'static str },

    /// The cron schedule does not parse. HTTP 400.
    #[error("invalid backup schedule {schedule:?}")]
    InvalidSchedule {
        schedule: String,
        #[source]
        source: croner::errors::CronError,
    },

    /// A restore named a path that is not inside the backup location. HTTP 400.
    #[error(
        "{} is not inside the backup location {}; only backups in the location can be restored",
        .path.display(), .location.display()
    )]
    OutsideLocation { path: PathBuf, location: PathBuf },

    /// No complete backup has this id. HTTP 404.
    #[error("no backup {id:?} in the backup location")]
    NotFound { id: String },

    /// The backup is kept or pinned and deleting it was not forced. HTTP 409.
    #[error("backup {id} is {reason}; delete it with force if you really mean to")]
    Pinned { id: String, reason: String },

    /// The restore target exists and `drop_existing` was not given. HTTP 409.
    #[error(
        "database {database:?} already exists; restore into a new database, or pass \
         drop_existing to replace it"
    )]
    TargetExists { database: String },

    /// Another job holds what this one needs (a scratch database of the same name). HTTP 409.
    #[error("{reason}")]
    Conflict { reason: String },

    /// The backup is encrypted and no key is configured. HTTP 422.
    #[error("backup {id} is encrypted and no encryption key is configured")]
    KeyRequired { id: String },

    /// The configured key or passphrase does not open this backup (its key check fails).
    /// HTTP 422.
    #[error("the configured key does not open backup {id} (wrong key or passphrase)")]
    WrongKey { id: String },

    /// A segment of an encrypted file failed authentication. HTTP 422.
    #[error("wrong key or corrupted file {file}")]
    Decrypt { file: String },

    /// A stored file is missing, truncated, altered or undecodable. HTTP 422.
    #[error("backup file {file} failed verification: {reason}")]
    VerificationFailed { file: String, reason: String },

    /// After a trial restore, row counts differ from the manifest. HTTP 422.
    #[error("restored row counts of backup {id} differ from its manifest: {}", mismatches(.tables))]
    RowCountMismatch { id: String, tables: Vec<RowMismatch> },

    /// A `manifest.json` is not valid. HTTP 422.
    #[error("{} is not a valid backup manifest", .path.display())]
    InvalidManifest {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// No `pg_dump`/`pg_restore` able to handle this server was found. HTTP 500.
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

    /// The configured (or only) tool is older than the server or the archive needs. HTTP 500.
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

    /// A tool could not be started at all. HTTP 500.
    #[error("could not run {}", .binary.display())]
    ToolNotRunnable {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A tool exited with an error; its stderr is the only explanation it gives. HTTP 500.
    #[error("{tool} failed: {stderr}")]
    ToolFailed { tool: &'static str, stderr: String },

    /// A tool ran past its time limit and was killed. HTTP 500.
    #[error("{tool} did not finish within {seconds} s and was killed")]
    ToolTimedOut { tool: &'static str, seconds: u64 },

    /// A file or directory in the backup location could not be read or written. HTTP 500.
    #[error("could not {action} {}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// One of dbagent's own statements was refused by the server (privileges, ...). HTTP 500.
    #[error("could not {action}")]
    Database {
        action: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },

    /// The database could not be reached, or the connection was lost. HTTP 503.
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
    /// The HTTP status this error should become (see each variant's documentation).
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidRequest { .. }
            | Error::InvalidKey { .. }
            | Error::InvalidSchedule { .. }
            | Error::OutsideLocation { .. } => 400,
            Error::NotFound { .. } => 404,
            Error::Pinned { .. } | Error::TargetExists { .. } | Error::Conflict { .. } => 409,
            Error::KeyRequired { .. }
            | Error::WrongKey { .. }
            | Error::Decrypt { .. }
            | Error::VerificationFailed { .. }
            | Error::RowCountMismatch { .. }
            | Error::InvalidManifest { .. } => 422,
            Error::ToolsNotFound { .. }
            | Error::ToolTooOld { .. }
            | Error::ToolNotRunnable { .. }
            | Error::ToolFailed { .. }
            | Error::ToolTimedOut { .. }
            | Error::Io { .. }
            | Error::Database { .. } => 500,
            Error::Unavailable { .. } => 503,
        }
    }

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
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Error {
        Error::InvalidRequest {
            reason: reason.into(),
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
