//! dbagent's own `dbagent` schema: the applied list (`dbagent.schema_migrations`), the event
//! log (`dbagent.migration_events`), and the internal steps that create and upgrade them.
//!
//! The schema is versioned in `dbagent.internal_versions` (one row per dbagent component). The
//! steps in [`STEPS`] run in order, each in its own transaction with its version bump, and only
//! while the migration lock is held, so two agents starting together upgrade it once. Steps are
//! append-only: a new column is a new step, never an edit of an old one.
//!
//! Readers (`status`, `history`, dry runs) never create anything: a missing schema is an empty
//! history.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, GenericClient, Row, Transaction};

use super::Error;

/// This module's row in `dbagent.internal_versions`.
const COMPONENT: &str = "migrate";

/// The internal DDL steps; step `i` (0-based) brings the component to version `i + 1`.
const STEPS: &[&str] = &[
    // 1: the applied list and the event log.
    "CREATE TABLE dbagent.schema_migrations (
        version bigint PRIMARY KEY,
        name text NOT NULL,
        checksum text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now(),
        applied_by text NOT NULL,
        execution_time_ms double precision NOT NULL,
        success boolean NOT NULL,
        backup_id text
    );
    CREATE TABLE dbagent.migration_events (
        id bigserial PRIMARY KEY,
        version bigint NOT NULL,
        name text NOT NULL,
        kind text NOT NULL CHECK (kind IN ('apply', 'revert', 'fail', 'repair', 'baseline')),
        at timestamptz NOT NULL DEFAULT now(),
        by text NOT NULL,
        checksum text,
        execution_time_ms double precision,
        detail text
    );
    CREATE INDEX ON dbagent.migration_events (version);",
];

/// The internal version this code writes and reads.
const LATEST: i32 = STEPS.len() as i32;

/// A row of `dbagent.schema_migrations`.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct AppliedMigration {
    pub version: i64,
    pub name: String,
    /// The checksum of the up file when it was applied (or last repaired).
    pub checksum: String,
    pub applied_at: DateTime<Utc>,
    pub applied_by: String,
    pub execution_time_ms: f64,
    /// Always true in rows dbagent writes: a failed migration leaves no row, only a `fail`
    /// event. The column keeps the layout other tools (sqlx) use.
    pub success: bool,
    /// The backup taken before the run that applied this migration.
    pub backup_id: Option<String>,
}

/// What an event records.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Apply,
    Revert,
    Fail,
    Repair,
    Baseline,
}

impl EventKind {
    fn as_str(self) -> &'static str {
        match self {
            EventKind::Apply => "apply",
            EventKind::Revert => "revert",
            EventKind::Fail => "fail",
            EventKind::Repair => "repair",
            EventKind::Baseline => "baseline",
        }
    }

    fn parse(text: &str) -> Option<EventKind> {
        [
            EventKind::Apply,
            EventKind::Revert,
            EventKind::Fail,
            EventKind::Repair,
            EventKind::Baseline,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

/// A row of `dbagent.migration_events`.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Event {
    pub id: i64,
    pub version: i64,
    pub name: String,
    pub kind: EventKind,
    pub at: DateTime<Utc>,
    pub by: String,
    pub checksum: Option<String>,
    pub execution_time_ms: Option<f64>,
    pub detail: Option<String>,
}

/// An event to record.
pub(crate) struct NewEvent<'a> {
    pub version: i64,
    pub name: &'a str,
    pub kind: EventKind,
    pub by: &'a str,
    pub checksum: Option<&'a str>,
    pub execution_time_ms: Option<f64>,
    pub detail: Option<String>,
}

/// The component's internal version, or `None` when `dbagent.internal_versions` does not exist.
async fn internal_version(client: &Client) -> Result<Option<i32>, Error> {
    let exists: bool = client
        .query_one("SELECT to_regclass('dbagent.internal_versions') IS NOT NULL", &[])
        .await
        .map_err(Error::history("look for the dbagent schema"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_opt(
            "SELECT version FROM dbagent.internal_versions WHERE component = $1",
            &[&COMPONENT],
        )
        .await
        .map_err(Error::history("read the dbagent schema version"))?;
    let found = row.map_or(0, |r| r.get(0));
    if found > LATEST {
        return Err(Error::SchemaTooNew { found, known: LATEST });
    }
    Ok(Some(found))
}

/// True when the history tables exist (at any version this code can read).
pub(crate) async fn exists(client: &Client) -> Result<bool, Error> {
    Ok(internal_version(client).await?.is_some_and(|v| v > 0))
}

/// Creates or upgrades the `dbagent` schema. The caller holds the migration lock.
pub(crate) async fn ensure_schema(client: &mut Client) -> Result<(), Error> {
    let found = match internal_version(client).await? {
        Some(v) => v,
        None => {
            client
                .batch_execute(
                    "CREATE SCHEMA IF NOT EXISTS dbagent;
                     CREATE TABLE IF NOT EXISTS dbagent.internal_versions (
                         component text PRIMARY KEY,
                         version integer NOT NULL
                     );",
                )
                .await
                .map_err(Error::history("create the dbagent schema"))?;
            0
        }
    };
    for (index, step) in STEPS.iter().enumerate().skip(found as usize) {
        let version = index as i32 + 1;
        let tx = client
            .transaction()
            .await
            .map_err(Error::history("upgrade the dbagent schema"))?;
        tx.batch_execute(step)
            .await
            .map_err(Error::history("upgrade the dbagent schema"))?;
        tx.execute(
            "INSERT INTO dbagent.internal_versions (component, version) VALUES ($1, $2)
             ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
            &[&COMPONENT, &version],
        )
        .await
        .map_err(Error::history("record the dbagent schema version"))?;
        tx.commit()
            .await
            .map_err(Error::history("upgrade the dbagent schema"))?;
        tracing::info!(version, "upgraded the dbagent schema");
    }
    Ok(())
}

/// The applied migrations, by version; empty when the history tables do not exist.
pub(crate) async fn read_applied(client: &Client) -> Result<Vec<AppliedMigration>, Error> {
    if !exists(client).await? {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT version, name, checksum, (extract(epoch FROM applied_at) * 1000000)::bigint,
                    applied_by, execution_time_ms, success, backup_id
             FROM dbagent.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(Error::history("read the applied migrations"))?;
    Ok(rows.iter().map(applied_from_row).collect())
}

fn applied_from_row(row: &Row) -> AppliedMigration {
    AppliedMigration {
        version: row.get(0),
        name: row.get(1),
        checksum: row.get(2),
        applied_at: from_micros(row.get(3)),
        applied_by: row.get(4),
        execution_time_ms: row.get(5),
        success: row.get(6),
        backup_id: row.get(7),
    }
}

/// The newest `limit` events, newest first; empty when the history tables do not exist.
pub(crate) async fn read_events(client: &Client, limit: u32) -> Result<Vec<Event>, Error> {
    if !exists(client).await? {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT id, version, name, kind, (extract(epoch FROM at) * 1000000)::bigint, by,
                    checksum, execution_time_ms, detail
             FROM dbagent.migration_events ORDER BY id DESC LIMIT $1",
            &[&i64::from(limit)],
        )
        .await
        .map_err(Error::history("read the migration events"))?;
    Ok(rows.iter().filter_map(event_from_row).collect())
}

fn event_from_row(row: &Row) -> Option<Event> {
    let kind: &str = row.get(3);
    let Some(kind) = EventKind::parse(kind) else {
        tracing::warn!(kind, "skipping a migration event of an unknown kind");
        return None;
    };
    Some(Event {
        id: row.get(0),
        version: row.get(1),
        name: row.get(2),
        kind,
        at: from_micros(row.get(4)),
        by: row.get(5),
        checksum: row.get(6),
        execution_time_ms: row.get(7),
        detail: row.get(8),
    })
}

// tokio-postgres is built without its chrono feature, so timestamps travel as epoch microseconds.
fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// What to record for an applied migration.
pub(crate) struct NewApplied<'a> {
    pub version: i64,
    pub name: &'a str,
    pub checksum: &'a str,
    pub applied_by: &'a str,
    pub execution_time_ms: f64,
    pub backup_id: Option<&'a str>,
}

// The writes use `execute_typed`: one round trip instead of prepare + execute, which shows
// when hundreds of small migrations run in a row.

pub(crate) async fn insert_applied(tx: &Transaction<'_>, row: &NewApplied<'_>) -> Result<(), tokio_postgres::Error> {
    tx.execute_typed(
        "INSERT INTO dbagent.schema_migrations
             (version, name, checksum, applied_by, execution_time_ms, success, backup_id)
         VALUES ($1, $2, $3, $4, $5, true, $6)",
        &[
            (&row.version, Type::INT8),
            (&row.name, Type::TEXT),
            (&row.checksum, Type::TEXT),
            (&row.applied_by, Type::TEXT),
            (&row.execution_time_ms, Type::FLOAT8),
            (&row.backup_id, Type::TEXT),
        ],
    )
    .await
    .map(drop)
}

pub(crate) async fn delete_applied(tx: &Transaction<'_>, version: i64) -> Result<(), tokio_postgres::Error> {
    tx.execute_typed(
        "DELETE FROM dbagent.schema_migrations WHERE version = $1",
        &[(&version, Type::INT8)],
    )
    .await
    .map(drop)
}

pub(crate) async fn update_checksum(
    tx: &Transaction<'_>,
    version: i64,
    checksum: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.execute_typed(
        "UPDATE dbagent.schema_migrations SET checksum = $2 WHERE version = $1",
        &[(&version, Type::INT8), (&checksum, Type::TEXT)],
    )
    .await
    .map(drop)
}

pub(crate) async fn insert_event(
    client: &impl GenericClient,
    event: &NewEvent<'_>,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute_typed(
            "INSERT INTO dbagent.migration_events
                 (version, name, kind, by, checksum, execution_time_ms, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                (&event.version, Type::INT8),
                (&event.name, Type::TEXT),
                (&event.kind.as_str(), Type::TEXT),
                (&event.by, Type::TEXT),
                (&event.checksum, Type::TEXT),
                (&event.execution_time_ms, Type::FLOAT8),
                (&event.detail, Type::TEXT),
            ],
        )
        .await
        .map(drop)
}
