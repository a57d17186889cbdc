//! `dbagent.metrics_history`: the table, writing samples, rollups, pruning and reading
//! aligned series for charts.
//!
//! Rows are keyed by `(resolution, at, agent_id)`: `resolution` 0 for raw samples, 60 and
//! 3600 for the rollups, `at` the start of the interval a row covers. A raw row's `max` is
//! `{}` (one sample: it would only repeat `avg`, doubling the largest part of the table). Raw samples are kept
//! for a day at most (charts over longer spans read the rollups), the rollups for
//! `retention_hours`.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::{Across, SERIES, Sample, Series};
use crate::db;
use crate::monitor::Error;

/// The history's advisory lock key ("dbagenth"): the agent holding it prunes.
pub const LOCK_KEY: i64 = 0x6462_6167_656e_7468;

/// Raw samples are kept at most this long.
pub const RAW_KEPT_HOURS: u32 = 24;

const CREATE: &str = "
    SELECT pg_advisory_xact_lock(7234120011);
    CREATE SCHEMA IF NOT EXISTS dbagent;
    CREATE TABLE IF NOT EXISTS dbagent.metrics_history (
        agent_id   text        NOT NULL,
        resolution int4        NOT NULL,
        at         timestamptz NOT NULL,
        samples    int4        NOT NULL,
        avg        jsonb       NOT NULL,
        max        jsonb       NOT NULL,
        PRIMARY KEY (resolution, at, agent_id)
    );
    COMMENT ON TABLE dbagent.metrics_history IS
        'dbagent''s metric history: resolution 0 = raw samples, 60 / 3600 = rollups; avg and max are {series: value}';";

/// Creates the table (idempotent; agents starting together take turns on a lock).
pub async fn create(client: &Client) -> Result<(), Error> {
    let sql = format!("BEGIN; {CREATE} COMMIT;");
    client.batch_execute(&sql).await.map_err(Error::driver)
}

/// Writes one raw sample of `agent` taken at `at`.
pub async fn insert(client: &Client, agent: &str, at: DateTime<Utc>, sample: &Sample) -> Result<(), Error> {
    let json = serde_json::Value::Object(sample.iter().map(|(k, v)| ((*k).to_string(), serde_json::json!(v))).collect()).to_string();
    client
        .execute(
            "INSERT INTO dbagent.metrics_history (agent_id, resolution, at, samples, avg, max)
             VALUES ($1, 0, $2::text::timestamptz, 1, $3::text::jsonb, '{}')
             ON CONFLICT DO NOTHING",
            &[&agent, &at.to_rfc3339(), &json],
        )
        .await
        .map_err(Error::driver)?;
    Ok(())
}

/// Rolls `agent`'s rows of resolution `from` in `[start, start + to)` into one row of
/// resolution `to` (seconds). Re-running it replaces the row, so a late sample is counted.
pub async fn rollup(client: &Client, agent: &str, from: i32, to: i32, start: DateTime<Utc>) -> Result<(), Error> {
    let sql = "
        WITH src AS (
            SELECT h.samples, a.key, a.value::float8 AS avg, coalesce((h.max ->> a.key)::float8, a.value::float8) AS max
              FROM dbagent.metrics_history h, jsonb_each_text(h.avg) a
             WHERE h.agent_id = $1 AND h.resolution = $2
               AND h.at >= $4::text::timestamptz AND h.at < $4::text::timestamptz + make_interval(secs => $3)
               AND a.value IS NOT NULL
        ), per_key AS (
            SELECT key, sum(avg * samples) / sum(samples) AS avg, max(max) AS max FROM src GROUP BY key
        ), n AS (
            SELECT coalesce(sum(samples), 0)::int4 AS samples
              FROM dbagent.metrics_history
             WHERE agent_id = $1 AND resolution = $2
               AND at >= $4::text::timestamptz AND at < $4::text::timestamptz + make_interval(secs => $3)
        )
        INSERT INTO dbagent.metrics_history (agent_id, resolution, at, samples, avg, max)
        SELECT $1, $3, $4::text::timestamptz, n.samples,
               coalesce((SELECT jsonb_object_agg(key, round(avg::numeric, 4)) FROM per_key), '{}'),
               coalesce((SELECT jsonb_object_agg(key, max) FROM per_key), '{}')
          FROM n WHERE n.samples > 0
        ON CONFLICT (resolution, at, agent_id) DO UPDATE
           SET samples = excluded.samples, avg = excluded.avg, max = excluded.max";
    client.execute(sql, &[&agent, &from, &f64::from(to), &start.to_rfc3339()]).await.map_err(Error::driver)?;
    Ok(())
}

/// Deletes what is past retention, for every agent (the leader's job). Returns rows deleted.
pub async fn prune(client: &Client, retention_hours: u32) -> Result<u64, Error> {
    let raw_hours = retention_hours.min(RAW_KEPT_HOURS);
    client
        .execute(
            "DELETE FROM dbagent.metrics_history
              WHERE (resolution = 0 AND at < now() - make_interval(hours => $1))
                 OR at < now() - make_interval(hours => $2)",
            &[&(raw_hours as i32), &(retention_hours as i32)],
        )
        .await
        .map_err(Error::driver)
}

/// `GET /metrics/history?series=a,b&hours=24&step=60&agent=...`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    /// Comma-separated series names; default all.
    pub series: Option<String>,
    /// How far back. Default 24.
    pub hours: Option<f64>,
    /// Seconds between points. Default: about 300 points over the span.
    pub step: Option<u32>,
    /// Only this agent's rows; default all agents combined.
    pub agent: Option<String>,
    /// `avg` (default) or `max` of each point's samples.
    pub stat: Option<Stat>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    #[default]
    Avg,
    Max,
}

/// Aligned series: `values[i]` of each series is at `timestamps[i]`; `null` where nothing
/// was sampled.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct History {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub step: u32,
    /// Which rows were read: `raw`, `1m` or `1h`.
    pub resolution: &'static str,
    pub stat: Stat,
    pub agents: Vec<String>,
    /// Unix seconds of each point (the start of its step).
    pub timestamps: Vec<i64>,
    pub series: Vec<SeriesValues>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct SeriesValues {
    #[serde(flatten)]
    pub series: Series,
    pub values: Vec<Option<f64>>,
}

/// At most this many points per series.
const MAX_POINTS: i64 = 5000;

/// The request checked: which series, the span, the step and the rows to read.
struct Plan {
    series: Vec<&'static Series>,
    from: i64,
    to: i64,
    step: i64,
    resolution: i32,
}

fn plan(req: &HistoryRequest, sample_interval: f64, retention_hours: u32, now: DateTime<Utc>) -> Result<Plan, Error> {
    let series = match req.series.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => SERIES.iter().collect(),
        Some(list) => list
            .split(',')
            .map(|name| {
                super::series(name.trim()).ok_or_else(|| {
                    let known: Vec<&str> = SERIES.iter().map(|s| s.name).collect();
                    Error::Invalid(format!("unknown series {:?}; known: {}", name.trim(), known.join(", ")))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let hours = req.hours.unwrap_or(24.0);
    if !hours.is_finite() || hours <= 0.0 || hours > f64::from(retention_hours) {
        return Err(Error::Invalid(format!("hours must be more than 0 and at most monitoring.retention_hours ({retention_hours})")));
    }
    let span = (hours * 3600.0) as i64;
    let step = i64::from(req.step.unwrap_or(0));
    let step = if step == 0 { (span / 300).max(sample_interval.ceil() as i64).max(1) } else { step };
    let min_step = sample_interval.ceil() as i64;
    if step < min_step {
        return Err(Error::Invalid(format!("step must be at least monitoring.sample_interval ({min_step} s)")));
    }
    if span / step > MAX_POINTS {
        return Err(Error::Invalid(format!("{hours} hours at a step of {step} s is over {MAX_POINTS} points; use a larger step")));
    }
    // The coarsest rows that still give a point per step, and raw rows only while kept.
    let resolution = if step >= 3600 {
        3600
    } else if step >= 60 || hours > f64::from(RAW_KEPT_HOURS) {
        60
    } else {
        0
    };
    let to = now.timestamp();
    let from = (to - span).div_euclid(step) * step;
    Ok(Plan { series, from, to, step, resolution })
}

/// Reads the aligned series for `req`.
pub async fn read(client: &Client, req: &HistoryRequest, sample_interval: f64, retention_hours: u32) -> Result<History, Error> {
    let plan = plan(req, sample_interval, retention_hours, Utc::now())?;
    let stat = req.stat.unwrap_or_default();
    // A raw row is one sample: its `max` is left empty (it would repeat `avg`).
    let column = match stat {
        Stat::Max if plan.resolution > 0 => "max",
        _ => "avg",
    };
    let names: Vec<&str> = plan.series.iter().map(|s| s.name).collect();
    // One row per (bucket, agent, series): the agent's samples in the bucket averaged (or
    // their maximum); agents are then combined per series in Rust.
    let sql = format!(
        "SELECT (floor(extract(epoch FROM h.at)::float8 / $3::float8) * $3::float8)::int8 AS bucket, h.agent_id, v.key,
                {agg}(v.value::float8)::float8 AS value
           FROM dbagent.metrics_history h, jsonb_each_text(h.{column}) v
          WHERE h.resolution = $1 AND h.at >= to_timestamp($2::float8) AND h.at < to_timestamp($4::float8)
            AND v.key = ANY($5) AND v.value IS NOT NULL AND ($6::text IS NULL OR h.agent_id = $6)
          GROUP BY 1, 2, 3",
        agg = if stat == Stat::Max { "max" } else { "avg" },
    );
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] =
        [&plan.resolution, &(plan.from as f64), &(plan.step as f64), &((plan.to + plan.step) as f64), &names, &req.agent];
    let rows = match client.query(&sql, &params).await {
        Ok(rows) => rows,
        // No agent has written yet: an empty history, not an error.
        Err(err) if err.as_db_error().is_some_and(|e| e.code().code() == "42P01") => Vec::new(),
        Err(err) => return Err(Error::driver(err)),
    };
    let mut agents = BTreeSet::new();
    // (series, bucket) -> per-agent values
    let mut cells: BTreeMap<(&str, i64), Vec<f64>> = BTreeMap::new();
    for row in &rows {
        let bucket: i64 = db::get(row, "bucket")?;
        let agent: String = db::get(row, "agent_id")?;
        let key: String = db::get(row, "key")?;
        let value: f64 = db::get(row, "value")?;
        let Some(series) = plan.series.iter().find(|s| s.name == key) else { continue };
        agents.insert(agent);
        cells.entry((series.name, bucket)).or_default().push(value);
    }
    let timestamps: Vec<i64> = (0..).map(|i| plan.from + i * plan.step).take_while(|t| *t <= plan.to).collect();
    let series = plan
        .series
        .iter()
        .map(|s| SeriesValues {
            series: **s,
            values: timestamps.iter().map(|t| cells.get(&(s.name, *t)).map(|v| combine(s.across, stat, v))).collect(),
        })
        .collect();
    Ok(History {
        from: DateTime::from_timestamp(plan.from, 0).unwrap_or_default(),
        to: DateTime::from_timestamp(plan.to, 0).unwrap_or_default(),
        step: plan.step as u32,
        resolution: match plan.resolution {
            0 => "raw",
            60 => "1m",
            _ => "1h",
        },
        stat,
        agents: agents.into_iter().collect(),
        timestamps,
        series,
    })
}

/// One point from each agent's value.
fn combine(across: Across, stat: Stat, values: &[f64]) -> f64 {
    let v = match (across, stat) {
        (_, Stat::Max) | (Across::Max, _) => values.iter().copied().fold(f64::MIN, f64::max),
        (Across::Sum, _) => values.iter().sum(),
        (Across::Avg, _) => values.iter().sum::<f64>() / values.len() as f64,
    };
    (v * 10_000.0).round() / 10_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(series: Option<&str>, hours: Option<f64>, step: Option<u32>) -> HistoryRequest {
        HistoryRequest { series: series.map(Into::into), hours, step, agent: None, stat: None }
    }

    #[test]
    fn the_plan_picks_rows_fit_for_the_step() {
        let now = DateTime::from_timestamp(1_000_000_020, 0).unwrap();
        let cases = [
            (Some(1.0), Some(15), 0),
            (Some(1.0), Some(60), 60),
            (Some(24.0), Some(60), 60),
            (Some(168.0), Some(3600), 3600),
            (Some(30.0), Some(30), 60),
            (None, None, 60),
        ];
        for (hours, step, resolution) in cases {
            let p = plan(&req(None, hours, step), 15.0, 168, now).unwrap();
            assert_eq!(p.resolution, resolution, "{hours:?} {step:?}");
            assert_eq!(p.from % p.step, 0, "aligned");
            assert_eq!(p.series.len(), SERIES.len());
        }
    }

    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        let now = Utc::now();
        let refused = |r: HistoryRequest| plan(&r, 15.0, 168, now).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused(req(Some("tps,nope"), None, None)).contains("unknown series \"nope\""));
        assert!(refused(req(None, Some(0.0), None)).contains("hours"));
        assert!(refused(req(None, Some(200.0), None)).contains("retention_hours"));
        assert!(refused(req(None, Some(1.0), Some(5))).contains("step"));
        assert!(refused(req(None, Some(168.0), Some(15))).contains("points"));
        let p = plan(&req(Some(" tps , latency_p99_ms"), Some(1.0), Some(60)), 15.0, 168, now).unwrap();
        assert_eq!(p.series.iter().map(|s| s.name).collect::<Vec<_>>(), ["tps", "latency_p99_ms"]);
    }

    #[test]
    fn agents_combine_by_the_series_kind() {
        assert_eq!(combine(Across::Sum, Stat::Avg, &[1.0, 2.0]), 3.0);
        assert_eq!(combine(Across::Avg, Stat::Avg, &[1.0, 2.0]), 1.5);
        assert_eq!(combine(Across::Max, Stat::Avg, &[1.0, 2.0]), 2.0);
        assert_eq!(combine(Across::Sum, Stat::Max, &[1.0, 2.0]), 2.0);
    }
}
