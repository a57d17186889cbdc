//! Going up and down: targets, steps, base, irreversible files, what is recorded.

use dbagent::migrate::{DownOptions, DownTarget, Error, EventKind, Migrator, UpOptions};

use super::support::{Dir, TestDb, table_dir, up_opts};

#[tokio::test]
async fn up_stops_at_the_target_then_goes_to_the_head_recording_who_and_which_backup() {
    let db = TestDb::new().await;
    let dir = table_dir(&[1, 2, 3, 4]);
    let migrator = dir.migrator();

    let first = migrator
        .up(
            &db.config,
            &UpOptions {
                target: Some(2),
                ..up_opts()
            },
        )
        .await
        .unwrap();
    let opts = UpOptions {
        backup_id: Some("b-42".into()),
        ..up_opts()
    };
    let second = migrator.up(&db.config, &opts).await.unwrap();

    let versions = |r: &dbagent::migrate::Report| r.applied.iter().map(|a| a.version).collect::<Vec<_>>();
    assert_eq!((versions(&first), first.version), (vec![1, 2], Some(2)));
    assert_eq!((versions(&second), second.version), (vec![3, 4], Some(4)));
    assert_eq!(second.backup_id.as_deref(), Some("b-42"));
    assert!(
        second
            .applied
            .iter()
            .all(|a| a.sql.is_none() && a.execution_time_ms >= 0.0)
    );
    assert!(db.table_exists("t4").await);
    let backups: Vec<Option<String>> = db
        .value("SELECT array_agg(backup_id ORDER BY version) FROM dbagent.schema_migrations")
        .await;
    assert_eq!(backups, [None, None, Some("b-42".into()), Some("b-42".into())]);
    let events = Migrator::history(&db.config, 10).await.unwrap();
    assert_eq!(events.len(), 4);
    assert!(events.iter().all(|e| e.kind == EventKind::Apply && e.by == "test"));
    assert_eq!(events[0].version, 4, "newest first");
    let again = migrator.up(&db.config, &up_opts()).await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(again.version, Some(4));
}

#[tokio::test]
async fn down_reverts_one_step_several_steps_to_a_version_or_to_base() {
    let db = TestDb::new().await;
    let dir = table_dir(&[1, 2, 3, 4, 5]);
    let migrator = dir.migrator();
    migrator.up(&db.config, &up_opts()).await.unwrap();
    let down = async |target| {
        let opts = DownOptions {
            target,
            dry_run: false,
            applied_by: "test".into(),
            confirm: true,
        };
        let report = migrator.down(&db.config, &opts).await.unwrap();
        (
            report.applied.iter().map(|a| a.version).collect::<Vec<_>>(),
            report.version,
        )
    };

    assert_eq!(down(DownTarget::Steps(1)).await, (vec![5], Some(4)));
    assert_eq!(down(DownTarget::Steps(2)).await, (vec![4, 3], Some(2)));
    assert_eq!(down(DownTarget::Version(1)).await, (vec![2], Some(1)));
    assert_eq!(down(DownTarget::Base).await, (vec![1], None));

    for table in ["t1", "t2", "t3", "t4", "t5"] {
        assert!(!db.table_exists(table).await, "{table} should be gone");
    }
    assert_eq!(db.applied_versions().await, Vec::<i64>::new());
    let reverts: i64 = db
        .value("SELECT count(*) FROM dbagent.migration_events WHERE kind = 'revert'")
        .await;
    assert_eq!(reverts, 5);
    let opts = DownOptions {
        target: DownTarget::Steps(1),
        dry_run: false,
        applied_by: "test".into(),
        confirm: true,
    };
    let err = migrator.down(&db.config, &opts).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotEnoughApplied {
                requested: 1,
                applied: 0
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn an_irreversible_migration_refuses_to_go_down_and_stays_applied() {
    let db = TestDb::new().await;
    let dir = Dir::new().with(&[("1_seed.sql", "CREATE TABLE seed (id int);")]);
    let migrator = dir.migrator();
    migrator.up(&db.config, &up_opts()).await.unwrap();

    let err = migrator.down(&db.config, &DownOptions::default()).await.unwrap_err();

    assert!(
        matches!(&err, Error::Irreversible { version: 1, path } if path.ends_with("1_seed.sql")),
        "{err}"
    );
    assert_eq!(db.applied_versions().await, [1]);
    assert!(db.table_exists("seed").await);
}

#[tokio::test]
async fn baseline_marks_files_applied_without_running_them() {
    let db = TestDb::new().await;
    // The database already has what 1 and 2 create: running them would fail.
    db.client()
        .await
        .batch_execute("CREATE TABLE t1 (id int); CREATE TABLE t2 (id int);")
        .await
        .unwrap();
    let dir = table_dir(&[1, 2, 3]);
    let migrator = dir.migrator();

    migrator.baseline(&db.config, 2, "ops").await.unwrap();
    let report = migrator.up(&db.config, &up_opts()).await.unwrap();

    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [3]);
    assert_eq!(db.applied_versions().await, [1, 2, 3]);
    let baselines: i64 = db
        .value("SELECT count(*) FROM dbagent.migration_events WHERE kind = 'baseline' AND by = 'ops'")
        .await;
    assert_eq!(baselines, 2);
    let err = migrator.baseline(&db.config, 3, "ops").await.unwrap_err();
    assert!(matches!(err, Error::AlreadyApplied { applied: 3 }), "{err}");
}
