//! Pools: exhaustion answers 503 within the acquire timeout; replicas are used round-robin
//! and skipped while unreachable.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestDb, spawn_app_on, spawn_app_with};

#[tokio::test]
async fn an_exhausted_pool_answers_503_within_the_acquire_timeout() {
    let app = spawn_app_with(|c| {
        c.postgresql.connection_pool.min_size = 0;
        c.postgresql.connection_pool.max_size = 2;
        c.postgresql.connection_pool.timeout = 1.0;
    })
    .await;
    let mut sleepers = Vec::new();
    for _ in 0..2 {
        let (http, address) = (app.http.clone(), app.address.clone());
        sleepers.push(tokio::spawn(async move {
            http.post(format!("{address}/query")).json(&json!({"sql": "SELECT pg_sleep(4)"})).send().await.unwrap().status()
        }));
    }
    app.wait_for_running("SELECT pg_sleep(4)", 2).await;
    let started = Instant::now();
    let (status, body) = app.query("SELECT 1", json!([])).await;
    let waited = started.elapsed();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], json!("pool_exhausted"));
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500), "waited {waited:?}");
    let (_, health) = app.get("/health").await;
    assert_eq!(health["connection_pool"]["pool_stats"]["max"], json!(2));
    assert_eq!(health["connection_pool"]["pool_stats"]["active"], json!(2));
    for s in sleepers {
        assert_eq!(s.await.unwrap(), StatusCode::OK);
    }
    // Once the sleepers are done, the pool serves again.
    let (status, _) = app.query("SELECT 1", json!([])).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn reads_go_round_robin_to_healthy_replicas_and_writes_to_the_primary() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let app = spawn_app_on(db, |c| {
        // Two "replicas" that are the same server (so reads can be checked), and one that is
        // unreachable and must be skipped.
        for replica_url in [url.clone(), url.clone(), "postgresql://postgres@127.0.0.1:1/nope".to_string()] {
            c.postgresql.read_replicas.push(dbagent::config::Replica {
                url: Some(dbagent::config::Secret::new(replica_url)),
                ..Default::default()
            });
        }
        c.postgresql.connection_pool.timeout = 1.0;
    })
    .await;
    app.setup("CREATE TABLE t (id int)").await;
    let mut served = std::collections::BTreeMap::new();
    for _ in 0..6 {
        let (status, body) = app.query("SELECT count(*) FROM t", json!([])).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        *served.entry(body["served_by"].as_str().unwrap().to_string()).or_insert(0) += 1;
    }
    assert_eq!(served.get("replica-0"), Some(&3), "{served:?}");
    assert_eq!(served.get("replica-1"), Some(&3), "{served:?}");
    let (_, body) = app.query("INSERT INTO t VALUES (1)", json!([])).await;
    assert_eq!(body["served_by"], json!("primary"));
    let (_, health) = app.get("/health").await;
    assert_eq!(health["connection_pool"]["read_replicas"], json!(3));
    assert_eq!(health["status"], json!("degraded"));
    assert_eq!(health["connection_pool"]["replicas"][2]["healthy"], json!(false));
}
