//! The disk under the backup location full (a small tmpfs, mounted when the test runs as root):
//! the backup fails with `insufficient_storage`, leaves nothing behind, and the next backup
//! after space returns succeeds.

use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app_with;

/// A tmpfs of `size` mounted at a fresh directory; unmounted (and removed) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("faults: disk full skipped: not running as root");
            return None;
        }
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("disk-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&dir).status();
        if !mounted.as_ref().is_ok_and(|s| s.success()) {
            eprintln!("faults: disk full skipped: cannot mount a tmpfs ({mounted:?})");
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        Some(Tmpfs(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn a_full_backup_disk_fails_the_backup_cleanly_and_the_next_one_succeeds_once_there_is_space() {
    let Some(disk) = Tmpfs::mount("16m") else { return };
    // 14 MB of filler: 2 MB free, less than the dump needs (~3 MB).
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![7u8; 14 * 1024 * 1024]).unwrap();
    let location = disk.0.join("backups");
    let app = spawn_app_with(|c| {
        c.backup.location = location.clone();
        c.backup.compression = dbagent::config::Compression::None;
    })
    .await;
    app.setup("CREATE TABLE big AS SELECT g AS id, md5(g::text) || md5((g + 1)::text) AS v FROM generate_series(1, 120000) g").await;

    let (status, body) = app.post("/backup", &json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("insufficient_storage")), "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.contains(&*disk.0.to_string_lossy()), "the answer shows a server path: {message}");
    assert_eq!(entries(&location), Vec::<String>::new(), "a partial backup was left");
    let (_, listed) = app.get("/backups").await;
    assert_eq!(listed["backups"], json!([]), "{listed}");

    std::fs::remove_file(&filler).unwrap();
    let (status, body) = app.post("/backup", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, listed) = app.get("/backups").await;
    assert_eq!(listed["backups"].as_array().map(Vec::len), Some(1), "{listed}");
    eprintln!("faults: disk full: backup answered 503 insufficient_storage ({message:?}), nothing left behind; after space returned the next backup succeeded");
    drop(app);
}

#[tokio::test]
async fn a_full_wal_archive_fails_the_push_cleanly_and_the_next_push_succeeds_once_there_is_space() {
    let Some(disk) = Tmpfs::mount("8m") else { return };
    let archive = disk.0.join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    // 6 MB of filler: 2 MB free, less than a 4 MB segment of incompressible bytes needs.
    let filler = disk.0.join("filler");
    std::fs::write(&filler, vec![7u8; 6 * 1024 * 1024]).unwrap();
    let segment = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("wal-{}", uuid::Uuid::new_v4().simple()));
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..4 * 1024 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&segment, bytes).unwrap();
    let name = "000000010000000000000001";
    let push = || {
        Command::new(env!("CARGO_BIN_EXE_dbagent"))
            .args(["wal", "push", "--archive"])
            .arg(&archive)
            .arg(&segment)
            .arg(name)
            .output()
            .expect("run dbagent wal push")
    };
    let full = push();
    let stderr = String::from_utf8_lossy(&full.stderr).into_owned();
    assert!(!full.status.success(), "the push succeeded on a full disk");
    assert!(stderr.contains("no space left"), "{stderr}");
    assert_eq!(entries(&archive), Vec::<String>::new(), "a half file or sidecar was left");

    std::fs::remove_file(&filler).unwrap();
    let pushed = push();
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    let mut archived = entries(&archive);
    archived.sort();
    assert_eq!(archived, [format!("{name}.json"), format!("{name}.zst")]);
    let _ = std::fs::remove_file(&segment);
    eprintln!("faults: WAL archive full: push failed ({}), nothing left behind; pushed once space returned", stderr.trim());
}
