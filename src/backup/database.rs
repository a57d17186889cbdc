//! What the backup jobs ask of PostgreSQL: the exported snapshot a dump runs in (with the WAL
//! position and row counts read inside it), databases created for restores and trial
//! restores, dropped on every path, and the rename swap that replaces a database only after
//! its replacement is complete.
//!
//! Connections are opened from the caller's `crate::db::PgConfig`, never from a pool: a
//! long job must not starve the pool, and a session left in an odd state dies with the job.
//! (On integration, [`connect`] becomes `crate::db::admin::connect`.)

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::Client;
use crate::db::PgConfig;

use super::Error;
use crate::db::{Purpose, sql};
use super::manifest::{CountMethod, Manifest, TableRows};

/// Tables estimated above this many rows are counted from `reltuples`, not `count(*)`.
const EXACT_COUNT_LIMIT: f64 = 1_000_000.0;
/// How long the swap keeps terminating sessions of the database it replaces.
const SWAP_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a session of the job's own; its driver task ends when the client is dropped.
pub(crate) async fn connect(db: &PgConfig, purpose: Purpose) -> Result<Client, Error> {
    crate::db::admin::connect(db, purpose).await.map_err(|source| Error::Unavailable { source })
}

/// `db` pointed at another database of the same server.
pub(crate) fn for_database(db: &PgConfig, name: &str) -> PgConfig {
    let mut config = db.clone();
    config.dbname(name);
    config
}

/// The database `db` names (libpq's default: the user name).
pub(crate) fn database_name(db: &PgConfig) -> String {
    db.get_dbname()
        .or(db.get_user())
        .unwrap_or("postgres")
        .to_owned()
}

/// Refuses names PostgreSQL would truncate or reject.
pub(crate) fn check_database_name(name: &str) -> Result<(), Error> {
    sql::name(name).map(drop).map_err(|err| Error::invalid(format!("database name: {err}")))
}

/// `base` + `suffix`, with `base` cut (on a character boundary) so the whole fits in 63 bytes.
pub(crate) fn derived_name(base: &str, suffix: &str) -> String {
    let room = sql::MAX_NAME_BYTES.saturating_sub(suffix.len());
    let mut cut = base.len().min(room);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}", &base[..cut])
}

/// The server and database a dump is taken from.
#[derive(Debug, Clone)]
pub(crate) struct ServerInfo {
    pub version: String,
    pub version_num: u32,
    pub database: String,
    pub encoding: String,
    pub lc_collate: String,
    pub lc_ctype: String,
}

/// `server_version_num` of the server `client` is connected to.
pub(crate) async fn server_version_num(client: &Client) -> Result<u32, Error> {
    let row = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(Error::db("read the server version"))?;
    Ok(row.get::<_, i32>(0).max(0) as u32)
}

/// A repeatable-read transaction whose snapshot is exported for `pg_dump --snapshot`, so the
/// dump, the row counts and the WAL position all describe the same instant. Must stay open
/// until pg_dump has finished (it imports the snapshot when it starts, and its parallel
/// workers when they do).
pub(crate) struct Snapshot {
    client: Client,
    pub id: String,
    pub wal_lsn: Option<String>,
    pub info: ServerInfo,
}

impl Snapshot {
    pub(crate) async fn open(db: &PgConfig) -> Result<Snapshot, Error> {
        let client = connect(db, Purpose::Backup).await?;
        client
            .batch_execute(
                "SET statement_timeout = 0; SET lock_timeout = 0; \
                 SET idle_in_transaction_session_timeout = 0; \
                 BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            )
            .await
            .map_err(Error::db("start the backup snapshot"))?;
        // One statement: the snapshot is taken as it starts, the LSN read while it runs.
        let row = client
            .query_one(
                "SELECT pg_export_snapshot(), \
                        (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() \
                              ELSE pg_current_wal_lsn() END)::text, \
                        current_setting('server_version'), \
                        current_setting('server_version_num')::int4, \
                        current_database()::text, \
                        pg_encoding_to_char(d.encoding)::text, d.datcollate::text, d.datctype::text \
                   FROM pg_database d WHERE d.datname = current_database()",
                &[],
            )
            .await
            .map_err(Error::db("export the backup snapshot"))?;
        Ok(Snapshot {
            id: row.get(0),
            wal_lsn: row.get(1),
            info: ServerInfo {
                version: row.get(2),
                version_num: row.get::<_, i32>(3).max(0) as u32,
                database: row.get(4),
                encoding: row.get(5),
                lc_collate: row.get(6),
                lc_ctype: row.get(7),
            },
            client,
        })
    }

    /// Rows of every table pg_dump dumps data of (all ordinary tables and partitions outside
    /// the system schemas and extensions, but not `dbagent.backups`, whose data dumps
    /// exclude), or of those `filter` names. Exact unless the table is estimated above a
    /// million rows.
    pub(crate) async fn count_rows(&self, filter: Option<&[String]>) -> Result<Vec<TableRows>, Error> {
        let rows = self
            .client
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname), n.nspname::text, c.relname::text, \
                        c.reltuples::float8, \
                        (SELECT format('%I.%I', pn.nspname, pc.relname) \
                           FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent \
                           JOIN pg_namespace pn ON pn.oid = pc.relnamespace \
                          WHERE i.inhrelid = c.oid AND pc.relkind = 'p') \
                   FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                  WHERE c.relkind = 'r' AND c.relpersistence <> 't' \
                    AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                    AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%' \
                    AND NOT (n.nspname = 'dbagent' AND c.relname = 'backups') \
                    AND NOT EXISTS (SELECT 1 FROM pg_depend d \
                                     WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid \
                                       AND d.deptype = 'e') \
                  ORDER BY 1",
                &[],
            )
            .await
            .map_err(Error::db("list the tables to count"))?;
        let mut counted = Vec::new();
        for row in rows {
            let (name, schema, table): (String, String, String) = (row.get(0), row.get(1), row.get(2));
            if let Some(filter) = filter {
                let qualified = format!("{schema}.{table}");
                if !filter.iter().any(|f| *f == name || *f == table || *f == qualified) {
                    continue;
                }
            }
            let estimate: f64 = row.get(3);
            let (rows, method) = if estimate >= EXACT_COUNT_LIMIT {
                (estimate as i64, CountMethod::Estimate)
            } else {
                (exact_count(&self.client, &name).await?, CountMethod::Exact)
            };
            counted.push(TableRows {
                table: name,
                rows,
                method,
                partition_of: row.get(4),
            });
        }
        Ok(counted)
    }

    /// Ends the transaction (and with it the exported snapshot).
    pub(crate) async fn close(self) {
        if let Err(err) = self.client.batch_execute("COMMIT").await {
            tracing::debug!(error = %err, "could not end the backup snapshot; closing its session");
        }
    }
}

async fn exact_count(client: &Client, table: &str) -> Result<i64, Error> {
    // `table` comes from format('%I.%I'), so it is already quoted where needed.
    let row = client
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .map_err(Error::db("count the rows of a table"))?;
    Ok(row.get(0))
}

/// Exact row counts of `tables` in the database `db` points at; a table that is missing is
/// left out of the answer.
pub(crate) async fn count_tables(db: &PgConfig, tables: &[String]) -> Result<HashMap<String, i64>, Error> {
    let client = connect(db, Purpose::Verify).await?;
    let mut counts = HashMap::new();
    for table in tables {
        match client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await {
            Ok(row) => {
                counts.insert(table.clone(), row.get(0));
            }
            Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {}
            Err(err) => return Err(Error::db("count the rows of a restored table")(err)),
        }
    }
    Ok(counts)
}

/// A session on the server's maintenance database, for creating, dropping and renaming
/// databases (which cannot be done from inside them).
pub(crate) struct Admin {
    client: Client,
    db: PgConfig,
}

impl Admin {
    /// Connects to `postgres`, or `template1` when `postgres` is one of the databases the job
    /// touches.
    pub(crate) async fn connect(db: &PgConfig, touched: &[&str]) -> Result<Admin, Error> {
        let maintenance = if touched.contains(&"postgres") { "template1" } else { "postgres" };
        let config = for_database(db, maintenance);
        let client = connect(&config, Purpose::Restore).await?;
        Ok(Admin { client, db: db.clone() })
    }

    pub(crate) async fn server_version_num(&self) -> Result<u32, Error> {
        server_version_num(&self.client).await
    }

    pub(crate) fn config_for(&self, name: &str) -> PgConfig {
        for_database(&self.db, name)
    }

    pub(crate) async fn exists(&self, name: &str) -> Result<bool, Error> {
        let row = self
            .client
            .query_one("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", &[&name])
            .await
            .map_err(Error::db("look the database up"))?;
        Ok(row.get(0))
    }

    /// Whether `name` is a template database (`datistemplate`).
    pub(crate) async fn is_template(&self, name: &str) -> Result<bool, Error> {
        let row = self
            .client
            .query_one("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1 AND datistemplate)", &[&name])
            .await
            .map_err(Error::db("look the database up"))?;
        Ok(row.get(0))
    }

    /// Renames `from` (which must have no sessions) to `to`.
    pub(crate) async fn rename(&self, from: &str, to: &str) -> Result<(), Error> {
        self.client
            .batch_execute(&format!("ALTER DATABASE {} RENAME TO {}", sql::ident(from), sql::ident(to)))
            .await
            .map_err(Error::db("rename a database"))
    }

    /// Creates an empty database (from `template0`) with the backup's encoding and locale.
    pub(crate) async fn create(&self, name: &str, like: &Manifest) -> Result<(), Error> {
        let sql = format!(
            "CREATE DATABASE {} TEMPLATE template0 ENCODING {} LC_COLLATE {} LC_CTYPE {}",
            sql::ident(name),
            sql::literal(&like.encoding),
            sql::literal(&like.lc_collate),
            sql::literal(&like.lc_ctype)
        );
        match self.client.batch_execute(&sql).await {
            Ok(()) => Ok(()),
            Err(err) if err.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {
                Err(Error::TargetExists { database: name.to_owned() })
            }
            Err(err) => Err(Error::db("create the database to restore into")(err)),
        }
    }

    /// Drops `name` if it exists, ending its sessions first.
    pub(crate) async fn drop(&self, name: &str) -> Result<(), Error> {
        self.client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", sql::ident(name)))
            .await
            .map_err(Error::db("drop a database"))
    }

    /// Databases named like a restore's scratch copy (`<db>_restoring_<YYYYMMDDHHMMSS>`) that
    /// no session is connected to, while no restore runs on the server (every restore keeps
    /// its `dbagent restore` session open from before it creates its copy until after the
    /// swap, so a live restore's copy is never taken for a dead one's).
    pub(crate) async fn abandoned_restores(&self) -> Result<Vec<String>, Error> {
        const SQL: &str = "SELECT d.datname::text AS name FROM pg_database d \
            WHERE d.datname ~ '_restoring_[0-9]{14}$' \
              AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname) \
              AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a \
                              WHERE a.application_name = 'dbagent restore' AND a.pid <> pg_backend_pid()) \
            ORDER BY 1";
        let rows = self.client.query(SQL, &[]).await.map_err(Error::db("look for abandoned restores"))?;
        Ok(rows.iter().map(|r| r.get::<_, String>("name")).collect())
    }

    /// Drops `name` unless a session is connected to it (no `FORCE`).
    pub(crate) async fn drop_unused(&self, name: &str) -> Result<(), Error> {
        self.client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {}", sql::ident(name)))
            .await
            .map_err(Error::db("drop a database"))
    }

    /// Puts `fresh` in the place of `target`: `target` is closed to new sessions, its sessions
    /// are ended, it is renamed to `old` (and opened again), and `fresh` takes its name. If the second rename
    /// fails the first is undone, so `target` always names a complete database.
    pub(crate) async fn swap(&self, target: &str, fresh: &str, old: &str) -> Result<(), Error> {
        let (t, f, o) = (sql::ident(target), sql::ident(fresh), sql::ident(old));
        self.client
            .batch_execute(&format!("ALTER DATABASE {t} WITH ALLOW_CONNECTIONS false"))
            .await
            .map_err(Error::db("close the database being replaced to new sessions"))?;
        if let Err(err) = self.rename_when_idle(target, &t, &o).await {
            self.reopen(&t).await;
            return Err(err);
        }
        let rename = format!("ALTER DATABASE {f} RENAME TO {t}");
        let second = self.client.batch_execute(&rename);
        // The riskiest instant: the original renamed away, the copy not yet in its place.
        #[cfg(feature = "failpoints")]
        let second = async {
            if crate::failpoints::fire("restore-swap-second-rename", target) {
                // Fail the way a real error would, after running nothing.
                return self.client.batch_execute("SELECT 1/0").await;
            }
            second.await
        };
        if let Err(err) = second.await {
            let undo = self.client.batch_execute(&format!("ALTER DATABASE {o} RENAME TO {t}")).await;
            if let Err(undo) = undo {
                tracing::error!(database = %target, renamed_to = %old, error = %undo, "could not rename the original database back after a failed swap");
            }
            self.reopen(&t).await;
            return Err(Error::db("rename the restored database into place")(err));
        }
        // The replaced database is kept (`replaced.rs`): open to sessions again, so it can be
        // looked at and swapped back.
        self.reopen(&o).await;
        Ok(())
    }

    /// Renames `name` once its last session is gone, terminating sessions until then.
    async fn rename_when_idle(&self, name: &str, quoted: &str, new_quoted: &str) -> Result<(), Error> {
        let started = std::time::Instant::now();
        loop {
            self.client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                      WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&name],
                )
                .await
                .map_err(Error::db("end the sessions of the database being replaced"))?;
            match self.client.batch_execute(&format!("ALTER DATABASE {quoted} RENAME TO {new_quoted}")).await {
                Ok(()) => return Ok(()),
                Err(err)
                    if err.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE)
                        && started.elapsed() < SWAP_TIMEOUT =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => return Err(Error::db("rename the database being replaced")(err)),
            }
        }
    }

    async fn reopen(&self, quoted: &str) {
        let sql = format!("ALTER DATABASE {quoted} WITH ALLOW_CONNECTIONS true");
        if let Err(err) = self.client.batch_execute(&sql).await {
            tracing::error!(database = %quoted, error = %err, "could not re-open the database to new sessions");
        }
    }
}

/// A database this job created and must not leave behind: dropped by [`Scratch::drop_now`],
/// or, when the job fails or is cancelled first, by a task spawned from `Drop`.
pub(crate) struct Scratch {
    pub name: String,
    db: PgConfig,
    armed: bool,
}

impl Scratch {
    pub(crate) fn new(db: &PgConfig, name: &str) -> Scratch {
        Scratch { name: name.to_owned(), db: db.clone(), armed: true }
    }

    /// The database stays (it became the restore's result).
    pub(crate) fn keep(mut self) {
        self.armed = false;
    }

    pub(crate) async fn drop_now(mut self, admin: &Admin) -> Result<(), Error> {
        self.armed = false;
        admin.drop(&self.name).await
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (db, name) = (self.db.clone(), self.name.clone());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(database = %name, "cannot drop an abandoned scratch database outside a runtime");
            return;
        };
        runtime.spawn(async move {
            let dropped = async {
                let admin = Admin::connect(&db, &[name.as_str()]).await?;
                admin.drop(&name).await
            };
            if let Err(err) = dropped.await {
                tracing::warn!(database = %name, error = %err, "could not drop an abandoned scratch database");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_safe() {
        assert_eq!(derived_name("shop", "_old_1"), "shop_old_1");
        let long = "é".repeat(40);
        let name = derived_name(&long, "_restored_20250101T000000");
        assert!(name.len() <= sql::MAX_NAME_BYTES && name.ends_with("_restored_20250101T000000"), "{name}");
        assert!(check_database_name(&"x".repeat(64)).is_err());
        assert!(check_database_name("").is_err());
        assert!(check_database_name("ok").is_ok());
    }
}
