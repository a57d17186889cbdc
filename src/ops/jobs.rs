//! Scheduled maintenance jobs (`maintenance.jobs`): each job a cron schedule and an action,
//! run on exactly one of several agents per tick, never overlapping itself, only inside
//! `maintenance.window`, and recorded in `dbagent.maintenance_runs`.
//!
//! Each job has a loop of its own, so a job's runs follow one another in an agent. Between
//! agents, a run first takes the job's session-level advisory lock with `pg_try_advisory_lock`
//! on a `dbagent maintenance` session (the backup schedule's approach, `backup::schedule`): an
//! agent that does not get it skips at once, so a long run never overlaps the next tick's.
//! Holding the lock, the agent claims the tick by inserting its history row; the row's unique
//! `(job, scheduled_for)` key makes a tick that another agent already ran (and released) a
//! no-op, whatever the agents' clocks. The lock is released explicitly, and with the session
//! on any other path. The work itself runs on that same session, outside any transaction
//! (VACUUM and REINDEX CONCURRENTLY refuse a transaction block).

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;
use tokio_postgres::Client;

use super::Error;
use super::signal::{self, Age, CloseIdle};
use crate::config::{Job, JobAction, Maintenance};
use crate::db::{self, Pools, sql};

/// The advisory lock's first key ("dbag"); the second is `hashtext(job name)`.
const LOCK_CLASS: i32 = 0x6462_6167;

/// What one tick of a job came to.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// This agent ran it: the statements it ran (none when nothing passed the thresholds).
    Ran { statements: Vec<String> },
    /// The tick is outside `maintenance.window`.
    OutsideWindow,
    /// Another agent is running this job now.
    RunningElsewhere,
    /// Another agent ran this tick already.
    AlreadyRun,
}

/// A job as `/health` shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct JobStatus {
    pub name: String,
    pub action: JobAction,
    pub schedule: String,
    pub next_run: Option<DateTime<Utc>>,
    /// Ticks seen, and how they ended here.
    pub runs: u64,
    pub ran: u64,
    pub skipped: u64,
    pub failed: u64,
    pub last_tick: Option<DateTime<Utc>>,
    pub last_outcome: Option<Outcome>,
    pub last_error: Option<String>,
}

/// Every job's status (for `/health`), updated by the job loops.
#[derive(Debug, Default)]
pub struct JobsStatus {
    jobs: Mutex<Vec<JobStatus>>,
}

impl JobsStatus {
    pub fn new(settings: &Maintenance) -> JobsStatus {
        let jobs = settings
            .jobs
            .iter()
            .map(|job| JobStatus {
                name: job.name.clone(),
                action: job.action,
                schedule: job.schedule.clone(),
                next_run: None,
                runs: 0,
                ran: 0,
                skipped: 0,
                failed: 0,
                last_tick: None,
                last_outcome: None,
                last_error: None,
            })
            .collect();
        JobsStatus { jobs: Mutex::new(jobs) }
    }

    pub fn snapshot(&self) -> Vec<JobStatus> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut JobStatus)) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(job) = jobs.iter_mut().find(|j| j.name == name) {
            f(job);
        }
    }

    fn record(&self, name: &str, tick: DateTime<Utc>, outcome: &Result<Outcome, Error>) {
        self.update(name, |job| {
            job.runs += 1;
            job.last_tick = Some(tick);
            match outcome {
                Ok(done @ Outcome::Ran { .. }) => {
                    job.ran += 1;
                    job.last_outcome = Some(done.clone());
                }
                Ok(other) => {
                    job.skipped += 1;
                    job.last_outcome = Some(other.clone());
                }
                Err(err) => {
                    job.failed += 1;
                    job.last_error = Some(db::error_chain(err));
                }
            }
        });
    }
}

/// Whether `at` falls inside the daily window `(start, end)` in minutes after midnight UTC
/// (`start > end` spans midnight; `start == end` is the whole day).
pub fn in_window(window: Option<(u32, u32)>, at: DateTime<Utc>) -> bool {
    let Some((start, end)) = window else { return true };
    let now = at.hour() * 60 + at.minute();
    match start.cmp(&end) {
        std::cmp::Ordering::Less => (start..end).contains(&now),
        std::cmp::Ordering::Greater => now >= start || now < end,
        std::cmp::Ordering::Equal => true,
    }
}

/// What the job loops share.
pub struct Context {
    /// The pools; dedicated sessions connect to the current primary (`Pools::admin_config`,
    /// read at each connect, so a failover or switchover moves the jobs with it).
    pub pools: Arc<Pools>,
    pub settings: Maintenance,
    /// This agent's id in the history (`monitor::agent_id`).
    pub agent: String,
    pub status: Arc<JobsStatus>,
}

/// Runs every job's loop until `shutdown` changes (or its sender is dropped).
pub fn spawn(context: Arc<Context>, shutdown: tokio::sync::watch::Receiver<()>) {
    for job in context.settings.jobs.clone() {
        let (context, mut shutdown) = (context.clone(), shutdown.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.changed() => {}
                () = job_loop(&context, &job) => {}
            }
        });
    }
}

/// Sleeps until each tick of `job` and runs it; ends only if the schedule cannot be read.
async fn job_loop(context: &Context, job: &Job) {
    loop {
        let now = Utc::now();
        let tick = match crate::backup::next_run(&job.schedule, now) {
            Ok(tick) => tick,
            Err(err) => {
                tracing::error!(job = %job.name, error = %db::error_chain(&err), "the maintenance job stopped");
                return;
            }
        };
        context.status.update(&job.name, |s| s.next_run = Some(tick));
        tokio::time::sleep((tick - now).to_std().unwrap_or_default()).await;
        let outcome = run_tick(context, job, tick).await;
        match &outcome {
            Ok(Outcome::Ran { statements }) => tracing::info!(job = %job.name, statements = statements.len(), "maintenance job ran"),
            Ok(skipped) => tracing::debug!(job = %job.name, outcome = ?skipped, "maintenance job skipped"),
            Err(err) => tracing::error!(job = %job.name, error = %db::error_chain(err), "maintenance job failed"),
        }
        context.status.record(&job.name, tick, &outcome);
    }
}

/// One tick of `job`: window, lock, claim, work, history.
pub async fn run_tick(context: &Context, job: &Job, tick: DateTime<Utc>) -> Result<Outcome, Error> {
    if !in_window(context.settings.window.as_ref().and_then(|w| w.minutes()), tick) {
        return Ok(Outcome::OutsideWindow);
    }
    let client = db::admin::connect(&context.pools.admin_config(), db::Purpose::Maintenance)
        .await
        .map_err(|e| db::Error::Unavailable { reason: db::error_chain(&e) })?;
    let taken: bool = client
        .query_one("SELECT pg_try_advisory_lock($1, hashtext($2))", &[&LOCK_CLASS, &job.name])
        .await
        .map_err(Error::driver)?
        .get(0);
    if !taken {
        return Ok(Outcome::RunningElsewhere);
    }
    let outcome = claim_and_run(context, &client, job, tick).await;
    if let Err(err) = client.execute("SELECT pg_advisory_unlock($1, hashtext($2))", &[&LOCK_CLASS, &job.name]).await {
        tracing::warn!(job = %job.name, error = %err, "could not release the maintenance job's lock; closing its session instead");
    }
    outcome
}

async fn claim_and_run(context: &Context, client: &Client, job: &Job, tick: DateTime<Utc>) -> Result<Outcome, Error> {
    ensure_history(client).await?;
    let action = action_name(job.action);
    let claimed = client
        .query_opt(
            "INSERT INTO dbagent.maintenance_runs (job, action, scheduled_for, agent) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (job, scheduled_for) DO NOTHING RETURNING id",
            &[&job.name, &action, &tick, &context.agent],
        )
        .await
        .map_err(Error::driver)?;
    let Some(row) = claimed else { return Ok(Outcome::AlreadyRun) };
    let id: i64 = row.get(0);
    let mut statements = Vec::new();
    let result = work(context, client, job, &mut statements).await;
    let (outcome, error) = match &result {
        Ok(()) => ("done", None),
        Err(err) => ("failed", Some(db::error_chain(err))),
    };
    client
        .execute(
            "UPDATE dbagent.maintenance_runs SET finished_at = now(), outcome = $2, statements = $3, error = $4 WHERE id = $1",
            &[&id, &outcome, &statements, &error],
        )
        .await
        .map_err(Error::driver)?;
    result.map(|()| Outcome::Ran { statements })
}

/// Creates the history table when it is missing (and only then: no lock on a busy one).
async fn ensure_history(client: &Client) -> Result<(), Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('dbagent.maintenance_runs') IS NOT NULL", &[])
        .await
        .map_err(Error::driver)?
        .get(0);
    if !exists {
        client.batch_execute(include_str!("sql/runs_table.sql")).await.map_err(Error::driver)?;
    }
    Ok(())
}

fn action_name(action: JobAction) -> &'static str {
    match action {
        JobAction::VacuumAnalyze => "vacuum_analyze",
        JobAction::Analyze => "analyze",
        JobAction::ReindexBloated => "reindex_bloated",
        JobAction::CloseIdleSessions => "close_idle_sessions",
    }
}

/// The job's action; each statement run is pushed to `done` as it completes.
async fn work(context: &Context, client: &Client, job: &Job, done: &mut Vec<String>) -> Result<(), Error> {
    let (candidates, statement): (Vec<(String, String)>, fn(&str) -> String) = match job.action {
        JobAction::VacuumAnalyze => (
            names(client, include_str!("sql/vacuum_candidates.sql"), &[&job.dead_tuple_ratio(), &job.min_dead_tuples()]).await?,
            |t| format!("VACUUM (ANALYZE) {t};"),
        ),
        JobAction::Analyze => (names(client, include_str!("sql/analyze_candidates.sql"), &[&job.changed_ratio()]).await?, |t| format!("ANALYZE {t};")),
        JobAction::ReindexBloated => (
            names(client, crate::advisor::upkeep::BLOAT_SQL, &[&None::<String>, &job.bloat_pct()]).await?,
            |i| format!("REINDEX INDEX CONCURRENTLY {i};"),
        ),
        JobAction::CloseIdleSessions => return close_idle(context, client, job, done).await,
    };
    for (schema, name) in candidates {
        let sql = statement(&sql::qualified(&schema, &name));
        client.batch_execute(&sql).await.map_err(Error::driver)?;
        done.push(sql);
    }
    Ok(())
}

async fn names(client: &Client, query: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> Result<Vec<(String, String)>, Error> {
    let rows = client.query(query, params).await.map_err(Error::driver)?;
    Ok(rows.iter().map(|r| Ok((db::get(r, "schema")?, db::get(r, "name")?))).collect::<Result<_, db::Error>>()?)
}

/// Idle sessions of this agent's database only.
async fn close_idle(context: &Context, client: &Client, job: &Job, done: &mut Vec<String>) -> Result<(), Error> {
    let database: String = client.query_one("SELECT current_database()", &[]).await.map_err(Error::driver)?.get(0);
    let request = CloseIdle { idle_for: Age::Text(job.idle_for().to_owned()), database: Some(database), ..CloseIdle::default() };
    let report = signal::close_idle(&context.pools, &request).await?;
    done.extend(report.signalled.iter().map(|s| format!("SELECT pg_terminate_backend({});", s.pid)));
    Ok(())
}

/// One run in the history.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Run {
    pub id: i64,
    pub job: String,
    pub action: String,
    pub scheduled_for: String,
    pub agent: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub seconds: Option<f64>,
    /// `running`, `done` or `failed`.
    pub outcome: String,
    pub statements: Vec<String>,
    pub error: Option<String>,
}

/// The latest `limit` runs (of `job`, or all), newest first; none before any job ran.
pub async fn history(pools: &Pools, job: Option<&str>, limit: u32) -> Result<Vec<Run>, Error> {
    if !(1..=1000).contains(&limit) {
        return Err(Error::Invalid("limit must be between 1 and 1000".into()));
    }
    let primary = pools.primary();
    let exists = primary.query("SELECT to_regclass('dbagent.maintenance_runs') IS NOT NULL AS exists", &[]).await?;
    if !exists.first().map(|r| db::get::<bool>(r, "exists")).transpose()?.unwrap_or(false) {
        return Ok(Vec::new());
    }
    let rows = primary.query(include_str!("sql/runs_list.sql"), &[&job, &i64::from(limit)]).await?;
    let run = |r: &tokio_postgres::Row| -> Result<Run, db::Error> {
        Ok(Run {
            id: db::get(r, "id")?,
            job: db::get(r, "job")?,
            action: db::get(r, "action")?,
            scheduled_for: db::get(r, "scheduled_for")?,
            agent: db::get(r, "agent")?,
            started_at: db::get(r, "started_at")?,
            finished_at: db::get(r, "finished_at")?,
            seconds: db::get(r, "seconds")?,
            outcome: db::get(r, "outcome")?,
            statements: db::get(r, "statements")?,
            error: db::get(r, "error")?,
        })
    };
    Ok(rows.iter().map(run).collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_may_span_midnight() {
        let at = |hm: &str| format!("2025-01-01T{hm}:00Z").parse::<DateTime<Utc>>().unwrap();
        let night = Some((22 * 60, 4 * 60));
        let day = Some((9 * 60, 17 * 60));
        let cases = [
            (None, "12:00", true),
            (night, "23:30", true),
            (night, "03:59", true),
            (night, "04:00", false),
            (night, "12:00", false),
            (day, "09:00", true),
            (day, "17:00", false),
            (Some((0, 0)), "12:00", true),
        ];
        for (window, time, inside) in cases {
            assert_eq!(in_window(window, at(time)), inside, "{window:?} {time}");
        }
    }
}
