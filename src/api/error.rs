//! The one door from errors to HTTP: every [`ErrorKind`] gets exactly one status, and every
//! `code` a client can see is in this table (a unit test checks that each variant of each
//! capability error lands on a row here, with the row's status).
//!
//! | kind | status |
//! |---|---|
//! | `BadRequest` | 400 |
//! | `Unauthenticated` | 401 |
//! | `PermissionDenied` | 403 |
//! | `NotFound` | 404 |
//! | `Conflict` | 409 |
//! | `TooLarge` | 413 |
//! | `Unprocessable` | 422 |
//! | `Internal` | 500 |
//! | `OutcomeUnknown` | 502 |
//! | `DatabaseFailure` | 502 |
//! | `Unavailable` | 503 |
//! | `Timeout` | 504 |
//! | `RateLimited` | 429 |
//!
//! | code | kind | status | when |
//! |---|---|---|---|
//! | `invalid_request` | `BadRequest` | 400 | the body is not JSON, misses a field or has an unknown one; a field's value is unusable (a migration name or target, a backup request, an `/indexes` action, a statement that cannot be explained) |
//! | `not_managed` | `BadRequest` | 400 | a switchover asked of a server dbagent does not run |
//! | `syntax_error` | `BadRequest` | 400 | the SQL does not parse (SQLSTATE 42601, with `position`) |
//! | `invalid_sql` | `BadRequest` | 400 | empty SQL, or several statements in `/query` |
//! | `statement_not_allowed` | `BadRequest` | 400 | session state (SET, LISTEN ...) or transaction control where it cannot work |
//! | `invalid_parameters` | `BadRequest` | 400 | wrong parameter count, or a value that does not fit the inferred type |
//! | `sql_error` | `BadRequest` | 400 | PostgreSQL rejected the statement (SQLSTATE given) |
//! | `invalid_name` | `BadRequest` | 400 | `/schema/{table}` name does not parse |
//! | `outside_backup_location` | `BadRequest` | 400 | a restore path outside `backup.location` |
//! | `remote_not_configured` | `BadRequest` | 400 | a call about the remote backup store (`?remote=true`) without `backup.remote` |
//! | `not_a_table` | `BadRequest` | 400 | `/seed/generate` names a view or another relation that is not a table |
//! | `unauthenticated` | `Unauthenticated` | 401 | no API key where one is required, or one that is unknown, expired or revoked (the answer never says which) |
//! | `permission_denied` | `PermissionDenied` | 403 | SQLSTATE 42501 |
//! | `scope_forbids` | `PermissionDenied` | 403 | the API key's scope does not reach this route or statement |
//! | `address_forbidden` | `PermissionDenied` | 403 | the caller's address is outside `security.allowed_ips` or the key's `allow_from` |
//! | `not_found` | `NotFound` | 404 | unknown route, or a file a backup does not have |
//! | `table_not_found` | `NotFound` | 404 | unknown table |
//! | `index_not_found` | `NotFound` | 404 | `/indexes` names no such index |
//! | `backup_not_found` | `NotFound` | 404 | no backup with that id |
//! | `replaced_not_found` | `NotFound` | 404 | `/restores/{id}/undo` names no kept replaced database |
//! | `key_not_found` | `NotFound` | 404 | `/keys/{id}` names no key |
//! | `alert_not_found`, `silence_not_found` | `NotFound` | 404 | `/alerts/{id}` or `/silences/{id}` names none |
//! | `channel_not_found` | `NotFound` | 404 | `/alerts/test` names no channel of `alerts.channels` |
//! | `session_not_found` | `NotFound` | 404 | `/connections/{pid}/...` names no session of the server |
//! | `role_not_found` | `NotFound` | 404 | `/roles/{name}`, a grant's `role`, `in_roles` or `reassign_to` names no role |
//! | `object_not_found` | `NotFound` | 404 | a grant names no such schema, table or sequence (named in the message) |
//! | `replica_not_found` | `NotFound` | 404 | a switchover names no managed replica |
//! | `method_not_allowed` | (routing) | 405 | the route exists, the method does not |
//! | `constraint_violation` | `Conflict` | 409 | SQLSTATE class 23 |
//! | `conflict` | `Conflict` | 409 | serialization failure, deadlock or lock timeout outside `/transaction`; a kept or pinned backup, an existing restore target, another job holding what this one needs |
//! | `confirmation_required` | `Conflict` | 409 | a destructive call needs `confirm` naming what it destroys: a restore replacing a database other than the backup's own (`confirm: "<target>"`), `migrate down` past a migration whose down file drops data (the message names what to send) |
//! | `force_required` | `Conflict` | 409 | a destructive call on something protected needs `force: true`: a restore over `postgres`, a template or the database dbagent keeps its schema in; deleting the newest good backup of a database |
//! | `role_exists` | `Conflict` | 409 | `POST /roles` or a rename to a name a role already has |
//! | `role_protected` | `Conflict` | 409 | altering or dropping dbagent's own login, a key role (`security.read_role` / `write_role`), the bootstrap superuser or a `pg_*` role |
//! | `role_in_use` | `Conflict` | 409 | `DELETE /roles/{name}` while the role owns objects or holds privileges (listed; other databases named) without `reassign_to` or `drop_owned` |
//! | `retries_exhausted` | `Conflict` | 409 | `/transaction` still conflicting after `max_retries` |
//! | `migration_drift`, `migration_out_of_order`, `migration_locked`, `already_applied`, `schema_too_new` | `Conflict` | 409 | history and files disagree, or another runner holds the lock |
//! | `clear_blocked` | `Conflict` | 409 | `/seed/generate` with `clear` on a table other tables reference |
//! | `refused` | `Conflict` | 409 | `/indexes` would drop a constraint's index, or the name is taken; `VACUUM FULL` without `force` (it takes an ACCESS EXCLUSIVE lock) |
//! | `session_protected` | `Conflict` | 409 | `/connections/{pid}/cancel` or `terminate` on dbagent's own, a superuser's or a non-client session without `force` (the message says which) |
//! | `replica_not_ready`, `failover_in_progress`, `switchover_failed` | `Conflict` | 409 | the replica is not streaming or did not catch up in time, another failover or switchover runs, or a step failed (the message says in what state it left the servers) |
//! | `primary_available` | `Conflict` | 409 | `/replication/promote` while the primary answers, without `force` (a switchover loses no write) |
//! | `payload_too_large` | `TooLarge` | 413 | body over the limit |
//! | `invalid_migration_files`, `invalid_target`, `irreversible_migration`, `migration_file_missing` | `Unprocessable` | 422 | the migration files or the target do not allow the request |
//! | `response_too_large` | `Unprocessable` | 422 | the rows of a `/query` or `/transaction` answer would pass `postgresql.max_response_bytes` (the message names the limit and the fixes) |
//! | `migration_failed`, `seed_failed` | `Unprocessable` | 422 | a migration's (or seed's) SQL failed; rolled back; SQLSTATE given |
//! | `cannot_generate` | `Unprocessable` | 422 | `/seed/generate` cannot make the rows: a NOT NULL column of a type it has no generator for, a foreign-key cycle or self-reference with no nullable column, a unique key with too few possible values |
//! | `check_unsatisfiable` | `Unprocessable` | 422 | generated rows break a CHECK constraint dbagent cannot read (named, with its definition); nothing was written |
//! | `invalid_schema` | `Unprocessable` | 422 | autogenerate's desired schema does not load (SQLSTATE and hint given) |
//! | `verification_failed` | `Unprocessable` | 422 | a backup file is damaged (named), the key is wrong, row counts differ |
//! | `key_required` | `Unprocessable` | 422 | the backup is encrypted and no key is configured |
//! | `invalid_manifest` | `Unprocessable` | 422 | a backup's `manifest.json` is not valid |
//! | `pg_stat_statements_unavailable` | `Unprocessable` | 422 | `/stats/slow-queries` on a server without `pg_stat_statements` (the message says how to enable it) |
//! | `internal_error` | `Internal` | 500 | dbagent itself failed: file I/O, its own queries, pg_dump / pg_restore / pg_basebackup, a panic |
//! | `outcome_unknown` | `OutcomeUnknown` | 502 | connection lost while a write or COMMIT was in flight: do not retry blindly |
//! | `database_error` | `DatabaseFailure` | 502 | PostgreSQL internal/system error (classes 58, XX), a value it sent that cannot be converted, unreadable EXPLAIN output |
//! | `pool_exhausted` | `Unavailable` | 503 | no connection free within the acquire timeout |
//! | `database_unavailable` | `Unavailable` | 503 | PostgreSQL cannot be reached, is shutting down or out of resources |
//! | `not_primary` | `Unavailable` | 503 | the primary answered as a standby |
//! | `notification_failed` | `Unavailable` | 503 | `/alerts/test`: the channel's receiver did not take the notification (after the retries) |
//! | `roles_unavailable` | `Unavailable` | 503 | the roles that enforce read and write keys' scopes are missing or too privileged |
//! | `insufficient_storage` | `Unavailable` | 503 | the disk of the backup location or WAL archive is full: free space and retry |
//! | `remote_store_unavailable` | `Unavailable` | 503 | the remote backup store (`backup.remote`) refused or could not be reached (the object is named; nothing was changed locally) |
//! | `query_timeout` | `Timeout` | 504 | the statement ran past `query_timeout` and was cancelled on the server |
//! | `rate_limited` | `RateLimited` | 429 | the key's rate or its requests in flight are over its limit (`Retry-After` given) |
//!
//! A 5xx answer carries the request's id (`request_id`, also in the `x-request-id` header), and
//! is logged with it. A 500 says nothing but `internal error`: the real error (paths, driver
//! text, a tool's stderr) goes only to the log, at ERROR, under the same id.

use std::fmt::Display;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::db::{self, PgError};
use crate::error::{Classify, ErrorKind, INTERNAL};
use crate::query::{self, ClassifyError};
use crate::{access, advisor, alerts, compliance, backup, migrate, monitor, ops, schema, security, seeddata, txn};

/// What an error answer was, for the audit row (a response extension).
#[derive(Debug, Clone)]
pub struct ErrorFacts {
    pub code: &'static str,
    pub sqlstate: Option<String>,
}

/// The one status of each kind (the first table above).
pub fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorKind::OutcomeUnknown | ErrorKind::DatabaseFailure => StatusCode::BAD_GATEWAY,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
    }
}

/// An error answer: `{"success": false, "error": {...}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Boxed: an `ApiError` travels in every handler's `Result`.
    pub body: Box<ErrorBody>,
    /// For an internal error: what really went wrong, for the log alone.
    internal: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlstate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u32>,
    /// For `/transaction`: which statement (0-based) failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_index: Option<usize>,
    /// For a server error (5xx): the request's id, under which it is logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Every error answer: `{"success": false, "error": {...}}`.
#[derive(Serialize, schemars::JsonSchema)]
pub struct ErrorAnswer<'a> {
    success: bool,
    error: &'a ErrorBody,
}

impl ApiError {
    /// An answer of `kind` with `code` (a row of the table above). An internal error's
    /// `message` goes to the log only.
    fn of(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        if kind == ErrorKind::Internal {
            return Self::internal(message.into());
        }
        Self::with_status(status(kind), code, message.into())
    }

    fn with_status(status: StatusCode, code: &'static str, message: String) -> Self {
        ApiError {
            status,
            body: Box::new(ErrorBody {
                code,
                message,
                sqlstate: None,
                detail: None,
                hint: None,
                position: None,
                statement_index: None,
                request_id: None,
            }),
            internal: None,
        }
    }

    /// dbagent itself failed: the client hears "internal error" and a request id; `error` is
    /// logged under that id.
    pub fn internal(error: impl Display) -> Self {
        let mut e = Self::with_status(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL, "internal error".into());
        e.internal = Some(error.to_string());
        e
    }

    /// The request body or one of its fields is unusable.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::of(ErrorKind::BadRequest, "invalid_request", message)
    }

    /// Something the request names (a route, a file of a backup) does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::of(ErrorKind::NotFound, "not_found", message)
    }

    /// The body is over the limit.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::of(ErrorKind::TooLarge, "payload_too_large", message)
    }

    /// The route exists but not with this method (a routing answer, no capability's kind).
    pub fn method_not_allowed() -> Self {
        Self::with_status(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method".into())
    }

    /// A capability error whose message is its own text.
    fn classified(err: &(impl Classify + Display)) -> Self {
        Self::of(err.kind(), err.code(), err.to_string())
    }

    fn from_pg(pg: PgError) -> Self {
        let mut e = Self::of(pg.kind(), pg.code(), "");
        if e.internal.is_none() {
            e.body.message = pg.message;
            e.body.sqlstate = Some(pg.sqlstate);
            e.body.detail = pg.detail;
            e.body.hint = pg.hint;
            e.body.position = pg.position;
        }
        e
    }
}

impl From<db::Error> for ApiError {
    fn from(err: db::Error) -> Self {
        match err {
            db::Error::Server(pg) => ApiError::from_pg(pg),
            db::Error::Decode(ref source) => {
                tracing::error!(error = %source, "cannot convert a value from PostgreSQL");
                ApiError::of(err.kind(), err.code(), format!("{err}: {source}"))
            }
            other => ApiError::classified(&other),
        }
    }
}

impl From<query::Error> for ApiError {
    fn from(err: query::Error) -> Self {
        match err {
            query::Error::Sql(ClassifyError::Syntax { ref message, position }) => {
                let mut e = ApiError::of(err.kind(), err.code(), message.clone());
                e.body.sqlstate = Some("42601".into());
                e.body.position = position;
                e
            }
            query::Error::Db(err) => err.into(),
            other => ApiError::classified(&other),
        }
    }
}

impl From<txn::Error> for ApiError {
    fn from(err: txn::Error) -> Self {
        let (kind, code, message) = (err.kind(), err.code(), err.to_string());
        match err {
            txn::Error::Statement { index, source } => {
                let mut e = ApiError::from(source);
                if e.internal.is_none() {
                    e.body.statement_index = Some(index);
                    e.body.message = format!("statement {}: {}", index + 1, e.body.message);
                }
                e
            }
            txn::Error::RetriesExhausted { last, .. } => {
                let mut e = ApiError::from_pg(last);
                e.status = status(kind);
                e.body.code = code;
                e.body.message = format!("{message} (last error: {})", e.body.message);
                e
            }
            txn::Error::Commit(pg) => ApiError::from_pg(pg),
            txn::Error::Db(err) => err.into(),
            txn::Error::Empty | txn::Error::OutcomeUnknown => ApiError::of(kind, code, message),
        }
    }
}

impl From<schema::Error> for ApiError {
    fn from(err: schema::Error) -> Self {
        match err {
            schema::Error::Db(err) => err.into(),
            other => ApiError::classified(&other),
        }
    }
}

impl From<seeddata::Error> for ApiError {
    fn from(err: seeddata::Error) -> Self {
        match err {
            seeddata::Error::Db(err) => err.into(),
            seeddata::Error::Schema(err) => err.into(),
            other => {
                let mut e = ApiError::classified(&other);
                if let Some(pg) = other.server() {
                    e.body.sqlstate = Some(pg.sqlstate.clone());
                    e.body.detail = pg.detail.clone();
                    e.body.hint = pg.hint.clone();
                }
                e
            }
        }
    }
}

impl From<migrate::Error> for ApiError {
    fn from(err: migrate::Error) -> Self {
        use migrate::Error as E;
        let mut e = ApiError::of(err.kind(), err.code(), db::error_chain(&err));
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
        match err {
            advisor::Error::Query(err) => err.into(),
            other => ApiError::classified(&other),
        }
    }
}

impl From<backup::Error> for ApiError {
    fn from(err: backup::Error) -> Self {
        let mut e = ApiError::of(err.kind(), err.code(), db::error_chain(&err));
        if e.internal.is_none() {
            e.body.sqlstate = err.sqlstate().map(str::to_owned);
        }
        e
    }
}

impl From<security::Error> for ApiError {
    fn from(err: security::Error) -> Self {
        match err {
            security::Error::Db(err) => err.into(),
            other => ApiError::classified(&other),
        }
    }
}

impl From<monitor::Error> for ApiError {
    fn from(err: monitor::Error) -> Self {
        match err {
            monitor::Error::Db(err) => err.into(),
            other => ApiError::classified(&other),
        }
    }
}

impl From<alerts::Error> for ApiError {
    fn from(err: alerts::Error) -> Self {
        match err {
            alerts::Error::Db(err) => err.into(),
            other => ApiError::classified(&other),
        }
    }
}

impl From<access::Error> for ApiError {
    fn from(err: access::Error) -> Self {
        match err {
            access::Error::Db(err) => err.into(),
            other => ApiError::classified(&other),
        }
    }
}

impl From<compliance::Error> for ApiError {
    fn from(err: compliance::Error) -> Self {
        match err {
            compliance::Error::Db(err) => err.into(),
        }
    }
}

impl From<ops::Error> for ApiError {
    fn from(err: ops::Error) -> Self {
        match err {
            ops::Error::Db(err) => err.into(),
            other => ApiError::classified(&other),
        }
    }
}

impl From<crate::replication::SwitchoverError> for ApiError {
    fn from(err: crate::replication::SwitchoverError) -> Self {
        ApiError::classified(&err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        if self.status.is_server_error() {
            let id = super::request_id::current().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            match &self.internal {
                Some(error) => tracing::error!(request_id = %id, code = self.body.code, %error, "request failed"),
                None => tracing::warn!(request_id = %id, status = self.status.as_u16(), code = self.body.code, message = %self.body.message, "request failed"),
            }
            self.body.request_id = Some(id);
        }
        let body = serde_json::to_vec(&ErrorAnswer { success: false, error: &self.body }).unwrap_or_default();
        let facts = ErrorFacts { code: self.body.code, sqlstate: self.body.sqlstate.clone() };
        let mut response = (self.status, [(axum::http::header::CONTENT_TYPE, "application/json")], body).into_response();
        response.extensions_mut().insert(facts);
        response
    }
}

#[cfg(test)]
mod tests;
