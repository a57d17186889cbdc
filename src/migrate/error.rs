//! The one error type of the `migrate` module: what went wrong reading migration files,
//! deciding what to run, holding the migration lock, or running a migration.

use std::io;
use std::path::{Path, PathBuf};

use super::report::Direction;
use crate::error::{Classify, ErrorKind, INTERNAL};

pub use crate::db::PgError;

/// Everything that can go wrong while managing migrations.
///
/// [`Classify`] gives each variant's kind and code; messages describe this layer and the
/// underlying error, when there is one, is the [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A migration file or the directory could not be read or written.
    #[error("could not {action} {}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A `.sql` file in the migrations directory is not a usable migration.
    #[error("{} is not a valid migration file: {reason}", .path.display())]
    InvalidFile { path: PathBuf, reason: String },

    /// Two files claim the same version.
    #[error("migration version {version} is used by both {} and {}", .first.display(), .second.display())]
    DuplicateVersion {
        version: i64,
        first: PathBuf,
        second: PathBuf,
    },

    /// The name given for a new migration has nothing usable in it.
    #[error("invalid migration name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    /// `down` would run down files that lose data (dropped tables or columns, every row
    /// deleted) and `confirm` was not given; nothing ran.
    #[error(
        "reverting would lose data: {summary}; nothing was run. Check the plan with dry_run, take a \
         backup, then send confirm: true (CLI: --confirm)"
    )]
    DataLossUnconfirmed { summary: String },

    /// A down target is neither `-N`, a version, nor `base`.
    #[error("invalid down target {input:?}: expected -N (steps back), a version, or `base`")]
    InvalidDownTarget { input: String },

    /// A target or baseline version matches no migration file and no applied migration.
    #[error("no migration has version {version}")]
    UnknownVersion { version: i64 },

    /// `down -N` asked for more steps than there are applied migrations.
    #[error("cannot revert {requested} migration(s): only {applied} are applied")]
    NotEnoughApplied { requested: u32, applied: usize },

    /// A migration to revert has no down file.
    #[error(
        "migration {version} cannot be reverted: {} has no down file (only `.up.sql` files \
         with a `.down.sql` beside them are reversible)",
        .path.display()
    )]
    Irreversible { version: i64, path: PathBuf },

    /// A migration to revert is applied but its files are gone.
    #[error("migration {version} cannot be reverted: it is applied but its files are gone")]
    FileMissing { version: i64 },

    /// Applied migrations whose files changed since they ran.
    #[error(
        "applied migration(s) {} changed on disk since they ran (checksum differs); restore the \
         files or accept them with `repair`",
        list(.versions)
    )]
    Drift { versions: Vec<i64> },

    /// Pending migrations older than the newest applied one.
    #[error(
        "pending migration(s) {} are older than the newest applied one; apply them with \
         --allow-out-of-order if that is intended",
        list(.versions)
    )]
    OutOfOrder { versions: Vec<i64> },

    /// Another runner held the migration lock for the whole wait.
    #[error("another migration run held the migration lock for longer than {waited_ms} ms")]
    LockTimeout { waited_ms: u64 },

    /// `baseline` on a database that already has applied migrations.
    #[error("cannot baseline: {applied} migration(s) are already recorded as applied")]
    AlreadyApplied { applied: usize },

    /// The `dbagent` schema was upgraded by a newer dbagent than this one.
    #[error(
        "the dbagent schema is at internal version {found}, newer than this dbagent knows \
         ({known}); upgrade dbagent"
    )]
    SchemaTooNew { found: i32, known: i32 },

    /// The database could not be reached, or the connection was lost.
    #[error("the database is unavailable")]
    Unavailable {
        #[source]
        source: tokio_postgres::Error,
    },

    /// One of dbagent's own queries (the lock, the `dbagent` schema and its tables) was refused
    /// by the server, e.g. for lack of privilege.
    #[error("could not {action}")]
    History {
        action: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },

    /// `up`'s target is not `head`, `+N` or a version.
    #[error("{given:?} is not an upgrade target (expected head, +N or a version number)")]
    InvalidUpTarget { given: String },

    /// The backup before migrating failed; nothing was applied.
    #[error("the backup before migrating failed; nothing was applied")]
    BackupFailed {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// `autogenerate` could not compare the schemas (its kind and code are the cause's).
    #[error("autogenerate failed")]
    Autogenerate {
        #[source]
        source: Box<super::autogen::Error>,
    },

    /// A seed script failed; the seed transaction was rolled back.
    #[error("seed script {} failed; nothing was seeded", .path.display())]
    SeedFailed {
        path: PathBuf,
        server: Option<Box<PgError>>,
        #[source]
        source: tokio_postgres::Error,
    },

    /// A migration's SQL failed; its transaction was rolled back (except, for a
    /// no-transaction file, the statements before `statement`).
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

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidName { .. } | Error::InvalidDownTarget { .. } | Error::InvalidUpTarget { .. } => ErrorKind::BadRequest,
            Error::InvalidFile { .. }
            | Error::DuplicateVersion { .. }
            | Error::UnknownVersion { .. }
            | Error::NotEnoughApplied { .. }
            | Error::Irreversible { .. }
            | Error::FileMissing { .. }
            | Error::MigrationFailed { .. }
            | Error::SeedFailed { .. } => ErrorKind::Unprocessable,
            Error::Drift { .. }
            | Error::OutOfOrder { .. }
            | Error::LockTimeout { .. }
            | Error::AlreadyApplied { .. }
            | Error::SchemaTooNew { .. }
            | Error::DataLossUnconfirmed { .. } => ErrorKind::Conflict,
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Io { .. } | Error::History { .. } | Error::BackupFailed { .. } => ErrorKind::Internal,
            Error::Autogenerate { source } => source.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::InvalidName { .. } | Error::InvalidDownTarget { .. } | Error::InvalidUpTarget { .. } => "invalid_request",
            Error::InvalidFile { .. } | Error::DuplicateVersion { .. } => "invalid_migration_files",
            Error::UnknownVersion { .. } | Error::NotEnoughApplied { .. } => "invalid_target",
            Error::Irreversible { .. } => "irreversible_migration",
            Error::FileMissing { .. } => "migration_file_missing",
            Error::MigrationFailed { .. } => "migration_failed",
            Error::SeedFailed { .. } => "seed_failed",
            Error::Drift { .. } => "migration_drift",
            Error::OutOfOrder { .. } => "migration_out_of_order",
            Error::LockTimeout { .. } => "migration_locked",
            Error::AlreadyApplied { .. } => "already_applied",
            Error::SchemaTooNew { .. } => "schema_too_new",
            Error::DataLossUnconfirmed { .. } => "confirmation_required",
            Error::Unavailable { .. } => "database_unavailable",
            Error::Io { .. } | Error::History { .. } | Error::BackupFailed { .. } => INTERNAL,
            Error::Autogenerate { source } => source.code(),
        }
    }

    fn server(&self) -> Option<&PgError> {
        match self {
            Error::MigrationFailed { server: Some(pg), .. } | Error::SeedFailed { server: Some(pg), .. } => Some(pg),
            Error::Autogenerate { source } => source.server(),
            _ => None,
        }
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
