//! What can go wrong talking to PostgreSQL, with the server's own diagnostics kept intact.

use std::fmt;

use serde::Serialize;

use crate::error::{Classify, ErrorKind};

/// A server-reported error: SQLSTATE plus the fields PostgreSQL gave.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PgError {
    /// Five-character SQLSTATE, e.g. `42P01`.
    pub sqlstate: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// 1-based character offset into the statement, when the server gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.sqlstate)
    }
}

impl PgError {
    pub fn from_db(err: &tokio_postgres::error::DbError) -> Self {
        use tokio_postgres::error::ErrorPosition;
        PgError {
            sqlstate: err.code().code().to_string(),
            message: err.message().to_string(),
            detail: err.detail().map(str::to_string),
            hint: err.hint().map(str::to_string),
            position: match err.position() {
                Some(ErrorPosition::Original(p)) => Some(*p),
                Some(ErrorPosition::Internal { .. }) | None => None,
            },
        }
    }

    pub fn is(&self, sqlstate: &str) -> bool {
        self.sqlstate == sqlstate
    }

    /// Serialization failure, deadlock, or SERIALIZABLE's shared memory running short: the
    /// whole transaction may be re-run.
    pub fn is_retryable(&self) -> bool {
        self.is("40001") || self.is("40P01") || self.is_ssi_shortage()
    }

    /// SERIALIZABLE's shared conflict-tracking memory ran short (53200, "not enough elements
    /// in RWConflictPool", or out of predicate locks): the server asks for fewer transactions
    /// at a time, which a re-run after backoff gives it. Any other 53200 is not retried.
    fn is_ssi_shortage(&self) -> bool {
        let hint = self.hint.as_deref().unwrap_or("");
        self.is("53200") && (self.message.contains("RWConflictPool") || hint.contains("max_pred_locks"))
    }

    /// The kind and code of a server-reported error, by SQLSTATE.
    pub fn classify(&self) -> (ErrorKind, &'static str) {
        let class = self.sqlstate.get(..2).unwrap_or("");
        match (class, self.sqlstate.as_str()) {
            (_, "42501") => (ErrorKind::PermissionDenied, "permission_denied"),
            (_, "57014") => (ErrorKind::Timeout, "query_timeout"),
            (_, "40001" | "40P01" | "55P03") => (ErrorKind::Conflict, "conflict"),
            ("23", _) => (ErrorKind::Conflict, "constraint_violation"),
            ("08" | "53" | "57" | "28", _) => (ErrorKind::Unavailable, "database_unavailable"),
            ("58" | "XX", _) => (ErrorKind::DatabaseFailure, "database_error"),
            _ => (ErrorKind::BadRequest, "sql_error"),
        }
    }
}

impl Classify for PgError {
    fn kind(&self) -> ErrorKind {
        self.classify().0
    }

    fn code(&self) -> &'static str {
        self.classify().1
    }

    fn server(&self) -> Option<&PgError> {
        Some(self)
    }
}

/// Failure of a database operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server rejected the statement; its diagnostics are kept.
    #[error("{0}")]
    Server(PgError),
    /// No connection became free within the acquire timeout.
    #[error("no database connection became free within {timeout_secs} s (pool of {max_size} is exhausted)")]
    PoolExhausted { timeout_secs: f64, max_size: u32 },
    /// The server could not be reached or the connection died before the statement was sent.
    #[error("the database is unavailable: {reason}")]
    Unavailable { reason: String },
    /// The connection died while a statement that may have changed data was in flight.
    #[error("the connection was lost while the statement or COMMIT was in flight; it may or may not have taken effect")]
    OutcomeUnknown,
    /// The statement ran past the query timeout and was cancelled on the server.
    #[error("the statement exceeded the query timeout of {timeout_secs} s and was cancelled")]
    Timeout { timeout_secs: f64 },
    /// The connection answered as a standby where a primary was required.
    #[error("the server is in recovery (a standby), so it cannot take writes")]
    NotPrimary,
    /// A value the server sent could not be converted.
    #[error("cannot convert a value the server sent")]
    Decode(#[from] super::types::DecodeError),
    /// One of dbagent's own queries got an answer it cannot read (a column missing or of
    /// another type): a bug in dbagent, not a database problem.
    #[error("unexpected answer to dbagent's own query: {reason}")]
    UnexpectedAnswer { reason: String },
    /// The driver could not encode what dbagent sent (a parameter, a message): a value that
    /// should have been refused earlier, so dbagent's bug, not the database being away.
    #[error("the driver could not send a request: {reason}")]
    Encode { reason: String },
}

impl Error {
    /// Classifies a driver error. `in_flight_write` says whether a lost connection could have
    /// left a write half-known (then the outcome is unknown rather than "unavailable").
    pub fn from_driver(err: tokio_postgres::Error, in_flight_write: bool) -> Self {
        if let Some(db) = err.as_db_error() {
            let pg = PgError::from_db(db);
            return match pg.sqlstate.as_str() {
                // admin_shutdown, crash_shutdown, cannot_connect_now: the server is going away.
                "57P01" | "57P02" | "57P03" if in_flight_write => Error::OutcomeUnknown,
                "57P01" | "57P02" | "57P03" => Error::Unavailable { reason: pg.message },
                _ => Error::Server(pg),
            };
        }
        if in_flight_write && err.is_closed() {
            return Error::OutcomeUnknown;
        }
        // tokio-postgres does not expose its error kinds; its messages for the client-side
        // ones are fixed texts.
        let text = err.to_string();
        if ["error serializing parameter", "error encoding message to server"].iter().any(|p| text.starts_with(p)) {
            return Error::Encode { reason: error_chain(&err) };
        }
        Error::Unavailable { reason: error_chain(&err) }
    }

    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Server(pg) => Some(&pg.sqlstate),
            _ => None,
        }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Server(pg) => pg.kind(),
            Error::PoolExhausted { .. } | Error::Unavailable { .. } | Error::NotPrimary => ErrorKind::Unavailable,
            Error::OutcomeUnknown => ErrorKind::OutcomeUnknown,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Decode(_) => ErrorKind::DatabaseFailure,
            Error::UnexpectedAnswer { .. } | Error::Encode { .. } => ErrorKind::Internal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::Server(pg) => pg.code(),
            Error::PoolExhausted { .. } => "pool_exhausted",
            Error::Unavailable { .. } => "database_unavailable",
            Error::NotPrimary => "not_primary",
            Error::OutcomeUnknown => "outcome_unknown",
            Error::Timeout { .. } => "query_timeout",
            Error::Decode(_) => "database_error",
            Error::UnexpectedAnswer { .. } | Error::Encode { .. } => "internal_error",
        }
    }

    fn server(&self) -> Option<&PgError> {
        match self {
            Error::Server(pg) => Some(pg),
            _ => None,
        }
    }
}

/// `err` and its causes on one line: the driver's top-level text alone is often just "db error".
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        // A TLS failure is told in libpq's words, not the TLS library's.
        let cause_text = super::tls::describe_error(cause).unwrap_or_else(|| cause.to_string());
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod retry_tests {
    use super::PgError;

    fn error(sqlstate: &str, message: &str, hint: Option<&str>) -> PgError {
        PgError { sqlstate: sqlstate.into(), message: message.into(), detail: None, hint: hint.map(Into::into), position: None }
    }

    #[test]
    fn only_conflicts_and_serializables_shortages_are_re_run() {
        assert!(error("40001", "could not serialize access", None).is_retryable());
        assert!(error("40P01", "deadlock detected", None).is_retryable());
        assert!(error("53200", "not enough elements in RWConflictPool to record a read/write conflict", None).is_retryable());
        assert!(error("53200", "out of shared memory", Some("You might need to increase max_pred_locks_per_transaction.")).is_retryable());
        assert!(!error("53200", "out of shared memory", Some("You might need to increase max_locks_per_transaction.")).is_retryable());
        assert!(!error("53100", "could not extend file", None).is_retryable());
        assert!(!error("23505", "duplicate key value", None).is_retryable());
    }
}
