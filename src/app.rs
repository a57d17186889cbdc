//! Wiring: from a [`Config`] to a running agent (database chosen or started, pools built,
//! background checks running), and back down again in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::api::{self, AppState};
use crate::cache::Cache;
use crate::config::{self, Config, Secret};
use crate::db::Pools;
use crate::{backup, instance, migrate};
use crate::monitor::{Monitor, Stats};
use crate::query::{Executor, Limits};
use crate::replication::{Managed, Supervisor};

/// Every `REFRESH_EVERY`, reads again what in the catalog runs user code, for changes other
/// clients made (dbagent's own DDL refreshes it at once).
fn spawn_guard_refresh(executor: std::sync::Weak<Executor>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::query::guard::REFRESH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(executor) = executor.upgrade() else { return };
            executor.refresh_guard().await;
        }
    })
}

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
    /// The WAL archive's freshness (RPO) and, for a server dbagent does not run, the
    /// `pg_receivewal` stream (`backup.pitr`; the watcher runs while serving).
    pub wal_watch: Arc<backup::WalWatch>,
    pub security: Arc<crate::security::Security>,
    pub monitor: Arc<Monitor>,
    /// Alert rules, channels and the engine's last evaluation (the engine runs while serving).
    pub alerts: Arc<crate::alerts::Alerts>,
    /// The scheduled maintenance jobs' status (`maintenance.jobs`), for `/health`.
    pub maintenance_jobs: Arc<crate::ops::jobs::JobsStatus>,
    supervising: tokio::task::JoinHandle<()>,
    /// Re-reads which functions, triggers and views run user code (`query::guard`).
    guarding: tokio::task::JoinHandle<()>,
    /// Re-reads the catalog for masking (`security.masking`, when it has rules).
    masking: Option<tokio::task::JoinHandle<()>>,
    /// The metrics collector (`monitoring.enable`); stopped with the agent.
    collecting: Option<(tokio::task::JoinHandle<()>, oneshot::Sender<()>)>,
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
        // (Decided before the config was pointed at the managed instance's URL.)
        let backup = match backup::Settings::from_config(&config).map(|s| if managed.is_some() { s.archived_by_managed_instance() } else { s }) {
            Ok(settings) => Arc::new(settings),
            Err(err) => {
                if let Some(managed) = &managed {
                    managed.stop().await;
                }
                return Err(anyhow::Error::new(err).context("invalid backup settings (backup:)"));
            }
        };
        let logins = role_logins(&config.security);
        let pools = match Pools::with_logins(&config.postgresql, &logins, config.security.role_pool_size) {
            Ok(pools) => Arc::new(pools),
            Err(err) => {
                if let Some(managed) = &managed {
                    managed.stop().await;
                }
                return Err(err.into());
            }
        };
        pools.check_health().await;
        if managed.is_some() {
            create_managed_extensions(&pools).await;
        }
        let replication = Supervisor::new(pools.clone(), config.replication.clone(), managed);
        let supervising = replication.spawn();
        let cache = Cache::new(&config, pools.clone())?;
        if let Some(cache) = &cache {
            cache.spawn_listener();
        }
        let stats = Arc::new(Stats::default());
        let mut executor = Executor::new(pools, stats, Limits::from_config(&config));
        executor.cache = cache;
        executor.masking = crate::security::masking::Masking::new(&config.security.masking, &executor.pools).map(Arc::new);
        let executor = Arc::new(executor);
        executor.refresh_masking().await;
        let masking = executor.masking.as_ref().map(|m| crate::security::masking::spawn_refresh(Arc::downgrade(m), m.refresh_every()));
        // Known before the first request; a server down now is read on the next tick.
        executor.refresh_guard().await;
        let guarding = spawn_guard_refresh(Arc::downgrade(&executor));
        let migrations = Arc::new(migrate::Service::new(&config));
        let security = match crate::security::Security::start(&config, &executor.pools).await {
            Ok(security) => Arc::new(security),
            Err(err) => {
                supervising.abort();
                guarding.abort();
                if let Some(masking) = &masking {
                    masking.abort();
                }
                if let Some(managed) = replication.managed() {
                    managed.stop().await;
                }
                return Err(anyhow::Error::new(err).context("cannot start access control (security:)"));
            }
        };
        let data_dir = managed_data_dir(&replication);
        let monitor = Arc::new(Monitor::new(&config.monitoring, &api::route_paths(), data_dir, Some(migrations.clone())));
        let collecting = spawn_collector(&monitor, &executor.pools);
        let alerts = crate::alerts::Alerts::new(&config);
        let maintenance_jobs = Arc::new(crate::ops::jobs::JobsStatus::new(&config.maintenance));
        Ok(Agent {
            executor,
            config: Arc::new(config),
            started: Instant::now(),
            replication,
            migrations,
            auto_migrate: Arc::default(),
            backup,
            backup_schedule: Arc::default(),
            wal_watch: Arc::default(),
            security,
            maintenance_jobs,
            monitor,
            alerts,
            supervising,
            guarding,
            masking,
            collecting,
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
            wal_watch: self.wal_watch.clone(),
            security: self.security.clone(),
            monitor: self.monitor.clone(),
            alerts: self.alerts.clone(),
            maintenance_jobs: self.maintenance_jobs.clone(),
        }
    }

    /// With `maintenance.enable` and jobs, runs each job on its schedule until `shutdown`
    /// changes; with several agents, one runs each tick (`ops::jobs`).
    fn spawn_maintenance_jobs(&self, agent_id: String, shutdown: tokio::sync::watch::Receiver<()>) {
        let settings = &self.config.maintenance;
        if !settings.enable || settings.jobs.is_empty() {
            return;
        }
        let context = crate::ops::jobs::Context {
            pools: self.executor.pools.clone(),
            settings: settings.clone(),
            agent: agent_id,
            status: self.maintenance_jobs.clone(),
        };
        crate::ops::jobs::spawn(Arc::new(context), shutdown);
    }

    /// With `backup.enable` and a schedule, runs scheduled backups (and retention) until
    /// `shutdown`; with several agents, one takes each tick (advisory lock).
    fn spawn_backup_schedule(&self, shutdown: impl Future<Output = ()> + Send + 'static) {
        // Databases replaced by restores whose `backup.keep_replaced_hours` are up: dropped
        // once at start (and by the schedule's leader on each tick).
        let db = self.executor.pools.admin_config();
        tokio::spawn(async move {
            if let Err(err) = backup::sweep_replaced(&db).await {
                tracing::warn!(error = %crate::db::error_chain(&err), "could not drop the expired replaced databases");
            }
        });
        if !self.config.backup.enable || self.backup.schedule.is_none() {
            return;
        }
        let (settings, stats) = (self.backup.clone(), self.backup_schedule.clone());
        let pools = self.executor.pools.clone();
        tokio::spawn(async move {
            if let Err(err) = backup::run_schedule(&|| pools.admin_config(), &settings, &stats, shutdown).await {
                tracing::error!(error = %crate::db::error_chain(&err), "the backup schedule stopped");
            }
        });
    }

    /// Cleans what an agent killed mid-job left (incomplete backups, restores' scratch
    /// databases), in the background.
    fn spawn_crash_cleanup(&self) {
        let settings = self.backup.clone();
        let db = self.executor.pools.admin_config();
        tokio::spawn(async move {
            backup::clean_up_after_crashes(&db, &settings).await;
        });
    }

    /// With `migrations.auto_migrate`, applies pending migrations in the background;
    /// `/health/ready` answers 503 until they are done (and stays so if they fail). Several
    /// agents starting at once take turns on the migration lock.
    fn spawn_auto_migrate(&self) {
        if !self.config.migrations.auto_migrate {
            return;
        }
        let (service, state) = (self.migrations.clone(), self.auto_migrate.clone());
        let db = self.executor.pools.admin_config();
        let executor = Arc::downgrade(&self.executor);
        state.set(migrate::AutoState::Running);
        tokio::spawn(async move {
            let up = migrate::Up { target: migrate::UpTarget::Head, dry_run: false, allow_out_of_order: false, by: "auto-migrate".into() };
            let result = service.up(&db, &up).await;
            // Ready only once what the migrations created is known to the session guard.
            if let Some(executor) = executor.upgrade() {
                executor.refresh_guard().await;
            }
            match result {
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
        self.shutdown(true).await;
    }

    /// [`Agent::stop`], leaving the managed servers running when `stop_instance` is false
    /// (`dbagent ... --keep-running`).
    pub async fn shutdown(self, stop_instance: bool) {
        let Agent { executor, replication, supervising, guarding, masking, security, collecting, .. } = self;
        if let Some((task, stop)) = collecting {
            let _ = stop.send(());
            let _ = task.await;
        }
        match Arc::try_unwrap(security) {
            Ok(security) => security.stop().await,
            Err(_) => tracing::warn!("access control still in use at shutdown; the audit queue may not be written out"),
        }
        supervising.abort();
        let _ = supervising.await;
        guarding.abort();
        let _ = guarding.await;
        if let Some(masking) = masking {
            masking.abort();
        }
        let managed = replication.managed();
        drop(replication);
        match Arc::try_unwrap(executor) {
            Ok(executor) => match Arc::try_unwrap(executor.pools) {
                Ok(pools) => pools.close(Duration::from_secs(5)).await,
                Err(_) => tracing::warn!("pools still in use at shutdown; their connections close with the process"),
            },
            Err(_) => tracing::warn!("executor still in use at shutdown"),
        }
        if let Some(managed) = managed.filter(|_| stop_instance) {
            managed.stop().await;
        }
    }
}

/// The logins read and write keys' statements run as (`security.read_role` / `write_role`).
fn role_logins(security: &config::Security) -> Vec<crate::db::Credentials> {
    use crate::db::{Credentials, Login};
    [(Login::Read, &security.read_role), (Login::Write, &security.write_role)]
        .into_iter()
        .map(|(login, role)| Credentials { login, user: role.user.clone(), password: role.password.as_ref().map(|p| p.expose().to_owned()) })
        .collect()
}

/// The extensions the managed instance preloads (`instance/conf.rs`) exist per database: they
/// are created here, in the database dbagent serves, once it is reachable. This is the one
/// place for them: `pg_stat_statements` feeds the index advisor's workload (`/indexes
/// suggest`) and the statement statistics. A failure is logged, not fatal: the advisor falls
/// back to the catalog without it.
async fn create_managed_extensions(pools: &Pools) {
    let statements = ["CREATE EXTENSION IF NOT EXISTS pg_stat_statements"];
    if let Err(err) = crate::db::admin::execute(&pools.admin_config(), crate::db::Purpose::Monitor, &statements).await {
        tracing::warn!(error = %crate::db::error_chain(&err), "cannot create pg_stat_statements in the managed database");
    }
}

/// The managed primary's data directory, when this agent runs the database.
fn managed_data_dir(replication: &Supervisor) -> Option<std::path::PathBuf> {
    replication.managed().map(|m| m.primary.running.data_dir.clone())
}

/// Starts the metrics collector when `monitoring.enable`: its own session, never a pool's.
fn spawn_collector(monitor: &Monitor, pools: &Arc<Pools>) -> Option<(tokio::task::JoinHandle<()>, oneshot::Sender<()>)> {
    let collector = monitor.collector.clone()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(collector.run(pools.clone(), async move {
        let _ = stopped.await;
    }));
    Some((task, stop))
}

/// Points the primary pool at the managed primary and puts the managed replicas first among
/// the read replicas (their pool index is their position in `managed.replicas`).
fn point_at_managed(config: &mut Config, managed: &Managed) {
    let db = &managed.database;
    config.postgresql.url = Some(Secret::new(managed.primary.running.url(db)));
    // Trust the instance's generated CA (instance.ssl), so verify-full works as it is.
    let ca = crate::instance::certs::ca_file(&managed.primary.running.data_dir);
    if config.postgresql.sslrootcert.is_none() && ca.is_file() {
        config.postgresql.sslrootcert = Some(ca.display().to_string());
    }
    let ours = managed.replicas.iter().map(|r| config::Replica {
        url: Some(Secret::new(r.cluster.running.url(db))),
        max_lag_seconds: Some(config.replication.max_lag_seconds),
        ..config::Replica::default()
    });
    let theirs = std::mem::take(&mut config.postgresql.read_replicas);
    config.postgresql.read_replicas = ours.chain(theirs).collect();
}

/// The managed instance's settings, with the data directory made absolute and the WAL
/// archive `backup.pitr` asks for.
pub fn instance_settings(config: &Config) -> anyhow::Result<instance::Settings> {
    let mut settings = instance::Settings::from_config(&config.instance)?;
    if let Some(pitr) = crate::backup::Pitr::from_config(config)? {
        settings.archive = Some(pitr.archive(&config.backup.location)?);
    }
    Ok(settings)
}

/// Serves the API until SIGINT/SIGTERM, then drains requests, pools and the instance.
pub async fn serve(agent: Agent) -> anyhow::Result<()> {
    let serving = match Serving::start(&agent).await {
        Ok(serving) => serving,
        Err(err) => {
            agent.stop().await;
            return Err(err);
        }
    };
    let scheme = if serving.https().is_some() { "https" } else { "http" };
    eprintln!("dbagent listening on {scheme}://{}", serving.address());
    if let Some(https) = serving.https() {
        tokio::spawn(reload_on_sighup(https));
    }
    let served = serving.until(shutdown_signal()).await;
    agent.stop().await;
    served
}

/// The API of an agent being served: bound to its address, with auto-migrate and the backup
/// schedule started. `dbagent serve` and the integration tests start it the same way (the
/// tests on port 0). Dropping it stops taking requests and stops the schedule, without
/// waiting.
pub struct Serving {
    address: SocketAddr,
    /// `/metrics` on `monitoring.prometheus.port`, when configured.
    metrics_address: Option<SocketAddr>,
    stop_http: oneshot::Sender<()>,
    stop_schedule: oneshot::Sender<()>,
    /// Stops the history sampler and the metrics listener (when sent, or dropped).
    stop_monitor: tokio::sync::watch::Sender<()>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    /// How long [`Serving::until`] waits for the requests in flight (`server.shutdown_timeout`).
    shutdown_timeout: Duration,
    https: Option<Arc<api::tls::Https>>,
}

impl Serving {
    /// Binds `server.bind:server.port` (port 0: a free port, see [`Serving::address`]),
    /// starts auto-migrate and the backup schedule, and serves `agent`'s API in the background.
    pub async fn start(agent: &Agent) -> anyhow::Result<Serving> {
        let server = &agent.config.server;
        let https = match &server.tls {
            Some(files) => Some(Arc::new(api::tls::Https::new(files).context("cannot set up HTTPS (server.tls)")?)),
            None => None,
        };
        let listener = api::edge::bind(&server.bind, server.port)
            .await
            .with_context(|| format!("cannot listen on {}:{}", server.bind, server.port))?;
        let address = listener.local_addr()?;
        tracing::info!(%address, database = %agent.executor.pools.primary().location(), "dbagent is serving");
        agent.spawn_auto_migrate();
        agent.spawn_crash_cleanup();
        let (stop_schedule, schedule_stopped) = oneshot::channel::<()>();
        agent.spawn_backup_schedule(async move {
            let _ = schedule_stopped.await;
        });
        let (stop_monitor, monitor_stopped) = tokio::sync::watch::channel(());
        let metrics_address = serve_metrics_port(agent, monitor_stopped.clone()).await?;
        agent.spawn_maintenance_jobs(crate::monitor::agent_id(address.port()), monitor_stopped.clone());
        spawn_history(agent, address, monitor_stopped.clone());
        spawn_wal_watch(agent, monitor_stopped.clone());
        if agent.backup.remote.is_some() {
            tokio::spawn(backup::remote::run(agent.backup.clone(), monitor_stopped.clone()));
        }
        spawn_alerts(agent, monitor_stopped);
        let (stop_http, http_stopped) = oneshot::channel::<()>();
        let mut router = api::router(agent.state());
        if https.is_some() {
            router = router.layer(axum::middleware::map_response(api::tls::hsts));
        }
        let limits = api::edge::EdgeLimits { header_read_timeout: server.header_read_timeout(), max_connections: server.max_connections };
        let files = api::edge::raise_open_file_limit();
        tracing::info!(open_files = files, max_connections = server.max_connections, "HTTP edge limits");
        let acceptor = https.as_ref().map(|h| h.acceptor());
        let http = tokio::spawn(api::edge::serve(listener, router, limits, acceptor, async move {
            let _ = http_stopped.await;
        }));
        let shutdown_timeout = server.shutdown_timeout();
        Ok(Serving { address, metrics_address, stop_http, stop_schedule, stop_monitor, http, shutdown_timeout, https })
    }

    /// The API's TLS (`server.tls`), for [`api::tls::Https::reload`] (SIGHUP).
    pub fn https(&self) -> Option<Arc<api::tls::Https>> {
        self.https.clone()
    }

    /// Where `/metrics` has a listener of its own (`monitoring.prometheus.port`).
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.metrics_address
    }

    /// Where the API listens (with the port the system chose for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until `signal` completes (or the HTTP server fails), then stops taking
    /// requests, lets the in-flight ones finish (for `server.shutdown_timeout` at most) and
    /// stops the backup schedule. The agent is stopped after by its owner ([`Agent::stop`]).
    pub async fn until(self, signal: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Serving { stop_http, stop_schedule, stop_monitor, mut http, shutdown_timeout, .. } = self;
        let served = tokio::select! {
            served = &mut http => served,
            () = signal => {
                tracing::info!("shutting down");
                let _ = stop_http.send(());
                match tokio::time::timeout(shutdown_timeout, &mut http).await {
                    Ok(served) => served,
                    Err(_) => {
                        tracing::warn!(?shutdown_timeout, "requests still in flight at the shutdown timeout; stopping anyway");
                        http.abort();
                        Ok(Ok(()))
                    }
                }
            }
        };
        let _ = stop_schedule.send(());
        let _ = stop_monitor.send(());
        served.context("the HTTP server task failed")?.context("the HTTP server failed")
    }
}

/// With `monitoring.prometheus: {enable: true, port: N}`, serves `/metrics` alone on port N
/// of the API's bind address until `stop` fires; returns where it listens.
async fn serve_metrics_port(agent: &Agent, stop: tokio::sync::watch::Receiver<()>) -> anyhow::Result<Option<SocketAddr>> {
    let prometheus = &agent.config.monitoring.prometheus;
    let (true, Some(port)) = (prometheus.enable, prometheus.port) else { return Ok(None) };
    let bind = agent.config.server.bind.as_str();
    let listener = TcpListener::bind((bind, port))
        .await
        .with_context(|| format!("cannot listen on {bind}:{port} (monitoring.prometheus.port)"))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, "serving /metrics");
    let router = api::metrics_router(agent.state());
    tokio::spawn(async move {
        let mut stop = stop;
        let served = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        });
        if let Err(err) = served.await {
            tracing::error!(error = %err, "the /metrics listener failed");
        }
    });
    Ok(Some(address))
}

/// With `monitoring.enable`, samples the metric history as agent `<host>:<port>` until
/// `stop` fires.
fn spawn_history(agent: &Agent, address: SocketAddr, stop: tokio::sync::watch::Receiver<()>) {
    let monitor = &agent.monitor;
    if !monitor.settings.enable {
        return;
    }
    let sources = crate::monitor::history::Sources {
        stats: agent.executor.stats.clone(),
        requests: monitor.requests.clone(),
        pools: agent.executor.pools.clone(),
        collector: monitor.collector.clone(),
        cache: agent.executor.cache.clone(),
        backups: (agent.config.backup.enable && agent.backup.schedule.is_some()).then(|| agent.backup_schedule.clone()),
        data_dir: monitor.data_dir.clone(),
    };
    let agent_id = crate::monitor::agent_id(address.port());
    crate::monitor::history::spawn(sources, monitor.settings.clone(), agent_id, async move {
        let mut stop = stop;
        let _ = stop.changed().await;
    });
}

/// With `backup.pitr`, watches the WAL archive's freshness and, for a server dbagent does not
/// run, streams its WAL with `pg_receivewal` (`backup::stream`) until `stop` fires.
fn spawn_wal_watch(agent: &Agent, stop: tokio::sync::watch::Receiver<()>) {
    if agent.backup.pitr.is_none() {
        return;
    }
    let (watch, pools, settings) = (agent.wal_watch.clone(), agent.executor.pools.clone(), agent.backup.clone());
    tokio::spawn(backup::stream::run(watch, pools, settings, stop));
}

/// With `alerts.enabled`, evaluates the alert rules (on the agent holding the alerts' lock)
/// until `stop` fires.
fn spawn_alerts(agent: &Agent, stop: tokio::sync::watch::Receiver<()>) {
    if !agent.config.alerts.enabled {
        return;
    }
    crate::alerts::spawn(agent.alerts.clone(), agent.alert_sources(), async move {
        let mut stop = stop;
        let _ = stop.changed().await;
    });
}

impl Agent {
    /// What the alert rules read, from this agent.
    pub fn alert_sources(&self) -> crate::alerts::reading::Sources {
        crate::alerts::reading::Sources {
            pools: self.executor.pools.clone(),
            stats: self.executor.stats.clone(),
            requests: self.monitor.requests.clone(),
            backups: (self.config.backup.enable && self.backup.schedule.is_some()).then(|| (self.backup.clone(), self.backup_schedule.clone())),
            wal: self.backup.pitr.is_some().then(|| (self.backup.clone(), self.wal_watch.clone())),
            remote: self.backup.remote.is_some().then(|| self.backup.clone()),
            auto_migrate: self.auto_migrate.clone(),
            migrations: self.migrations.clone(),
            data_dir: self.monitor.data_dir.clone(),
        }
    }
}

/// Reads the API's certificate files again on every SIGHUP; a bad file keeps the old ones.
async fn reload_on_sighup(https: Arc<api::tls::Https>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else { return };
    while hangups.recv().await.is_some() {
        match https.reload() {
            Ok(()) => tracing::info!("reloaded the API's TLS certificate (SIGHUP)"),
            Err(err) => tracing::error!(error = %err, "cannot reload the API's TLS certificate; still serving the old one"),
        }
    }
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
