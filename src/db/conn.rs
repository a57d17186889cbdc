//! One pooled connection and the bb8 manager that opens, checks and retires it.
//!
//! Invariants kept here:
//! - a connection is checked cheaply on checkout (`is_closed`), and pinged with an empty
//!   query only when it sat idle longer than [`PING_AFTER`], so a busy pool costs exactly one
//!   round trip per statement;
//! - nothing is reset on check-in: the only session state dbagent changes is
//!   `default_transaction_read_only`, which [`Conn`] tracks and flips lazily; statements that
//!   could change the session otherwise are refused (`query::effects`), or checked after they
//!   ran, and a connection found changed is tainted and discarded (`query::guard`);
//! - a connection whose state is uncertain (an operation was interrupted, a COMMIT was lost,
//!   it turned out to be on a standby) is marked broken and never reused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, Statement};
use tokio_util::task::TaskTracker;

/// Idle time after which a checkout pings the connection before handing it out.
pub const PING_AFTER: Duration = Duration::from_secs(1);

/// Prepared statements kept per connection before the cache is emptied.
const STATEMENT_CACHE_CAPACITY: usize = 512;

/// Which server a pool talks to; a primary pool refuses connections to a standby.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

/// Whom a pool's connections log in as: the configured user (dbagent's own work and callers
/// with full access), or one of the two roles that make PostgreSQL enforce an API key's scope.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Login {
    #[default]
    Service,
    /// Can read, cannot write (`security.read_role`).
    Read,
    /// Can read and change rows, not the schema (`security.write_role`).
    Write,
}

/// A user and password that replace the configured ones for a [`Login`]'s pool.
#[derive(Clone)]
pub struct Credentials {
    pub login: Login,
    pub user: String,
    pub password: Option<String>,
}

/// Cancels a running statement through PostgreSQL's cancel protocol, on a connection of its
/// own made with the same TLS as the one it cancels.
pub struct Canceller {
    token: tokio_postgres::CancelToken,
    tls: super::tls::Tls,
}

impl Canceller {
    pub async fn cancel(self) -> Result<(), tokio_postgres::Error> {
        self.token.cancel_query(self.tls.connector()).await
    }
}

/// Why a connection could not be opened or kept.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot connect to PostgreSQL: {}", super::error::error_chain(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the connection is closed")]
    Closed,
    #[error("the server is a standby (in recovery); the primary pool only takes a primary")]
    NotPrimary,
}

/// A connection with its per-connection prepared-statement cache.
pub struct Conn {
    client: Client,
    /// Behind a lock so that a connection shared by several reads (see `pools::shared`) can
    /// prepare through `&self`; it is never held across an await.
    statements: Mutex<HashMap<Box<str>, Statement>>,
    read_only: AtomicBool,
    last_used: Instant,
    broken: bool,
    /// A session check found the session changed by user code: discarded at check-in.
    tainted: AtomicBool,
    /// The role the connection logged in as (reported by the server at start-up).
    login_role: String,
    role: Role,
    /// The [`Upstream`] generation it was opened for; an older one is never handed out again.
    generation: u64,
    /// For cancel requests, which open a connection of their own.
    tls: super::tls::Tls,
}

impl Conn {
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// What cancels the statement running on this connection, through the same TLS.
    pub fn canceller(&self) -> Canceller {
        Canceller { token: self.client.cancel_token(), tls: self.tls.clone() }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The prepared statement for `sql`, from the cache or prepared now (one extra round trip).
    pub async fn prepare(&self, sql: &str, cache: bool) -> Result<Statement, tokio_postgres::Error> {
        if let Some(stmt) = self.statements().get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = self.client.prepare(sql).await?;
        if cache {
            let mut statements = self.statements();
            if statements.len() >= STATEMENT_CACHE_CAPACITY {
                statements.clear();
            }
            statements.insert(sql.into(), stmt.clone());
        }
        Ok(stmt)
    }

    /// Drops a cached statement, e.g. after "cached plan must not change result type".
    pub fn forget(&self, sql: &str) {
        self.statements().remove(sql);
    }

    fn statements(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, Statement>> {
        self.statements.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Still open and opened for the pool's current server (not left behind by a failover).
    pub(crate) fn is_current(&self, upstream: &Upstream) -> bool {
        !self.client.is_closed() && upstream.is_current(self.generation)
    }

    /// The `SET` to send (pipelined, before the statement) so that autocommit statements on
    /// this connection run read-only or read-write; `None` when it is already so. The caller
    /// must have marked the connection busy (see [`Conn::begin_use`]) before sending it.
    pub fn switch_read_only(&self, read_only: bool) -> Option<&'static str> {
        if self.role == Role::Replica || self.read_only.swap(read_only, Ordering::Relaxed) == read_only {
            return None;
        }
        Some(if read_only { "SET default_transaction_read_only = on" } else { "SET default_transaction_read_only = off" })
    }

    /// Marks the connection as in use: if the operation is abandoned half-way (the request was
    /// dropped, a timeout fired), the pool discards it instead of reusing an unknown state.
    pub fn begin_use(&mut self) {
        self.broken = true;
    }

    /// The operation finished and left the session clean.
    pub fn end_use(&mut self) {
        self.broken = false;
        self.last_used = Instant::now();
    }

    /// Never reuse this connection.
    pub fn mark_broken(&mut self) {
        self.broken = true;
    }

    /// Never reuse this connection: user code changed its session (see `query::guard`), or it
    /// read a row so big that its read buffer should not stay allocated (`query::run::BIG_ROW`).
    pub fn taint(&self) {
        self.tainted.store(true, Ordering::Relaxed);
    }

    /// The role the connection logged in as.
    pub fn login_role(&self) -> &str {
        &self.login_role
    }

    /// `RESET ALL` ran: every setting is back at its start-up value, read-only mode included.
    pub fn settings_reset(&self) {
        self.read_only.store(self.role == Role::Replica, Ordering::Relaxed);
    }
}

/// The server a pool connects to. Failover re-points it: the generation goes up and every
/// connection opened for an older generation is discarded instead of being handed out.
pub struct Upstream {
    current: RwLock<(super::PgConfig, String)>,
    generation: AtomicU64,
    /// Options dbagent adds to every connection (timeouts, read-only default).
    options: String,
}

impl Upstream {
    /// `host:port/db` of the current server, without the password.
    pub fn location(&self) -> String {
        self.current.read().map(|c| c.1.clone()).unwrap_or_default()
    }

    /// From now on, connect to `config`; connections to the previous server are dropped.
    pub fn repoint(&self, mut config: super::PgConfig) {
        let location = super::conninfo::describe(&config);
        Manager::apply_options(&mut config, &self.options);
        if let Ok(mut current) = self.current.write() {
            if let Some(timeout) = current.0.get_connect_timeout() {
                config.connect_timeout(*timeout);
            }
            *current = (config, location);
        }
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The current server's connection settings (dbagent's session options included).
    pub fn current_config(&self) -> super::PgConfig {
        self.config().0
    }

    fn config(&self) -> (super::PgConfig, u64) {
        let generation = self.generation.load(Ordering::SeqCst);
        let config = self.current.read().map(|c| c.0.clone()).unwrap_or_else(|p| p.into_inner().0.clone());
        (config, generation)
    }

    /// Bumped by every re-point.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn is_current(&self, generation: u64) -> bool {
        self.generation.load(Ordering::SeqCst) == generation
    }
}

/// Opens connections for one pool (bb8's `ManageConnection`).
pub struct Manager {
    upstream: Arc<Upstream>,
    /// For a [`Login`] other than the service's: who to log in as on the same server.
    credentials: Option<(String, Option<String>)>,
    role: Role,
    pre_ping: bool,
    tasks: TaskTracker,
}

impl Manager {
    /// `statement_timeout` is enforced by the server on every statement of every connection.
    pub fn new(
        mut config: super::PgConfig,
        role: Role,
        statement_timeout: Duration,
        pre_ping: bool,
        tasks: TaskTracker,
    ) -> Self {
        let read_only = if role == Role::Replica { "on" } else { "off" };
        // Startup options cost no round trip; they replace a per-checkout SET.
        let options = format!(
            "-c statement_timeout={} -c default_transaction_read_only={read_only} -c idle_in_transaction_session_timeout={}",
            statement_timeout.as_millis().max(1),
            (statement_timeout * 2).as_millis().max(60_000),
        );
        let location = super::conninfo::describe(&config);
        Manager::apply_options(&mut config, &options);
        let upstream = Upstream { current: RwLock::new((config, location)), generation: AtomicU64::new(0), options };
        Manager { upstream: Arc::new(upstream), credentials: None, role, pre_ping, tasks }
    }

    /// A manager for `upstream`'s server (following its re-points) that logs in as `user`.
    pub fn with_credentials(upstream: Arc<Upstream>, role: Role, pre_ping: bool, tasks: TaskTracker, user: String, password: Option<String>) -> Self {
        Manager { upstream, credentials: Some((user, password)), role, pre_ping, tasks }
    }

    fn apply_options(config: &mut super::PgConfig, ours: &str) {
        let options = match config.get_options() {
            Some(theirs) if !theirs.is_empty() => format!("{theirs} {ours}"),
            _ => ours.to_owned(),
        };
        config.options(options);
        if config.get_application_name().is_none() {
            config.application_name("dbagent");
        }
    }

    /// The server this manager connects to (shared with the pool's owner for re-pointing).
    pub fn upstream(&self) -> Arc<Upstream> {
        self.upstream.clone()
    }
}

impl bb8::ManageConnection for Manager {
    type Connection = Conn;
    type Error = ConnectError;

    async fn connect(&self) -> Result<Conn, ConnectError> {
        let (mut config, generation) = self.upstream.config();
        if let Some((user, password)) = &self.credentials {
            config.user(user);
            match password {
                Some(password) => config.password(password),
                // Not the service's password: a role without one relies on the server's rules.
                None => config.password(Vec::<u8>::new()),
            };
        }
        let (client, connection) = config.connect().await?;
        // PostgreSQL 14+ reports this at startup: the role check costs no round trip.
        let standby = connection.parameter("in_hot_standby") == Some("on");
        let login_role = connection.parameter("session_authorization").unwrap_or_default().to_owned();
        self.tasks.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "database connection ended");
            }
        });
        if standby && self.role == Role::Primary {
            return Err(ConnectError::NotPrimary);
        }
        Ok(Conn {
            client,
            statements: Mutex::new(HashMap::new()),
            read_only: AtomicBool::new(self.role == Role::Replica),
            last_used: Instant::now(),
            broken: false,
            tainted: AtomicBool::new(false),
            login_role,
            role: self.role,
            generation,
            tls: config.tls().clone(),
        })
    }

    async fn is_valid(&self, conn: &mut Conn) -> Result<(), ConnectError> {
        if !conn.is_current(&self.upstream) {
            return Err(ConnectError::Closed);
        }
        if self.pre_ping && conn.last_used.elapsed() > PING_AFTER {
            conn.client.simple_query("").await?;
            conn.last_used = Instant::now();
        }
        Ok(())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.broken || conn.tainted.load(Ordering::Relaxed) || !conn.is_current(&self.upstream)
    }
}
