//! Concurrent runners, the lock, and dry runs.

use std::time::{Duration, Instant};

use dbagent::migrate::{DownOptions, DownTarget, Error, LOCK_KEY, Migrator, Settings, UpOptions};

use super::support::{Dir, TestDb, table_dir, up_opts};

#[tokio::test]
async fn two_concurrent_runs_apply_each_migration_exactly_once() {
    let db = TestDb::new().await;
    let mut files = vec![("1_hits.up.sql".to_string(), "CREATE TABLE hits (v int);".to_string())];
    for v in 2..=6 {
        let sql = format!("INSERT INTO hits VALUES ({v}); SELECT pg_sleep(0.05);");
        files.push((format!("{v}_hit.up.sql"), sql));
    }
    let dir = Dir::new();
    for (name, sql) in &files {
        dir.write(name, sql);
    }
    // Two migrators, as two agents starting together on a fresh database would have.
    let (a, b) = (dir.migrator(), dir.migrator());

    let opts = up_opts();
    let (ra, rb) = tokio::join!(a.up(&db.config, &opts), b.up(&db.config, &opts));

    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.applied.len() + rb.applied.len(), 6, "{ra:?} {rb:?}");
    assert_eq!((ra.version, rb.version), (Some(6), Some(6)));
    let hits: Vec<i32> = db.value("SELECT array_agg(v ORDER BY v) FROM hits").await;
    assert_eq!(hits, [2, 3, 4, 5, 6]);
    let applies: i64 = db
        .value("SELECT count(*) FROM dbagent.migration_events WHERE kind = 'apply'")
        .await;
    assert_eq!(applies, 6);
    assert_eq!(db.advisory_locks().await, 0);
}

#[tokio::test]
async fn a_run_gives_up_when_another_holds_the_lock_past_the_timeout() {
    let db = TestDb::new().await;
    let dir = table_dir(&[1]);
    let holder = db.client().await;
    holder
        .query_one("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
        .await
        .unwrap();
    let settings = Settings {
        lock_timeout: Duration::from_millis(300),
        ..dir.settings()
    };
    let migrator = Migrator::load(settings).unwrap();

    let started = Instant::now();
    let err = migrator.up(&db.config, &up_opts()).await.unwrap_err();

    assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(!db.table_exists("t1").await);
    holder
        .query_one("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        .await
        .unwrap();
    migrator.up(&db.config, &up_opts()).await.unwrap();
    assert!(db.table_exists("t1").await);
}

#[tokio::test]
async fn a_dry_run_returns_the_exact_sql_and_writes_nothing() {
    let db = TestDb::new().await;
    let dir = table_dir(&[1, 2]);
    let migrator = dir.migrator();

    let report = migrator
        .up(
            &db.config,
            &UpOptions {
                dry_run: true,
                ..up_opts()
            },
        )
        .await
        .unwrap();

    assert!(report.dry_run);
    assert_eq!(report.version, Some(2));
    let sql: Vec<_> = report.applied.iter().map(|a| a.sql.as_deref()).collect();
    assert_eq!(
        sql,
        [Some("CREATE TABLE t1 (id int);"), Some("CREATE TABLE t2 (id int);")]
    );
    assert!(
        !db.value::<bool>("SELECT to_regnamespace('dbagent') IS NOT NULL").await,
        "no dbagent schema"
    );
    assert!(!db.table_exists("t1").await);

    migrator.up(&db.config, &up_opts()).await.unwrap();
    let opts = DownOptions {
        target: DownTarget::Base,
        dry_run: true,
        applied_by: "test".into(),
        confirm: true,
    };
    let down = migrator.down(&db.config, &opts).await.unwrap();
    let sql: Vec<_> = down.applied.iter().map(|a| (a.version, a.sql.as_deref())).collect();
    assert_eq!(sql, [(2, Some("DROP TABLE t2;")), (1, Some("DROP TABLE t1;"))]);
    assert_eq!(down.version, None);
    assert_eq!(db.applied_versions().await, [1, 2]);
    assert!(db.table_exists("t2").await);
}
