//! Wiring: from a [`Config`] to a running agent (database chosen or started, pools built,
//! background checks running), and back down again in order.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::cache::Cache;
use crate::config::{self, Config, Secret};
use crate::db::Pools;
use crate::{backup, instance, migrate};
use crate::monitor::Stats;
use crate::query::{Executor, Limits};
use crate::replication::{Managed, Supervisor};

/// A started agent: its executor, the replication supervisor and, when it runs them, the
/// managed clusters (held by the supervisor, since failover changes them).
pub struct Agent {
    pub executor: Arc<Executor>,
    pub config: Arc<Config>,
    pub started: Instant,
    pub replication: Arc<Supervisor>,
    pub migrations: Arc<migrate::Service>,
    pub auto_migrate: Arc<migrate::AutoMigrate>,
    pub backup: Arc<backup::Settings>,
    pub backup_schedule: Arc<backup::ScheduleStats>,
    supervising: tokio::task::JoinHandle<()>,
}

impl Agent {
    /// Starts everything `config` asks for. With no database configured, starts (or reuses)
    /// the managed instance and its replicas first and points the pools at them.
    pub async fn start(mut config: Config) -> anyhow::Result<Agent> {
        let managed = if config.postgresql.is_configured() {
            None
        } else {
            let settings = instance_settings(&config)?;
            let managed = Managed::start(&settings, config.replication.replicas, &config.instance.database)
                .await
                .context("cannot start the managed PostgreSQL instance")?;
            let primary = &managed.primary.running;
            tracing::info!(
                data_dir = %primary.data_dir.display(),
                port = primary.port,
                reused = !primary.started_by_us,
                replicas = managed.replicas.len(),
                "managed PostgreSQL instance is running"
            );
            point_at_managed(&mut config, &managed);
            Some(managed)
        };
        let backup = match backup::Settings::from_config(&config) {
            Ok(settings) => Arc::new(settings),
            Err(err) => {
                if let Some(managed) = &managed {
                    managed.stop().await;
                }
                return Err(anyhow::Error::new(err).context("invalid backup settings (backup:)"));
            }
        };
        let pools = match Pools::new(&config.postgresql) {
            Ok(pools) => Arc::new(pools),
            Err(err) => {
                if let Some(managed) = &managed {
                    managed.stop().await;
                }
                return Err(err.into());
            }
        };
        pools.check_health().await;
        let replication = Supervisor::new(pools.clone(), config.replication.clone(), managed);
        let supervising = replication.spawn();
        let cache = Cache::new(&config, pools.clone())?;
        if let Some(cache) = &cache {
            cache.spawn_listener();
        }
        let stats = Arc::new(Stats::default());
        let mut executor = Executor::new(pools, stats, Limits::from_config(&config));
        executor.cache = cache;
        let executor = Arc::new(executor);
        let migrations = Arc::new(migrate::Service::new(&config));
        Ok(Agent {
            executor,
            config: Arc::new(config),
            started: Instant::now(),
            replication,
            migrations,
            auto_migrate: Arc::default(),
            backup,
            backup_schedule: Arc::default(),
            supervising,
        })
    }

    /// The API's shared state.
    pub fn state(&self) -> AppState {
        AppState {
            executor: self.executor.clone(),
            config: self.config.clone(),
            started: self.started,
            replication: self.replication.clone(),
            migrations: self.migrations.clone(),
            auto_migrate: self.auto_migrate.clone(),
            backup: self.backup.clone(),
            backup_schedule: self.backup_schedule.clone(),
        }
    }

    /// With `backup.enable` and a schedule, runs scheduled backups (and retention) until
    /// `shutdown`; with several agents, one takes each tick (advisory lock).
    pub fn spawn_backup_schedule(&self, shutdown: impl Future<Output = ()> + Send + 'static) {
        if !self.config.backup.enable || self.backup.schedule.is_none() {
            return;
        }
        let (settings, stats) = (self.backup.clone(), self.backup_schedule.clone());
        let db = self.executor.pools.admin_config();
        tokio::spawn(async move {
            if let Err(err) = backup::run_schedule(&db, &settings, &stats, shutdown).await {
                tracing::error!(error = %crate::db::error_chain(&err), "the backup schedule stopped");
            }
        });
    }

    /// With `migrations.auto_migrate`, applies pending migrations in the background;
    /// `/health/ready` answers 503 until they are done (and stays so if they fail). Several
    /// agents starting at once take turns on the migration lock.
    pub fn spawn_auto_migrate(&self) {
        if !self.config.migrations.auto_migrate {
            return;
        }
        let (service, state) = (self.migrations.clone(), self.auto_migrate.clone());
        let db = self.executor.pools.admin_config();
        state.set(migrate::AutoState::Running);
        tokio::spawn(async move {
            let up = migrate::Up { target: migrate::UpTarget::Head, dry_run: false, allow_out_of_order: false, by: "auto-migrate".into() };
            match service.up(&db, &up).await {
                Ok(report) => {
                    tracing::info!(applied = report.applied.len(), version = ?report.version, "auto-migrate done");
                    state.set(migrate::AutoState::Done { applied: report.applied.len(), version: report.version });
                }
                Err(err) => {
                    let error = crate::db::error_chain(&err);
                    tracing::error!(%error, "auto-migrate failed; /health/ready stays not ready");
                    state.set(migrate::AutoState::Failed { error });
                }
            }
        });
    }

    /// The managed clusters as they are now, when this agent runs them.
    pub fn managed(&self) -> Option<Managed> {
        self.replication.managed()
    }

    /// Stops supervising, closes the pools (waiting for connections to end cleanly) and stops
    /// the managed servers this agent started.
    pub async fn stop(self) {
        let Agent { executor, replication, supervising, .. } = self;
        supervising.abort();
        let _ = supervising.await;
        let managed = replication.managed();
        drop(replication);
        match Arc::try_unwrap(executor) {
            Ok(executor) => match Arc::try_unwrap(executor.pools) {
                Ok(pools) => pools.close(Duration::from_secs(5)).await,
                Err(_) => tracing::warn!("pools still in use at shutdown; their connections close with the process"),
            },
            Err(_) => tracing::warn!("executor still in use at shutdown"),
        }
        if let Some(managed) = managed {
            managed.stop().await;
        }
    }
}

/// Points the primary pool at the managed primary and puts the managed replicas first among
/// the read replicas (their pool index is their position in `managed.replicas`).
fn point_at_managed(config: &mut Config, managed: &Managed) {
    let db = &managed.database;
    config.postgresql.url = Some(Secret::new(managed.primary.running.url(db)));
    let ours = managed.replicas.iter().map(|r| config::Replica {
        url: Some(Secret::new(r.cluster.running.url(db))),
        max_lag_seconds: Some(config.replication.max_lag_seconds),
        ..config::Replica::default()
    });
    let theirs = std::mem::take(&mut config.postgresql.read_replicas);
    config.postgresql.read_replicas = ours.chain(theirs).collect();
}

/// The managed instance's settings, with the data directory made absolute.
pub fn instance_settings(config: &Config) -> anyhow::Result<instance::Settings> {
    let dir = &config.instance.data_dir;
    let data_dir = if dir.is_absolute() { dir.clone() } else { std::env::current_dir()?.join(dir) };
    let mut settings = instance::Settings::new(normalize(&data_dir));
    settings.port = config.instance.port;
    settings.bin_dir = config.instance.bin_dir.clone();
    if let Some(pitr) = crate::backup::Pitr::from_config(config)? {
        settings.archive = Some(pitr.archive(&config.backup.location)?);
    }
    Ok(settings)
}

/// A point-in-time recovery into `data_dir`, by default beside the managed instance's
/// (`<data_dir>-pitr-<timestamp>`), on a free port.
pub fn pitr_request(
    config: &Config,
    to_time: Option<chrono::DateTime<chrono::Utc>>,
    backup_id: Option<String>,
    data_dir: Option<std::path::PathBuf>,
) -> anyhow::Result<crate::backup::PitrRequest> {
    let mut cluster = instance_settings(config)?;
    cluster.port = None;
    cluster.data_dir = match data_dir {
        Some(dir) => normalize(&std::path::absolute(&dir)?),
        None => {
            let mut name = cluster.data_dir.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            name.push(format!("-pitr-{}", chrono::Utc::now().format("%Y%m%dT%H%M%S%3f")));
            cluster.data_dir.with_file_name(name)
        }
    };
    Ok(crate::backup::PitrRequest { to_time, backup_id, cluster })
}

/// `a/./b/../c` → `a/c` without touching the file system (the directory may not exist yet).
fn normalize(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Serves the API until SIGINT/SIGTERM, then drains requests, pools and the instance.
pub async fn serve(agent: Agent) -> anyhow::Result<()> {
    let server = &agent.config.server;
    let listener = TcpListener::bind((server.bind.as_str(), server.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", server.bind, server.port))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, database = %agent.executor.pools.primary().location(), "dbagent is serving");
    eprintln!("dbagent listening on http://{address}");
    agent.spawn_auto_migrate();
    let (stop_schedule, schedule_stopped) = tokio::sync::oneshot::channel::<()>();
    agent.spawn_backup_schedule(async move {
        let _ = schedule_stopped.await;
    });
    let router = api::router(agent.state());
    let served = axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await;
    tracing::info!("shutting down");
    let _ = stop_schedule.send(());
    agent.stop().await;
    served.context("the HTTP server failed")
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}
