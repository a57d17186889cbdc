//! The one error type of the `migrate` module: what went wrong reading migration files,
//! deciding what to run, holding the migration lock, or running a migration.

use std::io;
use std::path::{Path, PathBuf};


use super::report::Direction;

pub use crate::db::PgError;

/// Everything that can go wrong while managing migrations.
///
/// Each variant's doc names the HTTP status it should become; messages describe this layer and
/// the underlying error, when there is one, is the [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A migration file or the directory could not be read or written. HTTP 500.
    #[error("could not {action} {}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A `.sql` file in the migrations directory is not a usable migration. HTTP 422.
    #[error("{} is not a valid migration file: {reason}", .path.display())]
    InvalidFile { path: PathBuf, reason: String },

    /// Two files claim the same version. HTTP 422.
    #[error("migration version {version} is used by both {} and {}", .first.display(), .second.display())]
    DuplicateVersion {
        version: i64,
        first: PathBuf,
        second: PathBuf,
    },

    /// The name given for a new migration has nothing usable in it. HTTP 400.
    #[error("invalid migration name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    /// A down target is neither `-N`, a version, nor `base`. HTTP 400.
    #[error("invalid down target {input:?}: expected -N (steps back), a version, or `base`")]
    InvalidDownTarget { input: String },

    /// A target or baseline version matches no migration file and no applied migration. HTTP 422.
    #[error("no migration has version {version}")]
    UnknownVersion { version: i64 },

    /// `down -N` asked for more steps than there are applied migrations. HTTP 422.
    #[error("cannot revert {requested} migration(s): only {applied} are applied")]
    NotEnoughApplied { requested: u32, applied: usize },

    /// A migration to revert has no down file. HTTP 422.
    #[error(
        "migration {version} cannot be reverted: {} has no down file (only `.up.sql` files \
         with a `.down.sql` beside them are reversible)",
        .path.display()
    )]
    Irreversible { version: i64, path: PathBuf },

    /// A migration to revert is applied but its files are gone. HTTP 422.
    #[error("migration {version} cannot be reverted: it is applied but its files are gone")]
    FileMissing { version: i64 },

    /// Applied migrations whose files changed since they ran. HTTP 409.
    #[error(
        "applied migration(s) {} changed on disk since they ran (checksum differs); restore the \
         files or accept them with `repair`",
        list(.versions)
    )]
    Drift { versions: Vec<i64> },

    /// Pending migrations older than the newest applied one. HTTP 409.
    #[error(
        "pending migration(s) {} are older than the newest applied one; apply them with \
         --allow-out-of-order if that is intended",
        list(.versions)
    )]
    OutOfOrder { versions: Vec<i64> },

    /// Another runner held the migration lock for the whole wait. HTTP 409.
    #[error("another migration run held the migration lock for longer than {waited_ms} ms")]
    LockTimeout { waited_ms: u64 },

    /// `baseline` on a database that already has applied migrations. HTTP 409.
    #[error("cannot baseline: {applied} migration(s) are already recorded as applied")]
    AlreadyApplied { applied: usize },

    /// The `dbagent` schema was upgraded by a newer dbagent than this one. HTTP 409.
    #[error(
        "the dbagent schema is at internal version {found}, newer than this dbagent knows \
         ({known}); upgrade dbagent"
    )]
    SchemaTooNew { found: i32, known: i32 },

    /// The database could not be reached, or the connection was lost. HTTP 503.
    #[error("the database is unavailable")]
    Unavailable {
        #[source]
        source: tokio_postgres::Error,
    },

    /// One of dbagent's own queries (the lock, the `dbagent` schema and its tables) was refused
    /// by the server, e.g. for lack of privilege. HTTP 500.
    #[error("could not {action}")]
    History {
        action: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },

    /// `up`'s target is not `head`, `+N` or a version. HTTP 400.
    #[error("{given:?} is not an upgrade target (expected head, +N or a version number)")]
    InvalidUpTarget { given: String },

    /// The backup before migrating failed; nothing was applied. HTTP 500.
    #[error("the backup before migrating failed; nothing was applied")]
    BackupFailed {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// `autogenerate` could not compare the schemas (the desired SQL does not load: 422; the
    /// server is unreachable: 503; otherwise 500).
    #[error("autogenerate failed")]
    Autogenerate {
        #[source]
        source: Box<super::autogen::Error>,
    },

    /// A seed script failed; the seed transaction was rolled back. HTTP 422 with the SQLSTATE.
    #[error("seed script {} failed; nothing was seeded", .path.display())]
    SeedFailed {
        path: PathBuf,
        server: Option<Box<PgError>>,
        #[source]
        source: tokio_postgres::Error,
    },

    /// A migration's SQL failed; its transaction was rolled back (except, for a
    /// no-transaction file, the statements before `statement`). HTTP 422 with the SQLSTATE.
    #[error(
        "migration {version} ({}) failed going {direction}{}",
        .path.display(),
        statement_note(*.statement)
    )]
    MigrationFailed {
        version: i64,
        path: PathBuf,
        direction: Direction,
        /// For a no-transaction file: the 1-based statement that failed.
        statement: Option<usize>,
        /// PostgreSQL's diagnostics, when the server reported the failure.
        server: Option<Box<PgError>>,
        /// Versions this run applied (or reverted) before the failure; they stay so.
        completed: Vec<i64>,
        #[source]
        source: tokio_postgres::Error,
    },
}

impl Error {
    /// The HTTP status this error should become (see each variant's documentation).
    pub fn http_status(&self) -> u16 {
        match self {
            Error::InvalidName { .. } | Error::InvalidDownTarget { .. } | Error::InvalidUpTarget { .. } => 400,
            Error::InvalidFile { .. }
            | Error::DuplicateVersion { .. }
            | Error::UnknownVersion { .. }
            | Error::NotEnoughApplied { .. }
            | Error::Irreversible { .. }
            | Error::FileMissing { .. }
            | Error::MigrationFailed { .. }
            | Error::SeedFailed { .. } => 422,
            Error::Drift { .. }
            | Error::OutOfOrder { .. }
            | Error::LockTimeout { .. }
            | Error::AlreadyApplied { .. }
            | Error::SchemaTooNew { .. } => 409,
            Error::Unavailable { .. } => 503,
            Error::Io { .. } | Error::History { .. } | Error::BackupFailed { .. } => 500,
            Error::Autogenerate { source } => match source.as_ref() {
                super::autogen::Error::InvalidSchema { .. } => 422,
                super::autogen::Error::Unavailable { .. } => 503,
                _ => 500,
            },
        }
    }

    /// The SQLSTATE PostgreSQL reported, if this error came from the server.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::MigrationFailed { server: Some(pg), .. } | Error::SeedFailed { server: Some(pg), .. } => Some(&pg.sqlstate),
            Error::History { source, .. } => source.as_db_error().map(|db| db.code().code()),
            _ => None,
        }
    }

    /// Adapter for `map_err` on dbagent's own queries: a lost connection is
    /// [`Error::Unavailable`], a server error is [`Error::History`].
    pub(crate) fn history(action: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Error {
        move |source| {
            if source.as_db_error().is_none() {
                Error::Unavailable { source }
            } else {
                Error::History { action, source }
            }
        }
    }

    /// Adapter for `map_err`: an I/O failure of `action` on `path`.
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::Io { action, path, source }
    }
}

fn statement_note(statement: Option<usize>) -> String {
    match statement {
        None => String::new(),
        Some(1) => " at statement 1".to_string(),
        Some(n) => format!(
            " at statement {n}; statements 1 to {} were applied and were not undone",
            n - 1
        ),
    }
}

fn list(versions: &[i64]) -> String {
    let shown: Vec<String> = versions.iter().map(i64::to_string).collect();
    shown.join(", ")
}
