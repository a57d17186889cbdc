//! What can go wrong explaining a query or managing indexes.

use crate::{db, query};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The statement cannot be explained (utility statement, session state). HTTP 400.
    #[error("cannot explain this statement: {reason}")]
    NotExplainable { reason: String },
    /// Running the statement failed (SQL error, parameters, pool ...): its own status.
    #[error(transparent)]
    Query(#[from] query::Error),
    /// EXPLAIN ANALYZE ran past the statement timeout. HTTP 504.
    #[error("the statement ran longer than {seconds} s and was cancelled (try analyze: false)")]
    Timeout { seconds: f64 },
    /// PostgreSQL's EXPLAIN output was not what we expect. HTTP 502.
    #[error("unreadable EXPLAIN output: {0}")]
    Plan(String),
    /// No such table. HTTP 404.
    #[error("no table named {table}")]
    TableNotFound { table: String },
    /// No such index (or not on that table). HTTP 404.
    #[error("no index named {index}")]
    IndexNotFound { index: String },
    /// Bad request: missing field, unknown action, refused drop. HTTP 400.
    #[error("{0}")]
    Invalid(String),
    /// Refused because it would hurt (dropping an index that backs a constraint). HTTP 409.
    #[error("{0}")]
    Refused(String),
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
