//! [`Migrator`]: the migration files of one directory, and the commands that bring a database
//! to them — `up`, `down`, `status`, `repair`, `baseline`, `history`.

use std::time::Instant;

use tokio_postgres::Client;
use crate::db::PgConfig;
use tracing::Instrument;

use super::history::{self, EventKind, NewApplied, NewEvent};
use super::run::{self, Context, Step};
use super::session::{self, Session};
use super::source;
use super::{
    Applied, AppliedMigration, Direction, DownTarget, Error, Event, Migration, PendingMigration, Report, Settings,
    Status, plan,
};

/// The data-losing statements of the down files of `steps`.
fn data_loss(steps: &[&Migration]) -> Vec<super::FileWarning> {
    steps
        .iter()
        .filter_map(|m| m.down.as_ref().map(|d| (m.version, d)))
        .flat_map(|(version, down)| {
            super::lint::data_loss(&down.sql).into_iter().map(move |warning| super::FileWarning { version, file: down.path.clone(), warning })
        })
        .collect()
}

/// `migration 3 (drop-table users), ...`
fn summary(losing: &[super::FileWarning]) -> String {
    let shown: Vec<String> = losing
        .iter()
        .map(|w| format!("migration {} ({} {})", w.version, w.warning.rule, w.warning.table.as_deref().unwrap_or("?")))
        .collect();
    shown.join(", ")
}

/// How `up` runs.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Stop after this version (a known version); `None`: the newest file.
    pub target: Option<i64>,
    /// Return the SQL that would run and write nothing.
    pub dry_run: bool,
    /// Apply pending files older than the newest applied one instead of refusing.
    pub allow_out_of_order: bool,
    /// Recorded in the history and events (a user, an API key name, `auto-migrate`).
    pub applied_by: String,
    /// The backup taken before this run, recorded with each migration it applies.
    pub backup_id: Option<String>,
}

/// How `down` runs.
#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    /// How far to go (default: one step).
    pub target: DownTarget,
    /// Return the SQL that would run and write nothing.
    pub dry_run: bool,
    /// Recorded in the events.
    pub applied_by: String,
    /// Run down files that lose data (see [`super::lint::DATA_LOSS_RULES`]); without it such
    /// a plan is refused ([`Error::DataLossUnconfirmed`]) and a dry run lists them as warnings.
    pub confirm: bool,
}

/// The migrations of one directory, loaded once, and how to run them.
#[derive(Debug, Clone)]
pub struct Migrator {
    settings: Settings,
    migrations: Vec<Migration>,
}

impl Migrator {
    /// Reads and checks every migration file in `settings.dir`.
    pub fn load(settings: Settings) -> Result<Migrator, Error> {
        let migrations = source::load_dir(&settings.dir)?;
        Ok(Migrator { settings, migrations })
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The loaded migrations, by version.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// Compares the files with the database's history. Writes nothing and takes no lock.
    pub async fn status(&self, db: &PgConfig) -> Result<Status, Error> {
        let client = session::connect(db).await?;
        let applied = history::read_applied(&client).await?;
        let pending = plan::pending(&self.migrations, &applied);
        Ok(Status {
            current: applied.iter().map(|a| a.version).max(),
            drifted: plan::drifted(&self.migrations, &applied),
            missing: plan::missing(&self.migrations, &applied),
            out_of_order: plan::out_of_order(&pending, &applied),
            pending: pending.iter().map(|m| pending_of(m)).collect(),
            applied,
        })
    }

    /// Applies pending migrations in order, each in its own transaction (see [`UpOptions`]).
    pub async fn up(&self, db: &PgConfig, opts: &UpOptions) -> Result<Report, Error> {
        let ctx = Context {
            settings: &self.settings,
            by: &opts.applied_by,
            backup_id: opts.backup_id.as_deref(),
        };
        let plan =
            |applied: &[AppliedMigration]| plan::up(&self.migrations, applied, opts.target, opts.allow_out_of_order);
        let mut report = self.execute(db, Direction::Up, opts.dry_run, &ctx, plan).await?;
        report.backup_id = opts.backup_id.clone();
        Ok(report)
    }

    /// Reverts applied migrations, newest first, each in its own transaction.
    pub async fn down(&self, db: &PgConfig, opts: &DownOptions) -> Result<Report, Error> {
        let ctx = Context {
            settings: &self.settings,
            by: &opts.applied_by,
            backup_id: None,
        };
        let plan = |applied: &[AppliedMigration]| plan::down(&self.migrations, applied, opts.target);
        // What the plan would lose, read before taking the lock (the plan is made again under
        // it; a down file that appeared in between is still only run confirmed or not at all).
        let client = session::connect(db).await?;
        let applied = history::read_applied(&client).await?;
        drop(client);
        let losing = data_loss(&plan(&applied)?);
        if !opts.dry_run && !opts.confirm && !losing.is_empty() {
            return Err(Error::DataLossUnconfirmed { summary: summary(&losing) });
        }
        let confirmed_plan = |applied: &[AppliedMigration]| {
            let steps = plan(applied)?;
            let now_losing = data_loss(&steps);
            if !opts.dry_run && !opts.confirm && !now_losing.is_empty() {
                return Err(Error::DataLossUnconfirmed { summary: summary(&now_losing) });
            }
            Ok(steps)
        };
        let mut report = self.execute(db, Direction::Down, opts.dry_run, &ctx, confirmed_plan).await?;
        report.warnings = losing;
        Ok(report)
    }

    /// Accepts the current files of drifted applied migrations (all, or only `version`):
    /// their recorded checksums are updated and a `repair` event is written for each.
    /// Returns the versions repaired.
    pub async fn repair(&self, db: &PgConfig, version: Option<i64>, by: &str) -> Result<Vec<i64>, Error> {
        self.locked(db, async |client| self.repair_locked(client, version, by).await)
            .await
    }

    /// Records every file up to `version` as applied, without running it, on a database whose
    /// schema already matches them. Refuses when anything is already applied.
    pub async fn baseline(&self, db: &PgConfig, version: i64, by: &str) -> Result<(), Error> {
        self.locked(db, async |client| self.baseline_locked(client, version, by).await)
            .await
    }

    /// The newest `limit` events, newest first. Writes nothing.
    pub async fn history(db: &PgConfig, limit: u32) -> Result<Vec<Event>, Error> {
        let client = session::connect(db).await?;
        history::read_events(&client, limit).await
    }

    /// Plans against the applied list and runs the plan, or only shows it in a dry run.
    async fn execute<'a>(
        &'a self,
        db: &PgConfig,
        direction: Direction,
        dry_run: bool,
        ctx: &Context<'_>,
        plan: impl Fn(&[AppliedMigration]) -> Result<Vec<&'a Migration>, Error>,
    ) -> Result<Report, Error> {
        let started = Instant::now();
        let (applied, version) = if dry_run {
            let client = session::connect(db).await?;
            let history = history::read_applied(&client).await?;
            let steps = plan(&history)?;
            let shown = steps.iter().map(|m| shown(m, direction)).collect();
            (shown, version_after(&history, &steps, direction))
        } else {
            self.locked(db, async |client| run_plan(client, direction, ctx, &plan).await)
                .await?
        };
        Ok(Report {
            applied,
            version,
            execution_time_ms: run::millis(started.elapsed()),
            dry_run,
            backup_id: None,
            warnings: Vec::new(),
        })
    }

    /// Runs `work` on the worker connection while holding the migration lock, and releases the
    /// lock whatever `work` returns.
    async fn locked<T>(
        &self,
        db: &PgConfig,
        work: impl AsyncFnOnce(&mut Client) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut session = Session::open(db, &self.settings).await?;
        let outcome = work(&mut session.client).await;
        session.close().await;
        outcome
    }

    async fn repair_locked(&self, client: &mut Client, version: Option<i64>, by: &str) -> Result<Vec<i64>, Error> {
        let applied = history::read_applied(client).await?;
        if let Some(only) = version
            && !applied.iter().any(|a| a.version == only)
        {
            return Err(Error::UnknownVersion { version: only });
        }
        let mut versions = plan::drifted(&self.migrations, &applied);
        versions.retain(|v| version.is_none_or(|only| *v == only));
        let tx = client.transaction().await.map_err(Error::history("begin the repair"))?;
        for row in applied.iter().filter(|a| versions.contains(&a.version)) {
            let file = self.file(row.version);
            history::update_checksum(&tx, row.version, &file.checksum)
                .await
                .map_err(Error::history("update a checksum"))?;
            let event = NewEvent {
                version: row.version,
                name: &file.name,
                kind: EventKind::Repair,
                by,
                checksum: Some(&file.checksum),
                execution_time_ms: None,
                detail: Some(format!("accepted checksum {} (was {})", file.checksum, row.checksum)),
            };
            history::insert_event(&tx, &event)
                .await
                .map_err(Error::history("record a repair"))?;
        }
        tx.commit().await.map_err(Error::history("commit the repair"))?;
        Ok(versions)
    }

    async fn baseline_locked(&self, client: &mut Client, version: i64, by: &str) -> Result<(), Error> {
        let applied = history::read_applied(client).await?;
        if !applied.is_empty() {
            return Err(Error::AlreadyApplied { applied: applied.len() });
        }
        if !self.migrations.iter().any(|m| m.version == version) {
            return Err(Error::UnknownVersion { version });
        }
        let tx = client
            .transaction()
            .await
            .map_err(Error::history("begin the baseline"))?;
        for m in self.migrations.iter().filter(|m| m.version <= version) {
            let row = NewApplied {
                version: m.version,
                name: &m.name,
                checksum: &m.checksum,
                applied_by: by,
                execution_time_ms: 0.0,
                backup_id: None,
            };
            history::insert_applied(&tx, &row)
                .await
                .map_err(Error::history("record a baseline"))?;
            let event = NewEvent {
                version: m.version,
                name: &m.name,
                kind: EventKind::Baseline,
                by,
                checksum: Some(&m.checksum),
                execution_time_ms: Some(0.0),
                detail: Some(format!("baseline at version {version}; not run")),
            };
            history::insert_event(&tx, &event)
                .await
                .map_err(Error::history("record a baseline"))?;
        }
        tx.commit().await.map_err(Error::history("commit the baseline"))
    }

    fn file(&self, version: i64) -> &Migration {
        self.migrations
            .iter()
            .find(|m| m.version == version)
            .expect("drifted versions have files")
    }
}

/// Reads the applied list (only now, under the lock: a runner that waited sees what the other
/// applied) and runs the plan, one migration at a time.
async fn run_plan<'a>(
    client: &mut Client,
    direction: Direction,
    ctx: &Context<'_>,
    plan: &impl Fn(&[AppliedMigration]) -> Result<Vec<&'a Migration>, Error>,
) -> Result<(Vec<Applied>, Option<i64>), Error> {
    let history = history::read_applied(client).await?;
    let steps = plan(&history)?;
    let mut done = Vec::with_capacity(steps.len());
    for migration in &steps {
        let step = Step { migration, direction };
        let span = tracing::info_span!("migration", version = migration.version, %direction);
        match run::run(client, &step, ctx).instrument(span.clone()).await {
            Ok(ms) => {
                span.in_scope(|| tracing::info!(execution_time_ms = ms, name = %migration.name, "migration ran"));
                done.push(entry(migration, direction, ms, None));
            }
            Err(mut err) => {
                if let Error::MigrationFailed { completed, .. } = &mut err {
                    *completed = done.iter().map(|a| a.version).collect();
                }
                return Err(err);
            }
        }
    }
    Ok((done, version_after(&history, &steps, direction)))
}

/// What a dry run shows for `migration`: its SQL, not run.
fn shown(migration: &Migration, direction: Direction) -> Applied {
    let sql = Step { migration, direction }.script().sql.clone();
    entry(migration, direction, 0.0, Some(sql))
}

fn entry(migration: &Migration, direction: Direction, execution_time_ms: f64, sql: Option<String>) -> Applied {
    Applied {
        version: migration.version,
        name: migration.name.clone(),
        direction,
        execution_time_ms,
        sql,
    }
}

fn version_after(history: &[AppliedMigration], steps: &[&Migration], direction: Direction) -> Option<i64> {
    let versions: Vec<i64> = steps.iter().map(|m| m.version).collect();
    match direction {
        Direction::Up => plan::version_after(history, &versions, &[]),
        Direction::Down => plan::version_after(history, &[], &versions),
    }
}

fn pending_of(m: &Migration) -> PendingMigration {
    PendingMigration {
        version: m.version,
        name: m.name.clone(),
        reversible: m.down.is_some(),
        no_transaction: m.up.no_transaction,
    }
}
