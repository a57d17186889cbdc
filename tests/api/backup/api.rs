//! Backups through the HTTP API: create (seed 000's body), list, get, download, verify,
//! restore, delete, and the refusals.

use reqwest::StatusCode;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn backups_over_the_api_create_list_download_verify_restore_and_delete() {
    let location = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("api-backups-{}", uuid::Uuid::new_v4().simple()));
    let dir = location.clone();
    let app = spawn_app_with(move |c| c.backup.location = dir).await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 1000) i").await;

    let (status, created) = app.post("/backup", &json!({"backup_name": "daily_backup", "compress": true})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["backup_id"].as_str().unwrap().to_string();
    assert!(created["size_mb"].as_f64().unwrap() > 0.0 && created["duration"].as_f64().is_some(), "{created}");
    assert_eq!(created["manifest"]["compression"], "zstd");

    let (_, listed) = app.get("/backups").await;
    assert_eq!(listed["backups"][0]["id"], json!(id), "{listed}");
    assert!(listed.get("remote").is_none(), "{listed}");
    // No remote store configured: asking for it is a clear 400.
    let (status, answer) = app.get("/backups?remote=true").await;
    assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("remote_not_configured")), "{answer}");
    let (status, manifest) = app.get(&format!("/backups/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let t_rows = manifest["tables"].as_array().unwrap().iter().find(|t| t["table"].as_str().is_some_and(|n| n.ends_with(".t") || n == "t"));
    assert!(t_rows.is_some(), "{manifest:#}");

    // The download is the stored file, byte for byte (its SHA-256 is the manifest's).
    let response = app.http.get(format!("{}/backups/{id}/download", app.address)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.bytes().await.unwrap();
    let digest: String = Sha256::digest(&body).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, manifest["files"][0]["sha256_stored"].as_str().unwrap());

    let (status, verified) = app.post(&format!("/backups/{id}/verify"), &json!({"level": 2})).await;
    assert_eq!(status, StatusCode::OK, "{verified}");

    let target = format!("{}_copy", app.db.name);
    let (status, restored) = app.post("/restore", &json!({"backup_file": id, "target_database": target})).await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    let copy = crate::helpers::connect(&format!("{}/{target}", crate::helpers::server_url())).await;
    let n: i64 = copy.query_one("SELECT count(*) FROM t", &[]).await.unwrap().get(0);
    assert_eq!(n, 1000);
    drop(copy);
    app.setup(&format!("DROP DATABASE {target} WITH (FORCE)")).await;

    for (path, body, want) in [
        ("/restore", json!({"backup_file": "/etc/passwd"}), StatusCode::BAD_REQUEST),
        ("/restore", json!({"backup_file": "../../etc/passwd"}), StatusCode::NOT_FOUND),
        ("/restore", json!({"backup_id": "20200101T000000Z-nope"}), StatusCode::NOT_FOUND),
        ("/restore", json!({}), StatusCode::BAD_REQUEST),
        ("/backup", json!({"kind": "everything"}), StatusCode::BAD_REQUEST),
        ("/backup", json!({"tables": ["no_such_table"]}), StatusCode::BAD_REQUEST),
        ("/backup", json!({"kind": "base"}), StatusCode::BAD_REQUEST),
        ("/backups/nope/verify", json!({"level": 3}), StatusCode::BAD_REQUEST),
    ] {
        let (status, answer) = app.post(path, &body).await;
        assert_eq!(status, want, "{path} {body}: {answer}");
    }

    // The only backup is the newest good one: deleted only with force.
    let response = app.http.delete(format!("{}/backups/{id}", app.address)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let response = app.http.delete(format!("{}/backups/{id}?force=true", app.address)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = app.get(&format!("/backups/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let _ = std::fs::remove_dir_all(&location);
}
