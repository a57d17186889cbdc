//! Verification: level 1 reads every stored file back (decrypt, decompress, both SHA-256 and
//! sizes against the manifest); level 2 restores the backup into a scratch database
//! `dbagent_verify_<id>` (which re-checks every file on the way), compares per-table row
//! counts with the manifest, and drops the scratch database on every path.
//!
//! The outcome is recorded in the manifest (and its mirror) when it says something about the
//! backup: a pass, or a failure of the backup itself. A wrong key, missing tools or an
//! unreachable server say nothing about the backup and are not recorded, so retention never
//! mistakes them for a bad backup.

use std::io;
use std::sync::atomic::Ordering;
use std::time::Instant;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use crate::db::PgConfig;

use super::create::{BackupKind, Progress};
use super::database::{self, Admin, Scratch};
use super::location;
use super::manifest::{CountMethod, FileEntry, Manifest, Verification};
use super::pipeline::{self, OpenFailure, Opener};
use super::threads;
use super::load::{Backup, Load, Plan};
use super::tools::{self, Tool};
use super::{Error, RowMismatch, Settings, catalog};

/// How deep to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyLevel {
    /// Level 1: every file decrypts, decompresses and matches its checksums.
    Checksums,
    /// Level 2: a trial restore whose row counts match the manifest.
    TrialRestore,
}

impl VerifyLevel {
    pub fn number(self) -> u8 {
        match self {
            VerifyLevel::Checksums => 1,
            VerifyLevel::TrialRestore => 2,
        }
    }
}

/// What a successful verification checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct VerifyReport {
    pub backup_id: String,
    pub level: u8,
    pub files: Vec<FileCheck>,
    /// Level 2 only.
    pub tables: Vec<TableCheck>,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct FileCheck {
    pub file: String,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct TableCheck {
    pub table: String,
    /// From the manifest.
    pub expected: i64,
    /// In the trial restore.
    pub found: i64,
    /// An estimated count is reported, not compared.
    pub method: CountMethod,
}

/// Verifies backup `id` at `level`.
pub async fn verify(
    db: &PgConfig,
    settings: &Settings,
    id: &str,
    level: VerifyLevel,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<VerifyReport, Error> {
    if !location::is_id(id) {
        return Err(Error::NotFound { id: id.to_owned() });
    }
    let started = Instant::now();
    let root = location::root(settings)?;
    let backup = Backup::open(&root, settings, id).await?;
    let outcome = match level {
        VerifyLevel::Checksums => checksums(&backup, settings, started, progress).await,
        VerifyLevel::TrialRestore => trial_restore(db, &backup, settings, &root, started, progress).await,
    };
    let outcome = outcome.map(|tables| VerifyReport {
        backup_id: backup.manifest.id.clone(),
        level: level.number(),
        files: backup.manifest.files.iter().map(|f| FileCheck { file: f.stored.clone(), raw_bytes: f.raw_bytes, stored_bytes: f.stored_bytes }).collect(),
        tables,
        duration_ms: started.elapsed().as_millis() as u64,
    });
    record(db, &backup, level, &outcome).await;
    outcome
}

/// Level 1: every file read back into the void, `jobs` at a time.
async fn checksums(
    backup: &Backup,
    settings: &Settings,
    started: Instant,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Vec<TableCheck>, Error> {
    let (dir, compression, key, id) = (backup.dir.clone(), backup.manifest.compression, backup.key.clone(), backup.manifest.id.clone());
    let report = |bytes| progress(Progress { phase: "read", bytes, elapsed: started.elapsed() });
    threads::for_each_file(backup.manifest.files.clone(), settings.jobs, &report, move |entry: FileEntry, counter| {
        let aad = pipeline::associated_data(&id, &entry.name);
        let opener = Opener::open(&dir, &entry, compression, key.as_ref().map(|k| (k, aad)))?;
        match opener.copy_to(&mut io::sink(), |n| {
            counter.fetch_add(n, Ordering::Relaxed);
        }) {
            Ok(()) => Ok(()),
            Err(OpenFailure::Backup(err)) => Err(err),
            Err(OpenFailure::Sink(err)) => Err(Error::io("discard", std::path::Path::new("/dev/null"))(err)),
        }
    })
    .await?;
    Ok(Vec::new())
}

/// Level 2: restore into `dbagent_verify_<id>`, count, compare, drop.
async fn trial_restore(
    db: &PgConfig,
    backup: &Backup,
    settings: &Settings,
    root: &std::path::Path,
    started: Instant,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Vec<TableCheck>, Error> {
    if backup.manifest.kind == BackupKind::Base {
        // A whole cluster, not a database: the trial is starting it.
        super::pitr::trial_start(backup, settings, started, progress).await?;
        return Ok(Vec::new());
    }
    if backup.manifest.kind == BackupKind::DataOnly || backup.manifest.tables_filter.is_some() {
        return Err(Error::invalid(
            "a data-only backup, or one of selected tables, lacks objects its data depends on, \
             so it cannot be trial-restored into an empty database; verify it at level 1",
        ));
    }
    let name = database::derived_name("dbagent_verify_", &backup.manifest.id);
    let admin = Admin::connect(db, &[name.as_str()]).await?;
    let tools = backup.tools(settings, &admin).await?;
    admin.create(&name, &backup.manifest).await.map_err(|err| match err {
        Error::TargetExists { database } => Error::Conflict {
            reason: format!(
                "the scratch database {database} exists: another verification of this backup is running, \
                 or one was killed (drop the database to retry)"
            ),
        },
        other => other,
    })?;
    let scratch = Scratch::new(db, &name);
    let load = Load { backup, tools: &tools, root, jobs: settings.jobs.max(1), started, progress, hash_plaintext: true };
    let checked = async {
        tools::bounded(Tool::PgRestore, settings.tool_timeout, load.run(&admin.config_for(&name), &Plan::Whole)).await?;
        compare(&backup.manifest, &admin.config_for(&name)).await
    }
    .await;
    if let Err(err) = scratch.drop_now(&admin).await {
        tracing::warn!(database = %name, error = %err, "could not drop the verification database");
    }
    checked
}

/// Counts every table of the manifest in the restored database; exact counts must match.
async fn compare(manifest: &Manifest, restored: &PgConfig) -> Result<Vec<TableCheck>, Error> {
    let names: Vec<String> = manifest.tables.iter().map(|t| t.table.clone()).collect();
    let found = database::count_tables(restored, &names).await?;
    let mut checks = Vec::new();
    let mut mismatches = Vec::new();
    for table in &manifest.tables {
        let got = found.get(&table.table).copied();
        if table.method == CountMethod::Exact && got != Some(table.rows) {
            mismatches.push(RowMismatch { table: table.table.clone(), expected: table.rows, found: got });
        }
        if let Some(got) = got {
            checks.push(TableCheck { table: table.table.clone(), expected: table.rows, found: got, method: table.method });
        } else if table.method == CountMethod::Estimate {
            mismatches.push(RowMismatch { table: table.table.clone(), expected: table.rows, found: None });
        }
    }
    if !mismatches.is_empty() {
        return Err(Error::RowCountMismatch { id: manifest.id.clone(), tables: mismatches });
    }
    Ok(checks)
}

/// Writes the outcome into the manifest and its mirror, when it says something about the
/// backup (see the module doc). Re-reads the manifest first so a concurrent `pin` is kept.
async fn record(db: &PgConfig, backup: &Backup, level: VerifyLevel, outcome: &Result<VerifyReport, Error>) {
    let error = match outcome {
        Ok(_) => None,
        Err(err) if err.is_backup_damaged() => Some(err.to_string()),
        Err(_) => return,
    };
    let mut manifest = match Manifest::read(&backup.dir) {
        Ok(Some(manifest)) => manifest,
        _ => return,
    };
    manifest.verification = Some(Verification { at: Utc::now(), level: level.number(), ok: error.is_none(), error });
    if let Err(err) = manifest.write(&backup.dir) {
        tracing::warn!(backup_id = %manifest.id, error = %err, "could not record the verification in the manifest");
        return;
    }
    catalog::mirror(db, &manifest).await;
}
