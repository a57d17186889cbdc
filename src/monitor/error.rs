//! What can go wrong reading statistics and the metric history.

use crate::db;
use crate::error::{Classify, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A statistics query or the history failed on the database's side (or could not run).
    #[error(transparent)]
    Db(#[from] db::Error),
    /// `pg_stat_statements` is not loaded or not created in this database; `how` says what to
    /// do about it.
    #[error("pg_stat_statements is not available in this database: {how}")]
    StatementsUnavailable { how: String },
    /// A parameter of a statistics or history request is unusable.
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// A driver error of one of the monitor's own sessions (it wrote nothing in flight).
    pub fn driver(err: tokio_postgres::Error) -> Error {
        Error::Db(db::Error::from_driver(err, false))
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Db(err) => err.kind(),
            Error::StatementsUnavailable { .. } => ErrorKind::Unprocessable,
            Error::Invalid(_) => ErrorKind::BadRequest,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::Db(err) => err.code(),
            Error::StatementsUnavailable { .. } => "pg_stat_statements_unavailable",
            Error::Invalid(_) => "invalid_request",
        }
    }

    fn server(&self) -> Option<&db::PgError> {
        match self {
            Error::Db(err) => err.server(),
            _ => None,
        }
    }
}
