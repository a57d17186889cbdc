//! The audit log: one row per call that changes something (and per read, with
//! `security.audit_reads`), in `dbagent.audit_log`.
//!
//! Requests hand their entry to a bounded queue; a background writer inserts what is queued
//! every `flush_interval_ms` (default 1 s) with one binary `COPY`. When the queue is full a
//! request waits for room (`on_overflow: wait`, the default: nothing is ever dropped), or its
//! entry is dropped and counted (`on_overflow: drop`). A failed insert is retried with the same
//! rows, so the queue fills and requests wait rather than losing entries. What an agent crash can
//! lose is what was queued since the last flush: about one flush interval. A clean shutdown
//! writes the queue out first.
//!
//! The table is append-only for everyone but its retention: a trigger refuses UPDATE, and
//! DELETE unless the retention job's transaction says so; row-level security hides it from
//! the roles read and write keys run as.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::Error;
use crate::config;
use crate::db::{self, Purpose};

const CREATE_TABLE: &str = "
CREATE SCHEMA IF NOT EXISTS dbagent;
CREATE TABLE IF NOT EXISTS dbagent.audit_log (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             timestamptz NOT NULL,
    agent          text NOT NULL,
    request_id     text,
    key_id         text,
    key_name       text,
    remote_addr    inet,
    user_agent     text,
    method         text NOT NULL,
    route          text NOT NULL,
    action         text NOT NULL,
    fingerprint    text,
    statement      text,
    tables_read    text[] NOT NULL DEFAULT '{}',
    tables_written text[] NOT NULL DEFAULT '{}',
    outcome        text NOT NULL,
    status         smallint NOT NULL,
    error_code     text,
    sqlstate       text,
    rows_affected  bigint,
    duration_ms    double precision NOT NULL,
    related        text
);
-- BRIN: rows arrive in time order, so a block range summary finds a time range (and
-- retention's deletes) almost as fast as a B-tree, at a fraction of the cost per insert
-- (measured: a quarter of an audit row's insert time). Newest-first listing walks the key.
CREATE INDEX IF NOT EXISTS audit_log_at_brin ON dbagent.audit_log USING brin (at);
COMMENT ON TABLE dbagent.audit_log IS
    'dbagent audit log: who called what, when, from where, with what result. Append-only; statements are normalised (no literal values).';
CREATE OR REPLACE FUNCTION dbagent.audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('dbagent.audit_retention', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'dbagent.audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
DROP TRIGGER IF EXISTS append_only ON dbagent.audit_log;
CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON dbagent.audit_log
    FOR EACH ROW EXECUTE FUNCTION dbagent.audit_log_append_only();
ALTER TABLE dbagent.audit_log ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON dbagent.audit_log FROM PUBLIC;
";

/// One audited call.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Entry {
    pub at: DateTime<Utc>,
    pub request_id: Option<String>,
    pub key_id: Option<String>,
    pub key_name: Option<String>,
    pub remote_addr: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub method: String,
    /// The route as declared (`/backups/{id}`), not the path asked for.
    pub route: String,
    /// `query.write`, `query.ddl`, `transaction`, `migrate`, `backup.create`, `keys.revoke`,
    /// `auth.failed` ...
    pub action: String,
    pub fingerprint: Option<String>,
    /// Normalised: literals are `$n`; parameters are never recorded.
    pub statement: Option<String>,
    pub tables_read: Vec<String>,
    pub tables_written: Vec<String>,
    /// `ok`, `error` or `denied`.
    pub outcome: String,
    pub status: u16,
    pub error_code: Option<String>,
    pub sqlstate: Option<String>,
    pub rows_affected: Option<i64>,
    pub duration_ms: f64,
    /// A backup id, migration version or key id the call concerned.
    pub related: Option<String>,
}

/// A row as read back.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Row {
    pub id: i64,
    pub agent: String,
    #[serde(flatten)]
    pub entry: Entry,
}

/// The queue and its writer.
pub struct Audit {
    tx: mpsc::Sender<Entry>,
    overflow: config::Overflow,
    pub stats: Arc<AuditStats>,
    writer: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// For `/health`.
#[derive(Debug, Default, Serialize)]
pub struct AuditStats {
    pub written: AtomicU64,
    /// Entries dropped on a full queue (`on_overflow: drop` only).
    pub dropped: AtomicU64,
    pub write_failures: AtomicU64,
    pub queued: AtomicU64,
}

/// Makes sure `dbagent.audit_log` and its append-only trigger exist. When they do, nothing is
/// locked: the script (whose trigger DDL locks the table against writers) runs only when
/// something is missing, so agents starting beside busy ones never queue behind them.
pub async fn ensure_table(client: &Client) -> Result<(), Error> {
    let ready: bool = client
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_trigger WHERE tgrelid = to_regclass('dbagent.audit_log') AND tgname = 'append_only')",
            &[],
        )
        .await?
        .get(0);
    if ready {
        return Ok(());
    }
    for attempt in 0..3 {
        match client.batch_execute(CREATE_TABLE).await {
            Ok(()) => return Ok(()),
            Err(err) if attempt < 2 && err.code().is_some_and(|c| matches!(c.code(), "23505" | "42P07" | "42710" | "XX000")) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

impl Audit {
    /// Creates the table and starts the writer (and the daily retention), returning the
    /// writer's task for shutdown.
    /// The writer connects to the current primary (`pools.admin_config()`) each time it
    /// connects: after a failover or switchover the rows go to the new primary.
    pub async fn start(pools: &Arc<crate::db::Pools>, settings: &config::Audit) -> Result<(Audit, tokio::task::JoinHandle<()>), Error> {
        // The writer makes sure of the table whenever it connects: a database down now delays
        // the rows, it does not stop the agent.
        let client = match db::admin::connect(&pools.admin_config(), Purpose::Audit).await {
            Ok(client) => {
                ensure_table(&client).await?;
                Some(client)
            }
            Err(err) => {
                tracing::warn!(error = %db::error_chain(&err), "cannot reach the audit log yet; entries wait in the queue");
                None
            }
        };
        let (tx, rx) = mpsc::channel(settings.queue_size);
        let stats = Arc::new(AuditStats::default());
        let writer = tokio::spawn(write_loop(pools.clone(), client, rx, stats.clone(), Duration::from_millis(settings.flush_interval_ms)));
        let retention = tokio::spawn(retention_loop(pools.clone(), settings.retention_days));
        let audit = Audit { tx, overflow: settings.on_overflow, stats, writer: tokio::sync::Mutex::new(Some(writer)) };
        Ok((audit, retention))
    }

    /// Queues `entry`; with `on_overflow: wait`, waits while the queue is full.
    pub async fn record(&self, entry: Entry) {
        self.stats.queued.fetch_add(1, Ordering::Relaxed);
        let sent = match self.overflow {
            config::Overflow::Wait => self.tx.send(entry).await.is_ok(),
            config::Overflow::Drop => match self.tx.try_send(entry) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            },
        };
        if !sent {
            tracing::error!("the audit writer has stopped; an audit entry was not written");
        }
    }

    /// Closes the queue and waits (bounded) for the writer to write what is in it.
    pub async fn stop(self, within: Duration) {
        let Audit { tx, writer, .. } = self;
        drop(tx);
        if let Some(writer) = writer.lock().await.take()
            && tokio::time::timeout(within, writer).await.is_err() {
                tracing::warn!("the audit queue was not written out before shutdown");
            }
    }
}

/// Most entries in one INSERT.
const BATCH: usize = 1000;

async fn write_loop(pools: Arc<crate::db::Pools>, mut client: Option<Client>, mut rx: mpsc::Receiver<Entry>, stats: Arc<AuditStats>, every: Duration) {
    let agent = agent_name();
    let mut batch: Vec<Entry> = Vec::with_capacity(BATCH);
    let mut closed = false;
    while !(closed && batch.is_empty()) {
        if !closed && batch.len() < BATCH {
            // Wait for the first entry, then give the others one interval to arrive.
            if batch.is_empty() {
                match rx.recv().await {
                    Some(entry) => batch.push(entry),
                    None => closed = true,
                }
            }
            let deadline = tokio::time::Instant::now() + every;
            while !closed && batch.len() < BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(entry)) => batch.push(entry),
                    Ok(None) => closed = true,
                    Err(_) => break,
                }
            }
        }
        if batch.is_empty() {
            continue;
        }
        if client.as_ref().is_none_or(Client::is_closed) {
            client = match db::admin::connect(&pools.admin_config(), Purpose::Audit).await {
                Ok(c) => ensure_table(&c).await.ok().map(|()| c),
                Err(_) => None,
            };
        }
        let written = match &client {
            Some(c) => insert(c, &agent, &batch).await,
            None => Err(Error::Db(db::Error::Unavailable { reason: "cannot connect".into() })),
        };
        match written {
            Ok(()) => {
                stats.written.fetch_add(batch.len() as u64, Ordering::Relaxed);
                batch.clear();
            }
            Err(err) => {
                // Kept and retried: the queue fills meanwhile, and requests wait for room.
                stats.write_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %db::error_chain(&err), entries = batch.len(), "cannot write the audit log; retrying");
                client = None;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Writes `batch` with one binary `COPY`: no SQL text to parse per row, and no JSON to build
/// here and take apart on the server (the writer competes with the requests for the CPU).
async fn insert(client: &Client, agent: &str, batch: &[Entry]) -> Result<(), Error> {
    use tokio_postgres::binary_copy::BinaryCopyInWriter;
    use tokio_postgres::types::{ToSql, Type};
    let sink = client
        .copy_in(
            "COPY dbagent.audit_log (at, agent, request_id, key_id, key_name, remote_addr, user_agent, method, route,
                 action, fingerprint, statement, tables_read, tables_written, outcome, status, error_code, sqlstate,
                 rows_affected, duration_ms, related) FROM STDIN (FORMAT binary)",
        )
        .await?;
    let types = [
        Type::TIMESTAMPTZ, Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT, Type::INET, Type::TEXT, Type::TEXT, Type::TEXT,
        Type::TEXT, Type::TEXT, Type::TEXT, Type::TEXT_ARRAY, Type::TEXT_ARRAY, Type::TEXT, Type::INT2, Type::TEXT, Type::TEXT,
        Type::INT8, Type::FLOAT8, Type::TEXT,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    futures_util::pin_mut!(writer);
    for e in batch {
        let status = e.status.min(i16::MAX as u16) as i16;
        let row: [&(dyn ToSql + Sync); 21] = [
            &e.at, &agent, &e.request_id, &e.key_id, &e.key_name, &e.remote_addr, &e.user_agent, &e.method, &e.route,
            &e.action, &e.fingerprint, &e.statement, &e.tables_read, &e.tables_written, &e.outcome, &status, &e.error_code,
            &e.sqlstate, &e.rows_affected, &e.duration_ms, &e.related,
        ];
        writer.as_mut().write(&row).await?;
    }
    writer.finish().await?;
    Ok(())
}

/// `host/pid`: which agent wrote a row.
fn agent_name() -> String {
    let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "?".into());
    format!("{host}/{}", std::process::id())
}

/// Deletes rows older than `days`, hourly, starting a minute after start (not in the middle
/// of every agent's start-up). Every agent may run it: it is idempotent.
async fn retention_loop(pools: Arc<crate::db::Pools>, days: u32) {
    let hour = Duration::from_secs(3600);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(60), hour);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(err) = prune(&pools.admin_config(), days).await {
            tracing::warn!(error = %db::error_chain(&err), "cannot prune the audit log");
        }
    }
}

/// Deletes rows older than `days`; the number deleted.
pub async fn prune(db: &crate::db::PgConfig, days: u32) -> Result<u64, Error> {
    let mut client = db::admin::connect(db, Purpose::Audit).await?;
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL dbagent.audit_retention = 'on'").await?;
    let deleted = tx
        .execute("DELETE FROM dbagent.audit_log WHERE at < now() - make_interval(days => $1)", &[&(days.min(i32::MAX as u32) as i32)])
        .await?;
    tx.commit().await?;
    Ok(deleted)
}

/// `GET /audit`'s filters.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// A key id or name.
    pub key: Option<String>,
    /// An action, or a prefix of one ending in `.` or `*` (`query.*`).
    pub action: Option<String>,
    /// A table read or written.
    pub table: Option<String>,
    pub outcome: Option<String>,
    /// Default 100, at most 10000.
    pub limit: Option<u32>,
}

/// Rows matching `filter`, newest first (in the order they were written: agents' clocks and
/// flushes may put a row up to a flush interval out of `at` order).
pub async fn list(client: &Client, filter: &Filter) -> Result<Vec<Row>, Error> {
    let limit = i64::from(filter.limit.unwrap_or(100).clamp(1, 10_000));
    let action = filter.action.as_deref().map(|a| a.trim_end_matches('*'));
    let prefix = filter.action.as_deref().is_some_and(|a| a.ends_with('*') || a.ends_with('.'));
    let rows = client
        .query(
            "SELECT id, agent, at, request_id, key_id, key_name, remote_addr, user_agent, method, route, action,
                    fingerprint, statement, tables_read, tables_written, outcome, status, error_code, sqlstate,
                    rows_affected, duration_ms, related
               FROM dbagent.audit_log
              WHERE ($1::timestamptz IS NULL OR at >= $1)
                AND ($2::timestamptz IS NULL OR at < $2)
                AND ($3::text IS NULL OR key_id = $3 OR key_name = $3)
                AND ($4::text IS NULL OR (CASE WHEN $5 THEN starts_with(action, $4) ELSE action = $4 END))
                AND ($6::text IS NULL OR $6 = ANY(tables_read) OR $6 = ANY(tables_written))
                AND ($7::text IS NULL OR outcome = $7)
              ORDER BY id DESC
              LIMIT $8",
            &[&filter.since, &filter.until, &filter.key, &action, &prefix, &filter.table, &filter.outcome, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let status: i16 = db::get(r, "status")?;
            Ok(Row {
                id: db::get(r, "id")?,
                agent: db::get(r, "agent")?,
                entry: Entry {
                    at: db::get(r, "at")?,
                    request_id: db::get(r, "request_id")?,
                    key_id: db::get(r, "key_id")?,
                    key_name: db::get(r, "key_name")?,
                    remote_addr: db::get::<Option<std::net::IpAddr>>(r, "remote_addr")?,
                    user_agent: db::get(r, "user_agent")?,
                    method: db::get(r, "method")?,
                    route: db::get(r, "route")?,
                    action: db::get(r, "action")?,
                    fingerprint: db::get(r, "fingerprint")?,
                    statement: db::get(r, "statement")?,
                    tables_read: db::get(r, "tables_read")?,
                    tables_written: db::get(r, "tables_written")?,
                    outcome: db::get(r, "outcome")?,
                    status: status.max(0) as u16,
                    error_code: db::get(r, "error_code")?,
                    sqlstate: db::get(r, "sqlstate")?,
                    rows_affected: db::get(r, "rows_affected")?,
                    duration_ms: db::get(r, "duration_ms")?,
                    related: db::get(r, "related")?,
                },
            })
        })
        .collect()
}
