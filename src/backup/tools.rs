//! The only place the backup module starts programs: `pg_dump` and `pg_restore`, from the
//! installation whose major version suits the server.
//!
//! Every program gets its arguments as a list (never a shell), the connection as one libpq
//! conninfo argument, the password through `PGPASSWORD` (never the command line), and none of
//! the `PG*` variables of our own environment (an inherited `PGHOST` or `PGDATABASE` would
//! silently point it elsewhere). Stderr is captured (the last 16 KiB) for the error message;
//! the child is killed when its handle is dropped, so a cancelled or timed-out job leaves no
//! program behind. (On integration this file moves under `instance`, the module that starts
//! processes, or calls `instance::process`.)
//!
//! Which binaries: `bin_dir` when configured (refused if older than the server); otherwise
//! the installation whose major version equals the server's, else the newest newer one
//! (pg_dump reads older servers, never newer ones), else an error with the install hint.

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio_postgres::Config;
use tokio_postgres::config::{Host, SslMode};

use super::Error;

/// `--version` answers at once; anything slower is broken.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a tool's stderr is kept for the error message.
const STDERR_TAIL: usize = 16 * 1024;

/// Environment variables libpq reads; removed from every child.
const PG_ENV: &[&str] = &[
    "PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE", "PGPASSWORD", "PGPASSFILE",
    "PGSERVICE", "PGSERVICEFILE", "PGOPTIONS", "PGAPPNAME", "PGSSLMODE", "PGSSLCERT", "PGSSLKEY",
    "PGSSLROOTCERT", "PGCONNECT_TIMEOUT", "PGTARGETSESSIONATTRS", "PGTZ", "PGDATESTYLE",
    "PGCLIENTENCODING", "PGDATA", "PGREQUIRESSL", "PGSSLCRL", "PGKRBSRVNAME", "PGGSSLIB",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    PgDump,
    PgRestore,
    PgBasebackup,
}

impl Tool {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tool::PgDump => "pg_dump",
            Tool::PgRestore => "pg_restore",
            Tool::PgBasebackup => "pg_basebackup",
        }
    }
}

/// A directory holding `pg_dump` and `pg_restore` of one major version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tools {
    pub dir: PathBuf,
    pub major: u32,
    /// `pg_dump --version`, e.g. `pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)`.
    pub version: String,
}

/// The major version in `server_version_num` (`150020` → 15, `90624` → 9).
pub(crate) fn server_major(version_num: u32) -> u32 {
    // 9.6 is 90600: its "major" reads as 9, fine for the ≥ comparisons made with it.
    version_num / 10_000
}

/// Finds the tools for a server of major version `server_major` (see the module doc).
pub(crate) async fn find(bin_dir: Option<&Path>, server_major: u32) -> Result<Tools, Error> {
    if let Some(dir) = bin_dir {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
        let found = inspect(&dir).await?.ok_or_else(|| Error::ToolsNotFound {
            tool: "pg_dump/pg_restore",
            server_major,
            searched: vec![dir.clone()],
        })?;
        if found.major < server_major {
            return Err(Error::ToolTooOld {
                binary: found.dir.join("pg_dump"),
                found: found.major,
                needed: server_major,
                needed_for: "the server",
            });
        }
        return Ok(found);
    }
    let searched = candidates();
    let mut installed = Vec::new();
    for dir in &searched {
        if let Some(found) = inspect(dir).await? {
            installed.push(found);
        }
    }
    choose(&installed, server_major).cloned().ok_or(Error::ToolsNotFound {
        tool: "pg_dump/pg_restore",
        server_major,
        searched,
    })
}

/// The installation of the server's major version, else the newest newer one.
pub(crate) fn choose(installed: &[Tools], server_major: u32) -> Option<&Tools> {
    installed
        .iter()
        .find(|t| t.major == server_major)
        .or_else(|| installed.iter().filter(|t| t.major > server_major).max_by_key(|t| t.major))
}

/// Directories worth looking in, without duplicates: the usual install locations (shared with
/// the managed instance's search), then `PATH`.
fn candidates() -> Vec<PathBuf> {
    let mut dirs = crate::instance::install_locations();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|d| d.is_absolute()));
    }
    let mut unique: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        let real = std::fs::canonicalize(&dir).unwrap_or(dir);
        if !unique.contains(&real) {
            unique.push(real);
        }
    }
    unique
}

/// The tools in `dir` and their version, if `dir` holds both. A symlinked `pg_dump` (Debian's
/// `pg_wrapper`, a Homebrew link) is followed to the directory it really lives in.
async fn inspect(dir: &Path) -> Result<Option<Tools>, Error> {
    let Ok(real) = std::fs::canonicalize(dir.join("pg_dump")) else {
        return Ok(None);
    };
    let Some(real_dir) = real.parent().map(Path::to_path_buf) else {
        return Ok(None);
    };
    if real.file_name() != Some(OsStr::new("pg_dump")) || !real_dir.join("pg_restore").is_file() {
        return Ok(None);
    }
    let version = read_version(&real).await?;
    Ok(crate::instance::parse_version(&version).map(|major| Tools { dir: real_dir, major, version }))
}

async fn read_version(binary: &Path) -> Result<String, Error> {
    let mut cmd = Command::new(binary);
    cmd.arg("--version").stdin(Stdio::null()).kill_on_drop(true);
    for var in PG_ENV {
        cmd.env_remove(var);
    }
    let output = tokio::time::timeout(VERSION_TIMEOUT, cmd.output())
        .await
        .map_err(|_| Error::ToolTimedOut { tool: "pg_dump --version", seconds: VERSION_TIMEOUT.as_secs() })?
        .map_err(|source| Error::ToolNotRunnable { binary: binary.to_path_buf(), source })?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Where a tool connects: one libpq conninfo string, plus the password for `PGPASSWORD`.
pub(crate) struct Target {
    conninfo: String,
    password: Option<String>,
}

impl Target {
    /// The server `db` points at, database `dbname`.
    pub(crate) fn new(db: &Config, dbname: &str) -> Target {
        let mut parts: Vec<(&str, String)> = Vec::new();
        let hosts: Vec<String> = db
            .get_hosts()
            .iter()
            .map(|host| match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        if !hosts.is_empty() {
            parts.push(("host", hosts.join(",")));
        }
        let addrs: Vec<String> = db.get_hostaddrs().iter().map(ToString::to_string).collect();
        if !addrs.is_empty() {
            parts.push(("hostaddr", addrs.join(",")));
        }
        let ports: Vec<String> = db.get_ports().iter().map(ToString::to_string).collect();
        if !ports.is_empty() {
            parts.push(("port", ports.join(",")));
        }
        if let Some(user) = db.get_user() {
            parts.push(("user", user.to_owned()));
        }
        parts.push(("dbname", dbname.to_owned()));
        let sslmode = match db.get_ssl_mode() {
            SslMode::Disable => "disable",
            SslMode::Require => "require",
            _ => "prefer",
        };
        parts.push(("sslmode", sslmode.to_owned()));
        if let Some(timeout) = db.get_connect_timeout() {
            parts.push(("connect_timeout", timeout.as_secs().max(1).to_string()));
        }
        parts.push(("application_name", crate::db::Purpose::Backup.application_name().to_owned()));
        let conninfo = parts
            .iter()
            .map(|(key, value)| format!("{key}={}", conninfo_value(value)))
            .collect::<Vec<_>>()
            .join(" ");
        let password = db.get_password().map(|p| String::from_utf8_lossy(p).into_owned());
        Target { conninfo, password }
    }
}

/// A libpq conninfo value: single-quoted, with `\` and `'` backslash-escaped.
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// What the child's standard streams are connected to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pipes {
    pub stdin: bool,
    pub stdout: bool,
}

/// A running tool. Dropping it kills the program.
pub(crate) struct Child {
    tool: Tool,
    child: tokio::process::Child,
    stderr: JoinHandle<String>,
}

/// Starts `tool` with `args` against `target`.
pub(crate) fn spawn(tools: &Tools, tool: Tool, args: &[OsString], target: &Target, pipes: Pipes) -> Result<Child, Error> {
    let binary = tools.dir.join(tool.name());
    let mut cmd = Command::new(&binary);
    cmd.arg(format!("--dbname={}", target.conninfo))
        .arg("--no-password")
        .args(args)
        .stdin(if pipes.stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(if pipes.stdout { Stdio::piped() } else { Stdio::null() })
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for var in PG_ENV {
        cmd.env_remove(var);
    }
    // Messages in English whatever the locale: some are read (pg_basebackup's WAL positions,
    // pg_dump's "no matching tables").
    cmd.env("LC_MESSAGES", "C").env_remove("LANGUAGE");
    if let Some(password) = &target.password {
        cmd.env("PGPASSWORD", password);
    }
    tracing::debug!(binary = %binary.display(), args = ?args, "starting");
    let mut child = cmd
        .spawn()
        .map_err(|source| Error::ToolNotRunnable { binary, source })?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let stderr = tokio::spawn(async move {
        let mut tail: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buf[..n]);
            if tail.len() > 2 * STDERR_TAIL {
                tail.drain(..tail.len() - STDERR_TAIL);
            }
        }
        let start = tail.len().saturating_sub(STDERR_TAIL);
        String::from_utf8_lossy(&tail[start..]).trim().to_owned()
    });
    Ok(Child { tool, child, stderr })
}

impl Child {
    pub(crate) fn take_stdout(&mut self) -> ChildStdout {
        self.child.stdout.take().expect("spawned with a stdout pipe")
    }

    pub(crate) fn take_stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("spawned with a stdin pipe")
    }

    pub(crate) fn name(&self) -> &'static str {
        self.tool.name()
    }

    /// Waits for the program to exit; a non-zero exit becomes [`Error::ToolFailed`] with its
    /// stderr.
    pub(crate) async fn wait(self) -> Result<(), Error> {
        self.wait_with_stderr().await.map(drop)
    }

    /// [`Child::wait`], returning the (tail of the) stderr of a successful run.
    pub(crate) async fn wait_with_stderr(mut self) -> Result<String, Error> {
        let status = self.child.wait().await.map_err(|source| Error::ToolNotRunnable {
            binary: PathBuf::from(self.tool.name()),
            source,
        })?;
        let stderr = (&mut self.stderr).await.unwrap_or_default();
        if status.success() {
            if !stderr.is_empty() {
                tracing::debug!(tool = self.tool.name(), stderr = %stderr, "finished with messages");
            }
            return Ok(stderr);
        }
        let stderr = if stderr.is_empty() { format!("exited with {status}") } else { format!("{stderr} ({status})") };
        Err(Error::ToolFailed { tool: self.tool.name(), stderr })
    }
}

/// Runs `job` (which drives tool children) for at most `limit`; on expiry the job is dropped,
/// which kills its children.
pub(crate) async fn bounded<T>(
    tool: Tool,
    limit: Duration,
    job: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout(limit, job)
        .await
        .unwrap_or(Err(Error::ToolTimedOut { tool: tool.name(), seconds: limit.as_secs() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(major: u32) -> Tools {
        Tools { dir: PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")), major, version: String::new() }
    }

    #[test]
    fn the_matching_major_wins_else_the_newest_newer_else_none() {
        let cases: &[(&[u32], u32, Option<u32>)] = &[
            (&[17, 16, 15], 16, Some(16)),
            (&[15, 16, 17], 16, Some(16)),
            (&[17, 18], 16, Some(18)),
            (&[14, 15], 16, None),
            (&[], 16, None),
            (&[16], 16, Some(16)),
            (&[9, 12], 10, Some(12)),
        ];
        for (installed, server, expected) in cases {
            let installed: Vec<Tools> = installed.iter().map(|m| tools(*m)).collect();
            let chosen = choose(&installed, *server).map(|t| t.major);
            assert_eq!(chosen, *expected, "installed {installed:?}, server {server}");
        }
    }

    #[test]
    fn versions_parse_from_every_known_format() {
        let cases = [
            ("pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)", Some(15)),
            ("pg_dump (PostgreSQL) 17beta1", Some(17)),
            ("pg_dump (PostgreSQL) 9.6.24", Some(9)),
            ("pg_dump", None),
        ];
        for (text, major) in cases {
            assert_eq!(crate::instance::parse_version(text), major, "{text}");
        }
        assert_eq!(server_major(150020), 15);
        assert_eq!(server_major(90624), 9);
    }

    #[test]
    fn conninfo_quotes_every_value() {
        let mut db = Config::new();
        db.host("db.example").port(5433).user("o'brien").password("s3cret");
        let target = Target::new(&db, "shop db");
        assert!(target.conninfo.contains("host='db.example'"), "{}", target.conninfo);
        assert!(target.conninfo.contains("user='o\\'brien'"), "{}", target.conninfo);
        assert!(target.conninfo.contains("dbname='shop db'"), "{}", target.conninfo);
        assert!(!target.conninfo.contains("s3cret"), "the password must not be on the command line");
        assert_eq!(target.password.as_deref(), Some("s3cret"));
    }
}
