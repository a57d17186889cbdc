//! Why a statement could not be run.

use crate::db::{self, PgError};
use crate::error::{Classify, ErrorKind};
use crate::db::types::ParamError;

use super::classify::ClassifyError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SQL does not parse, is empty, or holds several statements.
    #[error(transparent)]
    Sql(#[from] ClassifyError),
    /// The statement is not allowed through this endpoint.
    #[error("statement not allowed here: {reason}")]
    NotAllowed { reason: String },
    /// The caller's API key does not reach this statement (a write with a read key, DDL
    /// with a write key).
    #[error("{reason}")]
    Forbidden { reason: String },
    /// The statement wants a different number of parameters.
    #[error("the statement takes {expected} parameter(s) but {given} were given")]
    ParamCount { expected: usize, given: usize },
    /// A parameter cannot be converted to the type PostgreSQL inferred.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// The rows' JSON would pass `postgresql.max_response_bytes`. The statement itself ran to
    /// its end (the connection drains the rest): an autocommit write took effect; inside a
    /// transaction, the transaction is rolled back.
    #[error(
        "the answer would be larger than postgresql.max_response_bytes ({limit} bytes); select fewer or narrower columns (left(col, n), length(col)), add a LIMIT, or raise postgresql.max_response_bytes"
    )]
    ResponseTooLarge { limit: usize },
    /// The database failed or refused the statement.
    #[error(transparent)]
    Db(#[from] db::Error),
}

impl Error {
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Db(err) => err.sqlstate(),
            _ => None,
        }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Sql(_) | Error::NotAllowed { .. } | Error::ParamCount { .. } | Error::Param(_) => ErrorKind::BadRequest,
            Error::Forbidden { .. } => ErrorKind::PermissionDenied,
            Error::ResponseTooLarge { .. } => ErrorKind::Unprocessable,
            Error::Db(err) => err.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::Sql(ClassifyError::Syntax { .. }) => "syntax_error",
            Error::Sql(_) => "invalid_sql",
            Error::NotAllowed { .. } => "statement_not_allowed",
            Error::Forbidden { .. } => "scope_forbids",
            Error::ParamCount { .. } | Error::Param(_) => "invalid_parameters",
            Error::ResponseTooLarge { .. } => "response_too_large",
            Error::Db(err) => err.code(),
        }
    }

    fn server(&self) -> Option<&PgError> {
        match self {
            Error::Db(err) => err.server(),
            _ => None,
        }
    }
}
