//! Reading `postmaster.pid` and deciding whether the postmaster it names is really alive.
//!
//! The file outlives a crashed server, and in containers its pid is often reused by an
//! unrelated process, so "the pid exists" is not enough: on Linux we also require the process
//! to be no zombie and to have its working directory in the data directory (the postmaster and
//! every backend `chdir` there).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;

use super::Error;

const PID_FILE: &str = "postmaster.pid";

/// What `postmaster.pid` says (lines 1, 4, 5 and 8 of the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PidFile {
    pub pid: u32,
    pub port: Option<u16>,
    pub socket_dir: Option<PathBuf>,
    /// `starting`, `ready`, `standby` or `stopping` once the server has written it.
    pub status: Option<String>,
}

/// The state of a data directory's postmaster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Postmaster {
    /// No `postmaster.pid`.
    Absent,
    /// The file names a live postmaster of this data directory.
    Running(PidFile),
    /// The file is left over: its process is gone, or is something else.
    Stale(PidFile),
}

/// Looks at `data_dir/postmaster.pid` and the process it names.
pub(crate) fn probe(data_dir: &Path) -> Result<Postmaster, Error> {
    let Some(file) = read(data_dir)? else {
        return Ok(Postmaster::Absent);
    };
    if process_alive(file.pid) && works_in(file.pid, data_dir) {
        Ok(Postmaster::Running(file))
    } else {
        Ok(Postmaster::Stale(file))
    }
}

/// Removes a stale pid file whose pid now belongs to an unrelated live process, which
/// PostgreSQL would take for a running postmaster and refuse to start. A pid file of a dead
/// process is left alone: PostgreSQL handles that case itself, including its check that no
/// orphaned backend still uses the old shared memory. Only done where we can prove (Linux
/// `/proc`) that no process at all works in the data directory.
pub(crate) fn clear_if_pid_reused(data_dir: &Path, stale: &PidFile) -> Result<(), Error> {
    if !cfg!(target_os = "linux") || !process_alive(stale.pid) || anyone_works_in(data_dir) {
        return Ok(());
    }
    let path = data_dir.join(PID_FILE);
    tracing::warn!(pid = stale.pid, path = %path.display(), "removing stale postmaster.pid whose pid was reused");
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", &path)(e)),
        _ => Ok(()),
    }
}

/// Polls until process `pid` is gone or `limit` passes; returns whether it is gone.
pub(crate) async fn wait_until_gone(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while process_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

fn read(data_dir: &Path) -> Result<Option<PidFile>, Error> {
    let path = data_dir.join(PID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(parse(&text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", &path)(e)),
    }
}

/// Parses the file defensively: the server writes it line by line while starting.
fn parse(text: &str) -> Option<PidFile> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let line = |n: usize| lines.get(n).copied().filter(|l| !l.is_empty());
    // A negative pid marks a single-user backend; it still owns the directory.
    let pid = line(0)?.parse::<i64>().ok()?.unsigned_abs();
    Some(PidFile {
        pid: u32::try_from(pid).ok()?,
        port: line(3).and_then(|p| p.parse().ok()),
        socket_dir: line(4).map(PathBuf::from),
        status: line(7).map(str::to_owned),
    })
}

/// Whether `pid` exists and is not a zombie (a zombie has exited but not been reaped, and
/// would otherwise look alive to `kill(pid, 0)`).
pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match kill(Pid::from_raw(raw), None) {
        Ok(()) | Err(Errno::EPERM) => !is_zombie(pid),
        Err(_) => false,
    }
}

#[cfg(target_os = "linux")]
fn is_zombie(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true; // vanished since the kill() check
    };
    // The state follows the parenthesised command name, which may itself contain ") ".
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    matches!(state, Some('Z' | 'X'))
}

#[cfg(not(target_os = "linux"))]
fn is_zombie(_pid: u32) -> bool {
    false
}

/// Whether process `pid` has its working directory in `data_dir`. Without `/proc` (or without
/// permission to look) we cannot tell and answer yes, trusting the pid.
fn works_in(pid: u32, data_dir: &Path) -> bool {
    if !cfg!(target_os = "linux") {
        return true;
    }
    let Ok(wanted) = fs::canonicalize(data_dir) else {
        return false;
    };
    match fs::read_link(format!("/proc/{pid}/cwd")) {
        Ok(cwd) => cwd == wanted,
        Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
    }
}

/// Whether any process on the machine works in `data_dir` (Linux only).
fn anyone_works_in(data_dir: &Path) -> bool {
    let Ok(wanted) = fs::canonicalize(data_dir) else {
        return false;
    };
    let Ok(entries) = fs::read_dir("/proc") else {
        return true; // cannot prove otherwise
    };
    entries.filter_map(Result::ok).any(|entry| {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.parse::<u32>().is_ok());
        is_pid && fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd == wanted)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_pid_port_socket_dir_and_status() {
        let text = "4242\n/data\n1700000000\n6543\n/run/pg\n127.0.0.1\n  1234   5678\nready   \n";
        let file = parse(text).expect("parsed");
        assert_eq!(file.pid, 4242);
        assert_eq!(file.port, Some(6543));
        assert_eq!(file.socket_dir.as_deref(), Some(Path::new("/run/pg")));
        assert_eq!(file.status.as_deref(), Some("ready"));
    }

    #[test]
    fn parse_accepts_a_file_still_being_written_and_rejects_garbage() {
        let partial = parse("4242\n/data\n").expect("parsed");
        assert_eq!(
            (partial.pid, partial.port, partial.status),
            (4242, None, None)
        );
        assert_eq!(parse("-77\n").map(|f| f.pid), Some(77));
        assert_eq!(parse(""), None);
        assert_eq!(parse("not a pid\n"), None);
    }

    #[test]
    fn our_own_process_is_alive_and_not_working_in_some_other_directory() {
        let me = std::process::id();
        assert!(process_alive(me));
        if cfg!(target_os = "linux") {
            assert!(!works_in(me, Path::new("/")));
        }
    }
}
