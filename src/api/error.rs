//! The one door from errors to HTTP: every error kind gets exactly one status and one `code`.
//!
//! | code | status | when |
//! |---|---|---|
//! | `invalid_request` | 400 | body is not JSON / misses a field / has an unknown field |
//! | `syntax_error` | 400 | the SQL does not parse (SQLSTATE 42601, with `position`) |
//! | `invalid_sql` | 400 | empty SQL, or several statements in `/query` |
//! | `statement_not_allowed` | 400 | session state (SET, LISTEN ...) or transaction control where it cannot work |
//! | `invalid_parameters` | 400 | wrong parameter count, or a value that does not fit the inferred type |
//! | `sql_error` | 400 | PostgreSQL rejected the statement (SQLSTATE given) |
//! | `invalid_name` | 400 | `/schema/{table}` name does not parse |
//! | `permission_denied` | 403 | SQLSTATE 42501 |
//! | `not_found` / `table_not_found` | 404 | unknown route / unknown table |
//! | `method_not_allowed` | 405 | |
//! | `constraint_violation` | 409 | SQLSTATE class 23 |
//! | `conflict` | 409 | serialization failure, deadlock or lock timeout outside `/transaction` |
//! | `retries_exhausted` | 409 | `/transaction` still conflicting after `max_retries` |
//! | `payload_too_large` | 413 | body over the limit |
//! | `outcome_unknown` | 502 | connection lost while a write or COMMIT was in flight: do not retry blindly |
//! | `database_error` | 502 | PostgreSQL internal/system error (classes 58, XX), or a value it sent that cannot be converted |
//! | `pool_exhausted` | 503 | no connection free within the acquire timeout |
//! | `database_unavailable` | 503 | PostgreSQL cannot be reached, is shutting down or out of resources |
//! | `not_primary` | 503 | the primary answered as a standby |
//! | `query_timeout` | 504 | the statement ran past `query_timeout` and was cancelled on the server |
//! | `invalid_migration_files`, `invalid_target`, `irreversible_migration`, `migration_file_missing` | 422 | the migration files or the target do not allow the request |
//! | `migration_failed`, `seed_failed` | 422 | a migration's (or seed's) SQL failed; rolled back; SQLSTATE given |
//! | `migration_drift`, `migration_out_of_order`, `migration_locked`, `already_applied`, `schema_too_new` | 409 | history and files disagree, or another runner holds the lock |
//! | `index_not_found` | 404 | `/indexes` names no such index |
//! | `refused` | 409 | `/indexes` would drop a constraint's index, or the name is taken |
//! | `backup_not_found` | 404 | no backup with that id |
//! | `outside_backup_location` | 400 | a restore path outside `backup.location` |
//! | `verification_failed` | 422 | a backup file is damaged (named), the key is wrong, row counts differ |
//! | `backup_error` | 500 | pg_dump / pg_restore missing or failed, I/O |
//! | `migration_error` | 500 | dbagent's own history queries, file I/O or the backup before migrating failed |

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::db::{self, PgError};
use crate::query::{self, ClassifyError};
use crate::{advisor, migrate, schema, txn};

/// An error answer: `{"success": false, "error": {...}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// For `/transaction`: which statement (0-based) failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement_index: Option<usize>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                sqlstate: None,
                detail: None,
                hint: None,
                position: None,
                statement_index: None,
            },
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    fn from_pg(pg: PgError) -> Self {
        let (status, code) = pg_status(&pg.sqlstate);
        ApiError {
            status,
            body: ErrorBody {
                code,
                message: pg.message,
                sqlstate: Some(pg.sqlstate),
                detail: pg.detail,
                hint: pg.hint,
                position: pg.position,
                statement_index: None,
            },
        }
    }
}

/// Status and code of a server-reported error, by SQLSTATE.
fn pg_status(sqlstate: &str) -> (StatusCode, &'static str) {
    let class = sqlstate.get(..2).unwrap_or("");
    match (class, sqlstate) {
        (_, "42501") => (StatusCode::FORBIDDEN, "permission_denied"),
        (_, "57014") => (StatusCode::GATEWAY_TIMEOUT, "query_timeout"),
        (_, "40001" | "40P01" | "55P03") => (StatusCode::CONFLICT, "conflict"),
        ("23", _) => (StatusCode::CONFLICT, "constraint_violation"),
        ("08" | "53" | "57" | "28", _) => (StatusCode::SERVICE_UNAVAILABLE, "database_unavailable"),
        ("58" | "XX", _) => (StatusCode::BAD_GATEWAY, "database_error"),
        _ => (StatusCode::BAD_REQUEST, "sql_error"),
    }
}

impl From<db::Error> for ApiError {
    fn from(err: db::Error) -> Self {
        use StatusCode as S;
        let message = err.to_string();
        match err {
            db::Error::Server(pg) => ApiError::from_pg(pg),
            db::Error::PoolExhausted { .. } => ApiError::new(S::SERVICE_UNAVAILABLE, "pool_exhausted", message),
            db::Error::Unavailable { .. } => ApiError::new(S::SERVICE_UNAVAILABLE, "database_unavailable", message),
            db::Error::NotPrimary => ApiError::new(S::SERVICE_UNAVAILABLE, "not_primary", message),
            db::Error::OutcomeUnknown => ApiError::new(S::BAD_GATEWAY, "outcome_unknown", message),
            db::Error::Timeout { .. } => ApiError::new(S::GATEWAY_TIMEOUT, "query_timeout", message),
            db::Error::UnexpectedAnswer { .. } => {
                tracing::error!(error = %message, "dbagent's own query got an unexpected answer");
                ApiError::new(S::INTERNAL_SERVER_ERROR, "internal", "internal error")
            }
            db::Error::Decode(source) => {
                tracing::error!(error = %source, "cannot convert a value from PostgreSQL");
                ApiError::new(S::BAD_GATEWAY, "database_error", format!("{message}: {source}"))
            }
        }
    }
}

impl From<query::Error> for ApiError {
    fn from(err: query::Error) -> Self {
        use StatusCode as S;
        let message = err.to_string();
        match err {
            query::Error::Sql(ClassifyError::Syntax { message, position }) => {
                let mut e = ApiError::new(S::BAD_REQUEST, "syntax_error", message);
                e.body.sqlstate = Some("42601".into());
                e.body.position = position;
                e
            }
            query::Error::Sql(_) => ApiError::new(S::BAD_REQUEST, "invalid_sql", message),
            query::Error::NotAllowed { .. } => ApiError::new(S::BAD_REQUEST, "statement_not_allowed", message),
            query::Error::ParamCount { .. } | query::Error::Param(_) => {
                ApiError::new(S::BAD_REQUEST, "invalid_parameters", message)
            }
            query::Error::Db(err) => err.into(),
        }
    }
}

impl From<txn::Error> for ApiError {
    fn from(err: txn::Error) -> Self {
        use StatusCode as S;
        let message = err.to_string();
        match err {
            txn::Error::Empty => ApiError::invalid_request(message),
            txn::Error::Statement { index, source } => {
                let mut e = ApiError::from(source);
                e.body.statement_index = Some(index);
                e.body.message = format!("statement {}: {}", index + 1, e.body.message);
                e
            }
            txn::Error::RetriesExhausted { last, .. } => {
                let mut e = ApiError::from_pg(last);
                e.status = S::CONFLICT;
                e.body.code = "retries_exhausted";
                e.body.message = format!("{message} (last error: {})", e.body.message);
                e
            }
            txn::Error::Commit(pg) => ApiError::from_pg(pg),
            txn::Error::OutcomeUnknown => ApiError::new(S::BAD_GATEWAY, "outcome_unknown", message),
            txn::Error::Db(err) => err.into(),
        }
    }
}

impl From<schema::Error> for ApiError {
    fn from(err: schema::Error) -> Self {
        let message = err.to_string();
        match err {
            schema::Error::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, "table_not_found", message),
            schema::Error::InvalidName { .. } => ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", message),
            schema::Error::Db(err) => err.into(),
        }
    }
}

impl From<migrate::Error> for ApiError {
    fn from(err: migrate::Error) -> Self {
        use migrate::Error as E;
        let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let code = match &err {
            E::InvalidName { .. } | E::InvalidDownTarget { .. } | E::InvalidUpTarget { .. } => "invalid_request",
            E::InvalidFile { .. } | E::DuplicateVersion { .. } => "invalid_migration_files",
            E::UnknownVersion { .. } | E::NotEnoughApplied { .. } => "invalid_target",
            E::Irreversible { .. } => "irreversible_migration",
            E::FileMissing { .. } => "migration_file_missing",
            E::MigrationFailed { .. } => "migration_failed",
            E::SeedFailed { .. } => "seed_failed",
            E::Drift { .. } => "migration_drift",
            E::OutOfOrder { .. } => "migration_out_of_order",
            E::LockTimeout { .. } => "migration_locked",
            E::AlreadyApplied { .. } => "already_applied",
            E::SchemaTooNew { .. } => "schema_too_new",
            E::Unavailable { .. } => "database_unavailable",
            E::Io { .. } | E::History { .. } | E::BackupFailed { .. } => "migration_error",
            E::Autogenerate { source } => match source.as_ref() {
                migrate::autogen::Error::InvalidSchema { .. } => "invalid_schema",
                migrate::autogen::Error::Unavailable { .. } => "database_unavailable",
                _ => "migration_error",
            },
        };
        let mut e = ApiError::new(status, code, db::error_chain(&err));
        if let E::Autogenerate { source } = &err
            && let migrate::autogen::Error::InvalidSchema { server, .. } = source.as_ref() {
                e.body.sqlstate = Some(server.sqlstate.clone());
                e.body.hint = server.hint.clone();
            }
        if let E::MigrationFailed { server: Some(pg), .. } | E::SeedFailed { server: Some(pg), .. } = &err {
            e.body.sqlstate = Some(pg.sqlstate.clone());
            e.body.detail = pg.detail.clone();
            e.body.hint = pg.hint.clone();
            e.body.position = pg.position;
        }
        e
    }
}

impl From<advisor::Error> for ApiError {
    fn from(err: advisor::Error) -> Self {
        use StatusCode as S;
        let message = err.to_string();
        match err {
            advisor::Error::NotExplainable { .. } | advisor::Error::Invalid(_) => ApiError::invalid_request(message),
            advisor::Error::Query(err) => err.into(),
            advisor::Error::Timeout { .. } => ApiError::new(S::GATEWAY_TIMEOUT, "query_timeout", message),
            advisor::Error::Plan(_) => ApiError::new(S::BAD_GATEWAY, "database_error", message),
            advisor::Error::TableNotFound { .. } => ApiError::new(S::NOT_FOUND, "table_not_found", message),
            advisor::Error::IndexNotFound { .. } => ApiError::new(S::NOT_FOUND, "index_not_found", message),
            advisor::Error::Refused(_) => ApiError::new(S::CONFLICT, "refused", message),
        }
    }
}

impl From<crate::backup::Error> for ApiError {
    fn from(err: crate::backup::Error) -> Self {
        use crate::backup::Error as E;
        let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let code = match &err {
            E::NotFound { .. } => "backup_not_found",
            E::Pinned { .. } | E::TargetExists { .. } | E::Conflict { .. } => "conflict",
            E::OutsideLocation { .. } => "outside_backup_location",
            E::VerificationFailed { .. } | E::RowCountMismatch { .. } | E::Decrypt { .. } | E::WrongKey { .. } => "verification_failed",
            E::Unavailable { .. } => "database_unavailable",
            _ if status.is_client_error() => "invalid_request",
            _ => "backup_error",
        };
        let mut e = ApiError::new(status, code, db::error_chain(&err));
        e.body.sqlstate = err.sqlstate().map(str::to_owned);
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = self.status.as_u16(), code = self.body.code, message = %self.body.message, "request failed");
        }
        #[derive(Serialize)]
        struct Envelope<'a> {
            success: bool,
            error: &'a ErrorBody,
        }
        let body = serde_json::to_vec(&Envelope { success: false, error: &self.body }).unwrap_or_default();
        (self.status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sqlstate_class_has_one_status() {
        let cases = [
            ("42601", 400),
            ("42P01", 400),
            ("22P02", 400),
            ("23505", 409),
            ("23503", 409),
            ("40001", 409),
            ("40P01", 409),
            ("42501", 403),
            ("57014", 504),
            ("57P01", 503),
            ("53300", 503),
            ("08006", 503),
            ("XX000", 502),
            ("P0001", 400),
        ];
        for (sqlstate, status) in cases {
            assert_eq!(pg_status(sqlstate).0.as_u16(), status, "{sqlstate}");
        }
    }
}
