//! What kind of failure an error is, in words every front end can act on.
//!
//! Each capability error (`db`, `query`, `txn`, `schema`, `migrate`, `backup`, `advisor`)
//! implements [`Classify`]: a [`ErrorKind`] and a stable `code` (`sql_error`,
//! `backup_not_found`, ...). Nothing here knows HTTP or exit codes: `api/error.rs` alone turns a
//! kind into a status, and `cli` turns the same kind into an exit code.

use crate::db::PgError;

/// The kinds of failure, by what the caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or asks for the impossible; sent again unchanged it fails again.
    BadRequest,
    /// The caller did not prove who it is (no API key, or one that is unknown, expired or
    /// revoked).
    Unauthenticated,
    /// The database refused for lack of privilege, or the caller's key does not reach this.
    PermissionDenied,
    /// What the request names does not exist.
    NotFound,
    /// The request clashes with the current state (a constraint, a concurrent transaction, a
    /// lock, the migration history, an existing database); it may work once that changes.
    Conflict,
    /// The request is too large to take.
    TooLarge,
    /// The request is well-formed but what it works on does not allow it (migration files, a
    /// migration's SQL, a damaged backup, the wrong key).
    Unprocessable,
    /// The connection was lost while a write or COMMIT was in flight: it may or may not have
    /// taken effect.
    OutcomeUnknown,
    /// The database server failed on its side, or sent something dbagent cannot read.
    DatabaseFailure,
    /// The database cannot be reached or cannot take the work now (pool exhausted, shutting
    /// down, a standby where a primary is needed).
    Unavailable,
    /// The work ran past its time limit and was cancelled.
    Timeout,
    /// The caller sent more than its key allows (rate or requests in flight); it may retry
    /// after the time given.
    RateLimited,
    /// dbagent itself failed (I/O, its own queries, a tool it runs, a bug). The details are for
    /// the log, not for the caller.
    Internal,
}

impl ErrorKind {
    /// Every kind, for tables and tests.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::BadRequest,
        ErrorKind::Unauthenticated,
        ErrorKind::PermissionDenied,
        ErrorKind::NotFound,
        ErrorKind::Conflict,
        ErrorKind::TooLarge,
        ErrorKind::Unprocessable,
        ErrorKind::OutcomeUnknown,
        ErrorKind::DatabaseFailure,
        ErrorKind::Unavailable,
        ErrorKind::Timeout,
        ErrorKind::RateLimited,
        ErrorKind::Internal,
    ];
}

/// The code of every [`ErrorKind::Internal`] error: the details stay in the log.
pub const INTERNAL: &str = "internal_error";

/// What a capability error tells its callers beyond its message.
pub trait Classify {
    /// What kind of failure this is.
    fn kind(&self) -> ErrorKind;
    /// A stable, machine-readable name (`snake_case`); [`INTERNAL`] for every internal error.
    fn code(&self) -> &'static str;
    /// PostgreSQL's diagnostics, when the server reported this failure and they are the
    /// caller's to see (never for an internal error).
    fn server(&self) -> Option<&PgError> {
        None
    }
}
