//! The backup location on disk: one directory per backup, named by its id, holding its stored
//! files and `manifest.json`.
//!
//! A backup is created under a hidden name (`.creating-<id>`) with `.in-progress` locked
//! (an OS file lock held for as long as its creator lives), renamed to `<id>` and filled; its
//! manifest is written last. Directories named like an id but without a manifest are
//! incomplete: listing removes them once nobody holds their lock. Deletion renames the
//! directory to `.deleting-<id>-<random>` first, so a backup disappears at once and whole.
//! Work directories (`.work-*`, plaintext for parallel dumps and restores) are locked the
//! same way and removed by their guard, or by listing after a crash.

use std::fs::File;
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, Utc};

use super::key::{encode_hex, fill_random};
use super::manifest::Manifest;
use super::{Error, Settings};

const IN_PROGRESS: &str = ".in-progress";
const CREATING: &str = ".creating-";
const DELETING: &str = ".deleting-";
const WORK: &str = ".work-";

/// The location as an absolute, existing directory.
pub(crate) fn root(settings: &Settings) -> Result<PathBuf, Error> {
    let location = std::path::absolute(&settings.location)
        .map_err(Error::io("resolve", &settings.location))?;
    std::fs::create_dir_all(&location).map_err(Error::io("create", &location))?;
    std::fs::canonicalize(&location).map_err(Error::io("resolve", &location))
}

/// `YYYYMMDDTHHMMSSmmmZ-xxxxxx`: sorts by time, unique across agents sharing a location.
pub(crate) fn new_id(at: DateTime<Utc>) -> Result<String, Error> {
    let mut random = [0u8; 3];
    fill_random(&mut random)?;
    Ok(format!("{}-{}", at.format("%Y%m%dT%H%M%S%3fZ"), encode_hex(&random)))
}

/// Whether `text` has the shape [`new_id`] gives.
pub(crate) fn is_id(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.len() != 26 {
        return false;
    }
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    digits(0..8)
        && bytes[8] == b'T'
        && digits(9..18)
        && bytes[18] == b'Z'
        && bytes[19] == b'-'
        && bytes[20..].iter().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// A backup directory being filled; removed on drop unless [`NewBackup::commit`]ted.
pub(crate) struct NewBackup {
    pub dir: PathBuf,
    /// Held (locked) until the guard drops, so listing knows we are alive.
    _lock: File,
    committed: bool,
}

impl NewBackup {
    pub(crate) fn create(root: &Path, id: &str) -> Result<NewBackup, Error> {
        let hidden = root.join(format!("{CREATING}{id}"));
        create_private_dir(&hidden)?;
        let lock = match lock_new(&hidden.join(IN_PROGRESS)) {
            Ok(lock) => lock,
            Err(err) => {
                let _ = std::fs::remove_dir_all(&hidden);
                return Err(err);
            }
        };
        let dir = root.join(id);
        if let Err(err) = std::fs::rename(&hidden, &dir) {
            let _ = std::fs::remove_dir_all(&hidden);
            return Err(Error::io("create", &dir)(err));
        }
        Ok(NewBackup {
            dir,
            _lock: lock,
            committed: false,
        })
    }

    /// The manifest is written: the backup is complete and stays.
    pub(crate) fn commit(mut self) {
        self.committed = true;
        let _ = std::fs::remove_file(self.dir.join(IN_PROGRESS));
    }
}

impl Drop for NewBackup {
    fn drop(&mut self) {
        if !self.committed {
            remove_backup_dir(&self.dir);
        }
    }
}

/// A locked scratch directory inside the location, removed on drop.
pub(crate) struct WorkDir {
    pub path: PathBuf,
    _lock: File,
}

impl WorkDir {
    pub(crate) fn create(root: &Path, purpose: &str) -> Result<WorkDir, Error> {
        let mut random = [0u8; 6];
        fill_random(&mut random)?;
        let path = root.join(format!("{WORK}{purpose}-{}", encode_hex(&random)));
        create_private_dir(&path)?;
        let lock = lock_new(&path.join(IN_PROGRESS))?;
        Ok(WorkDir { path, _lock: lock })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Err(err) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(path = %self.path.display(), error = %err, "could not remove a work directory");
        }
    }
}

/// A directory only its owner can read (it may hold plaintext).
pub(crate) fn create_private_dir(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(Error::io("create", path))
}

fn lock_new(path: &Path) -> Result<File, Error> {
    let file = File::create(path).map_err(Error::io("create", path))?;
    file.lock().map_err(Error::io("lock", path))?;
    Ok(file)
}

/// Whether the directory's creator is gone (its `.in-progress` is missing or unlocked).
fn abandoned(dir: &Path) -> bool {
    match File::open(dir.join(IN_PROGRESS)) {
        Ok(file) => file.try_lock().is_ok(),
        Err(err) => err.kind() == std::io::ErrorKind::NotFound,
    }
}

/// Removes a backup directory so that it vanishes at once: rename, then delete.
pub(crate) fn remove_backup_dir(dir: &Path) {
    let Some(parent) = dir.parent() else { return };
    let mut random = [0u8; 4];
    let _ = fill_random(&mut random);
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let doomed = parent.join(format!("{DELETING}{name}-{}", encode_hex(&random)));
    let target = match std::fs::rename(dir, &doomed) {
        Ok(()) => doomed,
        Err(_) => dir.to_path_buf(),
    };
    if let Err(err) = std::fs::remove_dir_all(&target) {
        tracing::warn!(path = %target.display(), error = %err, "could not remove a backup directory; listing retries");
    }
}

/// Every complete backup in the location (unsorted), after removing what crashed creators
/// and deleters left behind. An unreadable manifest is logged and skipped, not fatal: one
/// damaged backup must not hide the others.
pub(crate) fn scan(root: &Path) -> Result<Vec<(PathBuf, Manifest)>, Error> {
    let entries = std::fs::read_dir(root).map_err(Error::io("list", root))?;
    let mut found = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if name.starts_with(DELETING) {
            let _ = std::fs::remove_dir_all(&path);
        } else if name.starts_with(CREATING) || name.starts_with(WORK) {
            if abandoned(&path) {
                tracing::info!(path = %path.display(), "removing a work directory left by a crashed job");
                let _ = std::fs::remove_dir_all(&path);
            }
        } else if is_id(&name) {
            match Manifest::read(&path) {
                Ok(Some(manifest)) => found.push((path, manifest)),
                Ok(None) if abandoned(&path) => {
                    tracing::info!(backup_id = %name, "removing an incomplete backup (no manifest)");
                    remove_backup_dir(&path);
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(backup_id = %name, error = %err, "skipping a backup whose manifest cannot be read"),
            }
        }
    }
    Ok(found)
}

/// The directory and manifest of the backup `given` names: an id, or a path (absolute, or
/// relative to the location) to a backup directory or to a file inside one. Whatever it is
/// must resolve, symlinks followed, to a backup directly inside the location.
pub(crate) fn resolve(root: &Path, given: &str) -> Result<(PathBuf, Manifest), Error> {
    let not_found = || Error::NotFound { id: given.to_owned() };
    if given.trim().is_empty() || given.contains('\0') || given.len() > 1024 {
        return Err(Error::invalid(format!(
            "{:?} is not a backup id (ids look like 20260101T020000123Z-0a1b2c)",
            given.chars().take(64).collect::<String>()
        )));
    }
    // An absolute path replaces `root` in the join; a relative one is taken inside it.
    let candidate = root.join(given);
    // Whatever stops the path from resolving (missing, not a directory, a name too long),
    // there is no backup there.
    let Ok(real) = std::fs::canonicalize(&candidate) else { return Err(not_found()) };
    let Ok(inside) = real.strip_prefix(root) else {
        return Err(Error::OutsideLocation {
            path: PathBuf::from(given),
            location: root.to_path_buf(),
        });
    };
    let id = match inside.components().next() {
        Some(Component::Normal(first)) => first.to_string_lossy().into_owned(),
        _ => return Err(not_found()),
    };
    if !is_id(&id) {
        return Err(Error::invalid(format!(
            "{given:?} is neither a backup id nor a path to a backup in the location"
        )));
    }
    let dir = root.join(&id);
    match Manifest::read(&dir)? {
        Some(manifest) if manifest.id == id => Ok((dir, manifest)),
        Some(manifest) => Err(Error::VerificationFailed {
            file: format!("{id}/manifest.json"),
            reason: format!("it describes backup {}, not {id}", manifest.id),
        }),
        None => Err(not_found()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_one_shape() {
        let id = new_id(Utc::now()).unwrap();
        assert!(is_id(&id), "{id}");
        for bad in ["", "..", "20250101T020000123Z-ABCDEF", "20250101T020000123Z-abcde", "x0250101T020000123Z-abcdef", "20250101T020000123Z/abcdef"] {
            assert!(!is_id(bad), "{bad}");
        }
        let earlier = new_id("2025-01-01T00:00:00Z".parse().unwrap()).unwrap();
        let later = new_id("2025-01-01T00:00:00.001Z".parse().unwrap()).unwrap();
        assert!(earlier < later);
    }
}
