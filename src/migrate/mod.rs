//! Versioned schema migrations: SQL files on disk applied to a database exactly once, in order,
//! with their history and an event log kept in dbagent's own `dbagent` schema.
//!
//! Code map:
//! - `source.rs`: the migration files (names, parsing, checksums, the no-transaction marker) and
//!   [`new_migration`].
//! - `plan.rs`: pure decisions — what `up` or `down` would run, drift, out-of-order files.
//! - `history.rs`: the `dbagent` schema (created and upgraded here), the applied list, events.
//! - `lock.rs`: the session-level advisory lock that serialises runners.
//! - `session.rs`: one run's connections (the lock holder and the worker).
//! - `run.rs`: executing one migration script, in a transaction or statement by statement.
//! - `migrator.rs`: [`Migrator`], tying it together (up, down, status, repair, baseline).
//! - `report.rs`: what the commands return (all `Serialize`, they become JSON).
//! - `service.rs`: what the CLI and the API call (configured settings, backup before `up`,
//!   targets, auto-migrate state); `seed.rs`: seed scripts per environment.
//!
//! Invariants kept here:
//! - every write (migrations, history, the `dbagent` schema itself) happens while this process
//!   holds the advisory lock [`LOCK_KEY`], taken on a connection of its own and released on every
//!   path (explicit unlock; closing the connection releases it too, so a cancelled run or a
//!   panic cannot leave it held). The applied list is read only after the lock is taken, so two
//!   runners started together apply each migration once;
//! - the lock connection never sits in a transaction while migrations run, so
//!   `CREATE INDEX CONCURRENTLY` (which waits for older transactions) cannot wait on us;
//! - a migration, its history row and its event commit together or not at all; a failure is
//!   recorded as a `fail` event outside the rolled-back transaction;
//! - `status`, `history` and dry runs write nothing, not even the `dbagent` schema.

mod error;
mod history;
mod lock;
mod migrator;
mod plan;
mod report;
mod run;
mod seed;
mod service;
mod session;
mod source;

use std::path::PathBuf;
use std::time::Duration;

pub use error::{Error, PgError};
pub use history::{AppliedMigration, Event, EventKind};
pub use lock::LOCK_KEY;
pub use migrator::{DownOptions, Migrator, UpOptions};
pub use plan::{DownTarget, parse_down_target};
pub use report::{Applied, Direction, PendingMigration, Report, Status};
pub use service::{AutoMigrate, AutoState, Service, Up, UpTarget, database};
pub use source::{Migration, Script, new_migration};

/// How migrations are found and run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The directory holding the migration files (config `migrations.directory`, default
    /// `./migrations`).
    pub dir: PathBuf,
    /// How long a run waits for another runner to release the migration lock before failing
    /// with [`Error::LockTimeout`]. Default 60 s.
    pub lock_timeout: Duration,
    /// PostgreSQL's `lock_timeout` while a migration runs: a statement waiting longer than this
    /// for a table lock fails instead of queueing every other query behind it. Default 10 s;
    /// zero disables it.
    pub statement_lock_timeout: Duration,
    /// PostgreSQL's `statement_timeout` while a migration runs. Default zero (no limit), since a
    /// migration may legitimately rewrite a large table.
    pub statement_timeout: Duration,
}

impl Settings {
    /// Settings for `dir` with the documented defaults.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Settings {
            dir: dir.into(),
            lock_timeout: Duration::from_secs(60),
            statement_lock_timeout: Duration::from_secs(10),
            statement_timeout: Duration::ZERO,
        }
    }
}
