//! The sampler loop: one sample every `monitoring.sample_interval` on a session of its own,
//! rollups when a minute or an hour is complete, and pruning by the leader.
//!
//! Leadership is a session-level advisory lock ([`store::LOCK_KEY`]) tried with
//! `pg_try_advisory_lock` before each pruning (every 5 minutes) and released right after, as
//! the backup schedule does: one agent prunes, the others skip at once; a lost session
//! releases it too.

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use tokio_postgres::Client;

use super::sample::{Reading, compute};
use super::{Sources, store};
use crate::config::Monitoring;
use crate::db::{self, Purpose};
use crate::monitor::Error;

const PRUNE_EVERY: Duration = Duration::from_secs(300);

/// Starts the sampler for agent `agent_id`; it stops when `shutdown` completes.
pub fn spawn(
    sources: Sources,
    settings: Monitoring,
    agent_id: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::pin!(shutdown);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(settings.sample_interval));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut state = State { client: None, previous: None, rolled_minute: None, rolled_hour: None, pruned: None };
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => {}
            }
            if let Err(err) = state.step(&sources, &settings, &agent_id).await {
                state.client = None;
                tracing::warn!(error = %db::error_chain(&err), "the metric history sampler failed; retrying next tick");
            }
        }
    })
}

struct State {
    client: Option<Client>,
    previous: Option<Reading>,
    rolled_minute: Option<DateTime<Utc>>,
    rolled_hour: Option<DateTime<Utc>>,
    pruned: Option<tokio::time::Instant>,
}

impl State {
    async fn step(&mut self, sources: &Sources, settings: &Monitoring, agent: &str) -> Result<(), Error> {
        let (reading, gauges) = sources.read();
        let Some(previous) = self.previous.replace(reading.clone()) else {
            // The first reading only sets the base for the rates.
            return Ok(());
        };
        if self.client.is_none() {
            let client = db::admin::connect(&sources.pools.admin_config(), Purpose::Monitor).await.map_err(Error::driver)?;
            client.batch_execute("SET statement_timeout = '10s'; SET lock_timeout = '2s'").await.map_err(Error::driver)?;
            store::create(&client).await?;
            self.client = Some(client);
        }
        // Put back only when every statement worked: a failure reconnects next tick.
        let Some(client) = self.client.take() else { return Ok(()) };
        let now = Utc::now();
        store::insert(&client, agent, now, &compute(&previous, &reading, &gauges)).await?;
        self.roll(&client, agent, now).await?;
        if self.pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            self.pruned = Some(tokio::time::Instant::now());
            prune_if_leader(&client, settings.retention_hours).await?;
        }
        self.client = Some(client);
        Ok(())
    }

    /// Rolls up the minute (and hour) that just ended, and the current ones so far, so a
    /// chart of the last minutes is never empty at its right edge.
    async fn roll(&mut self, client: &Client, agent: &str, now: DateTime<Utc>) -> Result<(), Error> {
        let minute = now.duration_trunc(TimeDelta::minutes(1)).unwrap_or(now);
        let hour = now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now);
        if self.rolled_minute.is_some_and(|m| m < minute) {
            store::rollup(client, agent, 0, 60, minute - TimeDelta::minutes(1)).await?;
        }
        store::rollup(client, agent, 0, 60, minute).await?;
        if self.rolled_hour.is_some_and(|h| h < hour) {
            store::rollup(client, agent, 60, 3600, hour - TimeDelta::hours(1)).await?;
        }
        if self.rolled_minute != Some(minute) {
            // Once a minute: the hour so far.
            store::rollup(client, agent, 60, 3600, hour).await?;
        }
        self.rolled_minute = Some(minute);
        self.rolled_hour = Some(hour);
        Ok(())
    }
}

async fn prune_if_leader(client: &Client, retention_hours: u32) -> Result<(), Error> {
    let row = client.query_one("SELECT pg_try_advisory_lock($1) AS taken", &[&store::LOCK_KEY]).await.map_err(Error::driver)?;
    let taken: bool = db::get(&row, "taken")?;
    if !taken {
        return Ok(());
    }
    let pruned = store::prune(client, retention_hours).await;
    // Released on every path; closing the session would release it too.
    let released = client.execute("SELECT pg_advisory_unlock($1)", &[&store::LOCK_KEY]).await;
    let deleted = pruned?;
    released.map_err(Error::driver)?;
    if deleted > 0 {
        tracing::debug!(deleted, "pruned the metric history");
    }
    Ok(())
}
