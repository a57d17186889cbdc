//! The configuration: its typed shape, defaults and validation.
//!
//! Sources, later ones winning: built-in defaults, `dbagent.yaml` (or `--config` /
//! `CONFIG_PATH`, or seed 000's `config.yaml`), `DBAGENT_<SECTION>__<KEY>` environment
//! variables, then the seed-style variables (`DATABASE_URL`, `DB_POOL_SIZE`, ...; see
//! [`seed`]). The environment is the process's, completed by `./.env`. `${VAR}` and `${VAR:-default}` are expanded
//! inside file values. Unknown keys and invalid values stop start-up with the key's path.
//! This module is the only one that reads environment variables (see [`load`]).
//!
//! One file per section of the file (`server.rs` is `server:`, ...), each with its defaults and
//! its own `validate`; this file holds the whole [`Config`] and the checks between sections.

mod alerts;
mod backup;
mod caching;
mod connection_pool;
mod error;
mod instance;
mod load;
mod logging;
mod maintenance;
mod masking;
mod migrations;
mod monitoring;
mod optimization;
mod postgresql;
mod replication;
mod secret;
mod security;
mod seed;
mod server;
mod transactions;

pub use alerts::{Alerts, Channel, ChannelKind, CustomRule, Delivery, Level, RuleOverride, Smtp, SmtpSecurity, parse_seconds};
pub use backup::{Backup, Compression, Remote as BackupRemote, WalStream, parse_bytes};
pub use caching::Caching;
pub use connection_pool::ConnectionPool;
pub use error::Error;
pub use instance::Instance;
pub use load::{Environment, load};
pub use logging::{LogFormat, Logging};
pub use maintenance::{Job, JobAction, Maintenance, Window};
pub use masking::{MaskRule, Masking, Strategy as MaskStrategy};
pub use migrations::Migrations;
pub use monitoring::{Monitoring, Prometheus};
pub use optimization::Optimization;
pub use postgresql::{Postgresql, Replica, SslMode};
pub use replication::{FailoverMode, Replication};
pub use secret::Secret;
pub use security::{Audit, KeysRequired, Overflow, RoleLogin, Security, is_loopback, parse_duration};
pub use server::{Server, ServerTls};
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
    pub security: Security,
    pub alerts: Alerts,
    pub maintenance: Maintenance,
    /// Where this configuration came from (not a key of the file).
    #[serde(skip)]
    pub provenance: Provenance,
}

/// Which file was read and what seed-compatibility rules applied, for the start-up log
/// (logging starts after the configuration is loaded, so [`load`] cannot log them itself).
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    /// The configuration file read, if any.
    pub file: Option<std::path::PathBuf>,
    pub info: Vec<String>,
    /// Deprecated names used, and choices the user may not expect.
    pub warnings: Vec<String>,
}

impl Provenance {
    /// Logs where the configuration came from, then each note.
    pub fn log(&self) {
        match &self.file {
            Some(file) => tracing::info!(file = %file.display(), "configuration read"),
            None => tracing::info!("no configuration file (./dbagent.yaml, ./config.yaml): defaults and environment"),
        }
        for note in &self.info {
            tracing::info!("configuration: {note}");
        }
        for note in &self.warnings {
            tracing::warn!("configuration: {note}");
        }
    }
}

impl Config {
    /// Checks what types cannot: ranges and relations between values. The first problem found
    /// is reported, with its key's path.
    pub fn validate(&self) -> Result<(), Error> {
        self.server.validate()?;
        self.postgresql.validate()?;
        self.transactions.validate()?;
        self.caching.validate()?;
        self.backup.validate()?;
        self.migrations.validate()?;
        self.replication.validate()?;
        self.security.validate(&self.server.bind)?;
        self.monitoring.validate()?;
        let series: Vec<&str> = crate::monitor::history::SERIES.iter().map(|s| s.name).collect();
        self.alerts.validate(&crate::alerts::rules::names(), &series)?;
        self.maintenance.validate()?;
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
