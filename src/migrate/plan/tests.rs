use chrono::DateTime;

use super::*;
use crate::migrate::Script;

fn file(version: i64, checksum: &str, reversible: bool) -> Migration {
    let path = format!("{version}_m.up.sql");
    Migration {
        version,
        name: "m".into(),
        up: Script::inline(&path, "SELECT 1"),
        down: reversible.then(|| Script::inline(&format!("{version}_m.down.sql"), "SELECT 1")),
        checksum: checksum.into(),
    }
}

fn applied(version: i64, checksum: &str) -> AppliedMigration {
    AppliedMigration {
        version,
        name: "m".into(),
        checksum: checksum.into(),
        applied_at: DateTime::default(),
        applied_by: "test".into(),
        execution_time_ms: 0.0,
        success: true,
        backup_id: None,
    }
}

/// Recognises the expected error.
type Check = fn(&Error) -> bool;

fn versions(plan: &[&Migration]) -> Vec<i64> {
    plan.iter().map(|m| m.version).collect()
}

#[test]
fn down_targets_are_parsed_or_refused() {
    let cases: &[(&str, Option<DownTarget>)] = &[
        ("-1", Some(DownTarget::Steps(1))),
        ("-3", Some(DownTarget::Steps(3))),
        (" -2 ", Some(DownTarget::Steps(2))),
        ("20240101000000", Some(DownTarget::Version(20240101000000))),
        ("0", Some(DownTarget::Version(0))),
        ("base", Some(DownTarget::Base)),
        ("BASE", Some(DownTarget::Base)),
        ("-0", None),
        ("--1", None),
        ("-+1", None),
        ("+1", None),
        ("-x", None),
        ("head", None),
        ("", None),
        ("-", None),
        ("1.5", None),
        ("99999999999999999999", None),
    ];
    for (input, expected) in cases {
        let got = parse_down_target(input).ok();
        assert_eq!(got, *expected, "{input:?}");
    }
}

#[test]
fn up_runs_pending_files_in_order_up_to_the_target() {
    let files = [file(1, "a", true), file(2, "b", true), file(3, "c", true)];
    let done = [applied(1, "a")];
    assert_eq!(versions(&up(&files, &done, None, false).unwrap()), [2, 3]);
    assert_eq!(versions(&up(&files, &done, Some(2), false).unwrap()), [2]);
    assert_eq!(versions(&up(&files, &done, Some(1), false).unwrap()), Vec::<i64>::new());
    assert!(matches!(
        up(&files, &done, Some(7), false),
        Err(Error::UnknownVersion { version: 7 })
    ));
}

#[test]
fn up_refuses_drift_and_unallowed_out_of_order_files() {
    let files = [file(1, "a", true), file(2, "b", true), file(3, "c", true)];
    let drifted = [applied(1, "old")];
    assert!(matches!(up(&files, &drifted, None, false), Err(Error::Drift { versions }) if versions == [1]));
    let gap = [applied(1, "a"), applied(3, "c")];
    assert!(matches!(up(&files, &gap, None, false), Err(Error::OutOfOrder { versions }) if versions == [2]));
    assert_eq!(versions(&up(&files, &gap, None, true).unwrap()), [2]);
}

#[test]
fn status_lists_drifted_missing_and_out_of_order_versions() {
    let files = [file(1, "a", true), file(2, "b", true), file(4, "d", true)];
    let done = [applied(1, "changed"), applied(3, "c"), applied(4, "d")];
    assert_eq!(drifted(&files, &done), [1]);
    assert_eq!(missing(&files, &done), [3]);
    let pending = pending(&files, &done);
    assert_eq!(versions(&pending), [2]);
    assert_eq!(out_of_order(&pending, &done), [2]);
}

#[test]
fn down_picks_the_newest_applied_migrations_for_each_target() {
    let files = [file(1, "a", true), file(2, "b", true), file(3, "c", true)];
    let done = [applied(1, "a"), applied(2, "b"), applied(3, "c")];
    let cases: &[(DownTarget, &[i64])] = &[
        (DownTarget::Steps(1), &[3]),
        (DownTarget::Steps(3), &[3, 2, 1]),
        (DownTarget::Version(1), &[3, 2]),
        (DownTarget::Version(3), &[]),
        (DownTarget::Base, &[3, 2, 1]),
    ];
    for (target, expected) in cases {
        assert_eq!(
            versions(&down(&files, &done, *target).unwrap()),
            *expected,
            "{target:?}"
        );
    }
}

#[test]
fn down_refuses_what_it_cannot_revert() {
    let files = [file(1, "a", false), file(2, "b", true)];
    let done = [applied(1, "a"), applied(2, "b"), applied(3, "gone")];
    let cases: &[(DownTarget, Check)] = &[
        (DownTarget::Steps(4), |e| {
            matches!(
                e,
                Error::NotEnoughApplied {
                    requested: 4,
                    applied: 3
                }
            )
        }),
        (DownTarget::Steps(1), |e| matches!(e, Error::FileMissing { version: 3 })),
        (DownTarget::Version(9), |e| {
            matches!(e, Error::UnknownVersion { version: 9 })
        }),
    ];
    for (target, expected) in cases {
        let err = down(&files, &done, *target).unwrap_err();
        assert!(expected(&err), "{target:?}: {err}");
    }
    let without_missing = &done[..2];
    let err = down(&files, without_missing, DownTarget::Base).unwrap_err();
    assert!(matches!(err, Error::Irreversible { version: 1, .. }), "{err}");
}

#[test]
fn the_version_after_a_run_is_the_newest_remaining() {
    let done = [applied(1, "a"), applied(2, "b")];
    assert_eq!(version_after(&done, &[3], &[]), Some(3));
    assert_eq!(version_after(&done, &[], &[2]), Some(1));
    assert_eq!(version_after(&done, &[], &[2, 1]), None);
}
