//! Restores that replace, restores that fail, table-level restores, and paths outside the
//! location.

use dbagent::{Classify, ErrorKind};
use dbagent::backup::{self, Compression, CreateRequest, Error, Format, RestoreMode, RestoreRequest};

use super::helpers::{Location, TestDb, connect, digests, quiet};

#[tokio::test]
async fn a_failed_drop_existing_restore_leaves_the_original_untouched() {
    // Arrange: a backup, a later write, then the backup's file damaged near its end.
    let db = TestDb::create().await;
    let location = Location::new();
    let mut settings = location.settings();
    settings.compression = Compression::None;
    let manifest = backup::create(&db.config(), &settings, &CreateRequest::default(), &quiet).await.unwrap();
    db.connect().await.batch_execute("INSERT INTO customers (name) VALUES ('after the backup')").await.unwrap();
    let before = digests(&db.config()).await;
    let file = location.path.join(&manifest.id).join("dump");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.len() * 9 / 10;
    bytes[at] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    // Act
    let req = RestoreRequest { backup_id: manifest.id.clone(), drop_existing: true, ..Default::default() };
    let err = backup::restore(&db.config(), &settings, &req, &quiet).await.unwrap_err();

    // Assert: the failure names the file; the original is intact and open; nothing is left.
    assert!(matches!(err, Error::VerificationFailed { ref file, .. } if file == "dump"), "{err}");
    assert_eq!(digests(&db.config()).await, before);
    let allowed: bool = db.connect().await.query_one("SELECT datallowconn FROM pg_database WHERE datname = current_database()", &[]).await.unwrap().get(0);
    assert!(allowed);
    assert!(db.databases_like(&format!("{}_restoring_", db.name)).await.is_empty());
    assert!(db.databases_like(&format!("{}_replaced_", &db.name[..db.name.len().min(39)])).await.is_empty());
}

/// SIGKILLs the first `pg_restore` process whose command line mentions `database`; returns
/// whether one was found.
fn kill_pg_restore(database: &str) -> bool {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline);
        let program = cmdline.split('\0').next().unwrap_or_default();
        if program.ends_with("pg_restore") && cmdline.contains(database) {
            let pid: i32 = entry.file_name().to_string_lossy().parse().unwrap();
            return nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).is_ok();
        }
    }
    false
}

#[tokio::test]
async fn a_drop_existing_restore_whose_pg_restore_is_killed_midway_leaves_the_original_untouched() {
    // Arrange: enough rows that pg_restore is still copying when we kill it.
    let db = TestDb::create().await;
    db.connect()
        .await
        .batch_execute("CREATE TABLE bulk AS SELECT g AS id, repeat(md5(g::text), 4) AS filler FROM generate_series(1, 400000) g")
        .await
        .unwrap();
    let location = Location::new();
    let settings = location.settings();
    let manifest = backup::create(&db.config(), &settings, &CreateRequest::default(), &quiet).await.unwrap();
    db.connect().await.batch_execute("INSERT INTO customers (name) VALUES ('after the backup')").await.unwrap();
    let before = digests(&db.config()).await;

    // Act: start the restore; once its pg_restore is copying rows into the fresh database,
    // kill it.
    let req = RestoreRequest { backup_id: manifest.id.clone(), drop_existing: true, ..Default::default() };
    let config = db.config();
    let restoring = backup::restore(&config, &settings, &req, &quiet);
    let killer = async {
        let watcher = db.connect().await;
        let fresh = format!("{}_restoring_", db.name);
        for _ in 0..600 {
            let copying: i64 = watcher
                .query_one("SELECT count(*) FROM pg_stat_activity WHERE starts_with(datname, $1) AND query ILIKE 'COPY%'", &[&fresh])
                .await
                .unwrap()
                .get(0);
            if copying > 0 && kill_pg_restore(&fresh) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        false
    };
    let (result, killed) = tokio::join!(restoring, killer);

    // Assert: the restore failed because of pg_restore; the original is intact, open, and
    // the half-restored copy is gone.
    assert!(killed, "pg_restore was never seen copying");
    let err = result.expect_err("a killed pg_restore fails the restore");
    assert!(matches!(err, Error::ToolFailed { tool: "pg_restore", .. }), "{err}");
    assert_eq!(digests(&db.config()).await, before);
    let allowed: bool = db.connect().await.query_one("SELECT datallowconn FROM pg_database WHERE datname = current_database()", &[]).await.unwrap().get(0);
    assert!(allowed);
    let bulk: i64 = db.connect().await.query_one("SELECT count(*) FROM bulk", &[]).await.unwrap().get(0);
    assert_eq!(bulk, 400000);
    assert!(db.databases_like(&format!("{}_restoring_", db.name)).await.is_empty());
    assert!(db.databases_like(&format!("{}_replaced_", &db.name[..db.name.len().min(39)])).await.is_empty());
}

#[tokio::test]
async fn a_drop_existing_restore_swaps_the_restored_copy_in() {
    // Arrange
    let db = TestDb::create().await;
    let location = Location::new();
    let settings = location.settings();
    let at_backup = digests(&db.config()).await;
    let manifest = backup::create(&db.config(), &settings, &CreateRequest::default(), &quiet).await.unwrap();
    let open_session = db.connect().await;
    open_session
        .batch_execute("INSERT INTO customers (name) VALUES ('after the backup'); CREATE TABLE later (x int)")
        .await
        .unwrap();

    // Act: a session is still open on the database being replaced.
    let req = RestoreRequest { backup_id: manifest.id.clone(), drop_existing: true, ..Default::default() };
    let report = backup::restore(&db.config(), &settings, &req, &quiet).await.expect("restore");

    // Assert
    assert_eq!(report.mode, RestoreMode::Replaced);
    assert_eq!(report.database, db.name);
    // The replaced database is kept (renamed), not dropped.
    let kept = report.replaced_as.clone().expect("the replaced database's name");
    db.also_drop(&kept);
    assert!(!report.replaced_dropped && report.replaced_expires_at.is_some(), "{report:?}");
    assert_eq!(digests(&db.config()).await, at_backup);
    let later: Option<String> = db.connect().await.query_one("SELECT to_regclass('later')::text", &[]).await.unwrap().get(0);
    assert_eq!(later, None, "the replaced database's later table is gone");
    assert!(open_session.is_closed() || open_session.simple_query("SELECT 1").await.is_err(), "old sessions were ended");
    assert_eq!(db.databases_like(&format!("{}_replaced_", &db.name[..db.name.len().min(39)])).await, vec![kept.clone()]);
    let kept_later: Option<String> = connect(&db.config_for(&kept)).await.query_one("SELECT to_regclass('later')::text", &[]).await.unwrap().get(0);
    assert_eq!(kept_later.as_deref(), Some("later"), "the replaced database is kept whole under {kept}");
    let catalogued: i64 = db.connect().await.query_one("SELECT count(*) FROM dbagent.backups", &[]).await.unwrap().get(0);
    assert_eq!(catalogued, 1, "the catalog mirror was rebuilt in the restored database");
}

#[tokio::test]
async fn table_level_restores_bring_back_only_the_listed_tables() {
    // Arrange
    let db = TestDb::create().await;
    let location = Location::new();
    let mut settings = location.settings();
    settings.jobs = 2;
    let original = digests(&db.config()).await;
    let manifest = backup::create(&db.config(), &settings, &CreateRequest { format: Format::Directory, ..Default::default() }, &quiet)
        .await
        .unwrap();

    // Act 1: into a new database, a partitioned table and a plain one.
    let into_new = RestoreRequest { backup_id: manifest.id.clone(), tables: Some(vec!["events".into(), "public.customers".into()]), ..Default::default() };
    let report = backup::restore(&db.config(), &settings, &into_new, &quiet).await.expect("tables into a new database");
    db.also_drop(&report.database);

    // Assert 1
    assert_eq!(report.mode, RestoreMode::TablesIntoNewDatabase);
    let restored = digests(&db.config_for(&report.database)).await;
    for table in ["customers", "events_2024", "events_2025"] {
        assert_eq!(restored[table], original[table], "{table}");
    }
    assert_eq!(restored["orders"].0, 0, "orders' definition is there, its rows are not");

    // Act 2: rows lost from one table, loaded back into the existing database.
    db.connect().await.batch_execute("DELETE FROM orders").await.unwrap();
    let into_existing = RestoreRequest { backup_id: manifest.id.clone(), target_database: Some(db.name.clone()), tables: Some(vec!["orders".into()]), ..Default::default() };
    let report = backup::restore(&db.config(), &settings, &into_existing, &quiet).await.expect("rows into the existing database");

    // Assert 2
    assert_eq!(report.mode, RestoreMode::DataIntoExisting);
    assert_eq!(digests(&db.config()).await, original);

    // Act 3: the same again conflicts with the rows now there, and changes nothing.
    let err = backup::restore(&db.config(), &settings, &into_existing, &quiet).await.unwrap_err();
    assert!(matches!(err, Error::ToolFailed { .. }), "{err}");
    assert_eq!(digests(&db.config()).await, original);
}

#[tokio::test]
async fn restores_refuse_paths_outside_the_location_and_existing_targets() {
    let db = TestDb::create().await;
    let location = Location::new();
    let settings = location.settings();
    let manifest = backup::create(&db.config(), &settings, &CreateRequest::default(), &quiet).await.unwrap();
    let outside = Location::new();
    let copy = outside.path.join(&manifest.id);
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(location.path.join(&manifest.id)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    std::os::unix::fs::symlink(&copy, location.path.join("sneaky")).unwrap();

    let attempt = |given: String| {
        let settings = settings.clone();
        let config = db.config();
        async move {
            let req = RestoreRequest { backup_id: given, ..Default::default() };
            backup::restore(&config, &settings, &req, &quiet).await.unwrap_err()
        }
    };
    let absolute = attempt(copy.display().to_string()).await;
    let relative = attempt(format!("../{}/{}", outside.path.file_name().unwrap().to_string_lossy(), manifest.id)).await;
    let linked = attempt("sneaky/manifest.json".to_owned()).await;
    let existing = backup::restore(
        &db.config(),
        &settings,
        &RestoreRequest { backup_id: manifest.id.clone(), target_database: Some(db.name.clone()), ..Default::default() },
        &quiet,
    )
    .await
    .unwrap_err();
    let by_path = backup::restore(
        &db.config(),
        &settings,
        &RestoreRequest { backup_id: location.path.join(&manifest.id).join("dump.zst").display().to_string(), target_database: Some(format!("{}_bypath", db.name)), ..Default::default() },
        &quiet,
    )
    .await
    .expect("a path inside the location is fine");
    db.also_drop(&by_path.database);

    for err in [&absolute, &relative, &linked] {
        assert!(matches!(err, Error::OutsideLocation { .. }), "{err}");
        assert_eq!(err.kind(), ErrorKind::BadRequest);
    }
    assert!(matches!(existing, Error::TargetExists { .. }), "{existing}");
    assert_eq!(existing.kind(), ErrorKind::Conflict);
}

#[tokio::test]
async fn a_swap_that_fails_between_its_two_renames_puts_the_original_back() {
    // Arrange: a good backup, a later write, and the swap's second rename made to fail.
    let db = TestDb::create().await;
    let location = Location::new();
    let settings = location.settings();
    let manifest = backup::create(&db.config(), &settings, &CreateRequest::default(), &quiet).await.unwrap();
    db.connect().await.batch_execute("INSERT INTO customers (name) VALUES ('after the backup')").await.unwrap();
    let before = digests(&db.config()).await;
    dbagent::failpoints::arm("restore-swap-second-rename", &db.name, 1);

    // Act
    let req = RestoreRequest { backup_id: manifest.id.clone(), drop_existing: true, ..Default::default() };
    let err = backup::restore(&db.config(), &settings, &req, &quiet).await.expect_err("the failpoint fails the swap");

    // Assert: the original is back under its name, with its data, open to sessions; neither
    // the restored copy nor a renamed original is left.
    assert!(matches!(err, Error::Database { .. }), "{err}");
    assert_eq!(digests(&db.config()).await, before);
    let allowed: bool = db.connect().await.query_one("SELECT datallowconn FROM pg_database WHERE datname = current_database()", &[]).await.unwrap().get(0);
    assert!(allowed);
    assert!(db.databases_like(&format!("{}_restoring_", db.name)).await.is_empty());
    assert!(db.databases_like(&format!("{}_replaced_", &db.name[..db.name.len().min(39)])).await.is_empty());
}
