//! The catalog: the backups in the location (their manifests are the truth) and their mirror
//! in `dbagent.backups`, which makes them visible to SQL and to other agents.
//!
//! The mirror is written best-effort after each change (a backup that was taken is not a
//! failure because the mirror could not be updated; the failure is logged) and rebuilt from
//! the manifests alone by [`rebuild_catalog`], e.g. after the database was restored or lost.
//! All agents writing one database's mirror are expected to share one backup location.

use serde::Serialize;
use crate::db::PgConfig;

use super::database::connect;
use super::location::{self, remove_backup_dir};
use super::create::BackupKind;
use super::manifest::Manifest;
use super::{Error, Settings};

const CREATE_TABLE: &str = "
CREATE SCHEMA IF NOT EXISTS dbagent;
CREATE TABLE IF NOT EXISTS dbagent.backups (
    id            text PRIMARY KEY,
    name          text,
    kind          text NOT NULL,
    format        text NOT NULL,
    database      text NOT NULL,
    created_at    timestamptz NOT NULL,
    duration_ms   bigint NOT NULL,
    raw_bytes     bigint NOT NULL,
    stored_bytes  bigint NOT NULL,
    compression   text NOT NULL,
    encrypted     boolean NOT NULL,
    wal_lsn       pg_lsn,
    keep          boolean NOT NULL DEFAULT false,
    pinned_by     text,
    scheduled_for timestamptz,
    verified_at   timestamptz,
    verify_level  smallint,
    verify_ok     boolean,
    manifest      jsonb NOT NULL
);
COMMENT ON TABLE dbagent.backups IS
    'Mirror of the backup manifests in the backup location, maintained by dbagent; rebuilt from them by rebuild_catalog.';
";

/// Every column from the manifest JSON (one text parameter), so the mirror can never disagree
/// with the manifest it was written from.
const UPSERT: &str = "
INSERT INTO dbagent.backups AS b (id, name, kind, format, database, created_at, duration_ms,
    raw_bytes, stored_bytes, compression, encrypted, wal_lsn, keep, pinned_by, scheduled_for,
    verified_at, verify_level, verify_ok, manifest)
SELECT m->>'id', m->>'name', m->>'kind', m->>'format', m->>'database',
       (m->>'created_at')::timestamptz, (m->>'duration_ms')::bigint, (m->>'raw_bytes')::bigint,
       (m->>'stored_bytes')::bigint, m->>'compression', jsonb_typeof(m->'encryption') = 'object',
       (m->>'wal_lsn')::pg_lsn, (m->>'keep')::boolean, m->>'pinned_by',
       (m->>'scheduled_for')::timestamptz, (m->'verification'->>'at')::timestamptz,
       (m->'verification'->>'level')::smallint, (m->'verification'->>'ok')::boolean, m
  FROM (SELECT $1::text::jsonb AS m) AS given
ON CONFLICT (id) DO UPDATE SET
    name = EXCLUDED.name, kind = EXCLUDED.kind, format = EXCLUDED.format,
    database = EXCLUDED.database, created_at = EXCLUDED.created_at,
    duration_ms = EXCLUDED.duration_ms, raw_bytes = EXCLUDED.raw_bytes,
    stored_bytes = EXCLUDED.stored_bytes, compression = EXCLUDED.compression,
    encrypted = EXCLUDED.encrypted, wal_lsn = EXCLUDED.wal_lsn, keep = EXCLUDED.keep,
    pinned_by = EXCLUDED.pinned_by, scheduled_for = EXCLUDED.scheduled_for,
    verified_at = EXCLUDED.verified_at, verify_level = EXCLUDED.verify_level,
    verify_ok = EXCLUDED.verify_ok, manifest = EXCLUDED.manifest";

/// The complete backups in the location, newest first. Incomplete ones left by crashed jobs
/// are removed on the way.
pub fn list(settings: &Settings) -> Result<Vec<Manifest>, Error> {
    let root = location::root(settings)?;
    let mut found: Vec<Manifest> = location::scan(&root)?.into_iter().map(|(_, m)| m).collect();
    found.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
    Ok(found)
}

/// One backup by id.
pub fn get(settings: &Settings, id: &str) -> Result<Manifest, Error> {
    if !location::is_id(id) {
        return Err(Error::NotFound { id: id.to_owned() });
    }
    let root = location::root(settings)?;
    location::resolve(&root, id).map(|(_, manifest)| manifest)
}

/// Whether `m` is a way back for its database: a whole-database backup (full, or a base
/// backup of the cluster) whose last verification, if any, passed.
fn is_good(m: &Manifest) -> bool {
    let whole = match m.kind {
        BackupKind::Full => m.tables_filter.is_none(),
        BackupKind::Base => true,
        BackupKind::SchemaOnly | BackupKind::DataOnly => false,
    };
    whole && m.verification.as_ref().is_none_or(|v| v.ok)
}

/// The newest good backup (see [`is_good`]) of `database` in `newest_first`.
pub(crate) fn newest_good<'a>(newest_first: &'a [Manifest], database: &str) -> Option<&'a Manifest> {
    newest_first.iter().find(|m| m.database == database && is_good(m))
}

/// Deletes a backup (its files, then its mirror row). A backup marked `keep` or pinned, and
/// the newest good backup of its database (the last way back), are refused unless `force`.
pub async fn delete(db: &PgConfig, settings: &Settings, id: &str, force: bool) -> Result<Manifest, Error> {
    delete_with(db, settings, id, force, true).await
}

/// [`delete`]; with `remote_required` false (retention), a remote copy that cannot be deleted
/// now is logged and left for the next prune of the bucket, and the local copy goes anyway.
pub(crate) async fn delete_with(db: &PgConfig, settings: &Settings, id: &str, force: bool, remote_required: bool) -> Result<Manifest, Error> {
    if !location::is_id(id) {
        return Err(Error::NotFound { id: id.to_owned() });
    }
    let root = location::root(settings)?;
    let (dir, manifest) = match location::resolve(&root, id) {
        Ok((dir, manifest)) => (Some(dir), manifest),
        // Only in the bucket: the same rules, then the remote copy goes.
        Err(Error::NotFound { .. }) if settings.remote.is_some() => match remote_manifest(settings, id).await? {
            Some(manifest) => (None, manifest),
            None => return Err(Error::NotFound { id: id.to_owned() }),
        },
        Err(err) => return Err(err),
    };
    if let Some(reason) = manifest.pin_reason()
        && !force
    {
        return Err(Error::Pinned { id: id.to_owned(), reason });
    }
    if !force && newest_good(&list(settings)?, &manifest.database).is_some_and(|m| m.id == manifest.id) {
        return Err(Error::ForceRequired {
            reason: format!(
                "backup {id} is the newest good backup of database {}: without it there is no recent way back; \
                 delete it with force (?force=true, `--force`) if you really mean to; nothing was deleted",
                manifest.database
            ),
        });
    }
    // The remote copy first: when the store cannot be reached, nothing is deleted and the
    // caller is told, rather than leaving a copy no retention would ever remove.
    if let Some(remote) = &settings.remote {
        match remote.delete_backup(id).await {
            Ok(_) => {}
            Err(err @ (Error::Remote { .. } | Error::RemoteIo { .. })) if !remote_required && dir.is_some() => {
                tracing::warn!(backup_id = %id, error = %crate::db::error_chain(&err), "could not delete the remote copy; the next prune retries");
            }
            Err(err) => return Err(err),
        }
    }
    if let Some(dir) = dir {
        remove_backup_dir(&dir);
    }
    tracing::info!(backup_id = %id, forced = force, "backup deleted");
    unmirror(db, id).await;
    Ok(manifest)
}

async fn remote_manifest(settings: &Settings, id: &str) -> Result<Option<Manifest>, Error> {
    match &settings.remote {
        Some(remote) => Ok(remote.manifest(id).await?.map(|(m, _)| m)),
        None => Ok(None),
    }
}

/// Pins a backup (`Some(by)`: retention never deletes it until it is unpinned) or unpins it
/// (`None`), e.g. for the duration of a migration.
pub async fn pin(db: &PgConfig, settings: &Settings, id: &str, pinned_by: Option<String>) -> Result<Manifest, Error> {
    if !location::is_id(id) {
        return Err(Error::NotFound { id: id.to_owned() });
    }
    let root = location::root(settings)?;
    let (dir, mut manifest) = location::resolve(&root, id)?;
    manifest.pinned_by = pinned_by;
    manifest.write(&dir)?;
    mirror(db, &manifest).await;
    Ok(manifest)
}

/// What [`rebuild_catalog`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    /// Rows written from manifests (new or refreshed).
    pub written: usize,
    /// Rows removed because no manifest backs them any more.
    pub removed: usize,
}

/// Rewrites `dbagent.backups` from the manifests in the location, in one transaction: every
/// manifest gets its row, rows without a manifest go.
pub async fn rebuild_catalog(db: &PgConfig, settings: &Settings) -> Result<RebuildReport, Error> {
    rebuild_from(db, &list(settings)?).await
}

/// Rewrites `dbagent.backups` to hold exactly `manifests`, in one transaction.
pub(crate) async fn rebuild_from(db: &PgConfig, manifests: &[Manifest]) -> Result<RebuildReport, Error> {
    let mut client = connect(db, crate::db::Purpose::Backup).await?;
    ensure_table(&client).await?;
    let tx = client.transaction().await.map_err(Error::db("start the catalog rebuild"))?;
    let ids: Vec<&str> = manifests.iter().map(|m| m.id.as_str()).collect();
    let removed = tx
        .execute("DELETE FROM dbagent.backups WHERE NOT (id = ANY($1))", &[&ids])
        .await
        .map_err(Error::db("remove catalog rows without a manifest"))?;
    for manifest in manifests {
        let json = serde_json::to_string(manifest).expect("a manifest always serializes");
        tx.execute(UPSERT, &[&json]).await.map_err(Error::db("write a catalog row"))?;
    }
    tx.commit().await.map_err(Error::db("commit the catalog rebuild"))?;
    Ok(RebuildReport { written: manifests.len(), removed: removed as usize })
}

/// Whether the mirror has a backup taken for the cron tick `tick` (RFC 3339). A missing table
/// means no.
pub(crate) async fn has_scheduled(client: &tokio_postgres::Client, tick: &str) -> Result<bool, Error> {
    let found = client
        .query_one(
            "SELECT to_regclass('dbagent.backups') IS NOT NULL",
            &[],
        )
        .await
        .map_err(Error::db("look for the backup catalog"))?;
    if !found.get::<_, bool>(0) {
        return Ok(false);
    }
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM dbagent.backups WHERE scheduled_for = $1::text::timestamptz)",
            &[&tick],
        )
        .await
        .map_err(Error::db("look for the scheduled backup in the catalog"))?;
    Ok(row.get(0))
}

/// Writes (or refreshes) `manifest`'s mirror row; failures are logged, not returned.
pub(crate) async fn mirror(db: &PgConfig, manifest: &Manifest) {
    let json = serde_json::to_string(manifest).expect("a manifest always serializes");
    let written = async {
        let client = connect(db, crate::db::Purpose::Backup).await?;
        ensure_table(&client).await?;
        client.execute(UPSERT, &[&json]).await.map_err(Error::db("write a catalog row"))
    };
    if let Err(err) = written.await {
        tracing::warn!(backup_id = %manifest.id, error = %err, "could not update the backup catalog; rebuild_catalog will repair it");
    }
}

/// Removes `id`'s mirror row; failures are logged, not returned.
pub(crate) async fn unmirror(db: &PgConfig, id: &str) {
    let removed = async {
        let client = connect(db, crate::db::Purpose::Backup).await?;
        client
            .execute("DELETE FROM dbagent.backups WHERE id = $1", &[&id])
            .await
            .map_err(Error::db("remove a catalog row"))
    };
    match removed.await {
        Ok(_) => {}
        // No catalog table: nothing to remove.
        Err(Error::Database { source, .. })
            if source.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {}
        Err(err) => tracing::warn!(backup_id = %id, error = %err, "could not update the backup catalog; rebuild_catalog will repair it"),
    }
}

/// Creates the schema and table when missing. Two agents creating them at once can collide
/// on the catalog's unique indexes; the loser tries again and finds them.
async fn ensure_table(client: &tokio_postgres::Client) -> Result<(), Error> {
    for attempt in 0..3 {
        match client.batch_execute(CREATE_TABLE).await {
            Ok(()) => return Ok(()),
            Err(err)
                if attempt < 2
                    && matches!(
                        err.code(),
                        Some(c) if *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION
                            || *c == tokio_postgres::error::SqlState::DUPLICATE_TABLE
                            || *c == tokio_postgres::error::SqlState::DUPLICATE_SCHEMA
                    ) => {}
            Err(err) => return Err(Error::db("create the backup catalog table")(err)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_good_backup_is_the_newest_whole_one_not_known_to_be_bad() {
        let base: Manifest = serde_json::from_value(serde_json::json!({
            "format_version": 1, "id": "x", "name": null, "kind": "full", "format": "custom", "database": "app",
            "encoding": "UTF8", "lc_collate": "C", "lc_ctype": "C", "server_version": "15", "server_version_num": 150000,
            "pg_dump_version": "15", "pg_dump_major": 15, "created_at": "2026-01-01T00:00:00Z", "duration_ms": 1,
            "raw_bytes": 1, "stored_bytes": 1, "compression": "none", "encryption": null, "files": [], "tables": [],
            "tables_filter": null, "wal_lsn": null, "keep": false, "pinned_by": null, "scheduled_for": null,
            "verification": null
        }))
        .unwrap();
        let verified = |ok| super::super::Verification { at: base.created_at, level: 1, ok, error: None };
        let with = |id: &str, db: &str, kind: BackupKind, ok: Option<bool>, filter: bool| {
            let mut m = base.clone();
            m.id = id.into();
            m.database = db.into();
            m.kind = kind;
            m.tables_filter = filter.then(|| vec!["t".to_owned()]);
            m.verification = ok.map(verified);
            m
        };
        let list = vec![
            with("6", "app", BackupKind::SchemaOnly, None, false),
            with("5", "app", BackupKind::Full, None, true),
            with("4", "app", BackupKind::Full, Some(false), false),
            with("3", "other", BackupKind::Full, None, false),
            with("2", "app", BackupKind::Full, None, false),
            with("1", "app", BackupKind::Full, Some(true), false),
        ];
        assert_eq!(newest_good(&list, "app").map(|m| m.id.as_str()), Some("2"));
        assert_eq!(newest_good(&list, "other").map(|m| m.id.as_str()), Some("3"));
        assert_eq!(newest_good(&list, "none"), None);
    }
}
