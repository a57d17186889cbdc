//! Databases a restore replaced: kept, not dropped, so a restore over the wrong database can be
//! taken back.
//!
//! A restore with `drop_existing` swaps its complete copy in by rename (`restore.rs`); the
//! database it replaced is renamed `<db>_replaced_<YYYYMMDDHHMMSS>` and recorded in
//! `dbagent.replaced_databases` (in the database dbagent is configured for): the backup, the
//! target, the name it is kept under, when, by whom and until when
//! (`backup.keep_replaced_hours`, default 24). [`list_replaced`] lists them (`GET /restores`,
//! `dbagent backup list --replaced`); [`undo`] swaps one back in (the restored copy is kept as
//! replaced in turn, so an undo can itself be undone); [`sweep_replaced`] drops the expired
//! ones — run once when the agent starts serving and by the backup schedule's leader on each
//! tick.
//!
//! The record's id is the name the replaced database is kept under: unique on the server while
//! it exists, and what a user sees in `\l`. The table is created only when missing (no lock on
//! it otherwise). A swap over the configured database itself replaces the table too (the
//! restored copy holds the table as it was at backup time): the rows read before the swap are
//! written again after it, so the record never loses an entry.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::{Client, Row};
use crate::db::PgConfig;

use super::database::{Admin, connect, database_name, derived_name};
use super::{Error, Settings};
use crate::db::Purpose;

const CREATE: &str = "
CREATE SCHEMA IF NOT EXISTS dbagent;
CREATE TABLE IF NOT EXISTS dbagent.replaced_databases (
    id          text PRIMARY KEY,
    database    text NOT NULL,
    backup_id   text NOT NULL,
    replaced_at timestamptz NOT NULL,
    replaced_by text NOT NULL,
    expires_at  timestamptz NOT NULL,
    state       text NOT NULL CHECK (state IN ('kept', 'undone', 'dropped')),
    ended_at    timestamptz
);
COMMENT ON TABLE dbagent.replaced_databases IS
    'Databases a dbagent restore replaced, kept under the name in id until expires_at (backup.keep_replaced_hours); maintained by dbagent.';";

const UPSERT: &str = "
INSERT INTO dbagent.replaced_databases AS r (id, database, backup_id, replaced_at, replaced_by, expires_at, state, ended_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (id) DO UPDATE SET
    database = EXCLUDED.database, backup_id = EXCLUDED.backup_id, replaced_at = EXCLUDED.replaced_at,
    replaced_by = EXCLUDED.replaced_by, expires_at = EXCLUDED.expires_at, state = EXCLUDED.state,
    ended_at = EXCLUDED.ended_at";

const SELECT: &str = "
SELECT r.id, r.database, r.backup_id, r.replaced_at, r.replaced_by, r.expires_at, r.state, r.ended_at,
       EXISTS (SELECT 1 FROM pg_catalog.pg_database d WHERE d.datname = r.id) AS exists
  FROM dbagent.replaced_databases r";

/// One database a restore replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Replaced {
    /// The name the replaced database is kept under (`<db>_replaced_<YYYYMMDDHHMMSS>`); the id
    /// `POST /restores/{id}/undo` and `dbagent restore undo` take.
    pub id: String,
    /// The database it was, and whose name the restored copy took.
    pub database: String,
    /// The backup restored over it.
    pub backup_id: String,
    pub replaced_at: DateTime<Utc>,
    /// Who restored: `api key <name>`, `api`, or `cli`.
    pub replaced_by: String,
    /// When it is dropped (`backup.keep_replaced_hours` after the swap).
    pub expires_at: DateTime<Utc>,
    pub state: ReplacedState,
    /// When it was swapped back or dropped.
    pub ended_at: Option<DateTime<Utc>>,
    /// Whether a database of this name exists now.
    pub exists: bool,
}

/// Where a replaced database is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplacedState {
    /// Kept under its id, until it expires or is swapped back.
    Kept,
    /// Swapped back in by an undo.
    Undone,
    /// Dropped (expired, `drop_replaced`, or `keep_replaced_hours: 0`).
    Dropped,
}

impl ReplacedState {
    fn as_str(self) -> &'static str {
        match self {
            ReplacedState::Kept => "kept",
            ReplacedState::Undone => "undone",
            ReplacedState::Dropped => "dropped",
        }
    }

    fn parse(text: &str) -> Result<ReplacedState, Error> {
        match text {
            "kept" => Ok(ReplacedState::Kept),
            "undone" => Ok(ReplacedState::Undone),
            "dropped" => Ok(ReplacedState::Dropped),
            other => Err(Error::invalid(format!("dbagent.replaced_databases has an unknown state {other:?}"))),
        }
    }
}

/// What [`undo`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Undone {
    /// The database swapped back.
    pub database: String,
    /// The id it was kept under.
    pub restored_from: String,
    /// The name the database it replaced (the restored copy) is kept under now, with its own
    /// record: undoing that id swaps the restored copy back again. `None` when the database
    /// had gone (the kept one was only renamed back).
    pub replaced_as: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

fn col<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a Row, name: &str) -> Result<T, Error> {
    row.try_get(name).map_err(|source| Error::Database { action: "read a replaced database's record", source })
}

fn from_row(row: &Row) -> Result<Replaced, Error> {
    Ok(Replaced {
        id: col(row, "id")?,
        database: col(row, "database")?,
        backup_id: col(row, "backup_id")?,
        replaced_at: col(row, "replaced_at")?,
        replaced_by: col(row, "replaced_by")?,
        expires_at: col(row, "expires_at")?,
        state: ReplacedState::parse(&col::<String>(row, "state")?)?,
        ended_at: col(row, "ended_at")?,
        exists: col(row, "exists")?,
    })
}

async fn table_exists(client: &Client) -> Result<bool, Error> {
    let row = client
        .query_one("SELECT to_regclass('dbagent.replaced_databases') IS NOT NULL AS present", &[])
        .await
        .map_err(Error::db("look for dbagent.replaced_databases"))?;
    col(&row, "present")
}

/// Creates the table when it is missing (and only then: no lock on it otherwise). Agents
/// creating it at once collide on the catalog's unique indexes; the loser tries again.
async fn ensure(client: &Client) -> Result<(), Error> {
    for attempt in 0..3 {
        if table_exists(client).await? {
            return Ok(());
        }
        match client.batch_execute(&format!("BEGIN; {CREATE} COMMIT;")).await {
            Ok(()) => return Ok(()),
            Err(err) if attempt < 2 && err.code().is_some_and(|c| matches!(c.code(), "23505" | "42P07" | "42P06" | "XX000")) => {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            Err(err) => return Err(Error::db("create dbagent.replaced_databases")(err)),
        }
    }
    Ok(())
}

async fn read_all(client: &Client) -> Result<Vec<Replaced>, Error> {
    if !table_exists(client).await? {
        return Ok(Vec::new());
    }
    let rows = client
        .query(&format!("{SELECT} ORDER BY r.replaced_at DESC, r.id DESC"), &[])
        .await
        .map_err(Error::db("list the replaced databases"))?;
    rows.iter().map(from_row).collect()
}

async fn write(client: &Client, records: &[Replaced]) -> Result<(), Error> {
    ensure(client).await?;
    for r in records {
        client
            .execute(
                UPSERT,
                &[&r.id, &r.database, &r.backup_id, &r.replaced_at, &r.replaced_by, &r.expires_at, &r.state.as_str(), &r.ended_at],
            )
            .await
            .map_err(Error::db("record a replaced database"))?;
    }
    Ok(())
}

/// Every database a restore replaced, newest first (kept, swapped back and dropped).
pub async fn list_replaced(db: &PgConfig) -> Result<Vec<Replaced>, Error> {
    let client = connect(db, Purpose::Restore).await?;
    read_all(&client).await
}

/// A free name `<target>_replaced_<YYYYMMDDHHMMSS>` (63 bytes at most; `_2`, `_3` ... appended
/// when a swap in the same second took it).
pub(crate) async fn free_name(admin: &Admin, target: &str, at: DateTime<Utc>) -> Result<String, Error> {
    let stamp = at.format("%Y%m%d%H%M%S");
    for n in 1..100 {
        let suffix = if n == 1 { format!("_replaced_{stamp}") } else { format!("_replaced_{stamp}_{n}") };
        let name = derived_name(target, &suffix);
        if !admin.exists(&name).await? {
            return Ok(name);
        }
    }
    Err(Error::Conflict { reason: format!("no free name for the database {target} replaces") })
}

/// The records to carry across a swap of `target`: when `target` is the database holding
/// them (the one `db` names), the swap replaces the table with the restored copy's; the rows
/// read here are written back after it.
pub(crate) async fn carried(db: &PgConfig, target: &str) -> Result<Vec<Replaced>, Error> {
    if database_name(db) != target {
        return Ok(Vec::new());
    }
    let client = connect(db, Purpose::Restore).await?;
    read_all(&client).await
}

/// A new record for `replaced_as`, replaced by a copy of `backup_id` just now.
pub(crate) fn record(settings: &Settings, replaced_as: &str, target: &str, backup_id: &str, by: &str) -> Replaced {
    let now = Utc::now();
    Replaced {
        id: replaced_as.to_owned(),
        database: target.to_owned(),
        backup_id: backup_id.to_owned(),
        replaced_at: now,
        replaced_by: by.to_owned(),
        expires_at: now + chrono::Duration::hours(i64::from(settings.keep_replaced_hours)),
        state: ReplacedState::Kept,
        ended_at: None,
        exists: true,
    }
}

/// Writes `carried` (see [`carried`]) and `new` after a swap. A failure is returned; the
/// replaced database is still there under its name either way.
pub(crate) async fn write_after_swap(db: &PgConfig, carried: Vec<Replaced>, new: &[Replaced]) -> Result<(), Error> {
    let client = connect(db, Purpose::Restore).await?;
    let mut all = carried;
    for r in new {
        all.retain(|c| c.id != r.id);
        all.push(r.clone());
    }
    write(&client, &all).await
}

/// Swaps the database kept as `id` back in for the database it was replaced by; that one is
/// kept as replaced in turn (its own record, `backup.keep_replaced_hours`). When the database
/// no longer exists under its name, the kept one is only renamed back.
pub async fn undo(db: &PgConfig, settings: &Settings, id: &str, by: &str) -> Result<Undone, Error> {
    if super::database::check_database_name(id).is_err() {
        return Err(Error::ReplacedNotFound { id: id.to_owned() });
    }
    let client = connect(db, Purpose::Restore).await?;
    let found = if table_exists(&client).await? {
        let rows = client
            .query(&format!("{SELECT} WHERE r.id = $1"), &[&id])
            .await
            .map_err(Error::db("look the replaced database up"))?;
        rows.first().map(from_row).transpose()?
    } else {
        None
    };
    drop(client);
    let Some(mut kept) = found.filter(|r| r.state == ReplacedState::Kept && r.exists) else {
        return Err(Error::ReplacedNotFound { id: id.to_owned() });
    };
    let target = kept.database.clone();
    let admin = Admin::connect(db, &[target.as_str(), id]).await?;
    let carried = carried(db, &target).await?;
    let now = Utc::now();
    let (replaced_as, new) = if admin.exists(&target).await? {
        let old = free_name(&admin, &target, now).await?;
        admin.swap(&target, id, &old).await?;
        let by_undo = format!("{by} (undo of {id})");
        (Some(old.clone()), Some(record(settings, &old, &target, &kept.backup_id, &by_undo)))
    } else {
        admin.rename(id, &target).await?;
        (None, None)
    };
    tracing::info!(database = %target, restored_from = %id, kept_as = ?replaced_as, "replaced database swapped back");
    kept.state = ReplacedState::Undone;
    kept.ended_at = Some(now);
    kept.exists = false;
    let mut records = vec![kept];
    records.extend(new.clone());
    write_after_swap(db, carried, &records).await?;
    Ok(Undone { database: target, restored_from: id.to_owned(), replaced_as, expires_at: new.map(|n| n.expires_at) })
}

/// Drops `record`'s database now and marks it dropped.
pub(crate) async fn drop_now(db: &PgConfig, admin: &Admin, record: &mut Replaced) -> Result<(), Error> {
    admin.drop(&record.id).await?;
    record.state = ReplacedState::Dropped;
    record.ended_at = Some(Utc::now());
    record.exists = false;
    let client = connect(db, Purpose::Restore).await?;
    write(&client, std::slice::from_ref(record)).await
}

/// Drops the replaced databases whose time is up (and marks them dropped); returns their ids.
/// Run when the agent starts serving and by the backup schedule's leader.
pub async fn sweep_replaced(db: &PgConfig) -> Result<Vec<String>, Error> {
    let client = connect(db, Purpose::Restore).await?;
    if !table_exists(&client).await? {
        return Ok(Vec::new());
    }
    let rows = client
        .query(&format!("{SELECT} WHERE r.state = 'kept' AND r.expires_at <= now() ORDER BY r.expires_at"), &[])
        .await
        .map_err(Error::db("list the expired replaced databases"))?;
    let expired: Vec<Replaced> = rows.iter().map(from_row).collect::<Result<_, _>>()?;
    drop(client);
    let mut dropped = Vec::new();
    for mut record in expired {
        let admin = Admin::connect(db, &[record.id.as_str()]).await?;
        drop_now(db, &admin, &mut record).await?;
        tracing::info!(database = %record.id, replaced = %record.database, "expired replaced database dropped");
        dropped.push(record.id);
    }
    Ok(dropped)
}
