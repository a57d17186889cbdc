//! `server:` — the HTTP listener.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Error, invalid};

/// The HTTP listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Address to bind. Default `127.0.0.1`.
    pub bind: String,
    /// Port. Default `8016`; `0` picks a free port.
    pub port: u16,
    /// Seconds a shutdown (SIGTERM, Ctrl-C) waits for the requests in flight to finish before
    /// it stops anyway. Default 30.
    pub shutdown_timeout: f64,
}

impl Default for Server {
    fn default() -> Self {
        Server { bind: "127.0.0.1".into(), port: 8016, shutdown_timeout: 30.0 }
    }
}

impl Server {
    pub(super) fn validate(&self) -> Result<(), Error> {
        if !(self.shutdown_timeout.is_finite() && self.shutdown_timeout > 0.0 && self.shutdown_timeout <= 86_400.0) {
            return invalid("server.shutdown_timeout", "must be more than 0 and at most 86400 seconds");
        }
        Ok(())
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.shutdown_timeout)
    }
}
