//! Pure decisions over the files and the applied list: what `up` and `down` would run, which
//! applied files drifted or went missing, which pending files are out of order. Nothing here
//! touches the database, so it is all tested with plain tables of cases.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{AppliedMigration, Error, Migration};

/// How far `down` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DownTarget {
    /// Revert this many of the newest applied migrations (`-1`, `-3`).
    Steps(u32),
    /// Revert every applied migration newer than this version.
    Version(i64),
    /// Revert everything.
    Base,
}

impl Default for DownTarget {
    fn default() -> Self {
        DownTarget::Steps(1)
    }
}

/// Parses `-N` (N ≥ 1 steps back), a version, or `base`.
pub fn parse_down_target(input: &str) -> Result<DownTarget, Error> {
    let text = input.trim();
    let invalid = || Error::InvalidDownTarget {
        input: input.to_string(),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if text.eq_ignore_ascii_case("base") {
        Ok(DownTarget::Base)
    } else if let Some(steps) = text.strip_prefix('-') {
        match steps.parse::<u32>() {
            Ok(n) if n >= 1 && all_digits(steps) => Ok(DownTarget::Steps(n)),
            _ => Err(invalid()),
        }
    } else if all_digits(text) {
        text.parse().map(DownTarget::Version).map_err(|_| invalid())
    } else {
        Err(invalid())
    }
}

/// Applied versions whose file still exists but has another checksum.
pub(crate) fn drifted(files: &[Migration], applied: &[AppliedMigration]) -> Vec<i64> {
    let by_version = index(files);
    applied
        .iter()
        .filter(|a| by_version.get(&a.version).is_some_and(|m| m.checksum != a.checksum))
        .map(|a| a.version)
        .collect()
}

/// Applied versions with no file any more.
pub(crate) fn missing(files: &[Migration], applied: &[AppliedMigration]) -> Vec<i64> {
    let by_version = index(files);
    applied
        .iter()
        .filter(|a| !by_version.contains_key(&a.version))
        .map(|a| a.version)
        .collect()
}

/// Files not applied yet, by version.
pub(crate) fn pending<'a>(files: &'a [Migration], applied: &[AppliedMigration]) -> Vec<&'a Migration> {
    let applied: BTreeMap<i64, ()> = applied.iter().map(|a| (a.version, ())).collect();
    files.iter().filter(|m| !applied.contains_key(&m.version)).collect()
}

/// Pending versions older than the newest applied one (gaps in the applied sequence).
pub(crate) fn out_of_order(pending: &[&Migration], applied: &[AppliedMigration]) -> Vec<i64> {
    let Some(newest) = applied.iter().map(|a| a.version).max() else {
        return Vec::new();
    };
    pending
        .iter()
        .filter(|m| m.version < newest)
        .map(|m| m.version)
        .collect()
}

/// The migrations `up` runs, in order: pending files up to `target` (a known version).
/// Refuses while any applied file drifted, and out-of-order files unless allowed.
pub(crate) fn up<'a>(
    files: &'a [Migration],
    applied: &[AppliedMigration],
    target: Option<i64>,
    allow_out_of_order: bool,
) -> Result<Vec<&'a Migration>, Error> {
    if let Some(version) = target {
        let known = files.iter().any(|m| m.version == version) || applied.iter().any(|a| a.version == version);
        if !known {
            return Err(Error::UnknownVersion { version });
        }
    }
    let versions = drifted(files, applied);
    if !versions.is_empty() {
        return Err(Error::Drift { versions });
    }
    let mut plan = pending(files, applied);
    plan.retain(|m| target.is_none_or(|t| m.version <= t));
    let versions = out_of_order(&plan, applied);
    if !versions.is_empty() && !allow_out_of_order {
        return Err(Error::OutOfOrder { versions });
    }
    Ok(plan)
}

/// The migrations `down` reverts, newest first. Every one must have a file with a down script.
pub(crate) fn down<'a>(
    files: &'a [Migration],
    applied: &[AppliedMigration],
    target: DownTarget,
) -> Result<Vec<&'a Migration>, Error> {
    let newest_first = applied.iter().rev().map(|a| a.version);
    let versions: Vec<i64> = match target {
        DownTarget::Base => newest_first.collect(),
        DownTarget::Steps(n) if n as usize > applied.len() => {
            return Err(Error::NotEnoughApplied {
                requested: n,
                applied: applied.len(),
            });
        }
        DownTarget::Steps(n) => newest_first.take(n as usize).collect(),
        DownTarget::Version(version) => {
            let known = files.iter().any(|m| m.version == version) || applied.iter().any(|a| a.version == version);
            if !known {
                return Err(Error::UnknownVersion { version });
            }
            newest_first.filter(|v| *v > version).collect()
        }
    };
    let by_version = index(files);
    versions
        .into_iter()
        .map(|version| {
            let migration = by_version.get(&version).ok_or(Error::FileMissing { version })?;
            match migration.down {
                Some(_) => Ok(*migration),
                None => Err(Error::Irreversible {
                    version,
                    path: migration.up.path.clone(),
                }),
            }
        })
        .collect()
}

/// The current version once `applied` gained `added` and lost `removed`.
pub(crate) fn version_after(applied: &[AppliedMigration], added: &[i64], removed: &[i64]) -> Option<i64> {
    let remaining = applied.iter().map(|a| a.version).filter(|v| !removed.contains(v));
    remaining.chain(added.iter().copied()).max()
}

fn index(files: &[Migration]) -> BTreeMap<i64, &Migration> {
    files.iter().map(|m| (m.version, m)).collect()
}

#[cfg(test)]
mod tests;
