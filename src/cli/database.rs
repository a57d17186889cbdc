//! What a command needs of the database, and how it gets it.
//!
//! A health check that creates a database server is a surprise, so:
//! * read-only commands (`health`, `schema`, `migrate status|history|current`, `keys list`,
//!   `audit list|export`) use a database
//!   that is configured, or a managed instance that is already running, and otherwise say so
//!   and how to start one (exit code 3) — they never run `initdb` or start a server;
//!   `backup list|status` read the backup location only and need no database at all;
//! * every other command, with no database configured, starts the managed instance (creating
//!   it first if needed), says so on stderr, and stops it again when it finishes — unless it
//!   was already running, or `--keep-running` is given.

use super::{BackupCommand, Command, Failure, MigrateCommand, exit};
use crate::config::Config;
use crate::{app, instance};

/// What a command needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// No database (it reads files only).
    Nothing,
    /// A database that is already there: configured, or a running managed instance.
    Existing,
    /// A database, started for the command when none is configured.
    Started,
}

pub fn need(command: &Command) -> Need {
    match command {
        Command::Backup(BackupCommand::List { replaced: false, .. } | BackupCommand::Status) | Command::Openapi => Need::Nothing,
        Command::Backup(BackupCommand::List { replaced: true, .. }) => Need::Existing,
        Command::Alerts(super::alerts::AlertsCommand::ExportRules { .. }) => Need::Nothing,
        Command::Alerts(
            super::alerts::AlertsCommand::List { .. } | super::alerts::AlertsCommand::Show { .. } | super::alerts::AlertsCommand::Silences { .. } | super::alerts::AlertsCommand::Rules,
        ) => Need::Existing,
        Command::Health | Command::Schema(_) => Need::Existing,
        Command::Migrate(MigrateCommand::Status | MigrateCommand::History { .. } | MigrateCommand::Current) => Need::Existing,
        Command::Keys(super::security::KeysCommand::List) | Command::Audit(_) => Need::Existing,
        Command::Roles(super::access::RolesCommand::List { .. }) | Command::Security(_) => Need::Existing,
        // Sessions and locks of a server that is not running are none at all.
        Command::Connections(_) | Command::Locks => Need::Existing,
        Command::Maintenance(super::ops::MaintenanceCommand::Progress | super::ops::MaintenanceCommand::Report | super::ops::MaintenanceCommand::History { .. }) => Need::Existing,
        _ => Need::Started,
    }
}

/// The managed primary's status (following a failover's fence to its successor).
fn managed_status(config: &Config) -> Result<instance::Status, Failure> {
    let instance_failure = |e: instance::Error| Failure { code: exit::INSTANCE, error: e.into() };
    let settings = app::instance_settings(config).map_err(|error| Failure { code: exit::USAGE, error })?;
    let settings = crate::replication::topology::current_primary(&settings).map_err(instance_failure)?;
    instance::status(&settings).map_err(instance_failure)
}

/// For a read-only command: fine when a database is configured or the managed instance runs;
/// otherwise the answer says how to get one (exit code 3).
pub fn require_existing(config: &Config) -> Result<(), Failure> {
    if config.postgresql.is_configured() {
        return Ok(());
    }
    let status = managed_status(config)?;
    if status.running {
        return Ok(());
    }
    let what = if status.initialized { "is not running" } else { "does not exist" };
    Err(Failure {
        code: exit::UNAVAILABLE,
        error: anyhow::anyhow!(
            "no database is configured and the managed PostgreSQL instance in {} {what}; this command does not start one.\n\
             Start it with `dbagent instance start` (or `dbagent serve`), or point dbagent at a server with DATABASE_URL or postgresql.url in dbagent.yaml",
            status.data_dir.display()
        ),
    })
}

/// For a command that needs a database: when it will start the managed instance, says so on
/// stderr. Returns whether the command should leave the instance running after.
pub fn announce_start(config: &Config, keep_running: bool) -> Result<(), Failure> {
    if config.postgresql.is_configured() {
        return Ok(());
    }
    let status = managed_status(config)?;
    if status.running {
        return Ok(());
    }
    let verb = if status.initialized { "starting" } else { "creating and starting" };
    let after = if keep_running { "left running after (--keep-running)" } else { "stopped again when this command ends (--keep-running leaves it up)" };
    eprintln!("no database configured: {verb} the managed PostgreSQL instance in {}; {after}", status.data_dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn need_of(args: &[&str]) -> Need {
        let cli = super::super::Cli::try_parse_from(std::iter::once("dbagent").chain(args.iter().copied())).expect("parses");
        need(&cli.command)
    }

    #[test]
    fn read_only_commands_never_start_a_server() {
        for args in [&["health"][..], &["schema"], &["schema", "film"], &["schema", "erd"], &["migrate", "status"], &["migrate", "history"], &["migrate", "current"]] {
            assert_eq!(need_of(args), Need::Existing, "{args:?}");
        }
        assert_eq!(need_of(&["backup", "list"]), Need::Nothing);
        assert_eq!(need_of(&["backup", "status"]), Need::Nothing);
        assert_eq!(need_of(&["openapi"]), Need::Nothing);
        for args in [&["migrate", "up"][..], &["query", "SELECT 1"], &["seed", "generate", "--table", "t", "--rows", "1"], &["backup", "create"]] {
            assert_eq!(need_of(args), Need::Started, "{args:?}");
        }
    }
}
