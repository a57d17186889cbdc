//! What the agent counts about its own work: statements, transactions, errors, slow queries.
//! Counters are atomics, bumped on the request path without locks; [`health`] assembles the
//! health report from them and the pools.

pub mod components;
pub mod health;

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Process-wide counters of one agent (held in an `Arc`, never a global).
#[derive(Debug, Default)]
pub struct Stats {
    queries_executed: AtomicU64,
    transactions_executed: AtomicU64,
    transaction_retries: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    slow_queries: AtomicU64,
    errors: AtomicU64,
}

/// A snapshot, in seed 000's `statistics` shape plus retries.
#[derive(Debug, Clone, Serialize)]
pub struct StatsSnapshot {
    pub queries_executed: u64,
    pub transactions_executed: u64,
    pub transaction_retries: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub slow_queries: u64,
    pub errors: u64,
}

impl Stats {
    /// One statement through `/query` finished.
    pub fn record_query(&self, ok: bool) {
        self.queries_executed.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One `/transaction` finished after `retries` re-runs.
    pub fn record_transaction(&self, ok: bool, retries: u32) {
        self.transactions_executed.fetch_add(1, Ordering::Relaxed);
        self.transaction_retries.fetch_add(u64::from(retries), Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn record_slow_query(&self) {
        self.slow_queries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_cache(&self, hit: bool) {
        let counter = if hit { &self.cache_hits } else { &self.cache_misses };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            queries_executed: get(&self.queries_executed),
            transactions_executed: get(&self.transactions_executed),
            transaction_retries: get(&self.transaction_retries),
            cache_hits: get(&self.cache_hits),
            cache_misses: get(&self.cache_misses),
            slow_queries: get(&self.slow_queries),
            errors: get(&self.errors),
        }
    }
}
