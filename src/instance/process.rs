//! The one place where dbagent starts child processes: the managed instance's programs
//! (`initdb`, `pg_ctl`, `postgres`, `pg_basebackup`, `pg_isready`) and the backup module's
//! (`pg_dump`, `pg_restore`, `pg_basebackup`).
//!
//! Every program is built by [`command`] (arguments as a list, never a shell; the user switch
//! when we are root; the libpq variables of our own environment removed, see [`PG_ENV`]), and
//! started by one of:
//!
//! * [`run`] / [`run_blocking`]: to completion, output captured, killed after a time limit;
//! * [`spawn`]: streaming (stdin/stdout piped as asked), stderr read as it runs and its tail
//!   kept for the error message; the program is killed when its [`Child`] is dropped, so a
//!   caller bounding the whole job with a timeout (and dropping it) leaves nothing behind.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::process::{ChildStdin, ChildStdout};
use tokio::task::JoinHandle;

use super::Error;
use super::user::ServerUser;

/// Environment variables that libpq, the server and `pg_ctl` read (libpq's "Environment
/// Variables" section, PostgreSQL 18). An inherited value would silently redirect or
/// authenticate our commands (another host, port, user, data directory, service file, TLS
/// key or certificate), so children never see ours; everything they need is passed as
/// arguments, and a password only as the `PGPASSWORD` its caller sets after this scrub.
pub(crate) const PG_ENV: &[&str] = &[
    // where and as whom to connect
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGDATABASE",
    "PGUSER",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGREQUIREAUTH",
    "PGCHANNELBINDING",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSYSCONFDIR",
    "PGOPTIONS",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
    "PGTARGETSESSIONATTRS",
    "PGLOADBALANCEHOSTS",
    "PGMINPROTOCOLVERSION",
    "PGMAXPROTOCOLVERSION",
    // TLS and Kerberos/GSSAPI
    "PGSSLMODE",
    "PGREQUIRESSL",
    "PGSSLNEGOTIATION",
    "PGSSLCOMPRESSION",
    "PGSSLCERT",
    "PGSSLKEY",
    "PGSSLCERTMODE",
    "PGSSLROOTCERT",
    "PGSSLCRL",
    "PGSSLCRLDIR",
    "PGSSLSNI",
    "PGREQUIREPEER",
    "PGSSLMINPROTOCOLVERSION",
    "PGSSLMAXPROTOCOLVERSION",
    "PGGSSENCMODE",
    "PGKRBSRVNAME",
    "PGGSSLIB",
    "PGGSSDELEGATION",
    // session defaults
    "PGDATESTYLE",
    "PGTZ",
    "PGGEQO",
    "PGCLIENTENCODING",
    "PGLOCALEDIR",
    // the server and pg_ctl
    "PGDATA",
    "PGCTLTIMEOUT",
];

/// How much of a streaming program's stderr [`spawn`] keeps for the error message.
const STDERR_TAIL: usize = 16 * 1024;

/// Builds the command for program `name` in `dir`, run as `user`, with stdin closed.
pub(crate) fn command(dir: &Path, name: &str, args: &[&OsStr], user: &ServerUser) -> Command {
    prepare(Command::new(dir.join(name)), args, user)
}

/// [`command`] for an already created `cmd` (the tests hand it an environment to scrub).
fn prepare(mut cmd: Command, args: &[&OsStr], user: &ServerUser) -> Command {
    cmd.args(args).stdin(Stdio::null());
    for var in PG_ENV {
        cmd.env_remove(var);
    }
    user.apply(&mut cmd);
    cmd
}

/// Runs `cmd` to completion, capturing stdout and stderr, killing it after `limit`.
pub(crate) async fn run(cmd: Command, limit: Duration) -> Result<Output, Error> {
    let binary = program(&cmd);
    tracing::debug!(binary = %binary.display(), args = ?args(&cmd), "running");
    let mut cmd = tokio::process::Command::from(cmd);
    // Dropping the future on timeout (or when our caller is cancelled) must not leave the
    // program running behind our back.
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|source| Error::CommandNotRunnable {
        binary: binary.clone(),
        source,
    })?;
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(output) => output.map_err(|source| Error::CommandNotRunnable { binary, source }),
        Err(_elapsed) => Err(Error::CommandTimedOut {
            binary,
            seconds: limit.as_secs(),
        }),
    }
}

/// Blocking twin of [`run`] for synchronous callers. Only for programs with short output:
/// the pipes are read after the program exits, so output beyond a pipe buffer would stall it
/// until the limit.
pub(crate) fn run_blocking(mut cmd: Command, limit: Duration) -> Result<Output, Error> {
    let binary = program(&cmd);
    tracing::debug!(binary = %binary.display(), args = ?args(&cmd), "running");
    let not_runnable = |source| Error::CommandNotRunnable {
        binary: binary.clone(),
        source,
    };
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(not_runnable)?;
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().map_err(not_runnable)?.is_some() {
            return child.wait_with_output().map_err(not_runnable);
        }
        if Instant::now() >= deadline {
            // Best effort: the program may exit between the check and the kill.
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::CommandTimedOut {
                binary,
                seconds: limit.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Which of a streaming child's standard streams are pipes to us (the others are closed;
/// stderr is always captured).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pipes {
    pub stdin: bool,
    pub stdout: bool,
}

/// A program started by [`spawn`]. Dropping it kills the program.
pub(crate) struct Child {
    binary: PathBuf,
    child: tokio::process::Child,
    stderr: JoinHandle<String>,
}

/// Starts `cmd` (built by [`command`]) without waiting for it; see the module doc.
pub(crate) fn spawn(cmd: Command, pipes: Pipes) -> Result<Child, Error> {
    let binary = program(&cmd);
    tracing::debug!(binary = %binary.display(), args = ?args(&cmd), "starting");
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(if pipes.stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(if pipes.stdout { Stdio::piped() } else { Stdio::null() })
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|source| Error::CommandNotRunnable {
        binary: binary.clone(),
        source,
    })?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let stderr = tokio::spawn(stderr_tail(stderr));
    Ok(Child { binary, child, stderr })
}

/// Reads `stderr` to its end, keeping the last [`STDERR_TAIL`] bytes.
async fn stderr_tail(mut stderr: tokio::process::ChildStderr) -> String {
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
}

impl Child {
    /// The program's stdout; `None` unless it was spawned with a stdout pipe (or it was taken).
    pub(crate) fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The program's stdin; `None` unless it was spawned with a stdin pipe (or it was taken).
    pub(crate) fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    /// Waits for the program to exit: its status and the tail of its stderr. Unbounded; the
    /// caller bounds the job (dropping it kills the program).
    pub(crate) async fn wait(mut self) -> Result<(ExitStatus, String), Error> {
        let status = self.child.wait().await.map_err(|source| Error::CommandNotRunnable {
            binary: self.binary.clone(),
            source,
        })?;
        let stderr = (&mut self.stderr).await.unwrap_or_default();
        Ok((status, stderr))
    }
}

/// What a failed program said: its stderr, or its stdout when stderr is empty.
pub(crate) fn failure_text(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    let text = if stderr.is_empty() {
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    } else {
        stderr
    };
    format!("{text} ({})", output.status)
}

fn program(cmd: &Command) -> PathBuf {
    PathBuf::from(cmd.get_program())
}

fn args(cmd: &Command) -> Vec<&OsStr> {
    cmd.get_args().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn children_never_see_our_libpq_variables() {
        // The environment the child would inherit from us, set on the command itself so the
        // test does not change the process's environment under other tests.
        let mut inherited = Command::new("/bin/sh");
        inherited.env("PGSSLKEY", "/home/me/.postgresql/postgresql.key").env("PGHOST", "elsewhere").env("KEPT", "yes");
        let script = "echo \"key=${PGSSLKEY-unset} host=${PGHOST-unset} kept=${KEPT-unset}\"";
        let cmd = prepare(inherited, &[OsStr::new("-c"), OsStr::new(script)], &ServerUser::Current);
        let output = run(cmd, Duration::from_secs(10)).await.expect("sh runs");
        let text = String::from_utf8_lossy(&output.stdout);
        assert_eq!(text.trim(), "key=unset host=unset kept=yes");
    }

    #[tokio::test]
    async fn a_streaming_child_reports_its_stderr_and_status() {
        let script = [OsStr::new("-c"), OsStr::new("cat; echo broken >&2; exit 3")];
        let cmd = prepare(Command::new("/bin/sh"), &script, &ServerUser::Current);
        let mut child = spawn(cmd, Pipes { stdin: true, stdout: true }).expect("sh starts");
        drop(child.take_stdin());
        let mut stdout = child.take_stdout().expect("stdout is piped");
        let mut text = String::new();
        stdout.read_to_string(&mut text).await.expect("read stdout");
        let (status, stderr) = child.wait().await.expect("sh exits");
        assert_eq!(status.code(), Some(3));
        assert_eq!(stderr, "broken");
    }

    #[test]
    fn the_scrub_list_covers_every_variable_that_could_redirect_or_authenticate() {
        for var in ["PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD", "PGPASSFILE", "PGSERVICE", "PGSERVICEFILE", "PGSSLMODE", "PGSSLCERT", "PGSSLKEY", "PGSSLROOTCERT", "PGSSLCRL", "PGREQUIRESSL", "PGOPTIONS", "PGAPPNAME", "PGCONNECT_TIMEOUT", "PGTARGETSESSIONATTRS", "PGCHANNELBINDING", "PGGSSENCMODE", "PGKRBSRVNAME", "PGDATA"] {
            assert!(PG_ENV.contains(&var), "{var}");
        }
    }
}
