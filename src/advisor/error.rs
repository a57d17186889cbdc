//! What can go wrong explaining a query or managing indexes.

use crate::db::{self, PgError};
use crate::error::{Classify, ErrorKind};
use crate::query;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The statement cannot be explained (utility statement, session state).
    #[error("cannot explain this statement: {reason}")]
    NotExplainable { reason: String },
    /// Running the statement failed (SQL error, parameters, pool ...): its own kind.
    #[error(transparent)]
    Query(#[from] query::Error),
    /// EXPLAIN ANALYZE ran past the statement timeout.
    #[error("the statement ran longer than {seconds} s and was cancelled (try analyze: false)")]
    Timeout { seconds: f64 },
    /// PostgreSQL's EXPLAIN output was not what we expect.
    #[error("unreadable EXPLAIN output: {0}")]
    Plan(String),
    /// No such table.
    #[error("no table named {table}")]
    TableNotFound { table: String },
    /// No such index (or not on that table).
    #[error("no index named {index}")]
    IndexNotFound { index: String },
    /// Bad request: missing field, unknown action, refused drop.
    #[error("{0}")]
    Invalid(String),
    /// Refused because it would hurt (dropping an index that backs a constraint).
    #[error("{0}")]
    Refused(String),
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::NotExplainable { .. } | Error::Invalid(_) => ErrorKind::BadRequest,
            Error::Query(err) => err.kind(),
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Plan(_) => ErrorKind::DatabaseFailure,
            Error::TableNotFound { .. } | Error::IndexNotFound { .. } => ErrorKind::NotFound,
            Error::Refused(_) => ErrorKind::Conflict,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::NotExplainable { .. } | Error::Invalid(_) => "invalid_request",
            Error::Query(err) => err.code(),
            Error::Timeout { .. } => "query_timeout",
            Error::Plan(_) => "database_error",
            Error::TableNotFound { .. } => "table_not_found",
            Error::IndexNotFound { .. } => "index_not_found",
            Error::Refused(_) => "refused",
        }
    }

    fn server(&self) -> Option<&PgError> {
        match self {
            Error::Query(err) => err.server(),
            _ => None,
        }
    }
}

impl From<db::Error> for Error {
    fn from(err: db::Error) -> Self {
        Error::Query(query::Error::Db(err))
    }
}

impl From<query::ClassifyError> for Error {
    fn from(err: query::ClassifyError) -> Self {
        Error::Query(query::Error::Sql(err))
    }
}
