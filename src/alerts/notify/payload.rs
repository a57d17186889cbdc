//! What each channel sends, as pure functions of a notification: Alertmanager's webhook JSON
//! (version 4, so existing receivers work), a Slack message, and an email's subject and text.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use crate::alerts::lifecycle::{Alert, Notice, shown};
use crate::config::Level;

/// One notification about one alert.
#[derive(Debug, Clone)]
pub struct Notification {
    pub notice: Notice,
    pub alert: Alert,
    /// `alerts.dashboard_url`, for links.
    pub link: Option<String>,
}

impl Notification {
    fn status(&self) -> &'static str {
        if self.notice == Notice::Resolved { "resolved" } else { "firing" }
    }

    fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.alert.labels.clone();
        labels.insert("alertname".into(), self.alert.rule.clone());
        labels.insert("severity".into(), self.alert.severity.as_str().into());
        labels.insert("subject".into(), self.alert.subject.clone());
        labels
    }

    fn value(&self) -> String {
        shown(self.alert.value, &self.alert.unit)
    }

    fn threshold(&self) -> String {
        self.alert.threshold.map(|t| shown(t, &self.alert.unit)).unwrap_or_else(|| "-".into())
    }

    /// `[FIRING:CRITICAL] pool_saturation on primary`.
    pub fn title(&self) -> String {
        let status = match self.notice {
            Notice::Test => "TEST".to_string(),
            Notice::Resolved => "RESOLVED".to_string(),
            _ => format!("FIRING:{}", self.alert.severity.as_str().to_ascii_uppercase()),
        };
        format!("[{status}] {} on {}", self.alert.rule, self.alert.subject)
    }
}

/// Alertmanager's webhook payload.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    pub version: &'static str,
    pub group_key: String,
    pub truncated_alerts: u32,
    pub status: &'static str,
    pub receiver: String,
    pub group_labels: BTreeMap<String, String>,
    pub common_labels: BTreeMap<String, String>,
    pub common_annotations: BTreeMap<String, String>,
    #[serde(rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<WebhookAlert>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    pub status: &'static str,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: DateTime<Utc>,
    /// Alertmanager's "zero time" while firing.
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

/// The webhook body for `receiver` (the channel's name).
pub fn webhook(n: &Notification, receiver: &str) -> Webhook {
    let labels = n.labels();
    let mut annotations = BTreeMap::new();
    annotations.insert("summary".to_string(), n.alert.summary.clone());
    annotations.insert("value".to_string(), n.value());
    annotations.insert("threshold".to_string(), n.threshold());
    annotations.insert("notification".to_string(), n.notice.as_str().to_string());
    if let Some(by) = &n.alert.acked_by {
        annotations.insert("acknowledged_by".to_string(), by.clone());
    }
    let ends_at = match (n.notice, n.alert.resolved_at) {
        (Notice::Resolved, Some(at)) => at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        _ => "0001-01-01T00:00:00Z".to_string(),
    };
    let group_labels: BTreeMap<String, String> = [("alertname".to_string(), n.alert.rule.clone())].into();
    Webhook {
        version: "4",
        group_key: format!("{{}}:{{alertname=\"{}\"}}", n.alert.rule),
        truncated_alerts: 0,
        status: n.status(),
        receiver: receiver.to_owned(),
        group_labels,
        common_labels: labels.clone(),
        common_annotations: annotations.clone(),
        external_url: n.link.clone().unwrap_or_default(),
        alerts: vec![WebhookAlert {
            status: n.status(),
            labels,
            annotations,
            starts_at: n.alert.fired_at.unwrap_or(n.alert.started_at),
            ends_at,
            generator_url: link(n),
            fingerprint: n.alert.id.clone(),
        }],
    }
}

fn link(n: &Notification) -> String {
    n.link.as_deref().map(|base| format!("{}/alerts/{}", base.trim_end_matches('/'), n.alert.id)).unwrap_or_default()
}

fn color(n: &Notification) -> &'static str {
    match (n.notice, n.alert.severity) {
        (Notice::Resolved, _) => "#2eb67d",
        (_, Level::Critical | Level::Error) => "#e01e5a",
        (_, Level::Warning) => "#ecb22e",
        (_, Level::Info) => "#36c5f0",
    }
}

/// A Slack incoming-webhook message: a title line, then an attachment (coloured by level)
/// with the summary, level, value, threshold and a link to the dashboard.
pub fn slack(n: &Notification) -> Value {
    let field = |name: &str, value: String| json!({ "type": "mrkdwn", "text": format!("*{name}*\n{value}") });
    let mut blocks = vec![
        json!({ "type": "section", "text": { "type": "mrkdwn", "text": format!("*{}*\n{}", n.title(), n.alert.summary) } }),
        json!({ "type": "section", "fields": [
            field("Level", n.alert.severity.as_str().to_ascii_uppercase()),
            field("Value", n.value()),
            field("Threshold", n.threshold()),
            field("Subject", n.alert.subject.clone()),
        ] }),
    ];
    let url = link(n);
    if !url.is_empty() {
        blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": format!("<{url}|Open in the dashboard>") }] }));
    }
    json!({
        "text": n.title(),
        "attachments": [{ "color": color(n), "fallback": format!("{}: {}", n.title(), n.alert.summary), "blocks": blocks }],
    })
}

/// An email's subject and plain-text body.
pub fn email(n: &Notification) -> (String, String) {
    let subject = format!("[dbagent] {}", n.title());
    let mut body = format!(
        "{}\n\nLevel:     {}\nValue:     {}\nThreshold: {}\nSubject:   {}\nRule:      {}\nSince:     {}\n",
        n.alert.summary,
        n.alert.severity.as_str().to_ascii_uppercase(),
        n.value(),
        n.threshold(),
        n.alert.subject,
        n.alert.rule,
        n.alert.fired_at.unwrap_or(n.alert.started_at).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    if let Some(at) = n.alert.resolved_at.filter(|_| n.notice == Notice::Resolved) {
        body.push_str(&format!("Resolved:  {}\n", at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)));
    }
    let url = link(n);
    if !url.is_empty() {
        body.push_str(&format!("\n{url}\n"));
    }
    body.push_str(&format!("\nAlert id {} (dbagent alerts ack {})\n", n.alert.id, n.alert.id));
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::rules;

    fn notification(notice: Notice) -> Notification {
        let rule = rules::all(&crate::config::Alerts::default(), &crate::config::Backup::default()).into_iter().find(|r| r.name == "pool_saturation").unwrap();
        let now = Utc::now();
        let alert = Alert::new(&rule, "primary", 100.0, Level::Critical, now);
        Notification { notice, alert, link: Some("http://dash.example/".into()) }
    }

    #[test]
    fn the_webhook_is_alertmanagers_version_4() {
        let body = serde_json::to_value(webhook(&notification(Notice::Firing), "ops")).unwrap();
        assert_eq!(body["version"], "4");
        assert_eq!(body["status"], "firing");
        assert_eq!(body["receiver"], "ops");
        let alert = &body["alerts"][0];
        assert_eq!(alert["labels"]["alertname"], "pool_saturation");
        assert_eq!(alert["labels"]["severity"], "critical");
        assert_eq!(alert["annotations"]["value"], "100%");
        assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
        assert!(alert["generatorURL"].as_str().unwrap().starts_with("http://dash.example/alerts/"));
    }

    #[test]
    fn slack_and_email_say_level_value_and_threshold() {
        let n = notification(Notice::Firing);
        let slack = slack(&n).to_string();
        for part in ["[FIRING:CRITICAL] pool_saturation on primary", "*Level*\\nCRITICAL", "*Value*\\n100%", "*Threshold*\\n100%", "#e01e5a", "Open in the dashboard"] {
            assert!(slack.contains(part), "{part} in {slack}");
        }
        let (subject, body) = email(&n);
        assert_eq!(subject, "[dbagent] [FIRING:CRITICAL] pool_saturation on primary");
        assert!(body.contains("Threshold: 100%") && body.contains("Level:     CRITICAL"), "{body}");
    }
}
