//! Wiring: from a [`Config`] to a running agent (database chosen or started, pools built,
//! background checks running), and back down again in order.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::config::{Config, Secret};
use crate::db::Pools;
use crate::instance;
use crate::monitor::Stats;
use crate::query::{Executor, Limits};

/// How often replicas' health and lag (and the primary's health) are checked.
const HEALTH_CHECK_EVERY: Duration = Duration::from_secs(1);

/// A started agent: its executor and, when it runs one, its managed instance.
pub struct Agent {
    pub executor: Arc<Executor>,
    pub config: Arc<Config>,
    pub started: Instant,
    managed: Option<(instance::Settings, instance::Running)>,
}

impl Agent {
    /// Starts everything `config` asks for. With no database configured, starts (or reuses)
    /// the managed instance first and points the primary pool at it.
    pub async fn start(mut config: Config) -> anyhow::Result<Agent> {
        let managed = if config.postgresql.is_configured() {
            None
        } else {
            let settings = instance_settings(&config)?;
            let running = instance::start(&settings).await.context("cannot start the managed PostgreSQL instance")?;
            tracing::info!(
                data_dir = %running.data_dir.display(),
                port = running.port,
                reused = !running.started_by_us,
                "managed PostgreSQL instance is running"
            );
            config.postgresql.url = Some(Secret::new(running.url(&config.instance.database)));
            Some((settings, running))
        };
        let pools = Arc::new(Pools::new(&config.postgresql)?);
        pools.check_health().await;
        pools.spawn_health_checks(HEALTH_CHECK_EVERY);
        let stats = Arc::new(Stats::default());
        let executor = Arc::new(Executor::new(pools, stats, Limits::from_config(&config)));
        Ok(Agent { executor, config: Arc::new(config), started: Instant::now(), managed })
    }

    /// The API's shared state.
    pub fn state(&self) -> AppState {
        AppState { executor: self.executor.clone(), config: self.config.clone(), started: self.started }
    }

    /// The managed instance, when this agent runs one.
    pub fn managed_instance(&self) -> Option<&instance::Running> {
        self.managed.as_ref().map(|(_, running)| running)
    }

    /// Closes the pools (waiting for connections to end cleanly) and stops the managed
    /// instance if this agent started it.
    pub async fn stop(self) {
        let Agent { executor, managed, .. } = self;
        match Arc::try_unwrap(executor) {
            Ok(executor) => match Arc::try_unwrap(executor.pools) {
                Ok(pools) => pools.close(Duration::from_secs(5)).await,
                Err(_) => tracing::warn!("pools still in use at shutdown; their connections close with the process"),
            },
            Err(_) => tracing::warn!("executor still in use at shutdown"),
        }
        if let Some((settings, running)) = managed {
            if running.started_by_us {
                match instance::stop(&settings, instance::StopMode::Fast).await {
                    Ok(_) => tracing::info!("managed PostgreSQL instance stopped"),
                    Err(err) => tracing::error!(error = %crate::db::error_chain(&err), "cannot stop the managed instance"),
                }
            }
        }
    }
}

/// The managed instance's settings, with the data directory made absolute.
pub fn instance_settings(config: &Config) -> anyhow::Result<instance::Settings> {
    let dir = &config.instance.data_dir;
    let data_dir = if dir.is_absolute() { dir.clone() } else { std::env::current_dir()?.join(dir) };
    let mut settings = instance::Settings::new(normalize(&data_dir));
    settings.port = config.instance.port;
    settings.bin_dir = config.instance.bin_dir.clone();
    Ok(settings)
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
    tracing::info!(%address, database = %agent.executor.pools.primary().location, "dbagent is serving");
    eprintln!("dbagent listening on http://{address}");
    let router = api::router(agent.state());
    let served = axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await;
    tracing::info!("shutting down");
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
