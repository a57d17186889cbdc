//! Why a transaction did not commit.

use crate::db::{self, PgError};
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
