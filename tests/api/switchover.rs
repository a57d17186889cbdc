//! Planned switchover of the managed instance (`POST /replication/switchover`): the replica
//! becomes the primary, the old primary its replica, under a steady write load, and back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, connect, spawn_managed_app, wait_until};
use dbagent::instance;

/// Inserts ids through dbagent until stopped; every acknowledged id is kept.
fn writer(app: &TestApp, acked: Arc<Mutex<Vec<i64>>>, stop: Arc<AtomicBool>, from: i64) -> tokio::task::JoinHandle<()> {
    let (http, address) = (app.http.clone(), app.address.clone());
    tokio::spawn(async move {
        let mut id = from;
        while !stop.load(Ordering::Relaxed) {
            id += 1;
            let body = json!({"sql": "INSERT INTO w VALUES ($1)", "params": [id]});
            let sent = http.post(format!("{address}/query")).json(&body).timeout(Duration::from_secs(10)).send().await;
            match sent {
                Ok(r) if r.status() == StatusCode::OK => acked.lock().unwrap().push(id),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
}

/// Runs a switchover to `to` under a write load; checks that no acknowledged write is lost
/// and returns the report.
async fn switch_under_load(app: &TestApp, to: u32, from: i64) -> Value {
    let acked: Arc<Mutex<Vec<i64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let load = writer(app, acked.clone(), stop.clone(), from);
    wait_until("30 writes acknowledged", Duration::from_secs(30), async || acked.lock().unwrap().len() >= 30).await;
    let (status, report) = app.post("/replication/switchover", &json!({"to": to})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let switched_at = chrono::Utc::now();
    let done = acked.lock().unwrap().len();
    wait_until("30 more writes acknowledged by the new primary", Duration::from_secs(30), async || {
        acked.lock().unwrap().len() >= done + 30
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    // Read on the new primary itself (a read through dbagent may go to the replica).
    let managed = app.agent.managed().unwrap();
    let primary = connect(&managed.primary.running.url(&managed.database)).await;
    let ids: std::collections::HashSet<i64> =
        primary.query("SELECT id FROM w", &[]).await.unwrap().iter().map(|r| r.get::<_, i64>(0)).collect();
    let lost: Vec<i64> = acked.lock().unwrap().iter().copied().filter(|id| !ids.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost in the switchover: {lost:?} ({report})");
    // The audit log follows the primary: the writes after the switchover have their rows there.
    wait_until("audit rows of writes made after the switchover, on the new primary", Duration::from_secs(20), async || {
        let sql = "SELECT 1 FROM dbagent.audit_log WHERE at > $1 AND statement LIKE 'INSERT INTO w%'";
        !primary.query(sql, &[&switched_at]).await.unwrap().is_empty()
    })
    .await;
    report
}

async fn in_recovery(url: &str) -> bool {
    connect(url).await.query_one("SELECT pg_is_in_recovery()", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn a_switchover_and_back_loses_no_acknowledged_write_and_keeps_both_servers() {
    let app = spawn_managed_app(|c| {
        c.replication.replicas = 1;
        c.postgresql.connection_pool.timeout = 10.0;
    })
    .await;
    let (status, _) = app.query("CREATE TABLE w (id bigint PRIMARY KEY)", json!([])).await;
    assert_eq!(status, StatusCode::OK);
    let first = app.agent.managed().unwrap();
    let (old_primary, old_replica) = (first.primary.settings.data_dir.clone(), first.replicas[0].cluster.settings.data_dir.clone());

    // Bad requests change nothing.
    for (body, expected) in [
        (json!({"to": 2}), StatusCode::NOT_FOUND),
        (json!({"to": 0}), StatusCode::BAD_REQUEST),
        (json!({"to": 1, "timeout_seconds": 0}), StatusCode::BAD_REQUEST),
        (json!({"to": 1, "force": true}), StatusCode::BAD_REQUEST),
    ] {
        let (status, answer) = app.post("/replication/switchover", &body).await;
        assert_eq!(status, expected, "{body}: {answer}");
    }
    assert_eq!(app.agent.managed().unwrap().primary.settings.data_dir, old_primary);

    let report = switch_under_load(&app, 1, 0).await;
    eprintln!("switchover: {report}");
    assert!(report["pause_ms"].as_u64().unwrap() < 30_000, "{report}");
    let now = app.agent.managed().unwrap();
    assert_eq!(now.primary.settings.data_dir, old_replica, "{report}");
    assert_eq!(now.replicas[0].cluster.settings.data_dir, old_primary, "the old primary is the replica now");
    assert!(in_recovery(&now.replicas[0].cluster.running.url("postgres")).await, "the old primary follows the new one");
    // It streams: a write on the new primary reaches it.
    let (status, written) = app.query("INSERT INTO w VALUES (-1)", json!([])).await;
    assert_eq!(status, StatusCode::OK, "{written}");
    let replica = connect(&now.replicas[0].cluster.running.url(&now.database)).await;
    wait_until("the old primary to replay a write made after the switchover", Duration::from_secs(20), async || {
        replica.query_opt("SELECT 1 FROM w WHERE id = -1", &[]).await.ok().flatten().is_some()
    })
    .await;
    // And it is fenced as a replica: dbagent never starts it as a primary.
    let fence = instance::fenced(&old_primary).unwrap().expect("fenced");
    assert!(fence.rejoined_at.is_some() && fence.successor == old_replica, "{fence:?}");
    let (_, stats) = app.get("/stats/replication").await;
    let events = stats["failover"]["events"].as_array().unwrap();
    assert_eq!(events.iter().map(|e| e["outcome"].as_str().unwrap()).collect::<Vec<_>>(), ["switchover"], "{stats:#}");
    app.wait_for_replication("the old primary to serve reads as a replica", Duration::from_secs(20), |r| {
        r["replicas"][0]["healthy"] == true
    })
    .await;

    // And back: the configured primary is the primary again, unfenced.
    let report = switch_under_load(&app, 1, 1_000_000).await;
    eprintln!("switchover back: {report}");
    let back = app.agent.managed().unwrap();
    assert_eq!(back.primary.settings.data_dir, old_primary, "{report}");
    assert!(instance::fenced(&old_primary).unwrap().is_none());
    assert!(in_recovery(&back.replicas[0].cluster.running.url("postgres")).await);
    app.stop().await;
}

#[tokio::test]
async fn after_a_failover_the_old_primary_is_rewound_and_rejoins_as_a_replica() {
    let app = spawn_managed_app(|c| {
        c.replication.replicas = 1;
        c.replication.failover = dbagent::config::FailoverMode::Auto;
        c.replication.failover_after = 1.0;
        c.replication.auto_rejoin = true;
        c.postgresql.connection_pool.timeout = 2.0;
    })
    .await;
    let (status, _) = app.query("CREATE TABLE w (id bigint PRIMARY KEY)", json!([])).await;
    assert_eq!(status, StatusCode::OK);
    app.wait_for_replication("commits to wait for the replica", Duration::from_secs(10), |r| r["failover"]["protected"] == true).await;
    let old_primary = app.agent.managed().unwrap().primary.settings.clone();

    // The primary dies; the replica is promoted and the old primary, rewound, follows it.
    instance::stop(&old_primary, instance::StopMode::Immediate).await.unwrap();
    wait_until("failover and rejoin", Duration::from_secs(60), async || {
        app.agent.managed().is_some_and(|m| m.primary.settings.data_dir != old_primary.data_dir && m.replicas.len() == 1)
    })
    .await;
    let now = app.agent.managed().unwrap();
    assert_eq!(now.replicas[0].cluster.settings.data_dir, old_primary.data_dir);
    assert!(in_recovery(&now.replicas[0].cluster.running.url("postgres")).await, "the old primary is a replica now");
    let fence = instance::fenced(&old_primary.data_dir).unwrap().expect("still fenced, as a replica");
    assert!(fence.rejoined_at.is_some(), "{fence:?}");

    // It streams from the new primary and serves reads again.
    let (status, written) = app.query("INSERT INTO w VALUES (7)", json!([])).await;
    assert_eq!(status, StatusCode::OK, "{written}");
    let replica = connect(&now.replicas[0].cluster.running.url(&now.database)).await;
    wait_until("the rejoined replica to replay a new write", Duration::from_secs(20), async || {
        replica.query_opt("SELECT 1 FROM w WHERE id = 7", &[]).await.ok().flatten().is_some()
    })
    .await;
    app.wait_for_replication("the rejoined replica to be healthy", Duration::from_secs(20), |r| r["replicas"][0]["healthy"] == true).await;

    // Nothing is left to rejoin.
    let (status, report) = app.post("/replication/rejoin", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["rejoined"], json!([]), "{report}");
    app.stop().await;
}

#[tokio::test]
async fn a_replica_is_promoted_on_request_only_with_force_and_a_new_replica_takes_the_free_pool() {
    let app = spawn_managed_app(|c| {
        c.replication.replicas = 1;
        c.postgresql.connection_pool.timeout = 10.0;
    })
    .await;
    let (status, _) = app.query("CREATE TABLE w (id bigint PRIMARY KEY)", json!([])).await;
    assert_eq!(status, StatusCode::OK);
    let first = app.agent.managed().unwrap();
    let (old_primary, old_replica) = (first.primary.settings.data_dir.clone(), first.replicas[0].cluster.settings.data_dir.clone());
    app.wait_for_replication("the replica to serve reads", Duration::from_secs(20), |r| r["replicas"][0]["healthy"] == true).await;
    let (status, listed) = app.get("/replication/replicas").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let replica = &listed["replicas"][0];
    assert_eq!((replica["replica"].as_u64(), replica["managed"].as_bool(), replica["healthy"].as_bool()), (Some(1), Some(true), Some(true)), "{listed:#}");

    // Refusals change nothing: no such replica, a bad body, and the primary still answering.
    for (body, expected, code) in [
        (json!({"to": 2}), StatusCode::NOT_FOUND, "replica_not_found"),
        (json!({"to": 0}), StatusCode::BAD_REQUEST, "invalid_request"),
        (json!({"to": 1, "now": true}), StatusCode::BAD_REQUEST, "invalid_request"),
        (json!({"to": 1}), StatusCode::CONFLICT, "primary_available"),
    ] {
        let (status, answer) = app.post("/replication/promote", &body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (expected, Some(code)), "{body}: {answer}");
    }
    assert_eq!(app.agent.managed().unwrap().primary.settings.data_dir, old_primary);

    let (status, _) = app.query("INSERT INTO w VALUES (1)", json!([])).await;
    assert_eq!(status, StatusCode::OK);
    let (status, event) = app.post("/replication/promote", &json!({"to": 1, "force": true})).await;
    assert_eq!(status, StatusCode::OK, "{event}");
    assert_eq!(event["outcome"], "promoted", "{event}");
    let now = app.agent.managed().unwrap();
    assert_eq!(now.primary.settings.data_dir, old_replica);
    assert!(instance::fenced(&old_primary).unwrap().is_some(), "the old primary is fenced");
    // Writes go to the promoted replica, which has what was committed before.
    let (status, written) = app.query("INSERT INTO w VALUES (2)", json!([])).await;
    assert_eq!(status, StatusCode::OK, "{written}");
    let primary = connect(&now.primary.running.url(&now.database)).await;
    let n: i64 = primary.query_one("SELECT count(*) FROM w", &[]).await.unwrap().get(0);
    assert_eq!(n, 2);
    let (_, listed) = app.get("/replication/replicas").await;
    assert_eq!(listed["replicas"][0]["retired"], true, "{listed:#}");
    let (_, stats) = app.get("/stats/replication").await;
    let outcomes: Vec<&str> = stats["failover"]["events"].as_array().unwrap().iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["promoted"], "{stats:#}");

    // A new replica in the read pool the promoted one left: refused while the fenced old
    // primary holds the only free directory, created once it is removed (an old primary that
    // could not be rewound), streaming and serving reads without a restart.
    let (status, answer) = app.post("/replication/replicas", &json!({})).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("replica_not_ready")), "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("rejoin"), "{answer}");
    std::fs::remove_dir_all(&old_primary).unwrap();
    let (status, created) = app.post("/replication/replicas", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["replica"], 1, "{created}");
    let back = app.agent.managed().unwrap();
    assert_eq!(back.replicas[0].cluster.settings.data_dir, old_primary, "{created}");
    assert!(in_recovery(&back.replicas[0].cluster.running.url("postgres")).await);
    let fence = instance::fenced(&old_primary).unwrap().expect("marked a replica of the new primary");
    assert!(fence.rejoined_at.is_some() && fence.successor == old_replica, "{fence:?}");
    let (status, _) = app.query("INSERT INTO w VALUES (3)", json!([])).await;
    assert_eq!(status, StatusCode::OK);
    let replica = connect(&back.replicas[0].cluster.running.url(&back.database)).await;
    wait_until("the new replica to replay a write", Duration::from_secs(20), async || {
        replica.query_opt("SELECT 1 FROM w WHERE id = 3", &[]).await.ok().flatten().is_some()
    })
    .await;
    app.wait_for_replication("the new replica to serve reads", Duration::from_secs(20), |r| r["replicas"][0]["healthy"] == true).await;
    let (_, listed) = app.get("/replication/replicas").await;
    assert_eq!((listed["replicas"][0]["retired"].as_bool(), listed["replicas"][0]["serving_reads"].as_bool()), (Some(false), Some(true)), "{listed:#}");
    // Every pool in use now: nothing more is created.
    let (status, answer) = app.post("/replication/replicas", &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("replication.replicas"), "{answer}");
    app.stop().await;
}
