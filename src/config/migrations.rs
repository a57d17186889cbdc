//! `migrations:` — schema migrations and seeds.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Error, invalid};

/// Schema migrations (`dbagent migrate`, `POST /migrate`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Migrations {
    /// Where the migration files are. Default `./migrations`.
    pub directory: PathBuf,
    /// Apply pending migrations when `serve` starts; `/health/ready` answers 503 until done.
    /// Default false.
    pub auto_migrate: bool,
    /// `up` first takes a full backup (see `backup:`; pinned until released) and records its
    /// id with the run. Default true.
    pub backup_before_migrate: bool,
    /// Seconds to wait for another runner's migration lock. Default 60.
    pub lock_timeout: f64,
    /// PostgreSQL `lock_timeout` for each migration's statements, seconds (0: none). Default 10.
    pub statement_lock_timeout: f64,
    /// PostgreSQL `statement_timeout` for each migration's statements, seconds (0: none).
    /// Default 0.
    pub statement_timeout: f64,
    /// Where `dbagent seed run` finds `<env>/*.sql`. Default `./seeds`.
    pub seeds_directory: PathBuf,
}

impl Default for Migrations {
    fn default() -> Self {
        Migrations {
            directory: PathBuf::from("./migrations"),
            auto_migrate: false,
            backup_before_migrate: true,
            lock_timeout: 60.0,
            statement_lock_timeout: 10.0,
            statement_timeout: 0.0,
            seeds_directory: PathBuf::from("./seeds"),
        }
    }
}

impl Migrations {
    pub(super) fn validate(&self) -> Result<(), Error> {
        for (key, value) in [
            ("migrations.lock_timeout", self.lock_timeout),
            ("migrations.statement_lock_timeout", self.statement_lock_timeout),
            ("migrations.statement_timeout", self.statement_timeout),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return invalid(key, "must be zero or a positive number of seconds");
            }
        }
        Ok(())
    }
}
