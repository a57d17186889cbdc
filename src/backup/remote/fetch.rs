//! Reading the bucket back: the remote catalogue, a backup downloaded into the location when
//! the local copy is gone, the WAL a recovery needs, and the catalogue rebuilt from the bucket
//! alone.

use std::path::Path;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::super::key::encode_hex;
use super::super::location::{self, NewBackup};
use super::super::manifest::{MANIFEST, Manifest};
use super::super::wal::{self, ARCHIVE_DIR, WalFile};
use super::super::{Error, Settings};
use super::Remote;

/// A backup in the bucket, and whether the location also has it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RemoteBackup {
    #[serde(flatten)]
    pub manifest: Manifest,
    /// The location holds a complete copy too.
    pub local: bool,
}

fn remote_of(settings: &Settings) -> Result<&Arc<Remote>, Error> {
    settings.remote.as_ref().ok_or(Error::RemoteNotConfigured)
}

/// The backups in the bucket (their manifests), newest first.
pub async fn list_backups(settings: &Settings) -> Result<Vec<RemoteBackup>, Error> {
    let remote = remote_of(settings)?;
    let ids: Vec<String> = remote
        .objects("")
        .await?
        .into_keys()
        .filter_map(|k| k.strip_suffix(&format!("/{MANIFEST}")).filter(|id| location::is_id(id)).map(str::to_owned))
        .collect();
    let root = location::root(settings)?;
    let reads: Vec<_> = ids.into_iter().map(|id| async move { remote.manifest(&id).await }).collect();
    let mut found: Vec<RemoteBackup> = futures_util::stream::iter(reads)
        .buffer_unordered(remote.concurrency)
        .try_filter_map(|m| async move { Ok(m.map(|(manifest, _)| manifest)) })
        .map_ok(|manifest| {
            let local = root.join(&manifest.id).join(MANIFEST).is_file();
            RemoteBackup { manifest, local }
        })
        .try_collect()
        .await?;
    found.sort_by(|a, b| b.manifest.created_at.cmp(&a.manifest.created_at).then_with(|| b.manifest.id.cmp(&a.manifest.id)));
    Ok(found)
}

/// Makes sure the location holds backup `given` when it names one by id: a backup only in the
/// bucket is downloaded first (its files checked against the manifest's SHA-256 of the stored
/// bytes, the manifest written last). `Ok(true)` when it downloaded. Without `backup.remote`,
/// or for a backup the location has, nothing happens.
pub async fn fetch_backup(settings: &Settings, given: &str) -> Result<bool, Error> {
    let Some(remote) = settings.remote.as_ref() else { return Ok(false) };
    if !location::is_id(given) {
        return Ok(false);
    }
    let root = location::root(settings)?;
    if Manifest::read(&root.join(given))?.is_some() {
        return Ok(false);
    }
    let Some((manifest, bytes)) = remote.manifest(given).await? else { return Ok(false) };
    if manifest.id != given {
        return Err(Error::VerificationFailed {
            file: format!("{given}/{MANIFEST}"),
            reason: format!("the remote manifest describes backup {}, not {given}", manifest.id),
        });
    }
    let started = std::time::Instant::now();
    let made = NewBackup::create(&root, given)?;
    let dir = made.dir.clone();
    // Collected first: a stream over a closure would make this future's type depend on the
    // closure's lifetimes, which tokio::spawn cannot take (rust-lang/rust#102211).
    let downloads: Vec<_> = manifest
        .files
        .iter()
        .map(|entry| {
            let dir = dir.clone();
            async move {
                let path = Manifest::stored_path(&dir, entry)?;
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
                }
                let sha256 = download(remote, &format!("{given}/{}", entry.stored), &path).await?;
                if sha256 != entry.sha256_stored {
                    return Err(Error::VerificationFailed {
                        file: entry.stored.clone(),
                        reason: "the copy downloaded from the remote store differs from the SHA-256 its manifest records".into(),
                    });
                }
                Ok(())
            }
        })
        .collect();
    futures_util::stream::iter(downloads).buffer_unordered(remote.concurrency).try_collect::<Vec<()>>().await?;
    write_atomically(&dir.join(MANIFEST), &bytes)?;
    made.commit();
    tracing::info!(backup_id = %given, url = %remote.url, ms = started.elapsed().as_millis() as u64, "downloaded the backup from the remote store");
    Ok(true)
}

/// Downloads the remote WAL files the local archive lacks, from segment `from` on (every
/// timeline's; history files always), so that a recovery finds them locally. Returns how many
/// files it downloaded.
pub async fn fetch_wal_from(settings: &Settings, from: Option<(u64, u64)>) -> Result<usize, Error> {
    let Some(remote) = settings.remote.as_ref() else { return Ok(0) };
    let root = location::root(settings)?;
    let archive = root.join(ARCHIVE_DIR);
    std::fs::create_dir_all(&archive).map_err(Error::io("create", &archive))?;
    let local = wal::list(&archive)?;
    let objects = remote.objects(&format!("{ARCHIVE_DIR}/")).await?;
    let wanted: Vec<String> = objects
        .keys()
        .filter_map(|k| k.strip_prefix(&format!("{ARCHIVE_DIR}/"))?.strip_suffix(".json"))
        .filter(|name| !local.contains_key(*name) && objects.contains_key(&format!("{ARCHIVE_DIR}/{name}.zst")))
        .filter(|name| match (WalFile::parse(name), from) {
            (Some(WalFile::Segment { log, seg, .. }), Some((first, size))) => wal::segment_number(log, seg, size) >= first,
            (Some(_), _) => true,
            (None, _) => false,
        })
        .map(str::to_owned)
        .collect();
    let count = wanted.len();
    let downloads: Vec<_> = wanted
        .into_iter()
        .map(|name| {
            let archive = archive.clone();
            async move {
                // Data first, sidecar last: a file is archived exactly when its sidecar exists.
                let data = archive.join(format!("{name}.zst"));
                let tmp = archive.join(format!(".{name}.zst.remote-tmp"));
                download(remote, &format!("{ARCHIVE_DIR}/{name}.zst"), &tmp).await?;
                std::fs::rename(&tmp, &data).map_err(Error::io("write", &data))?;
                let sidecar = archive.join(format!("{name}.json"));
                let stmp = archive.join(format!(".{name}.json.remote-tmp"));
                download(remote, &format!("{ARCHIVE_DIR}/{name}.json"), &stmp).await?;
                std::fs::rename(&stmp, &sidecar).map_err(Error::io("write", &sidecar))
            }
        })
        .collect();
    futures_util::stream::iter(downloads).buffer_unordered(remote.concurrency).try_collect::<Vec<()>>().await?;
    if count > 0 {
        tracing::info!(files = count, url = %remote.url, "downloaded archived WAL from the remote store");
    }
    Ok(count)
}

/// Before a point-in-time recovery: the base backup it will start from (`backup_id`, or the
/// newest complete by `to_time` among the local and remote ones) is downloaded when only the
/// bucket has it, and so is the archived WAL after its start that the location lacks.
pub async fn prepare_recovery(settings: &Settings, backup_id: Option<&str>, to_time: Option<chrono::DateTime<chrono::Utc>>) -> Result<(), Error> {
    if settings.remote.is_none() {
        return Ok(());
    }
    let root = location::root(settings)?;
    let mut bases: Vec<Manifest> = super::super::window::base_backups(&root)?.into_iter().map(|(m, _)| m).collect();
    // A store that cannot be reached does not stop a recovery the location can serve alone;
    // when it cannot, the recovery's own checks say what is missing.
    let listed = match list_backups(settings).await {
        Ok(listed) => listed,
        Err(err @ (Error::Remote { .. } | Error::RemoteIo { .. })) => {
            tracing::warn!(error = %crate::db::error_chain(&err), "the remote store cannot be read; recovering from the location alone");
            return Ok(());
        }
        Err(err) => return Err(err),
    };
    for remote in listed {
        if remote.manifest.base.is_some() && !bases.iter().any(|m| m.id == remote.manifest.id) {
            bases.push(remote.manifest);
        }
    }
    let target = to_time.unwrap_or_else(chrono::Utc::now);
    let chosen = match backup_id {
        Some(id) => bases.into_iter().find(|m| m.id == id),
        None => bases.into_iter().filter(|m| m.base.as_ref().is_some_and(|b| b.finished_at <= target)).max_by_key(|m| m.base.as_ref().map(|b| b.finished_at)),
    };
    // Nothing to start from: the recovery's own checks say why.
    let Some(chosen) = chosen else { return Ok(()) };
    fetch_backup(settings, &chosen.id).await?;
    let from = chosen.base.as_ref().and_then(|b| match WalFile::parse(&b.start_segment) {
        Some(WalFile::Segment { log, seg, .. }) => Some((wal::segment_number(log, seg, b.wal_segment_size), b.wal_segment_size)),
        _ => None,
    });
    fetch_wal_from(settings, from).await?;
    Ok(())
}

/// Rewrites `dbagent.backups` from the local manifests and the bucket's: a lost machine's
/// catalogue comes back from the bucket alone.
pub async fn rebuild_from_remote(db: &crate::db::PgConfig, settings: &Settings) -> Result<super::super::RebuildReport, Error> {
    let mut manifests = super::super::list(settings)?;
    for remote in list_backups(settings).await? {
        if !manifests.iter().any(|m| m.id == remote.manifest.id) {
            manifests.push(remote.manifest);
        }
    }
    super::super::catalog::rebuild_from(db, &manifests).await
}

/// Streams object `relative` into `dest` (created or truncated), returning the SHA-256 of
/// what it wrote. A partial file is removed on failure.
async fn download(remote: &Remote, relative: &str, dest: &Path) -> Result<String, Error> {
    let key = remote.key(relative);
    let written = async {
        let got = remote.store.get(&key).await.map_err(|source| Error::Remote { action: "download", key: key.to_string(), source })?;
        let mut stream = got.into_stream();
        let mut out = tokio::fs::File::create(dest).await.map_err(Error::io("create", dest))?;
        let mut hasher = Sha256::new();
        while let Some(chunk) = stream.try_next().await.map_err(|source| Error::Remote { action: "download", key: key.to_string(), source })? {
            hasher.update(&chunk);
            out.write_all(&chunk).await.map_err(Error::io("write", dest))?;
        }
        out.sync_all().await.map_err(Error::io("write", dest))?;
        Ok(encode_hex(&hasher.finalize()))
    }
    .await;
    if written.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    written
}

/// Writes `bytes` to `path` through a temporary name, fsynced.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let tmp = path.with_extension("remote-tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|err| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("write", path)(err)
    })
}
