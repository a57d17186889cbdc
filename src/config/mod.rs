//! The configuration: its typed shape, defaults and validation.
//!
//! Sources, later ones winning: built-in defaults, `dbagent.yaml` (or `--config` /
//! `CONFIG_PATH`), `DBAGENT_<SECTION>__<KEY>` environment variables, then the seed-style
//! variables (`DATABASE_URL`, `DB_POOL_SIZE`, ...). `${VAR}` and `${VAR:-default}` are expanded
//! inside file values. Unknown keys and invalid values stop start-up with the key's path.
//! This module is the only one that reads environment variables (see [`load`]).

mod error;
mod load;
mod secret;

pub use error::Error;
pub use load::{Environment, load};
pub use secret::Secret;

use std::path::PathBuf;
use std::time::Duration;

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
}

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

/// The database dbagent serves. With neither `url` nor `host` set, dbagent runs a managed
/// instance (see [`Instance`]).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Postgresql {
    /// `postgresql://user:pass@host:port/db?...` or `key=value` form. `DATABASE_URL` overrides.
    pub url: Option<Secret>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// `disable` or `prefer` (TLS to PostgreSQL is not built yet; `prefer` connects in clear).
    pub sslmode: SslMode,
    pub connection_pool: ConnectionPool,
    /// Seconds a statement may run; the server cancels it (`statement_timeout`). Default 30.
    pub query_timeout: f64,
    /// Rows `/query` returns before it answers `truncated: true`. Default 10000.
    pub max_rows: usize,
    /// Read replicas; reads go to them round-robin while they are healthy.
    pub read_replicas: Vec<Replica>,
    /// Log every statement at INFO (`DB_ECHO_SQL`). Default false.
    pub echo_sql: bool,
}

impl Default for Postgresql {
    fn default() -> Self {
        Postgresql {
            url: None,
            host: None,
            port: None,
            database: None,
            user: None,
            password: None,
            sslmode: SslMode::Prefer,
            connection_pool: ConnectionPool::default(),
            query_timeout: 30.0,
            max_rows: 10_000,
            read_replicas: Vec::new(),
            echo_sql: false,
        }
    }
}

impl Postgresql {
    /// True when a server was named (URL or host); false means "run a managed instance".
    pub fn is_configured(&self) -> bool {
        self.url.is_some() || self.host.is_some()
    }

    pub fn query_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.query_timeout)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SslMode {
    Disable,
    Prefer,
}

/// Pool sizing and connection hygiene (per pool: the primary and each replica).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionPool {
    /// Connections kept open even when idle. Default 10.
    pub min_size: u32,
    /// Upper bound on open connections. Default 50.
    pub max_size: u32,
    /// Seconds to wait for a free connection before answering 503 `pool_exhausted`. Default 30.
    pub timeout: f64,
    /// Seconds after which a connection is closed and replaced (max lifetime). Default 3600.
    pub recycle: u64,
    /// Seconds an idle connection above `min_size` is kept. Default 600.
    pub idle_timeout: u64,
    /// Check a connection that has been idle for over a second before handing it out. Default true.
    pub pre_ping: bool,
    /// Connections on which concurrent short autocommit reads are pipelined together
    /// (multiplexing), taken from this pool while reads need them. 0 turns it off. Default 4.
    pub multiplex_connections: u32,
    /// Statements queued on each shared connection before another one is shared; a shared
    /// connection takes at most twice as many. Lower it when the server has cores to spare
    /// and latency matters more than CPU. Default 16.
    pub multiplex_depth: u32,
    /// Milliseconds: a read whose recent runs took longer than this never shares a connection,
    /// and a shared connection whose oldest statement has waited this long takes no more.
    /// Default 10.
    pub multiplex_max_ms: f64,
}

impl Default for ConnectionPool {
    fn default() -> Self {
        ConnectionPool {
            min_size: 10,
            max_size: 50,
            timeout: 30.0,
            recycle: 3600,
            idle_timeout: 600,
            pre_ping: true,
            multiplex_connections: 4,
            multiplex_depth: 16,
            multiplex_max_ms: 10.0,
        }
    }
}

impl ConnectionPool {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
}

/// One read replica: a URL or host/port/..., which inherit the primary's unset fields.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Replica {
    pub url: Option<Secret>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// Stop routing reads here while replay lag exceeds this. Default: no limit.
    pub max_lag_seconds: Option<f64>,
}

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
}

impl Default for Instance {
    fn default() -> Self {
        Instance { data_dir: PathBuf::from("./.dbagent/pgdata"), port: None, bin_dir: None, database: "postgres".into() }
    }
}

/// Replicas the managed instance runs, and what happens when the primary stops answering.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Replication {
    /// Managed instance only: streaming replicas dbagent creates (`pg_basebackup`) and starts
    /// beside the primary, in `<data_dir>-replica-<n>`. Default 0.
    pub replicas: u32,
    /// Managed replicas: stop routing reads to one whose replay lag exceeds this. Default 10.
    pub max_lag_seconds: f64,
    /// `manual` (default) or `auto`. With `auto`, once the primary has not answered for
    /// `failover_after` seconds: a managed instance's most caught-up replica is promoted and
    /// the old primary fenced; with configured servers, dbagent re-points to whichever
    /// configured host has become a primary (it never promotes a server it does not manage).
    pub failover: FailoverMode,
    /// Seconds the primary must stay unreachable before failing over. Default 3.
    pub failover_after: f64,
    /// Managed instance with replicas: a commit waits until one replica has it
    /// (`synchronous_standby_names = 'ANY 1 (*)'`), so no acknowledged write is lost when a
    /// replica is promoted. Relaxed to asynchronous while no replica is connected (and
    /// automatic failover is then withheld). Default true.
    pub synchronous: bool,
}

impl Default for Replication {
    fn default() -> Self {
        Replication { replicas: 0, max_lag_seconds: 10.0, failover: FailoverMode::Manual, failover_after: 3.0, synchronous: true }
    }
}

impl Replication {
    pub fn failover_after(&self) -> Duration {
        Duration::from_secs_f64(self.failover_after)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailoverMode {
    Manual,
    Auto,
}

/// The query result cache (`use_cache: true` on `/query`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Caching {
    /// Default true (and `optimization.enable_query_cache` must be on too).
    pub enable: bool,
    /// `redis://host:port/db`: share the cache (and invalidations) between agents. Default:
    /// none, an in-process cache.
    pub redis_url: Option<Secret>,
    /// Seconds an entry lives at most. Default 300.
    pub query_cache_ttl: u64,
    /// In-process cache: most entries kept. Default 100000.
    pub max_entries: u64,
    /// In-process cache: most bytes of results kept. Default 256 MiB.
    pub max_bytes: u64,
    /// Results larger than this are not cached. Default 1 MiB.
    pub max_entry_bytes: u64,
}

impl Default for Caching {
    fn default() -> Self {
        Caching {
            enable: true,
            redis_url: None,
            query_cache_ttl: 300,
            max_entries: 100_000,
            max_bytes: 256 * 1024 * 1024,
            max_entry_bytes: 1024 * 1024,
        }
    }
}

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

/// Backups (`dbagent backup`, `POST /backup`, the schedule).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backup {
    /// Run the schedule when serving. Default true.
    pub enable: bool,
    /// Cron schedule (5 or 6 fields). Default `0 2 * * *` (02:00 daily); null: none.
    pub schedule: Option<String>,
    /// Prune backups older than this. Default 30.
    pub retention_days: Option<u32>,
    /// Always keep the newest N. Default none.
    pub keep_last: Option<u32>,
    /// Directory of the backups (one sub-directory each). Default `./backups`.
    pub location: PathBuf,
    /// `zstd` (default), `gzip` or `none`.
    pub compression: String,
    /// AES-256 key (64 hex digits or base64); use `${VAR}` to take it from the environment.
    /// `BACKUP_ENCRYPTION_KEY` overrides. Default none (not encrypted).
    pub encryption_key: Option<Secret>,
    /// A file holding the key, instead of `encryption_key`.
    pub encryption_key_file: Option<PathBuf>,
    /// A passphrase (at least 12 characters; Argon2id derives the key), instead of a key.
    pub encryption_passphrase: Option<Secret>,
    /// Parallel jobs for directory-format dumps and restores. Default 2.
    pub jobs: u32,
    /// Point-in-time recovery for the managed instance: continuous WAL archiving into
    /// `<location>/wal` (`archive_mode = on`, applied when the instance starts), base backups
    /// (`kind: base`) and `restore --to-time`. Default false.
    pub pitr: bool,
    /// `archive_timeout` in seconds: a quiet server still archives its last commits within
    /// this time. Default 60.
    pub archive_timeout: u32,
    /// The dbagent executable the server runs to archive and restore WAL. Default: the
    /// running executable.
    pub agent_binary: Option<PathBuf>,
}

impl Default for Backup {
    fn default() -> Self {
        Backup {
            enable: true,
            schedule: Some("0 2 * * *".into()),
            retention_days: Some(30),
            keep_last: None,
            location: PathBuf::from("./backups"),
            compression: "zstd".into(),
            encryption_key: None,
            encryption_key_file: None,
            encryption_passphrase: None,
            jobs: 2,
            pitr: false,
            archive_timeout: 60,
            agent_binary: None,
        }
    }
}

/// Defaults for `/transaction`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Transactions {
    /// Default isolation level. Default `read_committed`.
    pub isolation_level: IsolationLevel,
    /// Re-runs after a serialization failure or deadlock. Default 3.
    pub max_retries: u32,
    /// Seconds before the first re-run. Default 1 (the seed's value); backoff doubles it.
    pub retry_delay: f64,
    /// `exponential` (with jitter) or `constant`. Default exponential.
    pub backoff: Backoff,
}

impl Default for Transactions {
    fn default() -> Self {
        Transactions {
            isolation_level: IsolationLevel::ReadCommitted,
            max_retries: 3,
            retry_delay: 1.0,
            backoff: Backoff::Exponential,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IsolationLevel {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl IsolationLevel {
    pub fn sql(self) -> &'static str {
        match self {
            IsolationLevel::ReadCommitted => "READ COMMITTED",
            IsolationLevel::RepeatableRead => "REPEATABLE READ",
            IsolationLevel::Serializable => "SERIALIZABLE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    Exponential,
    Constant,
}

/// Query handling knobs.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Optimization {
    /// Accepted for the seeds' shape; the query cache has its own settings. Default true.
    pub enable_query_cache: bool,
    /// Keep prepared statements per connection. Default true.
    pub prepared_statements: bool,
    /// Log statements slower than the threshold. Default true.
    pub slow_query_log: bool,
    /// Milliseconds. Default 1000.
    pub slow_query_threshold_ms: f64,
}

impl Default for Optimization {
    fn default() -> Self {
        Optimization { enable_query_cache: true, prepared_statements: true, slow_query_log: true, slow_query_threshold_ms: 1000.0 }
    }
}

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

impl Config {
    /// Checks what types cannot: ranges and relations between values.
    pub fn validate(&self) -> Result<(), Error> {
        let pool = &self.postgresql.connection_pool;
        let invalid = |key: &str, message: String| Err(Error::Invalid { key: key.into(), message });
        if pool.max_size == 0 {
            return invalid("postgresql.connection_pool.max_size", "must be at least 1".into());
        }
        if pool.min_size > pool.max_size {
            return invalid(
                "postgresql.connection_pool.min_size",
                format!("{} is larger than max_size ({})", pool.min_size, pool.max_size),
            );
        }
        if !(pool.timeout > 0.0 && pool.timeout.is_finite()) {
            return invalid("postgresql.connection_pool.timeout", "must be a positive number of seconds".into());
        }
        if pool.multiplex_depth == 0 {
            return invalid("postgresql.connection_pool.multiplex_depth", "must be at least 1".into());
        }
        if !(pool.multiplex_max_ms > 0.0 && pool.multiplex_max_ms.is_finite()) {
            return invalid("postgresql.connection_pool.multiplex_max_ms", "must be a positive number of milliseconds".into());
        }
        if !(self.postgresql.query_timeout > 0.0 && self.postgresql.query_timeout.is_finite()) {
            return invalid("postgresql.query_timeout", "must be a positive number of seconds".into());
        }
        if self.postgresql.max_rows == 0 {
            return invalid("postgresql.max_rows", "must be at least 1".into());
        }
        if !(self.transactions.retry_delay >= 0.0 && self.transactions.retry_delay.is_finite()) {
            return invalid("transactions.retry_delay", "must be zero or a positive number of seconds".into());
        }
        if self.caching.query_cache_ttl == 0 {
            return invalid("caching.query_cache_ttl", "must be at least 1 second".into());
        }
        if self.caching.max_entries == 0 || self.caching.max_bytes == 0 {
            return invalid("caching.max_entries", "max_entries and max_bytes must be at least 1".into());
        }
        if !matches!(self.backup.compression.as_str(), "zstd" | "gzip" | "none") {
            return invalid("backup.compression", format!("{:?} is not zstd, gzip or none", self.backup.compression));
        }
        let keys = [self.backup.encryption_key.is_some(), self.backup.encryption_key_file.is_some(), self.backup.encryption_passphrase.is_some()];
        if keys.iter().filter(|k| **k).count() > 1 {
            return invalid("backup.encryption_key", "set only one of encryption_key, encryption_key_file and encryption_passphrase".into());
        }
        if !(1..=86_400).contains(&self.backup.archive_timeout) {
            return invalid("backup.archive_timeout", "must be between 1 and 86400 seconds".into());
        }
        if self.backup.jobs == 0 {
            return invalid("backup.jobs", "must be at least 1".into());
        }
        let m = &self.migrations;
        for (key, value) in [
            ("migrations.lock_timeout", m.lock_timeout),
            ("migrations.statement_lock_timeout", m.statement_lock_timeout),
            ("migrations.statement_timeout", m.statement_timeout),
        ] {
            if !(value >= 0.0 && value.is_finite()) {
                return invalid(key, "must be zero or a positive number of seconds".into());
            }
        }
        let replication = &self.replication;
        if !(replication.max_lag_seconds >= 0.0 && replication.max_lag_seconds.is_finite()) {
            return invalid("replication.max_lag_seconds", "must be zero or positive".into());
        }
        if !(replication.failover_after > 0.0 && replication.failover_after.is_finite()) {
            return invalid("replication.failover_after", "must be a positive number of seconds".into());
        }
        if replication.replicas > 0 && self.postgresql.is_configured() {
            return invalid(
                "replication.replicas",
                "only a managed instance gets replicas from dbagent; list a configured server's replicas in postgresql.read_replicas".into(),
            );
        }
        for (i, replica) in self.postgresql.read_replicas.iter().enumerate() {
            if replica.url.is_none() && replica.host.is_none() {
                return invalid(&format!("postgresql.read_replicas[{i}]"), "needs a url or a host".into());
            }
            if replica.max_lag_seconds.is_some_and(|s| !(s >= 0.0 && s.is_finite())) {
                return invalid(&format!("postgresql.read_replicas[{i}].max_lag_seconds"), "must be zero or positive".into());
            }
        }
        Ok(())
    }
}
