//! Cache counters, reported in `/health` and by `dbagent health`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Requests with `use_cache` whose result may not be cached (volatile, unwatchable ...).
    pub bypassed: AtomicU64,
    pub stored: AtomicU64,
    /// Tables (or, for an epoch bump, everything) invalidated.
    pub invalidations: AtomicU64,
    pub evictions: AtomicU64,
    pub redis_errors: AtomicU64,
    /// Invalidations received from other clients' writes (NOTIFY).
    pub notifications: AtomicU64,
    pub listener_reconnects: AtomicU64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CacheStatsSnapshot {
    pub enabled: bool,
    pub backend: &'static str,
    pub hits: u64,
    pub misses: u64,
    pub bypassed: u64,
    pub stored: u64,
    pub invalidations: u64,
    pub evictions: u64,
    pub entries: u64,
    pub bytes: u64,
    pub redis_errors: u64,
    pub notifications: u64,
    pub listener_reconnects: u64,
}

impl CacheStats {
    pub fn snapshot(&self, backend: &'static str, entries: u64, bytes: u64) -> CacheStatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStatsSnapshot {
            enabled: true,
            backend,
            hits: get(&self.hits),
            misses: get(&self.misses),
            bypassed: get(&self.bypassed),
            stored: get(&self.stored),
            invalidations: get(&self.invalidations),
            evictions: get(&self.evictions),
            entries,
            bytes,
            redis_errors: get(&self.redis_errors),
            notifications: get(&self.notifications),
            listener_reconnects: get(&self.listener_reconnects),
        }
    }
}
