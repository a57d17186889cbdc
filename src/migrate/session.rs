//! One run's connections: the lock holder and the worker that runs migrations and writes the
//! history. Both are opened from the caller's `crate::db::PgConfig`, never from a pool, so a
//! run cannot starve the pool and a connection left in an odd state (a migration's `SET`,
//! an aborted statement) dies with the run.

use tokio_postgres::Client;
use crate::db::PgConfig;

use super::lock::MigrationLock;
use super::{Error, Settings, history};

/// Opens a connection of the run's own (see [`crate::db::admin::connect`]).
pub(crate) async fn connect(db: &PgConfig) -> Result<Client, Error> {
    crate::db::admin::connect(db, crate::db::Purpose::Migrate).await.map_err(|source| Error::Unavailable { source })
}

/// A run that may write: the lock is held and the `dbagent` schema is up to date.
pub(crate) struct Session {
    lock: MigrationLock,
    pub client: Client,
}

impl Session {
    /// Takes the lock, then opens the worker and brings the `dbagent` schema up to date.
    pub(crate) async fn open(db: &PgConfig, settings: &Settings) -> Result<Session, Error> {
        let lock = MigrationLock::acquire(db, settings.lock_timeout).await?;
        let mut client = connect(db).await?;
        history::ensure_schema(&mut client).await?;
        Ok(Session { lock, client })
    }

    /// Closes the worker, then releases the lock.
    pub(crate) async fn close(self) {
        drop(self.client);
        self.lock.release().await;
    }
}
