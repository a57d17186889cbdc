//! The configuration: its typed shape, defaults and validation.
//!
//! Sources, later ones winning: built-in defaults, `dbagent.yaml` (or `--config` /
//! `CONFIG_PATH`), `DBAGENT_<SECTION>__<KEY>` environment variables, then the seed-style
//! variables (`DATABASE_URL`, `DB_POOL_SIZE`, ...). `${VAR}` and `${VAR:-default}` are expanded
//! inside file values. Unknown keys and invalid values stop start-up with the key's path.
//! This module is the only one that reads environment variables (see [`load`]).
//!
//! One file per section of the file (`server.rs` is `server:`, ...), each with its defaults and
//! its own `validate`; this file holds the whole [`Config`] and the checks between sections.

mod backup;
mod caching;
mod connection_pool;
mod error;
mod instance;
mod load;
mod logging;
mod migrations;
mod monitoring;
mod optimization;
mod postgresql;
mod replication;
mod secret;
mod server;
mod transactions;

pub use backup::{Backup, Compression};
pub use caching::Caching;
pub use connection_pool::ConnectionPool;
pub use error::Error;
pub use instance::Instance;
pub use load::{Environment, load};
pub use logging::{LogFormat, Logging};
pub use migrations::Migrations;
pub use monitoring::{Monitoring, Prometheus};
pub use optimization::Optimization;
pub use postgresql::{Postgresql, Replica, SslMode};
pub use replication::{FailoverMode, Replication};
pub use secret::Secret;
pub use server::Server;
pub use transactions::{Backoff, IsolationLevel, Transactions};

use serde::{Deserialize, Serialize};

/// The whole configuration. Every field has a default, so an empty file is valid.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: Server,
    pub postgresql: Postgresql,
    pub instance: Instance,
    pub replication: Replication,
    pub caching: Caching,
    pub migrations: Migrations,
    pub backup: Backup,
    pub transactions: Transactions,
    pub optimization: Optimization,
    pub logging: Logging,
    pub monitoring: Monitoring,
}

impl Config {
    /// Checks what types cannot: ranges and relations between values. The first problem found
    /// is reported, with its key's path.
    pub fn validate(&self) -> Result<(), Error> {
        self.postgresql.validate()?;
        self.transactions.validate()?;
        self.caching.validate()?;
        self.backup.validate()?;
        self.migrations.validate()?;
        self.replication.validate()?;
        self.monitoring.validate()?;
        if self.replication.replicas > 0 && self.postgresql.is_configured() {
            return invalid(
                "replication.replicas",
                "only a managed instance gets replicas from dbagent; list a configured server's replicas in postgresql.read_replicas",
            );
        }
        Ok(())
    }
}

/// The error for an invalid value at `key` (its full path, e.g. `backup.jobs`).
fn invalid(key: &str, message: impl Into<String>) -> Result<(), Error> {
    Err(Error::Invalid { key: key.into(), message: message.into() })
}
