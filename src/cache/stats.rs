//! Cache counters, reported in `/health` and by `dbagent health`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

#[derive(Debug, Default)]
pub struct CacheStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Requests with `use_cache` whose result may not be cached (volatile, unwatchable ...).
    pub bypassed: AtomicU64,
    /// The same, by [`Bypass`] (its `as usize`).
    pub bypassed_by: [AtomicU64; Bypass::ALL.len()],
    pub stored: AtomicU64,
    /// Tables (or, for an epoch bump, everything) invalidated.
    pub invalidations: AtomicU64,
    pub evictions: AtomicU64,
    pub redis_errors: AtomicU64,
    /// Invalidations received from other clients' writes (NOTIFY).
    pub notifications: AtomicU64,
    pub listener_reconnects: AtomicU64,
}

/// Why a read with `use_cache` was not cached: the `reason` label of
/// `dbagent_cache_bypasses_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    /// A construct that never caches: a volatile function, a locking clause, a data-modifying
    /// CTE ...
    Construct,
    /// Not a read-only SELECT.
    NotARead,
    /// It calls a function that is not IMMUTABLE.
    Function,
    /// A relation whose changes cannot be watched (a system catalog, a materialized view, a
    /// foreign table ...).
    Unwatchable,
}

impl Bypass {
    pub const ALL: [Bypass; 4] = [Bypass::Construct, Bypass::NotARead, Bypass::Function, Bypass::Unwatchable];

    pub fn label(self) -> &'static str {
        match self {
            Bypass::Construct => "construct",
            Bypass::NotARead => "not_a_read",
            Bypass::Function => "function",
            Bypass::Unwatchable => "unwatchable",
        }
    }
}

impl CacheStats {
    pub fn bypass(&self, why: Bypass) {
        self.bypassed.fetch_add(1, Ordering::Relaxed);
        self.bypassed_by[why as usize].fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct CacheStatsSnapshot {
    pub enabled: bool,
    pub backend: &'static str,
    pub hits: u64,
    pub misses: u64,
    pub bypassed: u64,
    /// By reason (`construct`, `not_a_read`, `function`, `unwatchable`).
    pub bypassed_by: std::collections::BTreeMap<&'static str, u64>,
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
            bypassed_by: Bypass::ALL.iter().map(|b| (b.label(), get(&self.bypassed_by[*b as usize]))).collect(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bypasses_are_counted_in_total_and_by_reason() {
        let stats = CacheStats::default();
        stats.bypass(Bypass::Function);
        stats.bypass(Bypass::Function);
        stats.bypass(Bypass::Unwatchable);
        let snap = stats.snapshot("memory", 0, 0);
        assert_eq!(snap.bypassed, 3);
        assert_eq!(snap.bypassed_by["function"], 2);
        assert_eq!(snap.bypassed_by["unwatchable"], 1);
        assert_eq!(snap.bypassed_by["construct"], 0);
        assert_eq!(snap.bypassed_by.len(), Bypass::ALL.len());
    }
}
