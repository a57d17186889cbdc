//! Per-test databases, dropped when the test passes and kept for inspection when it fails.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use dbagent::db::PgConfig;
use dbagent::migrate::autogen::{self, Catalog, Generated};
use tokio_postgres::{Client, Config, NoTls};

/// A short random lowercase suffix (no extra crate: std's randomly seeded hasher).
fn random_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    format!("{:016x}", hasher.finish())
}

pub use crate::helpers::admin_config as server_config;

pub async fn connect(config: &Config) -> Client {
    let (client, connection) = config.connect(NoTls).await.expect("connect to the test server");
    tokio::spawn(connection);
    client
}

/// The `public` schema only, as autogenerate defaults to.
pub fn public() -> Vec<String> {
    vec!["public".to_string()]
}

/// A fresh database `autogen_<random>`, dropped when the test passes.
pub struct TestDb {
    pub name: String,
    pub config: PgConfig,
}

impl TestDb {
    /// A new database with `sql` applied.
    pub async fn with(sql: &str) -> TestDb {
        let name = format!("autogen_{}", random_suffix());
        let admin = connect(&server_config()).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE template0"))
            .await
            .expect("create the test database");
        let mut config = server_config();
        config.dbname(&name);
        let db = TestDb { name, config: PgConfig::plain(config) };
        db.execute(sql).await;
        db
    }

    pub async fn client(&self) -> Client {
        connect(&self.config).await
    }

    /// Runs `sql` in one transaction, as the migrator runs a migration file.
    pub async fn execute(&self, sql: &str) {
        let wrapped = format!("BEGIN;\n{sql}\nCOMMIT;");
        self.client()
            .await
            .batch_execute(&wrapped)
            .await
            .unwrap_or_else(|e| panic!("{sql}\n-- failed: {e:?}"));
    }

    pub async fn snapshot_of(&self, schemas: &[String]) -> Catalog {
        autogen::snapshot(&self.client().await, schemas)
            .await
            .expect("snapshot")
    }

    /// Autogenerate against this database for `public`.
    pub async fn autogenerate(&self, desired: &str) -> Generated {
        self.autogenerate_for(desired, &public()).await
    }

    pub async fn autogenerate_for(&self, desired: &str, schemas: &[String]) -> Generated {
        autogen::autogenerate(&self.config, desired, schemas)
            .await
            .unwrap_or_else(|e| panic!("autogenerate: {e:?}"))
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
}

impl Drop for TestDb {
    fn drop(&mut self) {
        crate::helpers::drop_databases(crate::helpers::server_url(), vec![self.name.clone()]);
    }
}

/// Scratch databases currently on the server.
pub async fn scratch_databases() -> Vec<String> {
    let admin = connect(&server_config()).await;
    let pattern = format!("{}%", autogen::SCRATCH_DATABASE_PREFIX);
    admin
        .query(
            "SELECT datname::text FROM pg_database WHERE datname LIKE $1",
            &[&pattern],
        )
        .await
        .expect("list databases")
        .iter()
        .map(|r| r.get(0))
        .collect()
}
