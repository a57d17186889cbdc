//! Test databases, backup locations and table digests.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use dbagent::backup::{Progress, Settings};
use dbagent::db::PgConfig;
use tokio_postgres::{Client, Config, NoTls};

/// The server every test database lives on.
pub use crate::helpers::admin_config as server;

pub async fn connect(config: &Config) -> Client {
    let (client, connection) = config.connect(NoTls).await.expect("connect to the test server");
    tokio::spawn(connection);
    client
}

/// The schema every test database gets: an enum, a foreign key, a partitioned table, a view.
const FIXTURE: &str = "
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, mood mood NOT NULL DEFAULT 'ok');
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id int NOT NULL REFERENCES customers (id),
    placed date NOT NULL,
    total numeric(12, 2) NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE TABLE events (id bigint NOT NULL, at date NOT NULL, payload jsonb) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE VIEW big_spenders AS SELECT customer_id, sum(total) AS spent FROM orders GROUP BY 1;
INSERT INTO customers (name, mood)
    SELECT 'customer ' || g, (ARRAY['sad', 'ok', 'happy']::mood[])[1 + g % 3] FROM generate_series(1, 200) g;
INSERT INTO orders (customer_id, placed, total)
    SELECT 1 + g % 200, date '2024-01-01' + g % 500, (g * 1.37)::numeric(12, 2) FROM generate_series(1, 2000) g;
INSERT INTO events SELECT g, date '2024-06-01' + (g % 400), jsonb_build_object('n', g) FROM generate_series(1, 1000) g;
ANALYZE;
";

/// The tables whose contents the tests compare.
pub const TABLES: &[&str] = &["customers", "orders", "events_2024", "events_2025"];

/// A test database with the fixture; dropped (with every database the test registered) on
/// drop, unless the test failed.
pub struct TestDb {
    pub name: String,
    server: Config,
    also: Mutex<Vec<String>>,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let server = server();
        let name = format!("dbagent_backup_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        connect(&server).await.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create the test database");
        let db = TestDb { name, server, also: Mutex::new(Vec::new()) };
        db.connect().await.batch_execute(FIXTURE).await.expect("load the fixture");
        db
    }

    pub fn config(&self) -> PgConfig {
        self.config_for(&self.name)
    }

    pub fn config_for(&self, name: &str) -> PgConfig {
        let mut config = self.server.clone();
        config.dbname(name);
        PgConfig::plain(config)
    }

    pub async fn connect(&self) -> Client {
        connect(&self.config()).await
    }

    /// Drop `name` too when the test passes.
    pub fn also_drop(&self, name: &str) {
        self.also.lock().unwrap().push(name.to_owned());
    }

    /// Databases on the server whose name starts with `prefix`.
    pub async fn databases_like(&self, prefix: &str) -> Vec<String> {
        let rows = connect(&self.server)
            .await
            .query("SELECT datname::text FROM pg_database WHERE starts_with(datname, $1) ORDER BY 1", &[&prefix])
            .await
            .unwrap();
        rows.iter().map(|r| r.get(0)).collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let mut names = std::mem::take(&mut *self.also.lock().unwrap());
        names.push(self.name.clone());
        crate::helpers::drop_databases(crate::helpers::server_url(), names);
    }
}

/// Row count and an md5 of the sorted rows of each of `TABLES`.
pub async fn digests(config: &Config) -> BTreeMap<String, (i64, String)> {
    let client = connect(config).await;
    let mut out = BTreeMap::new();
    for table in TABLES {
        let row = client
            .query_one(
                &format!("SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"),
                &[],
            )
            .await
            .unwrap_or_else(|e| panic!("digest of {table}: {e}"));
        out.insert((*table).to_owned(), (row.get(0), row.get(1)));
    }
    out
}

/// A backup location under `target/tmp/`, removed on drop unless the test failed.
pub struct Location {
    pub path: PathBuf,
}

impl Location {
    pub fn new() -> Location {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("backups-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).unwrap();
        Location { path }
    }

    pub fn settings(&self) -> Settings {
        let mut settings = Settings::new(&self.path);
        settings.bin_dir = std::env::var_os("PG_BIN").map(Into::into);
        settings
    }
}

impl Drop for Location {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A progress callback that ignores progress.
pub fn quiet(_: Progress) {}
