//! The migration lock: a session-level advisory lock held on a connection of its own.
//!
//! Session-level (not transaction-level) so the lock connection never has a transaction open
//! while migrations run: `CREATE INDEX CONCURRENTLY` waits for every older transaction, and
//! would wait forever on ours. The lock is released explicitly at the end of a run; on any
//! other path (an error before that, a cancelled future, a panic) dropping [`MigrationLock`]
//! closes its connection, and PostgreSQL releases a session's advisory locks when it ends.

use std::time::{Duration, Instant};

use tokio_postgres::Client;
use crate::db::PgConfig;

use super::{Error, session};

/// The advisory lock key (`pg_locks.classid`/`objid` show it split in two 32-bit halves).
/// Advisory locks are per database, so runners on different databases never wait on each other.
pub const LOCK_KEY: i64 = 0x6462_6167_656e_746d; // "dbagentm"

/// How often a waiting runner asks for the lock again.
const POLL: Duration = Duration::from_millis(100);

/// Held while a run writes; released on drop at the latest.
pub(crate) struct MigrationLock {
    client: Client,
}

impl MigrationLock {
    /// Takes the lock, polling until `timeout` has passed.
    pub(crate) async fn acquire(db: &PgConfig, timeout: Duration) -> Result<MigrationLock, Error> {
        let client = session::connect(db).await?;
        let started = Instant::now();
        loop {
            let taken: bool = client
                .query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY])
                .await
                .map_err(Error::history("take the migration lock"))?
                .get(0);
            if taken {
                return Ok(MigrationLock { client });
            }
            let waited = started.elapsed();
            if waited >= timeout {
                return Err(Error::LockTimeout {
                    waited_ms: waited.as_millis() as u64,
                });
            }
            tokio::time::sleep(POLL.min(timeout - waited)).await;
        }
    }

    /// Releases the lock and closes its connection. A failure is only logged: the connection
    /// closes either way, which releases the lock too.
    pub(crate) async fn release(self) {
        let unlocked = self
            .client
            .query_one("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
            .await;
        match unlocked {
            Ok(row) if row.get::<_, bool>(0) => {}
            Ok(_) => tracing::warn!("the migration lock was not held at release"),
            Err(err) => {
                tracing::warn!(error = %err, "could not release the migration lock; closing its connection instead")
            }
        }
    }
}
