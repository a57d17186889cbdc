//! Point-in-time recovery of a server dbagent does not run: a cluster of its own (started by
//! the test, never by the agent, with `archive_mode` off) whose WAL the agent streams with
//! `pg_receivewal` through a replication slot into the same archive the managed instance's
//! `archive_command` fills.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestDb, connect, spawn_app_on, start_instance, test_instance_settings};
use dbagent::config::Config;

/// The agent's settings for the external server at `root`.
fn configure(root: &std::path::Path) -> impl Fn(&mut Config) {
    let root = root.to_path_buf();
    move |c: &mut Config| {
        c.backup.pitr = true;
        c.backup.location = root.join("backups");
        c.backup.agent_binary = Some(env!("CARGO_BIN_EXE_dbagent").into());
        c.backup.schedule = None;
        c.backup.rpo_target = "30s".into();
        c.backup.wal_stream.synchronous = true;
        // Where a recovery's new cluster goes (beside the external one) and its binaries.
        c.instance.data_dir = root.join("pgdata");
        c.instance.bin_dir = std::env::var_os("PG_BIN").map(Into::into);
    }
}

async fn health(app: &crate::helpers::TestApp) -> Value {
    app.get("/health").await.1
}

/// Polls `/health` until `ready` holds for its `wal` section.
async fn wait_for_wal(app: &crate::helpers::TestApp, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let report = health(app).await;
        if ready(&report["wal"]) {
            return report;
        }
        assert!(Instant::now() < deadline, "{what}: {:#}", report["wal"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The server's WAL position as a number.
async fn server_lsn(db: &tokio_postgres::Client) -> u64 {
    let text: String = db.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
    dbagent::backup::wal::parse_lsn(&text).unwrap()
}

fn lsn_of(value: &Value) -> u64 {
    value.as_str().and_then(dbagent::backup::wal::parse_lsn).unwrap_or(0)
}

#[tokio::test]
async fn a_server_dbagent_does_not_run_is_streamed_and_recovered_to_a_noted_time() {
    let name = format!("stream-{}", uuid::Uuid::new_v4().simple());
    let external = test_instance_settings(&format!("{name}/external"));
    let root = external.data_dir.parent().unwrap().to_path_buf();
    let running = start_instance(&external);
    let _stop = StopOnDrop(vec![external.data_dir.clone()]);
    let url = running.url("postgres");
    let db = connect(&url).await;
    let archive_mode: String = db.query_one("SHOW archive_mode", &[]).await.unwrap().get(0);
    assert_eq!(archive_mode, "off", "the external server does not archive: the stream is the only source");

    let app = spawn_app_on(TestDb::existing(&url), configure(&root)).await;
    let report = wait_for_wal(&app, "the stream never started", |w| w["stream"]["running"] == true).await;
    assert_eq!(report["wal"]["source"], "pg_receivewal", "{report:#}");
    assert!(report["wal_archive"].is_null(), "pg_stat_archiver says nothing of a stream: {report:#}");
    let slot = db
        .query_one(
            "SELECT s.active, r.application_name FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = 'dbagent_wal'",
            &[],
        )
        .await
        .unwrap();
    assert!(slot.get::<_, bool>(0));
    assert_eq!(slot.get::<_, String>(1), "dbagent_wal");

    db.batch_execute("CREATE TABLE ledger (id int PRIMARY KEY, note text); INSERT INTO ledger SELECT g, 'before the base backup' FROM generate_series(1, 3) g").await.unwrap();
    let (status, base) = app.post("/backup", &json!({"kind": "base", "name": "external base"})).await;
    assert_eq!(status, StatusCode::OK, "a base backup of a server without archive_mode: {base}");
    let base_id = base["backup_id"].as_str().unwrap().to_owned();

    db.batch_execute("INSERT INTO ledger SELECT g, 'after the base backup' FROM generate_series(4, 6) g").await.unwrap();
    let noted: std::time::SystemTime = db.query_one("SELECT clock_timestamp()", &[]).await.unwrap().get(0);
    let noted = chrono::DateTime::<chrono::Utc>::from(noted);
    tokio::time::sleep(Duration::from_millis(50)).await;
    db.batch_execute("INSERT INTO ledger SELECT g, 'after the noted time' FROM generate_series(7, 9) g; UPDATE ledger SET note = 'changed later' WHERE id = 1").await.unwrap();
    // No segment switch: the commits are in the segment pg_receivewal is still writing, and
    // within a second or two they are safe (the RPO is seconds, not a segment's worth).
    let written = server_lsn(&db).await;
    let report = wait_for_wal(&app, "the stream never received the last commits", |w| lsn_of(&w["stream"]["received_lsn"]) >= written).await;
    let rpo = report["wal"]["rpo_seconds"].as_f64().unwrap();
    assert!(rpo < 30.0, "{report:#}");
    let (status, pitr) = app.get("/backups/status").await;
    assert_eq!(status, StatusCode::OK, "{pitr}");
    assert_eq!(pitr["gaps"], json!([]), "{pitr:#}");
    assert_eq!(pitr["wal"]["source"], "pg_receivewal", "{pitr:#}");
    let window = &pitr["recoverable"][0];
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&chrono::Utc);
    assert!(parse(window["from"].as_str().unwrap()) <= noted && noted <= parse(window["to"].as_str().unwrap()), "{noted} outside {window}");

    // The recovery reads the segment being streamed (its .partial) and stops at the time.
    let (status, recovered) = app.post("/restore", &json!({"to_time": noted})).await;
    assert_eq!(status, StatusCode::OK, "{recovered}");
    assert_eq!(recovered["base_backup_id"], json!(base_id));
    let recovered_dir = std::path::PathBuf::from(recovered["data_dir"].as_str().unwrap());
    let _stop_copy = StopOnDrop(vec![recovered_dir.clone()]);
    assert!(recovered_dir.starts_with(&root), "the new cluster goes beside instance.data_dir: {recovered}");
    let copy = connect(recovered["url"].as_str().unwrap()).await;
    let rows = copy.query("SELECT id, note FROM ledger ORDER BY id", &[]).await.unwrap();
    let got: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected: Vec<(i32, String)> =
        (1..=6).map(|i| (i, if i <= 3 { "before the base backup" } else { "after the base backup" }.to_owned())).collect();
    assert_eq!(got, expected, "recovered to {noted}: {recovered}");
    drop(copy);

    // pg_receivewal's connection is cut: it is started again (backoff) and the stream goes on;
    // a switched segment lands in the archive, checksummed like an archive_command's.
    let restarts = report["wal"]["stream"]["restarts"].as_u64().unwrap();
    db.batch_execute("SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = 'dbagent_wal'").await.unwrap();
    wait_for_wal(&app, "pg_receivewal was not restarted", |w| w["stream"]["restarts"].as_u64() > Some(restarts) && w["stream"]["running"] == true).await;
    db.batch_execute("INSERT INTO ledger VALUES (10, 'after the restart')").await.unwrap();
    let switched: String = db.query_one("SELECT pg_walfile_name(pg_switch_wal())", &[]).await.unwrap().get(0);
    let archive = std::path::PathBuf::from(pitr["archive"].as_str().unwrap());
    wait_until_archived(&archive, &switched).await;

    // /metrics shows the stream and the RPO.
    let metrics = app.http.get(format!("{}/metrics", app.address)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("dbagent_wal_stream_up{slot=\"dbagent_wal\"} 1"), "{metrics}");
    assert!(metrics.contains("dbagent_backup_rpo_seconds "), "{metrics}");
    assert!(metrics.contains("dbagent_wal_stream_slot_lag_bytes{slot=\"dbagent_wal\"}"), "{metrics}");

    // While no agent runs, the slot keeps the server's WAL; the next agent streams it all: the
    // archive has no gap.
    app.stop().await;
    db.batch_execute("INSERT INTO ledger VALUES (11, 'while dbagent was down')").await.unwrap();
    let while_down: String = db.query_one("SELECT pg_walfile_name(pg_switch_wal())", &[]).await.unwrap().get(0);
    db.batch_execute("INSERT INTO ledger VALUES (12, 'after that')").await.unwrap();
    db.query_one("SELECT pg_switch_wal()", &[]).await.unwrap();
    let kept: bool = db.query_one("SELECT NOT active AND restart_lsn IS NOT NULL FROM pg_replication_slots WHERE slot_name = 'dbagent_wal'", &[]).await.unwrap().get(0);
    assert!(kept, "the slot outlives the agent");
    let app = spawn_app_on(TestDb::existing(&url), configure(&root)).await;
    wait_until_archived(&archive, &while_down).await;
    let (_, pitr) = app.get("/backups/status").await;
    assert_eq!(pitr["gaps"], json!([]), "{pitr:#}");
    assert!(pitr["base_backups"][0]["last_segment"].as_str().unwrap() >= while_down.as_str(), "{pitr:#}");
    app.stop().await;

    // A role without the REPLICATION attribute is told what to do, and /health is degraded.
    // (It owns a database of its own, where dbagent keeps its schema.)
    db.batch_execute("CREATE ROLE plain_user LOGIN").await.unwrap();
    db.batch_execute("CREATE DATABASE plain_db OWNER plain_user").await.unwrap();
    let plain = format!("postgresql://plain_user@127.0.0.1:{}/plain_db", running.port);
    let settings = configure(&root);
    let app = spawn_app_on(TestDb::existing(&plain), move |c| {
        settings(c);
        c.backup.wal_stream.slot = "plain_slot".into();
    })
    .await;
    let report = wait_for_wal(&app, "no error for a role without REPLICATION", |w| !w["stream"]["last_error"].is_null()).await;
    let error = report["wal"]["stream"]["last_error"].as_str().unwrap();
    assert!(error.contains("ALTER ROLE plain_user REPLICATION"), "{error}");
    assert_eq!(report["status"], "degraded", "{report:#}");
    app.stop().await;
}

/// Waits until `name` is in the archive (its sidecar written).
async fn wait_until_archived(archive: &std::path::Path, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dbagent::backup::wal::list(archive).unwrap().contains_key(name) {
        assert!(Instant::now() < deadline, "{name} never reached the archive");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Stops the clusters in these data directories when the test ends, passing or not.
struct StopOnDrop(Vec<std::path::PathBuf>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let dirs = std::mem::take(&mut self.0);
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            for dir in dirs {
                let _ = rt.block_on(dbagent::instance::stop(&dbagent::instance::Settings::new(dir), dbagent::instance::StopMode::Immediate));
            }
        })
        .join();
    }
}
