//! `monitoring:` — the Prometheus endpoint, the database collector and the metric history.

use serde::{Deserialize, Deserializer, Serialize};

use super::{Error, invalid};

/// Metrics, database statistics and their history.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Monitoring {
    /// Run the background collector and the history sampler. Default true. Off, `/metrics`
    /// still serves dbagent's own counters and `pg_up`, and `/stats/*` still answer (they
    /// read the database when asked).
    pub enable: bool,
    /// `true`/`false`, or seed 000's `{enable: true, port: 9090}`: with a port, `/metrics`
    /// is also served on a listener of its own on that port (same bind address as the API;
    /// 0 picks a free port).
    /// Default: enabled, on the API port only.
    #[serde(deserialize_with = "prometheus")]
    pub prometheus: Prometheus,
    /// Seconds between reads of the cheap views (`pg_stat_database`, activity, locks,
    /// replication, bgwriter, archiver). Default 15, as pgwatch's basic preset.
    pub collect_interval: f64,
    /// Seconds between reads of the per-table and per-statement views. Default 60.
    pub detail_interval: f64,
    /// At most this many tables in `pg_stat_user_tables_*` (the largest). Default 100.
    pub top_tables: u32,
    /// At most this many statements in `pg_stat_statements_*` (by total time). Default 50.
    pub top_statements: u32,
    /// Seconds between history samples (`dbagent.metrics_history`). Default 15.
    pub sample_interval: f64,
    /// Hours of history kept (seed 004's `DB_METRICS_RETENTION_HOURS`). Default 168 (a week).
    pub retention_hours: u32,
}

/// `monitoring.prometheus` in either shape.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Prometheus {
    /// Serve `/metrics`. Default true.
    pub enable: bool,
    /// A port of its own for `/metrics` (seed 000: 9090). Default none.
    pub port: Option<u16>,
}

impl Default for Prometheus {
    fn default() -> Self {
        Prometheus { enable: true, port: None }
    }
}

/// SPEC's `prometheus: true` and seed 000's mapping are both accepted as written.
fn prometheus<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Prometheus, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        Flag(bool),
        Section(Prometheus),
    }
    // Decoded through a value first so the section's own errors (an unknown key) keep their
    // message instead of serde's "did not match any variant".
    let value = serde_norway::Value::deserialize(deserializer)?;
    if let serde_norway::Value::Bool(enable) = value {
        return Ok(Prometheus { enable, port: None });
    }
    match serde_norway::from_value::<Shape>(value.clone()) {
        Ok(Shape::Flag(enable)) => Ok(Prometheus { enable, port: None }),
        Ok(Shape::Section(section)) => Ok(section),
        Err(_) => serde_norway::from_value::<Prometheus>(value)
            .map_err(|e| serde::de::Error::custom(format!("expected true/false or {{enable, port}}: {e}"))),
    }
}

impl Default for Monitoring {
    fn default() -> Self {
        Monitoring {
            enable: true,
            prometheus: Prometheus::default(),
            collect_interval: 15.0,
            detail_interval: 60.0,
            top_tables: 100,
            top_statements: 50,
            sample_interval: 15.0,
            retention_hours: 168,
        }
    }
}

impl Monitoring {
    pub(super) fn validate(&self) -> Result<(), Error> {
        let interval = |key: &str, v: f64| {
            if !(1.0..=3600.0).contains(&v) {
                return invalid(key, "must be between 1 and 3600 seconds");
            }
            Ok(())
        };
        interval("monitoring.collect_interval", self.collect_interval)?;
        interval("monitoring.detail_interval", self.detail_interval)?;
        interval("monitoring.sample_interval", self.sample_interval)?;
        if self.retention_hours == 0 {
            return invalid("monitoring.retention_hours", "must be at least 1 hour");
        }
        if self.top_tables > 10_000 || self.top_statements > 1_000 {
            return invalid("monitoring.top_tables", "top_tables is at most 10000 and top_statements at most 1000 (each one is a set of series)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn parse(yaml: &str) -> Result<Config, String> {
        let value: serde_norway::Value = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
        serde_path_to_error::deserialize::<_, Config>(value).map_err(|e| format!("{}: {}", e.path(), e.inner()))
    }

    #[test]
    fn prometheus_takes_the_spec_flag_and_seed_000s_mapping() {
        let seed = parse("monitoring:\n  prometheus:\n    enable: true\n    port: 9090\n").unwrap();
        assert_eq!(seed.monitoring.prometheus, Prometheus { enable: true, port: Some(9090) });
        let flag = parse("monitoring:\n  prometheus: false\n").unwrap();
        assert_eq!(flag.monitoring.prometheus, Prometheus { enable: false, port: None });
        assert_eq!(parse("").unwrap().monitoring.prometheus, Prometheus::default());
        let err = parse("monitoring:\n  prometheus:\n    enabled: true\n").unwrap_err();
        assert!(err.contains("monitoring.prometheus") && err.contains("enabled"), "{err}");
        assert!(parse("monitoring:\n  prometheus: sometimes\n").is_err());
    }

    #[test]
    fn ranges_are_checked() {
        let bad = |m: Monitoring| m.validate().unwrap_err().to_string();
        assert!(bad(Monitoring { collect_interval: 0.0, ..Monitoring::default() }).contains("monitoring.collect_interval"));
        assert!(bad(Monitoring { retention_hours: 0, ..Monitoring::default() }).contains("monitoring.retention_hours"));
        assert!(bad(Monitoring { top_tables: 1_000_000, ..Monitoring::default() }).contains("monitoring.top_tables"));
        assert!(Monitoring::default().validate().is_ok());
    }
}
