//! Create, verify at both levels, restore into a new database: contents identical.

use std::sync::atomic::{AtomicU64, Ordering};

use dbagent::{Classify, ErrorKind};
use dbagent::backup::{
    self, BackupKind, Compression, CountMethod, CreateRequest, Format, Key, RestoreRequest, VerifyLevel,
};

use super::helpers::{Location, TestDb, digests, quiet};

#[tokio::test]
async fn custom_zstd_backup_with_a_key_verifies_and_restores_identically() {
    // Arrange
    let db = TestDb::create().await;
    let location = Location::new();
    let mut settings = location.settings();
    settings.compression = Compression::Zstd;
    settings.encryption = Some(Key::parse(&"ab".repeat(32)).unwrap());
    let original = digests(&db.config()).await;
    let seen = AtomicU64::new(0);
    let progress = |p: backup::Progress| {
        seen.fetch_max(p.bytes, Ordering::Relaxed);
    };

    // Act
    let manifest = backup::create(&db.config(), &settings, &CreateRequest { name: Some("nightly".into()), ..Default::default() }, &progress)
        .await
        .expect("create");
    let level1 = backup::verify(&db.config(), &settings, &manifest.id, VerifyLevel::Checksums, &quiet).await.expect("verify 1");
    let level2 = backup::verify(&db.config(), &settings, &manifest.id, VerifyLevel::TrialRestore, &quiet).await.expect("verify 2");
    let report = backup::restore(&db.config(), &settings, &RestoreRequest { backup_id: manifest.id.clone(), ..Default::default() }, &quiet)
        .await
        .expect("restore");
    db.also_drop(&report.database);

    // Assert
    assert_eq!(manifest.files.len(), 1);
    assert_eq!(manifest.files[0].stored, "dump.zst.enc");
    assert!(manifest.stored_bytes < manifest.raw_bytes, "zstd should shrink a dump");
    assert_eq!(seen.load(Ordering::Relaxed), manifest.raw_bytes, "progress reaches the raw size");
    assert!(manifest.wal_lsn.is_some());
    let encryption = manifest.encryption.as_ref().expect("encrypted");
    assert_eq!(encryption.kdf, backup::Kdf::Sha256Subkey);
    let json = std::fs::read_to_string(location.path.join(&manifest.id).join("manifest.json")).unwrap();
    assert!(!json.contains(&"ab".repeat(32)), "the key must never be written");
    let orders = manifest.tables.iter().find(|t| t.table == "public.orders").expect("orders counted");
    assert_eq!((orders.rows, orders.method), (2000, CountMethod::Exact));
    let partition = manifest.tables.iter().find(|t| t.table == "public.events_2025").unwrap();
    assert_eq!(partition.partition_of.as_deref(), Some("public.events"));
    assert_eq!(level1.files.len(), 1);
    assert_eq!(level2.tables.len(), manifest.tables.len());
    assert!(level2.tables.iter().all(|t| t.expected == t.found));
    assert!(report.database.starts_with(&format!("{}_restored_", db.name)), "{}", report.database);
    assert_eq!(digests(&db.config_for(&report.database)).await, original);
    let recorded = backup::get(&settings, &manifest.id).unwrap().verification.expect("recorded");
    assert!(recorded.ok && recorded.level == 2);
    assert!(db.databases_like("dbagent_verify_").await.iter().all(|n| !n.contains(&manifest.id)), "scratch database dropped");
}

#[tokio::test]
async fn directory_gzip_backup_with_a_passphrase_verifies_and_restores_in_parallel() {
    // Arrange
    let db = TestDb::create().await;
    let location = Location::new();
    let mut settings = location.settings();
    settings.compression = Compression::Gzip;
    settings.encryption = Some(Key::passphrase("correct horse battery staple").unwrap());
    settings.jobs = 2;
    let original = digests(&db.config()).await;
    let req = CreateRequest { format: Format::Directory, ..Default::default() };

    // Act
    let manifest = backup::create(&db.config(), &settings, &req, &quiet).await.expect("create");
    backup::verify(&db.config(), &settings, &manifest.id, VerifyLevel::Checksums, &quiet).await.expect("verify 1");
    let level2 = backup::verify(&db.config(), &settings, &manifest.id, VerifyLevel::TrialRestore, &quiet).await.expect("verify 2");
    let restored = RestoreRequest { backup_id: manifest.id.clone(), target_database: Some(format!("{}_copy", db.name)), jobs: Some(2), ..Default::default() };
    let report = backup::restore(&db.config(), &settings, &restored, &quiet).await.expect("restore");
    db.also_drop(&report.database);

    // Assert
    assert!(manifest.files.iter().any(|f| f.name == "toc.dat" && f.stored == "dump/toc.dat.gz.enc"), "{:?}", manifest.files);
    assert!(manifest.files.len() > 4, "one file per table plus the TOC");
    assert!(matches!(manifest.encryption.as_ref().unwrap().kdf, backup::Kdf::Argon2id { .. }));
    assert!(!level2.tables.is_empty());
    assert_eq!(report.database, format!("{}_copy", db.name));
    assert_eq!(digests(&db.config_for(&report.database)).await, original);
    let leftovers: Vec<_> = std::fs::read_dir(&location.path).unwrap().filter_map(Result::ok).map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no work directories left behind: {leftovers:?}");
}

#[tokio::test]
async fn schema_only_and_data_only_backups_record_what_they_hold() {
    let db = TestDb::create().await;
    let location = Location::new();
    let settings = location.settings();

    let schema = backup::create(&db.config(), &settings, &CreateRequest { kind: BackupKind::SchemaOnly, ..Default::default() }, &quiet)
        .await
        .expect("schema-only");
    let data = backup::create(
        &db.config(),
        &settings,
        &CreateRequest { kind: BackupKind::DataOnly, tables: Some(vec!["public.orders".into()]), ..Default::default() },
        &quiet,
    )
    .await
    .expect("data-only");
    backup::verify(&db.config(), &settings, &schema.id, VerifyLevel::TrialRestore, &quiet).await.expect("schema-only trial restore");
    backup::verify(&db.config(), &settings, &data.id, VerifyLevel::Checksums, &quiet).await.expect("data-only checksums");
    let refused = backup::verify(&db.config(), &settings, &data.id, VerifyLevel::TrialRestore, &quiet).await.unwrap_err();

    assert_eq!(refused.kind(), ErrorKind::BadRequest, "{refused}");
    assert!(schema.tables.is_empty());
    let counted: Vec<&str> = data.tables.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(counted, ["public.orders"]);
    assert!(data.raw_bytes > schema.raw_bytes / 4);
    let listed: Vec<String> = backup::list(&settings).unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(listed, [data.id.clone(), schema.id.clone()], "newest first");
}
