//! Where the database stands against the files: drift, missing files, out-of-order files.

use dbagent::migrate::{Error, Migrator, UpOptions};

use super::support::{TestDb, table_dir, table_pair, up_opts};

#[tokio::test]
async fn an_edited_applied_file_is_refused_until_repaired() {
    let db = TestDb::new().await;
    let dir = table_dir(&[1, 2]);
    dir.migrator().up(&db.config, &up_opts()).await.unwrap();
    dir.write("1_t1.up.sql", "CREATE TABLE t1 (id bigint);");
    dir.write("3_t3.up.sql", "CREATE TABLE t3 (id int);");
    let migrator = dir.migrator();

    let err = migrator.up(&db.config, &up_opts()).await.unwrap_err();

    assert!(matches!(&err, Error::Drift { versions } if versions == &[1]), "{err}");
    assert_eq!(migrator.status(&db.config).await.unwrap().drifted, [1]);
    assert_eq!(migrator.repair(&db.config, None, "ops").await.unwrap(), [1]);
    assert!(migrator.status(&db.config).await.unwrap().drifted.is_empty());
    let detail: String = db
        .value("SELECT detail FROM dbagent.migration_events WHERE kind = 'repair'")
        .await;
    assert!(detail.starts_with("accepted checksum"), "{detail}");
    let report = migrator.up(&db.config, &up_opts()).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [3]);
    assert_eq!(
        migrator.repair(&db.config, Some(1), "ops").await.unwrap(),
        Vec::<i64>::new()
    );
    assert!(matches!(
        migrator.repair(&db.config, Some(9), "ops").await,
        Err(Error::UnknownVersion { version: 9 })
    ));
}

#[tokio::test]
async fn an_out_of_order_file_is_refused_unless_allowed() {
    let db = TestDb::new().await;
    let dir = table_dir(&[1, 3]);
    dir.migrator().up(&db.config, &up_opts()).await.unwrap();
    for (name, sql) in table_pair(2) {
        dir.write(&name, &sql);
    }
    let migrator = dir.migrator();

    let err = migrator.up(&db.config, &up_opts()).await.unwrap_err();

    assert!(
        matches!(&err, Error::OutOfOrder { versions } if versions == &[2]),
        "{err}"
    );
    assert_eq!(migrator.status(&db.config).await.unwrap().out_of_order, [2]);
    let allowed = UpOptions {
        allow_out_of_order: true,
        ..up_opts()
    };
    let report = migrator.up(&db.config, &allowed).await.unwrap();
    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [2]);
    assert_eq!(report.version, Some(3));
}

#[tokio::test]
async fn status_lists_applied_pending_drifted_and_missing_migrations() {
    let db = TestDb::new().await;
    let dir = table_dir(&[1, 2, 3]);
    let empty = Migrator::load(dir.settings())
        .unwrap()
        .status(&db.config)
        .await
        .unwrap();
    assert_eq!((empty.current, empty.pending.len()), (None, 3));
    dir.migrator().up(&db.config, &up_opts()).await.unwrap();
    dir.write("1_t1.up.sql", "-- edited\nCREATE TABLE t1 (id int);");
    dir.remove("2_t2.up.sql");
    dir.remove("2_t2.down.sql");
    dir.write("4_irreversible.sql", "CREATE TABLE t4 (id int);");
    let migrator = dir.migrator();

    let status = migrator.status(&db.config).await.unwrap();

    assert_eq!(status.current, Some(3));
    assert_eq!(status.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(status.applied.iter().all(|a| a.success && a.applied_by == "test"));
    let pending: Vec<_> = status.pending.iter().map(|p| (p.version, p.reversible)).collect();
    assert_eq!(pending, [(4, false)]);
    assert_eq!((status.drifted, status.missing), (vec![1], vec![2]));
    assert!(status.out_of_order.is_empty());
    let json = serde_json::to_value(migrator.status(&db.config).await.unwrap()).unwrap();
    assert_eq!(json["missing"], serde_json::json!([2]));
}

#[tokio::test]
async fn a_missing_file_does_not_stop_up() {
    let db = TestDb::new().await;
    let dir = table_dir(&[1, 2]);
    dir.migrator().up(&db.config, &up_opts()).await.unwrap();
    dir.remove("1_t1.up.sql");
    dir.remove("1_t1.down.sql");
    let dir = dir.with(&[("3_t3.up.sql", "CREATE TABLE t3 (id int);")]);

    let report = dir.migrator().up(&db.config, &up_opts()).await.unwrap();

    assert_eq!(report.applied.iter().map(|a| a.version).collect::<Vec<_>>(), [3]);
    assert_eq!(db.applied_versions().await, [1, 2, 3]);
}
