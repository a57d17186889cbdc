//! One reading for the rules: what this agent knows without asking (pools, its counters since
//! the last evaluation, replicas' checks, backups, disk), one query of the database's gauges
//! and counters (`sql/database.sql`), and, with custom rules, the newest history samples.
//! Turning counters into rates is a pure function ([`Counters::rates`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::Error;
use crate::backup::ScheduleStats;
use crate::db::{self, Pools};
use crate::monitor::histogram::HistogramSnapshot;
use crate::monitor::{RequestMetrics, Stats};

const DATABASE: &str = include_str!("sql/database.sql");
/// The gauges `sql/database.sql` answers, each a column and a metric of the rules.
const GAUGES: [&str; 6] = ["connections_used_pct", "idle_in_transaction_sessions", "oldest_transaction_seconds", "xid_age", "invalid_indexes", "wal_archive_failing"];

/// Rates over fewer events than this are noise (one failed request of two is not a 50 %
/// error rate worth waking anyone for).
const MIN_EVENTS: u64 = 20;
/// A cache hit ratio over fewer blocks than this says nothing.
const MIN_BLOCKS: f64 = 1000.0;

/// Values by metric, each for one or more subjects.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub live: BTreeMap<&'static str, Vec<(String, f64)>>,
    /// The history's newest values, all agents combined, by series.
    pub history: BTreeMap<String, f64>,
}

impl Reading {
    pub fn push(&mut self, metric: &'static str, subject: impl Into<String>, value: f64) {
        if value.is_finite() {
            self.live.entry(metric).or_default().push((subject.into(), value));
        }
    }
}

/// Where the engine reads from: cheap handles.
#[derive(Clone)]
pub struct Sources {
    pub pools: Arc<Pools>,
    pub stats: Arc<Stats>,
    pub requests: Arc<RequestMetrics>,
    /// Scheduled backups, when a schedule is configured (only then is a backup expected).
    pub backups: Option<(Arc<crate::backup::Settings>, Arc<ScheduleStats>)>,
    /// The WAL archive's freshness, with `backup.pitr`.
    pub wal: Option<(Arc<crate::backup::Settings>, Arc<crate::backup::WalWatch>)>,
    /// With `backup.remote`: the settings holding the uploader's state.
    pub remote: Option<Arc<crate::backup::Settings>>,
    pub auto_migrate: Arc<crate::migrate::AutoMigrate>,
    pub migrations: Arc<crate::migrate::Service>,
    /// The managed instance's data directory (disk usage).
    pub data_dir: Option<PathBuf>,
}

/// Counters at one evaluation, for rates at the next.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    pub at: Option<Instant>,
    pub requests: u64,
    pub http_errors: u64,
    pub statements: u64,
    pub statement_errors: u64,
    pub slow: u64,
    pub latency: HistogramSnapshot,
    /// `pg_stat_database`'s deadlocks, blks_hit, blks_read (when the database answered).
    pub database: Option<(f64, f64, f64)>,
}

impl Counters {
    /// The rates between `self` (earlier) and `now`, pushed into `reading`.
    pub fn rates(&self, now: &Counters, reading: &mut Reading) {
        let (Some(a), Some(b)) = (self.at, now.at) else { return };
        let seconds = b.saturating_duration_since(a).as_secs_f64();
        if seconds <= 0.0 {
            return;
        }
        let requests = now.requests.saturating_sub(self.requests);
        let statements = now.statements.saturating_sub(self.statements);
        let pct = |errors: u64, total: u64| (total >= MIN_EVENTS).then(|| errors as f64 * 100.0 / total as f64);
        let http = pct(now.http_errors.saturating_sub(self.http_errors), requests);
        let sql = pct(now.statement_errors.saturating_sub(self.statement_errors), statements);
        if let Some(rate) = http.into_iter().chain(sql).reduce(f64::max) {
            reading.push("error_rate_pct", "primary", round(rate));
        }
        let latency = now.latency.since(&self.latency);
        if latency.count() >= 5
            && let Some(p95) = latency.quantile(0.95)
        {
            reading.push("response_time_p95_ms", "primary", round(p95 * 1e3));
        }
        reading.push("slow_queries_per_minute", "primary", round(now.slow.saturating_sub(self.slow) as f64 * 60.0 / seconds));
        if let (Some((d0, h0, r0)), Some((d1, h1, r1))) = (self.database, now.database) {
            reading.push("deadlocks_per_minute", "primary", round((d1 - d0).max(0.0) * 60.0 / seconds));
            let (hit, read) = ((h1 - h0).max(0.0), (r1 - r0).max(0.0));
            if hit + read >= MIN_BLOCKS {
                reading.push("cache_hit_ratio", "primary", (hit / (hit + read) * 1e4).round() / 1e4);
            }
        }
    }
}

/// What is read only every few minutes (files and a migration status).
#[derive(Debug, Clone, Default)]
pub struct Slow {
    pub at: Option<Instant>,
    /// The newest backup in the location.
    pub last_backup: Option<DateTime<Utc>>,
    /// Applied migrations drifted or missing; `None` when there are no migrations to check.
    pub drifted: Option<usize>,
}

impl Sources {
    /// This agent's own view, and its counters now (rates need the database's counters too:
    /// [`database`] fills them in).
    pub fn local(&self, reading: &mut Reading, slow: &Slow, started: DateTime<Utc>) -> Counters {
        let up = self.pools.primary().is_healthy();
        reading.push("database_down", "primary", if up { 0.0 } else { 1.0 });
        let pools = self.pools.stats();
        if pools.primary.max > 0 {
            reading.push("pool_used_pct", "primary", round(f64::from(pools.primary.active) * 100.0 / f64::from(pools.primary.max)));
        }
        for replica in &pools.replicas {
            if replica.retired {
                continue;
            }
            reading.push("replica_down", replica.name.clone(), if replica.healthy { 0.0 } else { 1.0 });
            if let Some(lag) = replica.lag_seconds {
                reading.push("replica_lag_seconds", replica.name.clone(), round(lag));
            }
        }
        if let Some(disk) = self.data_dir.as_deref().and_then(|d| crate::monitor::system::disk(d).ok()) {
            reading.push("disk_used_pct", "data_directory", round(disk.used_pct));
        }
        self.backups(reading, slow, started);
        self.wal(reading);
        self.remote(reading);
        if matches!(self.auto_migrate.get(), crate::migrate::AutoState::Failed { .. }) {
            reading.push("migration_failed", "migrations", 1.0);
        } else {
            reading.push("migration_failed", "migrations", 0.0);
        }
        if let Some(drifted) = slow.drifted {
            reading.push("migrations_drifted", "migrations", drifted as f64);
        }
        let (requests, http_errors) = self.requests.totals();
        let stats = self.stats.snapshot();
        Counters {
            at: Some(Instant::now()),
            requests,
            http_errors,
            statements: stats.queries_executed,
            statement_errors: stats.errors,
            slow: stats.slow_queries,
            latency: self.requests.total_duration(),
            database: None,
        }
    }

    /// Backups are expected only with a schedule: its last run failed, or the newest one is
    /// older than `backup.max_age` (none at all counts from when the engine started).
    fn backups(&self, reading: &mut Reading, slow: &Slow, started: DateTime<Utc>) {
        let Some((_, stats)) = &self.backups else { return };
        let snap = stats.snapshot();
        let failed = match (snap.last_failure_at, snap.last_success_at) {
            (Some(failure), Some(success)) => failure > success,
            (Some(_), None) => true,
            _ => false,
        };
        reading.push("backup_failed", "scheduled", if failed { 1.0 } else { 0.0 });
        let newest = snap.last_success_at.max(slow.last_backup).unwrap_or(started);
        let hours = (Utc::now() - newest).num_seconds() as f64 / 3600.0;
        reading.push("backup_age_hours", "scheduled", round(hours));
    }

    /// The measured RPO, and whether `pg_receivewal` streams and how much WAL its slot holds.
    fn wal(&self, reading: &mut Reading) {
        let Some(freshness) = self.wal.as_ref().and_then(|(settings, watch)| watch.freshness(settings)) else { return };
        if let Some(rpo) = freshness.rpo_seconds {
            reading.push("rpo_seconds", freshness.source, round(rpo));
        }
        if let Some(stream) = &freshness.stream {
            reading.push("wal_stream_down", stream.slot.clone(), if stream.running { 0.0 } else { 1.0 });
            if let Some(lag) = stream.slot_lag_bytes {
                reading.push("wal_slot_lag_bytes", stream.slot.clone(), lag as f64);
            }
        }
    }

    /// How far behind the remote store is, and whether its uploads fail.
    fn remote(&self, reading: &mut Reading) {
        let Some(remote) = self.remote.as_ref().and_then(|s| s.remote.as_ref()) else { return };
        let status = remote.status();
        reading.push("backup_remote_lag_seconds", status.url.clone(), round(status.lag_seconds));
        reading.push("backup_remote_failing", status.url, if status.state == "failing" { 1.0 } else { 0.0 });
    }

    /// The slow checks: the newest backup in the location, and migrations drifted or missing.
    pub async fn slow(&self, db: &crate::db::PgConfig) -> Slow {
        let last_backup = match &self.backups {
            Some((settings, _)) => crate::backup::list(settings)
                .ok()
                .and_then(|all| all.iter().filter(|m| m.kind != crate::backup::BackupKind::Base).map(|m| m.created_at).max()),
            None => None,
        };
        let drifted = match self.migrations.status(db).await {
            Ok(status) => Some(status.drifted.len() + status.missing.len()),
            // No migrations directory, or nothing to compare: nothing to alert on.
            Err(_) => None,
        };
        Slow { at: Some(Instant::now()), last_backup, drifted }
    }
}

/// The database's gauges into `reading`, and its counters into `counters`.
pub async fn database(client: &Client, reading: &mut Reading, counters: &mut Counters) -> Result<(), Error> {
    let row = client.query_one(DATABASE, &[]).await.map_err(Error::driver)?;
    let gauge = |name: &str| db::get::<Option<f64>>(&row, name);
    for metric in GAUGES {
        if let Some(value) = gauge(metric)? {
            reading.push(metric, "primary", round(value));
        }
    }
    counters.database = Some((db::get(&row, "deadlocks")?, db::get(&row, "blks_hit")?, db::get(&row, "blks_read")?));
    Ok(())
}

/// The history's newest raw sample of each agent (within `window` seconds), combined across
/// agents as each series says.
pub async fn history(client: &Client, window: f64, reading: &mut Reading) -> Result<(), Error> {
    let sql = "SELECT DISTINCT ON (agent_id) agent_id, avg::text AS avg
                 FROM dbagent.metrics_history
                WHERE resolution = 0 AND at > now() - make_interval(secs => $1)
                ORDER BY agent_id, at DESC";
    let rows = match client.query(sql, &[&window]).await {
        Ok(rows) => rows,
        // No agent has written the history yet.
        Err(err) if err.as_db_error().is_some_and(|e| e.code().code() == "42P01") => return Ok(()),
        Err(err) => return Err(Error::driver(err)),
    };
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for row in &rows {
        let text: String = db::get(row, "avg")?;
        let sample: BTreeMap<String, f64> = serde_json::from_str(&text).unwrap_or_default();
        for (series, value) in sample {
            values.entry(series).or_default().push(value);
        }
    }
    for (name, v) in values {
        let Some(series) = crate::monitor::history::series(&name) else { continue };
        let combined = match series.across {
            crate::monitor::history::Across::Sum => v.iter().sum(),
            crate::monitor::history::Across::Avg => v.iter().sum::<f64>() / v.len() as f64,
            crate::monitor::history::Across::Max => v.iter().copied().fold(f64::MIN, f64::max),
        };
        reading.history.insert(name, combined);
    }
    Ok(())
}

fn round(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rates_come_from_two_evaluations_and_ignore_small_samples() {
        let t0 = Instant::now();
        let before = Counters { at: Some(t0), requests: 100, statements: 100, database: Some((0.0, 1000.0, 0.0)), ..Counters::default() };
        let now = Counters {
            at: Some(t0 + Duration::from_secs(30)),
            requests: 200,
            http_errors: 10,
            statements: 105,
            statement_errors: 5,
            slow: 6,
            database: Some((2.0, 2900.0, 100.0)),
            ..Counters::default()
        };
        let mut reading = Reading::default();
        before.rates(&now, &mut reading);
        let get = |m: &str| reading.live.get(m).and_then(|v| v.first()).map(|(_, v)| *v);
        assert_eq!(get("error_rate_pct"), Some(10.0), "5 statements are too few to count; 10 of 100 requests");
        assert_eq!(get("slow_queries_per_minute"), Some(12.0));
        assert_eq!(get("deadlocks_per_minute"), Some(4.0));
        assert_eq!(get("cache_hit_ratio"), Some(0.95));
        assert_eq!(get("response_time_p95_ms"), None, "no requests timed");
    }
}
