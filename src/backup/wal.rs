//! The WAL archive behind point-in-time recovery: `<location>/wal/`, filled by the managed
//! server's `archive_command` (`dbagent wal push`) and read back by a recovering server's
//! `restore_command` (`dbagent wal fetch`). `stream.rs` fills the same archive from a server
//! dbagent does not run.
//!
//! Each file PostgreSQL archives (`%f`) is stored as `<name>.zst` (zstd) with a sidecar
//! `<name>.json` holding the SHA-256 and size of the original and when it was archived. The
//! sidecar is written last: a file is archived exactly when its sidecar exists. Both are
//! written to a temporary name, fsynced, renamed, and the directory fsynced, so a crash (or
//! PostgreSQL killing the command) never leaves a half file under the real name.
//!
//! Pushing is idempotent, because PostgreSQL retries when it did not see our exit status: a
//! file already archived with the same SHA-256 succeeds without writing; one with a different
//! SHA-256 fails (two clusters archiving into one location, or a reused name), so the archive
//! never silently changes under a backup that relies on it.
//!
//! Not encrypted: `archive_command` runs in the server's environment, which does not hold the
//! backup key. The directory is private to the server's OS user (mode 0700).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Error;
use super::key::encode_hex;

/// The archive's directory inside the backup location.
pub const ARCHIVE_DIR: &str = "wal";
/// WAL segments compress well and are written once; level 3 is zstd's default.
const ZSTD_LEVEL: i32 = 3;
/// The segment size of a default `initdb` (what the managed instance uses).
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// What the sidecar `<name>.json` records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Archived {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
    pub archived_at: DateTime<Utc>,
}

/// What [`push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Stored,
    /// The same file (same SHA-256) was already archived: PostgreSQL retried.
    AlreadyThere,
}

/// The kinds of file PostgreSQL archives, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum WalFile {
    /// `TTTTTTTTXXXXXXXXYYYYYYYY`: a WAL segment of timeline T, number X·(4 GiB/size)+Y.
    Segment { timeline: u32, log: u32, seg: u32 },
    /// `TTTTTTTT.history`: how timeline T branched off.
    History { timeline: u32 },
    /// `<segment>.XXXXXXXX.backup`: a base backup's start and stop positions.
    BackupHistory,
    /// `<segment>.partial`: the last, incomplete segment of a timeline a promotion ended.
    Partial,
}

impl WalFile {
    /// Parses a name PostgreSQL passed as `%f`; `None` for anything else (a path, say).
    pub fn parse(name: &str) -> Option<WalFile> {
        let hex = |s: &str| s.len() == 8 && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase());
        let num = |s: &str| u32::from_str_radix(s, 16).ok();
        let segment = |s: &str| -> Option<(u32, u32, u32)> {
            if s.len() != 24 || !(hex(&s[..8]) && hex(&s[8..16]) && hex(&s[16..])) {
                return None;
            }
            Some((num(&s[..8])?, num(&s[8..16])?, num(&s[16..])?))
        };
        if let Some((timeline, log, seg)) = segment(name) {
            return Some(WalFile::Segment { timeline, log, seg });
        }
        if let Some(t) = name.strip_suffix(".history") {
            return hex(t).then(|| WalFile::History { timeline: num(t).unwrap_or(0) });
        }
        if let Some(s) = name.strip_suffix(".partial") {
            return segment(s).map(|_| WalFile::Partial);
        }
        if let Some(rest) = name.strip_suffix(".backup") {
            let (s, offset) = rest.split_once('.')?;
            return (segment(s).is_some() && hex(offset)).then_some(WalFile::BackupHistory);
        }
        None
    }
}

/// A WAL position (`X/Y`) as a number.
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// The segment holding `lsn` on `timeline`, for segments of `size` bytes.
pub fn segment_name(timeline: u32, lsn: u64, size: u64) -> String {
    let segno = lsn / size;
    let per_log = 0x1_0000_0000 / size;
    format!("{timeline:08X}{:08X}{:08X}", segno / per_log, segno % per_log)
}

/// A segment's number (position in the WAL stream), for segments of `size` bytes.
pub fn segment_number(log: u32, seg: u32, size: u64) -> u64 {
    u64::from(log) * (0x1_0000_0000 / size) + u64::from(seg)
}

/// Stores the file PostgreSQL archives (`path` = `%p`, `name` = `%f`) in `archive`.
pub fn push(archive: &Path, path: &Path, name: &str) -> Result<Pushed, Error> {
    if WalFile::parse(name).is_none() {
        return Err(Error::invalid(format!("{name:?} is not a WAL file name")));
    }
    let sidecar = archive.join(format!("{name}.json"));
    if let Some(existing) = read_sidecar(&sidecar)? {
        let (bytes, sha256) = digest(path)?;
        if existing.sha256 == sha256 && existing.bytes == bytes {
            return Ok(Pushed::AlreadyThere);
        }
        return Err(Error::Conflict {
            reason: format!(
                "{name} is already archived with different contents; is another cluster archiving into {}?",
                archive.display()
            ),
        });
    }
    let stored = archive.join(format!("{name}.zst"));
    let tmp = archive.join(format!(".{name}.zst.tmp-{}", std::process::id()));
    let written = (|| -> io::Result<(u64, String)> {
        let mut source = BufReader::with_capacity(1 << 20, File::open(path)?);
        let mut out = zstd::stream::write::Encoder::new(File::create(&tmp)?, ZSTD_LEVEL)?;
        let copied = copy_hashing(&mut source, &mut out)?;
        out.finish()?.sync_all()?;
        std::fs::rename(&tmp, &stored)?;
        Ok(copied)
    })();
    let (bytes, sha256) = written.map_err(|err| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("archive", path)(err)
    })?;
    let record = Archived { name: name.to_owned(), bytes, sha256, archived_at: Utc::now() };
    if let Err(err) = write_atomically(&sidecar, &serde_json::to_vec(&record).expect("serializes")) {
        // No sidecar, no archived file (a full disk, say): the data goes too.
        let _ = std::fs::remove_file(&stored);
        return Err(err);
    }
    Ok(Pushed::Stored)
}

/// Restores the archived `name` to `dest` (`%p`), checking its SHA-256. `Ok(false)` when the
/// archive does not have it (PostgreSQL asks for files that may not exist, such as the
/// history file of the next timeline).
pub fn fetch(archive: &Path, name: &str, dest: &Path) -> Result<bool, Error> {
    if WalFile::parse(name).is_none() {
        return Err(Error::invalid(format!("{name:?} is not a WAL file name")));
    }
    let Some(record) = read_sidecar(&archive.join(format!("{name}.json")))? else {
        return fetch_streamed(archive, name, dest);
    };
    let stored = archive.join(format!("{name}.zst"));
    let tmp = dest.with_file_name(format!(
        ".{}.dbagent-tmp",
        dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let copied = (|| -> io::Result<(u64, String)> {
        let mut decoder = zstd::stream::read::Decoder::new(File::open(&stored)?)?;
        let mut out = File::create(&tmp)?;
        let copied = copy_hashing(&mut decoder, &mut out)?;
        out.sync_all()?;
        Ok(copied)
    })();
    let fail = |reason: String| {
        let _ = std::fs::remove_file(&tmp);
        Error::VerificationFailed { file: format!("{ARCHIVE_DIR}/{name}.zst"), reason }
    };
    let (bytes, sha256) = copied.map_err(|err| fail(format!("cannot be read back: {err}")))?;
    if bytes != record.bytes || sha256 != record.sha256 {
        return Err(fail("SHA-256 of the restored file differs from the one recorded when it was archived".into()));
    }
    std::fs::rename(&tmp, dest).map_err(Error::io("write", dest))?;
    Ok(true)
}

/// A segment the archive does not hold yet, from `pg_receivewal`'s directory
/// (`<archive>/streaming/`, see `stream.rs`): completed and not moved yet, or the one being
/// written (`<name>.partial`, padded to the segment size: PostgreSQL replays it up to its last
/// valid record). `Ok(false)` when neither is there.
fn fetch_streamed(archive: &Path, name: &str, dest: &Path) -> Result<bool, Error> {
    if !matches!(WalFile::parse(name), Some(WalFile::Segment { .. } | WalFile::History { .. })) {
        return Ok(false);
    }
    let dir = archive.join(super::stream::STREAM_DIR);
    let Some(source) = [dir.join(name), dir.join(format!("{name}.partial"))].into_iter().find(|p| p.is_file()) else {
        return Ok(false);
    };
    let tmp = dest.with_file_name(format!(
        ".{}.dbagent-tmp",
        dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let copied = (|| -> io::Result<()> {
        let mut from = File::open(&source)?;
        let mut out = File::create(&tmp)?;
        io::copy(&mut from, &mut out)?;
        out.sync_all()?;
        std::fs::rename(&tmp, dest)
    })();
    copied.map_err(|err| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("copy", &source)(err)
    })?;
    Ok(true)
}

/// Every archived file, by name (files being written, without a sidecar yet, are left out).
pub fn list(archive: &Path) -> Result<BTreeMap<String, Archived>, Error> {
    let mut found = BTreeMap::new();
    let entries = match std::fs::read_dir(archive) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(err) => return Err(Error::io("list", archive)(err)),
    };
    for entry in entries.filter_map(Result::ok) {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(name) = file.strip_suffix(".json") else { continue };
        if WalFile::parse(name).is_none() {
            continue;
        }
        match read_sidecar(&entry.path()) {
            Ok(Some(record)) if archive.join(format!("{name}.zst")).exists() => {
                found.insert(name.to_owned(), record);
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(file = %file, error = %err, "skipping an unreadable WAL archive record"),
        }
    }
    Ok(found)
}

/// Removes the archived segments (and backup history files) numbered below `keep_from` on
/// timelines up to `timeline`; history files are always kept. Returns how many were removed.
pub fn prune(archive: &Path, timeline: u32, keep_from: u64, size: u64) -> Result<usize, Error> {
    let mut removed = 0;
    for name in list(archive)?.into_keys() {
        if prunable(&name, timeline, keep_from, size) {
            // The sidecar first: without it the segment no longer counts as archived.
            let sidecar = archive.join(format!("{name}.json"));
            std::fs::remove_file(&sidecar).map_err(Error::io("remove", &sidecar))?;
            let _ = std::fs::remove_file(archive.join(format!("{name}.zst")));
            removed += 1;
        }
    }
    Ok(removed)
}

/// Whether [`prune`] removes the archived file `name` (the same rule for the remote copies).
pub(crate) fn prunable(name: &str, timeline: u32, keep_from: u64, size: u64) -> bool {
    let before = |segment: &str| match WalFile::parse(segment) {
        Some(WalFile::Segment { timeline: t, log, seg }) => t <= timeline && segment_number(log, seg, size) < keep_from,
        _ => false,
    };
    match WalFile::parse(name) {
        Some(WalFile::Segment { .. }) => before(name),
        Some(WalFile::BackupHistory | WalFile::Partial) => name.get(..24).is_some_and(before),
        _ => false,
    }
}

fn read_sidecar(path: &Path) -> Result<Option<Archived>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|err| Error::VerificationFailed {
            file: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            reason: format!("unreadable archive record: {err}"),
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::io("read", path)(err)),
    }
}

fn digest(path: &Path) -> Result<(u64, String), Error> {
    let mut file = File::open(path).map_err(Error::io("read", path))?;
    copy_hashing(&mut file, &mut io::sink()).map_err(Error::io("read", path))
}

/// Copies `from` into `to`, returning the bytes copied and their hex SHA-256.
fn copy_hashing(from: &mut impl Read, to: &mut impl Write) -> io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        bytes += n as u64;
    }
    Ok((bytes, encode_hex(&hasher.finalize())))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    let write = || -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|err| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("write", path)(err)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_postgres_archives_parse_and_nothing_else_does() {
        assert_eq!(
            WalFile::parse("000000010000000A000000FF"),
            Some(WalFile::Segment { timeline: 1, log: 10, seg: 255 })
        );
        assert_eq!(WalFile::parse("00000002.history"), Some(WalFile::History { timeline: 2 }));
        assert_eq!(WalFile::parse("000000010000000000000002.00000028.backup"), Some(WalFile::BackupHistory));
        assert_eq!(WalFile::parse("000000010000000000000002.partial"), Some(WalFile::Partial));
        for bad in ["", "../000000010000000000000002", "00000001000000000000000g", "000000010000000000000002.json", "x.history"] {
            assert_eq!(WalFile::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn lsns_map_to_the_segment_postgres_names() {
        assert_eq!(parse_lsn("0/2000028"), Some(0x2000028));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(segment_name(1, 0x2000028, DEFAULT_SEGMENT_SIZE), "000000010000000000000002");
        assert_eq!(segment_name(3, (1 << 32) + 0xFF00_0000, DEFAULT_SEGMENT_SIZE), "0000000300000001000000FF");
        assert_eq!(segment_number(1, 0, DEFAULT_SEGMENT_SIZE), 256);
    }

    #[test]
    fn push_is_idempotent_refuses_a_different_file_and_fetch_checks() {
        let dir = std::env::temp_dir().join(format!("dbagent-wal-{}", uuid::Uuid::new_v4().simple()));
        let archive = dir.join("wal");
        std::fs::create_dir_all(&archive).unwrap();
        let segment = dir.join("seg");
        std::fs::write(&segment, vec![7u8; 100_000]).unwrap();
        let name = "000000010000000000000003";
        assert_eq!(push(&archive, &segment, name).unwrap(), Pushed::Stored);
        assert_eq!(push(&archive, &segment, name).unwrap(), Pushed::AlreadyThere);
        std::fs::write(&segment, vec![8u8; 100_000]).unwrap();
        assert!(matches!(push(&archive, &segment, name), Err(Error::Conflict { .. })));

        let out = dir.join("RECOVERYXLOG");
        assert!(fetch(&archive, name, &out).unwrap());
        assert_eq!(std::fs::read(&out).unwrap(), vec![7u8; 100_000]);
        assert!(!fetch(&archive, "00000002.history", &out).unwrap());

        // A damaged archive file is refused, and nothing is left at the destination.
        std::fs::remove_file(&out).unwrap();
        let stored = archive.join(format!("{name}.zst"));
        let good = std::fs::read(&stored).unwrap();
        let other = zstd::encode_all(&vec![9u8; 100_000][..], 3).unwrap();
        std::fs::write(&stored, other).unwrap();
        assert!(matches!(fetch(&archive, name, &out), Err(Error::VerificationFailed { .. })));
        assert!(!out.exists());
        std::fs::write(&stored, good).unwrap();

        assert_eq!(list(&archive).unwrap().len(), 1);
        assert_eq!(prune(&archive, 1, 4, DEFAULT_SEGMENT_SIZE).unwrap(), 1);
        assert!(list(&archive).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
