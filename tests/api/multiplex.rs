//! Multiplexing: concurrent short reads share a few connections (pipelined), and sharing never
//! costs a read its answer, its read-only check, or its latency behind a slow neighbour.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with, wait_until};

/// `/health`'s primary pool statistics.
async fn pool_stats(app: &TestApp) -> Value {
    app.get("/health").await.1["connection_pool"]["pool_stats"].clone()
}

/// `POST /query` of `sql` with `params`, as a future that owns what it needs.
fn query(app: &TestApp, sql: &str, params: Value) -> impl Future<Output = (StatusCode, Value)> + Send + 'static {
    let (http, address) = (app.http.clone(), app.address.clone());
    let body = json!({"sql": sql, "params": params});
    async move {
        let response = http.post(format!("{address}/query")).json(&body).send().await.expect("request");
        (response.status(), response.json::<Value>().await.expect("JSON body"))
    }
}

/// Sends `sql` with each of `params`, [`CONCURRENCY`] at a time; every answer, in order.
async fn concurrently(app: &TestApp, sql: &str, params: impl IntoIterator<Item = Value>) -> Vec<(StatusCode, Value)> {
    use futures_util::StreamExt;
    let requests = params.into_iter().map(|params| query(app, sql, params));
    futures_util::stream::iter(requests).buffered(CONCURRENCY).collect().await
}

/// Requests in flight at once in [`concurrently`].
const CONCURRENCY: usize = 24;

#[tokio::test]
async fn concurrent_short_reads_share_a_few_connections_and_each_gets_its_own_answer() {
    let app = spawn_app_with(|_| {}).await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 300) i").await;
    let sql = "SELECT v, pg_backend_pid() AS pid FROM t WHERE id = $1";
    // The first run times the statement; only reads known to be short share.
    assert_eq!(app.rows(sql, json!([1])).await[0]["v"], json!("v1"));
    assert_eq!(pool_stats(&app).await["shared"]["statements"], json!(0));

    let answers = concurrently(&app, sql, (1..=300).map(|i| json!([i]))).await;
    let mut pids = BTreeSet::new();
    for (i, (status, body)) in (1..=300).zip(&answers) {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["rows"], json!([{"v": format!("v{i}"), "pid": body["rows"][0]["pid"]}]), "request {i}");
        pids.insert(body["rows"][0]["pid"].as_i64().unwrap());
    }
    let stats = pool_stats(&app).await;
    let shared = stats["shared"]["statements"].as_u64().unwrap();
    assert!(shared >= 150, "most of 300 concurrent short reads should share connections: {stats:#}");
    // At most half the pool of 10 shares; reads that found no room used connections of their own.
    assert!(stats["shared"]["connections"].as_u64().unwrap() <= 4, "{stats:#}");
    assert!(pids.len() <= 4 + (300 - shared as usize), "{} backends for {shared} shared reads", pids.len());

    // Shared connections go back to the pool once idle (the health check looks every second).
    wait_for_no_shared_connections(&app).await;

    // Reads returning many rows never share, however fast (see MULTIPLEX_MAX_ROWS).
    let big = "SELECT id FROM t WHERE id <= $1 ORDER BY id";
    let before = pool_stats(&app).await["shared"]["statements"].clone();
    for _ in 0..3 {
        assert_eq!(app.rows(big, json!([100])).await.len(), 100);
    }
    assert_eq!(pool_stats(&app).await["shared"]["statements"], before);
}

async fn wait_for_no_shared_connections(app: &TestApp) {
    wait_until("shared connections to go back to the pool", Duration::from_secs(10), async || {
        pool_stats(app).await["shared"]["connections"] == json!(0)
    })
    .await;
}

#[tokio::test]
async fn a_read_stuck_on_a_shared_connection_does_not_hold_up_the_reads_after_it() {
    let app = spawn_app_with(|c| {
        c.postgresql.connection_pool.multiplex_connections = 1;
        c.postgresql.connection_pool.multiplex_max_ms = 50.0;
    })
    .await;
    let sleep = "SELECT pg_sleep($1::float8) AS slept";
    let quick = "SELECT $1::int AS n";
    for _ in 0..3 {
        app.rows(sleep, json!([0])).await;
        app.rows(quick, json!([0])).await;
    }
    // Known to be short, so it shares the one shared connection; then it takes 2 s.
    let slow = tokio::spawn(query(&app, sleep, json!([2])));
    wait_until("the slow read on the shared connection", Duration::from_secs(10), async || {
        pool_stats(&app).await["shared"]["in_flight"] == json!(1)
    })
    .await;
    // The point of the test: the shared connection makes no progress for longer than
    // multiplex_max_ms (50 ms), a time, not an event to poll for.
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The shared connection has made no progress for longer than multiplex_max_ms: short
    // reads go around it instead of queueing behind the 2 s statement.
    for n in 0..10 {
        let started = Instant::now();
        let rows = app.rows(quick, json!([n])).await;
        assert_eq!(rows, json!([{"n": n}]).as_array().unwrap().clone());
        assert!(started.elapsed() < Duration::from_millis(1000), "read {n} waited {:?} behind the slow one", started.elapsed());
    }
    let (status, body) = slow.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    // It ran long, so from now on it is not taken for a short read: it runs on its own
    // connection, and nothing is in flight on a shared one while it sleeps.
    let again = tokio::spawn(query(&app, sleep, json!([1])));
    app.wait_for_running(sleep, 1).await;
    assert_eq!(pool_stats(&app).await["shared"]["in_flight"], json!(0));
    assert_eq!(again.await.unwrap().0, StatusCode::OK);
}

#[tokio::test]
async fn a_shared_read_that_writes_is_refused_read_only_and_rerun_once_on_the_primary() {
    let app = spawn_app_with(|c| {
        // One shared connection and a small pool: the connection the write used last is the
        // one that becomes shared, so its session must be switched back to read-only.
        c.postgresql.connection_pool.max_size = 2;
        c.postgresql.connection_pool.multiplex_connections = 1;
        // Known short however loaded the machine.
        c.postgresql.connection_pool.multiplex_max_ms = 1000.0;
    })
    .await;
    // Built-ins only: a statement calling user code never shares a connection (the session
    // check after it could not contain a change seen by concurrent callers).
    app.setup("CREATE SEQUENCE s; CREATE TABLE log (x int)").await;
    let sql = "SELECT CASE WHEN $1::int > 0 THEN nextval('s') ELSE 0 END AS x";
    for _ in 0..3 {
        app.rows(sql, json!([0])).await;
    }
    // Once the shared connection has gone back to the pool, a write takes it (most recently
    // used first) and leaves its session read-write.
    wait_for_no_shared_connections(&app).await;
    let (status, body) = app.query("INSERT INTO log VALUES ($1)", json!([-1])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let before = pool_stats(&app).await["shared"]["statements"].as_u64().unwrap();
    let (status, body) = app.query(sql, json!([7])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((&body["rows"], &body["served_by"]), (&json!([{"x": 1}]), &json!("primary")));
    assert_eq!(pool_stats(&app).await["shared"]["statements"].as_u64().unwrap(), before + 1, "it was tried shared first");
    // Advanced exactly once: the shared attempt was refused by the server, not half-done.
    assert_eq!(app.rows("SELECT last_value AS n FROM s", json!([])).await, vec![json!({"n": 1})]);
    // Refused, so it is a write from now on and no longer shares.
    let before = pool_stats(&app).await["shared"]["statements"].clone();
    app.rows(sql, json!([8])).await;
    assert_eq!(pool_stats(&app).await["shared"]["statements"], before);
}

#[tokio::test]
async fn a_timeout_on_a_shared_connection_answers_504_and_the_connection_serves_on() {
    let app = spawn_app_with(|c| {
        c.postgresql.query_timeout = 0.5;
        c.postgresql.connection_pool.multiplex_connections = 1;
        c.postgresql.connection_pool.multiplex_max_ms = 1000.0;
    })
    .await;
    let sleep = "SELECT pg_sleep($1::float8) AS slept";
    for _ in 0..3 {
        app.rows(sleep, json!([0])).await;
    }
    let answers = concurrently(&app, sleep, [json!([3]), json!([0]), json!([0])]).await;
    assert_eq!(answers[0].0, StatusCode::GATEWAY_TIMEOUT, "{}", answers[0].1);
    assert_eq!(answers[0].1["error"]["code"], json!("query_timeout"));
    assert_eq!((answers[1].0, answers[2].0), (StatusCode::OK, StatusCode::OK));
    // The server cancelled it: nothing of it is left running.
    let client = app.db.connect().await;
    let running = client
        .query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%' AND state = 'active'", &[])
        .await
        .unwrap();
    assert_eq!(running.get::<_, i64>(0), 0);
    assert_eq!(app.rows("SELECT 1 AS one", json!([])).await, vec![json!({"one": 1})]);
}

#[tokio::test]
async fn reads_on_a_shared_connection_that_dies_are_run_again_on_a_connection_of_their_own() {
    let app = spawn_app_with(|c| {
        c.postgresql.connection_pool.multiplex_connections = 1;
        c.postgresql.connection_pool.multiplex_max_ms = 2000.0;
    })
    .await;
    let sql = "SELECT pg_backend_pid() AS pid, $1::int AS n, pg_sleep($2::float8)::text AS slept";
    app.rows(sql, json!([0, 0])).await;
    let before = pool_stats(&app).await["shared"]["statements"].as_u64().unwrap();
    let shared_pid = app.rows(sql, json!([0, 0])).await[0]["pid"].clone();
    assert_eq!(pool_stats(&app).await["shared"]["statements"].as_u64().unwrap(), before + 1);
    // Five reads queue up on the shared connection; its backend dies under them.
    let answers = {
        let app = &app;
        let reads = concurrently(app, sql, (1..=5).map(|n| json!([n, 0.5])));
        let kill = async {
            wait_until("five reads on the shared connection", Duration::from_secs(10), async || {
                pool_stats(app).await["shared"]["in_flight"] == json!(5)
            })
            .await;
            let client = app.db.connect().await;
            let killed: bool = client.query_one("SELECT pg_terminate_backend($1)", &[&(shared_pid.as_i64().unwrap() as i32)]).await.unwrap().get(0);
            assert!(killed);
        };
        tokio::join!(reads, kill).0
    };
    for (n, (status, body)) in (1..=5).zip(&answers) {
        assert_eq!(*status, StatusCode::OK, "read {n}: {body}");
        assert_eq!(body["rows"][0]["n"], json!(n));
        assert_ne!(body["rows"][0]["pid"], shared_pid, "read {n} was answered by the dead backend");
    }
    // Sharing goes on, on a new connection.
    let shared = pool_stats(&app).await["shared"]["statements"].as_u64().unwrap();
    assert_ne!(app.rows(sql, json!([6, 0])).await[0]["pid"], shared_pid);
    assert_eq!(pool_stats(&app).await["shared"]["statements"].as_u64().unwrap(), shared + 1);
}

#[tokio::test]
async fn reads_on_their_own_connections_whose_backends_die_are_run_again_and_a_write_is_not() {
    let app = spawn_app_with(|c| {
        c.postgresql.connection_pool.multiplex_connections = 0; // every read on a connection of its own
        c.postgresql.connection_pool.max_size = 10;
    })
    .await;
    app.setup("CREATE TABLE counter (n int); INSERT INTO counter VALUES (0)").await;
    let read = "SELECT pg_backend_pid() AS pid, $1::int AS n, pg_sleep(0.5)::text AS slept";
    let write = "UPDATE counter SET n = n + 1 WHERE pg_sleep(0.5) IS NOT NULL";
    let (reads, write_answer) = {
        let app = &app;
        let reads = concurrently(app, read, (1..=8).map(|n| json!([n])));
        let write = query(app, write, json!([]));
        let kill = async {
            let client = app.db.connect().await;
            wait_until("eight reads and a write running", Duration::from_secs(10), async || {
                let running: i64 = client
                    .query_one("SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(0.5)%' AND pid <> pg_backend_pid()", &[])
                    .await
                    .unwrap()
                    .get(0);
                running == 9
            })
            .await;
            let killed: i64 = client
                .query_one(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE query LIKE '%pg_sleep(0.5)%' AND pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(killed, 9);
        };
        let (reads, write, ()) = tokio::join!(reads, write, kill);
        (reads, write)
    };
    // Every read is answered, by a backend that was not killed under it.
    let pids: BTreeSet<String> = reads.iter().map(|(_, body)| body["rows"][0]["pid"].to_string()).collect();
    for (n, (status, body)) in (1..=8).zip(&reads) {
        assert_eq!(*status, StatusCode::OK, "read {n}: {body}");
        assert_eq!(body["rows"][0]["n"], json!(n));
    }
    assert_eq!(pids.len(), 8, "each read ran once more on a fresh connection of its own: {pids:?}");
    // The write is not run again: its caller hears it failed, and it changed nothing.
    assert!(write_answer.0.is_server_error(), "{:?}", write_answer);
    assert_eq!(app.rows("SELECT n FROM counter", json!([])).await[0]["n"], json!(0));
}

#[tokio::test]
async fn a_request_waiting_for_the_pool_gets_the_connection_an_idle_shared_read_holds() {
    let app = spawn_app_with(|c| {
        c.postgresql.connection_pool.max_size = 2;
        c.postgresql.connection_pool.timeout = 1.0;
    })
    .await;
    // Timed on a connection of its own, then shared: the shared connection stays, idle.
    // (Not checked through /health: a request that finds no idle connection in the pool takes
    // the idle shared one back, and the health report's own check is such a request.)
    for _ in 0..3 {
        app.rows("SELECT 1 AS one", json!([])).await;
    }
    // Two transactions need both connections now: the shared one, idle, is handed back at
    // once, not after its idle second; otherwise the second transaction would wait for the
    // first (1.5 s) past its acquire timeout (1 s).
    let started = Instant::now();
    let transactions = (0..2).map(|_| {
        let (http, address) = (app.http.clone(), app.address.clone());
        async move {
            let body = json!({"queries": [{"sql": "SELECT pg_sleep(1.5)"}]});
            let response = http.post(format!("{address}/transaction")).json(&body).send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    });
    for (status, body) in futures_util::future::join_all(transactions).await {
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    assert!(started.elapsed() < Duration::from_millis(2500), "the transactions ran one after the other: {:?}", started.elapsed());
    let stats = pool_stats(&app).await;
    assert_eq!((&stats["shared"]["statements"], &stats["shared"]["connections"]), (&json!(2), &json!(0)), "{stats:#}");
}
