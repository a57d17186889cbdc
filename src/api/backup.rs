//! Backups over HTTP: `POST /backup` (seed 000's `{backup_name, compress}` plus kind, format,
//! keep, tables), `GET /backups`, `GET /backups/{id}`, `GET /backups/{id}/download`,
//! `DELETE /backups/{id}`, `POST /backups/{id}/verify`, `POST /backups/prune`, `POST /restore`.
//! Long jobs run in their own task: a client that hangs up does not cut a backup or a restore
//! in half.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::answer::{Succeeded, ok};
use super::body::{JsonBody, OptionalJsonBody, Params, PathParam};
use super::error::ApiError;
use crate::backup::{self, BackupKind, Compression, CreateRequest, Format, RestoreRequest, VerifyLevel};

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// Seed 000's name for it; `name` and seed 004's `custom_name` work too.
    #[serde(default, alias = "name", alias = "custom_name")]
    pub backup_name: Option<String>,
    /// Seed 004's word for `kind`: `full`, `schema_only`, `data_only` (or `schema`, `data`),
    /// `base`; `incremental` is answered with what dbagent does instead.
    #[serde(default)]
    pub backup_type: Option<String>,
    /// Seed 000: `false` stores it uncompressed. Default: `backup.compression`.
    #[serde(default)]
    pub compress: Option<bool>,
    #[serde(default)]
    pub kind: BackupKind,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub keep: bool,
    #[serde(default)]
    pub tables: Option<Vec<String>>,
}

/// Seed 000's `backup_file`: the backup's directory (its files and `manifest.json`), an
/// absolute path that `POST /restore` accepts back as `backup_file`.
pub(super) fn backup_file(state: &AppState, id: &str) -> std::path::PathBuf {
    std::path::absolute(&state.backup.location).unwrap_or_else(|_| state.backup.location.clone()).join(id)
}

fn joined<T>(result: Result<Result<T, backup::Error>, tokio::task::JoinError>) -> Result<T, ApiError> {
    result.map_err(ApiError::internal)?.map_err(ApiError::from)
}

/// `POST /backup`'s answer: seed 000's fields beside the manifest.
#[derive(Serialize, JsonSchema)]
pub struct BackupCreated {
    success: bool,
    backup_id: String,
    /// The backup's directory (see [`backup_file`]).
    backup_file: std::path::PathBuf,
    size_mb: f64,
    /// Seconds.
    duration: f64,
    manifest: backup::Manifest,
}

#[derive(Serialize, JsonSchema)]
pub struct BackupList {
    success: bool,
    backups: Vec<backup::Manifest>,
    /// With `?remote=true`: the backups in the remote store (`backup.remote`), newest first,
    /// each saying whether the location has it too.
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<Vec<backup::remote::RemoteBackup>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Also list the remote store's backups (400 `remote_not_configured` without
    /// `backup.remote`).
    #[serde(default)]
    pub remote: bool,
}

#[derive(Serialize, JsonSchema)]
pub struct Deleted {
    success: bool,
    deleted: String,
}

#[derive(Serialize, JsonSchema)]
pub struct Pruned {
    success: bool,
    dry_run: bool,
    decisions: Vec<backup::Decision>,
}

/// `POST /restore`'s answer: a restore's report (with seed 000's `backup_file`), or a
/// point-in-time recovery's.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Restored {
    Restore {
        success: bool,
        #[serde(flatten)]
        report: backup::RestoreReport,
        backup_file: std::path::PathBuf,
    },
    PointInTime(Succeeded<backup::PitrReport>),
}

/// Seed 004's `backup_type`, parsed into a kind (or a 400 naming dbagent's equivalent).
fn kind_of(backup_type: &str) -> Result<BackupKind, ApiError> {
    match backup_type.trim().to_ascii_lowercase().replace('-', "_").as_str() {
        "full" => Ok(BackupKind::Full),
        "schema" | "schema_only" => Ok(BackupKind::SchemaOnly),
        "data" | "data_only" => Ok(BackupKind::DataOnly),
        "base" => Ok(BackupKind::Base),
        "incremental" | "differential" => Err(ApiError::invalid_request(
            "backup_type incremental: dbagent's incremental backups are continuous WAL archiving (backup.pitr: true) on top of base backups (backup_type base), restored with to_time",
        )),
        other => Err(ApiError::invalid_request(format!("backup_type {other:?}: use full, schema_only, data_only or base"))),
    }
}

pub async fn create(
    State(state): State<AppState>,
    note: Option<axum::Extension<super::auth::Note>>,
    JsonBody(mut req): JsonBody<BackupRequest>,
) -> Result<Json<BackupCreated>, ApiError> {
    if let Some(backup_type) = &req.backup_type {
        let kind = kind_of(backup_type)?;
        if req.kind != BackupKind::default() && req.kind != kind {
            return Err(ApiError::invalid_request("kind and backup_type disagree; give one of them"));
        }
        req.kind = kind;
    }
    let mut settings = (*state.backup).clone();
    if req.compress == Some(false) {
        settings.compression = Compression::None;
    }
    let db = state.executor.pools.admin_config();
    let request = CreateRequest { name: req.backup_name, kind: req.kind, format: req.format, keep: req.keep, tables: req.tables, pinned_by: None };
    let manifest = joined(tokio::spawn(async move { backup::create(&db, &settings, &request, &|_| {}).await }).await)?;
    if let Some(axum::Extension(note)) = &note {
        note.with(|n| n.related = Some(format!("backup {}", manifest.id)));
    }
    let dir = backup_file(&state, &manifest.id);
    Ok(Json(BackupCreated {
        success: true,
        backup_id: manifest.id.clone(),
        backup_file: dir,
        size_mb: manifest.stored_bytes as f64 / 1_048_576.0,
        duration: manifest.duration_ms as f64 / 1000.0,
        manifest,
    }))
}

pub async fn list(State(state): State<AppState>, Params(q): Params<ListQuery>) -> Result<Json<BackupList>, ApiError> {
    let remote = match q.remote {
        true => Some(backup::remote::list_backups(&state.backup).await?),
        false => None,
    };
    Ok(Json(BackupList { success: true, backups: backup::list(&state.backup)?, remote }))
}

pub async fn get(State(state): State<AppState>, PathParam(id): PathParam) -> Result<Json<Succeeded<backup::Manifest>>, ApiError> {
    Ok(ok(backup::get(&state.backup, &id)?))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DownloadQuery {
    /// For a directory-format backup: which stored file.
    pub file: Option<String>,
}

/// The stored bytes as they are (compressed, encrypted), streamed from disk.
pub async fn download(State(state): State<AppState>, PathParam(id): PathParam, Params(q): Params<DownloadQuery>) -> Result<Response, ApiError> {
    let manifest = backup::get(&state.backup, &id)?;
    let entry = match (&q.file, manifest.files.as_slice()) {
        (None, [only]) => only,
        (None, _) => return Err(ApiError::invalid_request("this backup has several files; pass ?file=<name> (see its manifest)")),
        (Some(name), files) => files
            .iter()
            .find(|f| &f.name == name || &f.stored == name)
            .ok_or_else(|| ApiError::not_found(format!("backup {id} has no file {name}")))?,
    };
    let path = std::path::absolute(&state.backup.location).unwrap_or_else(|_| state.backup.location.clone()).join(&manifest.id).join(&entry.stored);
    let file = tokio::fs::File::open(&path).await.map_err(|e| ApiError::not_found(format!("cannot open the backup file: {e}")))?;
    let stream = tokio_util::io::ReaderStream::new(file);
    let name = format!("{}-{}", manifest.id, entry.stored.replace('/', "_"));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, entry.stored_bytes)
        .header(header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}\""))
        .header("x-sha256", entry.sha256_stored.clone())
        .body(Body::from_stream(stream))
        .map_err(ApiError::internal)
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct DeleteQuery {
    /// Delete a backup marked keep or pinned, or the newest good backup of its database
    /// (409 `force_required` / `conflict` otherwise).
    #[serde(default)]
    pub force: bool,
}

pub async fn delete(State(state): State<AppState>, PathParam(id): PathParam, Params(q): Params<DeleteQuery>) -> Result<Json<Deleted>, ApiError> {
    let db = state.executor.pools.admin_config();
    let deleted = backup::delete(&db, &state.backup, &id, q.force).await?;
    Ok(Json(Deleted { success: true, deleted: deleted.id }))
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// 1: decrypt, decompress and check every checksum (default); 2: also restore into a
    /// scratch database and compare per-table row counts.
    #[serde(default)]
    pub level: Option<u8>,
}

pub async fn verify(State(state): State<AppState>, PathParam(id): PathParam, OptionalJsonBody(body): OptionalJsonBody<VerifyRequest>) -> Result<Json<Succeeded<backup::VerifyReport>>, ApiError> {
    let level = match body.level.unwrap_or(1) {
        1 => VerifyLevel::Checksums,
        2 => VerifyLevel::TrialRestore,
        other => return Err(ApiError::invalid_request(format!("level {other}: use 1 (checksums) or 2 (trial restore)"))),
    };
    let (settings, db) = ((*state.backup).clone(), state.executor.pools.admin_config());
    let report = joined(tokio::spawn(async move { backup::verify(&db, &settings, &id, level, &|_| {}).await }).await)?;
    Ok(ok(report))
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    #[serde(default)]
    pub dry_run: bool,
}

pub async fn prune(State(state): State<AppState>, JsonBody(req): JsonBody<PruneRequest>) -> Result<Json<Pruned>, ApiError> {
    let db = state.executor.pools.admin_config();
    let decisions = backup::prune(&db, &state.backup, req.dry_run).await?;
    Ok(Json(Pruned { success: true, dry_run: req.dry_run, decisions }))
}

/// `POST /restore`: seed 000's `{backup_file, drop_existing}`, or `backup_id`, plus
/// `target_database`, `tables`, `jobs`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreBody {
    #[serde(default, alias = "backup_file")]
    pub backup_id: String,
    #[serde(default)]
    pub target_database: Option<String>,
    #[serde(default)]
    pub drop_existing: bool,
    #[serde(default)]
    pub tables: Option<Vec<String>>,
    #[serde(default)]
    pub jobs: Option<u32>,
    /// Point-in-time recovery: a new cluster recovered to this time (RFC 3339) from a base
    /// backup (`backup_id`, or the newest complete before it) and the archived WAL.
    #[serde(default)]
    pub to_time: Option<chrono::DateTime<chrono::Utc>>,
    /// The name of the database being replaced (`"confirm": "other"`): required with
    /// `drop_existing` when the target is not the database the backup was taken from (409
    /// `confirmation_required` otherwise). Seed 004's `true` restores over the configured
    /// database (as `drop_existing`, swapped in by rename once complete); `false` with a
    /// restore that would replace one is refused. A name implies `drop_existing`.
    #[serde(default)]
    pub confirm: Option<Confirm>,
    /// Allow replacing `postgres`, a template database, or the database dbagent keeps its own
    /// schema in (with a backup of another database): 409 `force_required` otherwise.
    /// `template0` and `template1` are always refused.
    #[serde(default)]
    pub force: bool,
    /// Drop the replaced database at once. By default it is kept (renamed
    /// `<db>_replaced_<YYYYMMDDHHMMSS>`, listed by `GET /restores`, swapped back by
    /// `POST /restores/{id}/undo`) for `backup.keep_replaced_hours`.
    #[serde(default)]
    pub drop_replaced: bool,
}

/// `confirm`: seed 004's `true`/`false`, or the name of the database being replaced.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Confirm {
    Yes(bool),
    Name(String),
}

/// `GET /backups/status`: the WAL archive, the recoverable window and any gap.
pub async fn status(State(state): State<AppState>) -> Result<Json<Succeeded<backup::PitrStatus>>, ApiError> {
    let mut status = backup::status(&state.backup)?;
    status.wal = state.wal_watch.freshness(&state.backup);
    status.remote = state.backup.remote.as_ref().map(|r| r.status());
    Ok(ok(status))
}

pub async fn restore(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::security::Caller>>,
    note: Option<axum::Extension<super::auth::Note>>,
    JsonBody(req): JsonBody<RestoreBody>,
) -> Result<Json<Restored>, ApiError> {
    if let Some(axum::Extension(note)) = &note {
        let what = if req.backup_id.is_empty() { "point in time".to_owned() } else { req.backup_id.clone() };
        note.with(|n| n.related = Some(format!("backup {what}")));
    }
    if let Some(to_time) = req.to_time {
        if req.target_database.is_some() || req.drop_existing || req.tables.is_some() || req.jobs.is_some() {
            return Err(ApiError::invalid_request(
                "to_time builds a new cluster; it takes no target_database, drop_existing, tables or jobs",
            ));
        }
        let backup_id = (!req.backup_id.is_empty()).then_some(req.backup_id);
        let request = backup::PitrRequest::new(&state.config, Some(to_time), backup_id, None)?;
        let settings = (*state.backup).clone();
        let report = joined(tokio::spawn(async move { backup::recover_to(&settings, &request, &|_| {}).await }).await)?;
        return Ok(Json(Restored::PointInTime(Succeeded::new(report))));
    }
    if req.backup_id.is_empty() {
        return Err(ApiError::invalid_request("give backup_id (or backup_file), or to_time"));
    }
    let mut confirm_name = None;
    let drop_existing = match req.confirm {
        None => req.drop_existing,
        Some(Confirm::Yes(true)) => true,
        Some(Confirm::Name(name)) => {
            confirm_name = Some(name);
            true
        }
        Some(Confirm::Yes(false)) if req.drop_existing => {
            return Err(ApiError::invalid_request("drop_existing replaces the database: it needs confirm: true"));
        }
        Some(Confirm::Yes(false)) if req.target_database.is_none() => {
            return Err(ApiError::invalid_request(
                "confirm: false — nothing restored. confirm: true replaces the database; leave confirm out to restore into a new database beside it",
            ));
        }
        Some(Confirm::Yes(false)) => false,
    };
    let request = RestoreRequest {
        backup_id: req.backup_id,
        target_database: req.target_database,
        drop_existing,
        tables: req.tables,
        jobs: req.jobs,
        confirm: confirm_name,
        force: req.force,
        drop_replaced: req.drop_replaced,
        by: Some(super::alerts::who(caller.as_ref())),
    };
    let (settings, db) = ((*state.backup).clone(), state.executor.pools.admin_config());
    let report = joined(tokio::spawn(async move { backup::restore(&db, &settings, &request, &|_| {}).await }).await)?;
    let backup_file = backup_file(&state, &report.backup_id);
    Ok(Json(Restored::Restore { success: true, report, backup_file }))
}

/// Seed 004's `POST /api/database/restore`: `confirm: true` is required, since there a
/// restore replaces the database.
pub async fn restore_confirmed(
    state: State<AppState>,
    caller: Option<axum::Extension<crate::security::Caller>>,
    note: Option<axum::Extension<super::auth::Note>>,
    JsonBody(req): JsonBody<RestoreBody>,
) -> Result<Json<Restored>, ApiError> {
    let confirmed = matches!(req.confirm, Some(Confirm::Yes(true) | Confirm::Name(_)));
    if !confirmed && req.to_time.is_none() && req.target_database.is_none() {
        return Err(ApiError::invalid_request(
            "this restore replaces the database: send confirm: true (or POST /restore without confirm to restore into a new database)",
        ));
    }
    restore(state, caller, note, JsonBody(req)).await
}

/// `GET /restores`: the databases restores replaced, newest first.
#[derive(Serialize, JsonSchema)]
pub struct ReplacedList {
    success: bool,
    /// Kept ones (`state: kept`, `exists: true`) can be swapped back until `expires_at`.
    replaced: Vec<backup::Replaced>,
    /// `backup.keep_replaced_hours`.
    keep_replaced_hours: u32,
}

pub async fn restores(State(state): State<AppState>) -> Result<Json<ReplacedList>, ApiError> {
    let db = state.executor.pools.admin_config();
    let replaced = backup::list_replaced(&db).await?;
    Ok(Json(ReplacedList { success: true, replaced, keep_replaced_hours: state.backup.keep_replaced_hours }))
}

/// `POST /restores/{id}/undo`: swaps the database kept as `id` back in; the database it
/// replaced (the restored copy) is kept as replaced in turn.
pub async fn undo(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::security::Caller>>,
    note: Option<axum::Extension<super::auth::Note>>,
    PathParam(id): PathParam,
) -> Result<Json<Succeeded<backup::Undone>>, ApiError> {
    if let Some(axum::Extension(note)) = &note {
        note.with(|n| n.related = Some(format!("replaced database {id}")));
    }
    let by = super::alerts::who(caller.as_ref());
    let (settings, db) = ((*state.backup).clone(), state.executor.pools.admin_config());
    let undone = joined(tokio::spawn(async move { backup::undo(&db, &settings, &id, &by).await }).await)?;
    Ok(ok(undone))
}
