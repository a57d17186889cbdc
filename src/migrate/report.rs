//! What the migration commands answer; every type here becomes JSON in the HTTP API.

use std::fmt;

use serde::Serialize;

use super::AppliedMigration;

/// Which way a migration ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Up,
    Down,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Up => "up",
            Direction::Down => "down",
        })
    }
}

/// One migration applied or reverted by a run (or that a dry run would run).
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Applied {
    pub version: i64,
    pub name: String,
    pub direction: Direction,
    /// Time spent in the migration's own SQL; zero in a dry run.
    pub execution_time_ms: f64,
    /// Dry run only: the exact SQL of the file that would run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
}

/// The outcome of `up` or `down`.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Report {
    /// In the order they ran.
    pub applied: Vec<Applied>,
    /// The newest applied version after the run (`None`: nothing applied).
    pub version: Option<i64>,
    /// Wall time of the whole run, lock wait included.
    pub execution_time_ms: f64,
    pub dry_run: bool,
    /// The backup taken before this run, recorded with its migrations.
    pub backup_id: Option<String>,
    /// Lint warnings for the migrations run (or, in a dry run, to be run): statements that
    /// take heavy locks or rewrite big tables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<FileWarning>,
}

/// A lint warning and the migration file it is about.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct FileWarning {
    pub version: i64,
    pub file: std::path::PathBuf,
    #[serde(flatten)]
    pub warning: super::lint::Warning,
}

/// A migration file not applied yet.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct PendingMigration {
    pub version: i64,
    pub name: String,
    pub reversible: bool,
    /// Runs statement by statement outside a transaction.
    pub no_transaction: bool,
}

/// Where the database stands against the files.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Status {
    /// The newest applied version (`None`: nothing applied).
    pub current: Option<i64>,
    /// Applied migrations, by version.
    pub applied: Vec<AppliedMigration>,
    /// Files not applied yet, by version.
    pub pending: Vec<PendingMigration>,
    /// Applied versions whose file changed since (checksum differs): `up` refuses them.
    pub drifted: Vec<i64>,
    /// Applied versions whose files are gone.
    pub missing: Vec<i64>,
    /// Pending versions older than the newest applied one: gaps in the applied sequence.
    pub out_of_order: Vec<i64>,
}
