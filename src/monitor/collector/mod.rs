//! The background collector: reads PostgreSQL's statistics views on a session of its own
//! (`application_name = 'dbagent monitor'`, a 5 s statement timeout, never a pool
//! connection) and keeps the result rendered, so a scrape of `/metrics` only copies text.
//!
//! Cheap views (databases, sessions, locks, settings, replication, bgwriter, archiver) are
//! read every `monitoring.collect_interval`; per-table, per-statement and size views every
//! `monitoring.detail_interval`, as pgwatch's presets do. A failure drops the session (it is
//! reopened on the next tick, on whatever server is primary then) and is reported as
//! `dbagent_collector_errors_total` and in `/stats`; the last good values stay served.

mod views;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Client;

use super::Error;
use super::render::{Kind, Text};
use crate::config::Monitoring;
use crate::db::{self, Pools, Purpose};
pub use views::number;

/// What the collector last read.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// When the cheap views were last read successfully.
    pub collected_at: Option<DateTime<Utc>>,
    /// The cheap views' series.
    pub cheap: String,
    /// The per-table, per-statement and size series (shared between snapshots: they change
    /// only every `detail_interval`).
    pub detail: Arc<str>,
    /// This database's figures from the last read (history, `/stats/database`).
    pub database: Option<DbTotals>,
    /// Whether `pg_stat_statements` could be read in this database (`None`: not tried yet).
    pub statements_available: Option<bool>,
}

/// The connected database's counters and gauges at one moment.
#[derive(Debug, Clone, Copy, Default, Serialize, schemars::JsonSchema)]
pub struct DbTotals {
    #[serde(skip)]
    pub at: Option<Instant>,
    pub xact_commit: f64,
    pub xact_rollback: f64,
    pub blks_hit: f64,
    pub blks_read: f64,
    pub deadlocks: f64,
    pub temp_bytes: f64,
    pub conflicts: f64,
    pub numbackends: f64,
    pub active: f64,
    pub idle: f64,
    pub idle_in_transaction: f64,
    pub max_connections: f64,
    pub oldest_xact_seconds: f64,
    pub lag_seconds: f64,
    pub size_bytes: Option<f64>,
}

/// The collector's shared state: the last snapshot and its own counters.
#[derive(Debug)]
pub struct Collector {
    snapshot: RwLock<Arc<Snapshot>>,
    settings: Monitoring,
    runs: AtomicU64,
    errors: AtomicU64,
    /// Nanoseconds the last cheap collection took.
    last_duration: AtomicU64,
    /// Migration status (applied, pending, drifted) with the detail views.
    migrations: Option<Arc<crate::migrate::Service>>,
}

/// The collector's session and what was learned when it opened.
struct Session {
    client: Client,
    version: i32,
    statements_sql: String,
}

/// Limits of every statement the collector runs: it must never queue behind a lock or run
/// long on a busy server.
const SESSION_SETUP: &str = "SET statement_timeout = '5s'; SET lock_timeout = '1s'; SET idle_in_transaction_session_timeout = '10s'";

impl Collector {
    pub fn new(settings: &Monitoring, migrations: Option<Arc<crate::migrate::Service>>) -> Collector {
        Collector {
            migrations,
            snapshot: RwLock::default(),
            settings: settings.clone(),
            runs: AtomicU64::default(),
            errors: AtomicU64::default(),
            last_duration: AtomicU64::default(),
        }
    }

    /// The last snapshot (a cheap `Arc` clone; the lock is held for that only).
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn publish(&self, snapshot: Snapshot) {
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(snapshot);
    }

    /// Runs until `shutdown` completes.
    pub async fn run(self: Arc<Self>, pools: Arc<Pools>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let cheap_every = Duration::from_secs_f64(self.settings.collect_interval);
        let detail_every = Duration::from_secs_f64(self.settings.detail_interval);
        let mut session: Option<Session> = None;
        let mut last_detail: Option<Instant> = None;
        let mut tick = tokio::time::interval(cheap_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tick.tick() => {}
            }
            let detail = last_detail.is_none_or(|at| at.elapsed() + Duration::from_millis(500) >= detail_every);
            // Shutdown does not wait for a read in progress (its session is just dropped).
            let collected = tokio::select! {
                _ = &mut shutdown => return,
                collected = self.collect(&pools, &mut session, detail) => collected,
            };
            match collected {
                Ok(()) => {
                    if detail {
                        last_detail = Some(Instant::now());
                    }
                }
                Err(err) => {
                    self.errors.fetch_add(1, Ordering::Relaxed);
                    session = None;
                    tracing::warn!(error = %db::error_chain(&err), "the metrics collector could not read the database; retrying next tick");
                }
            }
        }
    }

    /// One collection: the cheap views, and with `detail` the expensive ones too.
    async fn collect(&self, pools: &Pools, session: &mut Option<Session>, detail: bool) -> Result<(), Error> {
        let started = Instant::now();
        if session.is_none() {
            *session = Some(self.open(pools).await?);
        }
        let Some(s) = session.as_ref() else { return Ok(()) };
        let previous = self.snapshot();
        let mut next = Snapshot {
            detail: previous.detail.clone(),
            statements_available: previous.statements_available,
            ..Snapshot::default()
        };
        let (cheap, mut totals) = self.read_cheap(s).await?;
        next.cheap = cheap;
        totals.size_bytes = previous.database.and_then(|d| d.size_bytes);
        if detail {
            let (mut text, size, available) = self.read_detail(s).await?;
            self.read_migrations(pools, &mut text).await;
            next.detail = text.into();
            next.statements_available = Some(available);
            totals.size_bytes = size.or(totals.size_bytes);
        }
        next.database = Some(totals);
        next.collected_at = Some(Utc::now());
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.last_duration.store(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.publish(next);
        Ok(())
    }

    async fn open(&self, pools: &Pools) -> Result<Session, Error> {
        let client = db::admin::connect(&pools.admin_config(), Purpose::Monitor).await.map_err(Error::driver)?;
        client.batch_execute(SESSION_SETUP).await.map_err(Error::driver)?;
        let version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int4 AS v", &[])
            .await
            .map_err(Error::driver)
            .and_then(|row| db::get(&row, "v").map_err(Error::Db))?;
        // On the managed instance `app::create_managed_extensions` has created pg_stat_statements
        // before the collector starts.
        let mut statements_sql = views::STATEMENTS.sql.to_string();
        if version >= 170_000 {
            // PostgreSQL 17 split block times into shared and local ones.
            statements_sql = statements_sql
                .replace("s.blk_read_time", "(s.shared_blk_read_time + s.local_blk_read_time)")
                .replace("s.blk_write_time", "(s.shared_blk_write_time + s.local_blk_write_time)");
        }
        Ok(Session { client, version, statements_sql })
    }

    async fn read_cheap(&self, s: &Session) -> Result<(String, DbTotals), Error> {
        let mut text = Text::with_capacity(16 * 1024);
        let mut totals = DbTotals { at: Some(Instant::now()), ..DbTotals::default() };
        let rows = query(&s.client, views::STAT_DATABASE.sql, &[]).await?;
        views::render(&mut text, &views::STAT_DATABASE, &rows)?;
        let current = rows.iter().find(|r| r.try_get::<_, bool>("current").unwrap_or(false));
        let current_name = current.and_then(|r| r.try_get::<_, String>("datname").ok()).unwrap_or_default();
        if let Some(row) = current {
            let n = |c: &str| number(row, c).unwrap_or(0.0);
            totals.xact_commit = n("xact_commit");
            totals.xact_rollback = n("xact_rollback");
            totals.blks_hit = n("blks_hit");
            totals.blks_read = n("blks_read");
            totals.deadlocks = n("deadlocks");
            totals.temp_bytes = n("temp_bytes");
            totals.conflicts = n("conflicts");
            totals.numbackends = n("numbackends");
        }
        let rows = query(&s.client, views::ACTIVITY.sql, &[]).await?;
        views::render(&mut text, &views::ACTIVITY, &rows)?;
        for row in rows.iter().filter(|r| r.try_get::<_, String>("datname").ok().as_deref() == Some(current_name.as_str())) {
            let count = number(row, "count").unwrap_or(0.0);
            match row.try_get::<_, String>("state").unwrap_or_default().as_str() {
                "active" => totals.active = count,
                "idle" => totals.idle = count,
                "idle in transaction" | "idle in transaction (aborted)" => totals.idle_in_transaction += count,
                _ => {}
            }
        }
        let rows = query(&s.client, views::LOCKS.sql, &[]).await?;
        views::render(&mut text, &views::LOCKS, &rows)?;
        let rows = query(&s.client, views::SERVER.sql, &[]).await?;
        views::render(&mut text, &views::SERVER, &rows)?;
        if let Some(row) = rows.first() {
            totals.max_connections = number(row, "max_connections").unwrap_or(0.0);
            totals.oldest_xact_seconds = number(row, "oldest_xact_seconds").unwrap_or(0.0);
            totals.lag_seconds = number(row, "lag_seconds").unwrap_or(0.0);
        }
        for view in [&views::REPLICATION, &views::ARCHIVER] {
            let rows = query(&s.client, view.sql, &[]).await?;
            views::render(&mut text, view, &rows)?;
        }
        let writer = if s.version >= 170_000 { &views::CHECKPOINTER } else { &views::BGWRITER };
        let rows = query(&s.client, writer.sql, &[]).await?;
        views::render(&mut text, writer, &rows)?;
        Ok((text.finish(), totals))
    }

    /// Sizes, the largest tables and the costliest statements; returns this database's size
    /// and whether `pg_stat_statements` was readable.
    async fn read_detail(&self, s: &Session) -> Result<(String, Option<f64>, bool), Error> {
        let mut text = Text::with_capacity(64 * 1024);
        let rows = query(&s.client, views::DATABASE_SIZE.sql, &[]).await?;
        views::render(&mut text, &views::DATABASE_SIZE, &rows)?;
        let current: Option<String> = s.client.query_one("SELECT current_database() AS d", &[]).await.ok().and_then(|r| r.try_get("d").ok());
        let size = rows
            .iter()
            .find(|r| r.try_get::<_, String>("datname").ok() == current)
            .and_then(|r| number(r, "size_bytes"));
        let limit = i64::from(self.settings.top_tables);
        let rows = query(&s.client, views::USER_TABLES.sql, &[&limit]).await?;
        views::render(&mut text, &views::USER_TABLES, &rows)?;
        let limit = i64::from(self.settings.top_statements);
        // Asked first, so a server without it costs one cheap read, not a failed statement
        // (and a rolled-back transaction in its statistics) every cycle.
        let ready: bool = s
            .client
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_stat_statements')
                        AND current_setting('shared_preload_libraries') ~ 'pg_stat_statements' AS ready",
                &[],
            )
            .await
            .map_err(Error::driver)?
            .get(0);
        if !ready {
            return Ok((text.finish(), size, false));
        }
        let available = match s.client.query(s.statements_sql.as_str(), &[&limit]).await {
            Ok(rows) => {
                views::render(&mut text, &views::STATEMENTS, &rows)?;
                true
            }
            // Not loaded or not created here: the series are left out, `/stats/slow-queries`
            // says how to enable it.
            Err(err) if err.as_db_error().is_some() => false,
            Err(err) => return Err(Error::driver(err)),
        };
        Ok((text.finish(), size, available))
    }

    /// `dbagent_migrations_*` from the migration history and files (read-only, on the
    /// migration module's own session); left out when the files cannot be read.
    async fn read_migrations(&self, pools: &Pools, text: &mut String) {
        let Some(service) = &self.migrations else { return };
        let status = tokio::time::timeout(Duration::from_secs(5), service.status(&pools.admin_config())).await;
        let status = match status {
            Ok(Ok(status)) => status,
            Ok(Err(err)) => {
                tracing::debug!(error = %db::error_chain(&err), "no migration status for /metrics");
                return;
            }
            Err(_) => return,
        };
        let mut out = Text::with_capacity(512);
        out.single("dbagent_migrations_applied", Kind::Gauge, "Migrations applied to the database.", status.applied.len() as f64);
        out.single("dbagent_migrations_pending", Kind::Gauge, "Migration files not applied yet.", status.pending.len() as f64);
        out.single("dbagent_migrations_drifted", Kind::Gauge, "Applied migrations whose file changed since.", status.drifted.len() as f64);
        text.push_str(&out.finish());
    }

    /// The collector's own series.
    pub fn render_own(&self, text: &mut Text) {
        let snapshot = self.snapshot();
        text.single("dbagent_collector_runs_total", Kind::Counter, "Successful reads of the database's statistics views.", self.runs.load(Ordering::Relaxed) as f64);
        text.single("dbagent_collector_errors_total", Kind::Counter, "Failed reads of the database's statistics views.", self.errors.load(Ordering::Relaxed) as f64);
        text.single(
            "dbagent_collector_duration_seconds",
            Kind::Gauge,
            "How long the last read of the cheap statistics views took.",
            self.last_duration.load(Ordering::Relaxed) as f64 / 1e9,
        );
        let at = snapshot.collected_at.map_or(0.0, |t| t.timestamp_millis() as f64 / 1e3);
        text.single("dbagent_collector_last_success_timestamp_seconds", Kind::Gauge, "When the statistics views were last read (Unix seconds).", at);
    }
}

async fn query(client: &Client, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Vec<tokio_postgres::Row>, Error> {
    client.query(sql, params).await.map_err(Error::driver)
}
