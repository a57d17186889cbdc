//! What can go wrong looking at sessions and locks, maintaining tables, or applying settings.

use crate::db;
use crate::error::{Classify, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A catalog query or a maintenance statement failed on the database's side (or could not run).
    #[error(transparent)]
    Db(#[from] db::Error),
    /// A parameter of the request is unusable.
    #[error("{0}")]
    Invalid(String),
    /// No session with this pid on the server.
    #[error("no session with pid {pid}")]
    SessionNotFound { pid: i32 },
    /// The session is dbagent's own, a superuser's, or not a client backend: not signalled
    /// without `force`.
    #[error("session {pid} is {reason}; pass force: true to signal it anyway")]
    Protected { pid: i32, reason: String },
    /// No such table.
    #[error("no table named {table}")]
    TableNotFound { table: String },
    /// Refused because of what it would do (VACUUM FULL's lock, a restart-only setting).
    #[error("{0}")]
    Refused(String),
}

impl Error {
    /// A driver error on one of ops' own sessions (nothing of the caller's in flight).
    pub fn driver(err: tokio_postgres::Error) -> Error {
        Error::Db(db::Error::from_driver(err, false))
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Db(err) => err.kind(),
            Error::Invalid(_) => ErrorKind::BadRequest,
            Error::SessionNotFound { .. } | Error::TableNotFound { .. } => ErrorKind::NotFound,
            Error::Protected { .. } | Error::Refused(_) => ErrorKind::Conflict,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::Db(err) => err.code(),
            Error::Invalid(_) => "invalid_request",
            Error::SessionNotFound { .. } => "session_not_found",
            Error::TableNotFound { .. } => "table_not_found",
            Error::Protected { .. } => "session_protected",
            Error::Refused(_) => "refused",
        }
    }

    fn server(&self) -> Option<&db::PgError> {
        match self {
            Error::Db(err) => err.server(),
            _ => None,
        }
    }
}
