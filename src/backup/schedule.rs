//! The cron schedule: when the next backup is due, and running it so that exactly one of
//! several agents on one database does.
//!
//! Leadership is a session-level advisory lock ([`LOCK_KEY`]) taken with
//! `pg_try_advisory_lock` on a connection of its own: the agent that gets it runs the backup
//! and retention, the others skip at once (never queue). Once holding the lock, the leader
//! checks whether a backup for this cron tick already exists (in the location or the catalog
//! mirror), so an agent whose clock lags cannot take the tick's backup a second time after the
//! first leader released the lock. The lock is released explicitly on every path; closing its
//! connection (a panic, a cancelled task) releases it too.

use std::future::Future;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use croner::Cron;
use serde::Serialize;
use tokio_postgres::Client;
use crate::db::PgConfig;

use super::create::{CreateRequest, create_for};
use super::database::connect;
use super::manifest::Manifest;
use super::retention::{Decision, prune};
use super::{Error, Settings, catalog};

/// The advisory lock key of scheduled backups ("dbagentb"). Per database, like every advisory
/// lock, so agents of different databases never wait on each other.
pub const LOCK_KEY: i64 = 0x6462_6167_656e_7462;

/// When `cron` next fires strictly after `after`.
pub fn next_run(cron: &str, after: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
    parse(cron)?
        .find_next_occurrence(&after, false)
        .map_err(|source| Error::InvalidSchedule { schedule: cron.to_owned(), source })
}

/// The tick a run at `now` belongs to: the latest firing at or before `now`.
fn current_tick(cron: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
    parse(cron)?
        .find_previous_occurrence(&now, true)
        .map_err(|source| Error::InvalidSchedule { schedule: cron.to_owned(), source })
}

fn parse(cron: &str) -> Result<Cron, Error> {
    Cron::from_str(cron).map_err(|source| Error::InvalidSchedule { schedule: cron.to_owned(), source })
}

/// What one scheduled run did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ScheduledRun {
    /// This agent was the leader: it took the backup, then applied retention.
    Ran { backup: Box<Manifest>, pruned: Vec<Decision> },
    /// Another agent holds the lock (it is running this tick's backup).
    Skipped,
    /// The tick's backup exists already.
    AlreadyTaken { id: String },
}

/// Counters of the schedule, for `/health`.
#[derive(Debug, Default)]
pub struct ScheduleStats {
    runs: AtomicU64,
    succeeded: AtomicU64,
    skipped: AtomicU64,
    failed: AtomicU64,
    last: Mutex<Last>,
}

#[derive(Debug, Clone, Default)]
struct Last {
    success_at: Option<DateTime<Utc>>,
    backup_id: Option<String>,
    duration_ms: Option<u64>,
    stored_bytes: Option<u64>,
    failure_at: Option<DateTime<Utc>>,
    error: Option<String>,
}

/// A copy of [`ScheduleStats`] at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct ScheduleStatsSnapshot {
    pub runs: u64,
    pub succeeded: u64,
    pub skipped: u64,
    pub failed: u64,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_backup_id: Option<String>,
    /// How long the last successful backup took, and its size as stored.
    pub last_duration_ms: Option<u64>,
    pub last_stored_bytes: Option<u64>,
    pub last_failure_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

impl ScheduleStats {
    pub fn snapshot(&self) -> ScheduleStatsSnapshot {
        let last = self.last.lock().unwrap_or_else(|p| p.into_inner()).clone();
        ScheduleStatsSnapshot {
            runs: self.runs.load(Ordering::Relaxed),
            succeeded: self.succeeded.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            last_success_at: last.success_at,
            last_backup_id: last.backup_id,
            last_duration_ms: last.duration_ms,
            last_stored_bytes: last.stored_bytes,
            last_failure_at: last.failure_at,
            last_error: last.error,
        }
    }

    fn record(&self, outcome: &Result<ScheduledRun, Error>) {
        self.runs.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match outcome {
            Ok(ScheduledRun::Ran { backup, .. }) => {
                self.succeeded.fetch_add(1, Ordering::Relaxed);
                last.success_at = Some(Utc::now());
                last.backup_id = Some(backup.id.clone());
                last.duration_ms = Some(backup.duration_ms);
                last.stored_bytes = Some(backup.stored_bytes);
            }
            Ok(ScheduledRun::Skipped | ScheduledRun::AlreadyTaken { .. }) => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Err(err) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                last.failure_at = Some(Utc::now());
                last.error = Some(error_chain(err));
            }
        }
    }
}

/// Runs the backup of the current cron tick if this agent wins the lock and nobody took it
/// yet, then retention. Counted in `stats`; a failure is also logged here (the loop that
/// calls this only goes on).
pub async fn run_scheduled(db: &PgConfig, settings: &Settings, stats: &ScheduleStats) -> Result<ScheduledRun, Error> {
    let outcome = lead(db, settings).await;
    stats.record(&outcome);
    match &outcome {
        Ok(ScheduledRun::Ran { backup, pruned }) => {
            let deleted = pruned.iter().filter(|d| !d.keep).count();
            tracing::info!(backup_id = %backup.id, pruned = deleted, "scheduled backup done");
        }
        Ok(ScheduledRun::Skipped) => tracing::info!("scheduled backup skipped: another agent holds the lock"),
        Ok(ScheduledRun::AlreadyTaken { id }) => tracing::info!(backup_id = %id, "scheduled backup already taken"),
        Err(err) => tracing::error!(error = %error_chain(err), "scheduled backup failed"),
    }
    outcome
}

async fn lead(db: &PgConfig, settings: &Settings) -> Result<ScheduledRun, Error> {
    let cron = settings
        .schedule
        .as_deref()
        .ok_or_else(|| Error::invalid("no backup schedule is configured"))?;
    let tick = current_tick(cron, Utc::now())?;
    let Some(lock) = ScheduleLock::try_acquire(db).await? else {
        return Ok(ScheduledRun::Skipped);
    };
    let outcome = run_tick(db, settings, &lock.client, tick).await;
    lock.release().await;
    outcome
}

async fn run_tick(db: &PgConfig, settings: &Settings, lock: &Client, tick: DateTime<Utc>) -> Result<ScheduledRun, Error> {
    if let Some(existing) = catalog::list(settings)?.into_iter().find(|m| m.scheduled_for == Some(tick)) {
        return Ok(ScheduledRun::AlreadyTaken { id: existing.id });
    }
    let tick_text = tick.to_rfc3339();
    if catalog::has_scheduled(lock, &tick_text).await? {
        return Ok(ScheduledRun::AlreadyTaken { id: format!("(catalogued for {tick_text})") });
    }
    let req = CreateRequest { name: Some(format!("scheduled {tick_text}")), ..CreateRequest::default() };
    let backup = create_for(db, settings, &req, Some(tick), &|_| {}).await?;
    if settings.pitr.is_some() {
        // Point-in-time recovery starts from a base backup: a fresh one each run keeps the WAL
        // to replay short, and lets retention drop the WAL older than the oldest kept one.
        let base = CreateRequest { name: Some(format!("scheduled base {tick_text}")), kind: super::BackupKind::Base, ..CreateRequest::default() };
        create_for(db, settings, &base, Some(tick), &|_| {}).await?;
    }
    let pruned = prune(db, settings, false).await?;
    if let Err(err) = super::replaced::sweep_replaced(db).await {
        tracing::warn!(error = %error_chain(&err), "could not drop the expired replaced databases");
    }
    Ok(ScheduledRun::Ran { backup: Box::new(backup), pruned })
}

/// Sleeps until each cron tick and runs it, until `shutdown` completes. Failures are counted
/// and logged, never fatal; only an invalid schedule ends the loop with an error. `db` gives
/// the current primary's settings at each tick (a failover or switchover may have moved it).
pub async fn run_schedule(
    db: &(dyn Fn() -> PgConfig + Send + Sync),
    settings: &Settings,
    stats: &ScheduleStats,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let Some(cron) = settings.schedule.as_deref() else {
        return Ok(());
    };
    tokio::pin!(shutdown);
    loop {
        let now = Utc::now();
        let next = next_run(cron, now)?;
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
        // Counted and logged inside; the loop goes on whatever happened.
        let _ = run_scheduled(&db(), settings, stats).await;
    }
}

/// The schedule's advisory lock, on a session of its own.
struct ScheduleLock {
    client: Client,
}

impl ScheduleLock {
    async fn try_acquire(db: &PgConfig) -> Result<Option<ScheduleLock>, Error> {
        let client = connect(db, crate::db::Purpose::Schedule).await?;
        let taken: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(Error::db("take the backup schedule lock"))?
            .get(0);
        Ok(taken.then_some(ScheduleLock { client }))
    }

    /// Unlocks; if that fails, dropping the connection releases the lock anyway.
    async fn release(self) {
        match self.client.query_one("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await {
            Ok(row) if row.get::<_, bool>(0) => {}
            Ok(_) => tracing::warn!("the backup schedule lock was not held at release"),
            Err(err) => tracing::warn!(error = %err, "could not release the backup schedule lock; closing its session instead"),
        }
    }
}

/// `err` and its causes on one line.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_run_follows_the_cron() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let cases = [
            ("0 2 * * *", "2025-01-01T01:00:00Z", "2025-01-01T02:00:00Z"),
            ("0 2 * * *", "2025-01-01T02:00:00Z", "2025-01-02T02:00:00Z"),
            ("*/15 * * * *", "2025-01-01T10:07:00Z", "2025-01-01T10:15:00Z"),
            ("0 3 * * 0", "2025-01-01T00:00:00Z", "2025-01-05T03:00:00Z"),
        ];
        for (cron, after, expected) in cases {
            assert_eq!(next_run(cron, at(after)).unwrap(), at(expected), "{cron} after {after}");
        }
        assert!(matches!(next_run("not a cron", Utc::now()), Err(Error::InvalidSchedule { .. })));
        assert_eq!(current_tick("0 2 * * *", at("2025-01-01T05:00:00Z")).unwrap(), at("2025-01-01T02:00:00Z"));
        assert_eq!(current_tick("0 2 * * *", at("2025-01-01T02:00:00Z")).unwrap(), at("2025-01-01T02:00:00Z"));
    }

    #[test]
    fn stats_count_each_outcome() {
        let stats = ScheduleStats::default();
        stats.record(&Ok(ScheduledRun::Skipped));
        stats.record(&Err(Error::invalid("boom")));
        let snap = stats.snapshot();
        assert_eq!((snap.runs, snap.skipped, snap.failed, snap.succeeded), (2, 1, 1, 0));
        assert_eq!(snap.last_error.as_deref(), Some("invalid request: boom"));
    }
}
