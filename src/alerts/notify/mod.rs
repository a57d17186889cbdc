//! Delivering notifications: a queue the engine drops notifications into (never waiting), a
//! task that hands each to the channels it concerns, and one delivery task per channel and
//! notification that retries with doubling backoff. Each channel counts what it sent, what
//! failed and its last error (`/health`, `/metrics`); each outcome also goes into the alert's
//! history (the engine writes it at its next evaluation).

mod payload;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};

pub use payload::{Notification, Webhook, email, slack, webhook};

use super::lifecycle::{Event, EventKind, Notice};
use crate::config::{self, ChannelKind};

/// Notifications waiting for the dispatcher; past this, new ones are dropped (and counted)
/// rather than holding up an evaluation.
const QUEUE: usize = 1024;
/// Deliveries in flight at once, over all channels.
const IN_FLIGHT: usize = 16;

/// A channel, ready to send.
pub struct Channel {
    pub settings: config::Channel,
    pub stats: ChannelStats,
}

/// What a channel did.
#[derive(Debug, Default)]
pub struct ChannelStats {
    sent: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    last: Mutex<Last>,
}

#[derive(Debug, Clone, Default)]
struct Last {
    success_at: Option<DateTime<Utc>>,
    failure_at: Option<DateTime<Utc>>,
    error: Option<String>,
    /// The last attempt failed.
    failing: bool,
}

/// A channel's counters, for `/health` and `GET /alerts/channels`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ChannelReport {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ChannelKind,
    pub sent: u64,
    pub failed: u64,
    pub retries: u64,
    /// The last attempt failed (it may be retrying now).
    pub failing: bool,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl Channel {
    pub fn report(&self) -> ChannelReport {
        let last = self.stats.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        ChannelReport {
            name: self.settings.name.clone(),
            kind: self.settings.kind,
            sent: self.stats.sent.load(Ordering::Relaxed),
            failed: self.stats.failed.load(Ordering::Relaxed),
            retries: self.stats.retried.load(Ordering::Relaxed),
            failing: last.failing,
            last_success_at: last.success_at,
            last_failure_at: last.failure_at,
            last_error: last.error,
        }
    }

    /// `(outcome, count)` for `dbagent_alert_notifications_total`.
    pub fn counts(&self) -> [(&'static str, u64); 3] {
        [
            ("sent", self.stats.sent.load(Ordering::Relaxed)),
            ("failed", self.stats.failed.load(Ordering::Relaxed)),
            ("retried", self.stats.retried.load(Ordering::Relaxed)),
        ]
    }

    /// Whether `n` goes to this channel: its level, its rules, and resolved ones if wanted.
    fn wants(&self, n: &Notification) -> bool {
        let s = &self.settings;
        n.alert.severity >= s.min_level
            && (s.rules.is_empty() || s.rules.contains(&n.alert.rule))
            && (n.notice != Notice::Resolved || s.send_resolved)
    }

    fn attempt_failed(&self, error: &str) {
        let mut last = self.stats.last.lock().unwrap_or_else(|p| p.into_inner());
        last.failure_at = Some(Utc::now());
        last.error = Some(error.to_owned());
        last.failing = true;
    }

    fn attempt_succeeded(&self) {
        self.stats.sent.fetch_add(1, Ordering::Relaxed);
        let mut last = self.stats.last.lock().unwrap_or_else(|p| p.into_inner());
        last.success_at = Some(Utc::now());
        last.failing = false;
    }
}

/// How channels reach their receivers.
pub struct Senders {
    http: reqwest::Client,
    smtp: config::Smtp,
    email_to: Vec<String>,
    delivery: config::Delivery,
}

impl Senders {
    pub fn new(settings: &config::Alerts) -> Senders {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(settings.delivery.timeout))
            .user_agent(concat!("dbagent/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Senders { http, smtp: settings.smtp.clone(), email_to: settings.email_to.clone(), delivery: settings.delivery.clone() }
    }

    /// One attempt to deliver `n` on `channel`.
    pub async fn send(&self, channel: &config::Channel, n: &Notification) -> Result<(), String> {
        match channel.kind {
            ChannelKind::Webhook => self.post(channel, &webhook(n, &channel.name)).await,
            ChannelKind::Slack => self.post(channel, &slack(n)).await,
            ChannelKind::Email => self.mail(channel, n).await,
        }
    }

    async fn post(&self, channel: &config::Channel, body: &impl Serialize) -> Result<(), String> {
        let url = channel.url.as_ref().ok_or("no url")?.expose();
        let response = self.http.post(url).json(body).send().await.map_err(describe_http)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(format!("the receiver answered {status}"))
    }

    async fn mail(&self, channel: &config::Channel, n: &Notification) -> Result<(), String> {
        use lettre::message::header::ContentType;
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
        let smtp = &self.smtp;
        let server = smtp.server.as_deref().ok_or("no alerts.smtp.server")?;
        let from = smtp.from.clone().or_else(|| smtp.username.clone().filter(|u| u.contains('@'))).unwrap_or_else(|| format!("dbagent@{server}"));
        let (subject, body) = email(n);
        let mut message = Message::builder().from(from.parse().map_err(|e| format!("sender {from:?}: {e}"))?).subject(subject).header(ContentType::TEXT_PLAIN);
        let to = if channel.to.is_empty() { &self.email_to } else { &channel.to };
        for address in to {
            message = message.to(address.parse().map_err(|e| format!("recipient {address:?}: {e}"))?);
        }
        let message = message.body(body).map_err(|e| e.to_string())?;
        let builder = match smtp.security {
            config::SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(server).map_err(|e| e.to_string())?,
            config::SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(server).map_err(|e| e.to_string())?,
            config::SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server),
        };
        let mut builder = builder.port(smtp.port).timeout(Some(Duration::from_secs_f64(smtp.timeout)));
        if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        builder.build().send(message).await.map_err(|e| crate::db::error_chain(&e))?;
        Ok(())
    }
}

/// An HTTP failure without the URL (a Slack URL is a secret).
fn describe_http(err: reqwest::Error) -> String {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect to the receiver"
    } else {
        "the request failed"
    };
    format!("{what}: {}", crate::db::error_chain(&err.without_url()))
}

/// The channels and the queue to them.
pub struct Notifier {
    pub channels: Vec<Arc<Channel>>,
    senders: Arc<Senders>,
    queue: mpsc::Sender<Notification>,
    /// Delivery outcomes for the alerts' histories, taken by the engine.
    outcomes: Arc<Mutex<Vec<(String, Event)>>>,
    dropped: AtomicU64,
}

impl Notifier {
    /// The channels of `settings`, and the dispatcher task (it ends when the notifier is
    /// dropped; deliveries in flight finish on their own).
    pub fn start(settings: &config::Alerts) -> Arc<Notifier> {
        let channels: Vec<Arc<Channel>> =
            settings.all_channels().into_iter().map(|settings| Arc::new(Channel { settings, stats: ChannelStats::default() })).collect();
        let (queue, rx) = mpsc::channel(QUEUE);
        let notifier = Arc::new(Notifier {
            channels,
            senders: Arc::new(Senders::new(settings)),
            queue,
            outcomes: Arc::default(),
            dropped: AtomicU64::new(0),
        });
        if !notifier.channels.is_empty() {
            tokio::spawn(dispatch(notifier.channels.clone(), notifier.senders.clone(), notifier.outcomes.clone(), rx));
        }
        notifier
    }

    /// Queues `n` for its channels without waiting; a full queue drops it (counted, logged).
    pub fn enqueue(&self, n: Notification) {
        if self.channels.is_empty() {
            return;
        }
        if self.queue.try_send(n).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!("the alert notification queue is full; a notification was dropped");
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// The delivery outcomes since the last call, by alert id.
    pub fn take_outcomes(&self) -> Vec<(String, Event)> {
        std::mem::take(&mut *self.outcomes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn channel(&self, name: &str) -> Option<&Arc<Channel>> {
        self.channels.iter().find(|c| c.settings.name == name)
    }

    /// Sends `n` on `channel` now, with the configured retries; for `alerts test`.
    pub async fn send_now(&self, channel: &Channel, n: &Notification) -> Result<u32, String> {
        deliver(channel, &self.senders, n).await
    }
}

async fn dispatch(channels: Vec<Arc<Channel>>, senders: Arc<Senders>, outcomes: Arc<Mutex<Vec<(String, Event)>>>, mut rx: mpsc::Receiver<Notification>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(n) = rx.recv().await {
        let n = Arc::new(n);
        for channel in channels.iter().filter(|c| c.wants(&n)) {
            let (channel, senders, outcomes, n) = (channel.clone(), senders.clone(), outcomes.clone(), n.clone());
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            tokio::spawn(async move {
                let result = deliver(&channel, &senders, &n).await;
                drop(permit);
                let name = &channel.settings.name;
                let event = match result {
                    Ok(attempts) => Event { at: Utc::now(), kind: EventKind::Delivered, message: format!("{} sent to {name} (attempt {attempts})", n.notice.as_str()) },
                    Err(error) => Event { at: Utc::now(), kind: EventKind::DeliveryFailed, message: format!("{} to {name} failed: {error}", n.notice.as_str()) },
                };
                outcomes.lock().unwrap_or_else(|p| p.into_inner()).push((n.alert.id.clone(), event));
            });
        }
    }
}

/// Tries `1 + retries` times, waiting `backoff` doubled each time (at most `max_backoff`).
/// Returns the attempt that succeeded, or the last error.
async fn deliver(channel: &Channel, senders: &Senders, n: &Notification) -> Result<u32, String> {
    let policy = &senders.delivery;
    let mut wait = Duration::from_secs_f64(policy.backoff);
    let max = Duration::from_secs_f64(policy.max_backoff);
    let mut attempt = 1;
    loop {
        match senders.send(&channel.settings, n).await {
            Ok(()) => {
                channel.attempt_succeeded();
                return Ok(attempt);
            }
            Err(error) => {
                channel.attempt_failed(&error);
                if attempt > policy.retries {
                    channel.stats.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(channel = %channel.settings.name, alert = %n.alert.id, %error, attempts = attempt, "an alert notification could not be delivered");
                    return Err(format!("{error} (after {attempt} attempts)"));
                }
                channel.stats.retried.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(channel = %channel.settings.name, %error, attempt, "alert notification failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(max);
                attempt += 1;
            }
        }
    }
}
