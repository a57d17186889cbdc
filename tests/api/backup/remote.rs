//! Off-site copies (`backup.remote`) against a real S3 endpoint: moto in server mode, run
//! locally (installed into `target/tools/venv` by `scripts/setup.sh`). Uploads, the remote
//! catalogue, verify and restore after the local copy is deleted, the catalogue rebuilt from
//! the bucket alone, retention deleting remote objects, and a store that was down caught up.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};

/// A moto S3 server on `port`, killed on drop.
struct Moto {
    port: u16,
    child: Child,
}

impl Moto {
    async fn start(port: u16, bucket: &str) -> Moto {
        let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/venv/bin/moto_server");
        assert!(tool.exists(), "{} is missing: run `bash scripts/setup.sh`", tool.display());
        let child = Command::new(tool)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto { port, child };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        // moto checks no signature: a plain PUT makes the bucket.
        loop {
            match http.put(format!("{}/{bucket}", moto.endpoint())).send().await {
                Ok(r) if r.status().is_success() => return moto,
                _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                other => panic!("moto did not start: {other:?}"),
            }
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An object's bytes, read with a signed request of the test's own.
    async fn get(&self, bucket: &str, key: &str) -> bytes::Bytes {
        use object_store::ObjectStoreExt;
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("testing")
            .with_secret_access_key("testing")
            .build()
            .unwrap();
        store.get(&object_store::path::Path::from(key)).await.unwrap().bytes().await.unwrap()
    }

    /// The keys under `prefix`, read from the bucket directly.
    async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let url = format!("{}/{bucket}?list-type=2&prefix={prefix}", self.endpoint());
        let body = reqwest::get(url).await.unwrap().text().await.unwrap();
        body.split("<Key>").skip(1).filter_map(|part| part.split("</Key>").next()).map(str::to_owned).collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn location(what: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("remote-{what}-{}", uuid::Uuid::new_v4().simple()))
}

fn remote(endpoint: &str, bucket: &str) -> dbagent::config::BackupRemote {
    dbagent::config::BackupRemote {
        url: format!("s3://{bucket}/team/prod"),
        endpoint: Some(endpoint.to_owned()),
        region: Some("us-east-1".into()),
        access_key_id: Some(dbagent::config::Secret::new("testing")),
        secret_access_key: Some(dbagent::config::Secret::new("testing")),
        interval: "300ms".into(),
        ..Default::default()
    }
}

/// Waits until `/health` shows the uploader `state` with nothing pending (for `ok`).
async fn wait_for(app: &TestApp, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, health) = app.get("/health").await;
        let remote = health["backup_remote"].clone();
        if done(&remote) {
            return health;
        }
        assert!(Instant::now() < deadline, "{what}: {health:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn caught_up(remote: &Value, backups: u64) -> bool {
    remote["state"] == "ok" && remote["pending_files"] == 0 && remote["remote_backups"] == backups
}

#[tokio::test]
async fn backups_go_off_site_encrypted_and_come_back_when_the_local_copy_is_gone() {
    let moto = Moto::start(free_port(), "offsite").await;
    let dir = location("roundtrip");
    let (config_dir, endpoint) = (dir.clone(), moto.endpoint());
    let app = spawn_app_with(move |c| {
        c.backup.location = config_dir;
        c.backup.encryption_key = Some(dbagent::config::Secret::new("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"));
        c.backup.remote = Some(remote(&endpoint, "offsite"));
    })
    .await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT i, 'plaintext-marker-' || i FROM generate_series(1, 1000) i").await;
    let (status, created) = app.post("/backup", &json!({"backup_name": "offsite"})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["backup_id"].as_str().unwrap().to_owned();

    let health = wait_for(&app, "the backup uploaded", |r| caught_up(r, 1)).await;
    assert_eq!(health["status"], "healthy", "{health:#}");
    assert_eq!(health["backup_remote"]["url"], "s3://offsite/team/prod");
    assert!(health["backup_remote"]["uploaded_files_total"].as_u64() >= Some(2), "{health:#}");
    assert_eq!(health["backup_remote"]["lag_seconds"], 0.0);

    // The bucket mirrors the location's layout under the prefix, manifest included, and holds
    // the stored (encrypted) bytes: no plaintext row is in it.
    let keys = moto.keys("offsite", "team/prod/").await;
    let manifest_key = format!("team/prod/{id}/manifest.json");
    assert!(keys.contains(&manifest_key), "{keys:?}");
    let stored = created["manifest"]["files"][0]["stored"].as_str().unwrap();
    let object = moto.get("offsite", &format!("team/prod/{id}/{stored}")).await;
    assert_eq!(object.len() as u64, created["manifest"]["files"][0]["stored_bytes"].as_u64().unwrap());
    assert!(!object.windows(16).any(|w| w == b"plaintext-marker"), "the bucket holds plaintext");

    let (status, listed) = app.get("/backups?remote=true").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["remote"][0]["id"], json!(id), "{listed:#}");
    assert_eq!(listed["remote"][0]["local"], true);
    let metrics = app.http.get(format!("{}/metrics", app.address)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("dbagent_backup_remote_up 1") && metrics.contains("dbagent_backup_remote_pending_files 0"), "{metrics}");

    // The machine loses its backups: verify and restore download the copy first.
    std::fs::remove_dir_all(&dir).unwrap();
    let (_, listed) = app.get("/backups?remote=true").await;
    assert_eq!(listed["backups"], json!([]), "{listed:#}");
    assert_eq!(listed["remote"][0]["local"], false, "{listed:#}");
    let (status, verified) = app.post(&format!("/backups/{id}/verify"), &json!({"level": 1})).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    std::fs::remove_dir_all(&dir).unwrap();
    let target = format!("{}_offsite", app.db.name);
    let (status, restored) = app.post("/restore", &json!({"backup_id": id, "target_database": target})).await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    let copy = crate::helpers::connect(&format!("{}/{target}", crate::helpers::server_url())).await;
    let n: i64 = copy.query_one("SELECT count(*) FROM t WHERE v LIKE 'plaintext-marker-%'", &[]).await.unwrap().get(0);
    assert_eq!(n, 1000);
    drop(copy);
    app.setup(&format!("DROP DATABASE {target} WITH (FORCE)")).await;

    // A bad query parameter changes nothing.
    let (status, answer) = app.get("/backups?remote=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    // The command line: the remote catalogue without a database, and the catalogue of a new
    // machine rebuilt from the bucket alone.
    let fresh = location("lost-machine");
    std::fs::create_dir_all(&fresh).unwrap();
    let config = fresh.join("dbagent.yaml");
    std::fs::write(
        &config,
        format!(
            "backup:\n  location: {}\n  remote:\n    url: s3://offsite/team/prod\n    endpoint: {}\n    region: us-east-1\n    access_key_id: testing\n    secret_access_key: testing\n",
            fresh.join("backups").display(),
            moto.endpoint()
        ),
    )
    .unwrap();
    let cli = |args: &[&str], database: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dbagent"));
        command.args(args).current_dir(&fresh).env("CONFIG_PATH", &config).env_remove("RUST_LOG");
        match database {
            true => command.env("DATABASE_URL", format!("{}/{}", crate::helpers::server_url(), app.db.name)),
            false => command.env_remove("DATABASE_URL"),
        };
        command.output().unwrap()
    };
    let out = cli(&["--json", "backup", "list", "--remote"], false);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["id"], json!(id), "{listed:#}");
    assert_eq!(listed[0]["local"], false);
    let out = cli(&["--json", "backup", "rebuild-catalog", "--remote"], true);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["written"], 1, "{report}");
    let client = app.db.connect().await;
    let rows: i64 = client.query_one("SELECT count(*) FROM dbagent.backups WHERE id = $1", &[&id]).await.unwrap().get(0);
    assert_eq!(rows, 1);
    let _ = std::fs::remove_dir_all(&fresh);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_store_that_was_down_is_caught_up_and_retention_deletes_remote_copies() {
    let port = free_port();
    let dir = location("retention");
    let (config_dir, endpoint) = (dir.clone(), format!("http://127.0.0.1:{port}"));
    let app = spawn_app_with(move |c| {
        c.backup.location = config_dir;
        c.backup.retention_days = None;
        c.backup.keep_last = Some(1);
        c.backup.remote = Some(remote(&endpoint, "kept"));
    })
    .await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)").await;
    let (status, first) = app.post("/backup", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let first = first["backup_id"].as_str().unwrap().to_owned();

    // Nothing listens: the backup is taken all the same, and the failure shows.
    let health = wait_for(&app, "the failure shown", |r| r["state"] == "failing" && r["pending_files"].as_u64() >= Some(2)).await;
    assert_eq!(health["status"], "degraded", "{health:#}");
    assert!(health["backup_remote"]["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{health:#}");
    let metrics = app.http.get(format!("{}/metrics", app.address)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("dbagent_backup_remote_up 0"), "{metrics}");
    let (status, answer) = app.get("/backups?remote=true").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"]["code"], "remote_store_unavailable", "{answer}");

    // The store comes up: what waited goes up, without a new backup.
    let moto = Moto::start(port, "kept").await;
    wait_for(&app, "caught up", |r| caught_up(r, 1)).await;

    let (status, second) = app.post("/backup", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second = second["backup_id"].as_str().unwrap().to_owned();
    wait_for(&app, "the second uploaded", |r| caught_up(r, 2)).await;

    // keep_last 1: the first goes, here and in the bucket.
    let (status, pruned) = app.post("/backups/prune", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{pruned}");
    let (_, listed) = app.get("/backups?remote=true").await;
    let ids = |list: &Value| list.as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap().to_owned()).collect::<Vec<_>>();
    assert_eq!(ids(&listed["backups"]), std::slice::from_ref(&second), "{listed:#}");
    assert_eq!(ids(&listed["remote"]), std::slice::from_ref(&second), "{listed:#}");
    let keys = moto.keys("kept", "team/prod/").await;
    assert!(!keys.iter().any(|k| k.contains(&first)), "{keys:?}");
    assert!(keys.iter().any(|k| k.contains(&second)), "{keys:?}");

    // A backup only the bucket still has (deleted here while the store was down, say) is
    // pruned from the bucket too.
    let (status, third) = app.post("/backup", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    wait_for(&app, "the third uploaded", |r| caught_up(r, 2)).await;
    std::fs::remove_dir_all(dir.join(&second)).unwrap();
    let (status, pruned) = app.post("/backups/prune", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{pruned}");
    let keys = moto.keys("kept", "team/prod/").await;
    assert!(!keys.iter().any(|k| k.contains(&second)), "{keys:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A lost machine's point-in-time recovery: the base backup and the archived WAL after it come
/// back from the bucket alone.
#[tokio::test]
async fn point_in_time_recovery_reads_the_base_backup_and_wal_from_the_bucket() {
    let moto = Moto::start(free_port(), "pitr").await;
    let endpoint = moto.endpoint();
    let app = crate::helpers::spawn_managed_app(move |c| {
        c.backup.pitr = true;
        c.backup.location = c.instance.data_dir.with_file_name("backups");
        c.backup.agent_binary = Some(env!("CARGO_BIN_EXE_dbagent").into());
        c.backup.schedule = None;
        c.backup.remote = Some(remote(&endpoint, "pitr"));
    })
    .await;
    let db = crate::helpers::connect(&app.agent.managed().unwrap().primary.running.url("postgres")).await;
    db.batch_execute("CREATE TABLE ledger (id int PRIMARY KEY, note text); INSERT INTO ledger SELECT g, 'before the base backup' FROM generate_series(1, 3) g").await.unwrap();
    let (status, base) = app.post("/backup", &json!({"kind": "base"})).await;
    assert_eq!(status, StatusCode::OK, "{base}");
    let base_id = base["backup_id"].as_str().unwrap().to_owned();
    db.batch_execute("INSERT INTO ledger SELECT g, 'after the base backup' FROM generate_series(4, 6) g").await.unwrap();
    let noted: std::time::SystemTime = db.query_one("SELECT clock_timestamp()", &[]).await.unwrap().get(0);
    let noted = chrono::DateTime::<chrono::Utc>::from(noted);
    tokio::time::sleep(Duration::from_millis(50)).await;
    db.batch_execute("INSERT INTO ledger VALUES (7, 'after the noted time')").await.unwrap();
    let last = super::pitr::switch_and_wait_for_archive(&db).await;
    // The segment holding the last commit reaches the bucket (data, then its sidecar).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !moto.keys("pitr", "team/prod/wal/").await.contains(&format!("team/prod/wal/{last}.json")) {
        assert!(Instant::now() < deadline, "{last} never uploaded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(moto.keys("pitr", "team/prod/wal/").await.contains(&format!("team/prod/wal/{last}.zst")));
    let health = wait_for(&app, "the base backup uploaded", |r| caught_up(r, 1)).await;
    assert!(health["backup_remote"]["uploaded_files_total"].as_u64() >= Some(4), "{health:#}");

    // The machine loses the base backup and the whole WAL archive.
    let (_, report) = app.get("/backups/status").await;
    let archive = PathBuf::from(report["archive"].as_str().unwrap());
    std::fs::remove_dir_all(archive.with_file_name(&base_id)).unwrap();
    for entry in std::fs::read_dir(&archive).unwrap().flatten().filter(|e| e.path().is_file()) {
        std::fs::remove_file(entry.path()).unwrap();
    }
    let (status, recovered) = app.post("/restore", &json!({"to_time": noted})).await;
    assert_eq!(status, StatusCode::OK, "{recovered}");
    assert_eq!(recovered["base_backup_id"], json!(base_id));
    let copy = crate::helpers::connect(recovered["url"].as_str().unwrap()).await;
    let n: i64 = copy.query_one("SELECT count(*) FROM ledger", &[]).await.unwrap().get(0);
    assert_eq!(n, 6, "recovered to {noted}: {recovered}");
    drop(copy);
    let data_dir = recovered["data_dir"].as_str().unwrap();
    dbagent::instance::stop(&dbagent::instance::Settings::new(data_dir), dbagent::instance::StopMode::Fast).await.unwrap();
    app.stop().await;
}
