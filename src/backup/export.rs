//! `dbagent backup export ID --to PATH`: a backup's plaintext, as pg_dump wrote it, outside
//! dbagent's layout — decrypted, decompressed and checked against the manifest on the way — so
//! that plain `pg_restore` (or another tool) can read it:
//!
//! - a custom-format backup becomes one file, `pg_restore -d DB FILE`;
//! - a directory-format backup becomes a directory, `pg_restore -j N -d DB DIR`;
//! - a base backup becomes its `pg_basebackup` tar.
//!
//! The output is written under a temporary name beside `PATH` and renamed into place only when
//! every checksum matched, so a damaged backup never leaves a plausible-looking file behind.
//! It is readable by its owner only (it is the database in clear). An existing `PATH` is never
//! overwritten.

use std::fs::{self, File};
use std::io::BufWriter;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::create::Format;
use super::load::Backup;
use super::location;
use super::manifest::FileEntry;
use super::pipeline::{self, OpenFailure, Opener};
use super::{Error, Settings, threads};

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub backup_id: String,
    /// The file (custom format, base backup) or directory (directory format) written.
    pub path: PathBuf,
    pub format: Format,
    /// Plaintext bytes written.
    pub bytes: u64,
    /// How to restore it with PostgreSQL's own tools.
    pub restore_with: String,
}

/// Writes backup `given` (an id or a path in the location) to `to`.
pub async fn export(settings: &Settings, given: &str, to: &Path) -> Result<Exported, Error> {
    if to.exists() {
        return Err(Error::invalid(format!("{} already exists; export never overwrites", to.display())));
    }
    let root = location::root(settings)?;
    let backup = Backup::open(&root, settings, given).await?;
    let manifest = backup.manifest.clone();
    for entry in &manifest.files {
        // The names come from the manifest: never let one climb out of the output.
        if entry.name.is_empty() || entry.name.contains('/') || entry.name.starts_with('.') {
            return Err(Error::VerificationFailed { file: "manifest.json".into(), reason: format!("unexpected file name {:?}", entry.name) });
        }
    }
    let one_file = manifest.files.len() == 1 && manifest.format != Format::Directory;
    let to = to.to_path_buf();
    let target = to.clone();
    let bytes = threads::blocking(move || {
        let partial = partial_path(&target);
        let result = if one_file { write_file(&backup, &backup.manifest.files[0], &partial) } else { write_dir(&backup, &partial) };
        match result {
            Ok(bytes) => {
                fs::rename(&partial, &target).map_err(Error::io("rename", &partial))?;
                Ok(bytes)
            }
            Err(err) => {
                let _ = if one_file { fs::remove_file(&partial) } else { fs::remove_dir_all(&partial) };
                Err(err)
            }
        }
    })
    .await?;
    let restore_with = match (manifest.kind, one_file) {
        (super::BackupKind::Base, _) => format!("tar -xf {} -C NEW_DATA_DIR (a pg_basebackup of the whole cluster)", to.display()),
        (_, true) => format!("pg_restore -d DATABASE {}", to.display()),
        (_, false) => format!("pg_restore -j 4 -d DATABASE {}", to.display()),
    };
    Ok(Exported { backup_id: manifest.id, path: to, format: manifest.format, bytes, restore_with })
}

fn partial_path(to: &Path) -> PathBuf {
    let name = to.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "export".into());
    to.with_file_name(format!(".{name}.partial"))
}

fn write_file(backup: &Backup, entry: &FileEntry, path: &Path) -> Result<u64, Error> {
    let file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(Error::io("create", path))?;
    let mut out = BufWriter::new(file);
    let aad = pipeline::associated_data(&backup.manifest.id, &entry.name);
    let opener = Opener::open(&backup.dir, entry, backup.manifest.compression, backup.key.as_ref().map(|k| (k, aad)))?;
    let mut bytes = 0;
    opener.copy_to(&mut out, |n| bytes += n).map_err(|failure| match failure {
        OpenFailure::Backup(err) => err,
        OpenFailure::Sink(err) => Error::io("write", path)(err),
    })?;
    let file = out.into_inner().map_err(|e| Error::io("write", path)(e.into_error()))?;
    file.sync_all().map_err(Error::io("sync", path))?;
    Ok(bytes)
}

fn write_dir(backup: &Backup, dir: &Path) -> Result<u64, Error> {
    location::create_private_dir(dir)?;
    let mut total = 0;
    for entry in &backup.manifest.files {
        total += write_file(backup, entry, &dir.join(&entry.name))?;
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io("sync", dir))?;
    Ok(total)
}
