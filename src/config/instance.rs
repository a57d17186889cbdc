//! `instance:` — the managed PostgreSQL, used when no server is configured.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The managed instance, used when no server is configured.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Instance {
    /// Data directory. Default `./.dbagent/pgdata`.
    pub data_dir: PathBuf,
    /// Port; default: a free one.
    pub port: Option<u16>,
    /// Where the PostgreSQL server binaries are (`PG_BIN`). Default: searched.
    pub bin_dir: Option<PathBuf>,
    /// Database dbagent serves on the instance. Default `postgres`.
    pub database: String,
    /// Serve TLS (`ssl = on`) with a CA and a server certificate generated into the data
    /// directory (`dbagent-ca.crt` is the CA clients trust); dbagent's own connections trust
    /// that CA. Default false.
    pub ssl: bool,
}

impl Default for Instance {
    fn default() -> Self {
        Instance { data_dir: PathBuf::from("./.dbagent/pgdata"), port: None, bin_dir: None, database: "postgres".into(), ssl: false }
    }
}
