//! The life cycle of one managed cluster: create it (`initdb`), start it or adopt the server
//! already running on it, wait until it accepts connections, stop it, promote it.
//!
//! Every wait is bounded: `pg_ctl` gets its own `-t` limit and we kill it a little after that.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use super::binaries::{self, Binaries};
use super::layout::Layout;
use super::pidfile::{self, PidFile, Postmaster};
use super::user::ServerUser;
use super::{Error, Running, Settings, StopMode, conf, port, process, status};

const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a server may take to accept connections (crash recovery included).
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
const PROMOTE_TIMEOUT: Duration = Duration::from_secs(60);
/// `pg_isready`'s own connection timeout is 3 s; this only guards against a hung program.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the postmaster process may linger after `pg_ctl` saw its pid file go.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Extra time given to `pg_ctl` beyond its own `-t` before we kill it.
const GRACE: Duration = Duration::from_secs(10);
const LOG_TAIL_LINES: usize = 30;

/// Everything the operations on one cluster need.
pub(crate) struct Cluster {
    pub layout: Layout,
    pub bins: Binaries,
    pub user: ServerUser,
    pub superuser: String,
}

impl Cluster {
    /// Resolves paths, binaries (of the data directory's version, when it exists) and user.
    pub(crate) fn load(settings: &Settings) -> Result<Self, Error> {
        let layout = Layout::new(&settings.data_dir)?;
        let version = layout.data_version()?;
        let wanted = version.map(|v| (layout.data_dir.as_path(), v));
        let bins = binaries::find(settings.bin_dir.as_deref(), wanted)?;
        Ok(Cluster {
            layout,
            bins,
            user: ServerUser::resolve()?,
            superuser: settings.superuser.clone(),
        })
    }

    fn command(&self, name: &str, args: &[&OsStr]) -> Command {
        process::command(&self.bins.dir, name, args, &self.user)
    }

    fn data_dir(&self) -> &OsStr {
        self.layout.data_dir.as_os_str()
    }

    fn log_tail(&self) -> String {
        status::tail(&self.layout.log_file, LOG_TAIL_LINES)
            .unwrap_or_else(|e| format!("(could not read the server log: {e})"))
    }
}

/// Creates the cluster with `initdb` unless `PG_VERSION` already exists, and writes the
/// settings dbagent manages. Returns whether it was created.
pub async fn init(settings: &Settings) -> Result<bool, Error> {
    Cluster::load(settings)?.init().await
}

/// Starts the cluster (creating it first if needed) and returns once it accepts connections.
///
/// When a live postmaster already owns the data directory, it is reused and the result has
/// `started_by_us: false`. A server we start runs in its own session (pg_ctl `setsid`s it, and
/// pg_ctl itself runs in its own process group), so a Ctrl-C aimed at dbagent does not reach
/// it; the caller stops it with [`stop`].
pub async fn start(settings: &Settings) -> Result<Running, Error> {
    let cluster = Cluster::load(settings)?;
    cluster.init().await?;
    if let Some(running) = cluster.adopt().await? {
        return Ok(running);
    }
    let port = port::choose(settings.port, conf::remembered_port(&cluster.layout))?;
    cluster.configure(Some(port))?;
    cluster.pg_ctl_start().await?;
    match cluster.wait_until_ready().await {
        Ok((file, port)) => {
            tracing::info!(pid = file.pid, port, data_dir = %cluster.layout.data_dir.display(), "started PostgreSQL");
            Ok(cluster.running(file, port, true))
        }
        Err(e) => {
            cluster.take_down().await;
            Err(e)
        }
    }
}

/// Stops the cluster's server and waits (bounded) until its process is gone. Returns whether
/// a server was running.
pub async fn stop(settings: &Settings, mode: StopMode) -> Result<bool, Error> {
    let layout = Layout::new(&settings.data_dir)?;
    let Postmaster::Running(file) = pidfile::probe(&layout.data_dir)? else {
        return Ok(false);
    };
    let cluster = Cluster::load(settings)?;
    cluster.pg_ctl_stop(mode).await?;
    if !pidfile::wait_until_gone(file.pid, EXIT_TIMEOUT).await {
        return Err(Error::StopTimeout {
            pid: file.pid,
            seconds: EXIT_TIMEOUT.as_secs(),
        });
    }
    tracing::info!(pid = file.pid, data_dir = %cluster.layout.data_dir.display(), ?mode, "stopped PostgreSQL");
    Ok(true)
}

/// Promotes a running standby to a primary and waits until it accepts writes.
pub async fn promote(settings: &Settings) -> Result<(), Error> {
    let cluster = Cluster::load(settings)?;
    if !matches!(pidfile::probe(&cluster.layout.data_dir)?, Postmaster::Running(_)) {
        return Err(Error::NotRunning {
            data_dir: cluster.layout.data_dir,
        });
    }
    let secs = PROMOTE_TIMEOUT.as_secs().to_string();
    let mut cmd = cluster.command("pg_ctl", &[OsStr::new("promote")]);
    cmd.arg("-D").arg(cluster.data_dir());
    cmd.args(["-w", "-t", &secs, "-s"]);
    let output = process::run(cmd, PROMOTE_TIMEOUT + GRACE).await?;
    if !output.status.success() {
        return Err(Error::PromoteFailed {
            stderr: process::failure_text(&output),
        });
    }
    tracing::info!(data_dir = %cluster.layout.data_dir.display(), "promoted PostgreSQL standby");
    Ok(())
}

impl Cluster {
    async fn init(&self) -> Result<bool, Error> {
        self.layout.prepare(&self.user)?;
        if self.layout.is_initialized() {
            return Ok(false);
        }
        let started = Instant::now();
        self.run_initdb().await?;
        self.configure(None)?;
        tracing::info!(data_dir = %self.layout.data_dir.display(), elapsed_ms = started.elapsed().as_millis(), "created PostgreSQL cluster");
        Ok(true)
    }

    async fn run_initdb(&self) -> Result<(), Error> {
        let mut args: Vec<&OsStr> = vec![OsStr::new("-D"), self.data_dir(), OsStr::new("-U")];
        args.push(OsStr::new(&self.superuser));
        args.extend(["--auth=trust", "--encoding=UTF8"].map(OsStr::new));
        if self.bins.version >= 13 {
            args.push(OsStr::new("--no-instructions")); // added in PostgreSQL 13
        }
        let output = process::run(self.command("initdb", &args), INITDB_TIMEOUT).await?;
        if !output.status.success() {
            return Err(Error::InitdbFailed {
                stderr: process::failure_text(&output),
            });
        }
        Ok(())
    }

    /// Writes the managed settings. Also run on clusters dbagent did not create, whose
    /// `postgresql.conf` would otherwise not include them.
    fn configure(&self, port: Option<u16>) -> Result<(), Error> {
        conf::ensure_included(&self.layout)?;
        conf::ensure_replication_hba(&self.layout)?;
        conf::write(&self.layout, port, &self.user)
    }

    /// Reuses a live postmaster of this data directory; clears a pid file left by a process
    /// whose pid was since reused.
    async fn adopt(&self) -> Result<Option<Running>, Error> {
        match pidfile::probe(&self.layout.data_dir)? {
            Postmaster::Running(_) => {
                let (file, port) = self.wait_until_ready().await?;
                tracing::info!(pid = file.pid, port, "reusing the PostgreSQL server already running");
                Ok(Some(self.running(file, port, false)))
            }
            Postmaster::Stale(file) => {
                pidfile::clear_if_pid_reused(&self.layout.data_dir, &file)?;
                Ok(None)
            }
            Postmaster::Absent => Ok(None),
        }
    }

    async fn pg_ctl_start(&self) -> Result<(), Error> {
        let secs = START_TIMEOUT.as_secs().to_string();
        let mut cmd = self.command("pg_ctl", &[OsStr::new("start")]);
        cmd.arg("-D").arg(self.data_dir());
        cmd.arg("-l").arg(&self.layout.log_file);
        cmd.args(["-w", "-t", &secs, "-s"]);
        // Out of dbagent's process group so a terminal Ctrl-C cannot hit pg_ctl (or, through
        // it, the server) before dbagent has a chance to stop it cleanly.
        cmd.process_group(0);
        let stderr = match process::run(cmd, START_TIMEOUT + GRACE).await {
            Ok(output) if output.status.success() => return Ok(()),
            Ok(output) => process::failure_text(&output),
            Err(e @ Error::CommandTimedOut { .. }) => e.to_string(),
            Err(e) => return Err(e),
        };
        // pg_ctl gives up after -t but leaves a slow server running: take it down so a failed
        // start never leaves a half-started server behind.
        if self.take_down().await {
            return Err(Error::StartTimeout {
                seconds: START_TIMEOUT.as_secs(),
                log_tail: self.log_tail(),
            });
        }
        Err(Error::StartFailed {
            stderr,
            log_tail: self.log_tail(),
        })
    }

    /// Waits until the postmaster reports itself ready (or a ready standby) and accepts TCP
    /// connections. Returns its pid file and port.
    async fn wait_until_ready(&self) -> Result<(PidFile, u16), Error> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let Postmaster::Running(file) = pidfile::probe(&self.layout.data_dir)? else {
                return Err(Error::StartFailed {
                    stderr: "the server exited while starting".to_owned(),
                    log_tail: self.log_tail(),
                });
            };
            let up = matches!(file.status.as_deref(), Some("ready" | "standby"));
            if let Some(port) = file.port.filter(|_| up)
                && self.accepts_connections(port).await?
            {
                return Ok((file, port));
            }
            if Instant::now() >= deadline {
                return Err(Error::StartTimeout {
                    seconds: START_TIMEOUT.as_secs(),
                    log_tail: self.log_tail(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `pg_isready` over TCP, as a client of this cluster would connect.
    async fn accepts_connections(&self, port: u16) -> Result<bool, Error> {
        let port = port.to_string();
        let args = ["-q", "-h", "127.0.0.1", "-p", &port, "-d", "postgres", "-t", "3", "-U"];
        let mut cmd = self.command("pg_isready", &args.map(OsStr::new));
        cmd.arg(&self.superuser);
        Ok(process::run(cmd, PROBE_TIMEOUT).await?.status.success())
    }

    async fn pg_ctl_stop(&self, mode: StopMode) -> Result<(), Error> {
        let secs = STOP_TIMEOUT.as_secs().to_string();
        let mut cmd = self.command("pg_ctl", &[OsStr::new("stop")]);
        cmd.arg("-D").arg(self.data_dir());
        cmd.args(["-m", mode.as_pg_ctl_arg(), "-w", "-t", &secs, "-s"]);
        let output = process::run(cmd, STOP_TIMEOUT + GRACE).await?;
        let still_running = matches!(
            pidfile::probe(&self.layout.data_dir)?,
            Postmaster::Running(_)
        );
        if !output.status.success() && still_running {
            return Err(Error::StopFailed {
                stderr: process::failure_text(&output),
            });
        }
        Ok(())
    }

    /// Best-effort immediate stop after a failed start. Returns whether a server was running.
    async fn take_down(&self) -> bool {
        let Ok(Postmaster::Running(file)) = pidfile::probe(&self.layout.data_dir) else {
            return false;
        };
        if let Err(e) = self.pg_ctl_stop(StopMode::Immediate).await {
            tracing::error!(pid = file.pid, error = %e, "could not stop a PostgreSQL server that failed to start");
        }
        pidfile::wait_until_gone(file.pid, EXIT_TIMEOUT).await;
        true
    }

    fn running(&self, file: PidFile, port: u16, started_by_us: bool) -> Running {
        Running {
            port,
            socket_dir: file.socket_dir.unwrap_or_else(|| self.layout.socket_dir.clone()),
            pid: file.pid,
            data_dir: self.layout.data_dir.clone(),
            superuser: self.superuser.clone(),
            started_by_us,
        }
    }
}
