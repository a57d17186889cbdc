//! `logging:` — log output.

use serde::{Deserialize, Serialize};

/// Log output.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logging {
    /// `pretty` (default) or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `dbagent=debug`. `RUST_LOG` overrides. Default `info`.
    pub level: String,
}

impl Default for Logging {
    fn default() -> Self {
        Logging { format: LogFormat::Pretty, level: "info".into() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}
