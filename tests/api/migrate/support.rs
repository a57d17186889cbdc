//! Per-test databases and migration directories, both removed when the test passes and kept
//! for inspection when it fails.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dbagent::db::PgConfig;
use dbagent::migrate::{Migrator, Settings, UpOptions};
use tokio_postgres::{Client, Config, NoTls};

/// A short random lowercase suffix (no extra crate: std's randomly seeded hasher).
pub fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

use crate::helpers::admin_config;

pub async fn connect(config: &Config) -> Client {
    let (client, connection) = config.connect(NoTls).await.expect("connect to the test server");
    tokio::spawn(connection);
    client
}

/// A fresh database `mig_<random>`, dropped when the test passes.
pub struct TestDb {
    pub name: String,
    pub config: PgConfig,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let name = format!("mig_{}", random_suffix());
        let admin = connect(&admin_config()).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let mut config = admin_config();
        config.dbname(&name);
        TestDb { name, config: PgConfig::plain(config) }
    }

    pub async fn client(&self) -> Client {
        connect(&self.config).await
    }

    /// The first column of the first row of `sql`.
    pub async fn value<T: for<'a> tokio_postgres::types::FromSql<'a>>(&self, sql: &str) -> T {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
            .get(0)
    }

    pub async fn table_exists(&self, table: &str) -> bool {
        self.value(&format!("SELECT to_regclass('{table}') IS NOT NULL")).await
    }

    /// The versions in the history, ascending.
    pub async fn applied_versions(&self) -> Vec<i64> {
        let sql = "SELECT coalesce(array_agg(version ORDER BY version), '{}') FROM dbagent.schema_migrations";
        self.value(sql).await
    }

    /// Advisory locks held in this database by anyone.
    pub async fn advisory_locks(&self) -> i64 {
        self.value(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        crate::helpers::drop_databases(crate::helpers::server_url(), vec![self.name.clone()]);
    }
}

/// A migrations directory under `target/tmp`, removed when the test passes.
pub struct Dir {
    pub path: PathBuf,
}

impl Dir {
    pub fn new() -> Dir {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(random_suffix());
        std::fs::create_dir_all(&path).unwrap();
        Dir { path }
    }

    /// Writes `files` (name, SQL) and returns self, for chaining.
    pub fn with(self, files: &[(&str, &str)]) -> Dir {
        for (name, sql) in files {
            self.write(name, sql);
        }
        self
    }

    pub fn write(&self, name: &str, sql: &str) {
        std::fs::write(self.path.join(name), sql).unwrap();
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.path.join(name)).unwrap();
    }

    pub fn settings(&self) -> Settings {
        Settings {
            dir: self.path.clone(),
            lock_timeout: Duration::from_secs(10),
            statement_lock_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
        }
    }

    /// Loads the directory as it is now.
    pub fn migrator(&self) -> Migrator {
        Migrator::load(self.settings()).expect("the test migrations load")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

pub fn up_opts() -> UpOptions {
    UpOptions {
        applied_by: "test".into(),
        ..UpOptions::default()
    }
}

/// A reversible migration that creates table `t<version>`.
pub fn table_pair(version: i64) -> [(String, String); 2] {
    [
        (
            format!("{version}_t{version}.up.sql"),
            format!("CREATE TABLE t{version} (id int);"),
        ),
        (
            format!("{version}_t{version}.down.sql"),
            format!("DROP TABLE t{version};"),
        ),
    ]
}

/// A directory of reversible migrations creating `t<v>` for each version.
pub fn table_dir(versions: &[i64]) -> Dir {
    let dir = Dir::new();
    for version in versions {
        for (name, sql) in table_pair(*version) {
            dir.write(&name, &sql);
        }
    }
    dir
}
