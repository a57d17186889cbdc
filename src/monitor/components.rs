//! Seed 001's `/health` `components[]`: one entry per part dbagent depends on, each with a
//! `status`, a `latency_ms` where one was measured, and `details` in SQLAlchemy's pool terms
//! (`pool_size`, `max_overflow`, `checked_in`, `checked_out`, `overflow`, `total`), so a
//! dashboard written for that shape reads dbagent's pools unchanged. Built from the report's
//! own numbers: no extra round trip.

use serde::Serialize;

use crate::db::PoolStats;

/// One dependency's health.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Component {
    /// `database` (the primary), `replica:<name>`, `cache`.
    pub name: String,
    /// `healthy`, `degraded` or `unhealthy`.
    pub status: &'static str,
    pub latency_ms: Option<f64>,
    pub details: serde_json::Value,
}

/// A pool's statistics in SQLAlchemy's words: `pool_size` is the connections kept open
/// (`min_size`), `max_overflow` how many more may open (`max_size - min_size`), `overflow`
/// how many of those are open now.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PoolDetails {
    pub pool_size: u32,
    pub max_overflow: u32,
    pub checked_in: u32,
    pub checked_out: u32,
    pub overflow: u32,
    pub total: u32,
    pub max: u32,
    pub waiting: u32,
}

pub fn pool_details(stats: &PoolStats) -> PoolDetails {
    let pool_size = stats.min.unwrap_or(0).min(stats.max);
    PoolDetails {
        pool_size,
        max_overflow: stats.max.saturating_sub(pool_size),
        checked_in: stats.idle,
        checked_out: stats.active,
        overflow: stats.total.saturating_sub(pool_size),
        total: stats.total,
        max: stats.max,
        waiting: stats.waiting,
    }
}

/// The primary, each replica and the cache.
pub fn components(
    primary: &PoolStats,
    reachable: bool,
    latency_ms: Option<f64>,
    replicas: &[PoolStats],
    cache: Option<&crate::cache::CacheStatsSnapshot>,
) -> Vec<Component> {
    let mut out = vec![Component {
        name: "database".into(),
        status: if reachable { "healthy" } else { "unhealthy" },
        latency_ms,
        details: serde_json::to_value(pool_details(primary)).unwrap_or_default(),
    }];
    for replica in replicas.iter().filter(|r| !r.retired) {
        out.push(Component {
            name: format!("replica:{}", replica.name),
            // A lagging replica still works; it just gets no reads until it catches up.
            status: match (replica.healthy, replica.usable) {
                (false, _) => "unhealthy",
                (true, false) => "degraded",
                (true, true) => "healthy",
            },
            latency_ms: None,
            details: serde_json::to_value(pool_details(replica)).unwrap_or_default(),
        });
    }
    if let Some(cache) = cache {
        out.push(Component {
            name: "cache".into(),
            // An unreachable Redis is bypassed (reads go to the database): never unhealthy.
            status: "healthy",
            latency_ms: None,
            details: serde_json::json!({ "backend": cache.backend, "entries": cache.entries, "hits": cache.hits, "misses": cache.misses, "redis_errors": cache.redis_errors }),
        });
    }
    out
}
