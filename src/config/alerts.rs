//! `alerts:` — the alert engine, its rules' thresholds, custom rules and notification channels.
//!
//! Every built-in rule has defaults (`alerts::rules::BUILT_IN`); `rules:` only changes what is
//! given (`rules: {connections: {warning: 80}}`). Durations are seconds (`0.5`) or a whole
//! number with a unit (`90s`, `5m`, `4h`).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::{Error, Secret, invalid};

/// Alerting: on by default, with no channel (alerts are listed by `/alerts`, sent nowhere).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Alerts {
    /// Evaluate the rules (on the one agent holding the alerts' advisory lock). Default true.
    pub enabled: bool,
    /// Seconds between evaluations. Default 15.
    #[serde(deserialize_with = "seconds")]
    pub evaluation_interval: f64,
    /// How long resolved alerts and expired silences are kept in `dbagent.alerts`. Default 30.
    pub retention_days: u32,
    /// While an alert fires unacknowledged, its notification is sent again this often.
    /// Default 4 h (Alertmanager's default).
    #[serde(deserialize_with = "seconds")]
    pub repeat_interval: f64,
    /// How far (percent of the threshold) a value must come back past a threshold before the
    /// alert resolves or steps down, so a value hovering at the threshold does not flap.
    /// Default 5.
    pub hysteresis_pct: f64,
    /// A link put in notifications (the dashboard's alerts page). Default none.
    pub dashboard_url: Option<String>,
    /// Changes to the built-in rules, by rule name.
    pub rules: BTreeMap<String, RuleOverride>,
    /// Rules over a series of the metric history (`GET /metrics/history`'s names).
    pub custom: Vec<CustomRule>,
    /// Where notifications go.
    pub channels: Vec<Channel>,
    /// The SMTP server email channels send through (seed 004's `SMTP_*`).
    pub smtp: Smtp,
    /// Default recipients of email channels that list none (seed 004's `ALERT_EMAIL_TO`, a
    /// comma-separated list there). With recipients and no email channel, one named `email`
    /// is added.
    #[serde(deserialize_with = "address_list")]
    pub email_to: Vec<String>,
    /// Retries of a failed notification.
    pub delivery: Delivery,
}

impl Default for Alerts {
    fn default() -> Self {
        Alerts {
            enabled: true,
            evaluation_interval: 15.0,
            retention_days: 30,
            repeat_interval: 4.0 * 3600.0,
            hysteresis_pct: 5.0,
            dashboard_url: None,
            rules: BTreeMap::new(),
            custom: Vec::new(),
            channels: Vec::new(),
            smtp: Smtp::default(),
            email_to: Vec::new(),
            delivery: Delivery::default(),
        }
    }
}

/// What `alerts.rules.<name>` may change of a built-in rule; what is not given stays.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleOverride {
    pub enabled: Option<bool>,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    /// How long the condition must hold before the alert fires.
    #[serde(default, rename = "for", deserialize_with = "optional_seconds")]
    pub for_seconds: Option<f64>,
}

/// A rule of the user's own over a history series.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    pub name: String,
    /// A series of the metric history (`tps`, `latency_p99_ms`, ...).
    pub metric: String,
    /// `>`, `>=`, `<` or `<=`: how the value compares to the thresholds to fire.
    #[serde(default = "above")]
    pub op: String,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    #[serde(default, rename = "for", deserialize_with = "seconds")]
    pub for_seconds: f64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// What the alert says; default: the metric and the comparison.
    pub summary: Option<String>,
}

fn above() -> String {
    ">".into()
}

/// A notification channel.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Channel {
    /// Its name (`dbagent alerts test --channel NAME`, metrics labels).
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ChannelKind,
    /// Where a webhook or Slack channel posts (a Slack incoming-webhook URL).
    pub url: Option<Secret>,
    /// Email recipients; default `alerts.email_to`.
    #[serde(default, deserialize_with = "address_list")]
    pub to: Vec<String>,
    /// The least severe level sent. Default warning.
    #[serde(default = "warning")]
    pub min_level: Level,
    /// Only these rules (default: all).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Send a notification when an alert resolves. Default true.
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

fn warning() -> Level {
    Level::Warning
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    /// A POST of Alertmanager's webhook JSON (version 4).
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// Email through `alerts.smtp`.
    Email,
}

/// Seed 003's levels, least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Warning,
    Error,
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Level> {
        match text.to_ascii_lowercase().as_str() {
            "info" => Some(Level::Info),
            "warning" => Some(Level::Warning),
            "error" => Some(Level::Error),
            "critical" => Some(Level::Critical),
            _ => None,
        }
    }
}

/// The SMTP server of email channels.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Smtp {
    pub server: Option<String>,
    /// Default 587 (submission with STARTTLS).
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The sender; default the username, else `dbagent@<server>`.
    pub from: Option<String>,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (a local relay only).
    pub security: SmtpSecurity,
    /// Seconds to wait for the server. Default 10.
    pub timeout: f64,
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp { server: None, port: 587, username: None, password: None, from: None, security: SmtpSecurity::Starttls, timeout: 10.0 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    Starttls,
    Tls,
    None,
}

/// Retries of a failed notification: `retries` more attempts, waiting `backoff` seconds,
/// doubled after each, at most `max_backoff`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    /// Default 5.
    pub retries: u32,
    /// Default 2 s.
    #[serde(deserialize_with = "seconds")]
    pub backoff: f64,
    /// Default 5 min.
    #[serde(deserialize_with = "seconds")]
    pub max_backoff: f64,
    /// Seconds an HTTP delivery may take. Default 10.
    #[serde(deserialize_with = "seconds")]
    pub timeout: f64,
}

impl Default for Delivery {
    fn default() -> Self {
        Delivery { retries: 5, backoff: 2.0, max_backoff: 300.0, timeout: 10.0 }
    }
}

impl Alerts {
    /// The channels, with the implied `email` channel when `email_to` is set and no email
    /// channel is.
    pub fn all_channels(&self) -> Vec<Channel> {
        let mut channels = self.channels.clone();
        if !self.email_to.is_empty() && !channels.iter().any(|c| c.kind == ChannelKind::Email) {
            channels.push(Channel {
                name: "email".into(),
                kind: ChannelKind::Email,
                url: None,
                to: Vec::new(),
                min_level: Level::Warning,
                rules: Vec::new(),
                send_resolved: true,
            });
        }
        channels
    }

    pub(super) fn validate(&self, known_rules: &[&str], known_series: &[&str]) -> Result<(), Error> {
        if !(0.01..=3600.0).contains(&self.evaluation_interval) {
            return invalid("alerts.evaluation_interval", "must be between 0.01 and 3600 seconds");
        }
        if self.retention_days == 0 {
            return invalid("alerts.retention_days", "must be at least 1 day");
        }
        if self.repeat_interval < self.evaluation_interval {
            return invalid("alerts.repeat_interval", "must be at least alerts.evaluation_interval");
        }
        if !(0.0..50.0).contains(&self.hysteresis_pct) {
            return invalid("alerts.hysteresis_pct", "must be at least 0 and under 50");
        }
        for (name, o) in &self.rules {
            if !known_rules.contains(&name.as_str()) {
                return invalid(&format!("alerts.rules.{name}"), format!("no such rule; the built-in rules are {}", known_rules.join(", ")));
            }
            if o.warning.is_some_and(|v| !v.is_finite()) || o.critical.is_some_and(|v| !v.is_finite()) || o.for_seconds.is_some_and(|v| v < 0.0) {
                return invalid(&format!("alerts.rules.{name}"), "thresholds must be numbers and `for` a duration");
            }
        }
        self.validate_custom(known_rules, known_series)?;
        self.validate_channels()?;
        self.validate_delivery()
    }

    fn validate_custom(&self, known_rules: &[&str], known_series: &[&str]) -> Result<(), Error> {
        for (i, rule) in self.custom.iter().enumerate() {
            let key = format!("alerts.custom[{i}]");
            if rule.name.is_empty() || known_rules.contains(&rule.name.as_str()) || self.custom[..i].iter().any(|r| r.name == rule.name) {
                return invalid(&format!("{key}.name"), "must be a name of its own (not empty, not a built-in rule's, not repeated)");
            }
            if !known_series.contains(&rule.metric.as_str()) {
                return invalid(&format!("{key}.metric"), format!("no such series; the history's series are {}", known_series.join(", ")));
            }
            if !matches!(rule.op.as_str(), ">" | ">=" | "<" | "<=") {
                return invalid(&format!("{key}.op"), "must be >, >=, < or <=");
            }
            if rule.warning.is_none() && rule.critical.is_none() {
                return invalid(&key, "needs a warning or a critical threshold");
            }
        }
        Ok(())
    }

    fn validate_channels(&self) -> Result<(), Error> {
        let channels = self.all_channels();
        for (i, channel) in channels.iter().enumerate() {
            let key = format!("alerts.channels[{i}]");
            if channel.name.is_empty() || channels[..i].iter().any(|c| c.name == channel.name) {
                return invalid(&format!("{key}.name"), "must be given and unique");
            }
            match channel.kind {
                ChannelKind::Webhook | ChannelKind::Slack => {
                    let Some(url) = &channel.url else { return invalid(&format!("{key}.url"), "a webhook or Slack channel needs a url") };
                    if !url::Url::parse(url.expose()).is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                        return invalid(&format!("{key}.url"), "must be an http:// or https:// URL");
                    }
                }
                ChannelKind::Email => {
                    if self.smtp.server.is_none() {
                        return invalid("alerts.smtp.server", format!("channel {:?} sends email: set the SMTP server (SMTP_SERVER)", channel.name));
                    }
                    if channel.to.is_empty() && self.email_to.is_empty() {
                        return invalid(&format!("{key}.to"), "an email channel needs recipients (or alerts.email_to / ALERT_EMAIL_TO)");
                    }
                }
            }
        }
        Ok(())
    }

    fn validate_delivery(&self) -> Result<(), Error> {
        let d = &self.delivery;
        if d.retries > 100 {
            return invalid("alerts.delivery.retries", "at most 100");
        }
        if !(d.backoff > 0.0 && d.backoff <= d.max_backoff) {
            return invalid("alerts.delivery.backoff", "must be more than 0 and at most max_backoff");
        }
        let fits = |t: f64| t > 0.0 && t <= 300.0;
        if !fits(d.timeout) || !fits(self.smtp.timeout) {
            return invalid("alerts.delivery.timeout", "timeouts are more than 0 and at most 300 seconds");
        }
        Ok(())
    }
}

/// Seconds as a number, or a duration with a unit (`500ms`, `90s`, `5m`, `4h`, `1d`).
fn seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        Number(f64),
        Text(String),
    }
    match Shape::deserialize(deserializer)? {
        Shape::Number(n) if n.is_finite() && n >= 0.0 => Ok(n),
        Shape::Number(n) => Err(serde::de::Error::custom(format!("{n} is not a duration"))),
        Shape::Text(text) => parse_seconds(&text).ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a duration (e.g. 30, 90s, 5m, 4h)"))),
    }
}

fn optional_seconds<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
    seconds(deserializer).map(Some)
}

/// `500ms`, or what [`super::parse_duration`] reads.
pub fn parse_seconds(text: &str) -> Option<f64> {
    let text = text.trim();
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse::<u64>().ok().map(|ms| ms as f64 / 1000.0);
    }
    super::parse_duration(text).map(|d| d.as_secs_f64())
}

/// A list of addresses, or one comma-separated string of them (as `ALERT_EMAIL_TO`).
fn address_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        List(Vec<String>),
        Text(String),
    }
    let list = match Shape::deserialize(deserializer)? {
        Shape::List(list) => list,
        Shape::Text(text) => text.split(',').map(str::to_owned).collect(),
    };
    Ok(list.into_iter().map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(yaml: &str) -> Result<Config, String> {
        let value: serde_norway::Value = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
        serde_path_to_error::deserialize::<_, Config>(value).map_err(|e| format!("{}: {}", e.path(), e.inner()))
    }

    #[test]
    fn durations_take_numbers_and_units() {
        let config = parse("alerts:\n  evaluation_interval: 0.5\n  repeat_interval: 2h\n  rules:\n    connections: {warning: 80, for: 90s}\n").unwrap();
        assert_eq!(config.alerts.evaluation_interval, 0.5);
        assert_eq!(config.alerts.repeat_interval, 7200.0);
        assert_eq!(config.alerts.rules["connections"].for_seconds, Some(90.0));
        assert_eq!(parse_seconds("250ms"), Some(0.25));
        assert!(parse("alerts:\n  repeat_interval: soon\n").is_err());
    }

    #[test]
    fn recipients_take_a_list_or_the_seed_comma_list() {
        let config = parse("alerts:\n  email_to: 'a@x.org, b@x.org'\n  smtp: {server: smtp.x.org}\n").unwrap();
        assert_eq!(config.alerts.email_to, ["a@x.org", "b@x.org"]);
        let channels = config.alerts.all_channels();
        assert_eq!((channels.len(), channels[0].kind), (1, ChannelKind::Email), "an implied email channel");
    }

    #[test]
    fn bad_sections_name_their_key() {
        let bad = |yaml: &str| {
            let config = parse(yaml).unwrap();
            config.alerts.validate(&["connections"], &["tps"]).unwrap_err().to_string()
        };
        assert!(bad("alerts:\n  rules:\n    conections: {warning: 1}\n").contains("alerts.rules.conections"));
        assert!(bad("alerts:\n  custom: [{name: x, metric: nope, warning: 1}]\n").contains("alerts.custom[0].metric"));
        assert!(bad("alerts:\n  custom: [{name: x, metric: tps, op: '!=', warning: 1}]\n").contains("alerts.custom[0].op"));
        assert!(bad("alerts:\n  channels: [{name: a, type: webhook}]\n").contains("alerts.channels[0].url"));
        assert!(bad("alerts:\n  channels: [{name: a, type: email, to: [x@y.z]}]\n").contains("alerts.smtp.server"));
        assert!(parse("alerts:\n  channels: [{name: a, type: pager}]\n").is_err());
        assert!(Alerts::default().validate(&["connections"], &["tps"]).is_ok());
    }
}
