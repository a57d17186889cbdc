//! `manifest.json`: everything known about one backup, written beside its files last and
//! atomically, so that a backup is complete exactly when its manifest exists and the catalog
//! can be rebuilt from the manifests alone.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::create::{BackupKind, Format};
use super::{Compression, Error};

/// The manifest's file name inside a backup directory.
pub(crate) const MANIFEST: &str = "manifest.json";
/// Manifests this dbagent writes; a newer one is refused rather than misread.
const FORMAT_VERSION: u32 = 1;

/// One backup, as recorded in its `manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Manifest {
    /// Layout version of this JSON document.
    pub format_version: u32,
    /// `YYYYMMDDTHHMMSSmmmZ-xxxxxx`: creation time (UTC) and 6 random hex digits; also the
    /// directory name.
    pub id: String,
    pub name: Option<String>,
    pub kind: BackupKind,
    pub format: Format,
    /// The database dumped.
    pub database: String,
    /// The database's encoding and locale, so a restore can create its target alike.
    pub encoding: String,
    pub lc_collate: String,
    pub lc_ctype: String,
    /// `server_version` as the server reports it, e.g. `15.20 (Debian 15.20-0+deb12u1)`.
    pub server_version: String,
    /// `server_version_num`, e.g. `150020`.
    pub server_version_num: u32,
    /// `pg_dump --version` of the binary used.
    pub pg_dump_version: String,
    /// Major version of that `pg_dump` (a restore needs a `pg_restore` at least this new).
    pub pg_dump_major: u32,
    pub created_at: DateTime<Utc>,
    pub duration_ms: u64,
    /// Bytes pg_dump produced (sum over files).
    pub raw_bytes: u64,
    /// Bytes stored on disk (sum over files).
    pub stored_bytes: u64,
    pub compression: Compression,
    /// `None` when the files are not encrypted.
    pub encryption: Option<EncryptionInfo>,
    pub files: Vec<FileEntry>,
    /// Row counts of the tables dumped, taken in the dump's own snapshot.
    pub tables: Vec<TableRows>,
    /// Only these tables were dumped (`pg_dump -t`), when given.
    pub tables_filter: Option<Vec<String>>,
    /// WAL position read in the snapshot's own transaction, just after the snapshot was
    /// taken (`pg_last_wal_replay_lsn()` on a standby): every commit visible in the dump is
    /// before it. `None` when the server would not say.
    pub wal_lsn: Option<String>,
    /// Never pruned while true.
    pub keep: bool,
    /// What pins this backup (e.g. `migration 20250101000000`); never pruned while set.
    pub pinned_by: Option<String>,
    /// The cron tick this backup was taken for, when the schedule took it.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The last verification, when there was one.
    pub verification: Option<Verification>,
    /// For a base backup (`kind: base`): where its WAL starts and ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseInfo>,
}

/// The WAL positions of a base backup, for point-in-time recovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BaseInfo {
    pub timeline: u32,
    /// `X/Y` positions reported by pg_basebackup.
    pub start_lsn: String,
    pub end_lsn: String,
    /// The first WAL segment recovery needs.
    pub start_segment: String,
    pub wal_segment_size: u64,
    /// When the copy was complete: the earliest time it can be recovered to.
    pub finished_at: DateTime<Utc>,
}

/// How the files are encrypted; never the key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EncryptionInfo {
    pub algorithm: String,
    pub kdf: Kdf,
    /// The per-backup salt, hex.
    pub salt: String,
    /// `hex(nonce ‖ AES-GCM tag)` of an empty message under the data key: tells a wrong key
    /// from a corrupted file.
    pub key_check: String,
}

/// How the backup's data key was derived from the configured key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "algorithm", rename_all = "snake_case")]
pub enum Kdf {
    /// A raw 32-byte key: SHA-256(domain ‖ key ‖ salt).
    Sha256Subkey,
    /// A passphrase: Argon2id v1.3.
    Argon2id {
        m_cost_kib: u32,
        t_cost: u32,
        p_cost: u32,
    },
}

/// One stored file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FileEntry {
    /// The file as pg_dump named it: `dump` (custom format) or `toc.dat`, `3456.dat`, ...
    /// (directory format).
    pub name: String,
    /// Path of the stored file, relative to the backup directory.
    pub stored: String,
    pub raw_bytes: u64,
    pub stored_bytes: u64,
    /// SHA-256 of what pg_dump wrote, hex.
    pub sha256_raw: String,
    /// SHA-256 of the stored (compressed, encrypted) bytes, hex.
    pub sha256_stored: String,
}

/// Rows of one table at the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TableRows {
    /// `schema.table`, each part quoted only when PostgreSQL would need it.
    pub table: String,
    pub rows: i64,
    pub method: CountMethod,
    /// The partitioned table this one is a partition of (`schema.table`), when it is one.
    pub partition_of: Option<String>,
}

/// How a row count was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CountMethod {
    /// `count(*)` in the dump's snapshot (tables estimated under a million rows, and tables
    /// never analysed).
    Exact,
    /// `pg_class.reltuples`: large tables, where an exact count would scan them once more.
    Estimate,
}

/// The outcome of one `verify`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Verification {
    pub at: DateTime<Utc>,
    /// 1: checksums; 2: a trial restore with row counts compared.
    pub level: u8,
    pub ok: bool,
    /// What failed, when something did.
    pub error: Option<String>,
}

impl Manifest {
    pub(crate) const FORMAT_VERSION: u32 = FORMAT_VERSION;

    /// Reads `dir/manifest.json`. `Ok(None)` when there is none (an incomplete backup).
    pub(crate) fn read(dir: &Path) -> Result<Option<Manifest>, Error> {
        let path = dir.join(MANIFEST);
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => return Err(Error::io("read", &path)(err)),
        };
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|source| Error::InvalidManifest { path: path.clone(), source })?;
        if manifest.format_version > FORMAT_VERSION {
            return Err(Error::VerificationFailed {
                file: MANIFEST.to_owned(),
                reason: format!(
                    "manifest format {} is newer than this dbagent knows ({FORMAT_VERSION}); upgrade dbagent",
                    manifest.format_version
                ),
            });
        }
        Ok(Some(manifest))
    }

    /// Writes `dir/manifest.json` atomically: a temporary file, fsync, rename, fsync of the
    /// directory. Readers see the old manifest or the new one, never a part.
    pub(crate) fn write(&self, dir: &Path) -> Result<(), Error> {
        let path = dir.join(MANIFEST);
        let tmp = dir.join(format!(".{MANIFEST}.tmp"));
        let json = serde_json::to_vec_pretty(self).expect("a manifest always serializes");
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|err| {
            let _ = std::fs::remove_file(&tmp);
            Error::io("write", &path)(err)
        })
    }

    /// Path of a stored file of this backup, refusing entries that would leave `dir`.
    pub(crate) fn stored_path(dir: &Path, entry: &FileEntry) -> Result<PathBuf, Error> {
        let relative = Path::new(&entry.stored);
        let plain = relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain {
            return Err(Error::VerificationFailed {
                file: entry.stored.clone(),
                reason: "the manifest names a file outside the backup directory".to_owned(),
            });
        }
        Ok(dir.join(relative))
    }

    /// Whether retention must keep this backup whatever its age, and why.
    pub(crate) fn pin_reason(&self) -> Option<String> {
        match (&self.pinned_by, self.keep) {
            (Some(by), _) => Some(format!("pinned by {by}")),
            (None, true) => Some("marked keep".to_owned()),
            (None, false) => None,
        }
    }
}
