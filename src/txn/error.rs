//! Why a transaction did not commit.

use crate::db::{self, PgError};
use crate::error::{Classify, ErrorKind};
use crate::query;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the transaction has no statements")]
    Empty,
    /// Statement `index` (0-based) failed; the transaction was rolled back.
    #[error("statement {} failed; the transaction was rolled back", index + 1)]
    Statement {
        index: usize,
        #[source]
        source: query::Error,
    },
    /// Every attempt hit a serialization failure or deadlock.
    #[error("the transaction still conflicted after {attempts} attempt(s); nothing was committed")]
    RetriesExhausted { attempts: u32, last: PgError },
    /// COMMIT was refused (e.g. a deferred constraint); nothing was committed.
    #[error("COMMIT failed: {0}")]
    Commit(PgError),
    /// The connection was lost after COMMIT was sent: it may or may not have committed.
    #[error("the connection was lost during COMMIT; the transaction may or may not have committed, so it was not retried")]
    OutcomeUnknown,
    /// BEGIN or the connection failed before any statement ran.
    #[error(transparent)]
    Db(db::Error),
}

impl Error {
    pub(crate) fn statement(index: usize, source: query::Error) -> Self {
        Error::Statement { index, source }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Empty => ErrorKind::BadRequest,
            Error::Statement { source, .. } => source.kind(),
            Error::RetriesExhausted { .. } => ErrorKind::Conflict,
            Error::Commit(pg) => pg.kind(),
            Error::OutcomeUnknown => ErrorKind::OutcomeUnknown,
            Error::Db(err) => err.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::Empty => "invalid_request",
            Error::Statement { source, .. } => source.code(),
            Error::RetriesExhausted { .. } => "retries_exhausted",
            Error::Commit(pg) => pg.code(),
            Error::OutcomeUnknown => "outcome_unknown",
            Error::Db(err) => err.code(),
        }
    }

    fn server(&self) -> Option<&PgError> {
        match self {
            Error::Statement { source, .. } => source.server(),
            Error::RetriesExhausted { last, .. } => Some(last),
            Error::Commit(pg) => Some(pg),
            Error::Db(err) => err.server(),
            Error::Empty | Error::OutcomeUnknown => None,
        }
    }
}
