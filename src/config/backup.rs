//! `backup:` — backups, their schedule, encryption and point-in-time recovery.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Error, Secret, invalid};

/// Backups (`dbagent backup`, `POST /backup`, the schedule).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backup {
    /// Run the schedule when serving. Default true.
    pub enable: bool,
    /// Cron schedule (5 or 6 fields). Default `0 2 * * *` (02:00 daily); null: none.
    pub schedule: Option<String>,
    /// Prune backups older than this. Default 30.
    pub retention_days: Option<u32>,
    /// Always keep the newest N. Default none.
    pub keep_last: Option<u32>,
    /// Directory of the backups (one sub-directory each). Default `./backups`.
    pub location: PathBuf,
    /// `zstd` (default), `gzip` or `none`; anything else stops start-up.
    pub compression: Compression,
    /// The compressor's level: zstd 1–19 (default 3), gzip 1–9 (default 6). Higher is smaller
    /// and slower. Default: the compressor's default.
    pub compression_level: Option<i32>,
    /// AES-256 key (64 hex digits or base64); use `${VAR}` to take it from the environment.
    /// `BACKUP_ENCRYPTION_KEY` overrides. Default none (not encrypted).
    pub encryption_key: Option<Secret>,
    /// A file holding the key, instead of `encryption_key`.
    pub encryption_key_file: Option<PathBuf>,
    /// A passphrase (at least 12 characters; Argon2id derives the key), instead of a key.
    pub encryption_passphrase: Option<Secret>,
    /// Parallel jobs for directory-format dumps and restores. Default 2.
    pub jobs: u32,
    /// Point-in-time recovery for the managed instance: continuous WAL archiving into
    /// `<location>/wal` (`archive_mode = on`, applied when the instance starts), base backups
    /// (`kind: base`) and `restore --to-time`. Default false.
    pub pitr: bool,
    /// `archive_timeout` in seconds: a quiet server still archives its last commits within
    /// this time. Default 60.
    pub archive_timeout: u32,
    /// How WAL reaches `<location>/wal` for a server dbagent does not run (`postgresql.url`
    /// set, `backup.pitr: true`): `pg_receivewal` streaming through a physical replication
    /// slot. The managed instance archives with `archive_command` instead.
    pub wal_stream: WalStream,
    /// The recovery point objective: `backup status`, `/health` and the `rpo_exceeded` alert
    /// compare the measured RPO (how far back the newest WAL safe in the archive is) with it.
    /// Default `5m`.
    pub rpo_target: String,
    /// The dbagent executable the server runs to archive and restore WAL. Default: the
    /// running executable.
    pub agent_binary: Option<PathBuf>,
    /// With a schedule, the `backup_too_old` alert warns when the newest backup is older than
    /// this (and is critical at twice it): `26h`, `2d`. Default 26 h (a daily schedule and
    /// two hours of slack).
    pub max_age: String,
    /// A restore over an existing database keeps the replaced one (renamed
    /// `<db>_replaced_<YYYYMMDDHHMMSS>`, listed by `GET /restores`, swapped back by
    /// `POST /restores/{id}/undo`) for this many hours, then drops it; 0 drops it at once after
    /// a successful swap. At most 8760 (a year). Default 24.
    pub keep_replaced_hours: u32,
    /// Off-site copies in object storage: every complete backup and archived WAL file is
    /// uploaded in the background (`src/backup/remote/`). Default none.
    pub remote: Option<Remote>,
}

impl Default for Backup {
    fn default() -> Self {
        Backup {
            enable: true,
            schedule: Some("0 2 * * *".into()),
            retention_days: Some(30),
            keep_last: None,
            location: PathBuf::from("./backups"),
            compression: Compression::Zstd,
            compression_level: None,
            encryption_key: None,
            encryption_key_file: None,
            encryption_passphrase: None,
            jobs: 2,
            pitr: false,
            archive_timeout: 60,
            wal_stream: WalStream::default(),
            rpo_target: "5m".into(),
            agent_binary: None,
            max_age: "26h".into(),
            keep_replaced_hours: 24,
            remote: None,
        }
    }
}

impl Backup {
    /// [`Backup::max_age`] in hours.
    pub fn max_age_hours(&self) -> f64 {
        super::parse_seconds(&self.max_age).map_or(26.0, |s| s / 3600.0)
    }

    /// [`Backup::rpo_target`] in seconds.
    pub fn rpo_target_seconds(&self) -> f64 {
        super::parse_seconds(&self.rpo_target).unwrap_or(300.0)
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        if super::parse_seconds(&self.rpo_target).is_none_or(|s| s < 1.0) {
            return invalid("backup.rpo_target", "must be a duration of a second or more, e.g. 30s or 5m");
        }
        self.wal_stream.validate()?;
        if super::parse_seconds(&self.max_age).is_none_or(|s| s < 60.0) {
            return invalid("backup.max_age", "must be a duration of a minute or more, e.g. 26h or 2d");
        }
        let keys = [self.encryption_key.is_some(), self.encryption_key_file.is_some(), self.encryption_passphrase.is_some()];
        if keys.iter().filter(|k| **k).count() > 1 {
            return invalid("backup.encryption_key", "set only one of encryption_key, encryption_key_file and encryption_passphrase");
        }
        if !(1..=86_400).contains(&self.archive_timeout) {
            return invalid("backup.archive_timeout", "must be between 1 and 86400 seconds");
        }
        if let Some(level) = self.compression_level {
            let range = self.compression.levels();
            if range.is_empty() {
                return invalid("backup.compression_level", "backup.compression is none: there is no level to set");
            }
            if !range.contains(&level) {
                return invalid(
                    "backup.compression_level",
                    format!("{level} is outside {}'s levels, {} to {}", self.compression.as_str(), range.start(), range.end()),
                );
            }
        }
        if self.jobs == 0 {
            return invalid("backup.jobs", "must be at least 1");
        }
        if self.keep_replaced_hours > 8760 {
            return invalid("backup.keep_replaced_hours", "must be between 0 (drop at once) and 8760 hours (a year)");
        }
        if let Some(remote) = &self.remote {
            remote.validate()?;
        }
        Ok(())
    }
}

/// `backup.wal_stream`: continuous WAL streaming from a server dbagent does not run.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WalStream {
    /// The physical replication slot that keeps the server from removing WAL dbagent has not
    /// received (created when missing). Lowercase letters, digits and `_`, at most 63.
    /// Default `dbagent_wal`.
    pub slot: String,
    /// `pg_receivewal --synchronous`: flush every write to disk before reporting it, so the
    /// stream can be a synchronous standby (list `dbagent_wal` in the server's
    /// `synchronous_standby_names` for an RPO of zero). Default false.
    pub synchronous: bool,
    /// The `wal_stream_slot_lag` alert warns when the slot holds more than this much WAL on
    /// the server (the stream is behind or down, and the server's disk fills): `1GB`,
    /// `512MB`. Default `1GB`.
    pub max_slot_lag: String,
}

impl Default for WalStream {
    fn default() -> Self {
        WalStream { slot: "dbagent_wal".into(), synchronous: false, max_slot_lag: "1GB".into() }
    }
}

impl WalStream {
    /// [`WalStream::max_slot_lag`] in bytes.
    pub fn max_slot_lag_bytes(&self) -> u64 {
        parse_bytes(&self.max_slot_lag).unwrap_or(1 << 30)
    }

    fn validate(&self) -> Result<(), Error> {
        let name_ok = !self.slot.is_empty()
            && self.slot.len() <= 63
            && self.slot.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return invalid("backup.wal_stream.slot", "must be 1 to 63 lowercase letters, digits or _ (a replication slot name)");
        }
        if parse_bytes(&self.max_slot_lag).is_none_or(|b| b == 0) {
            return invalid("backup.wal_stream.max_slot_lag", "must be a size such as 512MB or 1GB");
        }
        Ok(())
    }
}

/// `backup.remote`: where the off-site copies go. Credentials come from these settings when
/// set, otherwise from the environment the cloud's own tools read (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`; `GOOGLE_SERVICE_ACCOUNT`;
/// `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY` ...).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Remote {
    /// `s3://bucket/prefix` (AWS S3 and S3-compatible stores: MinIO, Ceph, R2),
    /// `gs://bucket/prefix` (Google Cloud Storage) or `az://container/prefix` (Azure Blob).
    /// The backups go under the prefix in the local location's layout.
    pub url: String,
    /// An S3-compatible store's address, e.g. `http://minio:9000` (AWS when unset).
    pub endpoint: Option<String>,
    /// The S3 region. Default: the environment's, else `us-east-1`.
    pub region: Option<String>,
    /// S3 access key id; use `${VAR}` to take it from the environment.
    pub access_key_id: Option<Secret>,
    /// S3 secret access key; use `${VAR}` to take it from the environment.
    pub secret_access_key: Option<Secret>,
    /// Allow plain `http://` endpoints (a local MinIO). Default false; an `http://` endpoint
    /// turns it on.
    pub allow_http: bool,
    /// A complete backup or archived WAL file still only local after this long makes
    /// `/health` degraded and fires the `backup_remote_lag` alert: `1h`, `30m`. Default `1h`.
    pub max_lag: String,
    /// How often the uploader looks for new local files: `30s`. After a failure it retries
    /// with backoff instead (1 s, doubling up to 5 min). Default `30s`.
    pub interval: String,
    /// Uploads running at once. Default 4.
    pub concurrency: u32,
}

impl Default for Remote {
    fn default() -> Self {
        Remote {
            url: String::new(),
            endpoint: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            allow_http: false,
            max_lag: "1h".into(),
            interval: "30s".into(),
            concurrency: 4,
        }
    }
}

impl Remote {
    /// [`Remote::max_lag`] in seconds.
    pub fn max_lag_seconds(&self) -> f64 {
        super::parse_seconds(&self.max_lag).unwrap_or(3600.0)
    }

    /// [`Remote::interval`] in seconds.
    pub fn interval_seconds(&self) -> f64 {
        super::parse_seconds(&self.interval).unwrap_or(30.0)
    }

    fn validate(&self) -> Result<(), Error> {
        let scheme = self.url.split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("s3" | "s3a" | "gs" | "az" | "azure")) {
            return invalid(
                "backup.remote.url",
                "must name a bucket: s3://bucket/prefix, gs://bucket/prefix or az://container/prefix",
            );
        }
        let rest = self.url.split_once("://").map_or("", |(_, r)| r);
        if rest.split('/').next().is_none_or(str::is_empty) {
            return invalid("backup.remote.url", "has no bucket (s3://bucket/prefix)");
        }
        if rest.split('/').skip(1).any(|part| part == ".." || part == ".") {
            return invalid("backup.remote.url", "the prefix may not hold . or .. segments");
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return invalid("backup.remote.endpoint", "must be an http:// or https:// address");
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            return invalid("backup.remote.access_key_id", "set both access_key_id and secret_access_key, or neither");
        }
        if super::parse_seconds(&self.max_lag).is_none_or(|s| s < 1.0) {
            return invalid("backup.remote.max_lag", "must be a duration of a second or more, e.g. 1h");
        }
        if super::parse_seconds(&self.interval).is_none_or(|s| !(0.1..=3600.0).contains(&s)) {
            return invalid("backup.remote.interval", "must be a duration between 100ms and 1h, e.g. 30s");
        }
        if !(1..=64).contains(&self.concurrency) {
            return invalid("backup.remote.concurrency", "must be between 1 and 64");
        }
        Ok(())
    }
}

/// A size as PostgreSQL writes them (`512MB`, `1GB`, `64kB`; units of 1024, case-insensitive),
/// or a plain number of bytes.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let number: u64 = text[..digits].parse().ok()?;
    let unit: u64 = match text[digits..].trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1 << 10,
        "mb" => 1 << 20,
        "gb" => 1 << 30,
        "tb" => 1 << 40,
        _ => return None,
    };
    number.checked_mul(unit)
}

/// Compression of the stored backup files (`crate::backup::Compression` is this type; the
/// file names it implies live there). `pg_dump` itself runs with `-Z0`: compressing once, in
/// our pipeline, costs less CPU than compressing inside pg_dump and is what lets the stored
/// file be encrypted and checksummed in the same pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// zstd (level 3 unless `compression_level` says otherwise), with zstd's own frame checksum.
    Zstd,
    /// gzip (level 6, what `pg_dump -Fc` uses, unless `compression_level` says otherwise).
    Gzip,
    None,
}

impl Compression {
    /// The levels `backup.compression_level` may take (empty for `none`). zstd's levels 20–22
    /// ("ultra") need far more memory to compress and to restore, so they are not offered.
    pub fn levels(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Compression::Zstd => 1..=19,
            Compression::Gzip => 1..=9,
            #[allow(clippy::reversed_empty_ranges)]
            Compression::None => 1..=0,
        }
    }

    /// The level used when none is configured.
    pub fn default_level(self) -> i32 {
        match self {
            Compression::Zstd => 3,
            Compression::Gzip => 6,
            Compression::None => 0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_as_postgres_writes_them() {
        assert_eq!(parse_bytes("1GB"), Some(1 << 30));
        assert_eq!(parse_bytes("512 MB"), Some(512 << 20));
        assert_eq!(parse_bytes("64kB"), Some(64 << 10));
        assert_eq!(parse_bytes("4096"), Some(4096));
        for bad in ["", "GB", "1.5GB", "-1MB", "1 XB", "99999999999999999999TB"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_remote_store_must_name_a_bucket_and_complete_credentials() {
        let remote = |url: &str| Backup { remote: Some(Remote { url: url.into(), ..Remote::default() }), ..Backup::default() };
        for good in ["s3://bucket", "s3://bucket/team/prod/", "gs://b/p", "az://container/x"] {
            remote(good).validate().unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in ["", "bucket/prefix", "http://host/bucket", "s3://", "s3:///prefix", "s3://b/../x", "ftp://b"] {
            assert!(remote(bad).validate().is_err(), "{bad}");
        }
        let mut backup = remote("s3://bucket");
        let set = |backup: &mut Backup, change: &dyn Fn(&mut Remote)| change(backup.remote.as_mut().unwrap());
        set(&mut backup, &|r| r.access_key_id = Some(Secret::new("id")));
        assert!(backup.validate().unwrap_err().to_string().contains("secret_access_key"));
        set(&mut backup, &|r| r.secret_access_key = Some(Secret::new("secret")));
        backup.validate().unwrap();
        for (change, field) in [
            (&(|r: &mut Remote| r.endpoint = Some("minio:9000".into())) as &dyn Fn(&mut Remote), "endpoint"),
            (&|r: &mut Remote| r.max_lag = "soon".into(), "max_lag"),
            (&|r: &mut Remote| r.interval = "0s".into(), "interval"),
            (&|r: &mut Remote| r.concurrency = 0, "concurrency"),
        ] {
            let mut bad = backup.clone();
            set(&mut bad, change);
            assert!(bad.validate().unwrap_err().to_string().contains(field), "{field}");
        }
    }

    #[test]
    fn a_slot_name_postgres_would_refuse_is_refused_here() {
        let mut backup = Backup::default();
        backup.validate().unwrap();
        for bad in ["", "Dbagent", "db-agent", &"x".repeat(64)] {
            backup.wal_stream.slot = bad.to_owned();
            assert!(backup.validate().is_err(), "{bad:?}");
        }
        backup.wal_stream.slot = "dbagent_wal_2".into();
        backup.rpo_target = "0s".into();
        assert!(backup.validate().is_err());
    }
}
