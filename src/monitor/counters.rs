//! What the agent counts about its own work: statements (by query type, who served them and
//! how they ended), transactions, retries, errors, slow queries. Counters are atomics in fixed
//! arrays indexed by enums, bumped on the request path without locks or allocation;
//! [`super::health`] and [`super::render`] read them.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::error::{Classify, ErrorKind};

/// The `query_type`s `query::classify` gives; anything else is counted as `utility`.
pub const QUERY_TYPES: [&str; 18] = [
    "select", "insert", "update", "delete", "merge", "explain", "show", "set", "copy", "call", "do",
    "transaction", "vacuum", "truncate", "lock", "grant", "ddl", "utility",
];

fn query_type_index(query_type: &str) -> usize {
    QUERY_TYPES.iter().position(|t| *t == query_type).unwrap_or(QUERY_TYPES.len() - 1)
}

/// Who answered a statement (the `served_by` label: one label value for all replicas, so the
/// label set stays bounded; per-replica detail is in the pool series).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    Primary,
    Replica,
    Cache,
    /// It failed before a server was chosen.
    None,
}

impl Served {
    pub const ALL: [Served; 4] = [Served::Primary, Served::Replica, Served::Cache, Served::None];

    pub fn label(self) -> &'static str {
        match self {
            Served::Primary => "primary",
            Served::Replica => "replica",
            Served::Cache => "cache",
            Served::None => "none",
        }
    }

    /// From `/query`'s `served_by` (`primary`, `replica-N`, `cache`).
    pub fn from_served_by(served_by: &str) -> Served {
        match served_by {
            "primary" => Served::Primary,
            "cache" => Served::Cache,
            s if s.starts_with("replica") => Served::Replica,
            _ => Served::None,
        }
    }
}

/// How a statement or transaction ended, by what the caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The request's fault (bad SQL, a constraint, a conflict ...).
    Error,
    Timeout,
    /// The database could not take it (down, pool exhausted).
    Unavailable,
    /// A write or COMMIT whose answer was lost.
    OutcomeUnknown,
    /// The server or dbagent failed.
    Failure,
}

impl Outcome {
    pub const ALL: [Outcome; 6] =
        [Outcome::Ok, Outcome::Error, Outcome::Timeout, Outcome::Unavailable, Outcome::OutcomeUnknown, Outcome::Failure];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Unavailable => "unavailable",
            Outcome::OutcomeUnknown => "outcome_unknown",
            Outcome::Failure => "failure",
        }
    }

    pub fn of_kind(kind: ErrorKind) -> Outcome {
        match kind {
            ErrorKind::Timeout => Outcome::Timeout,
            ErrorKind::Unavailable => Outcome::Unavailable,
            ErrorKind::OutcomeUnknown => Outcome::OutcomeUnknown,
            ErrorKind::DatabaseFailure | ErrorKind::Internal => Outcome::Failure,
            ErrorKind::BadRequest
            | ErrorKind::Unauthenticated
            | ErrorKind::RateLimited
            | ErrorKind::PermissionDenied
            | ErrorKind::NotFound
            | ErrorKind::Conflict
            | ErrorKind::TooLarge
            | ErrorKind::Unprocessable => Outcome::Error,
        }
    }

    pub fn of<T, E: Classify>(result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Ok,
            Err(err) => Outcome::of_kind(err.kind()),
        }
    }
}

const SERVED: usize = Served::ALL.len();
const OUTCOMES: usize = Outcome::ALL.len();

/// Process-wide counters of one agent (held in an `Arc`, never a global).
#[derive(Debug)]
pub struct Stats {
    queries_executed: AtomicU64,
    transactions_executed: AtomicU64,
    transaction_retries: AtomicU64,
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    slow_queries: AtomicU64,
    errors: AtomicU64,
    /// `[query_type][served][outcome]`.
    statements: Vec<AtomicU64>,
    /// `[outcome]`.
    transactions: [AtomicU64; OUTCOMES],
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            queries_executed: AtomicU64::default(),
            transactions_executed: AtomicU64::default(),
            transaction_retries: AtomicU64::default(),
            cache_hits: AtomicU64::default(),
            cache_misses: AtomicU64::default(),
            slow_queries: AtomicU64::default(),
            errors: AtomicU64::default(),
            statements: (0..QUERY_TYPES.len() * SERVED * OUTCOMES).map(|_| AtomicU64::default()).collect(),
            transactions: Default::default(),
        }
    }
}

/// A snapshot, in seed 000's `statistics` shape plus retries.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
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

    /// The same statement by type, server and outcome (`dbagent_statements_total`).
    pub fn record_statement(&self, query_type: &str, served: Served, outcome: Outcome) {
        let i = (query_type_index(query_type) * SERVED + served as usize) * OUTCOMES + outcome as usize;
        self.statements[i].fetch_add(1, Ordering::Relaxed);
    }

    /// One `/transaction` finished after `retries` re-runs.
    pub fn record_transaction(&self, outcome: Outcome, retries: u32) {
        self.transactions_executed.fetch_add(1, Ordering::Relaxed);
        self.transaction_retries.fetch_add(u64::from(retries), Ordering::Relaxed);
        self.transactions[outcome as usize].fetch_add(1, Ordering::Relaxed);
        if outcome != Outcome::Ok {
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

    /// Every non-zero `(query_type, served, outcome, count)`.
    pub fn statements(&self) -> impl Iterator<Item = (&'static str, Served, Outcome, u64)> + '_ {
        self.statements.iter().enumerate().filter_map(|(i, c)| {
            let n = c.load(Ordering::Relaxed);
            (n > 0).then(|| {
                let (rest, o) = (i / OUTCOMES, i % OUTCOMES);
                let (t, s) = (rest / SERVED, rest % SERVED);
                (QUERY_TYPES[t], Served::ALL[s], Outcome::ALL[o], n)
            })
        })
    }

    /// Transactions by outcome.
    pub fn transactions(&self) -> impl Iterator<Item = (Outcome, u64)> + '_ {
        Outcome::ALL.iter().map(|o| (*o, self.transactions[*o as usize].load(Ordering::Relaxed)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_counted_under_their_labels() {
        let stats = Stats::default();
        stats.record_statement("select", Served::Replica, Outcome::Ok);
        stats.record_statement("select", Served::Replica, Outcome::Ok);
        stats.record_statement("something new", Served::Primary, Outcome::Timeout);
        let all: Vec<_> = stats.statements().collect();
        assert_eq!(all, vec![("select", Served::Replica, Outcome::Ok, 2), ("utility", Served::Primary, Outcome::Timeout, 1)]);
    }
}
