//! Retention: which backups go. [`decide`] is a pure function of the backups, the policy and
//! the time, so every rule is tested by a table; [`prune`] applies it to the location.
//!
//! The rules, first match wins:
//! 1. `keep: true` stays ("marked keep"); a pinned backup stays ("pinned by ...").
//! 2. The newest backup that passed verification stays; if none ever did, the newest one that
//!    never failed verification. So retention can never leave zero good backups, the mistake
//!    WAL-G's and pgBackRest's users report most.
//! 3. With `keep_last = N`, the N newest backups not known to be bad stay.
//! 4. With `retention_days = D`, backups younger than D days stay.
//! 5. With neither rule configured, everything stays.
//! 6. Everything else goes, with the reason.
//!
//! The count and age rules are a union: `keep_last: 7, retention_days: 30` keeps at least the
//! seven newest, and everything from the last thirty days.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use crate::db::PgConfig;

use super::catalog;
use super::manifest::Manifest;
use super::{BackupKind, Error, Settings};

/// The configured retention rules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub retention_days: Option<u32>,
    pub keep_last: Option<u32>,
}

/// What retention needs to know about one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub keep: bool,
    pub pinned_by: Option<String>,
    /// The last verification: `Some(true)` passed, `Some(false)` failed, `None` never ran.
    pub verified: Option<bool>,
}

impl From<&Manifest> for Candidate {
    fn from(m: &Manifest) -> Candidate {
        Candidate {
            id: m.id.clone(),
            created_at: m.created_at,
            keep: m.keep,
            pinned_by: m.pinned_by.clone(),
            verified: m.verification.as_ref().map(|v| v.ok),
        }
    }
}

/// The verdict on one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Decision {
    pub id: String,
    pub keep: bool,
    pub reason: String,
}

/// Decides the fate of every backup (returned newest first).
pub fn decide(backups: &[Candidate], policy: &Policy, now: DateTime<Utc>) -> Vec<Decision> {
    let mut sorted: Vec<&Candidate> = backups.iter().collect();
    sorted.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.id.cmp(&a.id)));
    let protected = sorted
        .iter()
        .find(|b| b.verified == Some(true))
        .map(|b| (b.id.as_str(), "the newest verified backup"))
        .or_else(|| {
            sorted
                .iter()
                .find(|b| b.verified.is_none())
                .map(|b| (b.id.as_str(), "the newest complete backup (none verified yet)"))
        });
    let cutoff = policy.retention_days.map(|days| now - Duration::days(i64::from(days)));
    let mut good_seen = 0u32;
    sorted
        .into_iter()
        .map(|b| {
            let bad = b.verified == Some(false);
            if !bad {
                good_seen += 1;
            }
            let (keep, reason) = verdict(b, policy, protected, cutoff, if bad { None } else { Some(good_seen) });
            Decision { id: b.id.clone(), keep, reason }
        })
        .collect()
}

/// `rank`: this backup's position among the backups not known to be bad (1 = newest), or
/// `None` for one that failed verification.
fn verdict(
    b: &Candidate,
    policy: &Policy,
    protected: Option<(&str, &str)>,
    cutoff: Option<DateTime<Utc>>,
    rank: Option<u32>,
) -> (bool, String) {
    if let Some(by) = &b.pinned_by {
        return (true, format!("pinned by {by}"));
    }
    if b.keep {
        return (true, "marked keep".to_owned());
    }
    if let Some((id, why)) = protected
        && id == b.id
    {
        return (true, why.to_owned());
    }
    if let (Some(n), Some(rank)) = (policy.keep_last, rank)
        && rank <= n
    {
        return (true, format!("one of the {n} newest backups"));
    }
    if let (Some(days), Some(cutoff)) = (policy.retention_days, cutoff)
        && b.created_at >= cutoff
    {
        return (true, format!("younger than {days} days"));
    }
    if policy.keep_last.is_none() && policy.retention_days.is_none() {
        return (true, "no retention rule is configured".to_owned());
    }
    let mut why = Vec::new();
    if rank.is_none() {
        why.push("it failed verification".to_owned());
    }
    if let Some(days) = policy.retention_days {
        why.push(format!("older than {days} days"));
    }
    if let Some(n) = policy.keep_last
        && rank.is_some()
    {
        why.push(format!("not among the {n} newest"));
    }
    (false, why.join(", "))
}

/// Applies the configured retention to the location: decides, then (unless `dry_run`)
/// deletes what should go and updates the catalog mirror. Returns every decision, newest
/// first; with `dry_run` nothing is touched.
pub async fn prune(db: &PgConfig, settings: &Settings, dry_run: bool) -> Result<Vec<Decision>, Error> {
    let backups = catalog::list(settings)?;
    // Dumps and base backups restore different things (a database; a whole cluster to a
    // point in time): each family keeps its own newest backups.
    let (base, dumps): (Vec<&Manifest>, Vec<&Manifest>) = backups.iter().partition(|m| m.kind == BackupKind::Base);
    let now = Utc::now();
    let mut decisions = Vec::new();
    for family in [dumps, base] {
        let candidates: Vec<Candidate> = family.into_iter().map(Candidate::from).collect();
        decisions.extend(decide(&candidates, &settings.policy(), now));
    }
    decisions.sort_by(|a, b| b.id.cmp(&a.id)); // ids begin with their creation time
    if dry_run {
        return Ok(decisions);
    }
    for decision in decisions.iter().filter(|d| !d.keep) {
        // Not forced: a backup pinned since the decision was made stays.
        match catalog::delete_with(db, settings, &decision.id, false, false).await {
            Ok(_) => tracing::info!(backup_id = %decision.id, reason = %decision.reason, "pruned"),
            Err(Error::NotFound { .. }) => {}
            Err(Error::Pinned { .. }) => tracing::info!(backup_id = %decision.id, "pinned since the decision; kept"),
            // The newest good backup of its database (several databases share a location).
            Err(Error::ForceRequired { .. }) => tracing::info!(backup_id = %decision.id, "the newest good backup of its database; kept"),
            Err(err) => return Err(err),
        }
    }
    super::window::prune_archive(settings)?;
    // The bucket's retention never stops the location's: a store that cannot be reached now
    // is pruned by a later run.
    if settings.remote.is_some()
        && let Err(err) = prune_remote(settings).await
    {
        tracing::warn!(error = %crate::db::error_chain(&err), "could not apply retention to the remote store; the next prune retries");
    }
    Ok(decisions)
}

/// The same retention over the bucket: the remote copies of backups pruned here went with
/// them (`catalog::delete`); this removes those only the bucket still holds (deleted locally
/// while the store was unreachable, or copies of a lost machine), and the remote WAL no
/// remaining remote base backup needs.
async fn prune_remote(settings: &Settings) -> Result<(), Error> {
    let Some(remote) = &settings.remote else { return Ok(()) };
    let listed: Vec<Manifest> = super::remote::list_backups(settings).await?.into_iter().map(|r| r.manifest).collect();
    let (base, dumps): (Vec<&Manifest>, Vec<&Manifest>) = listed.iter().partition(|m| m.kind == BackupKind::Base);
    let now = Utc::now();
    for family in [dumps, base] {
        let candidates: Vec<Candidate> = family.iter().copied().map(Candidate::from).collect();
        for decision in decide(&candidates, &settings.policy(), now).into_iter().filter(|d| !d.keep) {
            let Some(manifest) = family.iter().find(|m| m.id == decision.id) else { continue };
            // The newest good backup of its database stays, as locally.
            if catalog::newest_good(&listed, &manifest.database).is_some_and(|m| m.id == manifest.id) {
                continue;
            }
            if remote.delete_backup(&decision.id).await? {
                tracing::info!(backup_id = %decision.id, reason = %decision.reason, "pruned the remote copy");
            }
        }
    }
    let oldest = listed.iter().filter_map(|m| m.base.as_ref()).min_by_key(|b| b.finished_at);
    if let Some(oldest) = oldest
        && let Some(super::wal::WalFile::Segment { log, seg, .. }) = super::wal::WalFile::parse(&oldest.start_segment)
    {
        let size = oldest.wal_segment_size;
        let removed = remote.prune_wal(oldest.timeline, super::wal::segment_number(log, seg, size), size).await?;
        if removed > 0 {
            tracing::info!(removed, "pruned remote WAL older than the oldest remote base backup");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2025-06-30T12:00:00Z".parse().unwrap()
    }

    /// `age_days`, then flags: `k` keep, `p` pinned, `v` verified ok, `f` verification failed.
    fn backup(id: &str, age_days: i64, flags: &str) -> Candidate {
        Candidate {
            id: id.to_owned(),
            created_at: now() - Duration::days(age_days),
            keep: flags.contains('k'),
            pinned_by: flags.contains('p').then(|| "migration 42".to_owned()),
            verified: if flags.contains('v') { Some(true) } else if flags.contains('f') { Some(false) } else { None },
        }
    }

    fn kept(decisions: &[Decision]) -> Vec<&str> {
        decisions.iter().filter(|d| d.keep).map(|d| d.id.as_str()).collect()
    }

    #[test]
    fn retention_keeps_what_it_must_and_only_that() {
        let policy = |days, last| Policy { retention_days: days, keep_last: last };
        // (backups, policy, ids kept newest first)
        let cases: Vec<(Vec<Candidate>, Policy, Vec<&str>)> = vec![
            // No rule: nothing goes.
            (vec![backup("a", 1, ""), backup("b", 400, "")], policy(None, None), vec!["a", "b"]),
            // Age only.
            (vec![backup("a", 1, ""), backup("b", 20, ""), backup("c", 40, "")], policy(Some(30), None), vec!["a", "b"]),
            // Count only.
            (vec![backup("a", 1, ""), backup("b", 2, ""), backup("c", 3, "")], policy(None, Some(2)), vec!["a", "b"]),
            // Union of age and count.
            (vec![backup("a", 40, ""), backup("b", 50, ""), backup("c", 60, "")], policy(Some(30), Some(2)), vec!["a", "b"]),
            (vec![backup("a", 1, ""), backup("b", 2, ""), backup("c", 3, "")], policy(Some(30), Some(1)), vec!["a", "b", "c"]),
            // All too old: the newest complete one still stays.
            (vec![backup("a", 40, ""), backup("b", 50, "")], policy(Some(30), None), vec!["a"]),
            // The newest verified one stays even when newer unverified ones exist.
            (vec![backup("a", 31, ""), backup("b", 32, "v"), backup("c", 33, "")], policy(Some(30), None), vec!["b"]),
            // A failed one never protects, and does not use up a keep_last slot.
            (vec![backup("a", 1, "f"), backup("b", 2, ""), backup("c", 3, "")], policy(None, Some(1)), vec!["b"]),
            (vec![backup("a", 1, "f"), backup("b", 2, "v"), backup("c", 3, "")], policy(None, Some(2)), vec!["b", "c"]),
            // Keep and pins beat every rule.
            (vec![backup("a", 1, ""), backup("b", 98, "k"), backup("c", 99, "p"), backup("d", 100, "")], policy(Some(30), Some(1)), vec!["a", "b", "c"]),
            // Nothing at all.
            (vec![], policy(Some(1), Some(1)), vec![]),
            // Every backup failed: age decides alone.
            (vec![backup("a", 1, "f"), backup("b", 40, "f")], policy(Some(30), None), vec!["a"]),
        ];
        for (i, (backups, policy, expected)) in cases.iter().enumerate() {
            let decisions = decide(backups, policy, now());
            assert_eq!(kept(&decisions), *expected, "case {i}: {decisions:#?}");
            assert_eq!(decisions.len(), backups.len(), "case {i}: one decision per backup");
        }
    }

    #[test]
    fn every_decision_says_why() {
        let backups = [backup("a", 1, "v"), backup("b", 40, ""), backup("c", 50, "f"), backup("d", 60, "p")];
        let decisions = decide(&backups, &Policy { retention_days: Some(30), keep_last: Some(1) }, now());
        let reasons: Vec<&str> = decisions.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "the newest verified backup",
                "older than 30 days, not among the 1 newest",
                "it failed verification, older than 30 days",
                "pinned by migration 42",
            ]
        );
    }
}
