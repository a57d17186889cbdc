//! Restoring a backup, never into a database someone else is using half-way through.
//!
//! Where the data goes (`target` = `target_database`, default `<db>_restored_<time>`, or `<db>`
//! itself with `drop_existing`), decided by [`choose_mode`]:
//! - whole backup, `target` missing ([`RestoreMode::NewDatabase`]): `target` is created and
//!   restored into; dropped again if the restore fails;
//! - whole backup, `target` exists, `drop_existing` ([`RestoreMode::Replaced`]): a fresh
//!   database is created and restored into; only when that succeeded are `target`'s sessions
//!   ended and the two swapped by `ALTER DATABASE ... RENAME` (old →
//!   `<target>_replaced_<time>`, kept and recorded for `backup.keep_replaced_hours`, see
//!   `replaced.rs`; dropped at once with `drop_replaced` or `keep_replaced_hours: 0`). A failed
//!   restore drops the fresh database and leaves `target` untouched. Before anything is done,
//!   [`guard`] refuses a replace the caller did not name (`confirm`) or force;
//! - whole backup, `target` exists, no `drop_existing`: refused ([`Error::TargetExists`]);
//! - `tables`, `target` missing ([`RestoreMode::TablesIntoNewDatabase`]): `target` is created
//!   with the whole schema and the data of the listed tables only (partitions of a listed
//!   partitioned table included). The data is loaded with triggers disabled
//!   (`--disable-triggers`, which needs a superuser): foreign keys to tables that were not
//!   restored are left dangling, as in any partial restore;
//! - `tables` (or a data-only backup), `target` exists ([`RestoreMode::DataIntoExisting`]):
//!   the rows are loaded into the existing tables in one transaction
//!   (`--single-transaction`): any conflict rolls it all back. `drop_existing` with `tables` is
//!   refused: replacing a whole database with a partial one is never what a table-level
//!   restore means.
//!
//! How the backup is read into pg_restore (and checked on the way) is `load.rs`.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use crate::db::PgConfig;
use tracing::Instrument;

use super::create::{BackupKind, Progress};
use super::database::{self, Admin, Scratch, check_database_name, derived_name};
use super::load::{Backup, Load, Plan};
use super::location;
use super::tools::{self, Tool};
use super::{Error, Settings, catalog, replaced};

/// What to restore, and where (seed 000's `POST /restore` body maps onto it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestoreRequest {
    /// A backup id, or a path (absolute, or relative to the location) to a backup directory
    /// or a file in one; anything outside the location is refused.
    pub backup_id: String,
    /// Default: a new database `<db>_restored_<YYYYMMDDHHMMSS>`; with `drop_existing`, the
    /// database `db` points at.
    pub target_database: Option<String>,
    /// Replace an existing target (by swapping in a complete restored copy).
    pub drop_existing: bool,
    /// Only these tables (`table` or `schema.table`).
    pub tables: Option<Vec<String>>,
    /// `pg_restore -j` for directory-format backups; default `settings.jobs`.
    pub jobs: Option<u32>,
    /// The name of the database being replaced: required to replace a database other than
    /// the one the backup was taken from.
    pub confirm: Option<String>,
    /// Replace `postgres`, a template database, or the database dbagent keeps its own schema
    /// in (with a backup of another database); `template0` and `template1` stay refused.
    pub force: bool,
    /// Drop the replaced database at once instead of keeping it for
    /// `backup.keep_replaced_hours`.
    pub drop_replaced: bool,
    /// Who asked (the replaced database's record says so): `api key <name>`, `api`, `cli`.
    #[serde(skip)]
    pub by: Option<String>,
}

/// How a restore went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct RestoreReport {
    pub backup_id: String,
    /// The database holding the restored data.
    pub database: String,
    pub mode: RestoreMode,
    /// The tables restored (partitions of listed partitioned tables included), for a
    /// table-level restore.
    pub tables: Option<Vec<String>>,
    /// With [`RestoreMode::Replaced`]: the name the replaced database was renamed to (the id
    /// `POST /restores/{id}/undo` swaps back), and whether it was dropped (only with
    /// `drop_replaced` or `backup.keep_replaced_hours: 0`).
    pub replaced_as: Option<String>,
    pub replaced_dropped: bool,
    /// When the kept replaced database is dropped.
    pub replaced_expires_at: Option<chrono::DateTime<Utc>>,
    /// Plaintext bytes read from the backup.
    pub bytes: u64,
    pub duration_ms: u64,
}

/// Where a restore puts the data (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestoreMode {
    NewDatabase,
    Replaced,
    TablesIntoNewDatabase,
    DataIntoExisting,
}

/// Restores a backup as `req` says (see the module documentation for where the data goes).
pub async fn restore(
    db: &PgConfig,
    settings: &Settings,
    req: &RestoreRequest,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<RestoreReport, Error> {
    validate(req)?;
    let span = tracing::info_span!("restore", backup = %req.backup_id);
    run(db, settings, req, progress).instrument(span).await
}

async fn run(
    db: &PgConfig,
    settings: &Settings,
    req: &RestoreRequest,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<RestoreReport, Error> {
    let started = Instant::now();
    let root = location::root(settings)?;
    let backup = Backup::open(&root, settings, &req.backup_id).await?;
    if backup.manifest.kind == BackupKind::Base {
        return Err(Error::invalid(format!(
            "backup {} is a base backup of the whole cluster: recover it with to_time              (`dbagent restore --to-time T`), which builds a new cluster",
            backup.manifest.id
        )));
    }
    let source = database::database_name(db);
    let stamp = Utc::now().format("%Y%m%d%H%M%S").to_string();
    let target = match (&req.target_database, req.drop_existing) {
        (Some(name), _) => name.clone(),
        (None, true) => source.clone(),
        (None, false) => derived_name(&source, &format!("_restored_{stamp}")),
    };
    check_database_name(&target)?;
    if matches!(target.as_str(), "template0" | "template1") {
        return Err(Error::invalid(format!("refusing to restore into {target}")));
    }
    let admin = Admin::connect(db, &[target.as_str(), source.as_str()]).await?;
    let tools = backup.tools(settings, &admin).await?;
    let exists = admin.exists(&target).await?;
    let data_only = backup.manifest.kind == BackupKind::DataOnly;
    let mode = choose_mode(exists, req.tables.is_some(), data_only, req.drop_existing, &target)?;
    if mode == RestoreMode::Replaced {
        let template = admin.is_template(&target).await?;
        guard(&Replace { target: &target, backup_of: &backup.manifest.database, backup_id: &backup.manifest.id, own: &source, template }, req.confirm.as_deref(), req.force)?;
    }
    let tables = req.tables.as_ref().map(|t| backup.expand(t));
    let job = Job {
        db,
        admin: &admin,
        load: Load { backup: &backup, tools: &tools, root: &root, jobs: req.jobs.unwrap_or(settings.jobs).max(1), started, progress, hash_plaintext: false },
        limit: settings.tool_timeout,
    };
    let mut report = RestoreReport {
        backup_id: backup.manifest.id.clone(),
        database: target.clone(),
        mode,
        tables: tables.clone(),
        replaced_as: None,
        replaced_dropped: false,
        replaced_expires_at: None,
        bytes: 0,
        duration_ms: 0,
    };
    report.bytes = match mode {
        RestoreMode::DataIntoExisting => job.load_into(&target, &Plan::DataInto { tables }).await?,
        RestoreMode::NewDatabase => job.restore_new(&target, &Plan::Whole).await?,
        RestoreMode::TablesIntoNewDatabase => {
            job.restore_new(&target, &Plan::SchemaThenData { tables: tables.unwrap_or_default() }).await?
        }
        RestoreMode::Replaced => {
            let bytes = job.replace_keeping(settings, req, &target, &stamp, &mut report).await?;
            if target == source {
                // The restored copy's catalog mirror is empty (dumps leave its data out).
                if let Err(err) = catalog::rebuild_catalog(db, settings).await {
                    tracing::warn!(error = %err, "could not rebuild the backup catalog in the restored database");
                }
            }
            bytes
        }
    };
    report.duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(backup_id = %report.backup_id, database = %report.database, mode = ?report.mode, bytes = report.bytes, "restore complete");
    Ok(report)
}

/// A replace about to happen: what it would replace, with what.
pub(crate) struct Replace<'a> {
    pub target: &'a str,
    /// The database the backup was taken from.
    pub backup_of: &'a str,
    pub backup_id: &'a str,
    /// The database dbagent is configured for (where its `dbagent` schema is).
    pub own: &'a str,
    /// `target` is a template database.
    pub template: bool,
}

/// Refuses a replace nobody asked for by name: `postgres`, a template database, and the
/// database dbagent keeps its own schema in (with a backup of another database) need `force`;
/// a database other than the one the backup was taken from needs `confirm` naming it.
pub(crate) fn guard(r: &Replace<'_>, confirm: Option<&str>, force: bool) -> Result<(), Error> {
    let Replace { target, backup_of, backup_id, own, template } = *r;
    let protected = if target == "postgres" {
        Some("the maintenance database postgres")
    } else if template {
        Some("a template database")
    } else if target == own && target != backup_of {
        Some("the database dbagent keeps its own schema (dbagent.*) in")
    } else {
        None
    };
    if let Some(what) = protected
        && !force
    {
        return Err(Error::ForceRequired {
            reason: format!(
                "{target} is {what}: replacing it with backup {backup_id} (of {backup_of}) needs \"force\": true \
                 (and \"confirm\": \"{target}\"); nothing was changed"
            ),
        });
    }
    if target != backup_of && confirm != Some(target) {
        let given = match confirm {
            Some(other) => format!(" (confirm names {other:?})"),
            None => String::new(),
        };
        return Err(Error::ConfirmationRequired {
            reason: format!(
                "backup {backup_id} is of database {backup_of}, not {target}: replacing {target} with it needs \
                 \"confirm\": \"{target}\"{given}; nothing was changed"
            ),
        });
    }
    Ok(())
}

/// Where the data goes, from whether the target exists and what was asked.
pub(crate) fn choose_mode(
    exists: bool,
    tables: bool,
    data_only: bool,
    drop_existing: bool,
    target: &str,
) -> Result<RestoreMode, Error> {
    if data_only && (!exists || drop_existing) {
        return Err(Error::invalid(
            "a data-only backup loads rows into an existing database: name it with \
             target_database, without drop_existing",
        ));
    }
    let partial = tables || data_only;
    Ok(match (exists, partial, drop_existing) {
        (true, true, _) => RestoreMode::DataIntoExisting,
        (true, false, true) => RestoreMode::Replaced,
        (true, false, false) => return Err(Error::TargetExists { database: target.to_owned() }),
        (false, true, _) => RestoreMode::TablesIntoNewDatabase,
        (false, false, _) => RestoreMode::NewDatabase,
    })
}

/// One restore's database side.
struct Job<'a> {
    db: &'a PgConfig,
    admin: &'a Admin,
    load: Load<'a>,
    limit: Duration,
}

impl Job<'_> {
    /// Runs `plan` into the existing database `name`.
    async fn load_into(&self, name: &str, plan: &Plan) -> Result<u64, Error> {
        tools::bounded(Tool::PgRestore, self.limit, self.load.run(&self.admin.config_for(name), plan)).await
    }

    /// Creates `name`, runs `plan` into it, and drops it again if that fails.
    async fn restore_new(&self, name: &str, plan: &Plan) -> Result<u64, Error> {
        self.fill_new(name, self.load_into(name, plan)).await
    }

    /// Restores into `fresh`, then swaps it in for `target` (which becomes `old`). On any
    /// failure `fresh` is dropped and `target` is as it was.
    async fn replace(&self, target: &str, fresh: &str, old: &str) -> Result<u64, Error> {
        let restored_and_swapped = async {
            let bytes = self.load_into(fresh, &Plan::Whole).await?;
            self.admin.swap(target, fresh, old).await?;
            Ok(bytes)
        };
        self.fill_new(fresh, restored_and_swapped).await
    }

    /// [`Job::replace`], keeping the replaced database: renamed `<target>_replaced_<time>` and
    /// recorded (`replaced.rs`), or dropped at once with `drop_replaced` or
    /// `keep_replaced_hours: 0`. Fills the report's `replaced_*` fields.
    async fn replace_keeping(&self, settings: &Settings, req: &RestoreRequest, target: &str, stamp: &str, report: &mut RestoreReport) -> Result<u64, Error> {
        // Read before the swap: swapping the configured database swaps this table too.
        let carried = replaced::carried(self.db, target).await?;
        let old = replaced::free_name(self.admin, target, Utc::now()).await?;
        let bytes = self.replace(target, &derived_name(target, &format!("_restoring_{stamp}")), &old).await?;
        let by = req.by.as_deref().unwrap_or("unknown");
        let mut record = replaced::record(settings, &old, target, &report.backup_id, by);
        if req.drop_replaced || settings.keep_replaced_hours == 0 {
            report.replaced_dropped = self.drop_replaced(&old).await;
            if report.replaced_dropped {
                record.state = replaced::ReplacedState::Dropped;
                record.ended_at = Some(Utc::now());
                record.exists = false;
            }
        } else {
            report.replaced_expires_at = Some(record.expires_at);
        }
        if let Err(err) = replaced::write_after_swap(self.db, carried, &[record]).await {
            tracing::warn!(database = %old, error = %crate::db::error_chain(&err), "could not record the replaced database; it is kept under this name");
        }
        tracing::info!(database = %target, replaced_as = %old, dropped = report.replaced_dropped, "restored copy swapped in");
        report.replaced_as = Some(old);
        Ok(bytes)
    }

    /// Creates `name`, then runs `work` (which fills it); drops `name` again if `work` fails.
    async fn fill_new(&self, name: &str, work: impl Future<Output = Result<u64, Error>>) -> Result<u64, Error> {
        self.admin.create(name, &self.load.backup.manifest).await?;
        let scratch = Scratch::new(self.db, name);
        match work.await {
            Ok(bytes) => {
                scratch.keep();
                Ok(bytes)
            }
            Err(err) => {
                drop_quietly(scratch, self.admin).await;
                Err(err)
            }
        }
    }

    /// Drops the database a swap replaced; says whether that worked.
    async fn drop_replaced(&self, old: &str) -> bool {
        match self.admin.drop(old).await {
            Ok(()) => true,
            Err(err) => {
                tracing::warn!(database = %old, error = %err, "the replaced database could not be dropped; it remains under this name");
                false
            }
        }
    }
}

async fn drop_quietly(scratch: Scratch, admin: &Admin) {
    let name = scratch.name.clone();
    if let Err(err) = scratch.drop_now(admin).await {
        tracing::warn!(database = %name, error = %err, "could not drop the database of a failed restore");
    }
}

fn validate(req: &RestoreRequest) -> Result<(), Error> {
    if req.backup_id.trim().is_empty() {
        return Err(Error::invalid("backup_id is required"));
    }
    if let Some(name) = &req.target_database {
        check_database_name(name)?;
    }
    if let Some(tables) = &req.tables {
        if tables.is_empty() {
            return Err(Error::invalid("tables, when given, must name at least one table"));
        }
        if tables.iter().any(|t| t.trim().is_empty() || t.len() > 200 || t.chars().any(char::is_control)) {
            return Err(Error::invalid("every table must be 1 to 200 characters without control characters"));
        }
        if req.drop_existing {
            return Err(Error::invalid(
                "drop_existing replaces a whole database and cannot be combined with tables; \
                 restore the tables into a new database, or into the existing one without drop_existing",
            ));
        }
    }
    if req.drop_replaced && !req.drop_existing {
        return Err(Error::invalid("drop_replaced drops the database a restore replaces: it goes with drop_existing"));
    }
    if let Some(jobs) = req.jobs
        && !(1..=64).contains(&jobs)
    {
        return Err(Error::invalid("jobs must be between 1 and 64"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_before_anything_runs() {
        let ok = RestoreRequest { backup_id: "x".into(), ..Default::default() };
        assert!(validate(&ok).is_ok());
        let bad = [
            RestoreRequest::default(),
            RestoreRequest { backup_id: "x".into(), tables: Some(vec![]), ..Default::default() },
            RestoreRequest { backup_id: "x".into(), tables: Some(vec!["t".into()]), drop_existing: true, ..Default::default() },
            RestoreRequest { backup_id: "x".into(), jobs: Some(0), ..Default::default() },
            RestoreRequest { backup_id: "x".into(), target_database: Some("x".repeat(64)), ..Default::default() },
        ];
        for req in bad {
            assert!(matches!(validate(&req), Err(Error::InvalidRequest { .. })), "{req:?}");
        }
    }

    #[test]
    fn a_replace_needs_confirm_for_another_database_and_force_for_a_protected_one() {
        let replace = |target, backup_of, own, template| Replace { target, backup_of, backup_id: "b", own, template };
        // (replace, confirm, force) → Ok, or the code of the refusal
        let cases: &[(Replace<'_>, Option<&str>, bool, Option<&str>)] = &[
            (replace("app", "app", "app", false), None, false, None),
            (replace("app", "app", "meta", false), None, false, None),
            (replace("other", "app", "meta", false), None, false, Some("confirmation_required")),
            (replace("other", "app", "meta", false), Some("app"), false, Some("confirmation_required")),
            (replace("other", "app", "meta", false), Some("other"), false, None),
            (replace("postgres", "app", "app", false), Some("postgres"), false, Some("force_required")),
            (replace("postgres", "app", "app", false), None, true, Some("confirmation_required")),
            (replace("postgres", "app", "app", false), Some("postgres"), true, None),
            (replace("tpl", "app", "app", true), Some("tpl"), false, Some("force_required")),
            (replace("meta", "app", "meta", false), Some("meta"), false, Some("force_required")),
            (replace("meta", "app", "meta", false), Some("meta"), true, None),
        ];
        for (r, confirm, force, expected) in cases {
            let got = guard(r, *confirm, *force).err().map(|e| crate::error::Classify::code(&e));
            assert_eq!(got, *expected, "{} (backup of {}, own {}) confirm {confirm:?} force {force}", r.target, r.backup_of, r.own);
        }
    }

    #[test]
    fn the_mode_follows_the_target_and_the_request() {
        use RestoreMode::*;
        // (exists, tables, data_only, drop_existing) → mode, or None for a refusal
        let cases = [
            ((false, false, false, false), Some(NewDatabase)),
            ((false, false, false, true), Some(NewDatabase)),
            ((true, false, false, true), Some(Replaced)),
            ((true, false, false, false), None),
            ((false, true, false, false), Some(TablesIntoNewDatabase)),
            ((true, true, false, false), Some(DataIntoExisting)),
            ((true, false, true, false), Some(DataIntoExisting)),
            ((false, false, true, false), None),
            ((true, false, true, true), None),
        ];
        for ((exists, tables, data_only, drop), expected) in cases {
            let mode = choose_mode(exists, tables, data_only, drop, "t").ok();
            assert_eq!(mode, expected, "exists {exists}, tables {tables}, data-only {data_only}, drop {drop}");
        }
    }
}
