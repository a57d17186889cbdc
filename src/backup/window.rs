//! What the WAL archive makes recoverable: per base backup its window (from the moment it
//! was complete to the archiving time of the last segment of the unbroken run after its
//! start, on its timeline), the merged windows, every gap, and pruning the archive down to
//! what the oldest base backup needs. Pure functions of the archive's records and the
//! manifests; recovery itself is `pitr.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::location;
use super::manifest::{BaseInfo, Manifest};
use super::wal::{self, Archived, WalFile};
use super::{BackupKind, Error, Settings};

/// The WAL archive and what it makes recoverable.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PitrStatus {
    /// `backup.pitr` is on.
    pub enabled: bool,
    pub archive: PathBuf,
    pub archived_segments: usize,
    pub archived_bytes: u64,
    pub last_archived: Option<Archived>,
    pub base_backups: Vec<BaseWindow>,
    /// The times a recovery can target (base-backup windows, merged).
    pub recoverable: Vec<Window>,
    /// Segments missing between the first and the last archived segment of a timeline.
    pub gaps: Vec<Gap>,
    /// Where the WAL comes from and the measured RPO against `backup.rpo_target`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal: Option<super::WalFreshness>,
    /// The off-site copies (`backup.remote`): what is still only local, and the uploads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<super::remote::Status>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct BaseWindow {
    pub backup_id: String,
    pub timeline: u32,
    pub start_segment: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The last segment of the unbroken run of archived WAL after the backup's start.
    pub last_segment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Gap {
    pub timeline: u32,
    /// The first and last missing segment.
    pub first_missing: String,
    pub last_missing: String,
    pub segments: u64,
}

/// The archive directory of `root`.
pub(crate) fn archive_dir(root: &Path) -> PathBuf {
    root.join(wal::ARCHIVE_DIR)
}

/// The archive, its gaps and the recoverable windows.
pub fn status(settings: &Settings) -> Result<PitrStatus, Error> {
    let root = location::root(settings)?;
    let archive = archive_dir(&root);
    let files = wal::list(&archive)?;
    let bases = base_backups(&root)?;
    let size = bases.first().map_or(wal::DEFAULT_SEGMENT_SIZE, |(_, b)| b.wal_segment_size);
    let segments = segments_by_timeline(&files, size);
    let streamed = streamed(&archive, size);
    let base_backups: Vec<BaseWindow> = bases.iter().map(|(m, b)| window_of(&m.id, b, &segments, &streamed)).collect();
    let last_archived = files
        .values()
        .filter(|a| matches!(WalFile::parse(&a.name), Some(WalFile::Segment { .. })))
        .max_by_key(|a| a.archived_at)
        .cloned();
    Ok(PitrStatus {
        enabled: settings.pitr.is_some(),
        archive,
        archived_segments: segments.values().map(BTreeMap::len).sum(),
        archived_bytes: files.values().map(|a| a.bytes).sum(),
        last_archived,
        recoverable: merge(base_backups.iter().map(|w| Window { from: w.from, to: w.to }).collect()),
        base_backups,
        gaps: gaps(&segments, size),
        wal: None,
        remote: None,
    })
}

/// The segments in `pg_receivewal`'s directory not archived yet (completed, or being written
/// as `.partial`), by timeline and number, with when they were last written: recovery reads
/// them too (`wal::fetch`), so they extend a window.
fn streamed(archive: &Path, size: u64) -> BTreeMap<(u32, u64), (String, DateTime<Utc>)> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(archive.join(super::stream::STREAM_DIR)) else { return out };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let name = file.strip_suffix(".partial").unwrap_or(&file);
        let (Some(WalFile::Segment { timeline, log, seg }), Ok(Ok(modified))) =
            (WalFile::parse(name), entry.metadata().map(|m| m.modified()))
        else {
            continue;
        };
        out.insert((timeline, wal::segment_number(log, seg, size)), (name.to_owned(), DateTime::<Utc>::from(modified)));
    }
    out
}

/// Removes the archived WAL no remaining base backup needs: everything before the start of
/// the oldest. Without any base backup nothing is removed (WAL without a base backup is
/// useless, but deleting it all is how archives silently lose their history).
pub(crate) fn prune_archive(settings: &Settings) -> Result<usize, Error> {
    let root = location::root(settings)?;
    let Some((manifest, oldest)) = base_backups(&root)?.into_iter().min_by_key(|(_, b)| b.finished_at) else {
        return Ok(0);
    };
    let Some(WalFile::Segment { log, seg, .. }) = WalFile::parse(&oldest.start_segment) else {
        return Ok(0);
    };
    let size = oldest.wal_segment_size;
    let removed = wal::prune(&archive_dir(&root), oldest.timeline, wal::segment_number(log, seg, size), size)?;
    if removed > 0 {
        tracing::info!(removed, oldest_base_backup = %manifest.id, "pruned archived WAL older than the oldest base backup");
    }
    Ok(removed)
}

/// Every complete base backup, oldest first.
pub(crate) fn base_backups(root: &Path) -> Result<Vec<(Manifest, BaseInfo)>, Error> {
    let mut bases: Vec<(Manifest, BaseInfo)> = location::scan(root)?
        .into_iter()
        .filter(|(_, m)| m.kind == BackupKind::Base)
        .filter_map(|(_, m)| m.base.clone().map(|b| (m, b)))
        .collect();
    bases.sort_by_key(|(_, b)| b.finished_at);
    Ok(bases)
}

/// Archived segment numbers per timeline, with their records.
fn segments_by_timeline(files: &BTreeMap<String, Archived>, size: u64) -> BTreeMap<u32, BTreeMap<u64, &Archived>> {
    let mut out: BTreeMap<u32, BTreeMap<u64, &Archived>> = BTreeMap::new();
    for (name, record) in files {
        if let Some(WalFile::Segment { timeline, log, seg }) = WalFile::parse(name) {
            out.entry(timeline).or_default().insert(wal::segment_number(log, seg, size), record);
        }
    }
    out
}

fn window_of(
    id: &str,
    base: &BaseInfo,
    segments: &BTreeMap<u32, BTreeMap<u64, &Archived>>,
    streamed: &BTreeMap<(u32, u64), (String, DateTime<Utc>)>,
) -> BaseWindow {
    let size = base.wal_segment_size;
    let start = match WalFile::parse(&base.start_segment) {
        Some(WalFile::Segment { log, seg, .. }) => wal::segment_number(log, seg, size),
        _ => 0,
    };
    let mut last: Option<(String, DateTime<Utc>)> = None;
    let mut n = start;
    let run = segments.get(&base.timeline);
    while let Some(record) = run.and_then(|r| r.get(&n)) {
        last = Some((record.name.clone(), record.archived_at));
        n += 1;
    }
    // What pg_receivewal holds continues the run.
    while let Some((name, written)) = streamed.get(&(base.timeline, n)) {
        last = Some((name.clone(), *written));
        n += 1;
    }
    BaseWindow {
        backup_id: id.to_owned(),
        timeline: base.timeline,
        start_segment: base.start_segment.clone(),
        from: base.finished_at,
        to: last.as_ref().map_or(base.finished_at, |(_, at)| (*at).max(base.finished_at)),
        last_segment: last.map(|(name, _)| name),
    }
}

/// Overlapping windows joined.
fn merge(mut windows: Vec<Window>) -> Vec<Window> {
    windows.sort_by_key(|w| w.from);
    let mut out: Vec<Window> = Vec::new();
    for w in windows {
        match out.last_mut() {
            Some(last) if w.from <= last.to => last.to = last.to.max(w.to),
            _ => out.push(w),
        }
    }
    out
}

fn gaps(segments: &BTreeMap<u32, BTreeMap<u64, &Archived>>, size: u64) -> Vec<Gap> {
    let mut out = Vec::new();
    for (&timeline, run) in segments {
        let mut previous: Option<u64> = None;
        for &n in run.keys() {
            if let Some(p) = previous
                && n > p + 1
            {
                let name = |segno: u64| wal::segment_name(timeline, segno * size, size);
                out.push(Gap { timeline, first_missing: name(p + 1), last_missing: name(n - 1), segments: n - p - 1 });
            }
            previous = Some(n);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archived(name: &str, minute: u32) -> (String, Archived) {
        let at = format!("2026-11-29T10:{minute:02}:00Z").parse().unwrap();
        (name.to_owned(), Archived { name: name.to_owned(), bytes: 16, sha256: String::new(), archived_at: at })
    }

    #[test]
    fn windows_end_at_the_first_missing_segment_and_gaps_are_named() {
        let size = wal::DEFAULT_SEGMENT_SIZE;
        let files: BTreeMap<String, Archived> = [
            archived("000000010000000000000002", 1),
            archived("000000010000000000000003", 2),
            archived("000000010000000000000004", 3),
            archived("000000010000000000000007", 9),
            archived("000000010000000000000008", 10),
        ]
        .into_iter()
        .collect();
        let segments = segments_by_timeline(&files, size);
        let base = BaseInfo {
            timeline: 1,
            start_lsn: "0/2000028".into(),
            end_lsn: "0/2000100".into(),
            start_segment: "000000010000000000000002".into(),
            wal_segment_size: size,
            finished_at: "2026-11-29T10:00:30Z".parse().unwrap(),
        };
        let window = window_of("b1", &base, &segments, &BTreeMap::new());
        assert_eq!(window.last_segment.as_deref(), Some("000000010000000000000004"));
        assert_eq!(window.to, "2026-11-29T10:03:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(
            gaps(&segments, size),
            vec![Gap {
                timeline: 1,
                first_missing: "000000010000000000000005".into(),
                last_missing: "000000010000000000000006".into(),
                segments: 2
            }]
        );
        // A segment being streamed continues the run.
        let streamed = [((1, 5), ("000000010000000000000005".to_owned(), "2026-11-29T10:04:00Z".parse().unwrap()))].into_iter().collect();
        let window = window_of("b1", &base, &segments, &streamed);
        assert_eq!(window.last_segment.as_deref(), Some("000000010000000000000005"));
        assert_eq!(window.to, "2026-11-29T10:04:00Z".parse::<DateTime<Utc>>().unwrap());
        let t = |m: u32| format!("2026-11-29T10:{m:02}:00Z").parse::<DateTime<Utc>>().unwrap();
        assert_eq!(
            merge(vec![Window { from: t(5), to: t(9) }, Window { from: t(0), to: t(3) }, Window { from: t(2), to: t(4) }]),
            vec![Window { from: t(0), to: t(4) }, Window { from: t(5), to: t(9) }]
        );
    }
}
