//! The backup module's programs: `pg_dump`, `pg_restore`, `pg_basebackup` and `pg_receivewal`, from the
//! installation whose major version suits the server.
//!
//! They are started through `instance::process`, the one launcher: arguments as a list (never
//! a shell), none of the `PG*` variables of our own environment (an inherited `PGHOST` or
//! `PGSSLKEY` would silently point it elsewhere or authenticate it), stderr captured (the last
//! 16 KiB) for the error message, and the child killed when its handle is dropped, so a
//! cancelled or timed-out job leaves no program behind. Here each gets the connection as one
//! libpq conninfo argument and the password through `PGPASSWORD` (never the command line).
//!
//! Which binaries: `bin_dir` when configured (refused if older than the server); otherwise
//! the installation whose major version equals the server's, else the newest newer one
//! (pg_dump reads older servers, never newer ones), else an error with the install hint.

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::{ChildStdin, ChildStdout};
use tokio_postgres::config::Host;

use super::Error;
use crate::instance::{self, ServerUser, process};

pub(crate) use crate::instance::process::Pipes;

/// `--version` answers at once; anything slower is broken.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

// Named after the programs (pg_dump, ...): the shared prefix is theirs.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tool {
    PgDump,
    PgRestore,
    PgBasebackup,
    PgReceivewal,
}

impl Tool {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tool::PgDump => "pg_dump",
            Tool::PgRestore => "pg_restore",
            Tool::PgBasebackup => "pg_basebackup",
            Tool::PgReceivewal => "pg_receivewal",
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

/// Directories worth looking in (the managed instance's search: `PATH`, then the usual install
/// locations), without two that are the same directory.
fn candidates() -> Vec<PathBuf> {
    let mut unique: Vec<PathBuf> = Vec::new();
    for dir in instance::search_dirs() {
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
    let version = read_version(&real_dir).await?;
    Ok(crate::instance::parse_version(&version).map(|major| Tools { dir: real_dir, major, version }))
}

/// `pg_dump --version` of the `pg_dump` in `dir`.
async fn read_version(dir: &Path) -> Result<String, Error> {
    let cmd = process::command(dir, "pg_dump", &[OsStr::new("--version")], &ServerUser::Current);
    let output = process::run(cmd, VERSION_TIMEOUT).await.map_err(|err| launch_error(err, "pg_dump --version"))?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The launcher's error as this module's. The launcher only fails to start a program or
/// stops one that ran out of time; anything else it might add is kept as the cause.
fn launch_error(err: instance::Error, tool: &'static str) -> Error {
    match err {
        instance::Error::CommandNotRunnable { binary, source } => Error::ToolNotRunnable { binary, source },
        instance::Error::CommandTimedOut { seconds, .. } => Error::ToolTimedOut { tool, seconds },
        other => Error::ToolNotRunnable { binary: PathBuf::from(tool), source: std::io::Error::other(other) },
    }
}

/// Where a tool connects: one libpq conninfo string, plus the password for `PGPASSWORD` and
/// the TLS settings for `PGSSLMODE` and the others (files named in the environment, not on the
/// command line).
pub(crate) struct Target {
    conninfo: String,
    password: Option<String>,
    tls: Vec<(&'static str, String)>,
}

impl Target {
    /// The server `db` points at, database `dbname`.
    pub(crate) fn new(db: &crate::db::PgConfig, dbname: &str) -> Target {
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
        Target { conninfo, password, tls: db.tls().libpq_env() }
    }

    /// The same target under another `application_name` (what `pg_stat_replication` and
    /// `synchronous_standby_names` see).
    pub(crate) fn named(mut self, application_name: &str) -> Target {
        let ours = format!("application_name={}", conninfo_value(crate::db::Purpose::Backup.application_name()));
        self.conninfo = self.conninfo.replace(&ours, &format!("application_name={}", conninfo_value(application_name)));
        self
    }
}

/// A libpq conninfo value: single-quoted, with `\` and `'` backslash-escaped.
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A running tool. Dropping it kills the program.
pub(crate) struct Child {
    tool: Tool,
    child: process::Child,
}

/// Starts `tool` with `args` against `target`.
pub(crate) fn spawn(tools: &Tools, tool: Tool, args: &[OsString], target: &Target, pipes: Pipes) -> Result<Child, Error> {
    spawn_as(tools, tool, args, target, pipes, &ServerUser::Current)
}

/// [`spawn`] as `user` (the server's OS user, for files a recovering server must read).
pub(crate) fn spawn_as(tools: &Tools, tool: Tool, args: &[OsString], target: &Target, pipes: Pipes, user: &ServerUser) -> Result<Child, Error> {
    let dbname = OsString::from(format!("--dbname={}", target.conninfo));
    let mut cmd = process::command(&tools.dir, tool.name(), &[&dbname, OsStr::new("--no-password")], user);
    cmd.args(args);
    // Messages in English whatever the locale: some are read (pg_basebackup's WAL positions,
    // pg_dump's "no matching tables").
    cmd.env("LC_MESSAGES", "C").env_remove("LANGUAGE");
    cmd.envs(target.tls.iter().map(|(k, v)| (k, v)));
    if let Some(password) = &target.password {
        cmd.env("PGPASSWORD", password);
    }
    let child = process::spawn(cmd, pipes).map_err(|err| launch_error(err, tool.name()))?;
    Ok(Child { tool, child })
}

impl Child {
    pub(crate) fn take_stdout(&mut self) -> ChildStdout {
        self.child.take_stdout().expect("spawned with a stdout pipe")
    }

    pub(crate) fn take_stdin(&mut self) -> ChildStdin {
        self.child.take_stdin().expect("spawned with a stdin pipe")
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
    pub(crate) async fn wait_with_stderr(self) -> Result<String, Error> {
        let (status, stderr) = self.child.wait().await.map_err(|err| launch_error(err, self.tool.name()))?;
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
        let mut db = tokio_postgres::Config::new();
        db.host("db.example").port(5433).user("o'brien").password("s3cret");
        let db = crate::db::PgConfig::new(db, crate::db::tls::Tls::disabled());
        let target = Target::new(&db, "shop db");
        assert!(target.conninfo.contains("host='db.example'"), "{}", target.conninfo);
        assert!(target.conninfo.contains("user='o\\'brien'"), "{}", target.conninfo);
        assert!(target.conninfo.contains("dbname='shop db'"), "{}", target.conninfo);
        assert!(!target.conninfo.contains("s3cret"), "the password must not be on the command line");
        assert_eq!(target.password.as_deref(), Some("s3cret"));
    }
}
