//! One history sample: the agent's counters and the collector's figures read now, turned
//! into rates and gauges against the previous reading (a pure function, tested below).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crate::backup::ScheduleStats;
use crate::db::Pools;
use crate::monitor::collector::{Collector, DbTotals};
use crate::monitor::histogram::HistogramSnapshot;
use crate::monitor::{RequestMetrics, Stats};

/// Where the sampler reads from (cheap handles).
#[derive(Clone)]
pub struct Sources {
    pub stats: Arc<Stats>,
    pub requests: Arc<RequestMetrics>,
    pub pools: Arc<Pools>,
    pub collector: Option<Arc<Collector>>,
    pub cache: Option<Arc<crate::cache::Cache>>,
    pub backups: Option<Arc<ScheduleStats>>,
    /// The managed instance's data directory (disk space).
    pub data_dir: Option<PathBuf>,
}

/// Counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub at: Option<Instant>,
    pub requests: u64,
    pub http_errors: u64,
    pub statements: u64,
    pub statement_errors: u64,
    pub latency: HistogramSnapshot,
    pub result_cache: (u64, u64),
    pub backup_failures: u64,
    pub db: Option<DbTotals>,
}

/// Gauges read at sampling time.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub pool_active: f64,
    pub pool_idle: f64,
    pub pool_waiting: f64,
    pub pool_max: f64,
    pub replica_lag_seconds: Option<f64>,
    pub disk_free_bytes: Option<f64>,
    pub backup_age_seconds: Option<f64>,
}

/// `(series, value)` pairs of one sample; series without a value are left out.
pub type Sample = Vec<(&'static str, f64)>;

impl Sources {
    pub fn read(&self) -> (Reading, Gauges) {
        let (requests, http_errors) = self.requests.totals();
        let snap = self.stats.snapshot();
        let result_cache = self.cache.as_ref().map_or((0, 0), |c| {
            let s = c.stats();
            (s.hits, s.misses)
        });
        let backups = self.backups.as_ref().map(|b| b.snapshot());
        let reading = Reading {
            at: Some(Instant::now()),
            requests,
            http_errors,
            statements: snap.queries_executed,
            statement_errors: snap.errors,
            latency: self.requests.total_duration(),
            result_cache,
            backup_failures: backups.as_ref().map_or(0, |b| b.failed),
            db: self.collector.as_ref().and_then(|c| c.snapshot().database),
        };
        let pools = self.pools.stats();
        let lag = pools.replicas.iter().filter_map(|r| r.lag_seconds).fold(None, |m: Option<f64>, l| Some(m.map_or(l, |m| m.max(l))));
        let gauges = Gauges {
            pool_active: f64::from(pools.primary.active),
            pool_idle: f64::from(pools.primary.idle),
            pool_waiting: f64::from(pools.primary.waiting),
            pool_max: f64::from(pools.primary.max),
            replica_lag_seconds: lag,
            disk_free_bytes: self.data_dir.as_deref().and_then(|d| crate::monitor::system::disk(d).ok()).map(|d| d.free_bytes as f64),
            backup_age_seconds: backups
                .and_then(|b| b.last_success_at)
                .map(|t| (chrono::Utc::now() - t).num_milliseconds() as f64 / 1e3),
        };
        (reading, gauges)
    }
}

/// The sample between `before` and `now` (rates over the time between them).
pub fn compute(before: &Reading, now: &Reading, gauges: &Gauges) -> Sample {
    let mut out: Sample = Vec::with_capacity(super::SERIES.len());
    let seconds = match (before.at, now.at) {
        (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
        _ => 0.0,
    };
    let rate = |a: u64, b: u64| (seconds > 0.0).then(|| round(b.saturating_sub(a) as f64 / seconds, 3));
    let mut push = |name: &'static str, v: Option<f64>| {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            out.push((name, v));
        }
    };
    push("requests_per_second", rate(before.requests, now.requests));
    let errors = (now.http_errors + now.statement_errors).saturating_sub(before.http_errors + before.statement_errors);
    push("errors_per_second", (seconds > 0.0).then(|| round(errors as f64 / seconds, 3)));
    let latency = now.latency.since(&before.latency);
    for (name, q) in [("latency_p50_ms", 0.5), ("latency_p95_ms", 0.95), ("latency_p99_ms", 0.99)] {
        push(name, latency.quantile(q).map(|s| round(s * 1e3, 3)));
    }
    push("statements_per_second", rate(before.statements, now.statements));
    push("pool_active", Some(gauges.pool_active));
    push("pool_idle", Some(gauges.pool_idle));
    push("pool_waiting", Some(gauges.pool_waiting));
    push("pool_utilization_pct", (gauges.pool_max > 0.0).then(|| round(gauges.pool_active * 100.0 / gauges.pool_max, 2)));
    let lookups = (now.result_cache.0 + now.result_cache.1).saturating_sub(before.result_cache.0 + before.result_cache.1);
    push("result_cache_hit_ratio", (lookups > 0).then(|| round(now.result_cache.0.saturating_sub(before.result_cache.0) as f64 / lookups as f64, 4)));
    if let Some(db) = &now.db {
        push("connections_active", Some(db.active));
        push("connections_idle", Some(db.idle));
        push("connections_idle_in_transaction", Some(db.idle_in_transaction));
        push("connections_utilization_pct", (db.max_connections > 0.0).then(|| round(db.numbackends * 100.0 / db.max_connections, 2)));
        push("oldest_transaction_seconds", Some(round(db.oldest_xact_seconds, 3)));
        push("database_size_bytes", db.size_bytes);
        // Database rates come from the collector's own two reads' times, not the sampler's.
        if let Some(old) = before.db.filter(|old| old.at.is_some() && old.at != db.at) {
            let secs = match (old.at, db.at) {
                (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
                _ => 0.0,
            };
            if secs > 0.0 {
                let d = |a: f64, b: f64| (b - a).max(0.0);
                let tx = d(old.xact_commit + old.xact_rollback, db.xact_commit + db.xact_rollback);
                push("tps", Some(round(tx / secs, 3)));
                push("rollbacks_per_second", Some(round(d(old.xact_rollback, db.xact_rollback) / secs, 3)));
                push("deadlocks_per_minute", Some(round(d(old.deadlocks, db.deadlocks) * 60.0 / secs, 3)));
                let (hit, read) = (d(old.blks_hit, db.blks_hit), d(old.blks_read, db.blks_read));
                push("cache_hit_ratio", (hit + read > 0.0).then(|| round(hit / (hit + read), 4)));
            }
        }
    }
    push("replica_lag_seconds", gauges.replica_lag_seconds);
    push("disk_free_bytes", gauges.disk_free_bytes);
    push("backup_age_seconds", gauges.backup_age_seconds.map(|s| round(s, 0)));
    push("backup_failures", Some(now.backup_failures.saturating_sub(before.backup_failures) as f64));
    out
}

fn round(v: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (v * f).round() / f
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rates_come_from_the_difference_of_two_readings() {
        let t0 = Instant::now();
        let db0 = DbTotals { at: Some(t0), xact_commit: 100.0, blks_hit: 90.0, blks_read: 10.0, max_connections: 100.0, ..DbTotals::default() };
        let before = Reading { at: Some(t0), requests: 10, db: Some(db0), ..Reading::default() };
        let t1 = t0 + Duration::from_secs(10);
        let db1 = DbTotals { at: Some(t1), xact_commit: 150.0, blks_hit: 189.0, blks_read: 11.0, numbackends: 5.0, max_connections: 100.0, ..db0 };
        let now = Reading { at: Some(t1), requests: 30, http_errors: 1, db: Some(db1), ..Reading::default() };
        let gauges = Gauges { pool_active: 2.0, pool_max: 8.0, ..Gauges::default() };
        let sample = compute(&before, &now, &gauges);
        let get = |name: &str| sample.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        assert_eq!(get("requests_per_second"), Some(2.0));
        assert_eq!(get("errors_per_second"), Some(0.1));
        assert_eq!(get("tps"), Some(5.0));
        assert_eq!(get("cache_hit_ratio"), Some(0.99));
        assert_eq!(get("pool_utilization_pct"), Some(25.0));
        assert_eq!(get("connections_utilization_pct"), Some(5.0));
        assert_eq!(get("latency_p50_ms"), None, "no requests timed, no latency");
        assert!(sample.iter().all(|(n, _)| super::super::series(n).is_some()), "every series is declared");
    }
}
