//! `caching:` — the query result cache.

use serde::{Deserialize, Serialize};

use super::{Error, Secret, invalid};

/// The query result cache (`use_cache: true` on `/query`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Caching {
    /// Default true (and `optimization.enable_query_cache` must be on too).
    pub enable: bool,
    /// `redis://host:port/db`: share the cache (and invalidations) between agents. Default:
    /// none, an in-process cache.
    pub redis_url: Option<Secret>,
    /// Seconds an entry lives at most. Default 300.
    pub query_cache_ttl: u64,
    /// In-process cache: most entries kept. Default 100000.
    pub max_entries: u64,
    /// In-process cache: most bytes of results kept. Default 256 MiB.
    pub max_bytes: u64,
    /// Results larger than this are not cached. Default 1 MiB.
    pub max_entry_bytes: u64,
}

impl Default for Caching {
    fn default() -> Self {
        Caching {
            enable: true,
            redis_url: None,
            query_cache_ttl: 300,
            max_entries: 100_000,
            max_bytes: 256 * 1024 * 1024,
            max_entry_bytes: 1024 * 1024,
        }
    }
}

impl Caching {
    pub(super) fn validate(&self) -> Result<(), Error> {
        if self.query_cache_ttl == 0 {
            return invalid("caching.query_cache_ttl", "must be at least 1 second");
        }
        if self.max_entries == 0 || self.max_bytes == 0 {
            return invalid("caching.max_entries", "max_entries and max_bytes must be at least 1");
        }
        Ok(())
    }
}
