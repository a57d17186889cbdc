//! The statistics behind `/stats/database|tables|indexes|slow-queries|activity` and
//! `dbagent stats`: read when asked (they are for a person or a dashboard, not the request
//! path), on a primary pool connection marked busy for the few milliseconds they take.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::Error;
use super::collector::DbTotals;
use crate::db::{self, Pools, Target};

/// The database as a whole.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DatabaseStats {
    pub database: String,
    pub backends: i64,
    pub max_connections: i64,
    /// Backends as a share of what non-superusers may open.
    pub connection_utilization: f64,
    /// Commits and rollbacks per second over `sample_seconds`.
    pub tps: f64,
    pub rollbacks_per_second: f64,
    pub sample_seconds: f64,
    /// Buffer cache hit ratio since the statistics were reset (`None` before any read).
    pub cache_hit_ratio: Option<f64>,
    pub deadlocks: i64,
    pub temp_files: i64,
    pub temp_bytes: i64,
    pub conflicts: i64,
    pub size_bytes: i64,
    /// Age of the oldest open transaction in this database, in seconds.
    pub oldest_transaction_seconds: Option<f64>,
    /// `age(datfrozenxid)`: transactions since the oldest unfrozen one.
    pub xid_age: i64,
    /// Share of the 2^31 transaction ids used before wraparound protection stops writes.
    pub xid_wraparound_pct: f64,
    pub stats_reset: Option<String>,
    pub in_recovery: bool,
    /// Free space under the managed instance's data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<super::system::Disk>,
}

/// One table.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TableStats {
    pub schema: String,
    pub name: String,
    pub total_bytes: i64,
    pub table_bytes: i64,
    pub index_bytes: i64,
    pub live_tuples: i64,
    pub dead_tuples: i64,
    pub dead_pct: Option<f64>,
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
    pub hot_updated: i64,
    pub seq_scans: i64,
    pub index_scans: Option<i64>,
    pub last_vacuum: Option<String>,
    pub last_autovacuum: Option<String>,
    pub last_analyze: Option<String>,
    pub last_autoanalyze: Option<String>,
}

/// One index.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct IndexStats {
    pub schema: String,
    pub table: String,
    pub name: String,
    pub scans: i64,
    pub tuples_read: i64,
    pub tuples_fetched: i64,
    pub size_bytes: i64,
    pub unique: bool,
    pub primary: bool,
    pub valid: bool,
    /// Never scanned since the statistics were reset and enforcing no constraint.
    pub unused: bool,
}

/// How `/stats/slow-queries` orders statements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SlowOrder {
    #[default]
    TotalTime,
    MeanTime,
    MaxTime,
    Calls,
    Rows,
    /// Shared blocks read from disk (or the OS cache).
    BlocksRead,
    TempBlocks,
}

impl std::str::FromStr for SlowOrder {
    type Err = Error;

    fn from_str(s: &str) -> Result<SlowOrder, Error> {
        serde_json::from_value(serde_json::Value::String(s.replace('-', "_"))).map_err(|_| {
            Error::Invalid(format!("unknown order {s:?}: use total_time, mean_time, max_time, calls, rows, blocks_read or temp_blocks"))
        })
    }
}

impl SlowOrder {
    /// The fixed SQL expression behind each order (never text from the request).
    fn column(self) -> &'static str {
        match self {
            SlowOrder::TotalTime => "s.total_exec_time",
            SlowOrder::MeanTime => "s.mean_exec_time",
            SlowOrder::MaxTime => "s.max_exec_time",
            SlowOrder::Calls => "s.calls",
            SlowOrder::Rows => "s.rows",
            SlowOrder::BlocksRead => "s.shared_blks_read",
            SlowOrder::TempBlocks => "s.temp_blks_written",
        }
    }
}

/// A slow-query request: statements with a mean time of at least `threshold_ms`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SlowQueries {
    #[serde(default)]
    pub threshold_ms: f64,
    #[serde(default)]
    pub order: SlowOrder,
    #[serde(default = "default_limit")]
    pub limit: u32,
}

fn default_limit() -> u32 {
    20
}

/// One statement from `pg_stat_statements` (normalised text: constants are `$n`).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SlowQuery {
    pub queryid: Option<String>,
    pub user: String,
    pub query: Option<String>,
    pub calls: i64,
    pub total_time_ms: f64,
    pub mean_time_ms: f64,
    pub stddev_time_ms: f64,
    pub min_time_ms: f64,
    pub max_time_ms: f64,
    pub rows: i64,
    pub shared_blks_hit: i64,
    pub shared_blks_read: i64,
    pub temp_blks_read: i64,
    pub temp_blks_written: i64,
    pub cache_hit_ratio: Option<f64>,
}

/// Sessions grouped by state and wait event, and the oldest transactions.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Activity {
    pub sessions: Vec<SessionGroup>,
    pub longest_transactions: Vec<OpenTransaction>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SessionGroup {
    pub database: String,
    pub state: String,
    pub wait_event_type: String,
    pub wait_event: String,
    pub sessions: i64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OpenTransaction {
    pub pid: i32,
    pub database: String,
    pub user: String,
    pub application_name: String,
    pub client_addr: Option<String>,
    pub state: String,
    pub wait_event_type: Option<String>,
    pub wait_event: Option<String>,
    pub transaction_seconds: Option<f64>,
    pub query_seconds: Option<f64>,
    pub query: Option<String>,
    /// Sessions this one waits for (`pg_blocking_pids`).
    pub blocked_by: Vec<i32>,
}

/// Largest `limit` accepted by the list endpoints.
pub const MAX_LIMIT: u32 = 1000;

fn check_limit(limit: u32) -> Result<i64, Error> {
    if limit == 0 || limit > MAX_LIMIT {
        return Err(Error::Invalid(format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    Ok(i64::from(limit))
}

/// Runs one statistics query on a primary connection.
async fn stats_query(pools: &Pools, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error> {
    let mut lease = pools.acquire(Target::Write).await?;
    lease.begin_use();
    let result = lease.client().query(sql, params).await;
    match result {
        Ok(rows) => {
            lease.end_use();
            Ok(rows)
        }
        Err(err) => {
            if err.as_db_error().is_some() {
                lease.end_use();
            }
            Err(Error::driver(err))
        }
    }
}

/// `/stats/database`. TPS needs two samples: the collector's last one when it is at least a
/// second old (`previous`), else a second read one second after the first.
pub async fn database(pools: &Pools, previous: Option<DbTotals>, data_dir: Option<&Path>) -> Result<DatabaseStats, Error> {
    let sql = include_str!("sql/stats_database.sql");
    let first_at = Instant::now();
    let row = one(stats_query(pools, sql, &[]).await?)?;
    let (transactions, rollbacks): (f64, f64) = (db::get(&row, "transactions")?, db::get(&row, "rollbacks")?);
    let earlier = match previous.and_then(|p| Some((p.at?, p))) {
        Some((at, p)) if at.elapsed() >= Duration::from_secs(1) => Some((at, p.xact_commit + p.xact_rollback, p.xact_rollback)),
        _ => None,
    };
    let (seconds, d_tx, d_rb) = match earlier {
        Some((at, tx, rb)) => (at.elapsed().as_secs_f64(), transactions - tx, rollbacks - rb),
        None => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let again = one(stats_query(pools, sql, &[]).await?)?;
            let tx: f64 = db::get(&again, "transactions")?;
            let rb: f64 = db::get(&again, "rollbacks")?;
            (first_at.elapsed().as_secs_f64(), tx - transactions, rb - rollbacks)
        }
    };
    let (hit, read): (f64, f64) = (db::get(&row, "blks_hit")?, db::get(&row, "blks_read")?);
    let backends: i64 = db::get(&row, "backends")?;
    let max_connections: i64 = db::get(&row, "max_connections")?;
    let reserved: i64 = db::get(&row, "reserved_connections")?;
    let xid_age: i64 = db::get(&row, "xid_age")?;
    let per_second = |d: f64| if seconds > 0.0 { (d.max(0.0) / seconds * 100.0).round() / 100.0 } else { 0.0 };
    Ok(DatabaseStats {
        database: db::get(&row, "datname")?,
        backends,
        max_connections,
        connection_utilization: ratio(backends as f64, (max_connections - reserved).max(1) as f64),
        tps: per_second(d_tx),
        rollbacks_per_second: per_second(d_rb),
        sample_seconds: (seconds * 1000.0).round() / 1000.0,
        cache_hit_ratio: (hit + read > 0.0).then(|| ratio(hit, hit + read)),
        deadlocks: db::get(&row, "deadlocks")?,
        temp_files: db::get(&row, "temp_files")?,
        temp_bytes: db::get(&row, "temp_bytes")?,
        conflicts: db::get(&row, "conflicts")?,
        size_bytes: db::get(&row, "size_bytes")?,
        oldest_transaction_seconds: db::get(&row, "oldest_transaction_seconds")?,
        xid_age,
        xid_wraparound_pct: ratio(xid_age as f64 * 100.0, 2_147_483_648.0),
        stats_reset: db::get(&row, "stats_reset")?,
        in_recovery: db::get(&row, "in_recovery")?,
        disk: data_dir.and_then(|dir| super::system::disk(dir).ok()),
    })
}

fn ratio(a: f64, b: f64) -> f64 {
    if b <= 0.0 { 0.0 } else { (a / b * 10_000.0).round() / 10_000.0 }
}

fn one(rows: Vec<Row>) -> Result<Row, Error> {
    rows.into_iter().next().ok_or_else(|| Error::Db(db::Error::UnexpectedAnswer { reason: "no row for the current database".into() }))
}

/// `/stats/tables`: the largest `limit` tables.
pub async fn tables(pools: &Pools, limit: u32) -> Result<Vec<TableStats>, Error> {
    let limit = check_limit(limit)?;
    let rows = stats_query(pools, include_str!("sql/stats_tables.sql"), &[&limit]).await?;
    rows.iter().map(table).collect::<Result<_, db::Error>>().map_err(Error::Db)
}

fn table(r: &Row) -> Result<TableStats, db::Error> {
    Ok(TableStats {
        schema: db::get(r, "schema")?,
        name: db::get(r, "name")?,
        total_bytes: db::get(r, "total_bytes")?,
        table_bytes: db::get(r, "table_bytes")?,
        index_bytes: db::get(r, "index_bytes")?,
        live_tuples: db::get(r, "live_tuples")?,
        dead_tuples: db::get(r, "dead_tuples")?,
        dead_pct: db::get(r, "dead_pct")?,
        inserted: db::get(r, "inserted")?,
        updated: db::get(r, "updated")?,
        deleted: db::get(r, "deleted")?,
        hot_updated: db::get(r, "hot_updated")?,
        seq_scans: db::get(r, "seq_scans")?,
        index_scans: db::get(r, "index_scans")?,
        last_vacuum: db::get(r, "last_vacuum")?,
        last_autovacuum: db::get(r, "last_autovacuum")?,
        last_analyze: db::get(r, "last_analyze")?,
        last_autoanalyze: db::get(r, "last_autoanalyze")?,
    })
}

/// `/stats/indexes`: the largest `limit` indexes.
pub async fn indexes(pools: &Pools, limit: u32) -> Result<Vec<IndexStats>, Error> {
    let limit = check_limit(limit)?;
    let rows = stats_query(pools, include_str!("sql/stats_indexes.sql"), &[&limit]).await?;
    let index = |r: &Row| -> Result<IndexStats, db::Error> {
        Ok(IndexStats {
            schema: db::get(r, "schema")?,
            table: db::get(r, "table")?,
            name: db::get(r, "name")?,
            scans: db::get(r, "scans")?,
            tuples_read: db::get(r, "tuples_read")?,
            tuples_fetched: db::get(r, "tuples_fetched")?,
            size_bytes: db::get(r, "size_bytes")?,
            unique: db::get(r, "unique")?,
            primary: db::get(r, "primary")?,
            valid: db::get(r, "valid")?,
            unused: db::get(r, "unused")?,
        })
    };
    rows.iter().map(index).collect::<Result<_, _>>().map_err(Error::Db)
}

/// `/stats/slow-queries`. On dbagent's managed instance (`managed`) the extension is created
/// when missing; elsewhere a missing one is [`Error::StatementsUnavailable`] saying how to
/// enable it.
pub async fn slow_queries(pools: &Pools, request: &SlowQueries, managed: bool) -> Result<Vec<SlowQuery>, Error> {
    let limit = check_limit(request.limit)?;
    if !request.threshold_ms.is_finite() || request.threshold_ms < 0.0 {
        return Err(Error::Invalid("threshold_ms must be a number of milliseconds, 0 or more".into()));
    }
    ensure_statements(pools, managed).await?;
    let sql = include_str!("sql/stats_statements.sql").replace("ORDER_BY", request.order.column());
    let rows = stats_query(pools, &sql, &[&request.threshold_ms, &limit]).await?;
    let statement = |r: &Row| -> Result<SlowQuery, db::Error> {
        Ok(SlowQuery {
            queryid: db::get(r, "queryid")?,
            user: db::get(r, "user")?,
            query: db::get(r, "query")?,
            calls: db::get(r, "calls")?,
            total_time_ms: db::get(r, "total_time_ms")?,
            mean_time_ms: db::get(r, "mean_time_ms")?,
            stddev_time_ms: db::get(r, "stddev_time_ms")?,
            min_time_ms: db::get(r, "min_time_ms")?,
            max_time_ms: db::get(r, "max_time_ms")?,
            rows: db::get(r, "rows")?,
            shared_blks_hit: db::get(r, "shared_blks_hit")?,
            shared_blks_read: db::get(r, "shared_blks_read")?,
            temp_blks_read: db::get(r, "temp_blks_read")?,
            temp_blks_written: db::get(r, "temp_blks_written")?,
            cache_hit_ratio: db::get(r, "cache_hit_ratio")?,
        })
    };
    rows.iter().map(statement).collect::<Result<_, _>>().map_err(Error::Db)
}

async fn ensure_statements(pools: &Pools, managed: bool) -> Result<(), Error> {
    let row = one(stats_query(pools, include_str!("sql/stats_extension.sql"), &[]).await?)?;
    let (loaded, created, available): (bool, bool, bool) = (db::get(&row, "loaded")?, db::get(&row, "created")?, db::get(&row, "available")?);
    let database: String = db::get(&row, "database")?;
    if loaded && created {
        return Ok(());
    }
    if loaded && managed {
        stats_query(pools, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements", &[]).await?;
        return Ok(());
    }
    let how = match (available, loaded) {
        (false, _) => "the server has no pg_stat_statements: install PostgreSQL's contrib package (Debian: postgresql-contrib), then add pg_stat_statements to shared_preload_libraries in postgresql.conf, restart the server, and run CREATE EXTENSION pg_stat_statements".to_string(),
        (true, false) => format!(
            "add pg_stat_statements to shared_preload_libraries in postgresql.conf (ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'), restart the server, then run CREATE EXTENSION pg_stat_statements in database {database}"
        ),
        (true, true) => format!("run CREATE EXTENSION pg_stat_statements in database {database} (the library is loaded already)"),
    };
    Err(Error::StatementsUnavailable { how })
}

/// `/stats/activity`: sessions by state and wait event, and the `limit` oldest transactions.
pub async fn activity(pools: &Pools, limit: u32) -> Result<Activity, Error> {
    let limit = check_limit(limit)?;
    let groups = stats_query(pools, include_str!("sql/stats_activity.sql"), &[]).await?;
    let open = stats_query(pools, include_str!("sql/stats_transactions.sql"), &[&limit]).await?;
    let group = |r: &Row| -> Result<SessionGroup, db::Error> {
        Ok(SessionGroup {
            database: db::get(r, "database")?,
            state: db::get(r, "state")?,
            wait_event_type: db::get(r, "wait_event_type")?,
            wait_event: db::get(r, "wait_event")?,
            sessions: db::get(r, "sessions")?,
        })
    };
    let transaction = |r: &Row| -> Result<OpenTransaction, db::Error> {
        Ok(OpenTransaction {
            pid: db::get(r, "pid")?,
            database: db::get(r, "database")?,
            user: db::get(r, "user")?,
            application_name: db::get(r, "application_name")?,
            client_addr: db::get(r, "client_addr")?,
            state: db::get(r, "state")?,
            wait_event_type: db::get(r, "wait_event_type")?,
            wait_event: db::get(r, "wait_event")?,
            transaction_seconds: db::get(r, "transaction_seconds")?,
            query_seconds: db::get(r, "query_seconds")?,
            query: db::get(r, "query")?,
            blocked_by: db::get(r, "blocked_by")?,
        })
    };
    Ok(Activity {
        sessions: groups.iter().map(group).collect::<Result<_, _>>()?,
        longest_transactions: open.iter().map(transaction).collect::<Result<_, _>>()?,
    })
}
