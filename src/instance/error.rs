//! The one error type of the `instance` module: what went wrong while finding, preparing,
//! starting, stopping or copying a managed PostgreSQL cluster.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while managing a local PostgreSQL cluster.
///
/// Messages describe this layer; the underlying I/O or system error, when there is one, is the
/// [`std::error::Error::source`]. Failures of PostgreSQL's own tools carry their stderr, because
/// that text is the only explanation those tools give.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No directory holding `postgres`, `initdb` and `pg_ctl` was found.
    #[error(
        "no PostgreSQL server binaries (`postgres`, `initdb`, `pg_ctl`) found; looked in: {}. \
         Install PostgreSQL (Debian/Ubuntu: `apt-get install postgresql`; macOS: \
         `brew install postgresql@16`) or set PG_BIN to the directory that holds `postgres`",
        list(.searched)
    )]
    BinariesNotFound { searched: Vec<PathBuf> },

    /// The data directory was made by another major version than the binaries found.
    #[error(
        "the data directory {} was created by PostgreSQL {data_version}, but the binaries in {} \
         are PostgreSQL {binaries_version}; set PG_BIN to a PostgreSQL {data_version} bin directory",
        .data_dir.display(), .binaries.display()
    )]
    VersionMismatch {
        data_dir: PathBuf,
        data_version: u32,
        binaries: PathBuf,
        binaries_version: u32,
    },

    /// `postgres --version` printed something we could not parse.
    #[error("could not read the PostgreSQL version from `{} --version` (it printed {output:?})", .binary.display())]
    VersionUnreadable { binary: PathBuf, output: String },

    /// A PostgreSQL program could not be started at all (missing, not executable, ...).
    #[error("could not run {}", .binary.display())]
    CommandNotRunnable {
        binary: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A PostgreSQL program ran past its time limit and was killed.
    #[error("{} did not finish within {seconds} s and was killed", .binary.display())]
    CommandTimedOut { binary: PathBuf, seconds: u64 },

    /// We are root, so the server must run as another account, and that account is missing.
    #[error(
        "the OS user `{user}` that must run the PostgreSQL server does not exist; PostgreSQL \
         refuses to run as root, so create that user or run dbagent as an unprivileged user"
    )]
    ServerUserMissing { user: String },

    /// The user database could not be queried.
    #[error("could not look up the OS user `{user}`")]
    ServerUserLookup {
        user: String,
        #[source]
        source: nix::Error,
    },

    /// A directory above the data directory cannot be entered by the server's OS user.
    #[error(
        "the PostgreSQL server runs as OS user `{user}`, which cannot enter {}; make it \
         traversable (e.g. `chmod o+x`) or put the data directory somewhere else",
        .path.display()
    )]
    DirectoryNotAccessible { path: PathBuf, user: String },

    /// The server's Unix socket would not fit in `sockaddr_un`.
    #[error(
        "the Unix socket path under {} would be too long (limit {max} bytes); use a shorter \
         data directory path",
        .path.display()
    )]
    SocketPathTooLong { path: PathBuf, max: usize },

    /// A path cannot be written as a value in postgresql.conf.
    #[error("the path {} cannot be used in the server configuration: {reason}", .path.display())]
    PathNotConfigurable { path: PathBuf, reason: &'static str },

    /// A file-system operation on one of the cluster's files failed.
    #[error("could not {action} {}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A file could not be handed over to the server's OS user.
    #[error("could not give {} to OS user `{user}`", .path.display())]
    Chown {
        path: PathBuf,
        user: String,
        #[source]
        source: nix::Error,
    },

    /// No free TCP port could be found on 127.0.0.1.
    #[error("could not find a free TCP port on 127.0.0.1")]
    NoFreePort {
        #[source]
        source: Option<io::Error>,
    },

    /// The configured port is taken by another program.
    #[error("port {port} on 127.0.0.1 is already in use")]
    PortInUse { port: u16 },

    /// `initdb` exited with an error.
    #[error("initdb failed: {stderr}")]
    InitdbFailed { stderr: String },

    /// The server exited during start-up.
    #[error(
        "the PostgreSQL server failed to start: {stderr}\n--- end of the server log ---\n{log_tail}"
    )]
    StartFailed { stderr: String, log_tail: String },

    /// The server did not accept connections in time (it has been stopped again).
    #[error(
        "the PostgreSQL server did not accept connections within {seconds} s\n\
         --- end of the server log ---\n{log_tail}"
    )]
    StartTimeout { seconds: u64, log_tail: String },

    /// `pg_ctl stop` reported an error.
    #[error("pg_ctl stop failed: {stderr}")]
    StopFailed { stderr: String },

    /// The server was asked to stop but its process is still there.
    #[error("the PostgreSQL server (pid {pid}) did not stop within {seconds} s")]
    StopTimeout { pid: u32, seconds: u64 },

    /// Another operation on the same cluster held its lock for too long.
    #[error(
        "another operation on the cluster in {} did not finish within {seconds} s",
        .data_dir.display()
    )]
    Busy { data_dir: PathBuf, seconds: u64 },

    /// An operation needs a running server and there is none.
    #[error("no PostgreSQL server is running on {}", .data_dir.display())]
    NotRunning { data_dir: PathBuf },

    /// An operation needs the server stopped and it runs.
    #[error("the PostgreSQL server on {} is still running; stop it first", .data_dir.display())]
    StillRunning { data_dir: PathBuf },

    /// `pg_controldata` failed, or did not name the latest checkpoint.
    #[error("pg_controldata on {} failed: {stderr}", .data_dir.display())]
    ControlData { data_dir: PathBuf, stderr: String },

    /// A replica must be copied into an empty (or missing) directory.
    #[error("the replica data directory {} is not empty; remove it or choose another", .path.display())]
    DataDirNotEmpty { path: PathBuf },

    /// `pg_basebackup` exited with an error.
    #[error("pg_basebackup from the primary on port {port} failed: {stderr}")]
    BasebackupFailed { port: u16, stderr: String },

    /// `pg_rewind` exited with an error.
    #[error("pg_rewind from the primary on port {port} failed: {stderr}")]
    RewindFailed { port: u16, stderr: String },

    /// `pg_ctl promote` exited with an error.
    #[error("pg_ctl promote failed: {stderr}")]
    PromoteFailed { stderr: String },

    /// The cluster lost its primary role in a failover and must not run as a primary again.
    #[error(
        "the cluster in {} was fenced after a failover to {}; re-create it as a replica of the new \
         primary, or remove {}/dbagent.fenced if you are certain it should run again",
        .data_dir.display(), .successor.display(), .data_dir.display()
    )]
    Fenced { data_dir: PathBuf, successor: PathBuf },
}

impl Error {
    /// Adapter for `map_err`: an I/O failure of `action` on `path`.
    pub(crate) fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
        let path = path.to_path_buf();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}

fn list(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}
