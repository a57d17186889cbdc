//! The command line: a thin clap layer over the same library functions the API calls.
//!
//! Exit codes:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | the request failed (SQL error, constraint, conflict, bad parameters, a damaged backup ...) |
//! | 2 | usage or configuration error |
//! | 3 | the database is unavailable (unreachable, timed out, pool exhausted), or dbagent itself failed |
//! | 4 | not found (e.g. `schema <table>` names no table) |
//! | 5 | the managed instance could not be handled (binaries missing, start failed) |
//!
//! A library error's [`ErrorKind`] decides its code ([`exit::of`]): `NotFound` is 4;
//! `Unavailable`, `Timeout`, `OutcomeUnknown`, `DatabaseFailure` and `Internal` are 3; every
//! other kind is 1.

mod access;
mod alerts;
mod commands;
mod database;
mod ops;
mod output;
mod security;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{self, Environment};
use crate::error::ErrorKind;

/// dbagent — a PostgreSQL management agent: pooling, query API, transactions, schema.
#[derive(Debug, Parser)]
#[command(name = "dbagent", version, about)]
pub struct Cli {
    /// Configuration file (default: $CONFIG_PATH, then ./dbagent.yaml if present).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// When a command had to start the managed PostgreSQL instance, leave it running after.
    #[arg(long, global = true)]
    pub keep_running: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API (starts a managed PostgreSQL when none is configured).
    Serve(ServeArgs),
    /// Run one SQL statement.
    Query(QueryArgs),
    /// Run the statements of a file as one transaction (retried on conflicts).
    Transaction(TransactionArgs),
    /// Check the database and the pools.
    Health,
    /// List tables, describe one, draw the ERD or write the data dictionary.
    Schema(SchemaArgs),
    /// Manage the local PostgreSQL instance.
    #[command(subcommand)]
    Instance(InstanceCommand),
    /// Schema migrations (files in `migrations.directory`).
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Seed data: run `seeds/<env>/*.sql`, or generate rows for a table.
    #[command(subcommand)]
    Seed(SeedCommand),
    /// The query result cache.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Backups: create, list, verify, prune, delete, rebuild-catalog.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Restore a backup (into a new database by default).
    Restore(RestoreArgs),
    /// EXPLAIN a statement (ANALYZE, rolled back) and suggest fixes.
    Optimize(OptimizeArgs),
    /// Index advice and upkeep: suggest, analyze, unused, duplicates, invalid, bloat, rebuild,
    /// create, drop, apply.
    #[command(subcommand)]
    Indexes(IndexesCommand),
    /// API keys: create, list, revoke, rotate, roles-sql.
    #[command(subcommand)]
    Keys(security::KeysCommand),
    /// The audit log: list, export.
    #[command(subcommand)]
    Audit(security::AuditCommand),
    /// The server's roles: list, create, alter, drop, grant, revoke.
    #[command(subcommand)]
    Roles(access::RolesCommand),
    /// The compliance report: check.
    #[command(subcommand)]
    Security(access::SecurityCommand),
    /// Print the API's OpenAPI 3.1 document (what `GET /openapi.json` answers), for client
    /// generators; needs no database.
    Openapi,
    /// Alerts: list, show, ack, silence, silences, unsilence, rules, test, export-rules.
    #[command(subcommand)]
    Alerts(alerts::AlertsCommand),
    /// Database statistics: database, tables, indexes, slow-queries, activity, system.
    #[command(subcommand)]
    Stats(stats::StatsCommand),
    /// Sessions of the server: list, stats, cancel, kill, close-idle.
    #[command(subcommand)]
    Connections(ops::ConnectionsCommand),
    /// The blocking tree: who waits for whom, head blockers first.
    Locks,
    /// VACUUM, ANALYZE, their progress, and the maintenance report.
    #[command(subcommand)]
    Maintenance(ops::MaintenanceCommand),
    /// postgresql.conf and pool advice from the host and the workload; --set applies.
    Tune(ops::TuneArgs),
    /// The WAL archive, as the managed server's archive_command and restore_command call it
    /// (`backup.pitr`); not meant to be run by hand.
    #[command(subcommand)]
    Wal(WalCommand),
}

#[derive(Debug, Subcommand)]
pub enum WalCommand {
    /// archive_command: store the WAL file at PATH (%p) as NAME (%f).
    Push {
        #[arg(long)]
        archive: PathBuf,
        path: PathBuf,
        name: String,
    },
    /// restore_command: write the archived NAME (%f) to PATH (%p); exit 1 when it is not
    /// archived.
    Fetch {
        #[arg(long)]
        archive: PathBuf,
        name: String,
        path: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup now (shows bytes and rate as it goes).
    Create {
        #[arg(long)]
        name: Option<String>,
        /// full, schema_only, data_only, or base (pg_basebackup of the whole cluster, for
        /// point-in-time recovery; needs backup.pitr).
        #[arg(long, default_value = "full")]
        kind: String,
        /// custom or directory (parallel jobs).
        #[arg(long, default_value = "custom")]
        format: String,
        /// Never pruned.
        #[arg(long)]
        keep: bool,
        /// Only these tables (repeatable).
        #[arg(long = "table")]
        tables: Vec<String>,
    },
    /// The backups in the location, newest first; --replaced: the databases restores
    /// replaced (kept for backup.keep_replaced_hours, `dbagent restore undo ID` swaps one back);
    /// --remote: the backups in the remote store (backup.remote), and which are also local.
    List {
        #[arg(long, conflicts_with = "remote")]
        replaced: bool,
        #[arg(long)]
        remote: bool,
    },
    /// Check a backup: --level 1 checksums, 2 also a trial restore with row counts.
    Verify {
        id: String,
        #[arg(long, default_value_t = 1)]
        level: u8,
    },
    /// Apply retention (retention_days, keep_last); --dry-run shows what would go.
    Prune {
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete one backup (--force for a kept or pinned one).
    Delete {
        id: String,
        #[arg(long)]
        force: bool,
    },
    /// Rebuild dbagent.backups from the manifests on disk; --remote: also from those in the
    /// remote store (a lost machine's catalogue, from the bucket alone).
    RebuildCatalog {
        #[arg(long)]
        remote: bool,
    },
    /// Point-in-time recovery: the WAL archive, the recoverable window, any gap.
    Status,
    /// Write a backup out as plain pg_dump output (decrypted, decompressed, checked): a file
    /// `pg_restore` reads (custom format), or a directory (directory format).
    Export {
        id: String,
        /// The file (or directory) to create; never overwritten.
        #[arg(long)]
        to: std::path::PathBuf,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RestoreArgs {
    #[command(subcommand)]
    pub action: Option<RestoreCommand>,
    /// A backup id (or a path inside the backup location). With --to-time: the base backup
    /// to start from (default: the newest complete before that time).
    #[arg(required_unless_present = "to_time")]
    pub backup: Option<String>,
    /// Point-in-time recovery: build a new cluster recovered to this time (RFC 3339, e.g.
    /// 2026-11-29T16:40:00Z) from a base backup and the archived WAL, and start it.
    #[arg(long)]
    pub to_time: Option<String>,
    /// With --to-time: the new cluster's data directory (default
    /// `<instance.data_dir>-pitr-<timestamp>`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Default: a new database `<db>_restored_<timestamp>`.
    #[arg(long)]
    pub target_database: Option<String>,
    /// Replace the target: restored into a fresh database, swapped in only when complete;
    /// the replaced one is kept for backup.keep_replaced_hours (`dbagent restore undo ID`).
    #[arg(long)]
    pub drop_existing: bool,
    /// The name of the database being replaced: needed with --drop-existing when it is not
    /// the database the backup was taken from.
    #[arg(long, value_name = "DATABASE")]
    pub confirm: Option<String>,
    /// Allow replacing postgres, a template database, or the database dbagent keeps its own
    /// schema in (with a backup of another database).
    #[arg(long)]
    pub force: bool,
    /// Drop the replaced database at once instead of keeping it.
    #[arg(long)]
    pub drop_replaced: bool,
    /// Only these tables (repeatable).
    #[arg(long = "table")]
    pub tables: Vec<String>,
    #[arg(long)]
    pub jobs: Option<u32>,
}

/// `dbagent restore undo ID`.
#[derive(Debug, Subcommand)]
pub enum RestoreCommand {
    /// Swap a database a restore replaced back in (ID: its kept name, from `dbagent backup
    /// list --replaced`); the restored copy is kept as replaced in turn.
    Undo { id: String },
}

#[derive(Debug, Args)]
pub struct OptimizeArgs {
    pub sql: String,
    /// A parameter as JSON (`42`, `"text"`); bare words are taken as text.
    #[arg(short, long = "param", value_name = "JSON")]
    pub params: Vec<String>,
    /// Plain EXPLAIN: do not run the statement.
    #[arg(long)]
    pub no_analyze: bool,
    /// Run it (rolled back) even if it calls functions whose effects a rollback does not undo
    /// (pg_terminate_backend, nextval ...) or code dbagent cannot vouch for.
    #[arg(long)]
    pub allow_side_effects: bool,
}

/// `dbagent indexes <action>`: the same actions as `POST /indexes`.
#[derive(Debug, Subcommand)]
pub enum IndexesCommand {
    /// Indexes that would help the workload, validated with HypoPG when it can be loaded.
    Suggest {
        #[arg(long)]
        table: Option<String>,
        /// A query of the workload (repeatable; default: pg_stat_statements).
        #[arg(long = "query")]
        queries: Vec<String>,
        /// Estimate from statistics instead of HypoPG.
        #[arg(long)]
        no_hypopg: bool,
        /// Storage budget for the whole set of new indexes, in bytes (default 1 GiB).
        #[arg(long)]
        max_index_bytes: Option<i64>,
    },
    /// ANALYZE a table.
    Analyze {
        #[arg(long)]
        table: String,
    },
    /// Indexes never used for a scan.
    Unused {
        #[arg(long)]
        table: Option<String>,
    },
    /// Indexes another index makes redundant.
    Duplicates {
        #[arg(long)]
        table: Option<String>,
    },
    /// Indexes left invalid by a failed concurrent build.
    Invalid {
        #[arg(long)]
        table: Option<String>,
    },
    /// Indexes much larger than their contents need.
    Bloat {
        #[arg(long)]
        table: Option<String>,
    },
    /// REINDEX INDEX CONCURRENTLY.
    Rebuild {
        /// One index (REINDEX INDEX CONCURRENTLY).
        #[arg(long, required_unless_present = "table", conflicts_with = "table")]
        index: Option<String>,
        /// Every index of a table (REINDEX TABLE CONCURRENTLY).
        #[arg(long)]
        table: Option<String>,
    },
    /// CREATE INDEX CONCURRENTLY.
    Create {
        #[arg(long)]
        table: String,
        /// The columns (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        columns: Vec<String>,
        /// Default: <table>_<columns>_idx.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        unique: bool,
    },
    /// DROP INDEX CONCURRENTLY (never an index that backs a constraint).
    Drop {
        #[arg(long)]
        index: String,
        /// Refuse unless the index is on this table.
        #[arg(long)]
        table: Option<String>,
    },
    /// Run a suggested CREATE INDEX CONCURRENTLY and measure a query before and after.
    Apply {
        /// The suggested statement.
        #[arg(long)]
        sql: String,
        /// The query to measure.
        #[arg(long)]
        query: String,
    },
    /// Build a set of suggested indexes, each CREATE INDEX CONCURRENTLY; a failed or invalid
    /// build is dropped.
    ApplySet {
        /// One suggested statement (repeatable).
        #[arg(long = "sql", required = true)]
        statements: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Apply pending migrations (to head, `+N`, or a version); takes a backup first when
    /// `backup_before_migrate` is on.
    Up {
        #[arg(long, default_value = "head")]
        target: String,
        /// Print the exact SQL that would run; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply pending files older than the newest applied one.
        #[arg(long)]
        allow_out_of_order: bool,
    },
    /// Revert migrations: `-1` (default), `-N`, down to a version, or `base`.
    Down {
        #[arg(default_value = "-1", allow_hyphen_values = true)]
        target: String,
        #[arg(long)]
        dry_run: bool,
        /// Run down files that lose data (DROP TABLE, DROP COLUMN, TRUNCATE, DELETE without
        /// WHERE); without it such a revert is refused and nothing runs.
        #[arg(long)]
        confirm: bool,
    },
    /// Applied, pending, drifted and missing migrations.
    Status,
    /// The newest applied version.
    Current,
    /// The event log (apply, revert, fail, repair, baseline).
    History {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Create `<timestamp>_<name>.up.sql` and `.down.sql`.
    New {
        name: String,
        /// Only an up file (the migration cannot be reverted).
        #[arg(long)]
        irreversible: bool,
    },
    /// Accept changed files of applied migrations (all drifted ones, or one version).
    Repair {
        #[arg(long)]
        version: Option<i64>,
    },
    /// Mark an existing database as at VERSION without running anything.
    Baseline { version: i64 },
    /// Write up and down files that bring the database to the schema in --schema (loaded into
    /// a scratch database and compared catalog to catalog). Renames are not guessed.
    Autogenerate {
        name: String,
        #[arg(long, value_name = "FILE")]
        schema: PathBuf,
        /// Schemas to compare (comma-separated). Default: public.
        #[arg(long, value_delimiter = ',', default_value = "public")]
        schemas: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SeedCommand {
    /// Run `seeds/<env>/*.sql` (name order) in one transaction.
    Run {
        #[arg(long, default_value = "development")]
        env: String,
    },
    /// Generate plausible rows for a table (types, column names, CHECKs, unique and foreign
    /// keys; empty parent tables are filled first), in one transaction through COPY.
    Generate {
        /// The table (`users`, `public.users`, `"Order Items"`).
        #[arg(long)]
        table: String,
        #[arg(long)]
        rows: u64,
        /// Empty the table first (TRUNCATE ... RESTART IDENTITY; refused when other tables
        /// reference it).
        #[arg(long)]
        clear: bool,
        /// The same seed on the same starting state gives the same rows (default: a random
        /// seed, printed).
        #[arg(long)]
        seed: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Remove the watch triggers dbagent installed for cache invalidation.
    Unwatch,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to bind (overrides server.bind).
    #[arg(long)]
    pub bind: Option<String>,
    /// Port (overrides server.port; 0 picks a free one).
    #[arg(long)]
    pub port: Option<u16>,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL statement; `$1`, `$2` ... are bound from --param.
    pub sql: String,
    /// A parameter as JSON (`42`, `"text"`, `null`, `[1,2]`); bare words are taken as text.
    #[arg(short, long = "param", value_name = "JSON")]
    pub params: Vec<String>,
    /// Run inside an explicit transaction.
    #[arg(long)]
    pub transaction: bool,
}

#[derive(Debug, Args)]
pub struct TransactionArgs {
    /// A .sql file (statements separated by `;`) or a .json file with `{"queries": [...]}`.
    pub file: PathBuf,
    /// read_committed, repeatable_read or serializable.
    #[arg(long, value_parser = parse_isolation)]
    pub isolation: Option<config::IsolationLevel>,
    #[arg(long)]
    pub read_only: bool,
}

fn parse_isolation(text: &str) -> Result<config::IsolationLevel, String> {
    serde_json::from_value(serde_json::Value::String(text.replace([' ', '-'], "_").to_lowercase()))
        .map_err(|_| "expected read_committed, repeatable_read or serializable".to_string())
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SchemaArgs {
    /// A table (`users`, `public.users`, `"Order Items"`); omit to list all.
    pub table: Option<String>,
    #[command(subcommand)]
    pub document: Option<SchemaDocument>,
}

/// Documents about the schema, printed on stdout (redirect to a file to commit it).
#[derive(Debug, Subcommand)]
pub enum SchemaDocument {
    /// Entity-relationship diagram: tables, key columns and foreign keys.
    Erd {
        /// mermaid (renders on GitHub) or dot (Graphviz).
        #[arg(long, value_enum, default_value = "mermaid")]
        format: ErdFormat,
        /// Only these schemas (comma-separated; default: all but dbagent's own).
        #[arg(long, value_delimiter = ',')]
        schema: Vec<String>,
        /// One table and the tables one foreign key away from it.
        #[arg(long)]
        table: Option<String>,
        /// Every column, not only key columns.
        #[arg(long)]
        all_columns: bool,
    },
    /// Data dictionary: every table and column with type, nullability, default,
    /// constraints, indexes, comments, row estimate and size.
    Dictionary {
        #[arg(long, value_enum, default_value = "markdown")]
        format: DictionaryFormat,
        /// Only these schemas (comma-separated; default: all but dbagent's own).
        #[arg(long, value_delimiter = ',')]
        schema: Vec<String>,
        /// One table only.
        #[arg(long)]
        table: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ErdFormat {
    Mermaid,
    Dot,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DictionaryFormat {
    Markdown,
    Html,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum InstanceCommand {
    /// Create the cluster (initdb) without starting it.
    Init,
    /// Start the cluster (creating it first if needed) and leave it running.
    Start,
    /// Stop the cluster.
    Stop {
        /// smart, fast or immediate.
        #[arg(long, default_value = "fast")]
        mode: String,
    },
    /// Is it initialized, running, on which port.
    Status,
    /// The tail of the server log.
    Logs {
        #[arg(long, default_value_t = 50)]
        lines: usize,
    },
    /// Streaming replicas of the managed primary.
    #[command(subcommand)]
    Replica(ReplicaCommand),
    /// Planned switchover: promote managed replica N once it has caught up and make the old
    /// primary its replica, with no acknowledged write lost (for a serving agent, use
    /// `POST /replication/switchover`).
    Switchover {
        /// The replica's place, from 1 (as in `stats replication`).
        #[arg(long)]
        to: u32,
        /// Seconds to wait for the replica to come within 16 MB of the primary.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
    /// After a failover: rewind the fenced old primary with pg_rewind and start it as a
    /// replica of the new primary (for a serving agent, use `POST /replication/rejoin`).
    Rejoin,
    /// Promote a managed replica to primary; the old primary is fenced (stopped, and refused
    /// as a primary from then on) and `serve` uses the promoted one.
    Promote {
        /// The replica's number (its data directory is `<data_dir>-replica-<N>`).
        #[arg(long, default_value_t = 1)]
        replica: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReplicaCommand {
    /// Copy the running primary with pg_basebackup -R into `<data_dir>-replica-<N>` and start
    /// it as a streaming replica on its own port.
    Create {
        /// Which replica (default: the first number without a data directory).
        #[arg(long)]
        number: Option<u32>,
    },
    /// The managed replicas and whether they run.
    List,
}

/// Exit codes (see the module documentation).
pub mod exit {
    use super::ErrorKind;

    pub const FAILED: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const UNAVAILABLE: u8 = 3;
    pub const NOT_FOUND: u8 = 4;
    pub const INSTANCE: u8 = 5;

    /// The exit code of a library error of `kind`.
    pub fn of(kind: ErrorKind) -> u8 {
        match kind {
            ErrorKind::NotFound => NOT_FOUND,
            ErrorKind::Unavailable
            | ErrorKind::Timeout
            | ErrorKind::OutcomeUnknown
            | ErrorKind::DatabaseFailure
            | ErrorKind::Internal => UNAVAILABLE,
            ErrorKind::BadRequest
            | ErrorKind::Unauthenticated
            | ErrorKind::RateLimited
            | ErrorKind::PermissionDenied
            | ErrorKind::Conflict
            | ErrorKind::TooLarge
            | ErrorKind::Unprocessable => FAILED,
        }
    }
}

/// An error with the exit code it deserves; printed once, with its causes.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(err: E) -> Self {
        let error = err.into();
        let code = if error.downcast_ref::<config::Error>().is_some() { exit::USAGE } else { exit::FAILED };
        Failure { code, error }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Wal(cmd) = &cli.command {
        // Run by the server for every WAL file: no runtime, no configuration, no database;
        // stderr goes to the server's log.
        return commands::wal(cmd);
    }
    let env = Environment::from_process();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(exit::FAILED);
        }
    };
    match runtime.block_on(commands::run(cli, env)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", crate::db::error_chain(failure.error.as_ref()));
            ExitCode::from(failure.code)
        }
    }
}
