//! The life cycle of one managed cluster: create it (`initdb`), start it or adopt the server
//! already running on it, stop it, promote it. Each public operation holds the cluster's
//! [`lock`](super::lock) throughout, so concurrent callers take turns.

use std::ffi::OsStr;
use std::process::Command;
use std::time::{Duration, Instant};

use super::binaries::{self, Binaries};
use super::layout::Layout;
use super::lock::{self, ClusterLock};
use super::pidfile::{self, PidFile, Postmaster};
use super::user::ServerUser;
use super::{Error, Running, Settings, StopMode, conf, port, process, status};

const INITDB_TIMEOUT: Duration = Duration::from_secs(120);
/// How long to wait for another operation on the same cluster (initdb plus a start, say).
const LOCK_TIMEOUT: Duration = Duration::from_secs(300);
const LOG_TAIL_LINES: usize = 30;

/// Everything the operations on one cluster need.
pub(crate) struct Cluster {
    pub layout: Layout,
    pub bins: Binaries,
    pub user: ServerUser,
    pub superuser: String,
    /// The requested port (`Settings::port`).
    pub port: Option<u16>,
    /// WAL archiving (`Settings::archive`).
    pub archive: Option<super::Archive>,
    /// TLS with generated certificates (`Settings::ssl`).
    pub ssl: bool,
}

impl Cluster {
    /// Resolves paths, binaries (of the data directory's version, when it exists) and user.
    pub(crate) fn load(settings: &Settings) -> Result<Self, Error> {
        let layout = Layout::new(&settings.data_dir)?;
        let version = layout.data_version()?;
        let wanted = version.map(|v| (layout.data_dir.as_path(), v));
        let bins = binaries::find(settings.bin_dir.as_deref(), wanted)?;
        Cluster::with_binaries(settings, layout, bins)
    }

    /// Like [`Cluster::load`] with binaries already chosen (a replica takes its primary's).
    pub(crate) fn with_binaries(
        settings: &Settings,
        layout: Layout,
        bins: Binaries,
    ) -> Result<Self, Error> {
        Ok(Cluster {
            layout,
            bins,
            user: ServerUser::resolve()?,
            superuser: settings.superuser.clone(),
            port: settings.port,
            archive: settings.archive.clone(),
            ssl: settings.ssl,
        })
    }

    /// Takes the cluster's lock, creating the parent directory it lives in if needed.
    pub(crate) async fn lock(&self) -> Result<ClusterLock, Error> {
        self.layout.prepare_parent(&self.user)?;
        lock::acquire(&self.layout, LOCK_TIMEOUT).await
    }

    pub(crate) fn command(&self, name: &str, args: &[&OsStr]) -> Command {
        process::command(&self.bins.dir, name, args, &self.user)
    }

    pub(crate) fn data_dir(&self) -> &OsStr {
        self.layout.data_dir.as_os_str()
    }

    pub(crate) fn log_tail(&self) -> String {
        status::tail(&self.layout.log_file, LOG_TAIL_LINES)
            .unwrap_or_else(|e| format!("(could not read the server log: {e})"))
    }

    pub(crate) fn probe(&self) -> Result<Postmaster, Error> {
        pidfile::probe(&self.layout.data_dir)
    }
}

/// Creates the cluster with `initdb` unless `PG_VERSION` already exists, and writes the
/// settings dbagent manages. Returns whether it was created.
pub async fn init(settings: &Settings) -> Result<bool, Error> {
    let cluster = Cluster::load(settings)?;
    let _lock = cluster.lock().await?;
    cluster.init().await
}

/// Starts the cluster (creating it first if needed) and returns once it accepts connections.
///
/// When a live postmaster already owns the data directory, it is reused and the result has
/// `started_by_us: false`. A server we start runs in its own session (pg_ctl `setsid`s it, and
/// pg_ctl itself runs in its own process group), so a Ctrl-C aimed at dbagent does not reach
/// it; the caller stops it with [`stop`].
pub async fn start(settings: &Settings) -> Result<Running, Error> {
    let cluster = Cluster::load(settings)?;
    let _lock = cluster.lock().await?;
    cluster.start().await
}

/// Stops the cluster's server and waits (bounded) until its process is gone. Returns whether
/// a server was running.
pub async fn stop(settings: &Settings, mode: StopMode) -> Result<bool, Error> {
    let layout = Layout::new(&settings.data_dir)?;
    if pidfile::probe(&layout.data_dir)? == Postmaster::Absent {
        return Ok(false); // nothing to stop, and no binaries needed to say so
    }
    let cluster = Cluster::load(settings)?;
    let _lock = cluster.lock().await?;
    let Postmaster::Running(file) = cluster.probe()? else {
        return Ok(false);
    };
    cluster.stop(&file, mode).await?;
    tracing::info!(pid = file.pid, data_dir = %cluster.layout.data_dir.display(), ?mode, "stopped PostgreSQL");
    Ok(true)
}

/// The WAL position of the latest checkpoint of a stopped cluster (`pg_controldata`): after a
/// clean shutdown, its shutdown checkpoint, the last record the server wrote.
pub async fn checkpoint_lsn(settings: &Settings) -> Result<u64, Error> {
    let cluster = Cluster::load(settings)?;
    let data_dir = cluster.data_dir().to_owned();
    let mut cmd = cluster.command("pg_controldata", &[&data_dir]);
    // Its labels are translated: read them in English.
    cmd.env("LC_ALL", "C").env_remove("LANGUAGE");
    let output = process::run(cmd, Duration::from_secs(30)).await?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let failed = |stderr: String| Error::ControlData { data_dir: cluster.layout.data_dir.clone(), stderr };
    if !output.status.success() {
        return Err(failed(process::failure_text(&output)));
    }
    text.lines()
        .find_map(|line| line.strip_prefix("Latest checkpoint location:"))
        .and_then(|lsn| crate::backup::wal::parse_lsn(lsn.trim()))
        .ok_or_else(|| failed(format!("no \"Latest checkpoint location\" in its output: {text}")))
}

/// Promotes a running standby to a primary and waits until it accepts writes.
pub async fn promote(settings: &Settings) -> Result<(), Error> {
    let cluster = Cluster::load(settings)?;
    let _lock = cluster.lock().await?;
    if !matches!(cluster.probe()?, Postmaster::Running(_)) {
        return Err(Error::NotRunning {
            data_dir: cluster.layout.data_dir,
        });
    }
    cluster.promote().await?;
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

    /// Start with the lock held: used by [`start`] and by replica creation.
    pub(crate) async fn start(&self) -> Result<Running, Error> {
        if let Some(fence) = super::fenced(&self.layout.data_dir)?
            && !fence.allows_standby(&self.layout.data_dir)
        {
            return Err(Error::Fenced { data_dir: self.layout.data_dir.clone(), successor: fence.successor });
        }
        self.init().await?;
        if let Some(running) = self.adopt().await? {
            return Ok(running);
        }
        let port = port::choose(self.port, conf::remembered_port(&self.layout))?;
        self.configure(Some(port))?;
        let ours = self.launch().await?;
        match self.wait_until_ready().await {
            Ok((file, port)) => {
                tracing::info!(pid = file.pid, port, data_dir = %self.layout.data_dir.display(), ours, "started PostgreSQL");
                Ok(self.running(file, port, ours))
            }
            Err(e) => {
                if ours {
                    self.take_down().await;
                }
                Err(e)
            }
        }
    }

    /// Writes the managed settings. Also run on clusters dbagent did not create, whose
    /// `postgresql.conf` would otherwise not include them.
    fn configure(&self, port: Option<u16>) -> Result<(), Error> {
        conf::ensure_included(&self.layout)?;
        conf::ensure_replication_hba(&self.layout)?;
        if let Some(archive) = &self.archive {
            conf::prepare_archive(archive, &self.user)?;
        }
        if self.ssl {
            super::certs::ensure(&self.layout.data_dir, &self.user)?;
        }
        conf::write(&self.layout, port, self.archive.as_ref(), self.ssl, &self.user)
    }

    /// Reuses a live postmaster of this data directory (another dbagent's, or one left by a
    /// previous run); clears a pid file left by a process whose pid was since reused.
    async fn adopt(&self) -> Result<Option<Running>, Error> {
        match self.probe()? {
            Postmaster::Running(_) => {
                let (file, port) = self.wait_until_ready().await?;
                tracing::info!(
                    pid = file.pid,
                    port,
                    "reusing the PostgreSQL server already running"
                );
                Ok(Some(self.running(file, port, false)))
            }
            Postmaster::Stale(file) => {
                pidfile::clear_if_pid_reused(&self.layout.data_dir, &file)?;
                Ok(None)
            }
            Postmaster::Absent => Ok(None),
        }
    }

    fn running(&self, file: PidFile, port: u16, started_by_us: bool) -> Running {
        Running {
            port,
            socket_dir: file
                .socket_dir
                .unwrap_or_else(|| self.layout.socket_dir.clone()),
            pid: file.pid,
            data_dir: self.layout.data_dir.clone(),
            superuser: self.superuser.clone(),
            started_by_us,
        }
    }
}
