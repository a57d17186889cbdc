//! `dbagent stats database|tables|indexes|slow-queries|activity|system`: the same library
//! calls as `GET /stats/*`, printed as tables (a chosen set of columns) or, with `--json`,
//! whole.

use clap::Subcommand;
use serde::Serialize;
use serde_json::{Map, Value};

use super::commands::failure;
use super::{Failure, output};
use crate::app::Agent;
use crate::monitor::dbstats::{self, SlowOrder, SlowQueries};
use crate::monitor::system;

#[derive(Debug, Subcommand)]
pub enum StatsCommand {
    /// Connections, TPS (two samples a second apart), cache hit ratio, deadlocks, size,
    /// oldest transaction, wraparound.
    Database,
    /// The largest tables: sizes, live/dead rows, writes, scans, last (auto)vacuum/analyze.
    Tables {
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// The largest indexes: scans, size, unused since the statistics were reset.
    Indexes {
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Only unused ones.
        #[arg(long)]
        unused: bool,
    },
    /// The costliest statements from pg_stat_statements (normalised text).
    SlowQueries {
        /// Only statements whose mean time is at least this many milliseconds.
        #[arg(long, default_value_t = 0.0)]
        threshold_ms: f64,
        /// total_time, mean_time, max_time, calls, rows, blocks_read or temp_blocks.
        #[arg(long, default_value = "total_time", value_parser = parse_order)]
        order: SlowOrder,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Sessions by state and wait event, and the longest open transactions.
    Activity {
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// The host's load, CPU, memory and the managed instance's disk.
    System,
}

fn parse_order(text: &str) -> Result<SlowOrder, String> {
    text.parse().map_err(|e: crate::monitor::Error| e.to_string())
}

pub async fn run(agent: &Agent, cmd: StatsCommand, as_json: bool) -> Result<(), Failure> {
    let pools = &agent.executor.pools;
    let data_dir = agent.monitor.data_dir.as_deref();
    match cmd {
        StatsCommand::Database => {
            let stats = dbstats::database(pools, None, data_dir).await.map_err(failure)?;
            output::key_values(&serde_json::to_value(&stats)?, as_json)
        }
        StatsCommand::Tables { limit } => {
            let tables = dbstats::tables(pools, limit).await.map_err(failure)?;
            let keys = ["schema", "name", "total_bytes", "live_tuples", "dead_tuples", "dead_pct", "seq_scans", "index_scans", "last_autovacuum", "last_autoanalyze"];
            list(&tables, &keys, as_json)
        }
        StatsCommand::Indexes { limit, unused } => {
            let mut indexes = dbstats::indexes(pools, limit).await.map_err(failure)?;
            indexes.retain(|i| !unused || i.unused);
            list(&indexes, &["schema", "table", "name", "scans", "tuples_read", "size_bytes", "unique", "unused"], as_json)
        }
        StatsCommand::SlowQueries { threshold_ms, order, limit } => {
            let request = SlowQueries { threshold_ms, order, limit };
            let statements = dbstats::slow_queries(pools, &request, agent.monitor.managed).await.map_err(failure)?;
            list(&statements, &["queryid", "calls", "total_time_ms", "mean_time_ms", "max_time_ms", "rows", "query"], as_json)
        }
        StatsCommand::Activity { limit } => {
            let activity = dbstats::activity(pools, limit).await.map_err(failure)?;
            if as_json {
                return output::key_values(&serde_json::to_value(&activity)?, true);
            }
            list(&activity.sessions, &["database", "state", "wait_event_type", "wait_event", "sessions"], false)?;
            let keys = ["pid", "database", "user", "state", "transaction_seconds", "blocked_by", "query"];
            list(&activity.longest_transactions, &keys, false)
        }
        StatsCommand::System => {
            let report = system::report(data_dir).await;
            output::key_values(&serde_json::to_value(&report)?, as_json)
        }
    }
}

/// `items` as a table of `keys` (long text cut to 80 characters), or whole as JSON.
pub(super) fn list<T: Serialize>(items: &[T], keys: &[&str], as_json: bool) -> Result<(), Failure> {
    let values: Vec<Value> = items.iter().map(serde_json::to_value).collect::<Result<_, _>>()?;
    if as_json {
        return output::rows(&values, keys, true);
    }
    let picked: Vec<Value> = values
        .iter()
        .map(|v| {
            let mut row = Map::new();
            for k in keys {
                let cell = match v.get(*k) {
                    Some(Value::String(s)) if s.chars().count() > 80 => Value::String(format!("{}…", s.chars().take(79).collect::<String>())),
                    Some(other) => other.clone(),
                    None => Value::Null,
                };
                row.insert((*k).to_string(), cell);
            }
            Value::Object(row)
        })
        .collect();
    output::rows(&picked, keys, false)
}
