//! One scrape of `/metrics`: dbagent's own series rendered from its atomics and the pools'
//! statistics, then the collector's cached database series. Reads no database.

use super::collector::Collector;
use super::counters::Stats;
use super::render::{Kind, Text};
use super::requests::RequestMetrics;
use crate::backup::ScheduleStatsSnapshot;
use crate::cache::CacheStatsSnapshot;
use crate::db::{PoolStats, PoolsStats};

/// What a scrape renders from.
pub struct Scrape<'a> {
    pub stats: &'a Stats,
    pub requests: &'a RequestMetrics,
    pub pools: PoolsStats,
    /// Whether the primary's last health check passed (`pg_up`).
    pub up: bool,
    pub cache: Option<CacheStatsSnapshot>,
    pub backups: Option<ScheduleStatsSnapshot>,
    /// The WAL archive's freshness, with `backup.pitr`.
    pub wal: Option<crate::backup::WalFreshness>,
    /// The off-site copies' uploader (`backup.remote`).
    pub remote: Option<crate::backup::remote::Status>,
    pub collector: Option<&'a Collector>,
    pub uptime_seconds: f64,
    /// Alerts firing and notifications sent, with `alerts.enabled`.
    pub alerts: Option<&'a crate::alerts::Alerts>,
}

impl Scrape<'_> {
    /// The whole exposition.
    pub fn render(&self) -> String {
        let snapshot = self.collector.map(Collector::snapshot);
        let cached = snapshot.as_ref().map_or(0, |s| s.cheap.len() + s.detail.len());
        let mut text = Text::with_capacity(32 * 1024 + cached);
        self.agent(&mut text);
        self.http(&mut text);
        self.statements(&mut text);
        self.pools(&mut text);
        self.cache(&mut text);
        self.backups(&mut text);
        self.wal(&mut text);
        self.remote(&mut text);
        if let Some(alerts) = self.alerts {
            alerts.render(&mut text);
        }
        text.single("pg_up", Kind::Gauge, "1 when the primary answered its last health check.", if self.up { 1.0 } else { 0.0 });
        if let (Some(collector), Some(snapshot)) = (self.collector, &snapshot) {
            collector.render_own(&mut text);
            text.push_str(&snapshot.cheap);
            text.push_str(&snapshot.detail);
        }
        text.finish()
    }

    fn agent(&self, text: &mut Text) {
        text.family("dbagent_build_info", Kind::Gauge, "Always 1; the version is a label.");
        text.sample("dbagent_build_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
        text.single("dbagent_uptime_seconds", Kind::Gauge, "Seconds since the agent started.", self.uptime_seconds);
    }

    fn http(&self, text: &mut Text) {
        let r = self.requests;
        text.family("dbagent_http_requests_total", Kind::Counter, "HTTP requests by route template, method and status class.");
        for (route, method, class, n) in r.counts() {
            text.sample("dbagent_http_requests_total", &[("route", route), ("method", method), ("status", class)], n as f64);
        }
        text.family("dbagent_http_request_duration_seconds", Kind::Histogram, "HTTP request latency by route template.");
        for (route, h) in r.durations() {
            text.histogram("dbagent_http_request_duration_seconds", &[("route", route)], &h);
        }
        text.single("dbagent_http_requests_in_flight", Kind::Gauge, "HTTP requests being served.", r.in_flight() as f64);
        text.family("dbagent_auth_failures_total", Kind::Counter, "Requests refused by API key checks, by reason.");
        for (reason, n) in r.auth_failures() {
            text.sample("dbagent_auth_failures_total", &[("reason", reason.label())], n as f64);
        }
        text.single("dbagent_rate_limited_total", Kind::Counter, "Requests refused by rate limits.", r.rate_limited() as f64);
    }

    fn statements(&self, text: &mut Text) {
        let s = self.stats;
        text.family("dbagent_statements_total", Kind::Counter, "Statements through /query by query type, who served them and outcome.");
        for (query_type, served, outcome, n) in s.statements() {
            text.sample(
                "dbagent_statements_total",
                &[("query_type", query_type), ("served_by", served.label()), ("outcome", outcome.label())],
                n as f64,
            );
        }
        text.family("dbagent_transactions_total", Kind::Counter, "Transactions through /transaction by outcome.");
        for (outcome, n) in s.transactions() {
            text.sample("dbagent_transactions_total", &[("outcome", outcome.label())], n as f64);
        }
        let snap = s.snapshot();
        text.single("dbagent_transaction_retries_total", Kind::Counter, "Transactions re-run after a serialization failure or deadlock.", snap.transaction_retries as f64);
        let unknown = s.transactions().find(|(o, _)| *o == super::Outcome::OutcomeUnknown).map_or(0, |(_, n)| n)
            + s.statements().filter(|(_, _, o, _)| *o == super::Outcome::OutcomeUnknown).map(|(.., n)| n).sum::<u64>();
        text.single("dbagent_outcome_unknown_total", Kind::Counter, "Writes or COMMITs whose answer was lost (never retried).", unknown as f64);
        text.single("dbagent_slow_queries_total", Kind::Counter, "Statements slower than optimization.slow_query_threshold_ms.", snap.slow_queries as f64);
    }

    fn pools(&self, text: &mut Text) {
        let all: Vec<&PoolStats> = std::iter::once(&self.pools.primary).chain(&self.pools.replicas).collect();
        let gauge = |text: &mut Text, name: &str, help: &str, value: &dyn Fn(&PoolStats) -> f64| {
            text.family(name, Kind::Gauge, help);
            for p in &all {
                text.sample(name, &[("pool", &p.name)], value(p));
            }
        };
        gauge(text, "dbagent_pool_connections", "Connections open in the pool.", &|p| f64::from(p.total));
        gauge(text, "dbagent_pool_idle_connections", "Idle connections in the pool.", &|p| f64::from(p.idle));
        gauge(text, "dbagent_pool_active_connections", "Connections in use.", &|p| f64::from(p.active));
        gauge(text, "dbagent_pool_waiting_requests", "Requests waiting for a connection.", &|p| f64::from(p.waiting));
        gauge(text, "dbagent_pool_max_connections", "The pool's maximum size.", &|p| f64::from(p.max));
        gauge(text, "dbagent_pool_healthy", "1 when the pool's server passed its last health check.", &|p| f64::from(u8::from(p.healthy)));
        let counter = |text: &mut Text, name: &str, help: &str, value: &dyn Fn(&PoolStats) -> f64| {
            text.family(name, Kind::Counter, help);
            for p in &all {
                text.sample(name, &[("pool", &p.name)], value(p));
            }
        };
        counter(text, "dbagent_pool_acquire_timeouts_total", "Requests that got no connection within the acquire timeout.", &|p| p.acquire_timeouts as f64);
        counter(text, "dbagent_pool_acquire_wait_seconds_total", "Time requests spent waiting for a connection.", &|p| p.acquire_wait_seconds);
        counter(text, "dbagent_pool_connections_opened_total", "Connections opened.", &|p| p.connections_created as f64);
        counter(text, "dbagent_pool_multiplexed_statements_total", "Statements run on a shared (multiplexed) connection.", &|p| p.shared.statements as f64);
        text.family("dbagent_pool_connections_closed_total", Kind::Counter, "Connections closed, by reason.");
        for p in &all {
            for (reason, n) in [
                ("broken", p.connections_closed_broken),
                ("invalid", p.connections_closed_invalid),
                ("max_lifetime", p.connections_closed_max_lifetime),
                ("idle_timeout", p.connections_closed_idle_timeout),
            ] {
                text.sample("dbagent_pool_connections_closed_total", &[("pool", &p.name), ("reason", reason)], n as f64);
            }
        }
        text.family("dbagent_replica_lag_seconds", Kind::Gauge, "Replay lag of each read replica, in seconds.");
        for p in &self.pools.replicas {
            if let Some(lag) = p.lag_seconds {
                text.sample("dbagent_replica_lag_seconds", &[("pool", &p.name)], lag);
            }
        }
        text.family("dbagent_replica_lag_bytes", Kind::Gauge, "WAL bytes each read replica has not replayed.");
        for p in &self.pools.replicas {
            if let Some(lag) = p.lag_bytes {
                text.sample("dbagent_replica_lag_bytes", &[("pool", &p.name)], lag as f64);
            }
        }
    }

    fn cache(&self, text: &mut Text) {
        let Some(c) = &self.cache else { return };
        for (name, help, value) in [
            ("dbagent_cache_hits_total", "Reads answered from the result cache.", c.hits),
            ("dbagent_cache_misses_total", "Cacheable reads not in the cache.", c.misses),
            ("dbagent_cache_stores_total", "Results stored.", c.stored),
            ("dbagent_cache_invalidations_total", "Tables (or the whole cache) invalidated.", c.invalidations),
            ("dbagent_cache_evictions_total", "Entries evicted for size.", c.evictions),
            ("dbagent_cache_redis_errors_total", "Failed Redis operations.", c.redis_errors),
        ] {
            text.single(name, Kind::Counter, help, value as f64);
        }
        text.family("dbagent_cache_bypasses_total", Kind::Counter, "Reads with use_cache that may not be cached, by reason.");
        for (reason, n) in &c.bypassed_by {
            text.sample("dbagent_cache_bypasses_total", &[("reason", reason)], *n as f64);
        }
        text.single("dbagent_cache_entries", Kind::Gauge, "Entries in the cache.", c.entries as f64);
        text.single("dbagent_cache_bytes", Kind::Gauge, "Bytes of results in the cache.", c.bytes as f64);
    }

    fn wal(&self, text: &mut Text) {
        let Some(w) = &self.wal else { return };
        if let Some(rpo) = w.rpo_seconds {
            text.single("dbagent_backup_rpo_seconds", Kind::Gauge, "Seconds since everything the server had written was last safe in the WAL archive (0: nothing pending).", rpo);
        }
        text.single("dbagent_backup_rpo_target_seconds", Kind::Gauge, "backup.rpo_target in seconds.", w.rpo_target_seconds);
        let Some(s) = &w.stream else { return };
        let slot = [("slot", s.slot.as_str())];
        text.family("dbagent_wal_stream_up", Kind::Gauge, "1 while pg_receivewal streams the server's WAL into the archive.");
        text.sample("dbagent_wal_stream_up", &slot, if s.running { 1.0 } else { 0.0 });
        text.family("dbagent_wal_stream_restarts_total", Kind::Counter, "Times pg_receivewal was started again after it stopped.");
        text.sample("dbagent_wal_stream_restarts_total", &slot, s.restarts as f64);
        text.family("dbagent_wal_stream_segments_total", Kind::Counter, "Streamed WAL segments stored in the archive.");
        text.sample("dbagent_wal_stream_segments_total", &slot, s.segments_archived as f64);
        if let Some(lag) = s.slot_lag_bytes {
            text.family("dbagent_wal_stream_slot_lag_bytes", Kind::Gauge, "WAL the streaming slot keeps on the server (pg_current_wal_lsn() - restart_lsn).");
            text.sample("dbagent_wal_stream_slot_lag_bytes", &slot, lag as f64);
        }
    }

    fn remote(&self, text: &mut Text) {
        let Some(r) = &self.remote else { return };
        text.single("dbagent_backup_remote_up", Kind::Gauge, "1 when the last pass of uploads to the remote store (backup.remote) completed.", if r.state == "failing" { 0.0 } else { 1.0 });
        text.single("dbagent_backup_remote_lag_seconds", Kind::Gauge, "Seconds since the oldest complete local file not yet in the remote store was complete (0: nothing pending).", r.lag_seconds);
        text.single("dbagent_backup_remote_max_lag_seconds", Kind::Gauge, "backup.remote.max_lag in seconds.", r.max_lag_seconds);
        text.single("dbagent_backup_remote_pending_files", Kind::Gauge, "Complete local files (backup files, manifests, WAL) not yet in the remote store.", r.pending_files as f64);
        text.single("dbagent_backup_remote_pending_bytes", Kind::Gauge, "Bytes of those files.", r.pending_bytes as f64);
        text.single("dbagent_backup_remote_backups", Kind::Gauge, "Backups in the remote store at the last pass.", r.remote_backups as f64);
        text.single("dbagent_backup_remote_uploaded_files_total", Kind::Counter, "Files uploaded to the remote store.", r.uploaded_files_total as f64);
        text.single("dbagent_backup_remote_uploaded_bytes_total", Kind::Counter, "Bytes uploaded to the remote store.", r.uploaded_bytes_total as f64);
        text.single("dbagent_backup_remote_failures_total", Kind::Counter, "Passes of uploads to the remote store that failed.", r.failures_total as f64);
    }

    fn backups(&self, text: &mut Text) {
        let Some(b) = &self.backups else { return };
        text.single("dbagent_backup_runs_total", Kind::Counter, "Scheduled backup runs.", b.runs as f64);
        text.single("dbagent_backup_failures_total", Kind::Counter, "Scheduled backups that failed.", b.failed as f64);
        let last = b.last_success_at.map_or(0.0, |t| t.timestamp_millis() as f64 / 1e3);
        text.single("dbagent_backup_last_success_timestamp_seconds", Kind::Gauge, "When the last scheduled backup succeeded (Unix seconds, 0 never).", last);
        if let (Some(ms), Some(bytes)) = (b.last_duration_ms, b.last_stored_bytes) {
            text.single("dbagent_backup_last_duration_seconds", Kind::Gauge, "How long the last successful scheduled backup took.", ms as f64 / 1e3);
            text.single("dbagent_backup_last_size_bytes", Kind::Gauge, "The last successful scheduled backup's size as stored (compressed, encrypted).", bytes as f64);
        }
    }
}
