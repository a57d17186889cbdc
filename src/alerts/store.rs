//! `dbagent.alerts` and `dbagent.alert_silences`: the alerts' lifecycle and history, and the
//! silences. The DDL runs only when something is missing, so a starting agent takes no lock.
//!
//! The engine writes an alert's lifecycle fields and appends to its history (`||`, never a
//! rewrite); acknowledgements write only the `acked_*` fields. So an acknowledgement and an
//! evaluation at the same moment never undo each other.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, Row};

use super::Error;
use super::lifecycle::{Alert, Event, State};
use crate::config::Level;
use crate::db;

const CREATE: &str = "
CREATE SCHEMA IF NOT EXISTS dbagent;
CREATE TABLE IF NOT EXISTS dbagent.alerts (
    id               text PRIMARY KEY,
    rule             text NOT NULL,
    subject          text NOT NULL,
    severity         text NOT NULL,
    state            text NOT NULL,
    value            float8 NOT NULL,
    threshold        float8,
    unit             text NOT NULL,
    summary          text NOT NULL,
    labels           jsonb NOT NULL DEFAULT '{}',
    started_at       timestamptz NOT NULL,
    fired_at         timestamptz,
    resolved_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    last_notified_at timestamptz,
    notifications    int4 NOT NULL DEFAULT 0,
    acked_by         text,
    acked_at         timestamptz,
    ack_comment      text,
    history          jsonb NOT NULL DEFAULT '[]'
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_active ON dbagent.alerts (rule, subject) WHERE state <> 'resolved';
CREATE INDEX IF NOT EXISTS alerts_by_start ON dbagent.alerts (started_at DESC);
CREATE TABLE IF NOT EXISTS dbagent.alert_silences (
    id         text PRIMARY KEY,
    rule       text,
    subject    text,
    comment    text,
    created_by text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
COMMENT ON TABLE dbagent.alerts IS 'dbagent''s alerts: one active (pending or firing) per rule and subject; history is append-only';";

/// Creates the tables when one is missing (agents starting together retry the race).
pub async fn ensure(client: &Client) -> Result<(), Error> {
    let ready: bool = client
        .query_one("SELECT to_regclass('dbagent.alerts') IS NOT NULL AND to_regclass('dbagent.alert_silences') IS NOT NULL AS ready", &[])
        .await
        .map_err(Error::driver)?
        .get(0);
    if ready {
        return Ok(());
    }
    for attempt in 0..3 {
        match client.batch_execute(&format!("BEGIN; {CREATE} COMMIT;")).await {
            Ok(()) => return Ok(()),
            Err(err) if attempt < 2 && err.code().is_some_and(|c| matches!(c.code(), "23505" | "42P07" | "42710" | "XX000")) => {
                let _ = client.batch_execute("ROLLBACK").await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => return Err(Error::driver(err)),
        }
    }
    Ok(())
}

/// Writes `alert`'s lifecycle and appends `new_events` to its history.
pub async fn save(client: &Client, alert: &Alert, new_events: &[Event]) -> Result<(), Error> {
    let sql = "
        INSERT INTO dbagent.alerts (id, rule, subject, severity, state, value, threshold, unit, summary, labels,
                                    started_at, fired_at, resolved_at, last_notified_at, notifications, history)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::text::jsonb, $11, $12, $13, $14, $15, $16::text::jsonb)
        ON CONFLICT (id) DO UPDATE SET
            severity = excluded.severity, state = excluded.state, value = excluded.value,
            threshold = excluded.threshold, summary = excluded.summary, fired_at = excluded.fired_at,
            resolved_at = excluded.resolved_at, last_notified_at = excluded.last_notified_at,
            notifications = excluded.notifications, updated_at = now(),
            history = alerts.history || excluded.history";
    let labels = serde_json::to_string(&alert.labels).map_err(|e| Error::Invalid(e.to_string()))?;
    let events = serde_json::to_string(new_events).map_err(|e| Error::Invalid(e.to_string()))?;
    client
        .execute(
            sql,
            &[
                &alert.id,
                &alert.rule,
                &alert.subject,
                &alert.severity.as_str(),
                &alert.state.as_str(),
                &alert.value,
                &alert.threshold,
                &alert.unit,
                &alert.summary,
                &labels,
                &alert.started_at,
                &alert.fired_at,
                &alert.resolved_at,
                &alert.last_notified_at,
                &alert.notifications,
                &events,
            ],
        )
        .await
        .map_err(Error::driver)?;
    Ok(())
}

/// Appends `events` to the history of alert `id` (a delivery's outcome).
pub async fn append(client: &Client, id: &str, events: &[Event]) -> Result<(), Error> {
    let events = serde_json::to_string(events).map_err(|e| Error::Invalid(e.to_string()))?;
    client
        .execute("UPDATE dbagent.alerts SET history = history || $2::text::jsonb WHERE id = $1", &[&id, &events])
        .await
        .map_err(Error::driver)?;
    Ok(())
}

const COLUMNS: &str = "id, rule, subject, severity, state, value, threshold, unit, summary, labels::text AS labels,
    started_at, fired_at, resolved_at, last_notified_at, notifications, acked_by, acked_at, ack_comment, history::text AS history";

fn alert(row: &Row) -> Result<Alert, Error> {
    let text = |name: &str| db::get::<String>(row, name);
    let severity = text("severity")?;
    let state = text("state")?;
    let bad = |what: &str| Error::Db(db::Error::UnexpectedAnswer { reason: format!("dbagent.alerts: {what}") });
    Ok(Alert {
        id: text("id")?,
        rule: text("rule")?,
        subject: text("subject")?,
        severity: Level::parse(&severity).ok_or_else(|| bad("unknown severity"))?,
        state: State::parse(&state).ok_or_else(|| bad("unknown state"))?,
        value: db::get(row, "value")?,
        threshold: db::get(row, "threshold")?,
        unit: text("unit")?,
        summary: text("summary")?,
        labels: serde_json::from_str(&text("labels")?).map_err(|_| bad("labels"))?,
        started_at: db::get(row, "started_at")?,
        fired_at: db::get(row, "fired_at")?,
        resolved_at: db::get(row, "resolved_at")?,
        last_notified_at: db::get(row, "last_notified_at")?,
        notifications: db::get(row, "notifications")?,
        acked_by: db::get(row, "acked_by")?,
        acked_at: db::get(row, "acked_at")?,
        ack_comment: db::get(row, "ack_comment")?,
        history: serde_json::from_str(&text("history")?).map_err(|_| bad("history"))?,
    })
}

/// The active (pending and firing) alerts, for a new leader to carry on with.
pub async fn active(client: &Client) -> Result<Vec<Alert>, Error> {
    let rows = client
        .query(&format!("SELECT {COLUMNS} FROM dbagent.alerts WHERE state <> 'resolved'"), &[])
        .await
        .map_err(Error::driver)?;
    rows.iter().map(alert).collect()
}

/// What an evaluation needs to know that others may have changed: acknowledgements of active
/// alerts (`id` → when) and the silences in force.
pub async fn acks_and_silences(client: &Client) -> Result<(BTreeMap<String, DateTime<Utc>>, Vec<Silence>), Error> {
    let acks = client
        .query("SELECT id, acked_at FROM dbagent.alerts WHERE state <> 'resolved' AND acked_at IS NOT NULL", &[])
        .await
        .map_err(Error::driver)?
        .iter()
        .map(|r| Ok((db::get(r, "id")?, db::get(r, "acked_at")?)))
        .collect::<Result<_, Error>>()?;
    let silences = client
        .query(&format!("SELECT {SILENCE_COLUMNS} FROM dbagent.alert_silences WHERE expires_at > now()"), &[])
        .await
        .map_err(Error::driver)?
        .iter()
        .map(silence)
        .collect::<Result<_, _>>()?;
    Ok((acks, silences))
}

/// `GET /alerts` filters.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// `active` (pending and firing, the default), `pending`, `firing`, `resolved` or `all`.
    pub state: Option<String>,
    pub rule: Option<String>,
    /// The least severe level listed.
    pub severity: Option<String>,
    pub subject: Option<String>,
    /// Alerts started at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many (default 100, at most 1000), newest first.
    pub limit: Option<u32>,
}

/// Alerts matching `filter`, newest first.
pub async fn list(client: &Client, filter: &Filter) -> Result<Vec<Alert>, Error> {
    let states: Vec<&str> = match filter.state.as_deref().unwrap_or("active") {
        "active" => vec!["pending", "firing"],
        "all" => vec!["pending", "firing", "resolved"],
        one => vec![State::parse(one).ok_or_else(|| Error::Invalid(format!("state {one:?} is not active, pending, firing, resolved or all")))?.as_str()],
    };
    let severities: Vec<&str> = match filter.severity.as_deref() {
        None => vec!["info", "warning", "error", "critical"],
        Some(text) => {
            let least = Level::parse(text).ok_or_else(|| Error::Invalid(format!("severity {text:?} is not info, warning, error or critical")))?;
            [Level::Info, Level::Warning, Level::Error, Level::Critical].into_iter().filter(|l| *l >= least).map(Level::as_str).collect()
        }
    };
    let limit = i64::from(filter.limit.unwrap_or(100).clamp(1, 1000));
    let sql = format!(
        "SELECT {COLUMNS} FROM dbagent.alerts
          WHERE state = ANY($1) AND severity = ANY($2) AND ($3::text IS NULL OR rule = $3)
            AND ($4::text IS NULL OR subject = $4) AND ($5::timestamptz IS NULL OR started_at >= $5)
          ORDER BY started_at DESC LIMIT $6"
    );
    let rows = client
        .query(&sql, &[&states, &severities, &filter.rule, &filter.subject, &filter.since, &limit])
        .await
        .map_err(Error::driver)?;
    rows.iter().map(alert).collect()
}

pub async fn get(client: &Client, id: &str) -> Result<Alert, Error> {
    let row = client
        .query_opt(&format!("SELECT {COLUMNS} FROM dbagent.alerts WHERE id = $1"), &[&id])
        .await
        .map_err(Error::driver)?
        .ok_or_else(|| Error::AlertNotFound(id.to_owned()))?;
    alert(&row)
}

/// Acknowledges alert `id` as `by` (a key's name, or the CLI's `--by`). An alert already
/// acknowledged keeps its first acknowledgement.
pub async fn ack(client: &Client, id: &str, by: &str, comment: Option<&str>) -> Result<Alert, Error> {
    client
        .execute(
            "UPDATE dbagent.alerts SET acked_by = $2, acked_at = now(), ack_comment = $3 WHERE id = $1 AND acked_at IS NULL",
            &[&id, &by, &comment],
        )
        .await
        .map_err(Error::driver)?;
    get(client, id).await
}

/// A silence: notifications of matching alerts are held back until it expires.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Silence {
    pub id: String,
    /// The rule it silences (`None`: every rule).
    pub rule: Option<String>,
    /// The subject it silences (`None`: every subject).
    pub subject: Option<String>,
    pub comment: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Silence {
    pub fn matches(&self, rule: &str, subject: &str) -> bool {
        self.rule.as_deref().is_none_or(|r| r == rule) && self.subject.as_deref().is_none_or(|s| s == subject)
    }
}

const SILENCE_COLUMNS: &str = "id, rule, subject, comment, created_by, created_at, expires_at";

fn silence(row: &Row) -> Result<Silence, Error> {
    Ok(Silence {
        id: db::get(row, "id")?,
        rule: db::get(row, "rule")?,
        subject: db::get(row, "subject")?,
        comment: db::get(row, "comment")?,
        created_by: db::get(row, "created_by")?,
        created_at: db::get(row, "created_at")?,
        expires_at: db::get(row, "expires_at")?,
    })
}

/// `POST /silences`: what to silence and for how long.
#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    /// A rule's name; default every rule.
    pub rule: Option<String>,
    /// A subject (`primary`, a replica's name ...); default every subject.
    pub subject: Option<String>,
    /// How long: seconds, or `30m`, `2h`, `1d`.
    pub duration: Option<serde_json::Value>,
    /// Until when (instead of `duration`).
    pub until: Option<DateTime<Utc>>,
    pub comment: Option<String>,
}

impl NewSilence {
    /// When it expires: `until`, or `duration` from now (one of them, in the future, at most a
    /// year away).
    pub fn expires_at(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
        let expires = match (&self.duration, self.until) {
            (Some(_), Some(_)) => return Err(Error::Invalid("give duration or until, not both".into())),
            (None, None) => return Err(Error::Invalid("a silence needs a duration (e.g. \"2h\") or until".into())),
            (None, Some(until)) => until,
            (Some(d), None) => {
                let seconds = match d {
                    serde_json::Value::Number(n) => n.as_f64(),
                    serde_json::Value::String(s) => crate::config::parse_seconds(s),
                    _ => None,
                }
                .filter(|s| *s > 0.0)
                .ok_or_else(|| Error::Invalid(format!("duration {d} is not a duration (e.g. 3600, \"30m\", \"2h\")")))?;
                now + chrono::TimeDelta::milliseconds((seconds.min(400.0 * 86_400.0) * 1e3) as i64)
            }
        };
        if expires <= now || expires > now + chrono::TimeDelta::days(366) {
            return Err(Error::Invalid("a silence must end in the future, within a year".into()));
        }
        Ok(expires)
    }
}

pub async fn create_silence(client: &Client, new: &NewSilence, by: &str) -> Result<Silence, Error> {
    let expires_at = new.expires_at(Utc::now())?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let row = client
        .query_one(
            &format!(
                "INSERT INTO dbagent.alert_silences (id, rule, subject, comment, created_by, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SILENCE_COLUMNS}"
            ),
            &[&id, &new.rule, &new.subject, &new.comment, &by, &expires_at],
        )
        .await
        .map_err(Error::driver)?;
    silence(&row)
}

/// Silences in force (and, with `all`, the expired ones still kept).
pub async fn silences(client: &Client, all: bool) -> Result<Vec<Silence>, Error> {
    let rows = client
        .query(&format!("SELECT {SILENCE_COLUMNS} FROM dbagent.alert_silences WHERE $1 OR expires_at > now() ORDER BY created_at DESC"), &[&all])
        .await
        .map_err(Error::driver)?;
    rows.iter().map(silence).collect()
}

/// Ends silence `id` now (kept, expired, for the record).
pub async fn expire_silence(client: &Client, id: &str) -> Result<Silence, Error> {
    let row = client
        .query_opt(
            &format!("UPDATE dbagent.alert_silences SET expires_at = least(expires_at, now()) WHERE id = $1 RETURNING {SILENCE_COLUMNS}"),
            &[&id],
        )
        .await
        .map_err(Error::driver)?
        .ok_or_else(|| Error::SilenceNotFound(id.to_owned()))?;
    silence(&row)
}

/// Deletes resolved alerts and expired silences older than `days`. Returns rows deleted.
pub async fn prune(client: &Client, days: u32) -> Result<u64, Error> {
    let days = days as i32;
    let alerts = client
        .execute("DELETE FROM dbagent.alerts WHERE state = 'resolved' AND resolved_at < now() - make_interval(days => $1)", &[&days])
        .await
        .map_err(Error::driver)?;
    let silences = client
        .execute("DELETE FROM dbagent.alert_silences WHERE expires_at < now() - make_interval(days => $1)", &[&days])
        .await
        .map_err(Error::driver)?;
    Ok(alerts + silences)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silence_needs_one_future_end() {
        let now = Utc::now();
        let new = |duration: Option<serde_json::Value>, until: Option<DateTime<Utc>>| NewSilence { rule: None, subject: None, duration, until, comment: None };
        let two_hours = new(Some(serde_json::json!("2h")), None).expires_at(now).unwrap();
        assert_eq!((two_hours - now).num_seconds(), 7200);
        assert_eq!((new(Some(serde_json::json!(90)), None).expires_at(now).unwrap() - now).num_seconds(), 90);
        assert!(new(None, None).expires_at(now).is_err());
        assert!(new(Some(serde_json::json!("soon")), None).expires_at(now).is_err());
        assert!(new(None, Some(now - chrono::TimeDelta::hours(1))).expires_at(now).is_err());
        assert!(new(Some(serde_json::json!("1h")), Some(now)).expires_at(now).is_err());
    }

    #[test]
    fn silences_match_by_rule_and_subject() {
        let s = |rule: Option<&str>, subject: Option<&str>| Silence {
            id: String::new(),
            rule: rule.map(Into::into),
            subject: subject.map(Into::into),
            comment: None,
            created_by: String::new(),
            created_at: Utc::now(),
            expires_at: Utc::now(),
        };
        assert!(s(None, None).matches("any", "thing"));
        assert!(s(Some("pool_saturation"), None).matches("pool_saturation", "primary"));
        assert!(!s(Some("pool_saturation"), None).matches("connections", "primary"));
        assert!(!s(Some("replication_lag"), Some("replica-1")).matches("replication_lag", "replica-2"));
    }
}
