//! The evaluation loop: every `alerts.evaluation_interval`, on the one agent that leads.
//!
//! Leadership is a session-level advisory lock ([`LOCK_KEY`]) on a session of the engine's
//! own, taken with `pg_try_advisory_lock` as the backup schedule takes its own, but kept:
//! evaluation is continuous (pending timers, what was notified), so the leader holds the lock
//! for as long as its session lives, and the other agents try again at each tick, taking over
//! within one interval of the leader's session ending. A new leader loads the active alerts
//! from `dbagent.alerts` first, so it neither fires them again nor notifies twice. The lock is
//! released explicitly at shutdown; a lost session releases it too.
//!
//! Each tick costs this agent's own counters, one query of the database's gauges, one of
//! acknowledgements and silences, and writes only for alerts that are active. When the
//! database cannot be reached, an agent that led (or has never seen another lead) goes on
//! evaluating what it knows without it — the `database_down` rule first — keeping alerts in
//! memory and writing them once the database is back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::lifecycle::{Alert, Context, Event, State};
use super::notify::Notification;
use super::reading::{self, Counters, Reading, Slow, Sources};
use super::rules::{Rule, Source};
use super::store::{self, Silence};
use super::{Alerts, Error, Observation, RuleStatus, Status};
use crate::db::{self, Purpose};

/// The alerts' advisory lock key ("dbagenta").
pub const LOCK_KEY: i64 = 0x6462_6167_656e_7461;

/// The slow checks (backup files, migration drift) run this often.
const SLOW_EVERY: Duration = Duration::from_secs(300);
/// Retention runs this often.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// An active alert and what of it is not written yet.
struct Tracked {
    alert: Alert,
    unsaved: Vec<Event>,
    dirty: bool,
}

/// The loop's state between ticks.
struct Run {
    client: Option<Client>,
    /// The lock is held on `client`.
    holding: bool,
    /// Another agent held the lock at our last try (then only it evaluates).
    other_leads: bool,
    /// The database could not be reached at the last try (logged once).
    unreachable: bool,
    active: BTreeMap<(String, String), Tracked>,
    /// Delivery outcomes of alerts no longer active, to append to their histories.
    orphans: Vec<(String, Event)>,
    counters: Option<Counters>,
    slow: Slow,
    pruned: Option<Instant>,
    started: DateTime<Utc>,
}

/// Starts the engine; it stops (releasing the lock) when `shutdown` completes.
pub fn spawn(alerts: Arc<Alerts>, sources: Sources, shutdown: impl Future<Output = ()> + Send + 'static) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(alerts.settings.evaluation_interval));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut run = Run {
            client: None,
            holding: false,
            other_leads: false,
            unreachable: false,
            active: BTreeMap::new(),
            orphans: Vec::new(),
            counters: None,
            slow: Slow::default(),
            pruned: None,
            started: Utc::now(),
        };
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tick.tick() => {}
            }
            run.tick(&alerts, &sources).await;
        }
        run.release().await;
    })
}

impl Run {
    async fn tick(&mut self, alerts: &Alerts, sources: &Sources) {
        let t0 = Instant::now();
        let mut reading = Reading::default();
        let mut counters = sources.local(&mut reading, &self.slow, self.started);
        let (acks, silences) = match self.database(alerts, sources, &mut reading, &mut counters).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                // Another agent leads: nothing of ours to keep.
                self.active.clear();
                self.counters = None;
                alerts.set_status(Status { leader: false, ..Status::default() });
                return;
            }
            Err(err) => {
                self.lost(&err);
                if self.other_leads {
                    return;
                }
                (BTreeMap::new(), Vec::new())
            }
        };
        if let Some(previous) = &self.counters {
            previous.rates(&counters, &mut reading);
        }
        self.counters = Some(counters);
        for tracked in self.active.values_mut() {
            if let Some(at) = acks.get(&tracked.alert.id) {
                tracked.alert.acked_at.get_or_insert(*at);
            }
        }
        let now = Utc::now();
        let observed = self.evaluate(alerts, &reading, &silences, now);
        self.take_outcomes(alerts);
        if let Err(err) = self.save().await {
            self.lost(&err);
        }
        self.active.retain(|_, t| t.alert.is_active() || t.dirty);
        let firing = self.active.values().filter(|t| t.alert.state == State::Firing).map(|t| (t.alert.rule.clone(), t.alert.severity)).collect();
        alerts.set_status(Status {
            leader: true,
            evaluated_at: Some(now),
            evaluation_ms: (t0.elapsed().as_secs_f64() * 1e5).round() / 100.0,
            rules: observed,
            firing,
            database_error: None,
        });
    }

    /// The database's part of a tick: the session and the lock, the database's gauges,
    /// acknowledgements, silences, the history (with custom rules), the slow checks and
    /// retention. `None` when another agent leads.
    async fn database(
        &mut self,
        alerts: &Alerts,
        sources: &Sources,
        reading: &mut Reading,
        counters: &mut Counters,
    ) -> Result<Option<(BTreeMap<String, DateTime<Utc>>, Vec<Silence>)>, Error> {
        let db = sources.pools.admin_config();
        if self.client.is_none() {
            let client = db::admin::connect(&db, Purpose::Alerts).await.map_err(Error::driver)?;
            store::ensure(&client).await?;
            self.client = Some(client);
        }
        let Some(client) = self.client.as_ref() else { return Ok(None) };
        if !self.holding {
            let row = client.query_one("SELECT pg_try_advisory_lock($1) AS taken", &[&LOCK_KEY]).await.map_err(Error::driver)?;
            let taken: bool = db::get(&row, "taken")?;
            self.other_leads = !taken;
            if !taken {
                return Ok(None);
            }
            self.holding = true;
            // A new leader carries on with the active alerts in the table (ours, not yet
            // written, win: they are newer).
            for mut alert in store::active(client).await? {
                let key = (alert.rule.clone(), alert.subject.clone());
                match self.active.get(&key) {
                    None => {
                        self.active.insert(key, Tracked { alert, unsaved: Vec::new(), dirty: false });
                    }
                    // Ours was opened while the database was out of reach: the table's one
                    // makes way, or ours could never be written (one active per rule and subject).
                    Some(ours) if ours.alert.id != alert.id => {
                        let before = alert.history.len();
                        alert.retire(Utc::now(), &format!("superseded by alert {}", ours.alert.id));
                        store::save(client, &alert, &alert.history[before..]).await?;
                    }
                    Some(_) => {}
                }
            }
            tracing::info!("this agent now evaluates the alert rules");
        }
        reading::database(client, reading, counters).await?;
        if std::mem::take(&mut self.unreachable) {
            tracing::info!("alert evaluation reaches the database again");
        }
        let found = store::acks_and_silences(client).await?;
        if alerts.rules.iter().any(|r| r.enabled && r.source == Source::History) {
            let window = 3.0 * alerts.sample_interval.max(alerts.settings.evaluation_interval);
            reading::history(client, window, reading).await?;
        }
        if self.slow.at.is_none_or(|at| at.elapsed() >= SLOW_EVERY) {
            self.slow = sources.slow(&db).await;
        }
        if self.pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            let deleted = store::prune(client, alerts.settings.retention_days).await?;
            self.pruned = Some(Instant::now());
            if deleted > 0 {
                tracing::info!(deleted, "pruned old alerts and silences");
            }
        }
        Ok(Some(found))
    }

    /// The session is gone (and with it the lock).
    fn lost(&mut self, err: &Error) {
        // Once per outage, not at every tick.
        if !self.unreachable {
            self.unreachable = true;
            tracing::warn!(error = %db::error_chain(err), "alert evaluation cannot reach the database; evaluating what this agent knows");
        }
        self.client = None;
        self.holding = false;
    }

    /// Applies the reading to every enabled rule; queues what is due. Returns each rule's
    /// observations.
    fn evaluate(&mut self, alerts: &Alerts, reading: &Reading, silences: &[Silence], now: DateTime<Utc>) -> Vec<RuleStatus> {
        let hysteresis = alerts.settings.hysteresis_pct / 100.0;
        let mut statuses = Vec::with_capacity(alerts.rules.len());
        for rule in &alerts.rules {
            let mut observations = Vec::new();
            if rule.enabled {
                for (subject, value) in observed(rule, reading) {
                    let ctx = Context { now, repeat_seconds: alerts.settings.repeat_interval, silenced: silences.iter().any(|s| s.matches(&rule.name, &subject)) };
                    let observation = self.observe(alerts, rule, &subject, value, hysteresis, ctx);
                    observations.push(observation);
                }
            }
            statuses.push(RuleStatus { rule: rule.clone(), observations });
        }
        // Alerts of rules disabled or removed since (a restart with a new configuration)
        // would otherwise stay active for ever.
        for tracked in self.active.values_mut().filter(|t| t.alert.is_active()) {
            if !alerts.rules.iter().any(|r| r.enabled && r.name == tracked.alert.rule) {
                let before = tracked.alert.history.len();
                tracked.alert.retire(now, "its rule is disabled or no longer configured");
                tracked.unsaved.extend_from_slice(&tracked.alert.history[before..]);
                tracked.dirty = true;
            }
        }
        statuses
    }

    fn observe(&mut self, alerts: &Alerts, rule: &Rule, subject: &str, value: f64, hysteresis: f64, ctx: Context) -> Observation {
        let key = (rule.name.clone(), subject.to_owned());
        let current = self.active.get(&key).filter(|t| t.alert.is_active()).map(|t| t.alert.severity);
        let level = rule.level(value, current, hysteresis);
        if current.is_none() {
            let Some(level) = level else { return Observation { subject: subject.to_owned(), value, level: None, state: None, alert_id: None } };
            // A new alert (a resolved one of the same key leaves first).
            let alert = Alert::new(rule, subject, value, level, ctx.now);
            let unsaved = alert.history.clone();
            self.active.insert(key.clone(), Tracked { alert, unsaved, dirty: true });
        }
        let Some(tracked) = self.active.get_mut(&key) else { return Observation { subject: subject.to_owned(), value, level, state: None, alert_id: None } };
        let before = tracked.alert.history.len();
        let notice = tracked.alert.observe(rule, value, level, ctx);
        tracked.unsaved.extend_from_slice(&tracked.alert.history[before..]);
        tracked.dirty = true;
        if let Some(notice) = notice {
            alerts.notifier.enqueue(Notification { notice, alert: tracked.alert.clone(), link: alerts.settings.dashboard_url.clone() });
        }
        Observation { subject: subject.to_owned(), value, level, state: Some(tracked.alert.state), alert_id: Some(tracked.alert.id.clone()) }
    }

    /// Delivery outcomes join their alerts' histories (written with them, or on their own
    /// for alerts no longer active).
    fn take_outcomes(&mut self, alerts: &Alerts) {
        for (id, event) in alerts.notifier.take_outcomes() {
            match self.active.values_mut().find(|t| t.alert.id == id) {
                Some(tracked) => {
                    tracked.alert.history.push(event.clone());
                    tracked.unsaved.push(event);
                    tracked.dirty = true;
                }
                None => self.orphans.push((id, event)),
            }
        }
    }

    /// Writes what changed; on a failure the rest waits for the next tick.
    async fn save(&mut self) -> Result<(), Error> {
        let Some(client) = &self.client else { return Ok(()) };
        for tracked in self.active.values_mut().filter(|t| t.dirty) {
            store::save(client, &tracked.alert, &tracked.unsaved).await?;
            tracked.unsaved.clear();
            tracked.dirty = false;
        }
        while let Some((id, event)) = self.orphans.pop() {
            if let Err(err) = store::append(client, &id, std::slice::from_ref(&event)).await {
                self.orphans.push((id, event));
                return Err(err);
            }
        }
        Ok(())
    }

    async fn release(self) {
        if let (Some(client), true) = (&self.client, self.holding)
            && let Err(err) = client.execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await
        {
            tracing::warn!(error = %err, "could not release the alerts lock; closing its session instead");
        }
    }
}

/// `rule`'s values in `reading`, by subject.
fn observed(rule: &Rule, reading: &Reading) -> Vec<(String, f64)> {
    match rule.source {
        Source::Live => reading.live.get(rule.metric.as_str()).cloned().unwrap_or_default(),
        Source::History => reading.history.get(&rule.metric).map(|v| vec![("all".to_string(), *v)]).unwrap_or_default(),
    }
}

/// One evaluation without a lifecycle, for `dbagent alerts rules` outside a serving agent:
/// each rule's values now and the level they are at, with the state of its active alert.
/// Rates (error rate, response time, slow queries, deadlocks, cache hit ratio) need two
/// evaluations and are not in it.
pub async fn evaluate_once(alerts: &Alerts, sources: &Sources) -> Result<Vec<RuleStatus>, Error> {
    let mut reading = Reading::default();
    let slow = sources.slow(&sources.pools.admin_config()).await;
    let mut counters = sources.local(&mut reading, &slow, Utc::now());
    let client = db::admin::connect(&sources.pools.admin_config(), Purpose::Alerts).await.map_err(Error::driver)?;
    store::ensure(&client).await?;
    reading::database(&client, &mut reading, &mut counters).await?;
    if alerts.rules.iter().any(|r| r.enabled && r.source == Source::History) {
        reading::history(&client, 3.0 * alerts.sample_interval.max(alerts.settings.evaluation_interval), &mut reading).await?;
    }
    let active = store::active(&client).await?;
    let hysteresis = alerts.settings.hysteresis_pct / 100.0;
    let statuses = alerts
        .rules
        .iter()
        .map(|rule| {
            let observations = if rule.enabled { observed(rule, &reading) } else { Vec::new() }
                .into_iter()
                .map(|(subject, value)| {
                    let alert = active.iter().find(|a| a.rule == rule.name && a.subject == subject);
                    Observation {
                        level: rule.level(value, alert.map(|a| a.severity), hysteresis),
                        state: alert.map(|a| a.state),
                        alert_id: alert.map(|a| a.id.clone()),
                        subject,
                        value,
                    }
                })
                .collect();
            RuleStatus { rule: rule.clone(), observations }
        })
        .collect();
    Ok(statuses)
}
