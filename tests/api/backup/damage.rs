//! Damaged backups and wrong keys fail cleanly, naming the file.

use std::fs::OpenOptions;

use dbagent::{Classify, ErrorKind};
use dbagent::backup::{self, Compression, CreateRequest, Error, Format, Key, VerifyLevel};

use super::helpers::{Location, TestDb, quiet};

fn flip_byte(path: &std::path::Path, at_fraction: f64) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = ((bytes.len() as f64) * at_fraction) as usize;
    bytes[at] ^= 0x20;
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn a_tampered_byte_fails_verification_naming_the_file() {
    // Arrange: one encrypted backup and one plain gzip backup.
    let db = TestDb::create().await;
    let location = Location::new();
    let mut encrypted = location.settings();
    encrypted.encryption = Some(Key::Raw([7; 32]));
    let mut plain = location.settings();
    plain.compression = Compression::Gzip;
    let sealed = backup::create(&db.config(), &encrypted, &CreateRequest::default(), &quiet).await.unwrap();
    let gzipped = backup::create(&db.config(), &plain, &CreateRequest::default(), &quiet).await.unwrap();
    flip_byte(&location.path.join(&sealed.id).join("dump.zst.enc"), 0.5);
    flip_byte(&location.path.join(&gzipped.id).join("dump.gz"), 0.5);

    // Act
    let sealed_err = backup::verify(&db.config(), &encrypted, &sealed.id, VerifyLevel::Checksums, &quiet).await.unwrap_err();
    let gzipped_err = backup::verify(&db.config(), &plain, &gzipped.id, VerifyLevel::Checksums, &quiet).await.unwrap_err();

    // Assert
    assert!(matches!(sealed_err, Error::Decrypt { ref file } if file == "dump.zst.enc"), "{sealed_err}");
    assert_eq!(sealed_err.to_string(), "wrong key or corrupted file dump.zst.enc");
    assert!(matches!(gzipped_err, Error::VerificationFailed { ref file, .. } if file == "dump.gz"), "{gzipped_err}");
    assert_eq!(gzipped_err.kind(), ErrorKind::Unprocessable);
    let recorded = backup::get(&encrypted, &sealed.id).unwrap().verification.expect("a damaged backup is recorded");
    assert!(!recorded.ok);
    assert!(recorded.error.unwrap().contains("dump.zst.enc"));
}

#[tokio::test]
async fn a_truncated_file_fails_verification_naming_the_file() {
    let db = TestDb::create().await;
    let location = Location::new();
    let mut settings = location.settings();
    settings.encryption = Some(Key::Raw([8; 32]));
    let manifest = backup::create(&db.config(), &settings, &CreateRequest { format: Format::Directory, ..Default::default() }, &quiet)
        .await
        .unwrap();
    let victim = manifest.files.iter().max_by_key(|f| f.stored_bytes).unwrap();
    let path = location.path.join(&manifest.id).join(&victim.stored);
    OpenOptions::new().write(true).open(&path).unwrap().set_len(victim.stored_bytes / 2).unwrap();

    let err = backup::verify(&db.config(), &settings, &manifest.id, VerifyLevel::Checksums, &quiet).await.unwrap_err();

    assert!(matches!(err, Error::VerificationFailed { ref file, ref reason } if *file == victim.stored && reason.contains("truncated")), "{err}");
    assert!(err.to_string().contains(&victim.stored));
}

#[tokio::test]
async fn a_wrong_key_fails_cleanly_and_is_not_recorded_as_damage() {
    let db = TestDb::create().await;
    let location = Location::new();
    let mut settings = location.settings();
    settings.encryption = Some(Key::passphrase("the right passphrase here").unwrap());
    let manifest = backup::create(&db.config(), &settings, &CreateRequest::default(), &quiet).await.unwrap();

    let mut wrong = settings.clone();
    wrong.encryption = Some(Key::passphrase("the wrong passphrase here").unwrap());
    let wrong_err = backup::verify(&db.config(), &wrong, &manifest.id, VerifyLevel::Checksums, &quiet).await.unwrap_err();
    let mut keyless = settings.clone();
    keyless.encryption = None;
    let restore = backup::RestoreRequest { backup_id: manifest.id.clone(), ..Default::default() };
    let keyless_err = backup::restore(&db.config(), &keyless, &restore, &quiet).await.unwrap_err();

    assert!(matches!(wrong_err, Error::WrongKey { .. }), "{wrong_err}");
    assert_eq!(wrong_err.kind(), ErrorKind::Unprocessable);
    assert!(!wrong_err.to_string().contains("passphrase here"));
    assert!(matches!(keyless_err, Error::KeyRequired { .. }), "{keyless_err}");
    assert!(backup::get(&settings, &manifest.id).unwrap().verification.is_none());
    assert!(db.databases_like(&format!("{}_restored_", db.name)).await.is_empty(), "nothing was created");
}
