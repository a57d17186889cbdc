//! The one place where dbagent starts child processes.
//!
//! Every PostgreSQL program is built by [`command`] (arguments as a list, never a shell; the
//! user switch when we are root; libpq variables from our environment removed) and run by
//! [`run`] or [`run_blocking`] with its output captured and a time limit, after which it is
//! killed.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::Error;
use super::user::ServerUser;

/// Environment variables that libpq and the server read. Inherited values would silently
/// redirect our commands (another data directory, host, port or user), so children never see
/// them; everything they need is passed as arguments.
const PG_ENV: &[&str] = &[
    "PGDATA",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGOPTIONS",
    "PGAPPNAME",
    "PGSSLMODE",
    "PGCONNECT_TIMEOUT",
    "PGTARGETSESSIONATTRS",
    "PGTZ",
    "PGDATESTYLE",
    "PGCLIENTENCODING",
    "PGCTLTIMEOUT",
];

/// Builds the command for program `name` in `dir`, run as `user`, with stdin closed.
pub(crate) fn command(dir: &Path, name: &str, args: &[&OsStr], user: &ServerUser) -> Command {
    let mut cmd = Command::new(dir.join(name));
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
