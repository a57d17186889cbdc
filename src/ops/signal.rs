//! Signalling sessions: cancel a query, terminate a session, close idle sessions.
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
use super::sessions::{POOL_APPLICATION, parse_age};
use crate::db::{self, Pools};

/// The signal a session is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Signalled {
    pub pid: i32,
    pub user: Option<String>,
    pub application: Option<String>,
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_seconds: Option<f64>,
}

/// A session left alone, and why.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Skipped {
    pub pid: i32,
    pub user: Option<String>,
    pub application: Option<String>,
    pub reason: String,
}

/// What a signalling call did: exactly which sessions got the signal, and which did not.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
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
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
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
    fn ages_in_requests_read_as_seconds() {
        assert_eq!(Age::Text("1d".into()).seconds().unwrap(), 86_400.0);
        assert_eq!(Age::Seconds(90.0).seconds().unwrap(), 90.0);
        assert!(Age::Seconds(-1.0).seconds().is_err());
    }

    #[test]
    fn close_idle_takes_an_empty_body() {
        let req: CloseIdle = serde_json::from_str("{}").unwrap();
        assert_eq!(req.states, vec![IdleState::Idle, IdleState::IdleInTransaction]);
        assert!(serde_json::from_str::<CloseIdle>(r#"{"states": ["sleeping"]}"#).is_err());
        assert!(serde_json::from_str::<CloseIdle>(r#"{"idle": 3}"#).is_err());
    }
}
