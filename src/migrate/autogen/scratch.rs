//! The scratch database the desired schema is loaded into: created on the live server, and
//! dropped on every path — explicitly when autogenerate ends, or in the background by the
//! guard's `Drop` when the future is cancelled or panics.

use std::ops::Range;

use tokio_postgres::Client;
use crate::db::PgConfig;
use uuid::Uuid;

use super::Error;
use super::error::{Location, PgError};

/// Every scratch database's name starts with this, so a leftover one is recognisable.
pub const PREFIX: &str = "dbagent_scratch_";

/// Opens a connection of its own (see [`crate::db::admin::connect`]).
pub(super) async fn connect(config: &PgConfig) -> Result<Client, Error> {
    crate::db::admin::connect(config, crate::db::Purpose::Autogenerate).await.map_err(|source| Error::Unavailable { source })
}

/// A database that exists until [`ScratchDatabase::drop_now`] or `Drop`.
pub(super) struct ScratchDatabase {
    name: String,
    /// The live server's settings (its database is where `DROP DATABASE` is issued from).
    server: PgConfig,
    armed: bool,
}

impl ScratchDatabase {
    /// Creates `dbagent_scratch_<uuid>` from `template0` (nothing but what the desired schema
    /// creates), through `client`, connected with `server`.
    pub(super) async fn create(client: &Client, server: &PgConfig) -> Result<ScratchDatabase, Error> {
        let name = format!("{PREFIX}{}", Uuid::new_v4().simple());
        // CREATE DATABASE cannot run in a transaction: batch_execute of one statement is autocommit.
        client
            .batch_execute(&format!("CREATE DATABASE {} TEMPLATE template0", crate::db::sql::ident(&name)))
            .await
            .map_err(|source| match source.as_db_error() {
                None => Error::Unavailable { source },
                Some(_) => Error::CreateScratch {
                    name: name.clone(),
                    source,
                },
            })?;
        tracing::debug!(database = %name, "scratch database created");
        Ok(ScratchDatabase {
            name,
            server: server.clone(),
            armed: true,
        })
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn config(&self) -> PgConfig {
        let mut config = self.server.clone();
        config.dbname(&self.name);
        config
    }

    /// Drops the database now. A failure is logged, not returned: the comparison already
    /// succeeded or failed on its own, and a leftover database needs a human either way.
    pub(super) async fn drop_now(mut self) {
        self.armed = false;
        drop_database(&self.server, &self.name).await;
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (server, name) = (self.server.clone(), self.name.clone());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { drop_database(&server, &name).await });
            }
            Err(_) => tracing::error!(database = %name, "scratch database left behind: no runtime to drop it"),
        }
    }
}

/// `DROP DATABASE ... WITH (FORCE)` over a fresh connection (the one that created it may be the
/// reason we are here); `FORCE` ends a load still running in it.
async fn drop_database(server: &PgConfig, name: &str) {
    let outcome = match connect(server).await {
        Ok(client) => client
            .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", crate::db::sql::ident(name)))
            .await
            .map_err(|e| e.to_string()),
        Err(err) => Err(err.to_string()),
    };
    match outcome {
        Ok(()) => tracing::debug!(database = %name, "scratch database dropped"),
        Err(error) => tracing::error!(database = %name, %error, "could not drop the scratch database; drop it by hand"),
    }
}

/// Runs the desired schema in the scratch database, statement by statement (so statements
/// that refuse a transaction block work, and a failure names its statement and position).
pub(super) async fn load(client: &Client, sql: &str) -> Result<(), Error> {
    client
        .batch_execute("SET client_min_messages = warning")
        .await
        .map_err(Error::catalog("configure the scratch session"))?;
    let (statements, split) = statements(sql);
    for (index, range) in statements.into_iter().enumerate() {
        if let Err(source) = client.batch_execute(&sql[range.clone()]).await {
            let Some(db) = source.as_db_error() else {
                return Err(Error::Unavailable { source });
            };
            let mut server = PgError::from_db(db);
            let offset = sql[..range.start].chars().count() as u32;
            server.position = server.position.map(|p| p + offset);
            return Err(Error::InvalidSchema {
                statement: split.then_some(index + 1),
                location: server.position.map(|p| Location::of(sql, p)),
                server: Box::new(server),
                source,
            });
        }
    }
    Ok(())
}

/// Byte ranges of the statements, and whether the text could be split. Text PostgreSQL's parser
/// cannot split is sent whole, so the server reports the syntax error with its position.
fn statements(sql: &str) -> (Vec<Range<usize>>, bool) {
    let Ok(parts) = pg_query::split_with_parser(sql) else {
        let whole: Range<usize> = 0..sql.len();
        return (vec![whole], false);
    };
    let base = sql.as_ptr() as usize;
    let ranges = parts
        .into_iter()
        .map(|s| {
            let start = s.as_ptr() as usize - base;
            start..start + s.len()
        })
        .filter(|r| !sql[r.clone()].trim().is_empty())
        .collect();
    (ranges, true)
}
