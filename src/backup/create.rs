//! Taking a backup: `pg_dump` in an exported snapshot, its output streamed through the
//! pipeline into `<location>/<id>/`, row counts and the WAL position read in the same
//! snapshot, the manifest written last.
//!
//! Custom format: pg_dump's stdout goes straight through the pipeline into one file, never
//! touching the disk in plaintext. Directory format (`-Fd -j jobs`, for large databases):
//! pg_dump writes into a private work directory inside the location, then every file is sealed
//! on `jobs` threads and the plaintext removed.

use std::ffi::OsString;
use std::path::Path;
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use crate::db::PgConfig;
use tracing::Instrument;

use super::database::Snapshot;
use super::key::DataKey;
use super::location::{self, NewBackup, WorkDir};
use super::manifest::{FileEntry, Manifest, TableRows};
use super::pipeline::{self, CHUNK, Sealer};
use super::threads;
use super::tools::{self, Pipes, Target, Tool, Tools};
use super::{Compression, Error, Settings, catalog};

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackupKind {
    /// Schema and data.
    #[default]
    Full,
    SchemaOnly,
    DataOnly,
    /// A physical copy of the whole cluster (`pg_basebackup`): the starting point of
    /// point-in-time recovery, restored with the archived WAL into a new cluster.
    Base,
}

/// pg_dump's archive format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One file (`-Fc`); restored with one job.
    #[default]
    Custom,
    /// One file per table (`-Fd`); dumped and restored with `jobs` parallel jobs.
    Directory,
}

/// One backup to take (seed 000's `POST /backup` body maps onto it).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CreateRequest {
    /// A label for people; the id is generated.
    pub name: Option<String>,
    pub kind: BackupKind,
    pub format: Format,
    /// Never pruned.
    pub keep: bool,
    /// Only these tables (`pg_dump -t`; `schema.table` or `table`).
    pub tables: Option<Vec<String>>,
    /// Pinned at creation, e.g. by the migration run it was taken for; never pruned until
    /// unpinned with [`super::pin`].
    pub pinned_by: Option<String>,
}

/// How far a long job has got, for the CLI's progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// `dump` (pg_dump writing), `store` (sealing dumped files), `read` (decrypting for a
    /// restore or verification), `restore` (feeding pg_restore).
    pub phase: &'static str,
    /// Plaintext bytes handled so far in this phase.
    pub bytes: u64,
    pub elapsed: Duration,
}

/// Takes a backup of the database `db` points at, as `settings` and `req` say, and returns its
/// manifest. `progress` is called from the job's own task; it must be quick.
pub async fn create(
    db: &PgConfig,
    settings: &Settings,
    req: &CreateRequest,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Manifest, Error> {
    create_for(db, settings, req, None, progress).await
}

/// [`create`], recording the cron tick the backup was taken for.
pub(crate) async fn create_for(
    db: &PgConfig,
    settings: &Settings,
    req: &CreateRequest,
    scheduled_for: Option<DateTime<Utc>>,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Manifest, Error> {
    validate(req)?;
    let created_at = Utc::now();
    let id = location::new_id(created_at)?;
    let span = tracing::info_span!("backup", backup_id = %id);
    if req.kind == BackupKind::Base {
        let new = super::base::NewBase { req, scheduled_for, id, created_at };
        return super::base::take(db, settings, new, progress).instrument(span).await;
    }
    take(db, settings, req, scheduled_for, progress, id, created_at).instrument(span).await
}

async fn take(
    db: &PgConfig,
    settings: &Settings,
    req: &CreateRequest,
    scheduled_for: Option<DateTime<Utc>>,
    progress: &(dyn Fn(Progress) + Send + Sync),
    id: String,
    created_at: DateTime<Utc>,
) -> Result<Manifest, Error> {
    let started = Instant::now();
    let root = location::root(settings)?;
    let snapshot = Snapshot::open(db).await?;
    let tools = tools::find(settings.bin_dir.as_deref(), tools::server_major(snapshot.info.version_num)).await?;
    let backup = NewBackup::create(&root, &id)?;
    let (key, encryption) = match settings.encryption.clone() {
        Some(key) => {
            // Argon2id takes tens of milliseconds and 19 MiB: not on the runtime's threads.
            let (data, info) = threads::blocking(move || key.for_new_backup()).await?;
            (Some(data), Some(info))
        }
        None => (None, None),
    };
    let dump = Dump {
        tools: &tools,
        target: Target::new(db, &snapshot.info.database),
        args: dump_args(req, &snapshot.id),
        dir: &backup.dir,
        root: &root,
        id: &id,
        packing: settings.packing(),
        key,
        jobs: settings.jobs.max(1),
        started,
        progress,
    };
    let outcome = tools::bounded(Tool::PgDump, settings.tool_timeout, dump.run(req, &snapshot)).await;
    let info = snapshot.info.clone();
    let wal_lsn = snapshot.wal_lsn.clone();
    snapshot.close().await;
    let (files, tables) = outcome.map_err(|err| match err {
        Error::ToolFailed { stderr, .. } if stderr.contains("no matching tables were found") => {
            Error::invalid(format!("no table matches {:?}", req.tables.clone().unwrap_or_default()))
        }
        other => other,
    })?;
    let manifest = Manifest {
        format_version: Manifest::FORMAT_VERSION,
        id: id.clone(),
        name: req.name.clone(),
        kind: req.kind,
        format: req.format,
        database: info.database,
        encoding: info.encoding,
        lc_collate: info.lc_collate,
        lc_ctype: info.lc_ctype,
        server_version: info.version,
        server_version_num: info.version_num,
        pg_dump_version: tools.version.clone(),
        pg_dump_major: tools.major,
        created_at,
        duration_ms: started.elapsed().as_millis() as u64,
        raw_bytes: files.iter().map(|f| f.raw_bytes).sum(),
        stored_bytes: files.iter().map(|f| f.stored_bytes).sum(),
        compression: settings.compression,
        encryption,
        files,
        tables,
        tables_filter: req.tables.clone(),
        wal_lsn,
        keep: req.keep,
        pinned_by: req.pinned_by.clone(),
        scheduled_for,
        verification: None,
        base: None,
    };
    // A crash here leaves every file written and no manifest: an incomplete backup, which
    // listing never shows and removes once its creator is gone.
    #[cfg(feature = "failpoints")]
    if crate::failpoints::fire("backup-before-manifest", &manifest.database) {
        return Err(Error::io("write", &backup.dir.join(super::manifest::MANIFEST))(std::io::ErrorKind::Interrupted.into()));
    }
    manifest.write(&backup.dir)?;
    backup.commit();
    if let Some(remote) = &settings.remote {
        remote.kick();
    }
    tracing::info!(
        raw_bytes = manifest.raw_bytes,
        stored_bytes = manifest.stored_bytes,
        duration_ms = manifest.duration_ms,
        "backup complete"
    );
    catalog::mirror(db, &manifest).await;
    Ok(manifest)
}

fn validate(req: &CreateRequest) -> Result<(), Error> {
    let text = |what: &str, value: &str| -> Result<(), Error> {
        if value.trim().is_empty() || value.len() > 200 || value.chars().any(char::is_control) {
            return Err(Error::invalid(format!(
                "{what} {value:?} must be 1 to 200 characters without control characters"
            )));
        }
        Ok(())
    };
    if let Some(name) = &req.name {
        text("name", name)?;
    }
    if let Some(by) = &req.pinned_by {
        text("pinned_by", by)?;
    }
    if let Some(tables) = &req.tables {
        if tables.is_empty() {
            return Err(Error::invalid("tables, when given, must name at least one table"));
        }
        for table in tables {
            text("table", table)?;
        }
        if matches!(req.kind, BackupKind::SchemaOnly | BackupKind::Base) {
            return Err(Error::invalid("tables cannot be combined with a schema-only or base backup"));
        }
    }
    if req.kind == BackupKind::Base && req.format == Format::Directory {
        return Err(Error::invalid("a base backup is one tar stream; format applies to pg_dump backups"));
    }
    Ok(())
}

/// pg_dump's arguments besides the connection and the output.
fn dump_args(req: &CreateRequest, snapshot: &str) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        match req.format {
            Format::Custom => "--format=custom",
            Format::Directory => "--format=directory",
        }
        .into(),
        // gzip level 1 inside pg_dump, although our pipeline compresses again: uncompressed,
        // a custom archive holds one block per row, and pg_restore sends each block to the
        // server as its own CopyData message, which made restores 10-20 % slower than
        // pg_restore of a default `pg_dump -Fc`. Level 1 costs pg_dump less than its default
        // level, and zstd, whose window is far larger than deflate's, still shrinks the
        // result several times over (bench/backup.sh).
        "--compress=1".into(),
        format!("--snapshot={snapshot}").into(),
        // The catalog mirror describes the backup location, not the database: a restored copy
        // must not claim backups it was never told about.
        "--exclude-table-data=dbagent.backups".into(),
    ];
    match req.kind {
        BackupKind::Full | BackupKind::Base => {}
        BackupKind::SchemaOnly => args.push("--schema-only".into()),
        BackupKind::DataOnly => args.push("--data-only".into()),
    }
    for table in req.tables.iter().flatten() {
        args.push(format!("--table={table}").into());
    }
    args
}

/// Stored name of a file pg_dump called `name`.
pub(crate) fn stored_name(name: &str, compression: Compression, encrypted: bool) -> String {
    format!("{name}{}{}", compression.suffix(), if encrypted { ".enc" } else { "" })
}

/// One dump in progress.
struct Dump<'a> {
    tools: &'a Tools,
    target: Target,
    args: Vec<OsString>,
    dir: &'a Path,
    root: &'a Path,
    id: &'a str,
    packing: pipeline::Packing,
    key: Option<DataKey>,
    jobs: u32,
    started: Instant,
    progress: &'a (dyn Fn(Progress) + Send + Sync),
}

impl Dump<'_> {
    /// pg_dump, and the row counts in the same snapshot meanwhile.
    async fn run(&self, req: &CreateRequest, snapshot: &Snapshot) -> Result<(Vec<FileEntry>, Vec<TableRows>), Error> {
        let files = async {
            match req.format {
                Format::Custom => self.custom().await.map(|file| vec![file]),
                Format::Directory => self.directory().await,
            }
        };
        let counts = async {
            match req.kind {
                BackupKind::SchemaOnly => Ok(Vec::new()),
                _ => snapshot.count_rows(req.tables.as_deref()).await,
            }
        };
        tokio::try_join!(files, counts)
    }

    fn report(&self, phase: &'static str, bytes: u64) {
        (self.progress)(Progress { phase, bytes, elapsed: self.started.elapsed() });
    }

    /// pg_dump's stdout → pipeline → `<dir>/dump[.zst][.enc]`.
    async fn custom(&self) -> Result<FileEntry, Error> {
        let stored = stored_name("dump", self.packing.compression, self.key.is_some());
        let mut child = tools::spawn(self.tools, Tool::PgDump, &self.args, &self.target, Pipes { stdin: false, stdout: true })?;
        let aad = pipeline::associated_data(self.id, "dump");
        let report = |bytes| self.report("dump", bytes);
        let sealed = seal_output(&mut child, self.dir.join(&stored), self.packing, self.key.clone(), aad, &report).await?;
        child.wait().await?;
        Ok(sealed.entry("dump", &stored))
    }

    /// pg_dump -Fd -j into a private work directory, then every file sealed into
    /// `<dir>/dump/`.
    async fn directory(&self) -> Result<Vec<FileEntry>, Error> {
        let work = WorkDir::create(self.root, "dump")?;
        let plain = work.path.join("dump");
        let mut args = self.args.clone();
        args.push(format!("--jobs={}", self.jobs).into());
        args.push("--file".into());
        args.push(plain.clone().into());
        let child = tools::spawn(self.tools, Tool::PgDump, &args, &self.target, Pipes { stdin: false, stdout: false })?;
        let waiting = child.wait();
        tokio::pin!(waiting);
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                done = &mut waiting => { done?; break; }
                _ = ticker.tick() => self.report("dump", dir_size(&plain)),
            }
        }
        let stored_dir = self.dir.join("dump");
        std::fs::create_dir(&stored_dir).map_err(Error::io("create", &stored_dir))?;
        let mut names: Vec<String> = std::fs::read_dir(&plain)
            .map_err(Error::io("list", &plain))?
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let (packing, key, id) = (self.packing, self.key.clone(), self.id.to_owned());
        let report = |bytes| self.report("store", bytes);
        let entries = threads::for_each_file(names, self.jobs, &report, move |name: String, counter: &AtomicU64| {
            let file_name = stored_name(&name, packing.compression, key.is_some());
            let stored = format!("dump/{file_name}");
            let source = plain.join(&name);
            let aad = pipeline::associated_data(&id, &name);
            let sealed = pipeline::seal_file(&source, &stored_dir.join(&file_name), packing, key.as_ref().map(|k| (k, aad)), |n| {
                counter.fetch_add(n, Ordering::Relaxed);
            })?;
            // The plaintext goes as soon as it is sealed, so the work directory never holds
            // more than the dump itself.
            let _ = std::fs::remove_file(&source);
            Ok(sealed.entry(&name, &stored))
        })
        .await?;
        drop(work);
        Ok(entries)
    }
}

/// A tool's stdout → pipeline → `path`. The pipe is read by the sealing thread itself: no
/// hand-off between threads per chunk. On a sealing error (a full disk, say) the caller drops
/// `child`, which kills the tool.
pub(crate) async fn seal_output(
    child: &mut tools::Child,
    path: std::path::PathBuf,
    packing: pipeline::Packing,
    key: Option<DataKey>,
    aad: Vec<u8>,
    report: &(dyn Fn(u64) + Send + Sync),
) -> Result<pipeline::Sealed, Error> {
    let tool = child.name();
    let mut stdout = child
        .take_stdout()
        .into_owned_fd()
        .map(std::fs::File::from)
        .map_err(Error::io("read the output of", Path::new(tool)))?;
    let counter = Arc::new(AtomicU64::new(0));
    let sealing = {
        let counter = counter.clone();
        tokio::task::spawn_blocking(move || {
            let mut sealer = Sealer::create(&path, packing, key.as_ref().map(|k| (k, aad)))?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = match stdout.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(err) => return Err(Error::io("read the output of", Path::new(tool))(err)),
                };
                sealer.write(&buf[..n])?;
                counter.fetch_add(n as u64, Ordering::Relaxed);
            }
            sealer.finish()
        })
    };
    threads::watch(sealing, &counter, report).await
}

/// Bytes in the files of `dir` (not recursive; pg_dump's directory format is flat).
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_before_anything_runs() {
        let ok = CreateRequest { name: Some("nightly".into()), ..Default::default() };
        assert!(validate(&ok).is_ok());
        let cases = [
            CreateRequest { name: Some(String::new()), ..Default::default() },
            CreateRequest { name: Some("a\nb".into()), ..Default::default() },
            CreateRequest { tables: Some(vec![]), ..Default::default() },
            CreateRequest { tables: Some(vec!["t".into()]), kind: BackupKind::SchemaOnly, ..Default::default() },
            CreateRequest { pinned_by: Some("x".repeat(201)), ..Default::default() },
        ];
        for req in cases {
            assert!(matches!(validate(&req), Err(Error::InvalidRequest { .. })), "{req:?}");
        }
    }

    #[test]
    fn dump_arguments_follow_the_request() {
        let req = CreateRequest { kind: BackupKind::DataOnly, format: Format::Directory, tables: Some(vec!["public.a".into()]), ..Default::default() };
        let args: Vec<String> = dump_args(&req, "00000003-1").into_iter().map(|a| a.into_string().unwrap()).collect();
        for expected in ["--format=directory", "--compress=1", "--snapshot=00000003-1", "--data-only", "--table=public.a"] {
            assert!(args.iter().any(|a| a == expected), "{expected} missing from {args:?}");
        }
        assert_eq!(stored_name("toc.dat", Compression::Zstd, true), "toc.dat.zst.enc");
        assert_eq!(stored_name("dump", Compression::None, false), "dump");
    }
}
