//! The network between the agent and PostgreSQL slowed, cut and blackholed (a proxy in the
//! harness, [`Proxy`]): statement and pool timeouts fire as configured, `/health/ready` goes
//! unready, nothing hangs, and the agent serves again once the network heals.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use super::proxy::Proxy;
use super::{Cluster, error_code, send};
use crate::helpers::{TestApp, TestDb, spawn_app_on, wait_until};

/// The agent's statement timeout and pool acquire timeout (seconds).
const QUERY_TIMEOUT: f64 = 1.0;
const POOL_TIMEOUT: f64 = 1.0;
/// The agent waits 2 s beyond the statement timeout before it gives up itself.
const CLIENT_GRACE: f64 = 2.0;

/// An agent on a private cluster, reaching it only through a proxy.
async fn behind_proxy(tag: &str) -> (Cluster, Proxy, TestApp) {
    let cluster = Cluster::start(tag);
    let proxy = Proxy::start(&format!("127.0.0.1:{}", cluster.port)).await;
    let mut db = TestDb::create_on(&cluster.server()).await;
    db.url = format!("postgresql://postgres@127.0.0.1:{}/{}", proxy.port, db.name);
    let app = spawn_app_on(db, |c| {
        c.postgresql.query_timeout = QUERY_TIMEOUT;
        c.postgresql.connection_pool.timeout = POOL_TIMEOUT;
        c.postgresql.connection_pool.min_size = 2;
        c.postgresql.connection_pool.max_size = 8;
    })
    .await;
    (cluster, proxy, app)
}

/// `/query` with a client-side deadline well above every timeout the agent has: (status,
/// error code, seconds taken).
async fn timed_query(app: &TestApp, sql: &str) -> (StatusCode, String, f64) {
    let started = Instant::now();
    let deadline = Duration::from_secs_f64(QUERY_TIMEOUT + CLIENT_GRACE + POOL_TIMEOUT + 5.0);
    let answer = send(app.http.post(format!("{}/query", app.address)).json(&json!({"sql": sql})), deadline).await;
    let took = started.elapsed().as_secs_f64();
    match answer {
        Err(()) => panic!("{sql}: no answer within {deadline:?}: the agent hangs"),
        Ok(None) => panic!("{sql}: the connection to the agent failed"),
        Ok(Some((status, body))) => (status, error_code(&body).unwrap_or("").to_string(), took),
    }
}

/// Polls `SELECT 1` until it succeeds; the time it took.
async fn until_serving(app: &TestApp, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, _, _) = timed_query(app, "SELECT 1").await;
        if status == StatusCode::OK {
            return started.elapsed();
        }
        assert!(started.elapsed() < within, "the agent did not serve again within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_network_still_gets_its_statement_timeout() {
    let (_cluster, proxy, app) = behind_proxy("slow").await;
    assert_eq!(timed_query(&app, "SELECT 1").await.0, StatusCode::OK);
    // 150 ms each way: slow but working.
    proxy.delay(150);
    let (status, code, took) = timed_query(&app, "SELECT 2 AS slow_but_fine").await;
    assert_eq!(status, StatusCode::OK, "{code}");
    // A statement longer than the timeout is cancelled by the server after 1 s of running:
    // the answer comes within the timeout plus the network's delays, not after the sleep.
    let (status, code, slept) = timed_query(&app, "SELECT pg_sleep(10)").await;
    assert_eq!((status, code.as_str()), (StatusCode::GATEWAY_TIMEOUT, "query_timeout"), "took {slept:.2} s");
    assert!(slept < QUERY_TIMEOUT + CLIENT_GRACE + 0.5, "the timeout fired only after {slept:.2} s");
    // Slower than the timeout itself (a round trip of 6 s): the agent's own timer gives up.
    proxy.delay(3000);
    let (status, code, stuck) = timed_query(&app, "SELECT 3 AS too_slow").await;
    assert!(status.is_server_error() && !code.is_empty(), "{status} {code}");
    assert!(stuck < QUERY_TIMEOUT + CLIENT_GRACE + POOL_TIMEOUT + 1.0, "answered only after {stuck:.2} s");
    proxy.heal();
    let back = until_serving(&app, Duration::from_secs(10)).await;
    eprintln!(
        "faults: network delay 150 ms: a statement {took:.2} s, pg_sleep(10) cancelled after {slept:.2} s (timeout {QUERY_TIMEOUT} s); \
         delay 3 s: answered {status} {code} after {stuck:.2} s; healed: serving after {:.2} s",
        back.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_network_fails_requests_in_bounded_time_and_the_agent_recovers_when_it_heals() {
    let (_cluster, proxy, app) = behind_proxy("blackhole").await;
    assert_eq!(timed_query(&app, "SELECT 1").await.0, StatusCode::OK);
    let (status, _) = app.get("/health/ready").await;
    assert_eq!(status, StatusCode::OK);

    proxy.stop_forwarding();
    let cut = Instant::now();
    // Requests fail (5xx in the error shape), each within the timeouts, none hangs; a fresh
    // statement each time (no connection of the pool is of any use now).
    let mut slowest: f64 = 0.0;
    let mut codes = Vec::new();
    for i in 0..3 {
        let (status, code, took) = timed_query(&app, &format!("SELECT {i} AS during_the_blackhole")).await;
        assert!(status.is_server_error() && !code.is_empty(), "{status} {code}");
        assert!(took < QUERY_TIMEOUT + CLIENT_GRACE + POOL_TIMEOUT + 1.0, "request {i} took {took:.2} s");
        slowest = slowest.max(took);
        codes.push(format!("{} {code}", status.as_u16()));
    }
    // Ready goes unready in bounded time.
    let unready_after = {
        let started = Instant::now();
        wait_until("/health/ready to say not ready", Duration::from_secs(10), async || {
            let answer = send(app.http.get(format!("{}/health/ready", app.address)), Duration::from_secs(8)).await;
            matches!(answer, Ok(Some((StatusCode::SERVICE_UNAVAILABLE, _))))
        })
        .await;
        started.elapsed()
    };
    let ready_took = {
        let started = Instant::now();
        let answer = send(app.http.get(format!("{}/health/ready", app.address)), Duration::from_secs(8)).await;
        assert!(matches!(answer, Ok(Some((StatusCode::SERVICE_UNAVAILABLE, _)))), "{answer:?}");
        started.elapsed()
    };
    // `/health` answers too (503), without hanging.
    let answer = send(app.http.get(format!("{}/health", app.address)), Duration::from_secs(10)).await;
    assert!(matches!(answer, Ok(Some((StatusCode::SERVICE_UNAVAILABLE, _)))), "/health: {answer:?}");

    proxy.heal();
    let back = until_serving(&app, Duration::from_secs(10)).await;
    wait_until("/health/ready to say ready again", Duration::from_secs(10), async || app.get("/health/ready").await.0 == StatusCode::OK).await;
    eprintln!(
        "faults: blackhole: requests failed within {slowest:.2} s ({codes:?}), /health/ready unready {:.2} s after the first \
         check (each check {:.2} s), {:.1} s of blackhole in all; healed: serving again after {:.2} s",
        unready_after.as_secs_f64(),
        ready_took.as_secs_f64(),
        cut.elapsed().as_secs_f64(),
        back.as_secs_f64()
    );
    assert!(back < Duration::from_secs(5), "serving again only after {back:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_dropped_by_the_network_are_replaced() {
    let (_cluster, proxy, app) = behind_proxy("drop").await;
    assert_eq!(timed_query(&app, "SELECT 1").await.0, StatusCode::OK);
    proxy.drop_connections();
    // The next requests succeed or fail fast (5xx); the agent serves again at once.
    let (status, code, took) = timed_query(&app, "SELECT 1").await;
    assert!(status == StatusCode::OK || (status.is_server_error() && !code.is_empty()), "{status} {code}");
    let back = until_serving(&app, Duration::from_secs(5)).await;
    eprintln!(
        "faults: connections dropped: first request {status} {code} in {took:.2} s; serving again after {:.2} s",
        back.as_secs_f64()
    );
}
