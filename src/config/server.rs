//! `server:` — the HTTP listener.

use serde::{Deserialize, Serialize};

/// The HTTP listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Address to bind. Default `127.0.0.1`.
    pub bind: String,
    /// Port. Default `8016`; `0` picks a free port.
    pub port: u16,
}

impl Default for Server {
    fn default() -> Self {
        Server { bind: "127.0.0.1".into(), port: 8016 }
    }
}
