//! Watching the agent and its database: what dbagent counts about its own work
//! ([`counters`], [`requests`]), what a background collector reads from PostgreSQL's statistics
//! views ([`collector`]), the Prometheus text rendering of both ([`render`]), the on-demand
//! statistics behind `/stats/*` and `dbagent stats` ([`dbstats`], [`system`]), the metric
//! history in `dbagent.metrics_history` ([`history`]), and the health report ([`health`]).
//!
//! Invariants: the request path only bumps atomics (no lock, no allocation); a scrape of
//! `/metrics` reads no database, it renders atomics and the collector's last snapshot; the
//! collector and the sampler run on sessions of their own (`dbagent monitor`), never on a
//! pool connection, with a statement timeout so they can never pile up.

pub mod components;
pub mod collector;
pub mod counters;
pub mod dbstats;
mod error;
pub mod health;
pub mod histogram;
pub mod history;
pub mod render;
pub mod requests;
pub mod scrape;
pub mod system;

pub use collector::{Collector, Snapshot};
pub use counters::{Outcome, Served, Stats, StatsSnapshot};
pub use error::Error;
pub use requests::{AuthFailure, RequestMetrics};

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Monitoring;

/// The monitor's handles for the API: request metrics, the collector (when
/// `monitoring.enable`), and what `/stats` needs to know about where the database runs.
pub struct Monitor {
    pub requests: Arc<RequestMetrics>,
    pub collector: Option<Arc<Collector>>,
    pub settings: Monitoring,
    /// The managed instance's data directory (disk space, `/stats/system`).
    pub data_dir: Option<PathBuf>,
    /// dbagent runs the database: it may create `pg_stat_statements` itself.
    pub managed: bool,
}

impl Monitor {
    /// `routes` are the API's route templates (`api::ROUTES`).
    pub fn new(
        settings: &Monitoring,
        routes: &[&'static str],
        data_dir: Option<PathBuf>,
        migrations: Option<Arc<crate::migrate::Service>>,
    ) -> Monitor {
        let managed = data_dir.is_some();
        Monitor {
            requests: Arc::new(RequestMetrics::new(routes)),
            collector: settings.enable.then(|| Arc::new(Collector::new(settings, migrations))),
            settings: settings.clone(),
            data_dir,
            managed,
        }
    }
}

/// This agent's id in the history: `<hostname>:<API port>`, stable across restarts so a
/// restarted agent continues its own series.
pub fn agent_id(port: u16) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let host = if host.is_empty() { "localhost".to_string() } else { host };
    format!("{host}:{port}")
}
