//! Point-in-time recovery on a managed instance: WAL archived by the real server through
//! `dbagent wal push`, a base backup, and a recovery to a noted time into a new cluster.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{connect, spawn_managed_app};

/// Waits until the server has archived the segment it just switched away from.
pub(super) async fn switch_and_wait_for_archive(db: &tokio_postgres::Client) -> String {
    let segment: String = db.query_one("SELECT pg_walfile_name(pg_switch_wal())", &[]).await.unwrap().get(0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let row = db.query_one("SELECT coalesce(last_archived_wal, ''), failed_count, coalesce(last_failed_wal, '') FROM pg_stat_archiver", &[]).await.unwrap();
        let archived: String = row.get(0);
        if archived.as_str() >= segment.as_str() {
            return segment;
        }
        assert!(Instant::now() < deadline, "segment {segment} not archived; archiver: failed {} times, last failed {}", row.get::<_, i64>(1), row.get::<_, String>(2));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn recovery_to_a_noted_time_brings_back_exactly_the_rows_committed_before_it() {
    let app = spawn_managed_app(|c| {
        c.backup.pitr = true;
        c.backup.location = c.instance.data_dir.with_file_name("backups");
        c.backup.agent_binary = Some(env!("CARGO_BIN_EXE_dbagent").into());
        c.backup.schedule = None;
        c.backup.keep_last = Some(1);
        c.backup.retention_days = None;
    })
    .await;
    let db = connect(&app.agent.managed().unwrap().primary.running.url("postgres")).await;
    let mode: String = db.query_one("SHOW archive_mode", &[]).await.unwrap().get(0);
    assert_eq!(mode, "on");

    // Without a base backup there is nothing to recover from: a clear 400.
    let (status, answer) = app.post("/restore", &json!({"to_time": chrono::Utc::now()})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");

    db.batch_execute("CREATE TABLE ledger (id int PRIMARY KEY, note text); INSERT INTO ledger SELECT g, 'before the base backup' FROM generate_series(1, 3) g").await.unwrap();
    // As when managed replicas stream: synchronous commit in postgresql.auto.conf (not
    // reloaded here, so the primary itself does not wait), copied by the base backup.
    db.batch_execute("ALTER SYSTEM SET synchronous_standby_names = 'ANY 1 (*)'").await.unwrap();
    let (status, base) = app.post("/backup", &json!({"kind": "base", "name": "base"})).await;
    db.batch_execute("ALTER SYSTEM RESET synchronous_standby_names").await.unwrap();
    assert_eq!(status, StatusCode::OK, "{base}");
    assert_eq!(base["manifest"]["kind"], "base");
    let base_id = base["backup_id"].as_str().unwrap().to_owned();

    db.batch_execute("INSERT INTO ledger SELECT g, 'after the base backup' FROM generate_series(4, 6) g").await.unwrap();
    let noted: std::time::SystemTime = db.query_one("SELECT clock_timestamp()", &[]).await.unwrap().get(0);
    let noted = chrono::DateTime::<chrono::Utc>::from(noted);
    tokio::time::sleep(Duration::from_millis(50)).await;
    db.batch_execute("INSERT INTO ledger SELECT g, 'after the noted time' FROM generate_series(7, 9) g; UPDATE ledger SET note = 'changed later' WHERE id = 1").await.unwrap();
    switch_and_wait_for_archive(&db).await;

    let (_, health) = app.get("/health").await;
    assert_eq!(health["wal_archive"]["failing"], false, "{health:#}");
    assert!(health["wal_archive"]["archived_count"].as_i64().unwrap() >= 1, "{health:#}");
    // The managed instance's WAL comes from its archive_command; the switch above archived
    // everything written, so nothing is at stake.
    assert_eq!(health["wal"]["source"], "archive_command", "{health:#}");
    assert!(health["wal"]["stream"].is_null(), "{health:#}");

    let (status, report) = app.get("/backups/status").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["enabled"], true);
    assert_eq!(report["gaps"], json!([]), "{report:#}");
    assert_eq!(report["base_backups"][0]["backup_id"], json!(base_id), "{report:#}");
    let window = &report["recoverable"][0];
    let (from, to) = (window["from"].as_str().unwrap(), window["to"].as_str().unwrap());
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&chrono::Utc);
    assert!(parse(from) <= noted && noted <= parse(to), "{noted} outside the window {window}");

    // Refusals: a time before the base backup was complete, a time in the future, a dump id.
    let before = parse(from) - chrono::Duration::seconds(5);
    for body in [
        json!({"to_time": before}),
        json!({"to_time": chrono::Utc::now() + chrono::Duration::hours(1)}),
        json!({"to_time": noted, "target_database": "x"}),
    ] {
        let (status, answer) = app.post("/restore", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    let (status, answer) = app.post("/restore", &json!({"backup_id": base_id})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a base backup restored as a dump: {answer}");

    // A time past the end of the archived WAL (nothing committed after it has been archived
    // yet) fails the way PostgreSQL does, as a 400 naming the cause, and leaves no cluster.
    let (status, answer) = app.post("/restore", &json!({"to_time": chrono::Utc::now()})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("archived WAL ends before the target time"), "{answer}");
    let root = app.agent.managed().unwrap().primary.settings.data_dir.parent().unwrap().to_path_buf();
    let leftovers: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().filter(|e| e.path().join("PG_VERSION").exists()).collect();
    assert_eq!(leftovers.len(), 1, "only the primary's data directory: {leftovers:?}");

    let (status, recovered) = app.post("/restore", &json!({"to_time": noted})).await;
    assert_eq!(status, StatusCode::OK, "{recovered}");
    assert_eq!(recovered["base_backup_id"], json!(base_id));
    let copy = connect(recovered["url"].as_str().unwrap()).await;
    let rows = copy.query("SELECT id, note FROM ledger ORDER BY id", &[]).await.unwrap();
    let got: Vec<(i32, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    let expected: Vec<(i32, String)> = (1..=6)
        .map(|i| (i, if i <= 3 { "before the base backup" } else { "after the base backup" }.to_owned()))
        .collect();
    assert_eq!(got, expected, "recovered to {noted}: {recovered}");
    // It is a primary of its own, writable, on a new timeline; the original is untouched.
    let write = copy.batch_execute("INSERT INTO ledger VALUES (100, 'written after recovery')");
    tokio::time::timeout(Duration::from_secs(10), write).await.expect("a commit in the recovered cluster waits for no standby").unwrap();
    assert!(recovered["timeline"].as_u64().unwrap() >= 2, "{recovered}");
    let archiving: String = copy.query_one("SHOW archive_mode", &[]).await.unwrap().get(0);
    assert_eq!(archiving, "off", "a copy never archives into the original's archive");
    let n: i64 = db.query_one("SELECT count(*) FROM ledger", &[]).await.unwrap().get(0);
    assert_eq!(n, 9);

    // The base backup passes level-1 verification (every byte decrypted and checksummed) and
    // level 2 (a scratch copy started on its own and removed); a damaged one fails level 2
    // naming its file.
    let (status, verified) = app.post(&format!("/backups/{base_id}/verify"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    let (status, verified) = app.post(&format!("/backups/{base_id}/verify"), &json!({"level": 2})).await;
    assert_eq!(status, StatusCode::OK, "{verified}");
    assert_eq!(verified["level"], 2);
    let leftovers: Vec<_> = std::fs::read_dir("/tmp").unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with(".work-dbagent-verify")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    drop(copy);
    let data_dir = recovered["data_dir"].as_str().unwrap();
    dbagent::instance::stop(&dbagent::instance::Settings::new(data_dir), dbagent::instance::StopMode::Fast).await.unwrap();

    // Retention (keep_last: 1) drops the first base backup once a second exists, and with it
    // the archived WAL only the first needed.
    switch_and_wait_for_archive(&db).await;
    let (status, second) = app.post("/backup", &json!({"kind": "base"})).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let second_start = second["manifest"]["base"]["start_segment"].as_str().unwrap().to_owned();
    // (The first was verified above, and retention never drops the newest verified backup.)
    let (status, _) = app.post(&format!("/backups/{}/verify", second["backup_id"].as_str().unwrap()), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, pruned) = app.post("/backups/prune", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{pruned}");
    let (_, report) = app.get("/backups/status").await;
    let bases: Vec<&str> = report["base_backups"].as_array().unwrap().iter().map(|b| b["backup_id"].as_str().unwrap()).collect();
    assert_eq!(bases, [second["backup_id"].as_str().unwrap()], "{report:#}");
    let archive = std::path::Path::new(report["archive"].as_str().unwrap()).to_path_buf();
    let mut segments: Vec<String> = dbagent::backup::wal::list(&archive).unwrap().into_keys().filter(|n| n.len() == 24).collect();
    segments.sort();
    assert_eq!(segments.first(), Some(&second_start), "WAL before the oldest base backup is gone: {segments:?}");

    // A segment lost from the middle of the archive is reported as a gap, and the window
    // ends before it.
    let lost = switch_and_wait_for_archive(&db).await;
    db.batch_execute("INSERT INTO ledger VALUES (200, 'after the gap')").await.unwrap();
    switch_and_wait_for_archive(&db).await;
    std::fs::remove_file(archive.join(format!("{lost}.json"))).unwrap();
    let (_, report) = app.get("/backups/status").await;
    assert_eq!(report["gaps"][0]["first_missing"], json!(lost), "{report:#}");
    assert_eq!(report["gaps"][0]["segments"], 1, "{report:#}");
    assert!(report["base_backups"][0]["last_segment"].as_str().unwrap() < lost.as_str(), "{report:#}");

    // An archive the server cannot write to shows in /health as failing, and `degraded`.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&archive, std::fs::Permissions::from_mode(0o000)).unwrap();
    db.batch_execute("INSERT INTO ledger VALUES (300, 'while the archive is closed')").await.unwrap();
    db.query_one("SELECT pg_switch_wal()", &[]).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        let (_, health) = app.get("/health").await;
        if health["wal_archive"]["failing"] == true {
            break health;
        }
        assert!(Instant::now() < deadline, "archiving never reported failing: {health:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(health["status"], "degraded", "{health:#}");
    std::fs::set_permissions(&archive, std::fs::Permissions::from_mode(0o700)).unwrap();
    // (A write first, so that the switch is a real one and wakes the archiver from the pause
    // it takes after repeated failures.)
    db.batch_execute("INSERT INTO ledger VALUES (301, 'after the archive reopened')").await.unwrap();
    switch_and_wait_for_archive(&db).await;
    let (_, health) = app.get("/health").await;
    assert_eq!(health["wal_archive"]["failing"], false, "{health:#}");
    app.stop().await;
}

#[tokio::test]
async fn the_cli_recovers_to_a_time_and_reports_the_window() {
    // The same path through the real binary: `backup create --kind base`, `backup status`,
    // `restore --to-time`.
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pitr-cli-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&root).unwrap();
    let run = |args: &[&str]| -> (i32, Value, String) {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_dbagent"));
        cmd.args(["--json"]).args(args).current_dir(&root).env_remove("DATABASE_URL").env_remove("CONFIG_PATH");
        cmd.env("DBAGENT_BACKUP__PITR", "true").env("DBAGENT_BACKUP__SCHEDULE", "");
        if let Some(bin) = std::env::var_os("PG_BIN") {
            cmd.env("PG_BIN", bin);
        }
        let out = cmd.output().expect("run dbagent");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code().unwrap_or(-1), serde_json::from_str(&stdout).unwrap_or(Value::Null), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, _, err) = run(&["instance", "start"]);
    assert_eq!(code, 0, "{err}");
    let status = dbagent::instance::status(&dbagent::instance::Settings::new(root.join(".dbagent/pgdata"))).unwrap();
    let url = format!("postgresql://postgres@127.0.0.1:{}/postgres", status.port.unwrap());
    let db = connect(&url).await;
    let stop_all = || {
        for dir in std::fs::read_dir(root.join(".dbagent")).unwrap().flatten() {
            if dir.path().join("PG_VERSION").exists() {
                let _ = std::process::Command::new(env!("CARGO_BIN_EXE_dbagent")).args(["instance", "stop"]).current_dir(&root).env("DBAGENT_INSTANCE__DATA_DIR", dir.path()).output();
            }
        }
    };
    let mode: String = db.query_one("SHOW archive_mode", &[]).await.unwrap().get(0);
    assert_eq!(mode, "on", "the instance was started with backup.pitr");

    db.batch_execute("CREATE TABLE t (id int); INSERT INTO t VALUES (1)").await.unwrap();
    let (code, created, err) = run(&["backup", "create", "--kind", "base"]);
    assert_eq!(code, 0, "{err}");
    assert!(created["backup_id"].is_string(), "{created}");
    db.batch_execute("INSERT INTO t VALUES (2)").await.unwrap();
    let noted: std::time::SystemTime = db.query_one("SELECT clock_timestamp()", &[]).await.unwrap().get(0);
    tokio::time::sleep(Duration::from_millis(50)).await;
    db.batch_execute("INSERT INTO t VALUES (3)").await.unwrap();
    switch_and_wait_for_archive(&db).await;

    let (code, status, err) = run(&["backup", "status"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(status["gaps"], json!([]), "{status}");
    assert!(status["archived_segments"].as_u64().unwrap() >= 1, "{status}");

    let noted = chrono::DateTime::<chrono::Utc>::from(noted).to_rfc3339();
    let (code, _, err) = run(&["restore", "--to-time", "yesterday"]);
    assert_eq!(code, 2, "a bad time is a usage error: {err}");
    let (code, recovered, err) = run(&["restore", "--to-time", &noted]);
    assert_eq!(code, 0, "{err}");
    let copy = connect(recovered["url"].as_str().unwrap()).await;
    let ids: Vec<i32> = copy.query("SELECT id FROM t ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [1, 2]);
    drop(copy);
    drop(db);
    stop_all();
    let _ = std::fs::remove_dir_all(&root);
}
