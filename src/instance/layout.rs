//! Where a cluster's files live, and creating them with the owner and modes the server needs.

use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::Error;
use super::user::ServerUser;

/// `sockaddr_un.sun_path` is 108 bytes on Linux and 104 on macOS, NUL included.
const MAX_SOCKET_PATH: usize = 103;
/// The longest socket file name PostgreSQL uses in the socket directory.
const SOCKET_FILE: &str = ".s.PGSQL.65535.lock";

/// The paths of one cluster, all derived from its data directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    /// The data directory (absolute).
    pub data_dir: PathBuf,
    /// The directory holding the data directory (`.dbagent` by default).
    pub parent: PathBuf,
    /// Private directory for the server's Unix socket.
    pub socket_dir: PathBuf,
    /// The server log, named after the data directory so clusters sharing a parent don't mix.
    pub log_file: PathBuf,
}

impl Layout {
    /// The layout for `data_dir`, made absolute against the current directory.
    pub(crate) fn new(data_dir: &Path) -> Result<Self, Error> {
        let data_dir = std::path::absolute(data_dir).map_err(Error::io("resolve", data_dir))?;
        let (Some(parent), Some(name)) = (data_dir.parent(), data_dir.file_name()) else {
            return Err(Error::PathNotConfigurable {
                path: data_dir,
                reason: "a data directory needs a parent directory and a name",
            });
        };
        let mut log_name = name.to_os_string();
        log_name.push(".log");
        Ok(Layout {
            parent: parent.to_path_buf(),
            socket_dir: parent.join("run"),
            log_file: parent.join(log_name),
            data_dir,
        })
    }

    /// The lock file serialising operations on this cluster (see `lock`).
    pub(crate) fn lock_file(&self) -> PathBuf {
        let mut name = self.data_dir.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        self.parent.join(name)
    }

    /// Whether `initdb` (or `pg_basebackup`) has filled the data directory.
    pub(crate) fn is_initialized(&self) -> bool {
        self.data_dir.join("PG_VERSION").is_file()
    }

    /// The major version recorded in `PG_VERSION`, if the cluster exists.
    pub(crate) fn data_version(&self) -> Result<Option<u32>, Error> {
        let path = self.data_dir.join("PG_VERSION");
        match fs::read_to_string(&path) {
            Ok(text) => Ok(text.trim().parse().ok()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &path)(e)),
        }
    }

    /// Whether the data directory exists and holds anything.
    pub(crate) fn data_dir_has_contents(&self) -> Result<bool, Error> {
        match fs::read_dir(&self.data_dir) {
            Ok(mut entries) => Ok(entries.next().is_some()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("list", &self.data_dir)(e)),
        }
    }

    /// Creates whatever is missing (parent, socket directory, log file, empty data directory),
    /// hands it to the server's user, and checks that user can reach the data directory.
    /// An existing data directory is left as it is: PostgreSQL checks its own permissions.
    pub(crate) fn prepare(&self, user: &ServerUser) -> Result<(), Error> {
        self.prepare_parent(user)?;
        if create_dir(&self.socket_dir, 0o700)? {
            user.give(&self.socket_dir)?;
        }
        self.create_log_file(user)?;
        if !self.data_dir.exists() {
            create_dir(&self.data_dir, 0o700)?;
        }
        if !self.data_dir_has_contents()? {
            // initdb and pg_basebackup run as the server user and must be able to fill it.
            user.give(&self.data_dir)?;
            set_mode(&self.data_dir, 0o700)?;
        }
        user.check_traversable(&self.data_dir)
    }

    /// Creates the parent directory (given to the server user when we create it), after
    /// checking what already exists, so that a refusal leaves nothing behind.
    pub(crate) fn prepare_parent(&self, user: &ServerUser) -> Result<(), Error> {
        self.check_socket_path()?;
        if let Some(existing) = self.data_dir.ancestors().find(|p| p.exists()) {
            user.check_traversable(existing)?;
        }
        if create_missing_ancestors(&self.parent)? {
            user.give(&self.parent)?;
        }
        Ok(())
    }

    fn check_socket_path(&self) -> Result<(), Error> {
        let socket = self.socket_dir.join(SOCKET_FILE);
        if socket.as_os_str().as_bytes().len() > MAX_SOCKET_PATH {
            return Err(Error::SocketPathTooLong {
                path: self.socket_dir.clone(),
                max: MAX_SOCKET_PATH,
            });
        }
        Ok(())
    }

    /// The server opens its log as the server user, so the file must exist and be theirs even
    /// when the parent directory is not writable by them.
    fn create_log_file(&self, user: &ServerUser) -> Result<(), Error> {
        if self.log_file.exists() {
            return Ok(());
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_file)
            .map_err(Error::io("create", &self.log_file))?;
        set_mode(&self.log_file, 0o600)?;
        user.give(&self.log_file)
    }
}

/// Creates `dir` and any missing ancestors (mode 0755, so the server user can pass through).
/// Returns whether `dir` itself was created.
fn create_missing_ancestors(dir: &Path) -> Result<bool, Error> {
    if dir.is_dir() {
        return Ok(false);
    }
    let mut missing: Vec<&Path> = dir.ancestors().take_while(|p| !p.exists()).collect();
    missing.reverse();
    for path in missing {
        create_dir(path, 0o755)?;
    }
    Ok(true)
}

/// Creates one directory with exactly `mode` (the umask is overridden). Returns whether it was
/// created; an existing directory is fine.
fn create_dir(dir: &Path, mode: u32) -> Result<bool, Error> {
    match DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {
            set_mode(dir, mode)?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
        Err(e) => Err(Error::io("create directory", dir)(e)),
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(Error::io("set permissions of", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_puts_socket_dir_and_log_next_to_the_data_dir() {
        let layout = Layout::new(Path::new("/srv/app/.dbagent/pgdata")).expect("layout");
        assert_eq!(layout.parent, Path::new("/srv/app/.dbagent"));
        assert_eq!(layout.socket_dir, Path::new("/srv/app/.dbagent/run"));
        assert_eq!(layout.log_file, Path::new("/srv/app/.dbagent/pgdata.log"));
    }

    #[test]
    fn a_very_long_data_dir_is_refused_before_postgres_trips_over_the_socket_path() {
        let long = format!("/tmp/{}/pgdata", "x".repeat(120));
        let layout = Layout::new(Path::new(&long)).expect("layout");
        let err = layout.check_socket_path().expect_err("too long");
        assert!(matches!(err, Error::SocketPathTooLong { .. }), "{err}");
    }
}
