//! Who is connected and what they do (`GET /connections`, `/connections/stats`), and
//! signalling sessions: cancel a query, terminate a session, close idle sessions.
//!
//! Signals are refused (reported as skipped, with the reason) for sessions an operator at
//! 3 a.m. must not hit by accident, unless `force` is given: dbagent's own dedicated sessions
//! (`application_name` `dbagent <purpose>`: the monitor, LISTEN, migration, backup sessions),
//! dbagent's pooled connections for anything but a cancel (a cancel only ends the running
//! statement; the connection stays in its pool), a superuser's sessions, and processes that
//! are not client backends (autovacuum, WAL sender ...). The session serving the request itself
//! is never signalled, even with `force`.

use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use super::Error;
use crate::db::{self, Pools, PoolsStats};

/// Query text kept per session, unless the request asks otherwise.
pub const DEFAULT_QUERY_CHARS: i32 = 1000;

/// Longest query text a request may ask for.
const MAX_QUERY_CHARS: u32 = 100_000;

/// The `application_name` of dbagent's pooled connections (`db::conn`).
const POOL_APPLICATION: &str = "dbagent";

/// One session of the server (`pg_stat_activity`), with the sessions blocking it.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Default, Deserialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct StateCount {
    pub state: String,
    pub sessions: i64,
}

/// `GET /connections/stats`: the server's sessions against its limits, dbagent's pools beside.
#[derive(Debug, Clone, Serialize)]
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

/// The signal a session is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// `pg_cancel_backend`: the running statement ends with an error, the session stays.
    Cancel,
    /// `pg_terminate_backend`: the session ends (its open transaction rolls back).
    Terminate,
}

impl Signal {
    fn function(self) -> &'static str {
        match self {
            Signal::Cancel => "SELECT pg_cancel_backend($1) AS sent",
            Signal::Terminate => "SELECT pg_terminate_backend($1) AS sent",
        }
    }
}

/// What the protection rules need to know of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub pid: i32,
    pub user: Option<String>,
    pub application: Option<String>,
    pub backend_type: Option<String>,
    pub state: Option<String>,
    pub state_seconds: Option<f64>,
    pub superuser: bool,
    pub this_session: bool,
}

impl Facts {
    fn from_row(row: &Row) -> Result<Facts, db::Error> {
        Ok(Facts {
            pid: db::get(row, "pid")?,
            user: db::get(row, "user")?,
            application: db::get(row, "application")?,
            backend_type: db::get(row, "backend_type")?,
            state: db::get(row, "state")?,
            state_seconds: db::get(row, "state_seconds")?,
            superuser: db::get(row, "superuser")?,
            this_session: db::get(row, "this_session")?,
        })
    }
}

/// Why `signal` must not reach the session `facts` describes (without `force`, or ever for
/// the request's own session); `None` when it may.
pub fn protection(facts: &Facts, signal: Signal, force: bool) -> Option<String> {
    if facts.this_session {
        return Some("the session serving this request".into());
    }
    if force {
        return None;
    }
    let application = facts.application.as_deref().unwrap_or_default();
    if let Some(purpose) = application.strip_prefix("dbagent ") {
        return Some(format!("dbagent's own {purpose} session"));
    }
    if application == POOL_APPLICATION && signal != Signal::Cancel {
        return Some("one of dbagent's pooled connections".into());
    }
    match facts.backend_type.as_deref() {
        Some("client backend") => {}
        Some(other) => return Some(format!("the {other} process, not a client session")),
        None => return Some("a process of unknown type".into()),
    }
    if facts.superuser {
        return Some(format!("a superuser's session ({})", facts.user.as_deref().unwrap_or("?")));
    }
    None
}

/// A session that was (or, in a dry run, would be) signalled.
#[derive(Debug, Clone, Serialize)]
pub struct Signalled {
    pub pid: i32,
    pub user: Option<String>,
    pub application: Option<String>,
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_seconds: Option<f64>,
}

/// A session left alone, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub pid: i32,
    pub user: Option<String>,
    pub application: Option<String>,
    pub reason: String,
}

/// What a signalling call did: exactly which sessions got the signal, and which did not.
#[derive(Debug, Clone, Serialize)]
pub struct SignalReport {
    pub signal: Signal,
    pub dry_run: bool,
    pub signalled: Vec<Signalled>,
    pub skipped: Vec<Skipped>,
}

impl SignalReport {
    /// The pids signalled, for the audit row.
    pub fn pids(&self) -> String {
        self.signalled.iter().map(|s| s.pid.to_string()).collect::<Vec<_>>().join(",")
    }
}

/// Sends `signal` to session `pid`. A protected session is an error (`force` overrides),
/// as is a pid the server does not know.
pub async fn signal(pools: &Pools, pid: i32, signal: Signal, force: bool) -> Result<SignalReport, Error> {
    let rows = pools.primary().query(include_str!("sql/session.sql"), &[&pid]).await?;
    let facts = Facts::from_row(rows.first().ok_or(Error::SessionNotFound { pid })?)?;
    if let Some(reason) = protection(&facts, signal, force) {
        return Err(Error::Protected { pid, reason });
    }
    let mut report = SignalReport { signal, dry_run: false, signalled: Vec::new(), skipped: Vec::new() };
    send(pools, facts, signal, &mut report).await?;
    Ok(report)
}

/// Sends the signal and files the session under signalled or skipped (it may have ended
/// meanwhile, or the server refused).
async fn send(pools: &Pools, facts: Facts, signal: Signal, report: &mut SignalReport) -> Result<(), Error> {
    let rows = pools.primary().query(signal.function(), &[&facts.pid]).await?;
    let sent = rows.first().map(|r| db::get::<Option<bool>>(r, "sent")).transpose()?.flatten().unwrap_or(false);
    if sent {
        report.signalled.push(Signalled {
            pid: facts.pid,
            user: facts.user,
            application: facts.application,
            state: facts.state,
            state_seconds: facts.state_seconds,
        });
    } else {
        report.skipped.push(Skipped { pid: facts.pid, user: facts.user, application: facts.application, reason: "the session was gone when signalled".into() });
    }
    Ok(())
}

/// An idle state `close-idle` may close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum IdleState {
    #[serde(rename = "idle")]
    Idle,
    #[serde(rename = "idle in transaction")]
    IdleInTransaction,
    #[serde(rename = "idle in transaction (aborted)")]
    IdleInTransactionAborted,
}

impl IdleState {
    /// As `pg_stat_activity.state` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            IdleState::Idle => "idle",
            IdleState::IdleInTransaction => "idle in transaction",
            IdleState::IdleInTransactionAborted => "idle in transaction (aborted)",
        }
    }
}

/// An age as JSON: seconds, or text such as `"5m"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Age {
    Seconds(f64),
    Text(String),
}

impl Age {
    pub fn seconds(&self) -> Result<f64, Error> {
        match self {
            Age::Seconds(s) if s.is_finite() && *s >= 0.0 => Ok(*s),
            Age::Seconds(s) => Err(Error::Invalid(format!("{s} is not an age"))),
            Age::Text(text) => parse_age(text),
        }
    }
}

/// `POST /connections/close-idle` (seed 004's close-idle; an empty body takes the defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseIdle {
    /// Idle for at least this long (default 10 minutes).
    #[serde(default = "default_idle_for")]
    pub idle_for: Age,
    /// Which idle states (default: idle, and idle in a transaction).
    #[serde(default = "default_idle_states")]
    pub states: Vec<IdleState>,
    pub user: Option<String>,
    pub application: Option<String>,
    pub database: Option<String>,
    /// List what would be closed, close nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Close dbagent's own and superusers' sessions too.
    #[serde(default)]
    pub force: bool,
}

impl Default for CloseIdle {
    fn default() -> Self {
        CloseIdle {
            idle_for: default_idle_for(),
            states: default_idle_states(),
            user: None,
            application: None,
            database: None,
            dry_run: false,
            force: false,
        }
    }
}

fn default_idle_for() -> Age {
    Age::Seconds(600.0)
}

fn default_idle_states() -> Vec<IdleState> {
    vec![IdleState::Idle, IdleState::IdleInTransaction]
}

/// Terminates the client sessions idle as `request` says, skipping protected ones.
pub async fn close_idle(pools: &Pools, request: &CloseIdle) -> Result<SignalReport, Error> {
    let idle_for = request.idle_for.seconds()?;
    if request.states.is_empty() {
        return Err(Error::Invalid("states: give at least one idle state".into()));
    }
    let states: Vec<&str> = request.states.iter().map(|s| s.as_str()).collect();
    let rows = pools
        .primary()
        .query(include_str!("sql/idle_sessions.sql"), &[&states, &idle_for, &request.user, &request.application, &request.database])
        .await?;
    let mut report = SignalReport { signal: Signal::Terminate, dry_run: request.dry_run, signalled: Vec::new(), skipped: Vec::new() };
    for row in &rows {
        let facts = Facts::from_row(row)?;
        if let Some(reason) = protection(&facts, Signal::Terminate, request.force) {
            report.skipped.push(Skipped { pid: facts.pid, user: facts.user, application: facts.application, reason });
        } else if request.dry_run {
            let Facts { pid, user, application, state, state_seconds, .. } = facts;
            report.signalled.push(Signalled { pid, user, application, state, state_seconds });
        } else {
            send(pools, facts, Signal::Terminate, &mut report).await?;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(application: &str, backend_type: &str, superuser: bool) -> Facts {
        Facts {
            pid: 7,
            user: Some("u".into()),
            application: Some(application.into()),
            backend_type: Some(backend_type.into()),
            state: Some("idle".into()),
            state_seconds: None,
            superuser,
            this_session: false,
        }
    }

    #[test]
    fn protected_sessions_are_signalled_only_with_force() {
        use Signal::{Cancel, Terminate};
        let cases = [
            (facts("psql", "client backend", false), Terminate, false, None),
            (facts("dbagent monitor", "client backend", false), Cancel, false, Some("dbagent's own monitor session")),
            (facts("dbagent migrate", "client backend", false), Terminate, true, None),
            (facts("dbagent", "client backend", false), Cancel, false, None),
            (facts("dbagent", "client backend", false), Terminate, false, Some("one of dbagent's pooled connections")),
            (facts("", "autovacuum worker", false), Cancel, false, Some("the autovacuum worker process, not a client session")),
            (facts("psql", "client backend", true), Terminate, false, Some("a superuser's session (u)")),
            (facts("psql", "client backend", true), Terminate, true, None),
        ];
        for (f, signal, force, expected) in cases {
            assert_eq!(protection(&f, signal, force).as_deref(), expected, "{f:?} {signal:?} force={force}");
        }
        let mut own = facts("psql", "client backend", false);
        own.this_session = true;
        assert!(protection(&own, Signal::Cancel, true).is_some(), "never the request's own session");
    }

    #[test]
    fn ages_read_as_seconds() {
        assert_eq!(parse_age("30").unwrap(), 30.0);
        assert_eq!(parse_age("5m").unwrap(), 300.0);
        assert_eq!(parse_age("2h").unwrap(), 7200.0);
        assert!(parse_age("soon").is_err());
        assert!(parse_age("-3").is_err());
        assert_eq!(Age::Text("1d".into()).seconds().unwrap(), 86_400.0);
    }

    #[test]
    fn close_idle_takes_an_empty_body() {
        let req: CloseIdle = serde_json::from_str("{}").unwrap();
        assert_eq!(req.states, vec![IdleState::Idle, IdleState::IdleInTransaction]);
        assert!(serde_json::from_str::<CloseIdle>(r#"{"states": ["sleeping"]}"#).is_err());
        assert!(serde_json::from_str::<CloseIdle>(r#"{"idle": 3}"#).is_err());
    }
}
