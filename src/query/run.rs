//! Running one statement on one connection: prepare (cached), bind parameters as the types
//! PostgreSQL inferred, execute, stream the rows. Shared by `/query` and `/transaction`.

use serde_json::Value;

use super::Error;
use super::rows::{CollectError, Rows, collect};
use crate::db::types::{TextParam, encode_param};
use crate::db::{self, Conn};

/// SQLSTATE of "cached plan must not change result type": the table changed under a cached
/// statement. Re-preparing fixes it, and nothing ran.
const STALE_PLAN: &str = "0A000";

/// One statement to run.
pub struct Statement<'a> {
    pub sql: &'a str,
    pub params: &'a [Value],
    pub max_rows: usize,
    /// Keep the prepared statement on the connection for the next request.
    pub cache: bool,
    /// Autocommit mode: `Some(read_only)` sets the session default first; `None` inside an
    /// explicit transaction, where BEGIN already chose.
    pub autocommit_read_only: Option<bool>,
    /// A lost connection leaves the outcome unknown (a write, or a COMMIT).
    pub may_write: bool,
}

/// Runs `stmt` on `conn`. Retries once, on the same connection, when a cached plan went stale
/// in autocommit mode (inside a transaction the error has already aborted it).
pub async fn execute(conn: &mut Conn, stmt: &Statement<'_>) -> Result<Rows, Error> {
    match execute_once(conn, stmt).await {
        Err(Error::Db(db::Error::Server(pg))) if pg.is(STALE_PLAN) && stmt.autocommit_read_only.is_some() => {
            conn.forget(stmt.sql);
            execute_once(conn, stmt).await
        }
        other => other,
    }
}

async fn execute_once(conn: &mut Conn, stmt: &Statement<'_>) -> Result<Rows, Error> {
    let driver = |e| Error::Db(db::Error::from_driver(e, stmt.may_write));
    let prepared = conn.prepare(stmt.sql, stmt.cache).await.map_err(|e| Error::Db(db::Error::from_driver(e, false)))?;
    let params = encode_params(stmt.params, prepared.params())?;
    let switch = stmt.autocommit_read_only.and_then(|ro| conn.switch_read_only(ro));
    let client = conn.client();
    let run = async {
        let stream = client.query_raw(&prepared, params.iter()).await.map_err(driver)?;
        collect(stream, prepared.columns(), stmt.max_rows).await.map_err(|err| match err {
            CollectError::Driver(e) => driver(e),
            CollectError::Decode(e) => Error::Db(db::Error::Decode(e)),
        })
    };
    match switch {
        // Pipelined: both go out before either answer comes back, so still one round trip.
        Some(set) => {
            let (set_result, rows) = tokio::join!(client.simple_query(set), run);
            set_result.map_err(|e| Error::Db(db::Error::from_driver(e, false)))?;
            rows
        }
        None => run.await,
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
    match result {
        Ok(_) => true,
        Err(Error::Db(db::Error::Server(_))) => true,
        Err(Error::Db(_)) => false,
        Err(_) => true,
    }
}
