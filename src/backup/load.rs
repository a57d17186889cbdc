//! Reading a backup into `pg_restore`: opening it (location, manifest, data key, tools able
//! to read its archive) and running a [`Plan`] as one or more pg_restore passes.
//!
//! Every stored file is read through the pipeline, so every restore (and every trial restore
//! of `verify`) re-checks every checksum; a damaged backup fails naming the file, whatever
//! pg_restore said about the truncated input it got. Custom-format backups are streamed into
//! pg_restore's stdin (one job); directory-format backups are decrypted into a private work
//! directory inside the location and restored with `pg_restore -j jobs` from there.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::db::PgConfig;

use super::create::{Format, Progress};
use super::database::Admin;
use super::key::DataKey;
use super::location::{self, WorkDir};
use super::manifest::{FileEntry, Manifest};
use super::pipeline::{self, OpenFailure, Opener};
use super::threads::{self, Tolerant};
use super::tools::{self, Pipes, Target, Tool, Tools};
use super::{Error, Settings};

/// A backup opened for reading: where it is, what it is, and its data key.
pub(crate) struct Backup {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub key: Option<DataKey>,
}

impl Backup {
    /// Resolves `given` inside the location and derives the backup's data key (on a blocking
    /// thread: Argon2id is deliberately slow).
    pub(crate) async fn open(root: &Path, settings: &Settings, given: &str) -> Result<Backup, Error> {
        // A backup only in the remote store is downloaded into the location first.
        super::remote::fetch_backup(settings, given).await?;
        let (dir, manifest) = location::resolve(root, given)?;
        let key = match (manifest.encryption.clone(), settings.encryption.clone()) {
            (None, _) => None,
            (Some(_), None) => return Err(Error::KeyRequired { id: manifest.id.clone() }),
            (Some(info), Some(key)) => {
                let id = manifest.id.clone();
                Some(threads::blocking(move || key.for_backup(&id, &info)).await?)
            }
        };
        Ok(Backup { dir, manifest, key })
    }

    /// `pg_restore` for the server `admin` is on, and able to read this archive.
    pub(crate) async fn tools(&self, settings: &Settings, admin: &Admin) -> Result<Tools, Error> {
        let server = tools::server_major(admin.server_version_num().await?);
        let tools = tools::find(settings.bin_dir.as_deref(), server.max(self.manifest.pg_dump_major)).await?;
        if tools.major < self.manifest.pg_dump_major {
            return Err(Error::ToolTooOld {
                binary: tools.dir.join("pg_restore"),
                found: tools.major,
                needed: self.manifest.pg_dump_major,
                needed_for: "this backup's archive",
            });
        }
        Ok(tools)
    }

    /// `tables`, plus the partitions of any partitioned table among them (pg_restore's `-t`
    /// takes a partitioned table's definition, not its partitions' rows).
    pub(crate) fn expand(&self, tables: &[String]) -> Vec<String> {
        let mut wanted: Vec<String> = tables.to_vec();
        let matches = |entry: &str, name: &str| entry == name || unqualified(entry) == unqualified(name);
        loop {
            let before = wanted.len();
            for t in &self.manifest.tables {
                let Some(parent) = &t.partition_of else { continue };
                if wanted.iter().any(|w| matches(parent, w)) && !wanted.iter().any(|w| matches(&t.table, w)) {
                    wanted.push(t.table.clone());
                }
            }
            if wanted.len() == before {
                return wanted;
            }
        }
    }
}

/// `table` of `schema.table` (quotes removed).
fn unqualified(name: &str) -> String {
    let last = match name.rsplit_once('.') {
        Some((_, table)) => table,
        None => name,
    };
    last.trim_matches('"').to_owned()
}

/// pg_restore's `-n`/`-t` for `tables`. `-n` is given only when every name is qualified
/// (pg_restore combines all `-n` with all `-t`).
fn table_args(tables: &[String]) -> Vec<OsString> {
    let mut args = Vec::new();
    let qualified: Vec<(String, String)> = tables
        .iter()
        .filter_map(|t| t.rsplit_once('.').map(|(s, n)| (s.trim_matches('"').to_owned(), n.trim_matches('"').to_owned())))
        .collect();
    if qualified.len() == tables.len() {
        let mut schemas: Vec<&String> = qualified.iter().map(|(s, _)| s).collect();
        schemas.sort();
        schemas.dedup();
        for schema in schemas {
            args.push(format!("--schema={schema}").into());
        }
    }
    for table in tables {
        args.push(format!("--table={}", unqualified(table)).into());
    }
    args
}

/// What pg_restore is asked to do, as one or more passes.
pub(crate) enum Plan {
    /// Everything in the archive.
    Whole,
    /// The whole schema, then the data of `tables`.
    SchemaThenData { tables: Vec<String> },
    /// Data only (of `tables`, or all), in one transaction, into existing tables.
    DataInto { tables: Option<Vec<String>> },
}

impl Plan {
    /// The argument lists of the passes; `jobs` is given to passes that may use it.
    fn passes(&self, jobs: Option<u32>) -> Vec<Vec<OsString>> {
        let parallel = |mut args: Vec<OsString>| {
            if let Some(jobs) = jobs.filter(|j| *j > 1) {
                args.push(format!("--jobs={jobs}").into());
            }
            args
        };
        match self {
            Plan::Whole => vec![parallel(vec!["--exit-on-error".into()])],
            Plan::SchemaThenData { tables } => {
                let mut data: Vec<OsString> = vec!["--exit-on-error".into(), "--data-only".into(), "--disable-triggers".into()];
                data.extend(table_args(tables));
                vec![parallel(vec!["--exit-on-error".into(), "--schema-only".into()]), parallel(data)]
            }
            Plan::DataInto { tables } => {
                let mut args: Vec<OsString> = vec!["--exit-on-error".into(), "--data-only".into(), "--single-transaction".into()];
                if let Some(tables) = tables {
                    args.extend(table_args(tables));
                }
                vec![args]
            }
        }
    }
}

/// One restore's reading side: the backup, the tools, and where to report progress.
pub(crate) struct Load<'a> {
    pub backup: &'a Backup,
    pub tools: &'a Tools,
    pub root: &'a Path,
    pub jobs: u32,
    pub started: Instant,
    pub progress: &'a (dyn Fn(Progress) + Send + Sync),
    /// Recompute the plaintext's SHA-256 too (verification); a restore checks the stored
    /// bytes' SHA-256 and the decoders' own checks only (see [`Opener::open_for_restore`]).
    pub hash_plaintext: bool,
}

impl Load<'_> {
    fn report(&self, phase: &'static str, bytes: u64) {
        (self.progress)(Progress { phase, bytes, elapsed: self.started.elapsed() });
    }

    /// Runs `plan` against the database `target`; returns the plaintext bytes read.
    pub(crate) async fn run(&self, target: &PgConfig, plan: &Plan) -> Result<u64, Error> {
        let dbname = target.get_dbname().unwrap_or_default().to_owned();
        let target = Target::new(target, &dbname);
        match self.backup.manifest.format {
            Format::Custom => {
                let entry = self.backup.manifest.files.first().ok_or_else(|| Error::VerificationFailed {
                    file: "manifest.json".to_owned(),
                    reason: "it lists no file".to_owned(),
                })?;
                let mut bytes = 0;
                for args in plan.passes(None) {
                    bytes = self.stream(entry, &target, &args).await?;
                }
                Ok(bytes)
            }
            Format::Directory => {
                let work = WorkDir::create(self.root, "restore")?;
                let plain = work.path.join("dump");
                let bytes = self.decrypt_all(&plain).await?;
                for mut args in plan.passes(Some(self.jobs)) {
                    args.push(plain.clone().into());
                    let child = tools::spawn(self.tools, Tool::PgRestore, &args, &target, Pipes { stdin: false, stdout: false })?;
                    child.wait().await?;
                }
                drop(work);
                Ok(bytes)
            }
        }
    }

    /// Streams the custom-format archive into one pg_restore's stdin. The whole file is read
    /// and checked even when pg_restore stops taking input early (it finished, or failed):
    /// the checksums then say whether the backup itself was the problem.
    async fn stream(&self, entry: &FileEntry, target: &Target, args: &[OsString]) -> Result<u64, Error> {
        let mut child = tools::spawn(self.tools, Tool::PgRestore, args, target, Pipes { stdin: true, stdout: false })?;
        let stdin = child
            .take_stdin()
            .into_owned_fd()
            .map(std::fs::File::from)
            .map_err(Error::io("write the input of", Path::new("pg_restore")))?;
        // A 1 MiB pipe instead of the default 64 KiB: a quarter of the wake-ups on each side
        // for the hundreds of megabytes a restore streams (best effort; the default works).
        let _ = nix::fcntl::fcntl(&stdin, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
        let counter = Arc::new(AtomicU64::new(0));
        let feeding = {
            let (dir, entry, counter) = (self.backup.dir.clone(), entry.clone(), counter.clone());
            let (compression, key, full) = (self.backup.manifest.compression, self.backup.key.clone(), self.hash_plaintext);
            let aad = pipeline::associated_data(&self.backup.manifest.id, &entry.name);
            tokio::task::spawn_blocking(move || -> Result<Result<(), Error>, Error> {
                let key = key.as_ref().map(|k| (k, aad));
                let opener = if full { Opener::open(&dir, &entry, compression, key)? } else { Opener::open_for_restore(&dir, &entry, compression, key)? };
                let mut sink = Tolerant::new(stdin);
                let read = opener.copy_to(&mut sink, |n| {
                    counter.fetch_add(n, Ordering::Relaxed);
                });
                // Dropping the sink closes pg_restore's stdin: end of input.
                drop(sink);
                match read {
                    Ok(()) => Ok(Ok(())),
                    Err(OpenFailure::Backup(err)) => Ok(Err(err)),
                    Err(OpenFailure::Sink(err)) => Err(Error::io("write the input of", Path::new("pg_restore"))(err)),
                }
            })
        };
        let report = |bytes| self.report("restore", bytes);
        // A damaged backup (or a wrong key) explains whatever pg_restore then said.
        threads::watch(feeding, &counter, &report).await??;
        child.wait().await?;
        Ok(counter.load(Ordering::Relaxed))
    }

    /// Decrypts and decompresses every file into `plain` (a new directory), checking each.
    async fn decrypt_all(&self, plain: &Path) -> Result<u64, Error> {
        location::create_private_dir(plain)?;
        let files = self.backup.manifest.files.clone();
        for entry in &files {
            let single = Path::new(&entry.name).components().count() == 1
                && matches!(Path::new(&entry.name).components().next(), Some(Component::Normal(_)));
            if !single {
                return Err(Error::VerificationFailed {
                    file: entry.stored.clone(),
                    reason: format!("the manifest gives it the unsafe name {:?}", entry.name),
                });
            }
        }
        let (dir, compression, key, id, full) = (
            self.backup.dir.clone(),
            self.backup.manifest.compression,
            self.backup.key.clone(),
            self.backup.manifest.id.clone(),
            self.hash_plaintext,
        );
        let out = plain.to_path_buf();
        let report = |bytes| self.report("read", bytes);
        let sizes = threads::for_each_file(files, self.jobs, &report, move |entry: FileEntry, counter| {
            let aad = pipeline::associated_data(&id, &entry.name);
            let key = key.as_ref().map(|k| (k, aad));
            let opener = if full { Opener::open(&dir, &entry, compression, key)? } else { Opener::open_for_restore(&dir, &entry, compression, key)? };
            let path = out.join(&entry.name);
            let file = std::fs::File::create(&path).map_err(Error::io("create", &path))?;
            let mut writer = std::io::BufWriter::new(file);
            match opener.copy_to(&mut writer, |n| {
                counter.fetch_add(n, Ordering::Relaxed);
            }) {
                Ok(()) => Ok(entry.raw_bytes),
                Err(OpenFailure::Backup(err)) => Err(err),
                Err(OpenFailure::Sink(err)) => Err(Error::io("write", &path)(err)),
            }
        })
        .await?;
        Ok(sizes.iter().sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn table_arguments_qualify_only_when_every_name_is_qualified() {
        let both = table_args(&["public.orders".into(), "sales.items".into()]);
        assert_eq!(strings(&both), ["--schema=public", "--schema=sales", "--table=orders", "--table=items"]);
        let mixed = table_args(&["public.orders".into(), "items".into()]);
        assert_eq!(strings(&mixed), ["--table=orders", "--table=items"]);
        let quoted = table_args(&["\"My Schema\".\"My Table\"".into()]);
        assert_eq!(strings(&quoted), ["--schema=My Schema", "--table=My Table"]);
    }

    #[test]
    fn plans_become_passes() {
        let whole = Plan::Whole.passes(Some(4));
        assert_eq!(strings(&whole[0]), ["--exit-on-error", "--jobs=4"]);
        let tables = Plan::SchemaThenData { tables: vec!["orders".into()] }.passes(None);
        assert_eq!(tables.len(), 2);
        assert!(strings(&tables[0]).contains(&"--schema-only".to_owned()));
        assert!(strings(&tables[1]).contains(&"--table=orders".to_owned()));
        let into = Plan::DataInto { tables: None }.passes(Some(4));
        assert!(strings(&into[0]).contains(&"--single-transaction".to_owned()));
        assert!(!strings(&into[0]).iter().any(|a| a.starts_with("--jobs")), "--single-transaction excludes -j");
    }
}
