//! The health report: can the primary be reached, how are the pools, what has been counted.

use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Stats, StatsSnapshot};
use crate::db::{PoolStats, Pools};

/// Seed 000's `/health` shape, plus the database check and per-replica detail.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct HealthReport {
    /// `healthy`, `degraded` (a replica is down or lagging) or `unhealthy` (primary down).
    pub status: &'static str,
    pub timestamp: String,
    pub version: &'static str,
    pub uptime_seconds: u64,
    pub database: DatabaseCheck,
    pub connection_pool: PoolReport,
    pub statistics: StatsSnapshot,
    /// The result cache's counters and size, when it is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::cache::CacheStatsSnapshot>,
    /// Scheduled backups: runs, failures, last success and error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backups: Option<crate::backup::ScheduleStatsSnapshot>,
    /// WAL archiving for point-in-time recovery (`backup.pitr`), from `pg_stat_archiver`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_archive: Option<WalArchiveCheck>,
    /// With `backup.pitr`: where the WAL archive's files come from (`archive_command`, or
    /// `pg_receivewal` for a configured server, with the stream's state and its slot) and the
    /// measured RPO against `backup.rpo_target`. A stream that is down, a lost slot or an RPO
    /// over its target marks the report `degraded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<crate::backup::WalFreshness>,
    /// Off-site copies (`backup.remote`): the uploader's state, what is still only local and
    /// for how long. A failing store or a lag over `backup.remote.max_lag` marks the report
    /// `degraded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_remote: Option<crate::backup::remote::Status>,
    /// Access control: whether keys are required (and a warning when they are off beyond
    /// loopback), refused calls, and the audit queue (`dropped` only with `on_overflow: drop`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<crate::security::SecurityReport>,
    /// Alerts: whether this agent evaluates them, how many fire, and each channel's
    /// deliveries (a failing one marks the report `degraded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<crate::alerts::AlertsReport>,
    /// Scheduled maintenance jobs (`maintenance.jobs`): runs, skips, failures, last outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance: Option<Vec<crate::ops::jobs::JobStatus>>,
    /// Seed 001's shape: the database, each replica and the cache.
    pub components: Vec<super::components::Component>,
}

/// `pg_stat_archiver` of the primary. A failing archive stops the recoverable window from
/// growing and makes WAL pile up in `pg_wal` until the disk is full: it marks the report
/// `degraded`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct WalArchiveCheck {
    /// The last attempt failed (and nothing was archived since).
    pub failing: bool,
    pub archived_count: Option<i64>,
    pub last_archived_wal: Option<String>,
    pub last_archived_time: Option<String>,
    pub failed_count: Option<i64>,
    pub last_failed_wal: Option<String>,
    pub last_failed_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Reads `pg_stat_archiver` on the primary.
pub async fn wal_archive(pools: &Pools) -> WalArchiveCheck {
    let sql = "SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_wal, last_failed_time,
                      coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false)
                 FROM pg_stat_archiver";
    let read = tokio::time::timeout(Duration::from_secs(3), pools.primary().rows(sql)).await;
    let row = match read {
        Ok(Ok(rows)) => rows.into_iter().next().unwrap_or_default(),
        Ok(Err(err)) => return WalArchiveCheck::unknown(err.to_string()),
        Err(_) => return WalArchiveCheck::unknown("no answer within 3 s".into()),
    };
    let text = |i: usize| row.get(i).cloned().flatten();
    let number = |i: usize| text(i).and_then(|t| t.parse().ok());
    WalArchiveCheck {
        failing: text(6).as_deref() == Some("t"),
        archived_count: number(0),
        last_archived_wal: text(1),
        last_archived_time: text(2),
        failed_count: number(3),
        last_failed_wal: text(4),
        last_failed_time: text(5),
        error: None,
    }
}

impl WalArchiveCheck {
    fn unknown(error: String) -> WalArchiveCheck {
        WalArchiveCheck {
            failing: false,
            archived_count: None,
            last_archived_wal: None,
            last_archived_time: None,
            failed_count: None,
            last_failed_wal: None,
            last_failed_time: None,
            error: Some(error),
        }
    }
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DatabaseCheck {
    pub reachable: bool,
    pub location: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Whether dbagent's connections to the primary are encrypted (`pg_stat_ssl` of its own
    /// session), when the primary answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsCheck>,
}

/// TLS of dbagent's connections to the primary.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TlsCheck {
    /// The connection the check ran on is encrypted.
    pub encrypted: bool,
    /// The configured `sslmode` (libpq's name).
    pub sslmode: &'static str,
    /// `TLSv1.3`, say; absent in clear text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
}

/// Reads `pg_stat_ssl` for the session the query runs on (a pooled connection of the primary).
async fn tls(pools: &Pools) -> Option<TlsCheck> {
    let sql = "SELECT ssl, version, cipher FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let rows = tokio::time::timeout(Duration::from_secs(3), pools.primary().rows(sql)).await.ok()?.ok()?;
    let row = rows.into_iter().next()?;
    let text = |i: usize| row.get(i).cloned().flatten();
    Some(TlsCheck {
        encrypted: text(0).as_deref() == Some("t"),
        sslmode: pools.primary().current_config().tls().mode().as_str(),
        version: text(1),
        cipher: text(2),
    })
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PoolReport {
    pub healthy: bool,
    pub pool_stats: PoolStats,
    /// Number of configured read replicas (the seed's field).
    pub read_replicas: usize,
    pub replicas: Vec<PoolStats>,
}

impl HealthReport {
    pub fn is_healthy(&self) -> bool {
        self.status != "unhealthy"
    }
}

/// Pings the primary (bounded) and gathers statistics.
pub async fn report(pools: &Pools, stats: &Stats, cache: Option<&crate::cache::Cache>, started: Instant) -> HealthReport {
    let t0 = Instant::now();
    let ping = pools.primary().ping().await;
    let latency = t0.elapsed();
    let tls = if ping.is_ok() { tls(pools).await } else { None };
    let all = pools.stats();
    let reachable = ping.is_ok();
    let replicas_ok = all.replicas.iter().all(|r| r.usable);
    let cache = cache.map(|c| c.stats());
    let latency_ms = reachable.then(|| round_ms(latency));
    let components = super::components::components(&all.primary, reachable, latency_ms, &all.replicas, cache.as_ref());
    HealthReport {
        status: match (reachable, replicas_ok) {
            (false, _) => "unhealthy",
            (true, false) => "degraded",
            (true, true) => "healthy",
        },
        timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: started.elapsed().as_secs(),
        database: DatabaseCheck {
            reachable,
            location: pools.primary().location(),
            latency_ms,
            error: ping.err().map(|e| e.to_string()),
            tls,
        },
        connection_pool: PoolReport {
            healthy: reachable,
            read_replicas: all.replicas.len(),
            pool_stats: all.primary,
            replicas: all.replicas,
        },
        statistics: stats.snapshot(),
        cache,
        backups: None,
        wal_archive: None,
        wal: None,
        backup_remote: None,
        security: None,
        alerts: None,
        maintenance: None,
        components,
    }
}

fn round_ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
