//! `postgresql.connection_pool:` — pool sizing, connection hygiene and multiplexing.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Error, invalid};

/// Pool sizing and connection hygiene (per pool: the primary and each replica).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionPool {
    /// Connections kept open even when idle. Default 10.
    pub min_size: u32,
    /// Upper bound on open connections. Default 50.
    pub max_size: u32,
    /// Seconds to wait for a free connection before answering 503 `pool_exhausted`. Default 30.
    pub timeout: f64,
    /// Seconds after which a connection is closed and replaced (max lifetime). Default 3600.
    pub recycle: u64,
    /// Seconds an idle connection above `min_size` is kept. Default 600.
    pub idle_timeout: u64,
    /// Check a connection that has been idle for over a second before handing it out. Default true.
    pub pre_ping: bool,
    /// Connections on which concurrent short autocommit reads are pipelined together
    /// (multiplexing), taken from this pool while reads need them. 0 turns it off. Default 4.
    pub multiplex_connections: u32,
    /// Statements queued on each shared connection before another one is shared; a shared
    /// connection takes at most twice as many. Lower it when the server has cores to spare
    /// and latency matters more than CPU. Default 16.
    pub multiplex_depth: u32,
    /// Milliseconds: a read whose recent runs took longer than this never shares a connection,
    /// and a shared connection whose oldest statement has waited this long takes no more.
    /// Default 10.
    pub multiplex_max_ms: f64,
}

impl Default for ConnectionPool {
    fn default() -> Self {
        ConnectionPool {
            min_size: 10,
            max_size: 50,
            timeout: 30.0,
            recycle: 3600,
            idle_timeout: 600,
            pre_ping: true,
            multiplex_connections: 4,
            multiplex_depth: 16,
            multiplex_max_ms: 10.0,
        }
    }
}

impl ConnectionPool {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        const KEY: &str = "postgresql.connection_pool";
        if self.max_size == 0 {
            return invalid(&format!("{KEY}.max_size"), "must be at least 1");
        }
        if self.min_size > self.max_size {
            return invalid(&format!("{KEY}.min_size"), format!("{} is larger than max_size ({})", self.min_size, self.max_size));
        }
        if !(self.timeout > 0.0 && self.timeout.is_finite()) {
            return invalid(&format!("{KEY}.timeout"), "must be a positive number of seconds");
        }
        if self.multiplex_depth == 0 {
            return invalid(&format!("{KEY}.multiplex_depth"), "must be at least 1");
        }
        if !(self.multiplex_max_ms > 0.0 && self.multiplex_max_ms.is_finite()) {
            return invalid(&format!("{KEY}.multiplex_max_ms"), "must be a positive number of milliseconds");
        }
        Ok(())
    }
}
