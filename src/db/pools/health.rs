//! Health and lag checks of the pools' servers. Each server is checked over a monitor
//! connection of its own, outside its pool: a busy or exhausted pool never reads as a dead
//! server (which could set off a failover), and a refused connection is seen at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::{Endpoint, Pools};
use crate::db::{Error, Lsn};

/// How long the primary's health check waits for an answer.
const PRIMARY_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a health check waits to connect (a refused connection fails at once).
const MONITOR_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// What the last check saw. LSNs are 0 when unknown.
#[derive(Default)]
pub(super) struct Health {
    pub(super) healthy: AtomicBool,
    /// Replay lag in milliseconds; `u64::MAX` when unknown.
    pub(super) lag_ms: AtomicU64,
    pub(super) checked: AtomicBool,
    /// Primary: `pg_current_wal_lsn()`. Replica: `pg_last_wal_receive_lsn()`.
    pub(super) received_lsn: AtomicU64,
    /// Replica: `pg_last_wal_replay_lsn()`; only ever grows while the replica is the same
    /// server, so it is a safe lower bound for `min_lsn` routing between checks.
    pub(super) replayed_lsn: AtomicU64,
    pub(super) replay_paused: AtomicBool,
    pub(super) in_recovery: AtomicBool,
}

impl Pools {
    /// Checks every server once: the primary answers (and its WAL position), each replica
    /// answers and how far it has received and replayed.
    pub async fn check_health(&self) {
        for endpoint in std::iter::once(&self.primary).chain(&self.replicas) {
            endpoint.sharing.release_idle(super::shared::RELEASE_AFTER);
        }
        let primary = async {
            let lsn = tokio::time::timeout(PRIMARY_CHECK_TIMEOUT, self.primary.current_wal_lsn()).await;
            let ok = matches!(lsn, Ok(Ok(_)));
            if let Ok(Ok(lsn)) = lsn {
                self.primary.health.received_lsn.store(lsn.0, Ordering::Relaxed);
            }
            self.primary.health.healthy.store(ok, Ordering::Relaxed);
            self.primary.health.checked.store(true, Ordering::Relaxed);
        };
        let replicas = futures_util::future::join_all(self.replicas.iter().map(Endpoint::check_replica));
        tokio::join!(primary, replicas);
    }
}

impl Endpoint {
    async fn check_replica(&self) {
        if self.is_retired() {
            return;
        }
        let state = tokio::time::timeout(Duration::from_secs(3), self.replication_state()).await;
        let health = &self.health;
        match state {
            Ok(Ok(state)) => {
                health.lag_ms.store(state.lag.map_or(u64::MAX, |l| l.as_millis() as u64), Ordering::Relaxed);
                health.received_lsn.store(state.received.0, Ordering::Relaxed);
                health.replayed_lsn.store(state.replayed.0, Ordering::Relaxed);
                health.replay_paused.store(state.paused, Ordering::Relaxed);
                // Not in recovery is fine for reads (a logical replica, say); failover asks
                // the server itself before treating it as a primary.
                health.healthy.store(true, Ordering::Relaxed);
                health.in_recovery.store(state.in_recovery, Ordering::Relaxed);
            }
            Ok(Err(err)) => {
                tracing::warn!(replica = %self.name, error = %err, "replica health check failed");
                health.healthy.store(false, Ordering::Relaxed);
                health.lag_ms.store(u64::MAX, Ordering::Relaxed);
            }
            Err(_) => {
                health.healthy.store(false, Ordering::Relaxed);
                health.lag_ms.store(u64::MAX, Ordering::Relaxed);
            }
        }
        health.checked.store(true, Ordering::Relaxed);
    }

    /// The first row of `sql` on the monitor connection (opened or re-opened as needed; a
    /// failure closes it, so the next check connects afresh).
    async fn first_row(&self, sql: &str) -> Result<Vec<Option<String>>, Error> {
        let mut slot = self.monitor.lock().await;
        let generation = self.upstream.generation();
        if slot.as_ref().is_none_or(|(client, g)| client.is_closed() || *g != generation) {
            *slot = None;
            let mut config = self.upstream.current_config();
            config.connect_timeout(MONITOR_CONNECT_TIMEOUT);
            config.application_name(super::super::Purpose::Monitor.application_name());
            let (client, connection) = config
                .connect()
                .await
                .map_err(|e| Error::Unavailable { reason: crate::db::error_chain(&e) })?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            *slot = Some((client, generation));
        }
        let Some((client, _)) = slot.as_ref() else { unreachable!("set above") };
        let answer = client.simple_query(sql).await;
        let messages = match answer {
            Ok(messages) => messages,
            Err(err) => {
                *slot = None;
                return Err(Error::from_driver(err, false));
            }
        };
        text_rows(&messages)
            .into_iter()
            .next()
            .ok_or_else(|| Error::Unavailable { reason: "the check returned no row".into() })
    }

    /// The primary's current WAL position (fails on a server in recovery).
    pub async fn current_wal_lsn(&self) -> Result<Lsn, Error> {
        let row = self.first_row("SELECT pg_current_wal_lsn()::text").await?;
        parse_lsn(row.first().cloned().flatten())
    }

    /// A replica's progress. Lag is measured as PgDog does: zero when everything received is
    /// replayed, else the age of the last replayed transaction.
    async fn replication_state(&self) -> Result<ReplicationState, Error> {
        const SQL: &str = "SELECT pg_is_in_recovery()::text, \
             pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, \
             (CASE WHEN NOT pg_is_in_recovery() THEN NULL \
                   WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0 \
                   ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END)::float8::text, \
             (CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END)::text";
        let row = self.first_row(SQL).await?;
        let col = |i: usize| row.get(i).cloned().flatten();
        Ok(ReplicationState {
            in_recovery: col(0).as_deref() == Some("true"),
            received: col(1).map_or(Ok(Lsn(0)), |t| parse_lsn(Some(t)))?,
            replayed: col(2).map_or(Ok(Lsn(0)), |t| parse_lsn(Some(t)))?,
            lag: col(3).and_then(|v| v.parse::<f64>().ok()).map(|s| Duration::from_secs_f64(s.max(0.0))),
            paused: col(4).as_deref() == Some("true"),
        })
    }
}

/// A replica's progress as it reports it.
struct ReplicationState {
    in_recovery: bool,
    received: Lsn,
    replayed: Lsn,
    lag: Option<Duration>,
    paused: bool,
}

fn parse_lsn(text: Option<String>) -> Result<Lsn, Error> {
    let text = text.ok_or_else(|| Error::Unavailable { reason: "no WAL position reported".into() })?;
    text.parse().map_err(|e: crate::db::LsnParseError| Error::Unavailable { reason: e.to_string() })
}

/// Every row of a simple query's answer, columns as text.
pub(super) fn text_rows(messages: &[tokio_postgres::SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect()),
            _ => None,
        })
        .collect()
}
