//! The uploader: a background task of the serving agent that copies every complete local
//! backup and archived WAL file to the bucket, and records how far behind the bucket is.
//!
//! Each pass lists the bucket once and uploads what it lacks: WAL first (the RPO of a lost
//! machine depends on it), several files at once, then backups oldest first, each backup's
//! files before its manifest. A file is in the bucket when an object of its size is under its
//! key; a manifest also when the object is newer than the local file (pins and verifications
//! rewrite it). An upload that fails halfway leaves no object under the key (a multipart upload
//! is completed only after its last part, and aborted on error), so the next pass redoes it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use tokio::io::AsyncWriteExt;

use super::super::manifest::MANIFEST;
use super::super::wal::{self, ARCHIVE_DIR};
use super::super::{Error, Settings, location};
use super::{Remote, Status};

/// Parts of a multipart upload (S3 wants 5 MiB at least); smaller files go up in one request.
const PART: usize = 16 * 1024 * 1024;
/// The longest wait between two attempts after failures.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// One local file to have in the bucket.
#[derive(Debug, Clone)]
struct File {
    relative: String,
    path: PathBuf,
    bytes: u64,
    modified: DateTime<Utc>,
}

/// Files that go up together, the last one only after the others (a manifest, a sidecar).
#[derive(Debug)]
struct Item {
    files: Vec<File>,
    last: File,
    /// Rewritten in place (a manifest): also uploaded again when newer than the object.
    mutable: bool,
    /// When it was complete locally.
    ready_at: DateTime<Utc>,
}

/// What the bucket holds, by path inside the location: size and when it was written.
type Known = BTreeMap<String, (u64, DateTime<Utc>)>;

/// Uploads until `stop` changes. Returns at once without `backup.remote`.
pub async fn run(settings: Arc<Settings>, mut stop: tokio::sync::watch::Receiver<()>) {
    let Some(remote) = settings.remote.clone() else { return };
    tracing::info!(url = %remote.url, "uploading backups and WAL to the remote store");
    let mut known: Option<Known> = None;
    let mut backoff = Duration::from_secs(1);
    loop {
        let wait = match pass(&settings, &remote, &mut known, false).await {
            Ok(()) => {
                backoff = Duration::from_secs(1);
                remote.update(|s| {
                    s.state = "ok".into();
                    s.last_success_at = Some(Utc::now());
                    s.last_error = None;
                    s.consecutive_failures = 0;
                });
                remote.interval
            }
            Err(err) => {
                let message = crate::db::error_chain(&err);
                tracing::warn!(url = %remote.url, error = %message, retry_in = ?backoff, "upload to the remote store failed");
                remote.update(|s| {
                    s.state = "failing".into();
                    s.last_error = Some(message);
                    s.consecutive_failures += 1;
                    s.failures_total += 1;
                });
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = remote.kicked.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// What the bucket lacks, without uploading (`backup status` when not serving).
pub async fn offline_status(settings: &Settings) -> Option<Status> {
    let remote = settings.remote.as_ref()?;
    match pass(settings, remote, &mut None, true).await {
        Ok(()) => remote.update(|s| s.state = "ok".into()),
        Err(err) => remote.update(|s| {
            s.state = "failing".into();
            s.last_error = Some(crate::db::error_chain(&err));
        }),
    }
    Some(remote.status())
}

/// One pass: list the bucket, then upload what it lacks (unless `dry`).
async fn pass(settings: &Settings, remote: &Arc<Remote>, known: &mut Option<Known>, dry: bool) -> Result<(), Error> {
    let root = location::root(settings)?;
    let (wal_items, backup_items, backups) =
        tokio::task::spawn_blocking(move || local_items(&root)).await.map_err(|_| Error::invalid("the local scan stopped"))??;
    let listed = remote.objects("").await;
    if let Ok(objects) = &listed {
        *known = Some(objects.iter().map(|(k, m)| (k.clone(), (m.size, m.last_modified))).collect());
    }
    let seen = known.get_or_insert_with(Known::new);
    let remote_backups = manifests(seen);
    let missing = |seen: &Known, items: &[Item]| -> Vec<usize> { (0..items.len()).filter(|&i| !in_bucket(seen, &items[i])).collect() };
    let (wal_missing, backups_missing) = (missing(seen, &wal_items), missing(seen, &backup_items));
    record_pending(remote, seen, wal_missing.iter().map(|&i| &wal_items[i]).chain(backups_missing.iter().map(|&i| &backup_items[i])), remote_backups);
    listed?;
    if dry {
        return Ok(());
    }
    tracing::debug!(backups, wal = wal_missing.len(), pending_backups = backups_missing.len(), "remote pass");

    // WAL: several files at once; each file's sidecar after its data.
    let wal_uploads: Vec<_> = wal_missing.into_iter().map(|i| upload_item(remote, &wal_items[i], seen_snapshot(seen, &wal_items[i]))).collect();
    let uploads = futures_util::stream::iter(wal_uploads).buffer_unordered(remote.concurrency).try_collect::<Vec<Vec<File>>>().await;
    for sent in uploads.iter().flatten().flatten() {
        seen.insert(sent.relative.clone(), (sent.bytes, Utc::now()));
    }
    uploads?;
    // Backups: oldest first, each one's files at once, its manifest last.
    for i in backups_missing {
        let sent = upload_item(remote, &backup_items[i], seen_snapshot(seen, &backup_items[i])).await?;
        for file in sent {
            seen.insert(file.relative, (file.bytes, Utc::now()));
        }
        let rest: Vec<&Item> = backup_items.iter().filter(|item| !in_bucket(seen, item)).collect();
        record_pending(remote, seen, rest.into_iter(), manifests(seen));
    }
    record_pending(remote, seen, std::iter::empty(), manifests(seen));
    Ok(())
}

/// How many backups the bucket holds (their manifests).
fn manifests(seen: &Known) -> u64 {
    seen.keys().filter(|k| k.ends_with(&format!("/{MANIFEST}"))).count() as u64
}

/// Which of `item`'s files the bucket already has.
fn seen_snapshot(seen: &Known, item: &Item) -> Vec<bool> {
    item.files.iter().map(|f| has(seen, f, false)).collect()
}

fn has(seen: &Known, file: &File, mutable: bool) -> bool {
    seen.get(&file.relative).is_some_and(|(bytes, written)| *bytes == file.bytes && (!mutable || *written >= file.modified))
}

fn in_bucket(seen: &Known, item: &Item) -> bool {
    item.files.iter().all(|f| has(seen, f, false)) && has(seen, &item.last, item.mutable)
}

fn record_pending<'a>(remote: &Remote, seen: &Known, pending: impl Iterator<Item = &'a Item>, remote_backups: u64) {
    let (mut files, mut bytes, mut oldest) = (0u64, 0u64, None::<DateTime<Utc>>);
    for item in pending {
        for file in item.files.iter().filter(|f| !has(seen, f, false)).chain(std::iter::once(&item.last)) {
            files += 1;
            bytes += file.bytes;
        }
        oldest = Some(oldest.map_or(item.ready_at, |o| o.min(item.ready_at)));
    }
    remote.update(|s| {
        s.pending_files = files;
        s.pending_bytes = bytes;
        s.oldest_pending_at = oldest;
        s.lag_seconds = 0.0;
        s.remote_backups = remote_backups;
    });
}

/// Uploads the files of `item` the bucket lacks (`have[i]`: file i is there), then its last
/// file. Returns what it uploaded.
async fn upload_item(remote: &Arc<Remote>, item: &Item, have: Vec<bool>) -> Result<Vec<File>, Error> {
    let todo: Vec<&File> = item.files.iter().zip(have).filter(|(_, there)| !there).map(|(f, _)| f).collect();
    let uploads: Vec<_> = todo.into_iter().map(|f| async move { upload_file(remote, f).await.map(|()| f.clone()) }).collect();
    let mut sent: Vec<File> = futures_util::stream::iter(uploads).buffer_unordered(remote.concurrency).try_collect().await?;
    upload_file(remote, &item.last).await?;
    sent.push(item.last.clone());
    Ok(sent)
}

/// Streams one file into the bucket (one request, or a multipart upload for large files),
/// then reads its size back.
async fn upload_file(remote: &Remote, file: &File) -> Result<(), Error> {
    let key = remote.key(&file.relative);
    let fail = |action: &'static str| {
        let key = key.to_string();
        move |err: std::io::Error| Error::RemoteIo { action, key, source: err }
    };
    let mut source = tokio::fs::File::open(&file.path).await.map_err(Error::io("read", &file.path))?;
    let mut writer = BufWriter::with_capacity(remote.store.clone(), key.clone(), PART).with_max_concurrency(2);
    let copied = async {
        tokio::io::copy(&mut source, &mut writer).await?;
        writer.shutdown().await
    }
    .await;
    if let Err(err) = copied {
        let _ = writer.abort().await;
        return Err(fail("upload")(err));
    }
    let meta = remote.store.head(&key).await.map_err(|source| Error::Remote { action: "check", key: key.to_string(), source })?;
    if meta.size != file.bytes {
        return Err(Error::VerificationFailed {
            file: file.relative.clone(),
            reason: format!("the store holds {} bytes after the upload, the local file {}", meta.size, file.bytes),
        });
    }
    remote.update(|s| {
        s.uploaded_files_total += 1;
        s.uploaded_bytes_total += file.bytes;
    });
    Ok(())
}

/// The complete local files: WAL items (oldest first) and backup items (oldest first), and
/// how many backups there are.
fn local_items(root: &std::path::Path) -> Result<(Vec<Item>, Vec<Item>, usize), Error> {
    let file = |relative: String, path: PathBuf| -> Option<File> {
        let meta = std::fs::metadata(&path).ok()?;
        Some(File { relative, bytes: meta.len(), modified: meta.modified().ok().map(DateTime::<Utc>::from)?, path })
    };
    let archive = root.join(ARCHIVE_DIR);
    let mut wal_items = Vec::new();
    for (name, record) in wal::list(&archive)? {
        let (Some(data), Some(sidecar)) = (
            file(format!("{ARCHIVE_DIR}/{name}.zst"), archive.join(format!("{name}.zst"))),
            file(format!("{ARCHIVE_DIR}/{name}.json"), archive.join(format!("{name}.json"))),
        ) else {
            continue; // pruned meanwhile
        };
        wal_items.push(Item { files: vec![data], last: sidecar, mutable: false, ready_at: record.archived_at });
    }
    let mut backups = location::scan(root)?;
    backups.sort_by(|a, b| a.1.id.cmp(&b.1.id));
    let count = backups.len();
    let mut backup_items = Vec::new();
    'backups: for (dir, manifest) in backups {
        let mut files = Vec::new();
        for entry in &manifest.files {
            let path = super::super::manifest::Manifest::stored_path(&dir, entry)?;
            let Some(found) = file(format!("{}/{}", manifest.id, entry.stored), path) else { continue 'backups };
            files.push(found);
        }
        let Some(last) = file(format!("{}/{MANIFEST}", manifest.id), dir.join(MANIFEST)) else { continue };
        let ready_at = manifest.created_at + chrono::Duration::milliseconds(manifest.duration_ms as i64);
        backup_items.push(Item { files, last, mutable: true, ready_at });
    }
    Ok((wal_items, backup_items, count))
}
