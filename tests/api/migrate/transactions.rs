//! Each migration in its own transaction; no-transaction files statement by statement;
//! failures leave the history as it was and are recorded as events.

use std::time::Duration;

use dbagent::migrate::{DownOptions, DownTarget, Error, Migrator, Settings};

use super::support::{Dir, TestDb, up_opts};

const BROKEN: &str = "CREATE TABLE u (id int);\nINSERT INTO t VALUES (1);\nSELECT * FROM no_such_table;\n";

#[tokio::test]
async fn a_failing_migration_leaves_no_trace_records_a_fail_event_and_releases_the_lock() {
    let db = TestDb::new().await;
    let dir = Dir::new().with(&[("1_t.up.sql", "CREATE TABLE t (id int);"), ("2_broken.up.sql", BROKEN)]);

    let err = dir.migrator().up(&db.config, &up_opts()).await.unwrap_err();

    let Error::MigrationFailed {
        version,
        path,
        statement,
        server,
        completed,
        ..
    } = &err
    else {
        panic!("expected MigrationFailed, got {err}");
    };
    assert_eq!((*version, statement, completed.as_slice()), (2, &None, &[1][..]));
    assert!(path.ends_with("2_broken.up.sql"));
    let server = server.as_deref().expect("the server's diagnostics");
    assert_eq!(server.sqlstate, "42P01");
    let expected_position = BROKEN.find("no_such_table").unwrap() as u32 + 1;
    assert_eq!(server.position, Some(expected_position));
    assert_eq!(err.sqlstate(), Some("42P01"));
    assert!(
        !db.table_exists("u").await,
        "the failed migration's table must be rolled back"
    );
    assert_eq!(db.value::<i64>("SELECT count(*) FROM t").await, 0);
    assert_eq!(db.applied_versions().await, [1]);
    let detail: String = db
        .value("SELECT detail FROM dbagent.migration_events WHERE kind = 'fail' AND version = 2")
        .await;
    assert!(detail.contains("rolled back") && detail.contains("42P01"), "{detail}");
    assert_eq!(db.advisory_locks().await, 0, "the lock is released after a failure");

    dir.write("2_broken.up.sql", "CREATE TABLE u (id int);");
    let settings = Settings {
        lock_timeout: Duration::from_secs(1),
        ..dir.settings()
    };
    let fixed = Migrator::load(settings)
        .unwrap()
        .up(&db.config, &up_opts())
        .await
        .unwrap();
    assert_eq!(fixed.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [2]);
}

#[tokio::test]
async fn create_index_concurrently_runs_up_and_down_with_the_no_transaction_marker() {
    let db = TestDb::new().await;
    let up = "-- builds without blocking writes\n-- dbagent:no-transaction\n\
              CREATE INDEX CONCURRENTLY items_name ON items (name);\n\
              CREATE INDEX CONCURRENTLY items_id ON items (id);\n";
    let down = "-- dbagent:no-transaction\nDROP INDEX CONCURRENTLY items_name;\nDROP INDEX CONCURRENTLY items_id;\n";
    let dir = Dir::new().with(&[
        ("1_items.up.sql", "CREATE TABLE items (id int, name text);"),
        ("1_items.down.sql", "DROP TABLE items;"),
        ("2_index.up.sql", up),
        ("2_index.down.sql", down),
    ]);
    let migrator = dir.migrator();
    // A client with an idle session, like a connection pool's, must not block the build.
    let bystander = db.client().await;
    bystander.batch_execute("SELECT 1").await.unwrap();

    // A second runner polls for the lock the whole time the index builds.
    let opts = up_opts();
    let both = async { tokio::join!(migrator.up(&db.config, &opts), migrator.up(&db.config, &opts)) };
    let runs = tokio::time::timeout(Duration::from_secs(20), both)
        .await
        .expect("no deadlock");

    let applied = [runs.0.unwrap(), runs.1.unwrap()].map(|r| r.applied.len());
    assert_eq!(applied.iter().sum::<usize>(), 2);
    let valid: i64 = db
        .value("SELECT count(*) FROM pg_index WHERE indisvalid AND indexrelid IN ('items_name'::regclass, 'items_id'::regclass)")
        .await;
    assert_eq!(valid, 2);
    let opts = DownOptions {
        target: DownTarget::Version(1),
        dry_run: false,
        applied_by: "test".into(),
        confirm: true,
    };
    let reverted = tokio::time::timeout(Duration::from_secs(20), migrator.down(&db.config, &opts))
        .await
        .unwrap();
    assert_eq!(reverted.unwrap().version, Some(1));
    assert!(!db.table_exists("items_name").await);
    assert_eq!(db.applied_versions().await, [1]);
}

#[tokio::test]
async fn a_no_transaction_migration_failing_midway_says_which_statement_failed() {
    let db = TestDb::new().await;
    let sql = "-- dbagent:no-transaction\nCREATE TABLE a (id int);\nCREATE TABLE b (id int);\nSELECT * FROM missing;\n";
    let dir = Dir::new().with(&[("1_partial.up.sql", sql)]);

    let err = dir.migrator().up(&db.config, &up_opts()).await.unwrap_err();

    let Error::MigrationFailed { statement, server, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(*statement, Some(3));
    let position = server.as_deref().and_then(|s| s.position);
    assert_eq!(
        position,
        Some(sql.find("missing").unwrap() as u32 + 1),
        "position in the file"
    );
    assert!(err.to_string().contains("statements 1 to 2 were applied"), "{err}");
    assert!(db.table_exists("a").await && db.table_exists("b").await);
    assert_eq!(db.applied_versions().await, Vec::<i64>::new());
    let detail: String = db
        .value("SELECT detail FROM dbagent.migration_events WHERE kind = 'fail'")
        .await;
    assert!(
        detail.contains("statement 3 of 3") && detail.contains("cannot be undone"),
        "{detail}"
    );
}

#[tokio::test]
async fn the_statement_and_lock_timeouts_apply_to_each_migration() {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute("CREATE TABLE busy (id int)")
        .await
        .unwrap();
    let dir = Dir::new().with(&[("1_slow.up.sql", "SELECT pg_sleep(5);")]);
    let settings = Settings {
        statement_timeout: Duration::from_millis(200),
        ..dir.settings()
    };

    let slow = Migrator::load(settings)
        .unwrap()
        .up(&db.config, &up_opts())
        .await
        .unwrap_err();

    assert_eq!(slow.sqlstate(), Some("57014"), "{slow}");
    dir.write("1_slow.up.sql", "ALTER TABLE busy ADD COLUMN x int;");
    let holder = db.client().await;
    holder
        .batch_execute("BEGIN; LOCK TABLE busy IN ACCESS SHARE MODE")
        .await
        .unwrap();
    let settings = Settings {
        statement_lock_timeout: Duration::from_millis(200),
        ..dir.settings()
    };
    let blocked = Migrator::load(settings)
        .unwrap()
        .up(&db.config, &up_opts())
        .await
        .unwrap_err();
    assert_eq!(blocked.sqlstate(), Some("55P03"), "{blocked}");
    holder.batch_execute("ROLLBACK").await.unwrap();
}
