//! PostgreSQL restarts under a write load: the pools reconnect by themselves and no write
//! that was acknowledged is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dbagent::instance::{self, StopMode};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestDb, spawn_app_on, start_instance, test_instance_settings, wait_until};

/// Stops the private instance even when the test fails.
struct InstanceGuard(instance::Settings);

impl Drop for InstanceGuard {
    fn drop(&mut self) {
        let settings = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            let _ = rt.block_on(instance::stop(&settings, StopMode::Immediate));
            let _ = std::fs::remove_dir_all(settings.data_dir.parent().unwrap_or(&settings.data_dir));
        })
        .join();
    }
}

/// Rows in `writes`, read directly.
async fn rows(client: &tokio_postgres::Client) -> i64 {
    client.query_one("SELECT count(*) FROM writes", &[]).await.expect("count the writes").get(0)
}

#[tokio::test]
async fn a_restart_under_load_loses_no_acknowledged_write() {
    let name = format!("recovery-{}/pgdata", uuid::Uuid::new_v4().simple());
    let mut settings = test_instance_settings(&name);
    let running = start_instance(&settings);
    settings.port = Some(running.port);
    let _guard = InstanceGuard(settings.clone());
    let db = TestDb::create_on(&format!("postgresql://postgres@127.0.0.1:{}", running.port)).await;
    let app = spawn_app_on(db, |c| {
        c.postgresql.connection_pool.timeout = 2.0;
        c.postgresql.connection_pool.max_size = 8;
    })
    .await;
    app.setup("CREATE TABLE writes (id int PRIMARY KEY)").await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (http, address, stop) = (app.http.clone(), app.address.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let (mut acked, mut failed) = (Vec::new(), 0u32);
            let mut id = w;
            while !stop.load(Ordering::Relaxed) {
                let body = json!({"sql": "INSERT INTO writes VALUES ($1)", "params": [id]});
                match http.post(format!("{address}/query")).json(&body).send().await {
                    Ok(r) if r.status() == StatusCode::OK => acked.push(id),
                    _ => {
                        failed += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                id += 4;
            }
            (acked, failed)
        }));
    }
    // Under load before the restart.
    let written = app.db.connect().await;
    wait_until("writes before the restart", Duration::from_secs(30), async || rows(&written).await >= 20).await;
    drop(written);
    let restart = settings.clone();
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            instance::stop(&restart, StopMode::Fast).await.expect("stop");
            // The point of the test: the server stays down a while, so writes fail and the
            // pools must notice and reconnect by themselves.
            tokio::time::sleep(Duration::from_millis(500)).await;
            instance::start(&restart).await.expect("restart");
        })
    })
    .await
    .unwrap();
    // Keep writing until writes succeed again after the restart.
    let written = app.db.connect().await;
    let at_restart = rows(&written).await;
    wait_until("writes acknowledged after the restart", Duration::from_secs(30), async || rows(&written).await >= at_restart + 20).await;
    stop.store(true, Ordering::Relaxed);
    let (mut acked, mut failed) = (Vec::new(), 0);
    for w in writers {
        let (a, f) = w.await.unwrap();
        acked.extend(a);
        failed += f;
    }
    let direct = app.db.connect().await;
    let present: Vec<i32> = direct.query("SELECT id FROM writes", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    let present: std::collections::HashSet<i32> = present.into_iter().collect();
    let lost: Vec<_> = acked.iter().filter(|id| !present.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(!acked.is_empty());
    eprintln!("restart under load: {} writes acknowledged, {failed} refused during the restart", acked.len());
    // The pool recovered by itself.
    let (status, body) = app.query("SELECT count(*) AS n FROM writes", json!([])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
