//! Migration directories that cannot be loaded, and new migration files.

use chrono::{TimeZone, Utc};
use dbagent::migrate::{Error, Migrator, new_migration};

use super::support::Dir;

/// Recognises the expected error.
type Check = fn(&Error) -> bool;

/// Files to write: (name, SQL).
type Files = &'static [(&'static str, &'static str)];

#[test]
fn broken_directories_are_refused_naming_the_file() {
    let cases: &[(Files, &str, Check)] = &[
        (&[("1_a.up.sql", ""), ("01_b.up.sql", "")], "01_b.up.sql", |e| {
            matches!(e, Error::DuplicateVersion { version: 1, .. })
        }),
        (&[("1_a.sql", ""), ("1_a.up.sql", "")], "1_a.up.sql", |e| {
            matches!(e, Error::DuplicateVersion { .. })
        }),
        (&[("2_a.down.sql", "")], "2_a.down.sql", |e| {
            matches!(e, Error::InvalidFile { .. })
        }),
        (&[("2_a.up.sql", ""), ("2_b.down.sql", "")], "2_b.down.sql", |e| {
            matches!(e, Error::InvalidFile { .. })
        }),
        (&[("2_a.sql", ""), ("2_a.down.sql", "")], "2_a.down.sql", |e| {
            matches!(e, Error::InvalidFile { .. })
        }),
        (&[("init.sql", "")], "init.sql", |e| {
            matches!(e, Error::InvalidFile { .. })
        }),
        (
            &[("3_bad.up.sql", "-- dbagent:no-transaction\nSELEC 1;")],
            "3_bad.up.sql",
            |e| matches!(e, Error::InvalidFile { .. }),
        ),
    ];
    for (files, named, expected) in cases {
        let dir = Dir::new().with(files);
        let err = Migrator::load(dir.settings()).unwrap_err();
        assert!(expected(&err), "{files:?}: {err}");
        assert!(err.to_string().contains(named), "{files:?}: {err}");
    }
}

#[test]
fn other_files_are_ignored_and_versions_sort_numerically() {
    let dir = Dir::new().with(&[
        ("README.md", "# notes"),
        ("10_ten.up.sql", "SELECT 10;"),
        ("9_nine.sql", "SELECT 9;"),
        ("10_ten.down.sql", "SELECT -10;"),
    ]);
    std::fs::create_dir(dir.path.join("11_directory.sql")).unwrap();

    let migrator = Migrator::load(dir.settings()).unwrap();

    let loaded: Vec<_> = migrator
        .migrations()
        .iter()
        .map(|m| (m.version, m.down.is_some()))
        .collect();
    assert_eq!(loaded, [(9, false), (10, true)]);
    assert_eq!(migrator.migrations()[1].checksum.len(), 64);
}

#[test]
fn new_migration_creates_timestamped_files_that_sort_last() {
    let dir = Dir::new();
    let now = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();

    let pair = new_migration(&dir.path, "Add users!", true, now).unwrap();
    let single = new_migration(&dir.path, "seed", false, now).unwrap();

    let names = |paths: &[std::path::PathBuf]| -> Vec<String> {
        paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(&pair),
        ["20240102030405_add_users.up.sql", "20240102030405_add_users.down.sql"]
    );
    assert_eq!(
        names(&single),
        ["20240102030406_seed.sql"],
        "same second: one more than the newest"
    );
    let versions: Vec<_> = Migrator::load(dir.settings())
        .unwrap()
        .migrations()
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, [20240102030405, 20240102030406]);
    assert!(matches!(
        new_migration(&dir.path, "!!", true, now),
        Err(Error::InvalidName { .. })
    ));
}
