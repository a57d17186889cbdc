//! Who is connected and what they do: `GET /connections` and `/connections/stats`
//! (signalling them is [`super::signal`]).

use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use super::Error;
use crate::db::{self, Pools, PoolsStats};

/// Query text kept per session, unless the request asks otherwise.
pub const DEFAULT_QUERY_CHARS: i32 = 1000;

/// Longest query text a request may ask for.
const MAX_QUERY_CHARS: u32 = 100_000;

/// The `application_name` of dbagent's pooled connections (`db::conn`).
pub(super) const POOL_APPLICATION: &str = "dbagent";

/// One session of the server (`pg_stat_activity`), with the sessions blocking it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Session {
    pub pid: i32,
    pub database: Option<String>,
    pub user: Option<String>,
    pub application: Option<String>,
    pub client_addr: Option<String>,
    pub backend_type: Option<String>,
    pub state: Option<String>,
    pub wait_event_type: Option<String>,
    pub wait_event: Option<String>,
    pub connected_seconds: Option<f64>,
    pub transaction_seconds: Option<f64>,
    pub query_seconds: Option<f64>,
    /// Time in the current state (idle for, active for ...).
    pub state_seconds: Option<f64>,
    /// The statement text, cut at the request's `query_chars`.
    pub query: Option<String>,
    pub query_truncated: bool,
    /// `pg_blocking_pids`: the sessions this one waits for.
    pub blocked_by: Vec<i32>,
    pub superuser: bool,
    /// One of dbagent's own sessions (pooled or dedicated).
    pub dbagent: bool,
}

impl Session {
    fn from_row(row: &Row) -> Result<Session, db::Error> {
        let application: Option<String> = db::get(row, "application")?;
        Ok(Session {
            pid: db::get(row, "pid")?,
            database: db::get(row, "database")?,
            user: db::get(row, "user")?,
            dbagent: application.as_deref().is_some_and(is_dbagent),
            application,
            client_addr: db::get(row, "client_addr")?,
            backend_type: db::get(row, "backend_type")?,
            state: db::get(row, "state")?,
            wait_event_type: db::get(row, "wait_event_type")?,
            wait_event: db::get(row, "wait_event")?,
            connected_seconds: db::get(row, "connected_seconds")?,
            transaction_seconds: db::get(row, "transaction_seconds")?,
            query_seconds: db::get(row, "query_seconds")?,
            state_seconds: db::get(row, "state_seconds")?,
            query: db::get(row, "query")?,
            query_truncated: db::get::<Option<bool>>(row, "query_truncated")?.unwrap_or(false),
            blocked_by: db::get(row, "blocked_by")?,
            superuser: db::get(row, "superuser")?,
        })
    }
}

/// `dbagent` (the pools) or `dbagent <purpose>` (a dedicated session, `db::admin`).
fn is_dbagent(application: &str) -> bool {
    application == POOL_APPLICATION || application.starts_with("dbagent ")
}

/// `GET /connections`'s filters (all optional).
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionFilter {
    /// `active`, `idle`, `idle in transaction` ...
    pub state: Option<String>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub application: Option<String>,
    /// In the current state for at least this long (`30s`, `5m`, or seconds).
    pub min_age: Option<String>,
    /// Query text kept per session (default 1000 characters).
    pub query_chars: Option<u32>,
}

/// `30`, `30s`, `5m`, `2h` → seconds.
pub fn parse_age(text: &str) -> Result<f64, Error> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Ok(seconds);
    }
    crate::config::parse_duration(text)
        .map(|d| d.as_secs_f64())
        .ok_or_else(|| Error::Invalid(format!("{text:?} is not an age: give seconds or a number with s, m, h or d (e.g. 5m)")))
}

fn query_chars(asked: Option<u32>) -> Result<i32, Error> {
    match asked {
        None => Ok(DEFAULT_QUERY_CHARS),
        Some(n) if (1..=MAX_QUERY_CHARS).contains(&n) => Ok(n as i32),
        Some(_) => Err(Error::Invalid(format!("query_chars must be between 1 and {MAX_QUERY_CHARS}"))),
    }
}

/// Every session of the server that passes `filter`, those longest in their state first.
pub async fn list(pools: &Pools, filter: &ConnectionFilter) -> Result<Vec<Session>, Error> {
    let min_age = filter.min_age.as_deref().map(parse_age).transpose()?;
    let chars = query_chars(filter.query_chars)?;
    let rows = pools
        .primary()
        .query(
            include_str!("sql/connections.sql"),
            &[&chars, &filter.state, &filter.database, &filter.user, &min_age, &filter.application],
        )
        .await?;
    Ok(rows.iter().map(Session::from_row).collect::<Result<_, _>>()?)
}

/// Client sessions in one state.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StateCount {
    pub state: String,
    pub sessions: i64,
}

/// `GET /connections/stats`: the server's sessions against its limits, dbagent's pools beside.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ConnectionStats {
    pub max_connections: i64,
    pub superuser_reserved_connections: i64,
    /// What roles without superuser may open: `max_connections - superuser_reserved_connections`.
    pub available_to_users: i64,
    pub client_sessions: i64,
    /// `client_sessions / available_to_users`.
    pub utilization: f64,
    pub by_state: Vec<StateCount>,
    /// Client sessions whose application is dbagent (this agent's and any other agent's).
    pub dbagent_sessions: i64,
    /// This agent's pools: their sizes, maxima and waits.
    pub pools: PoolsStats,
}

pub async fn stats(pools: &Pools) -> Result<ConnectionStats, Error> {
    let primary = pools.primary();
    let limits = primary.query(include_str!("sql/connection_limits.sql"), &[]).await?;
    let limits = limits.first().ok_or_else(|| db::Error::UnexpectedAnswer { reason: "no row of connection limits".into() })?;
    let counts = primary.query(include_str!("sql/connection_counts.sql"), &[]).await?;
    let by_state = counts
        .iter()
        .map(|r| Ok(StateCount { state: db::get(r, "state")?, sessions: db::get(r, "sessions")? }))
        .collect::<Result<Vec<_>, db::Error>>()?;
    let max_connections: i64 = db::get(limits, "max_connections")?;
    let reserved: i64 = db::get(limits, "superuser_reserved_connections")?;
    let client_sessions: i64 = db::get(limits, "client_sessions")?;
    let available = (max_connections - reserved).max(1);
    Ok(ConnectionStats {
        max_connections,
        superuser_reserved_connections: reserved,
        available_to_users: available,
        client_sessions,
        utilization: client_sessions as f64 / available as f64,
        by_state,
        dbagent_sessions: db::get(limits, "dbagent_sessions")?,
        pools: pools.stats(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_seconds() {
        assert_eq!(parse_age("30").unwrap(), 30.0);
        assert_eq!(parse_age("5m").unwrap(), 300.0);
        assert_eq!(parse_age("2h").unwrap(), 7200.0);
        assert!(parse_age("soon").is_err());
        assert!(parse_age("-3").is_err());
    }
}
