//! The catalog: the mirror, its rebuild, deletion and pins, incomplete backups, retention.

use dbagent::{Classify, ErrorKind};
use dbagent::backup::{self, CreateRequest, Error};

use super::helpers::{Location, TestDb, quiet};

async fn catalogued(db: &TestDb) -> Vec<String> {
    let rows = db.connect().await.query("SELECT id FROM dbagent.backups ORDER BY id", &[]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn the_catalog_is_rebuilt_from_the_manifests_alone() {
    // Arrange
    let db = TestDb::create().await;
    let location = Location::new();
    let settings = location.settings();
    let first = backup::create(&db.config(), &settings, &CreateRequest::default(), &quiet).await.unwrap();
    let second = backup::create(&db.config(), &settings, &CreateRequest { keep: true, ..Default::default() }, &quiet).await.unwrap();
    assert_eq!(catalogued(&db).await, [first.id.clone(), second.id.clone()]);

    // Act
    db.connect().await.batch_execute("DROP TABLE dbagent.backups").await.unwrap();
    let report = backup::rebuild_catalog(&db.config(), &settings).await.unwrap();

    // Assert
    assert_eq!((report.written, report.removed), (2, 0));
    assert_eq!(catalogued(&db).await, [first.id.clone(), second.id.clone()]);
    let keep: bool = db.connect().await.query_one("SELECT keep FROM dbagent.backups WHERE id = $1", &[&second.id]).await.unwrap().get(0);
    assert!(keep);
    let rows: i64 = db.connect().await.query_one("SELECT (manifest->'tables'->0->>'rows')::bigint FROM dbagent.backups WHERE id = $1", &[&first.id]).await.unwrap().get(0);
    assert!(rows > 0, "the whole manifest is mirrored");
}

#[tokio::test]
async fn kept_and_pinned_backups_are_deleted_only_when_forced() {
    let db = TestDb::create().await;
    let location = Location::new();
    let settings = location.settings();
    // The kept one is the newest: the plain one is not the newest good backup (which needs force).
    let plain = backup::create(&db.config(), &settings, &CreateRequest::default(), &quiet).await.unwrap();
    let kept = backup::create(&db.config(), &settings, &CreateRequest { keep: true, ..Default::default() }, &quiet).await.unwrap();
    backup::pin(&db.config(), &settings, &plain.id, Some("migration 20250101".into())).await.unwrap();

    let refused_kept = backup::delete(&db.config(), &settings, &kept.id, false).await.unwrap_err();
    let refused_pinned = backup::delete(&db.config(), &settings, &plain.id, false).await.unwrap_err();
    backup::pin(&db.config(), &settings, &plain.id, None).await.unwrap();
    backup::delete(&db.config(), &settings, &plain.id, false).await.expect("unpinned, so deletable");
    backup::delete(&db.config(), &settings, &kept.id, true).await.expect("forced");
    let missing = backup::get(&settings, &plain.id).unwrap_err();

    assert!(matches!(refused_kept, Error::Pinned { ref reason, .. } if reason == "marked keep"), "{refused_kept}");
    assert!(matches!(refused_pinned, Error::Pinned { ref reason, .. } if reason.contains("migration 20250101")), "{refused_pinned}");
    assert_eq!(refused_pinned.kind(), ErrorKind::Conflict);
    assert_eq!(missing.kind(), ErrorKind::NotFound);
    assert!(backup::list(&settings).unwrap().is_empty());
    assert!(catalogued(&db).await.is_empty());
}

#[tokio::test]
async fn listing_removes_incomplete_backups_but_not_running_ones() {
    let db = TestDb::create().await;
    let location = Location::new();
    let settings = location.settings();
    let complete = backup::create(&db.config(), &settings, &CreateRequest::default(), &quiet).await.unwrap();
    let crashed = location.path.join("20240101T000000000Z-abcdef");
    std::fs::create_dir(&crashed).unwrap();
    std::fs::write(crashed.join("dump.zst"), b"half a dump").unwrap();
    let running = location.path.join("20240101T000000000Z-123456");
    std::fs::create_dir(&running).unwrap();
    let lock = std::fs::File::create(running.join(".in-progress")).unwrap();
    lock.lock().unwrap();
    let unrelated = location.path.join("lost+found");
    std::fs::create_dir(&unrelated).unwrap();

    let listed: Vec<String> = backup::list(&settings).unwrap().into_iter().map(|m| m.id).collect();

    assert_eq!(listed, [complete.id]);
    assert!(!crashed.exists(), "an abandoned incomplete backup is removed");
    assert!(running.exists(), "a locked one belongs to a running job");
    assert!(unrelated.exists(), "what does not look like a backup is left alone");
    drop(lock);
}

#[tokio::test]
async fn prune_dry_run_deletes_nothing_and_prune_keeps_what_it_must() {
    // Arrange: three backups, the oldest pinned; keep only the newest.
    let db = TestDb::create().await;
    let location = Location::new();
    let mut settings = location.settings();
    settings.keep_last = Some(1);
    let oldest = backup::create(&db.config(), &settings, &CreateRequest { pinned_by: Some("migration 7".into()), ..Default::default() }, &quiet).await.unwrap();
    let middle = backup::create(&db.config(), &settings, &CreateRequest::default(), &quiet).await.unwrap();
    let newest = backup::create(&db.config(), &settings, &CreateRequest::default(), &quiet).await.unwrap();

    // Act
    let planned = backup::prune(&db.config(), &settings, true).await.unwrap();
    let after_dry_run = backup::list(&settings).unwrap().len();
    let done = backup::prune(&db.config(), &settings, false).await.unwrap();

    // Assert
    let verdicts: Vec<(String, bool)> = planned.iter().map(|d| (d.id.clone(), d.keep)).collect();
    assert_eq!(verdicts, [(newest.id.clone(), true), (middle.id.clone(), false), (oldest.id.clone(), true)]);
    assert_eq!(after_dry_run, 3, "a dry run deletes nothing");
    assert_eq!(done, planned);
    let left: Vec<String> = backup::list(&settings).unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(left, [newest.id.clone(), oldest.id.clone()]);
    assert_eq!(catalogued(&db).await, [oldest.id, newest.id]);
}

#[tokio::test]
async fn a_backup_that_dies_before_its_manifest_is_never_listed_and_leaves_nothing() {
    // Arrange
    let db = TestDb::create().await;
    let location = Location::new();
    let settings = location.settings();
    dbagent::failpoints::arm("backup-before-manifest", &db.name, 1);

    // Act: the first attempt dies after writing its files, the second completes.
    let err = backup::create(&db.config(), &settings, &CreateRequest::default(), &quiet).await.expect_err("the failpoint fires");
    let listed_after_crash = backup::list(&settings).unwrap();
    let left_on_disk: Vec<_> = std::fs::read_dir(&location.path).unwrap().flatten().map(|e| e.file_name()).collect();
    let good = backup::create(&db.config(), &settings, &CreateRequest::default(), &quiet).await.expect("a second attempt");

    // Assert
    assert!(err.to_string().contains("manifest.json"), "{err}");
    assert!(listed_after_crash.is_empty(), "{listed_after_crash:?}");
    assert!(left_on_disk.is_empty(), "the incomplete backup's directory is removed: {left_on_disk:?}");
    let ids: Vec<String> = backup::list(&settings).unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, [good.id]);
}
