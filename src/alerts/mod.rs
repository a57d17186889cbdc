//! Alerts: rules over live checks and the metric history, evaluated by one agent; their
//! lifecycle (pending → firing → resolved, with hysteresis, one active alert per rule and
//! subject, repeats, acknowledgements, silences) kept in `dbagent.alerts`; notifications to
//! webhooks (Alertmanager's format), Slack and email, delivered in the background with retries.
//!
//! * `rules.rs` — the built-in rules and their defaults, custom rules, the level of a value
//!   (pure);
//! * `lifecycle.rs` — an alert and what each evaluation does to it (pure);
//! * `reading.rs` (+ `sql/database.sql`) — what the rules read;
//! * `engine.rs` — the evaluation loop and its leadership (advisory lock);
//! * `store.rs` — the tables, acknowledgements, silences, retention;
//! * `notify/` — channels, payloads, the delivery queue and retries;
//! * `export.rs` — the built-in rules as a Prometheus rules file.
//!
//! Invariants: evaluation never waits for a delivery (the queue is `try_send`); a notification
//! is due only from an alert's own fields (notified yet, acknowledged, silenced, last sent), so
//! a restarted or new leader never sends one twice; an alert's history is only appended to.

mod engine;
mod error;
pub mod export;
pub mod lifecycle;
pub mod notify;
pub mod reading;
pub mod rules;
pub mod store;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use engine::{LOCK_KEY, evaluate_once, spawn};
pub use error::Error;
pub use lifecycle::{Alert, Event, EventKind, Notice, State};
pub use notify::ChannelReport;
pub use rules::Rule;

use crate::config::{self, Level};
use crate::monitor::render::{Kind, Text};

/// The alerts' handle: settings, rules, channels and the engine's last evaluation.
pub struct Alerts {
    pub settings: config::Alerts,
    pub rules: Vec<Rule>,
    pub notifier: Arc<notify::Notifier>,
    /// `monitoring.sample_interval`: how fresh the history's newest samples are.
    sample_interval: f64,
    status: Mutex<Status>,
}

/// The engine's last evaluation on this agent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    /// This agent evaluates the rules (holds the alerts' lock).
    pub leader: bool,
    pub evaluated_at: Option<DateTime<Utc>>,
    /// How long the last evaluation took.
    pub evaluation_ms: f64,
    pub rules: Vec<RuleStatus>,
    /// Firing alerts: (rule, severity).
    #[serde(skip)]
    pub firing: Vec<(String, Level)>,
    pub database_error: Option<String>,
}

/// A rule and what the last evaluation saw.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RuleStatus {
    #[serde(flatten)]
    pub rule: Rule,
    pub observations: Vec<Observation>,
}

/// One subject's value at the last evaluation.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Observation {
    pub subject: String,
    pub value: f64,
    /// The level the value is at (`None`: fine).
    pub level: Option<Level>,
    /// The alert's state, when there is an alert.
    pub state: Option<State>,
    pub alert_id: Option<String>,
}

/// The alerts' part of `/health`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AlertsReport {
    pub enabled: bool,
    /// This agent evaluates the rules.
    pub leader: bool,
    pub evaluated_at: Option<DateTime<Utc>>,
    pub firing: usize,
    pub channels: Vec<ChannelReport>,
    /// Notifications dropped because the queue was full.
    pub dropped: u64,
    /// A channel's last attempt failed.
    pub failing: bool,
}

impl Alerts {
    /// The rules and channels of `config` (starts the delivery task when channels exist).
    pub fn new(config: &config::Config) -> Arc<Alerts> {
        let settings = config.alerts.clone();
        let rules = rules::all(&settings, &config.backup);
        let notifier = notify::Notifier::start(&settings);
        Arc::new(Alerts { settings, rules, notifier, sample_interval: config.monitoring.sample_interval, status: Mutex::default() })
    }

    pub fn status(&self) -> Status {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_status(&self, status: Status) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    pub fn report(&self) -> AlertsReport {
        let status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        let channels: Vec<ChannelReport> = self.notifier.channels.iter().map(|c| c.report()).collect();
        AlertsReport {
            enabled: self.settings.enabled,
            leader: status.leader,
            evaluated_at: status.evaluated_at,
            firing: status.firing.len(),
            failing: channels.iter().any(|c| c.failing),
            channels,
            dropped: self.notifier.dropped(),
        }
    }

    /// `dbagent_alerts_firing{rule,severity}` (on the leader) and
    /// `dbagent_alert_notifications_total{channel,outcome}`.
    pub fn render(&self, text: &mut Text) {
        let firing = self.status.lock().unwrap_or_else(|p| p.into_inner()).firing.clone();
        text.family("dbagent_alerts_firing", Kind::Gauge, "Alerts firing, by rule and severity (on the agent that evaluates them).");
        let mut counts: std::collections::BTreeMap<(String, Level), u32> = std::collections::BTreeMap::new();
        for (rule, severity) in firing {
            *counts.entry((rule, severity)).or_default() += 1;
        }
        for ((rule, severity), n) in counts {
            text.sample("dbagent_alerts_firing", &[("rule", &rule), ("severity", severity.as_str())], f64::from(n));
        }
        text.family("dbagent_alert_notifications_total", Kind::Counter, "Alert notifications by channel and outcome (sent, failed after retries, retried).");
        for channel in &self.notifier.channels {
            for (outcome, n) in channel.counts() {
                text.sample("dbagent_alert_notifications_total", &[("channel", &channel.settings.name), ("outcome", outcome)], n as f64);
            }
        }
    }

    /// `dbagent alerts test --channel NAME` / `POST /alerts/test`: a test notification sent
    /// now, with the configured retries. Returns the attempt that succeeded.
    pub async fn test(&self, channel: &str) -> Result<u32, Error> {
        let target = self.notifier.channel(channel).ok_or_else(|| Error::ChannelNotFound(channel.to_owned()))?;
        let rule = Rule {
            name: "dbagent_test".into(),
            metric: "test".into(),
            unit: "",
            source: rules::Source::Live,
            op: rules::Op::Ge,
            warning: Some(1.0),
            critical: None,
            for_seconds: 0.0,
            enabled: true,
            summary: "a test notification from dbagent".into(),
            labels: Default::default(),
        };
        let mut alert = Alert::new(&rule, "test", 1.0, Level::Warning, Utc::now());
        alert.fired_at = Some(alert.started_at);
        let n = notify::Notification { notice: Notice::Test, alert, link: self.settings.dashboard_url.clone() };
        self.notifier.send_now(target, &n).await.map_err(|reason| Error::NotificationFailed { channel: channel.to_owned(), reason })
    }
}
