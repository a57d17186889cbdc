//! The metric history: every `monitoring.sample_interval` each agent writes one compact row
//! of the key series into `dbagent.metrics_history` (a real table, shared by the agents of one
//! database, each row tagged with its agent's id), rolled up into 1-minute and 1-hour rows so
//! that a week reads fast, and pruned past `monitoring.retention_hours` by whichever agent
//! holds the history's advisory lock.
//!
//! A row holds a JSON object `{series: value}` of rates and gauges (never raw counters, so a
//! restart or a reset cannot make a chart jump): averages in `avg`, maxima in `max`. Series
//! are defined once in [`SERIES`], with how they combine across agents; the alert rules and
//! the dashboard read them through [`store::read`] (`GET /metrics/history`).

mod sample;
mod sampler;
pub mod store;

pub use sample::{Sample, Sources};
pub use sampler::spawn;
pub use store::{History, HistoryRequest};

use serde::Serialize;

/// How one series' values from several agents make one value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Across {
    /// Each agent's own traffic: added up.
    Sum,
    /// The same database seen by every agent: averaged.
    Avg,
    /// The worst agent's view.
    Max,
}

/// A series of the history.
#[derive(Debug, Clone, Copy, Serialize, schemars::JsonSchema)]
pub struct Series {
    pub name: &'static str,
    pub unit: &'static str,
    pub across: Across,
    pub help: &'static str,
}

const fn s(name: &'static str, unit: &'static str, across: Across, help: &'static str) -> Series {
    Series { name, unit, across, help }
}

/// Every series the sampler writes.
pub const SERIES: &[Series] = &[
    s("requests_per_second", "1/s", Across::Sum, "HTTP requests answered per second."),
    s("errors_per_second", "1/s", Across::Sum, "HTTP 5xx answers and failed statements or transactions per second."),
    s("latency_p50_ms", "ms", Across::Max, "Median HTTP request latency."),
    s("latency_p95_ms", "ms", Across::Max, "95th percentile HTTP request latency."),
    s("latency_p99_ms", "ms", Across::Max, "99th percentile HTTP request latency."),
    s("statements_per_second", "1/s", Across::Sum, "Statements through /query per second."),
    s("pool_active", "connections", Across::Sum, "Primary pool connections in use."),
    s("pool_idle", "connections", Across::Sum, "Idle primary pool connections."),
    s("pool_waiting", "requests", Across::Sum, "Requests waiting for a primary pool connection."),
    s("pool_utilization_pct", "%", Across::Max, "Primary pool connections in use, as a share of its maximum."),
    s("connections_active", "sessions", Across::Avg, "Database sessions running a statement."),
    s("connections_idle", "sessions", Across::Avg, "Idle database sessions."),
    s("connections_idle_in_transaction", "sessions", Across::Avg, "Sessions idle inside a transaction."),
    s("connections_utilization_pct", "%", Across::Avg, "Backends as a share of max_connections."),
    s("tps", "1/s", Across::Avg, "Database commits and rollbacks per second."),
    s("rollbacks_per_second", "1/s", Across::Avg, "Database rollbacks per second."),
    s("deadlocks_per_minute", "1/min", Across::Avg, "Deadlocks detected per minute."),
    s("cache_hit_ratio", "ratio", Across::Avg, "Buffer cache hits over blocks needed, over the interval."),
    s("result_cache_hit_ratio", "ratio", Across::Avg, "dbagent's result cache hits over lookups, over the interval."),
    s("oldest_transaction_seconds", "s", Across::Max, "Age of the oldest open transaction."),
    s("replica_lag_seconds", "s", Across::Max, "Largest replay lag of the read replicas."),
    s("database_size_bytes", "bytes", Across::Avg, "Size of the database."),
    s("disk_free_bytes", "bytes", Across::Avg, "Free space under the managed instance's data directory."),
    s("backup_age_seconds", "s", Across::Max, "Seconds since the last successful scheduled backup."),
    s("backup_failures", "count", Across::Sum, "Scheduled backups failed in the interval."),
];

pub fn series(name: &str) -> Option<&'static Series> {
    SERIES.iter().find(|s| s.name == name)
}

/// Reads the history for `req` on a primary pool connection (a short read).
pub async fn read(pools: &crate::db::Pools, req: &HistoryRequest, settings: &crate::config::Monitoring) -> Result<History, crate::monitor::Error> {
    let mut lease = pools.acquire(crate::db::Target::Write).await?;
    lease.begin_use();
    let result = store::read(lease.client(), req, settings.sample_interval, settings.retention_hours).await;
    // A server error leaves the connection usable; a lost one is discarded by the pool.
    if !matches!(&result, Err(crate::monitor::Error::Db(crate::db::Error::Unavailable { .. } | crate::db::Error::OutcomeUnknown))) {
        lease.end_use();
    }
    result
}
