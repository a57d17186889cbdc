//! `POST /migrate` (seed 000's `{direction, target}`) and `GET /migrations` (status + history).

use axum::extract::State;
use axum::{Extension, Json};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::answer::{Succeeded, ok};
use super::auth::Note;
use super::body::JsonBody;
use super::error::ApiError;
use crate::migrate::{Up, UpTarget};

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Upgrade,
    Downgrade,
}

/// A target as a string (`head`, `+2`, `-1`, `base`, a version) or a bare version number.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Target {
    Text(String),
    Number(i64),
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateRequest {
    #[serde(default)]
    pub direction: Direction,
    /// Upgrade: `head` (default), `+N`, a version. Downgrade: `-1` (default), `-N`, a version,
    /// `base`.
    #[serde(default)]
    pub target: Option<Target>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub allow_out_of_order: bool,
    /// Downgrade: run down files that lose data (`DROP TABLE`, `DROP COLUMN`, `TRUNCATE`,
    /// `DELETE` without `WHERE`); without it such a downgrade answers 409
    /// `confirmation_required` naming them and runs nothing (`dry_run` lists them in
    /// `warnings`).
    #[serde(default)]
    pub confirm: bool,
}

pub async fn migrate(
    State(state): State<AppState>,
    caller: Option<Extension<crate::security::Caller>>,
    note: Option<Extension<Note>>,
    JsonBody(req): JsonBody<MigrateRequest>,
) -> Result<Json<Migrated>, ApiError> {
    // The migration history says who: the key's name when a key was used.
    let by = match caller.as_ref().and_then(|Extension(c)| c.key_name().map(str::to_owned)) {
        Some(name) => format!("api key {name}"),
        None => "api".to_owned(),
    };
    let target = match &req.target {
        Some(Target::Text(t)) if t.trim().is_empty() => {
            return Err(ApiError::invalid_request("`target` is empty: leave it out for the default (head up, -1 down)"));
        }
        Some(Target::Text(t)) => Some(t.clone()),
        Some(Target::Number(n)) => Some(n.to_string()),
        None => None,
    };
    let service = state.migrations.clone();
    let db = state.executor.pools.admin_config();
    let executor = state.executor.clone();
    // In its own task: a client that hangs up must not cancel a migration half-way.
    let run = tokio::spawn(async move {
        let report = match req.direction {
            Direction::Upgrade => {
                let target = UpTarget::parse(target.as_deref().unwrap_or("head"))?;
                let up = Up { target, dry_run: req.dry_run, allow_out_of_order: req.allow_out_of_order, by: by.clone() };
                service.up(&db, &up).await
            }
            Direction::Downgrade => service.down(&db, target.as_deref().unwrap_or("-1"), req.dry_run, req.confirm, &by).await,
        };
        // New functions, triggers or views (even from a run that failed half-way).
        executor.refresh_guard().await;
        report
    });
    let report = run.await.map_err(ApiError::internal)??;
    if let Some(Extension(note)) = &note {
        let versions: Vec<String> = report.applied.iter().map(|a| a.version.to_string()).collect();
        note.with(|n| n.related = Some(format!("migrations {}", if versions.is_empty() { "none".into() } else { versions.join(",") })));
    }
    let migration_file = last_file(&state, &report);
    let direction = if req.direction == Direction::Upgrade { "upgrade" } else { "downgrade" };
    // Seed 000 reports seconds.
    let execution_time = report.execution_time_ms / 1e3;
    Ok(Json(Migrated { success: true, report, migration_file, direction, execution_time }))
}

/// `POST /migrate`'s answer: the run's report and seed 000's fields.
#[derive(Serialize, JsonSchema)]
pub struct Migrated {
    success: bool,
    #[serde(flatten)]
    report: crate::migrate::Report,
    /// Seed 000: the file of the last migration run (null when none ran).
    migration_file: Option<std::path::PathBuf>,
    /// `upgrade` or `downgrade`.
    direction: &'static str,
    /// Seed 000: seconds.
    execution_time: f64,
}

/// `GET /migrations`' answer.
#[derive(Serialize, JsonSchema)]
pub struct MigrationList {
    success: bool,
    #[serde(flatten)]
    status: crate::migrate::Status,
    /// The newest 100 events, newest first.
    history: Vec<crate::migrate::Event>,
    auto_migrate: crate::migrate::AutoState,
}

/// The file of the last migration the run applied or reverted.
fn last_file(state: &AppState, report: &crate::migrate::Report) -> Option<std::path::PathBuf> {
    let last = report.applied.last()?;
    let migrator = state.migrations.migrator().ok()?;
    let migration = migrator.migrations().iter().find(|m| m.version == last.version)?;
    match last.direction {
        crate::migrate::Direction::Up => Some(migration.up.path.clone()),
        crate::migrate::Direction::Down => migration.down.as_ref().map(|d| d.path.clone()),
    }
}

pub async fn list(State(state): State<AppState>) -> Result<Json<MigrationList>, ApiError> {
    let db = state.executor.pools.admin_config();
    let status = state.migrations.status(&db).await?;
    let history = state.migrations.history(&db, 100).await?;
    Ok(Json(MigrationList { success: true, status, history, auto_migrate: state.auto_migrate.get() }))
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AutogenerateRequest {
    pub name: String,
    /// The whole desired schema (what `schema.sql` holds).
    pub schema_sql: String,
    #[serde(default)]
    pub schemas: Vec<String>,
}

/// `POST /migrations/autogenerate`: writes the migration files; answers their paths, SQL and notes.
pub async fn autogenerate(State(state): State<AppState>, JsonBody(req): JsonBody<AutogenerateRequest>) -> Result<Json<Succeeded<crate::migrate::Autogenerated>>, ApiError> {
    let db = state.executor.pools.admin_config();
    let service = state.migrations.clone();
    if req.schema_sql.trim().is_empty() {
        // The difference from an empty schema is a migration that drops every table.
        return Err(ApiError::invalid_request(
            "`schema_sql` is empty: give the CREATE statements of the schema you want; a migration that drops everything is written by hand",
        ));
    }
    let run = tokio::spawn(async move { service.autogenerate(&db, &req.name, &req.schema_sql, &req.schemas).await });
    Ok(ok(run.await.map_err(ApiError::internal)??))
}
