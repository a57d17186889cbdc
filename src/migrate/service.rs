//! What the CLI and the API call: the [`Migrator`] with the configured settings, the backup
//! before `up`, target parsing (`head`, `+2`, `-1`, `base`, a version), seed scripts and the
//! auto-migrate state that `/health/ready` reports.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{DownOptions, DownTarget, Error, Event, FileWarning, Migrator, Report, Settings, Status, UpOptions, parse_down_target};
use crate::config;

/// The configured migrations, for one database.
#[derive(Debug, Clone)]
pub struct Service {
    settings: Settings,
    config: config::Migrations,
    /// Where the backup before migrating goes (`backup:`); `None` when its settings are
    /// unusable (the error is reported when a backup is needed).
    backup: Result<crate::backup::Settings, String>,
}

/// Where `up` should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpTarget {
    Head,
    /// The next N pending migrations.
    Steps(u32),
    Version(i64),
}

impl UpTarget {
    /// `head`, `+N` (or a bare `N` smaller than any version would be read as a version), or a
    /// version number.
    pub fn parse(text: &str) -> Result<UpTarget, Error> {
        let text = text.trim();
        if text.is_empty() || text.eq_ignore_ascii_case("head") {
            return Ok(UpTarget::Head);
        }
        let bad = || Error::InvalidUpTarget { given: text.to_owned() };
        match text.strip_prefix('+') {
            Some(n) => n.parse().ok().filter(|n| *n > 0).map(UpTarget::Steps).ok_or_else(bad),
            None => text.parse().ok().filter(|v| *v > 0).map(UpTarget::Version).ok_or_else(bad),
        }
    }
}

/// Options of one `up`.
#[derive(Debug, Clone)]
pub struct Up {
    pub target: UpTarget,
    pub dry_run: bool,
    pub allow_out_of_order: bool,
    pub by: String,
}

impl Service {
    pub fn new(config: &config::Config) -> Service {
        let m = &config.migrations;
        let seconds = |s: f64| Duration::from_secs_f64(s.max(0.0));
        let mut settings = Settings::new(&m.directory);
        settings.lock_timeout = seconds(m.lock_timeout);
        settings.statement_lock_timeout = seconds(m.statement_lock_timeout);
        settings.statement_timeout = seconds(m.statement_timeout);
        let backup = crate::backup::Settings::from_config(config).map_err(|e| crate::db::error_chain(&e));
        Service { settings, config: m.clone(), backup }
    }

    /// The files as they are on disk now.
    pub fn migrator(&self) -> Result<Migrator, Error> {
        Migrator::load(self.settings.clone())
    }

    pub fn directory(&self) -> &Path {
        &self.settings.dir
    }

    /// Applies pending migrations up to `up.target`, after a backup when configured (and when
    /// something is pending and this is not a dry run).
    pub async fn up(&self, db: &crate::db::PgConfig, up: &Up) -> Result<Report, Error> {
        let migrator = self.migrator()?;
        let target = match up.target {
            UpTarget::Head => None,
            UpTarget::Version(v) => Some(v),
            UpTarget::Steps(n) => {
                let status = migrator.status(db).await?;
                let pending: Vec<i64> = status.pending.iter().map(|p| p.version).collect();
                pending.get(n as usize - 1).or(pending.last()).copied()
            }
        };
        let mut options = UpOptions {
            target,
            dry_run: up.dry_run,
            allow_out_of_order: up.allow_out_of_order,
            applied_by: up.by.clone(),
            backup_id: None,
        };
        let pending: Vec<i64> = migrator.status(db).await?.pending.iter().map(|p| p.version).collect();
        let warnings = self.lint(db, &migrator, &pending, target).await;
        for w in &warnings {
            tracing::warn!(version = w.version, rule = w.warning.rule, "{}", w.warning.message);
        }
        if self.config.backup_before_migrate && !up.dry_run && !pending.is_empty() {
            options.backup_id = Some(self.backup(db).await?);
        }
        let mut report = migrator.up(db, &options).await?;
        let ran: Vec<i64> = report.applied.iter().map(|a| a.version).collect();
        report.warnings = warnings.into_iter().filter(|w| ran.contains(&w.version)).collect();
        Ok(report)
    }

    /// Lint warnings for the pending migrations up to `target`, with table sizes. Lint is
    /// advice: when it cannot run, the migration still can.
    async fn lint(&self, db: &crate::db::PgConfig, migrator: &Migrator, pending: &[i64], target: Option<i64>) -> Vec<FileWarning> {
        let Ok(client) = crate::db::admin::connect(db, crate::db::Purpose::Lint).await else { return Vec::new() };
        let mut out = Vec::new();
        let wanted = migrator
            .migrations()
            .iter()
            .filter(|m| pending.contains(&m.version) && target.is_none_or(|t| m.version <= t));
        for migration in wanted {
            match super::lint::lint_with_sizes(&client, &migration.up.sql).await {
                Ok(found) => out.extend(found.into_iter().map(|warning| FileWarning {
                    version: migration.version,
                    file: migration.up.path.clone(),
                    warning,
                })),
                Err(err) => tracing::debug!(error = %err, "lint could not run"),
            }
        }
        out
    }

    /// Reverts to `target`; down files that lose data run only with `confirm` (a dry run
    /// lists them in `warnings`).
    pub async fn down(&self, db: &crate::db::PgConfig, target: &str, dry_run: bool, confirm: bool, by: &str) -> Result<Report, Error> {
        let target: DownTarget = parse_down_target(target)?;
        let options = DownOptions { target, dry_run, applied_by: by.to_owned(), confirm };
        self.migrator()?.down(db, &options).await
    }

    pub async fn status(&self, db: &crate::db::PgConfig) -> Result<Status, Error> {
        self.migrator()?.status(db).await
    }

    pub async fn history(&self, db: &crate::db::PgConfig, limit: u32) -> Result<Vec<Event>, Error> {
        Migrator::history(db, limit).await
    }

    /// A full backup through the backup capability, pinned by the migration run (retention
    /// keeps it until it is unpinned); returns its id.
    async fn backup(&self, db: &crate::db::PgConfig) -> Result<String, Error> {
        let settings = self.backup.as_ref().map_err(|e| Error::BackupFailed { source: e.clone().into() })?;
        let request = crate::backup::CreateRequest {
            name: Some("before migrate".into()),
            pinned_by: Some(format!("migration run at {}", chrono::Utc::now().to_rfc3339())),
            ..Default::default()
        };
        let started = Instant::now();
        let manifest = crate::backup::create(db, settings, &request, &|_| {})
            .await
            .map_err(|e| Error::BackupFailed { source: crate::db::error_chain(&e).into() })?;
        tracing::info!(backup_id = %manifest.id, elapsed_ms = started.elapsed().as_millis() as u64, "backup before migrating");
        Ok(manifest.id)
    }

    /// Diffs `desired_sql` (a whole schema) against the live database and writes the up and
    /// down files of a new migration `name`; writes nothing when there is no difference.
    pub async fn autogenerate(
        &self,
        db: &crate::db::PgConfig,
        name: &str,
        desired_sql: &str,
        schemas: &[String],
    ) -> Result<Autogenerated, Error> {
        let generated = super::autogen::autogenerate(db, desired_sql, schemas)
            .await
            .map_err(|source| Error::Autogenerate { source: Box::new(source) })?;
        if generated.changes == 0 {
            return Ok(Autogenerated { files: Vec::new(), generated });
        }
        let files = super::new_migration(&self.settings.dir, name, true, chrono::Utc::now())?;
        let notes: String = generated.notes.iter().map(|n| format!("-- note: {n}\n")).collect();
        let header = format!("-- generated by dbagent migrate autogenerate ({} changes)\n{notes}", generated.changes);
        for (path, body) in files.iter().zip([&generated.up, &generated.down]) {
            std::fs::write(path, format!("{header}{body}")).map_err(|source| Error::Io { action: "write", path: path.clone(), source })?;
        }
        Ok(Autogenerated { files, generated })
    }

    /// Runs `seeds/<env>/*.sql` (name order) in one transaction; returns the files run.
    pub async fn seed(&self, db: &crate::db::PgConfig, env: &str) -> Result<Vec<PathBuf>, Error> {
        super::seed::run(db, &self.config.seeds_directory, env).await
    }
}

/// What `autogenerate` wrote (nothing when the schemas already match).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Autogenerated {
    pub files: Vec<PathBuf>,
    #[serde(flatten)]
    pub generated: super::autogen::Generated,
}

/// Auto-migrate at start-up, as `/health/ready` reports it.
#[derive(Debug, Default)]
pub struct AutoMigrate {
    state: Mutex<AutoState>,
}

#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AutoState {
    /// Not configured.
    #[default]
    Off,
    Running,
    Done { applied: usize, version: Option<i64> },
    Failed { error: String },
}

impl AutoMigrate {
    pub fn get(&self) -> AutoState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, state: AutoState) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = state;
    }

    /// Ready unless migrations are running or failed.
    pub fn is_ready(&self) -> bool {
        matches!(self.get(), AutoState::Off | AutoState::Done { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn up_targets_parse() {
        assert_eq!(UpTarget::parse("head").unwrap(), UpTarget::Head);
        assert_eq!(UpTarget::parse("").unwrap(), UpTarget::Head);
        assert_eq!(UpTarget::parse("+2").unwrap(), UpTarget::Steps(2));
        assert_eq!(UpTarget::parse("20240101000000").unwrap(), UpTarget::Version(20240101000000));
        for bad in ["+0", "+x", "abc", "-1"] {
            assert!(UpTarget::parse(bad).is_err(), "{bad}");
        }
    }
}
