//! Managed streaming replicas: routing, lag, read-your-writes and failover, on real clusters
//! (a primary and a replica per test, on their own ports).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_managed_app, wait_until};
use dbagent::config::FailoverMode;
use dbagent::db::Lsn;
use dbagent::instance;

fn lsn(value: &Value) -> Lsn {
    value.as_str().unwrap_or_else(|| panic!("not an LSN: {value}")).parse().expect("LSN")
}

/// The replica has replayed at least `at`, as the agent's checks saw it.
async fn wait_replayed(app: &TestApp, at: Lsn) {
    app.wait_for_replication("the replica to replay the write", Duration::from_secs(20), |r| {
        r["replicas"][0]["replayed_lsn"].as_str().is_some_and(|l| l.parse::<Lsn>().unwrap() >= at)
    })
    .await;
}

async fn write(app: &TestApp, sql: &str, params: Value) -> Lsn {
    let (status, body) = app.query(sql, params).await;
    assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    lsn(&body["commit_lsn"])
}

async fn read(app: &TestApp, body: Value) -> (Vec<Value>, String) {
    let (status, out) = app.post("/query", &body).await;
    assert_eq!(status, StatusCode::OK, "{body}: {out}");
    (out["rows"].as_array().unwrap().clone(), out["served_by"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn a_replica_gets_the_writes_reports_its_lag_and_is_skipped_while_replay_is_paused() {
    let app = spawn_managed_app(|c| {
        c.replication.replicas = 1;
        c.replication.max_lag_seconds = 1.0;
    })
    .await;
    write(&app, "CREATE TABLE t (id int PRIMARY KEY, v text)", json!([])).await;
    let first = write(&app, "INSERT INTO t VALUES (1, 'one')", json!([])).await;
    wait_replayed(&app, first).await;

    // Reads go to the replica, which has the write.
    let (rows, served_by) = read(&app, json!({"sql": "SELECT v FROM t WHERE id = 1"})).await;
    assert_eq!((rows, served_by.as_str()), (vec![json!({"v": "one"})], "replica-0"));

    // Lag is reported from both sides: the primary's pg_stat_replication and the replica.
    let report = app.wait_for_replication("the replica to show up as a synchronous standby", Duration::from_secs(10), |r| {
        r["primary"]["standbys"].as_array().is_some_and(|s| s.len() == 1 && s[0]["state"] == "streaming" && s[0]["sync_state"] == "quorum")
    })
    .await;
    let replica = &report["replicas"][0];
    assert!(replica["lag_seconds"].as_f64().is_some() && replica["lag_bytes"].as_u64().is_some(), "{report:#}");
    assert_eq!(report["primary"]["synchronous_standby_names"], "ANY 1 (*)");
    let (_, health) = app.get("/health").await;
    assert!(health["connection_pool"]["replicas"][0]["lag_seconds"].as_f64().is_some(), "{health:#}");
    eprintln!(
        "replica lag while idle: {} s, {} bytes (pg_stat_replication replay_lag: {} s)",
        replica["lag_seconds"], replica["lag_bytes"], report["primary"]["standbys"][0]["replay_lag_seconds"]
    );

    // Paused replay: once lag passes max_lag_seconds the replica is routed around.
    let replica_db = app.connect_replica(0).await;
    replica_db.batch_execute("SELECT pg_wal_replay_pause()").await.unwrap();
    write(&app, "INSERT INTO t VALUES (2, 'two')", json!([])).await;
    let report = app.wait_for_replication("the paused replica to be taken out of rotation", Duration::from_secs(20), |r| {
        r["replicas"][0]["usable"] == false
    })
    .await;
    assert_eq!(report["replicas"][0]["replay_paused"], true);
    eprintln!("paused replica: lag {} s, {} bytes", report["replicas"][0]["lag_seconds"], report["replicas"][0]["lag_bytes"]);
    let (rows, served_by) = read(&app, json!({"sql": "SELECT v FROM t WHERE id = 2"})).await;
    assert_eq!((rows, served_by.as_str()), (vec![json!({"v": "two"})], "primary"));

    // Resumed: it catches up and takes reads again.
    replica_db.batch_execute("SELECT pg_wal_replay_resume()").await.unwrap();
    app.wait_for_replication("the replica to be back in rotation", Duration::from_secs(20), |r| r["replicas"][0]["usable"] == true).await;
    let (rows, served_by) = read(&app, json!({"sql": "SELECT v FROM t WHERE id = 2"})).await;
    assert_eq!((rows, served_by.as_str()), (vec![json!({"v": "two"})], "replica-0"));
    app.stop().await;
}

#[tokio::test]
async fn a_read_with_the_writes_commit_lsn_never_sees_older_data() {
    let app = spawn_managed_app(|c| {
        c.replication.replicas = 1;
        c.replication.max_lag_seconds = 3600.0; // a lagging replica stays in rotation
    })
    .await;
    let created = write(&app, "CREATE TABLE t (id int PRIMARY KEY)", json!([])).await;
    wait_replayed(&app, created).await;
    let replica_db = app.connect_replica(0).await;
    replica_db.batch_execute("SELECT pg_wal_replay_pause()").await.unwrap();
    app.wait_for_replication("replay to pause", Duration::from_secs(10), |r| r["replicas"][0]["replay_paused"] == true).await;

    let committed = write(&app, "INSERT INTO t VALUES (1)", json!([])).await;
    // With the write's commit_lsn: the replica has not replayed it, so the primary answers.
    let (rows, served_by) = read(&app, json!({"sql": "SELECT id FROM t", "min_lsn": committed.to_string()})).await;
    assert_eq!((rows, served_by.as_str()), (vec![json!({"id": 1})], "primary"));
    // Without it, the stale replica may answer: it does not have the row yet.
    let (rows, served_by) = read(&app, json!({"sql": "SELECT id FROM t"})).await;
    assert_eq!((rows, served_by.as_str()), (vec![], "replica-0"));

    // The same through a session: dbagent remembers the caller's last commit.
    let (status, out) = app.post_in_session("/transaction", "alice", &json!({"queries": [{"sql": "INSERT INTO t VALUES (2)"}]})).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let session_commit = lsn(&out["commit_lsn"]);
    assert!(session_commit > committed);
    let ryw = json!({"sql": "SELECT count(*) AS n FROM t", "consistency": "read_your_writes"});
    let (status, out) = app.post_in_session("/query", "alice", &ryw).await;
    assert_eq!((status, &out["rows"], &out["served_by"]), (StatusCode::OK, &json!([{"n": 2}]), &json!("primary")), "{out}");
    let (status, out) = app.post("/query", &ryw).await;
    assert_eq!((status, &out["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("invalid_request")), "{out}");
    let (status, out) = app.post("/query", &json!({"sql": "SELECT 1", "min_lsn": "not-an-lsn"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");

    // Once replayed, the replica serves the read with the same floor.
    replica_db.batch_execute("SELECT pg_wal_replay_resume()").await.unwrap();
    wait_replayed(&app, session_commit).await;
    let (rows, served_by) = read(&app, json!({"sql": "SELECT id FROM t ORDER BY id", "min_lsn": session_commit.to_string()})).await;
    assert_eq!((rows, served_by.as_str()), (vec![json!({"id": 1}), json!({"id": 2})], "replica-0"));
    app.stop().await;
}

#[tokio::test]
async fn failover_promotes_the_replica_and_loses_no_acknowledged_write() {
    let app = spawn_managed_app(|c| {
        c.replication.replicas = 1;
        c.replication.failover = FailoverMode::Auto;
        c.replication.failover_after = 1.0;
        c.postgresql.connection_pool.timeout = 2.0;
    })
    .await;
    write(&app, "CREATE TABLE w (id int PRIMARY KEY)", json!([])).await;
    app.wait_for_replication("commits to wait for the replica", Duration::from_secs(10), |r| r["failover"]["protected"] == true).await;
    let old_primary = app.agent.managed().unwrap().primary.settings.clone();

    // A steady write load; every acknowledged id is remembered with when it was acknowledged.
    let acked: Arc<Mutex<Vec<(i64, Instant)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (http, address, acked, stop) = (app.http.clone(), app.address.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut id = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                id += 1;
                let body = json!({"sql": "INSERT INTO w VALUES ($1)", "params": [id]});
                let sent = http.post(format!("{address}/query")).json(&body).timeout(Duration::from_secs(10)).send().await;
                match sent {
                    Ok(r) if r.status() == StatusCode::OK => acked.lock().unwrap().push((id, Instant::now())),
                    _ => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        })
    };
    wait_until("50 writes acknowledged", Duration::from_secs(30), async || acked.lock().unwrap().len() >= 50).await;

    let stopping_at = Instant::now();
    instance::stop(&old_primary, instance::StopMode::Immediate).await.expect("pg_ctl stop -m immediate");
    // Gone now: any write acknowledged from here on was committed by the new primary.
    let stopped_at = Instant::now();
    let deadline = stopped_at + Duration::from_secs(60);
    let first_after = loop {
        if let Some((_, at)) = acked.lock().unwrap().iter().find(|(_, at)| *at > stopped_at) {
            break *at;
        }
        assert!(Instant::now() < deadline, "no write succeeded within 60 s of the primary stopping");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!(
        "failover: first acknowledged write {} ms after `pg_ctl stop -m immediate` began ({} ms after it returned)",
        (first_after - stopping_at).as_millis(),
        (first_after - stopped_at).as_millis()
    );
    let resumed = acked.lock().unwrap().len();
    wait_until("50 more writes acknowledged by the new primary", Duration::from_secs(30), async || {
        acked.lock().unwrap().len() >= resumed + 50
    })
    .await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();

    // Every acknowledged write, before and after, is on the new primary.
    let ids: Vec<i64> = app.rows("SELECT id FROM w", json!([])).await.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    let ids: std::collections::HashSet<i64> = ids.into_iter().collect();
    let lost: Vec<i64> = acked.lock().unwrap().iter().map(|(id, _)| *id).filter(|id| !ids.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost in failover: {lost:?}");

    let (_, report) = app.get("/stats/replication").await;
    let events = report["failover"]["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{report:#}");
    assert_eq!(events[0]["outcome"], "promoted", "{report:#}");
    eprintln!("failover event: {}", events[0]);
    // The old primary is fenced: dbagent refuses to start it as a primary.
    assert!(instance::fenced(&old_primary.data_dir).unwrap().is_some());
    let refused = instance::start(&old_primary).await;
    assert!(matches!(refused, Err(instance::Error::Fenced { .. })), "{refused:?}");
    app.stop().await;
}

#[tokio::test]
async fn with_servers_it_does_not_manage_it_follows_the_host_that_became_primary() {
    // Arrange: a primary and a streaming replica dbagent is only told about.
    let root = format!("follow-{}", uuid::Uuid::new_v4().simple());
    let primary_settings = crate::helpers::test_instance_settings(&format!("{root}/primary"));
    let replica_settings = crate::helpers::test_instance_settings(&format!("{root}/replica"));
    let primary = crate::helpers::start_instance(&primary_settings);
    let replica = instance::create_replica(&primary, &replica_settings).await.expect("replica");
    let app = crate::helpers::spawn_app_on(crate::helpers::TestDb::existing(&primary.url("postgres")), |c| {
        c.postgresql.url = Some(dbagent::config::Secret::new(primary.url("postgres")));
        c.postgresql.read_replicas =
            vec![dbagent::config::Replica { url: Some(dbagent::config::Secret::new(replica.url("postgres"))), ..Default::default() }];
        c.replication.failover = FailoverMode::Auto;
        c.replication.failover_after = 1.0;
        c.postgresql.connection_pool.timeout = 2.0;
    })
    .await;
    let created = write(&app, "CREATE TABLE f (id int)", json!([])).await;
    wait_replayed(&app, created).await;

    // Act: the primary dies and an operator (or Patroni) promotes the replica.
    instance::stop(&primary_settings, instance::StopMode::Immediate).await.unwrap();
    instance::promote(&replica_settings).await.unwrap();

    // Assert: writes resume on the promoted server; dbagent promoted nothing itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = app.query("INSERT INTO f VALUES (1)", json!([])).await;
        if status == StatusCode::OK {
            assert_eq!(body["served_by"], "primary");
            break;
        }
        assert!(Instant::now() < deadline, "writes did not resume: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, report) = app.get("/stats/replication").await;
    // A failover check may have come before the operator's promotion finished ("refused": no
    // configured replica is a primary yet); then it followed, and promoted nothing itself.
    let outcomes: Vec<&str> = report["failover"]["events"].as_array().unwrap().iter().filter_map(|e| e["outcome"].as_str()).collect();
    assert!(outcomes.contains(&"followed") && outcomes.iter().all(|o| matches!(*o, "followed" | "refused")), "{report:#}");
    assert_eq!(report["primary"]["location"], format!("127.0.0.1:{}/postgres", replica.port), "{report:#}");
    assert_eq!(report["replicas"][0]["retired"], true, "{report:#}");
    app.stop().await;
    instance::stop(&replica_settings, instance::StopMode::Fast).await.unwrap();
    let _ = std::fs::remove_dir_all(primary_settings.data_dir.parent().unwrap());
}

#[tokio::test]
async fn an_exhausted_pool_is_not_mistaken_for_a_dead_primary() {
    let app = spawn_managed_app(|c| {
        c.replication.replicas = 1;
        c.replication.failover = FailoverMode::Auto;
        c.replication.failover_after = 1.0;
        c.postgresql.connection_pool.max_size = 2;
        c.postgresql.connection_pool.timeout = 1.0;
    })
    .await;
    app.wait_for_replication("commits to wait for the replica", Duration::from_secs(10), |r| r["failover"]["protected"] == true).await;
    // Both pooled connections busy for 3 s: requests get 503 pool_exhausted, the primary is fine.
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let (http, address) = (app.http.clone(), app.address.clone());
            tokio::spawn(async move {
                let r = http.post(format!("{address}/transaction")).json(&json!({"queries": [{"sql": "SELECT pg_sleep(3)"}]})).send().await.unwrap();
                (r.status(), r.text().await.unwrap())
            })
        })
        .collect();
    app.wait_for_running("SELECT pg_sleep(3)", 2).await;
    let (status, body) = app.query("INSERT INTO nowhere VALUES (1)", json!([])).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("pool_exhausted")), "{body}");
    for s in sleepers {
        assert_eq!(s.await.unwrap().0, StatusCode::OK);
    }
    // Exhausted for 3 s, longer than failover_after: still no failover.
    let (_, report) = app.get("/stats/replication").await;
    assert_eq!(report["failover"]["events"], json!([]), "{report:#}");
    assert_eq!(report["primary"]["reachable"], true, "{report:#}");
    app.stop().await;
}
