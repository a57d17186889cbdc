//! Driving a cluster's server process through `pg_ctl`, and waiting for it.
//!
//! Every wait is bounded: `pg_ctl` gets its own `-t` limit and we kill it when ours passes.

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use super::cluster::Cluster;
use super::pidfile::{self, PidFile, Postmaster};
use super::{Error, StopMode, process};

/// How long a server may take to accept connections (crash recovery included).
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);
const PROMOTE_TIMEOUT: Duration = Duration::from_secs(60);
/// `pg_isready`'s own connection timeout is 3 s; this only guards against a hung program.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the postmaster process may linger after `pg_ctl` saw its pid file go.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Difference between `pg_ctl`'s own `-t` and our limit on it.
const GRACE: Duration = Duration::from_secs(10);

impl Cluster {
    /// Runs `pg_ctl start`. Returns `true` once our server runs, `false` when it failed because
    /// another starter's server took the data directory meanwhile (that one is then used).
    pub(crate) async fn launch(&self) -> Result<bool, Error> {
        // pg_ctl's own limit is longer than ours, so if it fails it did so because its server
        // exited, and if we time out it is still waiting for its own server.
        let secs = (START_TIMEOUT + GRACE).as_secs().to_string();
        let mut cmd = self.command("pg_ctl", &[OsStr::new("start")]);
        cmd.arg("-D").arg(self.data_dir());
        cmd.arg("-l").arg(&self.layout.log_file);
        cmd.args(["-w", "-t", &secs, "-s"]);
        // Out of dbagent's process group so a terminal Ctrl-C cannot hit pg_ctl (or, through
        // it, the server) before dbagent has a chance to stop it cleanly.
        cmd.process_group(0);
        let output = match process::run(cmd, START_TIMEOUT).await {
            Ok(output) => output,
            Err(Error::CommandTimedOut { .. }) => {
                // The running server is the one pg_ctl was waiting for: never leave it
                // half-started behind us.
                self.take_down().await;
                return Err(Error::StartTimeout {
                    seconds: START_TIMEOUT.as_secs(),
                    log_tail: self.log_tail(),
                });
            }
            Err(e) => return Err(e),
        };
        if output.status.success() {
            return Ok(true);
        }
        if matches!(self.probe()?, Postmaster::Running(_)) {
            return Ok(false);
        }
        Err(Error::StartFailed {
            stderr: process::failure_text(&output),
            log_tail: self.log_tail(),
        })
    }

    /// Waits until the postmaster reports itself ready (or a ready standby) and accepts TCP
    /// connections. Returns its pid file and port.
    pub(crate) async fn wait_until_ready(&self) -> Result<(PidFile, u16), Error> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let Postmaster::Running(file) = self.probe()? else {
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
        let args = [
            "-q",
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-d",
            "postgres",
            "-t",
            "3",
            "-U",
        ];
        let mut cmd = self.command("pg_isready", &args.map(OsStr::new));
        cmd.arg(&self.superuser);
        Ok(process::run(cmd, PROBE_TIMEOUT).await?.status.success())
    }

    /// Stops the server `file` describes and waits until its process is gone.
    pub(crate) async fn stop(&self, file: &PidFile, mode: StopMode) -> Result<(), Error> {
        self.pg_ctl_stop(mode).await?;
        if !pidfile::wait_until_gone(file.pid, EXIT_TIMEOUT).await {
            return Err(Error::StopTimeout {
                pid: file.pid,
                seconds: EXIT_TIMEOUT.as_secs(),
            });
        }
        Ok(())
    }

    async fn pg_ctl_stop(&self, mode: StopMode) -> Result<(), Error> {
        let secs = STOP_TIMEOUT.as_secs().to_string();
        let mut cmd = self.command("pg_ctl", &[OsStr::new("stop")]);
        cmd.arg("-D").arg(self.data_dir());
        cmd.args(["-m", mode.as_pg_ctl_arg(), "-w", "-t", &secs, "-s"]);
        let output = process::run(cmd, STOP_TIMEOUT + GRACE).await?;
        let still_running = matches!(self.probe()?, Postmaster::Running(_));
        if !output.status.success() && still_running {
            return Err(Error::StopFailed {
                stderr: process::failure_text(&output),
            });
        }
        Ok(())
    }

    /// Best-effort immediate stop of a server that failed to start; the start's own error is
    /// what the caller reports, so a failure here is only logged.
    pub(crate) async fn take_down(&self) {
        let Ok(Postmaster::Running(file)) = self.probe() else {
            return;
        };
        if let Err(e) = self.stop(&file, StopMode::Immediate).await {
            tracing::error!(pid = file.pid, error = %e, "could not stop a PostgreSQL server that failed to start");
        }
    }

    /// `pg_ctl promote -w`: returns once the server accepts writes.
    pub(crate) async fn promote(&self) -> Result<(), Error> {
        let secs = PROMOTE_TIMEOUT.as_secs().to_string();
        let mut cmd = self.command("pg_ctl", &[OsStr::new("promote")]);
        cmd.arg("-D").arg(self.data_dir());
        cmd.args(["-w", "-t", &secs, "-s"]);
        let output = process::run(cmd, PROMOTE_TIMEOUT + GRACE).await?;
        if !output.status.success() {
            return Err(Error::PromoteFailed {
                stderr: process::failure_text(&output),
            });
        }
        Ok(())
    }
}
