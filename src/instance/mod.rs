//! Managed PostgreSQL instances: the local clusters dbagent creates, starts, stops, copies into
//! replicas and promotes when no external database is configured.
//!
//! This module owns every child process dbagent runs: its own (`initdb`, `pg_ctl`,
//! `pg_basebackup`, `pg_isready`, `postgres --version`) and the backup module's (`pg_dump`,
//! `pg_restore`, `pg_basebackup`). All are built and started by [`process`], so the switch to
//! the `postgres` OS user (PostgreSQL refuses to run as root), the argument list (never a
//! shell), the scrubbed environment, kill-on-drop, stderr capture and the time limits are
//! applied in one place; [`binaries`](find_binaries) is the one search for PostgreSQL programs.
//!
//! On-disk layout for a data directory `D` (default `./.dbagent/pgdata`):
//!
//! | path | what |
//! |---|---|
//! | `D/` | the cluster, mode 0700, owned by the server's OS user |
//! | `D/dbagent.conf` | settings dbagent manages (port, socket dir, WAL, logging), rewritten on every start and included from `postgresql.conf`; `ALTER SYSTEM` still overrides it |
//! | `D/../run/` | private Unix socket directory (mode 0700) |
//! | `D/../<name of D>.log` | the server log |
//! | `D/../<name of D>.lock` | `flock` serialising operations on the cluster across tasks and processes |
//!
//! A running server is recognised by its `postmaster.pid`, and only when that process really
//! lives in `D`, so a stale pid file (or one whose pid was reused) never blocks a start and
//! never makes us adopt a stranger.

pub mod certs;
mod binaries;
mod cluster;
mod conf;
mod error;
mod fence;
mod layout;
mod lock;
mod pidfile;
mod port;
pub(crate) mod process;
mod recover;
mod replica;
mod rewind;
mod server;
mod status;
mod user;

use std::path::PathBuf;

pub use binaries::{Binaries, find_binaries};
pub(crate) use binaries::{parse_version, search_dirs};
pub(crate) use user::ServerUser;
pub use cluster::{checkpoint_lsn, init, promote, start, stop};
pub use error::Error;
pub use fence::{Fence, fence, fenced, make_standby, unfence};
pub use recover::{Recovery, prepare_recovery, recover};
pub use replica::{create_replica, replica_settings, replicas};
pub use rewind::rewind;
pub use status::{Status, logs, status};

/// Where and how to run one managed cluster, built from the `instance:` section
/// ([`Settings::from_config`]); nothing here reads environment variables except `PATH` (for
/// [`find_binaries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The cluster's data directory. Default `./.dbagent/pgdata`, made absolute by the caller
    /// (a relative path is resolved against the current directory).
    pub data_dir: PathBuf,
    /// TCP port on 127.0.0.1. `None` reuses the port of the previous run when it is still free,
    /// and otherwise picks a free one.
    pub port: Option<u16>,
    /// Directory holding `postgres`, `initdb` and `pg_ctl` (from the config or `$PG_BIN`).
    /// `None` searches `PATH` and the usual install locations.
    pub bin_dir: Option<PathBuf>,
    /// The database superuser created by `initdb`. Default `postgres`.
    pub superuser: String,
    /// Continuous WAL archiving (`archive_mode = on`) for point-in-time recovery. Default
    /// none (`archive_mode = off`).
    pub archive: Option<Archive>,
    /// Serve TLS with generated certificates ([`certs`]). Default false.
    pub ssl: bool,
}

/// Continuous WAL archiving of a managed cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    /// Where archived WAL goes; created and handed to the server's OS user on start.
    pub dir: PathBuf,
    /// The dbagent executable the server runs as
    /// `archive_command = '<program> wal push --archive <dir> %p %f'`.
    pub program: PathBuf,
    /// `archive_timeout`: the longest a commit waits before its segment is archived.
    pub timeout_seconds: u32,
}

impl Settings {
    /// The settings of the `instance:` section, with the data directory made absolute
    /// (against the current directory) and normalised. No WAL archive: the caller adds it
    /// when `backup.pitr` asks for one.
    pub fn from_config(config: &crate::config::Instance) -> std::io::Result<Self> {
        let dir = &config.data_dir;
        let data_dir = if dir.is_absolute() { dir.clone() } else { std::env::current_dir()?.join(dir) };
        let mut settings = Settings::new(normalize(&data_dir));
        settings.port = config.port;
        settings.bin_dir = config.bin_dir.clone();
        settings.ssl = config.ssl;
        Ok(settings)
    }

    /// Settings with the defaults for everything but the data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Settings {
            data_dir: data_dir.into(),
            port: None,
            bin_dir: None,
            superuser: "postgres".to_owned(),
            archive: None,
            ssl: false,
        }
    }
}

/// `a/./b/../c` → `a/c` without touching the file system (the directory may not exist yet).
pub(crate) fn normalize(path: &std::path::Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// A server that accepts connections.
#[derive(Debug, Clone, PartialEq, Eq, schemars::JsonSchema)]
pub struct Running {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// Directory holding the server's Unix socket.
    pub socket_dir: PathBuf,
    /// Process id of the postmaster.
    pub pid: u32,
    /// The cluster's data directory (absolute).
    pub data_dir: PathBuf,
    /// The database superuser to connect as.
    pub superuser: String,
    /// `true` when this call started the server; `false` when it was already running and was
    /// reused. Only a server we started should be stopped when dbagent exits.
    pub started_by_us: bool,
}

impl Running {
    /// Connection URL for `database`, as the superuser over TCP (trust authentication).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql://{}@127.0.0.1:{}/{database}",
            self.superuser, self.port
        )
    }
}

/// How to shut a server down (`pg_ctl stop -m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StopMode {
    /// Wait for every client to disconnect.
    Smart,
    /// Disconnect clients, roll back their transactions, checkpoint, exit.
    Fast,
    /// Exit at once; the next start runs crash recovery.
    Immediate,
}

impl StopMode {
    fn as_pg_ctl_arg(self) -> &'static str {
        match self {
            StopMode::Smart => "smart",
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}
