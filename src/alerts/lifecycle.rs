//! An alert and its lifecycle, as pure functions of each evaluation: pending while the
//! condition holds for less than the rule's `for:`, firing after, resolved once the value is
//! back past the threshold (with hysteresis, [`Rule::level`]). One alert per rule and subject
//! is active at a time; what to notify follows from the alert's own fields (notified yet,
//! acknowledged, silenced, when last sent), so a restarted or new leader carries on without
//! sending twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::rules::Rule;
use crate::config::Level;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Pending,
    Firing,
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Firing => "firing",
            State::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<State> {
        match text {
            "pending" => Some(State::Pending),
            "firing" => Some(State::Firing),
            "resolved" => Some(State::Resolved),
            _ => None,
        }
    }
}

/// What an alert's history records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Pending,
    Firing,
    Escalated,
    DeEscalated,
    Resolved,
    /// A notification was queued for the channels.
    Notified,
    /// Due, but a silence held it back.
    Silenced,
    Delivered,
    DeliveryFailed,
}

/// One line of an alert's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Event {
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    pub message: String,
}

/// An alert: one rule about one subject (`primary`, a replica's name, `database` ...).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Alert {
    pub id: String,
    pub rule: String,
    pub subject: String,
    pub severity: Level,
    pub state: State,
    pub value: f64,
    pub threshold: Option<f64>,
    pub unit: String,
    pub summary: String,
    pub labels: BTreeMap<String, String>,
    /// When the condition was first seen (pending since).
    pub started_at: DateTime<Utc>,
    pub fired_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub last_notified_at: Option<DateTime<Utc>>,
    pub notifications: i32,
    pub acked_by: Option<String>,
    pub acked_at: Option<DateTime<Utc>>,
    pub ack_comment: Option<String>,
    pub history: Vec<Event>,
}

/// A notification to send about an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Notice {
    Firing,
    Escalated,
    Repeat,
    Resolved,
    /// `dbagent alerts test`: not about a real alert.
    Test,
}

impl Notice {
    pub fn as_str(self) -> &'static str {
        match self {
            Notice::Firing => "firing",
            Notice::Escalated => "escalated",
            Notice::Repeat => "repeat",
            Notice::Resolved => "resolved",
            Notice::Test => "test",
        }
    }
}

/// What the evaluation knows beside the value.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub now: DateTime<Utc>,
    pub repeat_seconds: f64,
    /// A silence matches this alert now.
    pub silenced: bool,
}

impl Alert {
    /// A new alert for `rule` about `subject`, pending (or firing at once with `for: 0`,
    /// through the [`Alert::observe`] that follows).
    pub fn new(rule: &Rule, subject: &str, value: f64, level: Level, now: DateTime<Utc>) -> Alert {
        let mut labels = rule.labels.clone();
        labels.insert("subject".into(), subject.to_owned());
        Alert {
            id: uuid::Uuid::new_v4().simple().to_string(),
            rule: rule.name.clone(),
            subject: subject.to_owned(),
            severity: level,
            state: State::Pending,
            value,
            threshold: rule.threshold(level),
            unit: rule.unit.to_owned(),
            summary: summary(rule, subject, value, level),
            labels,
            started_at: now,
            fired_at: None,
            resolved_at: None,
            last_notified_at: None,
            notifications: 0,
            acked_by: None,
            acked_at: None,
            ack_comment: None,
            history: vec![Event { at: now, kind: EventKind::Pending, message: format!("{} {}", level.as_str(), shown(value, rule.unit)) }],
        }
    }

    pub fn is_active(&self) -> bool {
        self.state != State::Resolved
    }

    /// Applies one evaluation: `level` is what the rule says of `value` now (`None`: fine).
    /// Returns the notification due, if any; the alert records what happened in its history.
    pub fn observe(&mut self, rule: &Rule, value: f64, level: Option<Level>, ctx: Context) -> Option<Notice> {
        self.value = value;
        let Some(level) = level else { return self.resolve(ctx) };
        let previous = self.severity;
        self.severity = level;
        self.threshold = rule.threshold(level);
        self.summary = summary(rule, &self.subject, value, level);
        match self.state {
            State::Resolved => None,
            State::Pending => {
                let held = (ctx.now - self.started_at).num_milliseconds() as f64 / 1e3;
                if held + 1e-3 < rule.for_seconds {
                    return None;
                }
                self.state = State::Firing;
                self.fired_at = Some(ctx.now);
                self.record(ctx.now, EventKind::Firing, format!("{} {}", level.as_str(), shown(value, rule.unit)));
                self.due(ctx, Notice::Firing)
            }
            State::Firing if level > previous => {
                self.record(ctx.now, EventKind::Escalated, format!("{} -> {}", previous.as_str(), level.as_str()));
                self.due(ctx, Notice::Escalated)
            }
            State::Firing => {
                if level < previous {
                    self.record(ctx.now, EventKind::DeEscalated, format!("{} -> {}", previous.as_str(), level.as_str()));
                }
                match self.last_notified_at {
                    // Held back by a silence so far: sent once the silence is over.
                    None => self.due(ctx, Notice::Firing),
                    Some(last) if self.acked_at.is_none() && (ctx.now - last).num_milliseconds() as f64 / 1e3 >= ctx.repeat_seconds => {
                        self.due(ctx, Notice::Repeat)
                    }
                    Some(_) => None,
                }
            }
        }
    }

    /// The condition cleared: a firing alert resolves (notified if its firing was); a
    /// pending one ends without ever firing.
    fn resolve(&mut self, ctx: Context) -> Option<Notice> {
        let was = self.state;
        if was == State::Resolved {
            return None;
        }
        self.state = State::Resolved;
        self.resolved_at = Some(ctx.now);
        if was == State::Pending {
            self.record(ctx.now, EventKind::Resolved, "cleared before firing".into());
            return None;
        }
        self.record(ctx.now, EventKind::Resolved, format!("back to {}", shown(self.value, &self.unit)));
        if self.last_notified_at.is_some() { self.due(ctx, Notice::Resolved) } else { None }
    }

    /// Ends an alert whose rule is gone or disabled, without a notification.
    pub fn retire(&mut self, now: DateTime<Utc>, reason: &str) {
        if self.state != State::Resolved {
            self.state = State::Resolved;
            self.resolved_at = Some(now);
            self.record(now, EventKind::Resolved, reason.to_owned());
        }
    }

    /// `notice`, unless a silence holds it back (recorded either way).
    fn due(&mut self, ctx: Context, notice: Notice) -> Option<Notice> {
        if ctx.silenced {
            self.record(ctx.now, EventKind::Silenced, format!("{} notification held back by a silence", notice.as_str()));
            return None;
        }
        self.last_notified_at = Some(ctx.now);
        self.notifications += 1;
        self.record(ctx.now, EventKind::Notified, notice.as_str().into());
        Some(notice)
    }

    fn record(&mut self, at: DateTime<Utc>, kind: EventKind, message: String) {
        self.history.push(Event { at, kind, message });
    }
}

fn summary(rule: &Rule, subject: &str, value: f64, level: Level) -> String {
    let threshold = rule.threshold(level).map(|t| format!(" ({} at {} {})", level.as_str(), rule.op.as_str(), shown(t, rule.unit))).unwrap_or_default();
    format!("{}: {} on {subject}{threshold}", rule.summary, shown(value, rule.unit))
}

/// A value with its unit, rounded for people.
pub fn shown(value: f64, unit: &str) -> String {
    let number = if value.fract() == 0.0 || value.abs() >= 100.0 { format!("{value:.0}") } else { format!("{value:.2}") };
    match unit {
        "" => number,
        "%" | "/min" => format!("{number}{unit}"),
        _ => format!("{number} {unit}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::rules::{Op, Source};
    use chrono::TimeDelta;

    fn rule(for_seconds: f64) -> Rule {
        Rule {
            name: "pool_saturation".into(),
            metric: "pool_used_pct".into(),
            unit: "%",
            source: Source::Live,
            op: Op::Ge,
            warning: Some(80.0),
            critical: Some(100.0),
            for_seconds,
            enabled: true,
            summary: "pool in use".into(),
            labels: BTreeMap::new(),
        }
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + TimeDelta::seconds(seconds)
    }

    fn ctx(seconds: i64) -> Context {
        Context { now: at(seconds), repeat_seconds: 60.0, silenced: false }
    }

    #[test]
    fn an_alert_fires_after_for_repeats_and_resolves_once() {
        let r = rule(10.0);
        let mut a = Alert::new(&r, "primary", 100.0, Level::Critical, at(0));
        let c = Some(Level::Critical);
        assert_eq!(a.observe(&r, 100.0, c, ctx(0)), None, "pending");
        assert_eq!(a.observe(&r, 100.0, c, ctx(5)), None, "still pending");
        assert_eq!(a.observe(&r, 100.0, c, ctx(10)), Some(Notice::Firing));
        assert_eq!(a.observe(&r, 100.0, c, ctx(20)), None, "no duplicate while firing");
        assert_eq!(a.observe(&r, 100.0, c, ctx(70)), Some(Notice::Repeat), "repeat after the interval");
        assert_eq!(a.observe(&r, 10.0, None, ctx(75)), Some(Notice::Resolved));
        assert_eq!(a.observe(&r, 10.0, None, ctx(80)), None, "resolved once");
        assert_eq!((a.state, a.notifications), (State::Resolved, 3));
    }

    #[test]
    fn acknowledged_alerts_stop_repeating_but_escalations_are_sent() {
        let r = rule(0.0);
        let mut a = Alert::new(&r, "primary", 80.0, Level::Warning, at(0));
        assert_eq!(a.observe(&r, 80.0, Some(Level::Warning), ctx(0)), Some(Notice::Firing));
        a.acked_at = Some(at(1));
        assert_eq!(a.observe(&r, 80.0, Some(Level::Warning), ctx(120)), None);
        assert_eq!(a.observe(&r, 100.0, Some(Level::Critical), ctx(130)), Some(Notice::Escalated));
    }

    #[test]
    fn silences_hold_notifications_back_until_they_end() {
        let r = rule(0.0);
        let mut a = Alert::new(&r, "primary", 100.0, Level::Critical, at(0));
        let silenced = Context { silenced: true, ..ctx(0) };
        assert_eq!(a.observe(&r, 100.0, Some(Level::Critical), silenced), None);
        assert_eq!(a.state, State::Firing);
        assert!(a.history.iter().any(|e| e.kind == EventKind::Silenced));
        assert_eq!(a.observe(&r, 100.0, Some(Level::Critical), ctx(5)), Some(Notice::Firing), "sent once the silence is over");
    }

    #[test]
    fn a_pending_alert_that_clears_never_notifies() {
        let r = rule(30.0);
        let mut a = Alert::new(&r, "primary", 85.0, Level::Warning, at(0));
        assert_eq!(a.observe(&r, 85.0, Some(Level::Warning), ctx(0)), None);
        assert_eq!(a.observe(&r, 10.0, None, ctx(10)), None);
        assert_eq!((a.state, a.notifications, a.fired_at), (State::Resolved, 0, None));
    }
}
