//! PostgreSQL restarted (`-m fast`, `-m immediate`) under 64 clients of mixed reads and writes:
//! no acknowledged write is lost, no request hangs past its timeout, failures during the outage
//! are 5xx in the common error shape (502 `outcome_unknown` only for writes), the agent serves
//! again within 5 s of the server accepting connections, the pool refills, and the cache serves
//! nothing from before the outage.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dbagent::instance::StopMode;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Cluster, error_code, send};
use crate::helpers::{TestApp, TestDb, spawn_app_on, wait_until};

const CLIENTS: u32 = 64;
/// The agent's statement timeout and pool acquire timeout (seconds).
const QUERY_TIMEOUT: f64 = 3.0;
const POOL_TIMEOUT: f64 = 2.0;
/// A client gives up on a request after this: above every timeout the agent is configured
/// with (statement + its client-side grace, or the pool wait), so reaching it is a hang.
const DEADLINE: Duration = Duration::from_secs(8);

/// What one client saw.
#[derive(Default)]
struct Seen {
    acked: Vec<i32>,
    ok_reads: u64,
    /// Failed answers by (write?, status, code).
    failures: Vec<(bool, StatusCode, String)>,
    hung: u64,
}

/// `/query` with `use_cache: true`: (value of `v`, answered from the cache).
async fn cached_v(app: &TestApp) -> (String, bool) {
    let (status, body) = app.post("/query", &json!({"sql": "SELECT v FROM cached WHERE id = 1", "use_cache": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (body["rows"][0]["v"].as_str().expect("v").to_string(), body["from_cache"].as_bool().expect("from_cache"))
}

async fn restart_under_load(mode: StopMode) {
    let cluster = Cluster::start("restart");
    let db = TestDb::create_on(&cluster.server()).await;
    let app = spawn_app_on(db, |c| {
        c.postgresql.connection_pool.timeout = POOL_TIMEOUT;
        c.postgresql.connection_pool.min_size = 4;
        c.postgresql.connection_pool.max_size = 16;
        c.postgresql.query_timeout = QUERY_TIMEOUT;
        c.caching.enable = true;
        c.optimization.enable_query_cache = true;
    })
    .await;
    app.setup("CREATE TABLE writes (id int PRIMARY KEY); CREATE TABLE cached (id int PRIMARY KEY, v text); INSERT INTO cached VALUES (1, 'before')")
        .await;
    // A cached read from before the outage.
    cached_v(&app).await;
    assert_eq!(cached_v(&app).await, ("before".into(), true), "the read is cached");

    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (http, address, stop, failed) = (app.http.clone(), app.address.clone(), stop.clone(), failed.clone());
        clients.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            let mut id = c as i32;
            let mut round = 0u32;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                // Two writes, then a read: an indexed lookup or a count.
                let write = round % 3 != 0;
                let body = if write {
                    json!({"sql": "INSERT INTO writes VALUES ($1)", "params": [id]})
                } else if round % 2 == 0 {
                    json!({"sql": "SELECT id FROM writes WHERE id = $1", "params": [id - CLIENTS as i32]})
                } else {
                    json!({"sql": "SELECT count(*) AS n FROM writes WHERE id % 64 = $1", "params": [c]})
                };
                match send(http.post(format!("{address}/query")).json(&body), DEADLINE).await {
                    Err(()) => seen.hung += 1,
                    Ok(Some((StatusCode::OK, _))) if write => seen.acked.push(id),
                    Ok(Some((StatusCode::OK, _))) => seen.ok_reads += 1,
                    Ok(answer) => {
                        let (status, code) = match &answer {
                            Some((status, body)) => (*status, error_code(body).unwrap_or("<not the error shape>").to_string()),
                            None => (StatusCode::IM_A_TEAPOT, "<no answer>".to_string()),
                        };
                        seen.failures.push((write, status, code));
                        failed.fetch_add(1, Ordering::Relaxed);
                        // Back off a little, as a client would.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                if write {
                    id += CLIENTS as i32;
                }
            }
            seen
        }));
    }
    let direct = app.db.connect().await;
    let count = async |client: &tokio_postgres::Client| -> i64 {
        client.query_one("SELECT count(*) FROM writes", &[]).await.expect("count the writes").get(0)
    };
    wait_until("writes before the restart", Duration::from_secs(30), async || count(&direct).await >= 200).await;

    // A write no notification reports (the watch triggers do not fire in replica mode): only
    // the outage can tell the cache, and it must.
    direct
        .batch_execute("SET session_replication_role = replica; UPDATE cached SET v = 'changed behind its back' WHERE id = 1; RESET session_replication_role")
        .await
        .expect("a direct write");
    assert_eq!(cached_v(&app).await, ("before".into(), true), "precondition: the agent was not told of the direct write");
    drop(direct);

    let failed_before = failed.load(Ordering::Relaxed);
    cluster.stop(mode).await;
    // The server is down until clients have seen it fail.
    wait_until("requests failing while PostgreSQL is down", Duration::from_secs(10), async || {
        failed.load(Ordering::Relaxed) >= failed_before + 20
    })
    .await;
    // `/health/ready` says so.
    let (status, ready) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    cluster.start_again().await;
    let accepting = Instant::now();
    // The agent serves again (a fresh statement each time: nothing cached).
    let mut probe = 0;
    loop {
        probe += 1;
        let body = json!({"sql": "SELECT $1::int AS probe", "params": [probe]});
        if let Ok(Some((StatusCode::OK, _))) = send(app.http.post(format!("{}/query", app.address)).json(&body), DEADLINE).await {
            break;
        }
        assert!(accepting.elapsed() < Duration::from_secs(30), "the agent did not serve again within 30 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let recovery = accepting.elapsed();
    // The cache serves nothing from before the outage.
    let (v, _) = cached_v(&app).await;
    assert_eq!(v, "changed behind its back", "the cache served an entry from before the outage");

    // The load goes on after the restart; then every acknowledged write is there.
    let direct = app.db.connect().await;
    let at_restart = count(&direct).await;
    wait_until("writes acknowledged after the restart", Duration::from_secs(30), async || count(&direct).await >= at_restart + 200).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Seen::default();
    for client in clients {
        let seen = client.await.unwrap();
        all.acked.extend(seen.acked);
        all.ok_reads += seen.ok_reads;
        all.failures.extend(seen.failures);
        all.hung += seen.hung;
    }
    let present: HashSet<i32> = direct.query("SELECT id FROM writes", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    let lost: Vec<_> = all.acked.iter().filter(|id| !present.contains(id)).collect();
    assert!(lost.is_empty(), "{} acknowledged writes lost: {lost:?}", lost.len());
    assert_eq!(all.hung, 0, "requests hung past the {DEADLINE:?} deadline");
    let unknown = all.failures.iter().filter(|(_, s, _)| *s == StatusCode::BAD_GATEWAY).count();
    for (write, status, code) in &all.failures {
        assert!(status.is_server_error() && !code.starts_with('<'), "a failure during the outage answered {status} {code}");
        assert!(
            *status != StatusCode::BAD_GATEWAY || (*write && code == "outcome_unknown"),
            "502 {code} for a {}",
            if *write { "write" } else { "read" }
        );
    }
    let mut codes: Vec<String> = all.failures.iter().map(|(_, s, c)| format!("{} {c}", s.as_u16())).collect();
    codes.sort();
    codes.dedup();

    // The pool refilled: healthy, at least its minimum, with new connections made.
    let pools = async || app.get("/api/database/connections/stats").await.1["primary"]["pool_stats"].clone();
    wait_until("the pool to refill", Duration::from_secs(10), async || {
        let stats: Value = pools().await;
        stats["healthy"] == true && stats["total"].as_u64().unwrap_or(0) >= 4
    })
    .await;
    let stats = pools().await;
    eprintln!(
        "faults: restart -m {mode:?} under {CLIENTS} clients: served again {:.2} s after the server accepted connections; \
         {} writes acknowledged, 0 lost, {} reads, {} failed ({unknown} of them 502 outcome_unknown; codes {codes:?}), 0 hung; \
         pool total {} (created {}, closed broken {})",
        recovery.as_secs_f64(),
        all.acked.len(),
        all.ok_reads,
        all.failures.len(),
        stats["total"],
        stats["connections_created"],
        stats["connections_closed_broken"],
    );
    assert!(recovery < Duration::from_secs(5), "served again only {recovery:?} after the server was back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_restart_under_64_clients_loses_no_acknowledged_write() {
    restart_under_load(StopMode::Fast).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immediate_restart_under_64_clients_loses_no_acknowledged_write() {
    restart_under_load(StopMode::Immediate).await;
}
