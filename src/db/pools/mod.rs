//! The primary pool and one pool per read replica, and the routing between them.
//!
//! Writes always go to the primary. Reads go round-robin to replicas that are healthy and not
//! lagging past their `max_lag_seconds`; with none usable they go to the primary.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bb8::{ErrorSink, Pool, PooledConnection, RunError};
use serde::Serialize;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use tokio_util::task::TaskTracker;

mod health;
mod shared;

pub use shared::{Setup, Shared, SharingStats};
use shared::{Join, Sharing};
use super::conn::{ConnectError, Credentials, Login, Manager, Role, Upstream};
use super::{Error, Lsn, conninfo};
use health::Health;
use crate::config;

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
    health: Health,
    max_lag: Option<Duration>,
    last_connect_error: Arc<Mutex<Option<(Instant, String)>>>,
    /// A replica promoted to be the primary: it no longer serves as a replica.
    retired: AtomicBool,
    /// A switchover holds new checkouts here (they wait, bounded by the acquire timeout)
    /// while the primary changes.
    paused: AtomicBool,
    resumed: tokio::sync::Notify,
    /// The connection settings as configured (before dbagent's session options).
    configured: crate::db::PgConfig,
    /// The health checks' own connection (with the upstream generation it was opened for):
    /// outside the pool, so a busy or exhausted pool never reads as a dead server (which could
    /// set off a failover), and a refused connection is seen at once.
    monitor: tokio::sync::Mutex<Option<(tokio_postgres::Client, u64)>>,
    /// Connections shared by concurrent short reads.
    sharing: Sharing,
    /// Pools of the same server for the scoped logins (`security.read_role` / `write_role`).
    scoped: Vec<ScopedPool>,
}

/// A pool of connections logged in as a scoped role, with its own sharing.
struct ScopedPool {
    login: Login,
    pool: Pool<Manager>,
    sharing: Sharing,
}

impl Pools {
    /// Builds the pools. Connections open in the background, so this succeeds even while the
    /// database is down (requests then answer 503 until it is back).
    pub fn new(pg: &config::Postgresql) -> Result<Pools, config::Error> {
        Pools::with_logins(pg, &[], 0)
    }

    /// Like [`Pools::new`], with a pool per server for each of `logins` as well (at most
    /// `scoped_size` connections each), for [`Pools::acquire_as`].
    pub fn with_logins(pg: &config::Postgresql, logins: &[Credentials], scoped_size: u32) -> Result<Pools, config::Error> {
        let tasks = TaskTracker::new();
        let primary_config = conninfo::primary(pg)?;
        let mut primary = Endpoint::new("primary".into(), primary_config, Role::Primary, None, pg, &tasks);
        primary.add_logins(logins, scoped_size, pg, Role::Primary, &tasks);
        let replicas = pg
            .read_replicas
            .iter()
            .enumerate()
            .map(|(i, replica)| {
                let config = conninfo::replica(pg, replica, i)?;
                let max_lag = replica.max_lag_seconds.map(Duration::from_secs_f64);
                let mut endpoint = Endpoint::new(format!("replica-{i}"), config, Role::Replica, max_lag, pg, &tasks);
                endpoint.add_logins(logins, scoped_size, pg, Role::Replica, &tasks);
                Ok(endpoint)
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
        self.acquire_as(target, min_lsn, Login::Service).await
    }

    /// Like [`Pools::acquire_at_least`], logged in as `login`.
    pub async fn acquire_as(&self, target: Target, min_lsn: Option<Lsn>, login: Login) -> Result<Lease<'_>, Error> {
        if target == Target::Read
            && let Some(index) = self.pick_replica(min_lsn.unwrap_or_default()) {
                match self.replicas[index].get_as(login).await {
                    Ok(conn) => return Ok(Lease { conn, replica: Some(index) }),
                    Err(err) => {
                        tracing::warn!(replica = %self.replicas[index].name, error = %err, "replica unusable; reading from the primary");
                        self.replicas[index].health.healthy.store(false, Ordering::Relaxed);
                    }
                }
            }
        let conn = self.primary.get_as(login).await?;
        Ok(Lease { conn, replica: None })
    }

    /// A place on a shared connection for a short autocommit read (see [`shared`]), on the
    /// server [`Pools::acquire_at_least`] would pick for it; `None` when the read should take a
    /// connection of its own (sharing is off, or no shared connection suits).
    /// With it, the `SET` to await along with the statement when the connection was just made
    /// shared (see [`Sharing::open`]).
    pub async fn share_read(&self, min_lsn: Option<Lsn>, primary_only: bool, login: Login) -> Result<Option<(Shared<'_>, Option<Setup>)>, Error> {
        if !primary_only
            && let Some(index) = self.pick_replica(min_lsn.unwrap_or_default()) {
                // On trouble the connection-of-its-own path falls back to the primary.
                return Ok(self.replicas[index].share(login).await.ok().flatten().map(|(mut shared, setup)| {
                    shared.replica = Some(index);
                    (shared, setup)
                }));
            }
        self.primary.share(login).await
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
        pg_config: crate::db::PgConfig,
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
        let sharing = Sharing::new(shared::Limits {
            // At most half the pool: writes and transactions always find connections.
            max_connections: pool_config.multiplex_connections.min(pool_config.max_size / 2) as usize,
            depth: pool_config.multiplex_depth,
            max_stall: Duration::from_secs_f64(pool_config.multiplex_max_ms / 1000.0),
            max_lifetime: Duration::from_secs(pool_config.recycle.max(1)),
        });
        Endpoint {
            name,
            upstream,
            pool,
            acquire_timeout: pool_config.acquire_timeout(),
            health: Health { lag_ms: AtomicU64::new(u64::MAX), ..Health::default() },
            max_lag,
            last_connect_error,
            retired: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            resumed: tokio::sync::Notify::new(),
            configured,
            monitor: tokio::sync::Mutex::new(None),
            sharing,
            scoped: Vec::new(),
        }
    }

    /// Adds a pool of the same server for each of `logins` (empty until first used: no idle
    /// connections are kept for them).
    fn add_logins(&mut self, logins: &[Credentials], size: u32, pg: &config::Postgresql, role: Role, tasks: &TaskTracker) {
        for credentials in logins {
            let manager = Manager::with_credentials(
                self.upstream.clone(),
                role,
                pg.connection_pool.pre_ping,
                tasks.clone(),
                credentials.user.clone(),
                credentials.password.clone(),
            );
            let sink = RecordingSink { endpoint: format!("{} as {}", self.name, credentials.user), last: self.last_connect_error.clone() };
            let pool = Pool::builder()
                .max_size(size.max(1))
                .min_idle(None)
                .max_lifetime(Some(Duration::from_secs(pg.connection_pool.recycle.max(1))))
                .idle_timeout(Some(Duration::from_secs(pg.connection_pool.idle_timeout.max(1))))
                .connection_timeout(self.acquire_timeout)
                .test_on_check_out(true)
                .queue_strategy(bb8::QueueStrategy::Lifo)
                .error_sink(Box::new(sink))
                .build_unchecked(manager);
            let sharing = Sharing::new(shared::Limits {
                max_connections: pg.connection_pool.multiplex_connections.min(size / 2) as usize,
                depth: pg.connection_pool.multiplex_depth,
                max_stall: Duration::from_secs_f64(pg.connection_pool.multiplex_max_ms / 1000.0),
                max_lifetime: Duration::from_secs(pg.connection_pool.recycle.max(1)),
            });
            self.scoped.push(ScopedPool { login: credentials.login, pool, sharing });
        }
    }

    /// The pool and sharing for `login`. A login without a pool of its own is an error: the
    /// scope could not be enforced, so nothing runs.
    fn pool_for(&self, login: Login) -> Result<(&Pool<Manager>, &Sharing), Error> {
        if login == Login::Service {
            return Ok((&self.pool, &self.sharing));
        }
        self.scoped
            .iter()
            .find(|s| s.login == login)
            .map(|s| (&s.pool, &s.sharing))
            .ok_or_else(|| Error::Unavailable { reason: format!("no connections are configured for the {login:?} role") })
    }

    /// The connection settings as configured (what failover re-points the primary to).
    pub fn configured(&self) -> &crate::db::PgConfig {
        &self.configured
    }

    /// Where it is, without the password.
    pub fn location(&self) -> String {
        self.upstream.location()
    }

    /// Points the pool at another server (failover); connections to the old one are dropped.
    pub fn repoint(&self, config: crate::db::PgConfig) {
        self.upstream.repoint(config);
        *self.last_connect_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The current server's connection settings (for connections outside the pool).
    pub fn current_config(&self) -> crate::db::PgConfig {
        self.upstream.current_config()
    }

    /// Holds new checkouts until [`Endpoint::resume`] (a switchover changing the primary).
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Lets the checkouts held by [`Endpoint::pause`] go on.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.resumed.notify_waiters();
    }

    /// Waits while paused, for the acquire timeout at most.
    async fn wait_while_paused(&self) -> Result<(), Error> {
        if !self.paused.load(Ordering::Relaxed) {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.acquire_timeout;
        loop {
            let resumed = self.resumed.notified();
            if !self.paused.load(Ordering::SeqCst) {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, resumed).await.is_err() {
                return Err(Error::Unavailable { reason: "a switchover is changing the primary".into() });
            }
        }
    }

    /// Puts a replica back in service (a former primary rejoined in its place).
    pub fn reinstate(&self) {
        self.retired.store(false, Ordering::Relaxed);
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
        self.get_as(Login::Service).await
    }

    async fn get_as(&self, login: Login) -> Result<PooledConnection<'_, Manager>, Error> {
        self.wait_while_paused().await?;
        let (pool, sharing) = self.pool_for(login)?;
        let _waiting = sharing.waiting();
        // Shared connections nobody is using go back now, rather than within a second, when
        // the pool has no idle connection to give.
        sharing.release_unused_if(|| pool.state().idle_connections == 0);
        let result = pool.get().await;
        result.map_err(|err| self.acquire_error(err, pool))
    }

    /// See [`Pools::share_read`].
    async fn share(&self, login: Login) -> Result<Option<(Shared<'_>, Option<Setup>)>, Error> {
        self.wait_while_paused().await?;
        let (pool, sharing) = self.pool_for(login)?;
        if !sharing.enabled() {
            return Ok(None);
        }
        let pool_has_room = || {
            let state = pool.state();
            state.idle_connections > 0 || state.connections < pool.config().max_size
        };
        match sharing.join(&self.upstream, pool_has_room) {
            Join::Joined(shared) => Ok(Some((shared, None))),
            Join::Alone => Ok(None),
            Join::Open(opening) => {
                let waiting = sharing.waiting();
                let conn = pool.get_owned().await;
                drop(waiting);
                Ok(Some(sharing.open(opening, conn.map_err(|err| self.acquire_error(err, pool))?)))
            }
        }
    }

    /// A timeout means "exhausted" unless connecting itself has been failing: then the
    /// database is down, and saying so is more useful.
    fn acquire_error(&self, err: RunError<ConnectError>, pool: &Pool<Manager>) -> Error {
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
                        max_size: pool.config().max_size,
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

    /// Runs `sql` (simple protocol, autocommit) on a pooled connection and returns every
    /// row's columns as text. For dbagent's own checks and administration, never user SQL.
    pub async fn rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, Error> {
        let mut conn = self.get().await?;
        conn.begin_use();
        let messages = conn.client().simple_query(sql).await.map_err(|e| Error::from_driver(e, false))?;
        conn.end_use();
        Ok(health::text_rows(&messages))
    }

    /// Runs one of dbagent's own queries (extended protocol, bind parameters, the statement
    /// prepared once per connection) on a pooled connection; read the rows by column name with
    /// [`crate::db::get`]. Never user SQL.
    pub async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error> {
        let mut conn = self.get().await?;
        conn.begin_use();
        let stmt = conn.prepare(sql, true).await.map_err(|e| Error::from_driver(e, false))?;
        let rows = conn.client().query(&stmt, params).await.map_err(|e| Error::from_driver(e, false))?;
        conn.end_use();
        Ok(rows)
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
            waiting: self.sharing.waiters(),
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
            shared: self.sharing.stats(),
        }
    }
}

/// Statistics of one pool (the seed's `pool_stats` plus bb8's counters).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PoolStats {
    pub name: String,
    pub location: String,
    pub healthy: bool,
    /// Receiving reads (replicas: healthy and within `max_lag_seconds`).
    pub usable: bool,
    /// A replica that was promoted to primary and left this role.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retired: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// Primary: current WAL position. Replica: WAL received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_lsn: Option<Lsn>,
    /// Replica: WAL replayed (what reads see).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replayed_lsn: Option<Lsn>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay_paused: bool,
    /// Replica: bytes of WAL between the primary's position and what it replayed (both as of
    /// the last check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<u64>,
    /// Replica: a streaming standby (`pg_is_in_recovery()`); false for a logical replica or a
    /// server promoted behind dbagent's back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// Connections shared by concurrent short reads (multiplexing).
    pub shared: SharingStats,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PoolsStats {
    pub primary: PoolStats,
    pub replicas: Vec<PoolStats>,
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
