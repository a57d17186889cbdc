//! Running one statement on one connection: prepare (cached), bind parameters as the types
//! PostgreSQL inferred, execute, stream the rows. Shared by `/query` and `/transaction`.

use serde_json::Value;

use super::{Error, guard};
use super::rows::{CollectError, Rows, collect};
use crate::db::types::{TextParam, encode_param};
use crate::db::{self, Conn, Lsn};
use crate::security::masking::{Masking, References};

/// Pipelined after a write: a WAL position at or past its commit record (the insert position
/// is never behind the end of what this session committed), so a replica that has replayed
/// this far shows the write.
const COMMIT_LSN_SQL: &str = "SELECT pg_current_wal_insert_lsn()::text";

/// SQLSTATE of "cached plan must not change result type": the table changed under a cached
/// statement. Re-preparing fixes it, and nothing ran.
const STALE_PLAN: &str = "0A000";

/// A connection that read a row larger than this is replaced after the statement: the
/// driver's read buffer grew to hold the row and never shrinks, so a pooled connection would
/// keep that memory for its whole life (ten 100 MB values kept 880 MB resident).
pub const BIG_ROW: usize = 1 << 20;

/// One statement to run.
pub struct Statement<'a> {
    pub sql: &'a str,
    pub params: &'a [Value],
    pub max_rows: usize,
    /// Bytes of row JSON at most (`postgresql.max_response_bytes`).
    pub max_bytes: usize,
    /// Keep the prepared statement on the connection for the next request.
    pub cache: bool,
    /// Autocommit mode: `Some(read_only)` sets the session default first; `None` inside an
    /// explicit transaction, where BEGIN already chose.
    pub autocommit_read_only: Option<bool>,
    /// A lost connection leaves the outcome unknown (a write, or a COMMIT).
    pub may_write: bool,
    /// It may run user code (see `super::guard`): check the session after it, in the same
    /// round trip, and taint the connection if the session changed. Autocommit only.
    pub check_session: bool,
    /// The caller's results are masked: by this masking, the statement naming these.
    pub mask: Option<(&'a Masking, &'a References)>,
}

/// Runs `stmt` on `conn`. Retries once, on the same connection, when a cached plan went stale
/// in autocommit mode (inside a transaction the error has already aborted it).
pub async fn execute(conn: &mut Conn, stmt: &Statement<'_>) -> Result<Rows, Error> {
    execute_reporting(conn, stmt, false).await.map(|(rows, _)| rows)
}

/// [`execute`] for an autocommit write on the primary: also returns the commit's WAL position,
/// asked for in the same round trip.
pub async fn execute_write(conn: &mut Conn, stmt: &Statement<'_>) -> Result<(Rows, Option<Lsn>), Error> {
    execute_reporting(conn, stmt, true).await
}

async fn execute_reporting(conn: &mut Conn, stmt: &Statement<'_>, lsn: bool) -> Result<(Rows, Option<Lsn>), Error> {
    match execute_once(conn, stmt, lsn, stmt.autocommit_read_only).await {
        Err(Error::Db(db::Error::Server(pg))) if pg.is(STALE_PLAN) && stmt.autocommit_read_only.is_some() => {
            conn.forget(stmt.sql);
            execute_once(conn, stmt, lsn, stmt.autocommit_read_only).await
        }
        other => other,
    }
}

/// [`execute`] for an autocommit read on a connection shared with other reads (already in
/// read-only mode, see `db::pools::shared`); the connection is not changed in any way.
pub async fn execute_shared(conn: &Conn, stmt: &Statement<'_>) -> Result<Rows, Error> {
    match execute_once(conn, stmt, false, None).await {
        Err(Error::Db(db::Error::Server(pg))) if pg.is(STALE_PLAN) => {
            conn.forget(stmt.sql);
            execute_once(conn, stmt, false, None).await
        }
        other => other,
    }
    .map(|(rows, _)| rows)
}

/// The statement that reads the commit position, prepared once per connection.
pub async fn lsn_statement(conn: &Conn) -> Result<tokio_postgres::Statement, Error> {
    conn.prepare(COMMIT_LSN_SQL, true).await.map_err(|e| Error::Db(db::Error::from_driver(e, false)))
}

/// Reads the WAL position after what this session committed (see [`COMMIT_LSN_SQL`]).
pub async fn commit_lsn(client: &tokio_postgres::Client, statement: &tokio_postgres::Statement) -> Option<Lsn> {
    let row = client.query_opt(statement, &[]).await.ok()??;
    row.try_get::<_, &str>(0).ok()?.parse().ok()
}

/// Prepares (cached) and runs `stmt`, pipelining the `SET` that puts the session in the
/// `read_only` mode asked for before it (when it is not in it yet) and the commit-position
/// query after it (when asked): one round trip either way.
async fn execute_once(
    conn: &Conn,
    stmt: &Statement<'_>,
    report_lsn: bool,
    read_only: Option<bool>,
) -> Result<(Rows, Option<Lsn>), Error> {
    let driver = |e| Error::Db(db::Error::from_driver(e, stmt.may_write));
    let prepared = conn.prepare(stmt.sql, stmt.cache).await.map_err(|e| Error::Db(db::Error::from_driver(e, false)))?;
    let lsn_statement = match report_lsn {
        true => Some(lsn_statement(conn).await?),
        false => None,
    };
    let check_statement = match stmt.check_session {
        true => Some(check_statement(conn).await?),
        false => None,
    };
    let params = encode_params(stmt.params, prepared.params())?;
    // Before anything is sent: a catalog read for a relation masking does not know yet must
    // not sit between the SET and the statement.
    let (mask, mask_generation) = match stmt.mask {
        Some((masking, refs)) => {
            let (plan, generation) = masking.plan(prepared.columns(), refs).await;
            (plan, Some(generation))
        }
        None => (None, None),
    };
    // Decided only now that nothing can fail before the SET is sent: the flag must match.
    let switch = read_only.and_then(|ro| conn.switch_read_only(ro));
    let client = conn.client();
    let run = async {
        let stream = client.query_raw(&prepared, params.iter()).await.map_err(driver)?;
        let collected = collect(stream, prepared.columns(), stmt.max_rows, stmt.max_bytes, mask.as_ref()).await;
        let largest_row = match &collected {
            Ok(rows) => rows.largest_row,
            Err(CollectError::TooLarge { largest_row, .. }) => *largest_row,
            Err(_) => 0,
        };
        if largest_row > BIG_ROW {
            conn.taint();
        }
        collected.map_err(|err| match err {
            CollectError::Driver(e) => driver(e),
            CollectError::Decode(e) => Error::Db(db::Error::Decode(e)),
            CollectError::TooLarge { limit, .. } => Error::ResponseTooLarge { limit },
        })
    };
    // Pipelined: everything goes out before the first answer comes back, so still one round
    // trip. join! polls in order, and each request is sent on its first poll.
    let set = async {
        match switch {
            Some(set) => client.simple_query(set).await.map(drop),
            None => Ok(()),
        }
    };
    let lsn = async {
        match &lsn_statement {
            Some(statement) => commit_lsn(client, statement).await,
            None => None,
        }
    };
    let check = async {
        if let Some(statement) = &check_statement {
            check_session(conn, statement).await;
        }
    };
    let (set_result, rows, lsn, ()) = tokio::join!(set, run, lsn, check);
    set_result.map_err(|e| Error::Db(db::Error::from_driver(e, false)))?;
    let mut rows = rows?;
    rows.mask_generation = mask_generation;
    Ok((rows, lsn))
}

/// The session check, prepared once per connection.
pub async fn check_statement(conn: &Conn) -> Result<tokio_postgres::Statement, Error> {
    conn.prepare(guard::CHECK_SQL, true).await.map_err(|e| Error::Db(db::Error::from_driver(e, false)))
}

/// Runs the session check on `conn` (after what was sent before it) and `RESET ALL`, in the
/// same round trip; taints the connection when the session changed in a way neither resets, or
/// when either fails (see [`guard::CHECK_SQL`]).
pub async fn check_session(conn: &Conn, statement: &tokio_postgres::Statement) {
    let client = conn.client();
    let role = conn.login_role();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&role];
    let (verdict, reset) = tokio::join!(client.query_one(statement, &params), client.simple_query("RESET ALL"));
    match verdict.and_then(|row| row.try_get::<_, String>(0)) {
        Ok(changed) if changed.is_empty() => {}
        Ok(changed) => {
            tracing::warn!(changed, "a statement changed the pooled session; the connection is discarded");
            conn.taint();
        }
        Err(err) => {
            tracing::debug!(error = %err, "session check failed; the connection is discarded");
            conn.taint();
        }
    }
    match reset {
        Ok(_) => conn.settings_reset(),
        Err(_) => conn.taint(),
    }
}

fn encode_params(values: &[Value], types: &[tokio_postgres::types::Type]) -> Result<Vec<TextParam>, Error> {
    if values.len() != types.len() {
        return Err(Error::ParamCount { expected: types.len(), given: values.len() });
    }
    values.iter().zip(types).enumerate().map(|(i, (v, t))| encode_param(i, v, t).map_err(Error::from)).collect()
}

/// Whether the connection is still in a known, clean state after `result`: server-reported
/// errors leave it usable, lost connections and conversion failures mid-stream do not.
pub fn leaves_connection_clean(result: &Result<Rows, Error>) -> bool {
    result.as_ref().err().is_none_or(leaves_connection_clean_after)
}

/// [`leaves_connection_clean`] for a failure.
pub fn leaves_connection_clean_after(err: &Error) -> bool {
    match err {
        Error::Db(db::Error::Server(_)) => true,
        Error::Db(_) => false,
        _ => true,
    }
}
