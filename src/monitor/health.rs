//! The health report: can the primary be reached, how are the pools, what has been counted.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Stats, StatsSnapshot};
use crate::db::{PoolStats, Pools};

/// Seed 000's `/health` shape, plus the database check and per-replica detail.
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// `healthy`, `degraded` (a replica is down or lagging) or `unhealthy` (primary down).
    pub status: &'static str,
    pub timestamp: String,
    pub version: &'static str,
    pub uptime_seconds: u64,
    pub database: DatabaseCheck,
    pub connection_pool: PoolReport,
    pub statistics: StatsSnapshot,
    /// The result cache's counters and size, when it is enabled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::cache::CacheStatsSnapshot>,
    /// Scheduled backups: runs, failures, last success and error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backups: Option<crate::backup::ScheduleStatsSnapshot>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DatabaseCheck {
    pub reachable: bool,
    pub location: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolReport {
    pub healthy: bool,
    pub pool_stats: PoolStats,
    /// Number of configured read replicas (the seed's field).
    pub read_replicas: usize,
    pub replicas: Vec<PoolStats>,
}

impl HealthReport {
    pub fn is_healthy(&self) -> bool {
        self.status != "unhealthy"
    }
}

/// Pings the primary (bounded) and gathers statistics.
pub async fn report(pools: &Pools, stats: &Stats, cache: Option<&crate::cache::Cache>, started: Instant) -> HealthReport {
    let t0 = Instant::now();
    let ping = pools.primary().ping().await;
    let latency = t0.elapsed();
    let all = pools.stats();
    let reachable = ping.is_ok();
    let replicas_ok = all.replicas.iter().all(|r| r.usable);
    HealthReport {
        status: match (reachable, replicas_ok) {
            (false, _) => "unhealthy",
            (true, false) => "degraded",
            (true, true) => "healthy",
        },
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: started.elapsed().as_secs(),
        database: DatabaseCheck {
            reachable,
            location: pools.primary().location(),
            latency_ms: reachable.then(|| round_ms(latency)),
            error: ping.err().map(|e| e.to_string()),
        },
        connection_pool: PoolReport {
            healthy: reachable,
            read_replicas: all.replicas.len(),
            pool_stats: all.primary,
            replicas: all.replicas,
        },
        statistics: stats.snapshot(),
        cache: cache.map(|c| c.stats()),
        backups: None,
    }
}

fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
