//! Running one migration script on the worker connection.
//!
//! A normal script runs in one transaction together with its history change and event, under
//! `SET LOCAL` timeouts: it commits whole or leaves no trace. A no-transaction script runs its
//! statements one by one in autocommit (session-level timeouts, reset afterwards), then records
//! itself in a short transaction. Either way a failure of the script's SQL is recorded as a
//! `fail` event in autocommit, outside anything that was rolled back.

use std::time::{Duration, Instant};

use tokio_postgres::{Client, Transaction};

use super::history::{self, EventKind, NewApplied, NewEvent};
use super::{Direction, Error, Migration, PgError, Script, Settings};

/// One migration going one way.
pub(crate) struct Step<'a> {
    pub migration: &'a Migration,
    pub direction: Direction,
}

impl Step<'_> {
    pub(crate) fn script(&self) -> &Script {
        match self.direction {
            Direction::Up => &self.migration.up,
            Direction::Down => self
                .migration
                .down
                .as_ref()
                .expect("the plan only reverts reversible migrations"),
        }
    }
}

/// What a run records with each migration.
pub(crate) struct Context<'a> {
    pub settings: &'a Settings,
    pub by: &'a str,
    pub backup_id: Option<&'a str>,
}

/// The script's own SQL failed (as opposed to dbagent's bookkeeping).
struct SqlFailure {
    /// 1-based statement and statement count, for a no-transaction script.
    statement: Option<(usize, usize)>,
    server: Option<PgError>,
    source: tokio_postgres::Error,
}

enum RunError {
    Sql(SqlFailure),
    Other(Error),
}

fn other(action: &'static str) -> impl FnOnce(tokio_postgres::Error) -> RunError {
    move |source| RunError::Other(Error::history(action)(source))
}

/// Runs `step` and returns the time its SQL took, in milliseconds.
pub(crate) async fn run(client: &mut Client, step: &Step<'_>, ctx: &Context<'_>) -> Result<f64, Error> {
    let started = Instant::now();
    let outcome = if step.script().no_transaction {
        outside_transaction(client, step, ctx).await
    } else {
        in_transaction(client, step, ctx).await
    };
    match outcome {
        Ok(ms) => Ok(ms),
        Err(RunError::Other(err)) => Err(err),
        Err(RunError::Sql(failure)) => {
            record_failure(client, step, ctx, &failure, millis(started.elapsed())).await;
            let script = step.script();
            Err(Error::MigrationFailed {
                version: step.migration.version,
                path: script.path.clone(),
                direction: step.direction,
                statement: failure.statement.map(|(n, _)| n),
                server: failure.server.map(Box::new),
                completed: Vec::new(),
                source: failure.source,
            })
        }
    }
}

async fn in_transaction(client: &mut Client, step: &Step<'_>, ctx: &Context<'_>) -> Result<f64, RunError> {
    let script = step.script();
    let tx = client
        .transaction()
        .await
        .map_err(other("begin a migration transaction"))?;
    tx.batch_execute(&timeouts(ctx.settings, "SET LOCAL"))
        .await
        .map_err(other("set the migration timeouts"))?;
    let started = Instant::now();
    if let Err(source) = tx.batch_execute(&script.sql).await {
        if let Err(err) = tx.rollback().await {
            tracing::debug!(error = %err, "rollback after a failed migration failed");
        }
        return Err(sql_failure(source, script, None));
    }
    let ms = millis(started.elapsed());
    record(&tx, step, ctx, ms)
        .await
        .map_err(other("record the migration"))?;
    // A deferred constraint fails here: that is the migration's failure, not ours.
    tx.commit().await.map_err(|source| sql_failure(source, script, None))?;
    Ok(ms)
}

async fn outside_transaction(client: &mut Client, step: &Step<'_>, ctx: &Context<'_>) -> Result<f64, RunError> {
    let script = step.script();
    client
        .batch_execute(&timeouts(ctx.settings, "SET"))
        .await
        .map_err(other("set the migration timeouts"))?;
    let started = Instant::now();
    let count = script.statements().count();
    for (index, (offset, sql)) in script.statements().enumerate() {
        if let Err(source) = client.batch_execute(sql).await {
            reset_timeouts(client).await;
            return Err(sql_failure(source, script, Some((index + 1, count, offset))));
        }
    }
    let ms = millis(started.elapsed());
    reset_timeouts(client).await;
    let tx = client
        .transaction()
        .await
        .map_err(other("begin recording the migration"))?;
    record(&tx, step, ctx, ms)
        .await
        .map_err(other("record the migration"))?;
    tx.commit().await.map_err(other("record the migration"))?;
    Ok(ms)
}

/// The history change and the event of a successful step, inside `tx`.
async fn record(
    tx: &Transaction<'_>,
    step: &Step<'_>,
    ctx: &Context<'_>,
    ms: f64,
) -> Result<(), tokio_postgres::Error> {
    let m = step.migration;
    let kind = match step.direction {
        Direction::Up => {
            let row = NewApplied {
                version: m.version,
                name: &m.name,
                checksum: &m.checksum,
                applied_by: ctx.by,
                execution_time_ms: ms,
                backup_id: ctx.backup_id,
            };
            history::insert_applied(tx, &row).await?;
            EventKind::Apply
        }
        Direction::Down => {
            history::delete_applied(tx, m.version).await?;
            EventKind::Revert
        }
    };
    let event = NewEvent {
        version: m.version,
        name: &m.name,
        kind,
        by: ctx.by,
        checksum: Some(&m.checksum),
        execution_time_ms: Some(ms),
        detail: ctx.backup_id.map(|id| format!("backup {id}")),
    };
    history::insert_event(tx, &event).await
}

/// Records a `fail` event; best effort, since the connection may be what failed.
async fn record_failure(client: &Client, step: &Step<'_>, ctx: &Context<'_>, failure: &SqlFailure, ms: f64) {
    let m = step.migration;
    let event = NewEvent {
        version: m.version,
        name: &m.name,
        kind: EventKind::Fail,
        by: ctx.by,
        checksum: Some(&m.checksum),
        execution_time_ms: Some(ms),
        detail: Some(failure_detail(step.direction, failure)),
    };
    if let Err(err) = history::insert_event(client, &event).await {
        tracing::warn!(version = m.version, error = %err, "could not record the failure of a migration");
    }
}

fn failure_detail(direction: Direction, failure: &SqlFailure) -> String {
    let cause = match &failure.server {
        Some(pg) => pg.to_string(),
        None => error_chain(&failure.source),
    };
    match failure.statement {
        None => format!("{direction} failed and was rolled back: {cause}"),
        Some((1, count)) => format!("{direction} failed at statement 1 of {count}: {cause}; nothing was applied"),
        Some((n, count)) => format!(
            "{direction} failed at statement {n} of {count}: {cause}; statements 1 to {} were applied \
             and cannot be undone automatically",
            n - 1
        ),
    }
}

/// `at` is (statement number, statement count, byte offset of the statement in the file).
fn sql_failure(source: tokio_postgres::Error, script: &Script, at: Option<(usize, usize, usize)>) -> RunError {
    let offset = at.map_or(0, |(_, _, offset)| offset);
    let server = source.as_db_error().map(|db| {
        let mut pg = PgError::from_db(db);
        // The server counts from the start of the statement; report the position in the file.
        if let Some(position) = pg.position.as_mut() {
            *position += script.sql[..offset].chars().count() as u32;
        }
        pg
    });
    RunError::Sql(SqlFailure {
        statement: at.map(|(n, count, _)| (n, count)),
        server,
        source,
    })
}

fn timeouts(settings: &Settings, set: &str) -> String {
    format!(
        "{set} lock_timeout = {}; {set} statement_timeout = {}",
        server_millis(settings.statement_lock_timeout),
        server_millis(settings.statement_timeout)
    )
}

async fn reset_timeouts(client: &Client) {
    if let Err(err) = client
        .batch_execute("RESET lock_timeout; RESET statement_timeout")
        .await
    {
        tracing::debug!(error = %err, "could not reset the migration timeouts");
    }
}

/// Milliseconds for a PostgreSQL timeout setting, where 0 means "none": a non-zero duration
/// never rounds down to 0.
fn server_millis(duration: Duration) -> u128 {
    if duration.is_zero() {
        0
    } else {
        duration.as_millis().max(1)
    }
}

pub(crate) fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `err` and its causes on one line: the driver's own text is often just "db error".
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
