//! The test harness: a real PostgreSQL, a fresh database per test (dropped when the test
//! passes, kept for inspection when it fails), and a real dbagent API on a free port, started
//! as `dbagent serve` starts it ([`Serving`]: auto-migrate, the backup schedule, graceful
//! shutdown).
//!
//! The server is `TEST_DATABASE_URL` (or `DATABASE_URL`) when set; otherwise the suite starts
//! a managed instance of its own under `target/tmp/test-pgdata`, so `cargo test` works on a
//! machine where PostgreSQL is installed but not running.

use std::sync::OnceLock;
use std::time::Duration;

use dbagent::app::{Agent, Serving};
use dbagent::config::{Config, Secret};
use dbagent::instance;
use reqwest::StatusCode;
use serde_json::Value;
use tokio_postgres::NoTls;

/// The server every test database lives on: `postgresql://user@host:port` (no database).
pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        for var in ["TEST_DATABASE_URL", "DATABASE_URL"] {
            if let Ok(url) = std::env::var(var)
                && !url.is_empty() {
                    return strip_database(&url);
                }
        }
        let running = start_instance(&test_instance_settings("test-pgdata"));
        format!("postgresql://postgres@127.0.0.1:{}", running.port)
    })
}

/// Settings of a managed instance under `target/tmp/<name>`.
pub fn test_instance_settings(name: &str) -> instance::Settings {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let mut settings = instance::Settings::new(dir);
    settings.bin_dir = std::env::var_os("PG_BIN").map(Into::into);
    settings
}

/// Starts (or reuses) a managed instance from any context: its own thread and runtime, so
/// that it outlives the calling test's runtime.
pub fn start_instance(settings: &instance::Settings) -> instance::Running {
    let settings = settings.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(instance::start(&settings)).expect("cannot start the test PostgreSQL instance")
    })
    .join()
    .expect("instance thread panicked")
}

fn strip_database(url: &str) -> String {
    match url.rsplit_once('/') {
        Some((base, _db)) if base.contains("://") && base.matches('/').count() >= 2 && !base.ends_with('/') => base.to_string(),
        _ => url.trim_end_matches('/').to_string(),
    }
}

/// A test database on the shared server; dropped on drop unless the test failed.
pub struct TestDb {
    pub name: String,
    pub url: String,
    server: String,
    /// Created by the test (and dropped after it), or a database it only uses.
    owned: bool,
}

impl TestDb {
    pub async fn create() -> TestDb {
        Self::create_on(server_url()).await
    }

    pub async fn create_on(server: &str) -> TestDb {
        let name = format!("dbagent_test_{}", uuid::Uuid::new_v4().simple());
        let admin = connect(&format!("{server}/postgres")).await;
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create test database");
        TestDb { url: format!("{server}/{name}"), name, server: server.to_string(), owned: true }
    }

    /// A database the test uses but did not create (never dropped).
    pub fn existing(url: &str) -> TestDb {
        TestDb { name: String::new(), url: url.to_string(), server: String::new(), owned: false }
    }

    /// A direct connection (not through dbagent) for arranging and asserting.
    pub async fn connect(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    pub async fn load_pagila(&self) {
        let sql = include_str!("../data/pagila-schema.sql");
        self.connect().await.batch_execute(sql).await.expect("load pagila");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.owned {
            drop_databases(&self.server, vec![self.name.clone()]);
        }
    }
}

/// The suite's server, database `postgres`, as driver settings.
pub fn admin_config() -> tokio_postgres::Config {
    format!("{}/postgres", server_url()).parse().expect("a PostgreSQL URL")
}

/// Starts the real binary with `command` (`dbagent serve ...`, its arguments and environment
/// set), its stdout discarded and its log echoed as `dbagent: ...`, and waits up to `wait` for
/// the address it prints once it listens.
pub fn spawn_serve(command: &mut std::process::Command, wait: Duration) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    command.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("run dbagent serve");
    let stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            match line.strip_prefix("dbagent listening on ") {
                Some(address) => drop(tx.send(address.trim().to_string())),
                None => eprintln!("dbagent: {line}"),
            }
        }
    });
    let address = rx.recv_timeout(wait).expect("dbagent did not start listening");
    (child, address)
}

/// Drops the test databases `names` on `server` (`postgresql://user@host:port`) — unless the
/// test is failing, then they are kept for inspection. Runs on a thread of its own: `Drop` is
/// synchronous and may run inside the test's runtime.
pub fn drop_databases(server: &str, names: Vec<String>) {
    if std::thread::panicking() {
        eprintln!("test failed; keeping database(s) {} for inspection", names.join(", "));
        return;
    }
    let server = server.to_string();
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            if let Ok((client, conn)) = tokio_postgres::connect(&format!("{server}/postgres"), NoTls).await {
                tokio::spawn(conn);
                for name in names {
                    if let Err(err) = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await {
                        eprintln!("could not drop test database {name}: {err}");
                    }
                }
            }
        });
    })
    .join();
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap_or_else(|e| panic!("connect {url}: {e}"));
    tokio::spawn(conn);
    client
}

/// Polls `condition` until it holds, or panics after `within` naming `what`. For a test that
/// waits for something it can observe (requests in flight, a pool count, a row written): a
/// fixed sleep only guesses how long that takes, and loses the guess on a loaded machine.
pub async fn wait_until(what: &str, within: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + within;
    while !condition().await {
        assert!(std::time::Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Configuration for a test agent on `url`: small pools, fast retries.
pub fn test_config(url: &str) -> Config {
    let mut config = Config::default();
    config.postgresql.url = Some(Secret::new(url));
    config.server.port = 0;
    config.postgresql.connection_pool.min_size = 1;
    config.postgresql.connection_pool.max_size = 10;
    config.postgresql.connection_pool.timeout = 5.0;
    config.transactions.retry_delay = 0.005;
    config.backup.location = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("backups");
    // The schedule runs as when serving, on a tick no test lives to see (the default, 02:00
    // daily, would back up whatever test databases are open at the time).
    config.backup.schedule = Some("0 0 0 1 1 * 2099".into());
    // No collector session or history table unless a test asks for them (`monitoring.enable`):
    // the history's rows would change under tests that compare a database before and after.
    config.monitoring.enable = false;
    // Nor an alert engine (its session and tables) unless a test turns it on.
    config.alerts.enabled = false;
    config.logging.level = "warn".into();
    config
}

/// A running API on a free port, on its own fresh database.
pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub db: TestDb,
    /// Kept alive for the test's duration (its pools and background checks).
    pub agent: Agent,
    /// The API as `dbagent serve` runs it; dropped with the app, which stops taking requests.
    serving: Serving,
    /// For an agent running its own managed clusters: their directory, cleaned up after.
    managed: Option<ManagedGuard>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let db = TestDb::create().await;
    spawn_app_on(db, configure).await
}

pub async fn spawn_app_on(db: TestDb, configure: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = test_config(&db.url);
    configure(&mut config);
    let agent = Agent::start(config).await.expect("start agent");
    serve(agent, db, None).await
}

async fn serve(agent: Agent, db: TestDb, managed: Option<ManagedGuard>) -> TestApp {
    let serving = Serving::start(&agent).await.expect("serve the API");
    let scheme = if serving.https().is_some() { "https" } else { "http" };
    let address = format!("{scheme}://{}", serving.address());
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().expect("http client");
    TestApp { address, http, db, agent, serving, managed }
}

/// An agent with no database configured: it runs its own managed primary (and the replicas
/// `configure` asks for) under `target/tmp/managed-<id>/`. Call [`TestApp::stop`] at the end;
/// a failing test stops the servers and keeps the files.
pub async fn spawn_managed_app(configure: impl FnOnce(&mut Config)) -> TestApp {
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("managed-{}", uuid::Uuid::new_v4().simple()));
    let mut config = test_config("unused");
    config.postgresql.url = None;
    config.instance.data_dir = root.join("pgdata");
    config.instance.bin_dir = std::env::var_os("PG_BIN").map(Into::into);
    configure(&mut config);
    let guard = ManagedGuard { root };
    let agent = Agent::start(config).await.expect("start agent with managed clusters");
    let url = agent.managed().expect("managed").primary.running.url("postgres");
    serve(agent, TestDb::existing(&url), Some(guard)).await
}

/// Stops every server under a managed test's directory if the test fails half-way.
struct ManagedGuard {
    root: std::path::PathBuf,
}

impl Drop for ManagedGuard {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else { return };
        let dirs: Vec<_> = entries.flatten().map(|e| e.path()).filter(|p| p.join("PG_VERSION").exists()).collect();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            for dir in dirs {
                let _ = rt.block_on(instance::stop(&instance::Settings::new(dir), instance::StopMode::Immediate));
            }
        })
        .join();
        if std::thread::panicking() {
            eprintln!("test failed; keeping {} for inspection", self.root.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

impl TestApp {
    /// The API's TLS, when `server.tls` is set (for reloads).
    pub fn https(&self) -> Option<std::sync::Arc<dbagent::api::tls::Https>> {
        self.serving.https()
    }

    /// Shuts down as `dbagent serve` does on SIGTERM (no new requests, in-flight ones finish,
    /// the schedule stops, the pools close) and, for a managed app, stops its servers and
    /// removes their files.
    pub async fn stop(self) {
        let TestApp { agent, serving, managed, .. } = self;
        serving.until(async {}).await.expect("the API shuts down cleanly");
        agent.stop().await;
        drop(managed);
    }

    /// A direct connection to managed replica `index`.
    pub async fn connect_replica(&self, index: usize) -> tokio_postgres::Client {
        let managed = self.agent.managed().expect("managed clusters");
        connect(&managed.replicas[index].cluster.running.url("postgres")).await
    }

    /// Polls `GET /stats/replication` until `ready` holds for it, or panics after `within`.
    pub async fn wait_for_replication(&self, what: &str, within: Duration, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + within;
        loop {
            let (_, report) = self.get("/stats/replication").await;
            if ready(&report) {
                return report;
            }
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}: {report:#}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until at least `n` sessions on the test database are running `sql` (that exact
    /// text, in `pg_stat_activity`): requests sent in the background are in flight.
    pub async fn wait_for_running(&self, sql: &str, n: i64) {
        let client = self.db.connect().await;
        let running = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'active' AND query = $1";
        wait_until(&format!("{n} session(s) running {sql:?}"), Duration::from_secs(10), async || {
            client.query_one(running, &[&sql]).await.expect("pg_stat_activity").get::<_, i64>(0) >= n
        })
        .await;
    }

    /// Sends `body` to `path` with the `Dbagent-Session` header.
    pub async fn post_in_session(&self, path: &str, session: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.address))
            .header("dbagent-session", session)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.json().await.expect("JSON body"))
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self.http.post(format!("{}{path}", self.address)).json(body).send().await.expect("request");
        let status = response.status();
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("response is not JSON ({e}): {text}"));
        (status, value)
    }

    pub async fn post_raw(&self, path: &str, body: &str) -> (StatusCode, Value) {
        let response = self.http.post(format!("{}{path}", self.address)).body(body.to_string()).send().await.expect("request");
        let status = response.status();
        let value = response.json().await.expect("JSON body");
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.http.get(format!("{}{path}", self.address)).send().await.expect("request");
        let status = response.status();
        let value = response.json().await.expect("JSON body");
        (status, value)
    }

    pub async fn query(&self, sql: &str, params: Value) -> (StatusCode, Value) {
        self.post("/query", &serde_json::json!({ "sql": sql, "params": params })).await
    }

    /// Runs `sql` through the API and insists it succeeds; returns the rows.
    pub async fn rows(&self, sql: &str, params: Value) -> Vec<Value> {
        let (status, body) = self.query(sql, params).await;
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
        body["rows"].as_array().expect("rows").clone()
    }

    /// Runs statements directly (not through dbagent).
    pub async fn setup(&self, sql: &str) {
        self.db.connect().await.batch_execute(sql).await.unwrap_or_else(|e| panic!("setup failed: {}", dbagent::db::error_chain(&e)));
    }

    /// [`setup`](Self::setup), its tables' counters (`pg_stat_user_tables`) flushed before
    /// it returns: a session keeps them to itself for up to a second otherwise.
    pub async fn setup_counted(&self, sql: &str) {
        let client = self.db.connect().await;
        for sql in [sql, "SELECT pg_stat_force_next_flush()", "SELECT 1"] {
            client.batch_execute(sql).await.unwrap_or_else(|e| panic!("setup failed: {}", dbagent::db::error_chain(&e)));
        }
    }

    /// `sql`, then what pg_stat_statements and this database's counters recorded forgotten, as
    /// a DBA does before recording a workload (the bulk load is not part of it).
    pub async fn setup_then_reset_statistics(&self, sql: &str) {
        self.setup_counted(sql).await;
        self.setup("SELECT pg_stat_statements_reset()").await;
        self.setup("SELECT pg_stat_reset()").await;
    }
}
