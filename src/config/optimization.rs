//! `optimization:` — query handling knobs.

use serde::{Deserialize, Serialize};

/// Query handling knobs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Optimization {
    /// Accepted for the seeds' shape; the query cache has its own settings. Default true.
    pub enable_query_cache: bool,
    /// Keep prepared statements per connection. Default true.
    pub prepared_statements: bool,
    /// Log statements slower than the threshold. Default true.
    pub slow_query_log: bool,
    /// Milliseconds. Default 1000.
    pub slow_query_threshold_ms: f64,
}

impl Default for Optimization {
    fn default() -> Self {
        Optimization { enable_query_cache: true, prepared_statements: true, slow_query_log: true, slow_query_threshold_ms: 1000.0 }
    }
}
