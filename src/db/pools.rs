//! The primary pool and one pool per read replica, and the routing between them.
//!
//! Writes always go to the primary. Reads go round-robin to replicas that are healthy and not
//! lagging past their `max_lag_seconds`; with none usable they go to the primary.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bb8::{ErrorSink, Pool, PooledConnection, RunError};
use serde::Serialize;
use tokio_util::task::TaskTracker;

use super::conn::{ConnectError, Manager, Role, Upstream};
use super::{Error, Lsn, endpoint};
use crate::config;

/// How long the primary's health check waits for an answer.
const PRIMARY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a health check waits to connect (a refused connection fails at once).
const MONITOR_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Where a statement must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The primary, read-write.
    Write,
    /// A healthy replica, else the primary.
    Read,
}

/// A checked-out connection and where it came from.
pub struct Lease<'a> {
    conn: PooledConnection<'a, Manager>,
    /// Index of the replica serving it; `None` for the primary.
    pub replica: Option<usize>,
}

impl std::ops::Deref for Lease<'_> {
    type Target = super::Conn;
    fn deref(&self) -> &super::Conn {
        &self.conn
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut super::Conn {
        &mut self.conn
    }
}

/// All pools of one agent.
pub struct Pools {
    primary: Endpoint,
    replicas: Vec<Endpoint>,
    next_replica: AtomicUsize,
    tasks: TaskTracker,
}

/// One server and its pool.
pub struct Endpoint {
    /// `primary` or `replica-N`.
    pub name: String,
    /// Where it is; failover re-points the primary's.
    upstream: Arc<Upstream>,
    pool: Pool<Manager>,
    acquire_timeout: Duration,
    waiting: AtomicU32,
    health: Health,
    max_lag: Option<Duration>,
    last_connect_error: Arc<Mutex<Option<(Instant, String)>>>,
    /// A replica promoted to be the primary: it no longer serves as a replica.
    retired: AtomicBool,
    /// The connection settings as configured (before dbagent's session options).
    configured: tokio_postgres::Config,
    /// The health checks' own connection (with the upstream generation it was opened for):
    /// outside the pool, so a busy or exhausted pool never reads as a dead server (which could
    /// set off a failover), and a refused connection is seen at once.
    monitor: tokio::sync::Mutex<Option<(tokio_postgres::Client, u64)>>,
}

/// What the last check saw. LSNs are 0 when unknown.
#[derive(Default)]
struct Health {
    healthy: AtomicBool,
    /// Replay lag in milliseconds; `u64::MAX` when unknown.
    lag_ms: AtomicU64,
    checked: AtomicBool,
    /// Primary: `pg_current_wal_lsn()`. Replica: `pg_last_wal_receive_lsn()`.
    received_lsn: AtomicU64,
    /// Replica: `pg_last_wal_replay_lsn()`; only ever grows while the replica is the same
    /// server, so it is a safe lower bound for `min_lsn` routing between checks.
    replayed_lsn: AtomicU64,
    replay_paused: AtomicBool,
    in_recovery: AtomicBool,
}

impl Pools {
    /// Builds the pools. Connections open in the background, so this succeeds even while the
    /// database is down (requests then answer 503 until it is back).
    pub fn new(pg: &config::Postgresql) -> Result<Pools, config::Error> {
        let tasks = TaskTracker::new();
        let primary_config = endpoint::primary(pg)?;
        let primary = Endpoint::new("primary".into(), primary_config, Role::Primary, None, pg, &tasks);
        let replicas = pg
            .read_replicas
            .iter()
            .enumerate()
            .map(|(i, replica)| {
                let config = endpoint::replica(pg, replica, i)?;
                let max_lag = replica.max_lag_seconds.map(Duration::from_secs_f64);
                Ok(Endpoint::new(format!("replica-{i}"), config, Role::Replica, max_lag, pg, &tasks))
            })
            .collect::<Result<Vec<_>, config::Error>>()?;
        primary.health.healthy.store(true, Ordering::Relaxed);
        Ok(Pools { primary, replicas, next_replica: AtomicUsize::new(0), tasks })
    }

    pub fn primary(&self) -> &Endpoint {
        &self.primary
    }

    pub fn replicas(&self) -> &[Endpoint] {
        &self.replicas
    }

    /// A connection for `target`. Reads fall back to the primary when no replica is usable or
    /// the chosen replica cannot hand out a connection.
    pub async fn acquire(&self, target: Target) -> Result<Lease<'_>, Error> {
        self.acquire_at_least(target, None).await
    }

    /// Like [`Pools::acquire`], but a read goes to a replica only if it is known to have
    /// replayed at least `min_lsn`; otherwise the primary serves it.
    pub async fn acquire_at_least(&self, target: Target, min_lsn: Option<Lsn>) -> Result<Lease<'_>, Error> {
        if target == Target::Read
            && let Some(index) = self.pick_replica(min_lsn.unwrap_or_default()) {
                match self.replicas[index].get().await {
                    Ok(conn) => return Ok(Lease { conn, replica: Some(index) }),
                    Err(err) => {
                        tracing::warn!(replica = %self.replicas[index].name, error = %err, "replica unusable; reading from the primary");
                        self.replicas[index].health.healthy.store(false, Ordering::Relaxed);
                    }
                }
            }
        let conn = self.primary.get().await?;
        Ok(Lease { conn, replica: None })
    }

    /// Round-robin over the replicas usable right now (fair even when some are skipped).
    fn pick_replica(&self, min_lsn: Lsn) -> Option<usize> {
        let fits = |r: &Endpoint| r.is_usable() && r.replayed_lsn() >= min_lsn;
        let usable = self.replicas.iter().filter(|r| fits(r)).count();
        if usable == 0 {
            return None;
        }
        let k = self.next_replica.fetch_add(1, Ordering::Relaxed) % usable;
        self.replicas.iter().enumerate().filter(|(_, r)| fits(r)).map(|(i, _)| i).nth(k)
    }

    /// Checks every server once: the primary answers (and its WAL position), each replica
    /// answers and how far it has received and replayed.
    pub async fn check_health(&self) {
        let primary = async {
            let lsn = tokio::time::timeout(PRIMARY_CHECK_TIMEOUT, self.primary.current_wal_lsn()).await;
            let ok = matches!(lsn, Ok(Ok(_)));
            if let Ok(Ok(lsn)) = lsn {
                self.primary.health.received_lsn.store(lsn.0, Ordering::Relaxed);
            }
            self.primary.health.healthy.store(ok, Ordering::Relaxed);
            self.primary.health.checked.store(true, Ordering::Relaxed);
        };
        let replicas = futures_util::future::join_all(self.replicas.iter().map(Endpoint::check_replica));
        tokio::join!(primary, replicas);
    }

    /// Statistics of every pool.
    pub fn stats(&self) -> PoolsStats {
        let primary_lsn = self.primary.received_lsn();
        let mut replicas: Vec<PoolStats> = self.replicas.iter().map(Endpoint::stats).collect();
        for replica in &mut replicas {
            if let (Some(replayed), false) = (replica.replayed_lsn, primary_lsn.0 == 0) {
                replica.lag_bytes = Some(primary_lsn.0.saturating_sub(replayed.0));
            }
        }
        PoolsStats { primary: self.primary.stats(), replicas }
    }

    /// Closes every connection and waits (bounded) for their tasks to end, so the server sees
    /// a clean Terminate rather than a dropped socket.
    pub async fn close(self, within: Duration) {
        let tasks = self.tasks.clone();
        drop(self);
        tasks.close();
        if tokio::time::timeout(within, tasks.wait()).await.is_err() {
            tracing::warn!("some database connections did not close in time");
        }
    }
}

impl Endpoint {
    fn new(
        name: String,
        pg_config: tokio_postgres::Config,
        role: Role,
        max_lag: Option<Duration>,
        pg: &config::Postgresql,
        tasks: &TaskTracker,
    ) -> Self {
        let pool_config = &pg.connection_pool;
        let configured = pg_config.clone();
        let mut pg_config = pg_config;
        pg_config.connect_timeout(pool_config.acquire_timeout());
        let manager = Manager::new(pg_config, role, pg.query_timeout(), pool_config.pre_ping, tasks.clone());
        let upstream = manager.upstream();
        let last_connect_error = Arc::new(Mutex::new(None));
        let sink = RecordingSink { endpoint: name.clone(), last: last_connect_error.clone() };
        let pool = Pool::builder()
            .max_size(pool_config.max_size)
            .min_idle(Some(pool_config.min_size))
            .max_lifetime(Some(Duration::from_secs(pool_config.recycle.max(1))))
            .idle_timeout(Some(Duration::from_secs(pool_config.idle_timeout.max(1))))
            .connection_timeout(pool_config.acquire_timeout())
            .test_on_check_out(true)
            // Most recently used first: at low traffic the same warm connections serve every
            // request, so they never sit idle past the pre-ping threshold (FIFO pinged ~every
            // request below 64 req/s, doubling the round trips; see BENCHMARKS.md).
            .queue_strategy(bb8::QueueStrategy::Lifo)
            .error_sink(Box::new(sink))
            .build_unchecked(manager);
        Endpoint {
            name,
            upstream,
            pool,
            acquire_timeout: pool_config.acquire_timeout(),
            waiting: AtomicU32::new(0),
            health: Health { lag_ms: AtomicU64::new(u64::MAX), ..Health::default() },
            max_lag,
            last_connect_error,
            retired: AtomicBool::new(false),
            configured,
            monitor: tokio::sync::Mutex::new(None),
        }
    }

    /// The connection settings as configured (what failover re-points the primary to).
    pub fn configured(&self) -> &tokio_postgres::Config {
        &self.configured
    }

    /// Where it is, without the password.
    pub fn location(&self) -> String {
        self.upstream.location()
    }

    /// Points the pool at another server (failover); connections to the old one are dropped.
    pub fn repoint(&self, config: tokio_postgres::Config) {
        self.upstream.repoint(config);
        *self.last_connect_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The current server's connection settings (for connections outside the pool).
    pub fn current_config(&self) -> tokio_postgres::Config {
        self.upstream.current_config()
    }

    /// Takes a replica out of service for good (it was promoted).
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Relaxed);
        self.health.healthy.store(false, Ordering::Relaxed);
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    pub fn is_healthy(&self) -> bool {
        self.health.healthy.load(Ordering::Relaxed)
    }

    /// Primary: its WAL position at the last check. Replica: what it had received.
    pub fn received_lsn(&self) -> Lsn {
        Lsn(self.health.received_lsn.load(Ordering::Relaxed))
    }

    /// Replica: what it had replayed at the last check.
    pub fn replayed_lsn(&self) -> Lsn {
        Lsn(self.health.replayed_lsn.load(Ordering::Relaxed))
    }

    async fn get(&self) -> Result<PooledConnection<'_, Manager>, Error> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let result = self.pool.get().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        result.map_err(|err| self.acquire_error(err))
    }

    /// A timeout means "exhausted" unless connecting itself has been failing: then the
    /// database is down, and saying so is more useful.
    fn acquire_error(&self, err: RunError<ConnectError>) -> Error {
        match err {
            RunError::User(ConnectError::NotPrimary) => Error::NotPrimary,
            RunError::User(err) => Error::Unavailable { reason: err.to_string() },
            RunError::TimedOut => {
                let recent = self.last_connect_error.lock().ok().and_then(|last| {
                    last.as_ref()
                        .filter(|(at, _)| at.elapsed() < self.acquire_timeout + Duration::from_secs(2))
                        .map(|(_, reason)| reason.clone())
                });
                match recent {
                    Some(reason) => Error::Unavailable { reason },
                    None => Error::PoolExhausted {
                        timeout_secs: self.acquire_timeout.as_secs_f64(),
                        max_size: self.pool.config().max_size,
                    },
                }
            }
        }
    }

    /// One round trip on a pooled connection, bounded by a short timeout.
    pub async fn ping(&self) -> Result<(), Error> {
        let check = async {
            let mut conn = self.get().await?;
            conn.begin_use();
            conn.client().simple_query("").await.map_err(|e| Error::from_driver(e, false))?;
            conn.end_use();
            Ok(())
        };
        tokio::time::timeout(Duration::from_secs(3), check)
            .await
            .unwrap_or_else(|_| Err(Error::Unavailable { reason: "no answer within 3 s".into() }))
    }

    async fn check_replica(&self) {
        if self.is_retired() {
            return;
        }
        let state = tokio::time::timeout(Duration::from_secs(3), self.replication_state()).await;
        let health = &self.health;
        match state {
            Ok(Ok(state)) => {
                health.lag_ms.store(state.lag.map_or(u64::MAX, |l| l.as_millis() as u64), Ordering::Relaxed);
                health.received_lsn.store(state.received.0, Ordering::Relaxed);
                health.replayed_lsn.store(state.replayed.0, Ordering::Relaxed);
                health.replay_paused.store(state.paused, Ordering::Relaxed);
                // Not in recovery is fine for reads (a logical replica, say); failover asks
                // the server itself before treating it as a primary.
                health.healthy.store(true, Ordering::Relaxed);
                health.in_recovery.store(state.in_recovery, Ordering::Relaxed);
            }
            Ok(Err(err)) => {
                tracing::warn!(replica = %self.name, error = %err, "replica health check failed");
                health.healthy.store(false, Ordering::Relaxed);
                health.lag_ms.store(u64::MAX, Ordering::Relaxed);
            }
            Err(_) => {
                health.healthy.store(false, Ordering::Relaxed);
                health.lag_ms.store(u64::MAX, Ordering::Relaxed);
            }
        }
        health.checked.store(true, Ordering::Relaxed);
    }

    /// Runs `sql` (simple protocol, autocommit) on a pooled connection and returns every
    /// row's columns as text. For dbagent's own checks and administration, never user SQL.
    pub async fn rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, Error> {
        let mut conn = self.get().await?;
        conn.begin_use();
        let messages = conn.client().simple_query(sql).await.map_err(|e| Error::from_driver(e, false))?;
        conn.end_use();
        Ok(messages
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => {
                    Some((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect())
                }
                _ => None,
            })
            .collect())
    }

    /// The first row of `sql` on the monitor connection (opened or re-opened as needed; a
    /// failure closes it, so the next check connects afresh).
    async fn first_row(&self, sql: &str) -> Result<Vec<Option<String>>, Error> {
        let mut slot = self.monitor.lock().await;
        let generation = self.upstream.generation();
        if slot.as_ref().is_none_or(|(client, g)| client.is_closed() || *g != generation) {
            *slot = None;
            let mut config = self.upstream.current_config();
            config.connect_timeout(MONITOR_CONNECT_TIMEOUT);
            config.application_name("dbagent-monitor");
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| Error::Unavailable { reason: super::error_chain(&e) })?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            *slot = Some((client, generation));
        }
        let Some((client, _)) = slot.as_ref() else { unreachable!("set above") };
        let answer = client.simple_query(sql).await;
        let messages = match answer {
            Ok(messages) => messages,
            Err(err) => {
                *slot = None;
                return Err(Error::from_driver(err, false));
            }
        };
        messages
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect()),
                _ => None,
            })
            .ok_or_else(|| Error::Unavailable { reason: "the check returned no row".into() })
    }

    /// The primary's current WAL position (fails on a server in recovery).
    pub async fn current_wal_lsn(&self) -> Result<Lsn, Error> {
        let row = self.first_row("SELECT pg_current_wal_lsn()::text").await?;
        parse_lsn(row.first().cloned().flatten())
    }

    /// A replica's progress. Lag is measured as PgDog does: zero when everything received is
    /// replayed, else the age of the last replayed transaction.
    async fn replication_state(&self) -> Result<ReplicationState, Error> {
        const SQL: &str = "SELECT pg_is_in_recovery()::text, \
             pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, \
             (CASE WHEN NOT pg_is_in_recovery() THEN NULL \
                   WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
                   ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END)::float8::text, \
             (CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END)::text";
        let row = self.first_row(SQL).await?;
        let col = |i: usize| row.get(i).cloned().flatten();
        Ok(ReplicationState {
            in_recovery: col(0).as_deref() == Some("true"),
            received: col(1).map_or(Ok(Lsn(0)), |t| parse_lsn(Some(t)))?,
            replayed: col(2).map_or(Ok(Lsn(0)), |t| parse_lsn(Some(t)))?,
            lag: col(3).and_then(|v| v.parse::<f64>().ok()).map(|s| Duration::from_secs_f64(s.max(0.0))),
            paused: col(4).as_deref() == Some("true"),
        })
    }

    /// Healthy, checked, not retired, and within its lag limit.
    fn is_usable(&self) -> bool {
        if self.is_retired() || !self.health.checked.load(Ordering::Relaxed) || !self.health.healthy.load(Ordering::Relaxed) {
            return false;
        }
        match self.max_lag {
            None => true,
            Some(max) => self.health.lag_ms.load(Ordering::Relaxed) <= max.as_millis() as u64,
        }
    }

    pub fn stats(&self) -> PoolStats {
        let state = self.pool.state();
        let config = self.pool.config();
        let s = &state.statistics;
        let lag_ms = self.health.lag_ms.load(Ordering::Relaxed);
        let lsn = |v: &AtomicU64| Some(Lsn(v.load(Ordering::Relaxed))).filter(|l| l.0 != 0);
        PoolStats {
            name: self.name.clone(),
            location: self.location(),
            healthy: self.health.healthy.load(Ordering::Relaxed),
            usable: self.name == "primary" || self.is_usable(),
            retired: self.is_retired(),
            lag_seconds: (lag_ms != u64::MAX).then(|| lag_ms as f64 / 1000.0),
            received_lsn: lsn(&self.health.received_lsn),
            replayed_lsn: lsn(&self.health.replayed_lsn),
            replay_paused: self.health.replay_paused.load(Ordering::Relaxed),
            lag_bytes: None,
            in_recovery: (self.name != "primary" && self.health.checked.load(Ordering::Relaxed))
                .then(|| self.health.in_recovery.load(Ordering::Relaxed)),
            total: state.connections,
            idle: state.idle_connections,
            active: state.connections - state.idle_connections,
            waiting: self.waiting.load(Ordering::Relaxed),
            max: config.max_size,
            min: config.min_idle,
            acquired: s.get_direct + s.get_waited,
            acquired_after_wait: s.get_waited,
            acquire_timeouts: s.get_timed_out,
            acquire_wait_seconds: s.get_wait_time.as_secs_f64(),
            connections_created: s.connections_created,
            connections_closed_broken: s.connections_closed_broken,
            connections_closed_invalid: s.connections_closed_invalid,
            connections_closed_max_lifetime: s.connections_closed_max_lifetime,
            connections_closed_idle_timeout: s.connections_closed_idle_timeout,
        }
    }
}

/// Statistics of one pool (the seed's `pool_stats` plus bb8's counters).
#[derive(Debug, Clone, Serialize)]
pub struct PoolStats {
    pub name: String,
    pub location: String,
    pub healthy: bool,
    /// Receiving reads (replicas: healthy and within `max_lag_seconds`).
    pub usable: bool,
    /// A replica that was promoted to primary and left this role.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// Primary: current WAL position. Replica: WAL received.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub received_lsn: Option<Lsn>,
    /// Replica: WAL replayed (what reads see).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed_lsn: Option<Lsn>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replay_paused: bool,
    /// Replica: bytes of WAL between the primary's position and what it replayed (both as of
    /// the last check).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<u64>,
    /// Replica: a streaming standby (`pg_is_in_recovery()`); false for a logical replica or a
    /// server promoted behind dbagent's back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_recovery: Option<bool>,
    pub total: u32,
    pub idle: u32,
    pub active: u32,
    pub waiting: u32,
    pub max: u32,
    pub min: Option<u32>,
    pub acquired: u64,
    pub acquired_after_wait: u64,
    pub acquire_timeouts: u64,
    pub acquire_wait_seconds: f64,
    pub connections_created: u64,
    pub connections_closed_broken: u64,
    pub connections_closed_invalid: u64,
    pub connections_closed_max_lifetime: u64,
    pub connections_closed_idle_timeout: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PoolsStats {
    pub primary: PoolStats,
    pub replicas: Vec<PoolStats>,
}

/// A replica's progress as it reports it.
struct ReplicationState {
    in_recovery: bool,
    received: Lsn,
    replayed: Lsn,
    lag: Option<Duration>,
    paused: bool,
}

fn parse_lsn(text: Option<String>) -> Result<Lsn, Error> {
    let text = text.ok_or_else(|| Error::Unavailable { reason: "no WAL position reported".into() })?;
    text.parse().map_err(|e: super::lsn::LsnParseError| Error::Unavailable { reason: e.to_string() })
}

/// Keeps the last connection error so a timed-out checkout can say why; logs it once per change.
#[derive(Debug, Clone)]
struct RecordingSink {
    endpoint: String,
    last: Arc<Mutex<Option<(Instant, String)>>>,
}

impl ErrorSink<ConnectError> for RecordingSink {
    fn sink(&self, error: ConnectError) {
        let text = error.to_string();
        if let Ok(mut last) = self.last.lock() {
            if last.as_ref().map(|(_, t)| t != &text).unwrap_or(true) {
                tracing::warn!(endpoint = %self.endpoint, error = %text, "cannot open a database connection");
            }
            *last = Some((Instant::now(), text));
        }
    }

    fn boxed_clone(&self) -> Box<dyn ErrorSink<ConnectError>> {
        Box::new(self.clone())
    }
}
