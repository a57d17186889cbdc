//! The rules: the built-in table with the seeds' thresholds, the user's overrides and custom
//! rules, and the pure decision of which level a value is at (with hysteresis).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{self, Level};

/// How a value compares with a threshold to fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
}

impl Op {
    pub fn parse(text: &str) -> Option<Op> {
        match text {
            ">" => Some(Op::Gt),
            ">=" => Some(Op::Ge),
            "<" => Some(Op::Lt),
            "<=" => Some(Op::Le),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }

    fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Op::Gt => value > threshold,
            Op::Ge => value >= threshold,
            Op::Lt => value < threshold,
            Op::Le => value <= threshold,
        }
    }

    /// The threshold moved `fraction` of itself back towards "fine": what a firing alert's
    /// value must get past to step down.
    fn relaxed(self, threshold: f64, fraction: f64) -> f64 {
        let band = threshold.abs() * fraction;
        match self {
            Op::Gt | Op::Ge => threshold - band,
            Op::Lt | Op::Le => threshold + band,
        }
    }
}

/// Where a rule's values come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The engine's own reading (live checks, counters since the last evaluation).
    Live,
    /// The newest samples of the metric history, all agents combined.
    History,
}

/// One rule, defaults and configuration applied.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Rule {
    pub name: String,
    pub metric: String,
    pub unit: &'static str,
    pub source: Source,
    pub op: Op,
    pub warning: Option<f64>,
    pub critical: Option<f64>,
    /// Seconds the condition must hold before the alert fires.
    #[serde(rename = "for_seconds")]
    pub for_seconds: f64,
    pub enabled: bool,
    pub summary: String,
    pub labels: BTreeMap<String, String>,
}

impl Rule {
    /// The level `value` is at. A level the alert is already at (`current` or above) is left
    /// only once the value is `hysteresis` (a fraction) past its threshold, so a value
    /// hovering at a threshold does not flap.
    pub fn level(&self, value: f64, current: Option<Level>, hysteresis: f64) -> Option<Level> {
        for (level, threshold) in [(Level::Critical, self.critical), (Level::Warning, self.warning)] {
            let Some(threshold) = threshold else { continue };
            let held = current.is_some_and(|c| c >= level);
            let threshold = if held { self.op.relaxed(threshold, hysteresis) } else { threshold };
            if self.op.holds(value, threshold) {
                return Some(level);
            }
        }
        None
    }

    /// The threshold of `level` (the warning one for levels without their own).
    pub fn threshold(&self, level: Level) -> Option<f64> {
        match level {
            Level::Critical | Level::Error => self.critical.or(self.warning),
            Level::Warning | Level::Info => self.warning.or(self.critical),
        }
    }
}

/// A built-in rule's defaults.
struct BuiltIn {
    name: &'static str,
    metric: &'static str,
    unit: &'static str,
    op: Op,
    warning: Option<f64>,
    critical: Option<f64>,
    for_seconds: f64,
    summary: &'static str,
}

const fn b(
    name: &'static str,
    metric: &'static str,
    unit: &'static str,
    op: Op,
    (warning, critical): (Option<f64>, Option<f64>),
    for_seconds: f64,
    summary: &'static str,
) -> BuiltIn {
    BuiltIn { name, metric, unit, op, warning, critical, for_seconds, summary }
}

/// The built-in rules with their defaults (the README's table). Thresholds from seeds 003 and
/// 004 where they give one (connections 70/90 %, response time 2 s, error rate 5 %, disk
/// 80/90 %, slow queries 10/50 a minute, replication lag 30 s / 5 min).
const BUILT_IN: &[BuiltIn] = &[
    b("database_down", "database_down", "", Op::Ge, (None, Some(1.0)), 30.0, "the primary database does not answer"),
    b("connections", "connections_used_pct", "%", Op::Ge, (Some(70.0), Some(90.0)), 60.0, "database connections used, of max_connections"),
    b("pool_saturation", "pool_used_pct", "%", Op::Ge, (Some(80.0), Some(100.0)), 30.0, "primary pool connections in use, of its maximum"),
    b("response_time", "response_time_p95_ms", "ms", Op::Ge, (Some(2000.0), Some(5000.0)), 120.0, "95th percentile HTTP response time"),
    b("error_rate", "error_rate_pct", "%", Op::Ge, (Some(5.0), Some(10.0)), 120.0, "requests and statements that failed"),
    b("slow_queries", "slow_queries_per_minute", "/min", Op::Ge, (Some(10.0), Some(50.0)), 300.0, "statements over optimization.slow_query_threshold_ms per minute"),
    b("replication_lag", "replica_lag_seconds", "s", Op::Ge, (Some(30.0), Some(300.0)), 60.0, "replay lag of a read replica"),
    b("replica_not_streaming", "replica_down", "", Op::Ge, (None, Some(1.0)), 30.0, "a read replica fails its health check (stopped, unreachable or not streaming)"),
    b("disk_usage", "disk_used_pct", "%", Op::Ge, (Some(80.0), Some(90.0)), 300.0, "disk used under the managed instance's data directory"),
    b("backup_failed", "backup_failed", "", Op::Ge, (None, Some(1.0)), 0.0, "the last scheduled backup failed"),
    b("backup_too_old", "backup_age_hours", "h", Op::Ge, (Some(26.0), Some(52.0)), 0.0, "hours since the last successful backup (warning at backup.max_age)"),
    b("wal_archive_failing", "wal_archive_failing", "", Op::Ge, (None, Some(1.0)), 60.0, "WAL archiving fails (the recoverable window stops growing, pg_wal fills)"),
    b("rpo_exceeded", "rpo_seconds", "s", Op::Ge, (Some(300.0), Some(600.0)), 0.0, "seconds of written WAL not yet safe in the archive (warning at backup.rpo_target)"),
    b("wal_stream_down", "wal_stream_down", "", Op::Ge, (None, Some(1.0)), 60.0, "pg_receivewal is not streaming the configured server's WAL (restarting with backoff)"),
    b("wal_slot_lag", "wal_slot_lag_bytes", "bytes", Op::Ge, (Some(1_073_741_824.0), Some(2_147_483_648.0)), 60.0, "WAL the streaming slot keeps on the server (warning at backup.wal_stream.max_slot_lag)"),
    b("backup_remote_lag", "backup_remote_lag_seconds", "s", Op::Ge, (Some(3600.0), Some(7200.0)), 0.0, "seconds a complete backup or WAL file has been only local (warning at backup.remote.max_lag)"),
    b("backup_remote_failing", "backup_remote_failing", "", Op::Ge, (Some(1.0), None), 300.0, "uploads to the remote store (backup.remote) fail (retrying with backoff)"),
    b("wraparound", "xid_age", "xids", Op::Ge, (Some(500_000_000.0), Some(1_500_000_000.0)), 0.0, "transaction ID age of the oldest database (wraparound)"),
    b("long_transaction", "oldest_transaction_seconds", "s", Op::Ge, (Some(300.0), Some(1800.0)), 0.0, "age of the oldest open transaction"),
    b("idle_in_transaction", "idle_in_transaction_sessions", "sessions", Op::Ge, (Some(1.0), Some(10.0)), 60.0, "sessions idle inside a transaction for over a minute"),
    b("deadlocks", "deadlocks_per_minute", "/min", Op::Ge, (Some(1.0), Some(5.0)), 0.0, "deadlocks detected per minute"),
    b("cache_hit_ratio", "cache_hit_ratio", "", Op::Lt, (Some(0.90), Some(0.80)), 600.0, "buffer cache hits over blocks needed"),
    b("invalid_indexes", "invalid_indexes", "indexes", Op::Ge, (Some(1.0), None), 600.0, "invalid indexes (a failed CREATE INDEX CONCURRENTLY or REINDEX)"),
    b("migration_failed", "migration_failed", "", Op::Ge, (None, Some(1.0)), 0.0, "auto-migrate failed"),
    b("migration_drift", "migrations_drifted", "migrations", Op::Ge, (Some(1.0), None), 0.0, "applied migrations whose files changed or are gone"),
];

/// The built-in rules' names.
pub fn names() -> Vec<&'static str> {
    BUILT_IN.iter().map(|r| r.name).collect()
}

/// Every rule: the built-in ones with `alerts.rules` applied (`backup_too_old`, `rpo_exceeded`,
/// `wal_slot_lag` and `backup_remote_lag` warn at `backup.max_age`, `backup.rpo_target`,
/// `backup.wal_stream.max_slot_lag` and `backup.remote.max_lag`, and are critical at twice
/// that, unless set), then the custom ones.
pub fn all(settings: &config::Alerts, backup: &config::Backup) -> Vec<Rule> {
    let mut rules: Vec<Rule> = BUILT_IN.iter().map(|d| built_in(d, settings.rules.get(d.name), backup)).collect();
    rules.extend(settings.custom.iter().map(custom));
    rules
}

fn built_in(d: &BuiltIn, o: Option<&config::RuleOverride>, backup: &config::Backup) -> Rule {
    let scaled = match d.name {
        "backup_too_old" => Some(backup.max_age_hours()),
        "rpo_exceeded" => Some(backup.rpo_target_seconds()),
        "wal_slot_lag" => Some(backup.wal_stream.max_slot_lag_bytes() as f64),
        "backup_remote_lag" => backup.remote.as_ref().map(|r| r.max_lag_seconds()),
        _ => None,
    };
    let (warning, critical) = match scaled {
        Some(at) => (Some(at), Some(at * 2.0)),
        None => (d.warning, d.critical),
    };
    Rule {
        name: d.name.to_owned(),
        metric: d.metric.to_owned(),
        unit: d.unit,
        source: Source::Live,
        op: d.op,
        warning: o.and_then(|o| o.warning).or(warning),
        critical: o.and_then(|o| o.critical).or(critical),
        for_seconds: o.and_then(|o| o.for_seconds).unwrap_or(d.for_seconds),
        enabled: o.and_then(|o| o.enabled).unwrap_or(true),
        summary: d.summary.to_owned(),
        labels: BTreeMap::new(),
    }
}

fn custom(c: &config::CustomRule) -> Rule {
    let unit = crate::monitor::history::series(&c.metric).map_or("", |s| s.unit);
    let op = Op::parse(&c.op).unwrap_or(Op::Gt);
    Rule {
        name: c.name.clone(),
        metric: c.metric.clone(),
        unit,
        source: Source::History,
        op,
        warning: c.warning,
        critical: c.critical,
        for_seconds: c.for_seconds,
        enabled: true,
        summary: c.summary.clone().unwrap_or_else(|| format!("{} {} threshold", c.metric, op.as_str())),
        labels: c.labels.clone(),
    }
}

/// The built-in rules' defaults as the README's Markdown table (a test keeps the two the same).
pub fn markdown_table() -> String {
    let mut out = String::from("| rule | metric | warning | critical | for | what |\n|---|---|---|---|---|---|\n");
    let threshold = |op: Op, t: Option<f64>, unit: &str| t.map_or("-".to_string(), |t| format!("{} {}", op.as_str(), super::lifecycle::shown(t, unit)));
    for r in BUILT_IN {
        out.push_str(&format!(
            "| `{}` | `{}` | {} | {} | {} s | {} |\n",
            r.name,
            r.metric,
            threshold(r.op, r.warning, r.unit),
            threshold(r.op, r.critical, r.unit),
            r.for_seconds,
            r.summary
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_lists_every_built_in_rule_with_its_defaults() {
        let readme = include_str!("../../README.md");
        let table = markdown_table();
        assert!(readme.contains(&table), "README.md's alert rules table is out of date; it should read:\n{table}");
    }

    fn rule(op: Op, warning: Option<f64>, critical: Option<f64>) -> Rule {
        Rule {
            name: "r".into(),
            metric: "m".into(),
            unit: "",
            source: Source::Live,
            op,
            warning,
            critical,
            for_seconds: 0.0,
            enabled: true,
            summary: String::new(),
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn levels_follow_the_thresholds_with_hysteresis() {
        let above = rule(Op::Ge, Some(70.0), Some(90.0));
        let w = Some(Level::Warning);
        let c = Some(Level::Critical);
        let cases = [
            // value, current level, expected
            (50.0, None, None),
            (70.0, None, w),
            (89.9, None, w),
            (90.0, None, c),
            (69.0, w, w), // within 5 % of 70: still warning
            (66.0, w, None),
            (86.0, c, c), // within 5 % of 90
            (85.0, c, w),
            (60.0, c, None),
        ];
        for (value, current, expected) in cases {
            assert_eq!(above.level(value, current, 0.05), expected, "{value} at {current:?}");
        }
        let below = rule(Op::Lt, Some(0.9), Some(0.8));
        assert_eq!(below.level(0.95, None, 0.05), None);
        assert_eq!(below.level(0.85, None, 0.05), w);
        assert_eq!(below.level(0.79, None, 0.05), c);
        assert_eq!(below.level(0.93, w, 0.05), w, "below 0.945 stays");
        assert_eq!(below.level(0.95, w, 0.05), None);
        let flag = rule(Op::Ge, None, Some(1.0));
        assert_eq!(flag.level(1.0, None, 0.05), c);
        assert_eq!(flag.level(0.0, c, 0.05), None, "a flag clears at 0");
    }

    #[test]
    fn overrides_change_only_what_they_give() {
        let mut settings = config::Alerts::default();
        settings.rules.insert("connections".into(), config::RuleOverride { warning: Some(80.0), ..Default::default() });
        settings.rules.insert("deadlocks".into(), config::RuleOverride { enabled: Some(false), ..Default::default() });
        let backup = config::Backup { rpo_target: "30s".into(), ..config::Backup::default() };
        let rules = all(&settings, &backup);
        let get = |name: &str| rules.iter().find(|r| r.name == name).unwrap();
        assert_eq!((get("connections").warning, get("connections").critical, get("connections").for_seconds), (Some(80.0), Some(90.0), 60.0));
        assert!(!get("deadlocks").enabled);
        assert_eq!(get("backup_too_old").warning, Some(26.0));
        assert_eq!((get("rpo_exceeded").warning, get("rpo_exceeded").critical), (Some(30.0), Some(60.0)));
        assert_eq!(get("wal_slot_lag").warning, Some(1_073_741_824.0));
        assert_eq!(rules.len(), BUILT_IN.len());
    }
}
