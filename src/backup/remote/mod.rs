//! Off-site copies in object storage (`backup.remote`): S3 and S3-compatible stores, Google
//! Cloud Storage and Azure Blob, through `object_store`.
//!
//! The bucket mirrors the location's layout under the URL's prefix: `<prefix>/<id>/<file>` and
//! `<prefix>/<id>/manifest.json` for each backup, `<prefix>/wal/<name>.zst` and
//! `<prefix>/wal/<name>.json` for the WAL archive. Files go up exactly as they are on disk
//! (encrypted when the backup is), so the bucket holds nothing the disk does not.
//!
//! Invariants:
//! - a remote backup exists when, and only when, its `manifest.json` exists: the manifest is
//!   uploaded after every file of the backup, and deleted before them; a WAL file is there
//!   when its sidecar is, uploaded after the data and deleted before it;
//! - only complete local files go up (backups with a manifest, WAL with a sidecar), and an
//!   upload is checked after it completes (S3: the SHA-256 the store verified on receipt; every
//!   store: the size read back);
//! - uploads run in the background (`upload.rs`) and never hold up a backup or the WAL
//!   archive; a failed pass is retried with backoff and leaves nothing under a real name that
//!   a later pass would take for complete;
//! - reading back (`fetch.rs`) downloads into the location the same way a backup is created
//!   (hidden directory, manifest last), so verify, restore and recovery read one layout.

mod fetch;
mod upload;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::Serialize;

use super::Error;
use super::manifest::{MANIFEST, Manifest};
use super::wal::ARCHIVE_DIR;

pub use fetch::{RemoteBackup, fetch_backup, fetch_wal_from, list_backups, prepare_recovery, rebuild_from_remote};
pub use upload::{offline_status, run};

/// The configured bucket and what the uploader last saw.
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    /// The URL's path, without slashes at either end ("" for the bucket's root).
    prefix: String,
    /// `backup.remote.url`, for messages and `/health` (it holds no credentials).
    pub url: String,
    pub max_lag: Duration,
    pub interval: Duration,
    pub concurrency: usize,
    status: Mutex<Status>,
    /// Wakes the uploader before its interval is up (a backup was just taken).
    kicked: tokio::sync::Notify,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish_non_exhaustive()
    }
}

/// The uploader's state, as `/health`, `/backups/status` and `/metrics` show it.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Status {
    /// `backup.remote.url`.
    pub url: String,
    /// `ok` (the last pass completed), `failing` (it did not; retrying with backoff) or
    /// `starting` (no pass has run yet).
    pub state: String,
    /// When the last pass completed: everything complete locally then was uploaded.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Why the last pass failed, while it is failing.
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    /// Complete local files (backup files, manifests, WAL) not in the bucket at the last pass.
    pub pending_files: u64,
    pub pending_bytes: u64,
    /// When the oldest of those was complete locally.
    pub oldest_pending_at: Option<DateTime<Utc>>,
    /// Seconds since the oldest of those was complete locally; 0 when nothing is pending.
    pub lag_seconds: f64,
    /// `backup.remote.max_lag` in seconds: a lag above it makes `/health` degraded.
    pub max_lag_seconds: f64,
    /// Backups in the bucket (manifests) at the last pass.
    pub remote_backups: u64,
    /// Files uploaded since the agent started.
    pub uploaded_files_total: u64,
    pub uploaded_bytes_total: u64,
    /// Failed passes since the agent started.
    pub failures_total: u64,
}

impl Remote {
    /// The store `config` names. Credentials: the config's when set, else the environment's.
    pub fn from_config(config: &crate::config::BackupRemote) -> Result<Remote, Error> {
        let url = url::Url::parse(&config.url).map_err(|err| Error::invalid(format!("backup.remote.url {:?} is not a URL: {err}", config.url)))?;
        // object_store's HTTP client takes the process's rustls provider: ring, which the rest
        // of the binary uses (already installed is fine).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let bucket = url.host_str().unwrap_or_default().to_owned();
        let prefix = url.path().trim_matches('/').to_owned();
        let options = object_store::ClientOptions::new().with_timeout(Duration::from_secs(300)).with_connect_timeout(Duration::from_secs(10));
        // The uploader has its own backoff: a request retries a little, then the pass fails
        // and shows in /health instead of hanging for the client's default three minutes.
        let retry = object_store::RetryConfig { backoff: object_store::BackoffConfig::default(), max_retries: 3, retry_timeout: Duration::from_secs(60) };
        let built: Result<Arc<dyn ObjectStore>, object_store::Error> = match url.scheme() {
            "s3" | "s3a" => {
                use object_store::aws::{AmazonS3Builder, Checksum};
                let mut builder =
                    AmazonS3Builder::from_env().with_bucket_name(&bucket).with_checksum_algorithm(Checksum::SHA256).with_retry(retry).with_client_options(
                        options.with_allow_http(config.allow_http || config.endpoint.as_deref().is_some_and(|e| e.starts_with("http://"))),
                    );
                if let Some(endpoint) = &config.endpoint {
                    builder = builder.with_endpoint(endpoint);
                }
                if let Some(region) = &config.region {
                    builder = builder.with_region(region);
                }
                if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
                    builder = builder.with_access_key_id(id.expose()).with_secret_access_key(secret.expose());
                }
                builder.build().map(|s| Arc::new(s) as Arc<dyn ObjectStore>)
            }
            "gs" => object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(&bucket)
                .with_retry(retry)
                .with_client_options(options)
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
            _ => object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(&bucket)
                .with_retry(retry)
                .with_client_options(options)
                .build()
                .map(|s| Arc::new(s) as Arc<dyn ObjectStore>),
        };
        let store = built.map_err(|source| Error::Remote { action: "set up", key: config.url.clone(), source })?;
        let status = Status { url: config.url.clone(), state: "starting".into(), max_lag_seconds: config.max_lag_seconds(), ..Status::default() };
        Ok(Remote {
            store,
            prefix,
            url: config.url.clone(),
            max_lag: Duration::from_secs_f64(config.max_lag_seconds()),
            interval: Duration::from_secs_f64(config.interval_seconds()),
            concurrency: config.concurrency as usize,
            status: Mutex::new(status),
            kicked: tokio::sync::Notify::new(),
        })
    }

    /// Starts an upload pass now (called after a backup completes).
    pub fn kick(&self) {
        self.kicked.notify_one();
    }

    /// The uploader's state now (the lag counted to this moment).
    pub fn status(&self) -> Status {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(oldest) = status.oldest_pending_at {
            status.lag_seconds = (Utc::now() - oldest).num_milliseconds().max(0) as f64 / 1000.0;
        }
        status
    }

    pub(crate) fn update(&self, change: impl FnOnce(&mut Status)) {
        change(&mut self.status.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// The object key of `relative` (a path inside the location, `/`-separated).
    pub(crate) fn key(&self, relative: &str) -> Key {
        if self.prefix.is_empty() { Key::from(relative) } else { Key::from(format!("{}/{relative}", self.prefix)) }
    }

    /// `key` relative to the prefix, as a path inside the location.
    fn relative<'a>(&self, key: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            return Some(key);
        }
        key.strip_prefix(self.prefix.as_str())?.strip_prefix('/')
    }

    /// Every object under `under` (a path inside the location, or "" for all), by path inside
    /// the location.
    pub(crate) async fn objects(&self, under: &str) -> Result<BTreeMap<String, object_store::ObjectMeta>, Error> {
        let prefix = if under.is_empty() { (!self.prefix.is_empty()).then(|| Key::from(self.prefix.as_str())) } else { Some(self.key(under)) };
        let listed: Vec<object_store::ObjectMeta> =
            self.store.list(prefix.as_ref()).try_collect().await.map_err(|source| Error::Remote { action: "list", key: self.url.clone(), source })?;
        Ok(listed.into_iter().filter_map(|meta| Some((self.relative(meta.location.as_ref())?.to_owned(), meta))).collect())
    }

    /// The manifest of remote backup `id`; `None` when the bucket has no complete backup `id`.
    pub(crate) async fn manifest(&self, id: &str) -> Result<Option<(Manifest, bytes::Bytes)>, Error> {
        let key = self.key(&format!("{id}/{MANIFEST}"));
        let bytes = match self.store.get(&key).await {
            Ok(got) => got.bytes().await,
            Err(err) => Err(err),
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(source) => return Err(Error::Remote { action: "download", key: key.to_string(), source }),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|source| Error::InvalidManifest {
            path: std::path::PathBuf::from(format!("{}/{id}/{MANIFEST}", self.url.trim_end_matches('/'))),
            source,
        })?;
        Ok(Some((manifest, bytes)))
    }

    /// Deletes remote backup `id`: its manifest first (it stops being a backup at once), then
    /// its files. `Ok(false)` when the bucket did not have it.
    pub(crate) async fn delete_backup(&self, id: &str) -> Result<bool, Error> {
        let objects = self.objects(&format!("{id}/")).await?;
        if objects.is_empty() {
            return Ok(false);
        }
        let manifest = format!("{id}/{MANIFEST}");
        if objects.contains_key(&manifest) {
            self.delete(&manifest).await?;
        }
        for relative in objects.keys().filter(|k| **k != manifest) {
            self.delete(relative).await?;
        }
        tracing::info!(backup_id = %id, url = %self.url, "deleted the remote copy");
        Ok(true)
    }

    /// Deletes the remote WAL files retention no longer needs (the rule of `wal::prune`):
    /// sidecar first, then data. Returns how many files went.
    pub(crate) async fn prune_wal(&self, timeline: u32, keep_from: u64, size: u64) -> Result<usize, Error> {
        let objects = self.objects(&format!("{ARCHIVE_DIR}/")).await?;
        let mut removed = 0;
        for relative in objects.keys() {
            let Some(name) = relative.strip_prefix(&format!("{ARCHIVE_DIR}/")).and_then(|n| n.strip_suffix(".json")) else { continue };
            if super::wal::prunable(name, timeline, keep_from, size) {
                self.delete(relative).await?;
                let data = format!("{ARCHIVE_DIR}/{name}.zst");
                if objects.contains_key(&data) {
                    self.delete(&data).await?;
                }
                removed += 1;
            }
        }
        Ok(removed)
    }

    async fn delete(&self, relative: &str) -> Result<(), Error> {
        let key = self.key(relative);
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(Error::Remote { action: "delete", key: key.to_string(), source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: &str) -> Remote {
        let config = crate::config::BackupRemote {
            url: url.into(),
            endpoint: Some("http://127.0.0.1:1".into()),
            access_key_id: Some(crate::config::Secret::new("a")),
            secret_access_key: Some(crate::config::Secret::new("b")),
            ..Default::default()
        };
        Remote::from_config(&config).unwrap()
    }

    #[test]
    fn keys_keep_the_locations_layout_under_the_prefix() {
        let r = remote("s3://bucket/team/prod/");
        assert_eq!(r.key("20260101T000000000Z-abcdef/manifest.json").as_ref(), "team/prod/20260101T000000000Z-abcdef/manifest.json");
        assert_eq!(r.relative("team/prod/wal/000000010000000000000001.zst"), Some("wal/000000010000000000000001.zst"));
        assert_eq!(r.relative("team/production/x"), None);
        let root = remote("s3://bucket");
        assert_eq!(root.key("wal/x.json").as_ref(), "wal/x.json");
        assert_eq!(root.relative("wal/x.json"), Some("wal/x.json"));
        assert!(format!("{r:?}").contains("s3://bucket/team/prod/"));
    }
}
