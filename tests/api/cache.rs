//! The query result cache against real PostgreSQL and a real Redis server (started per test).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, spawn_app, spawn_app_on, wait_until};

/// Whether `sql` is answered from the cache within a second. After a write through dbagent
/// the entry is dropped at once, and the write's own change notification (from the watch
/// trigger, delivered asynchronously) may drop the re-cached entry once more: a spurious miss,
/// never a stale hit.
async fn cached_again(app: &TestApp, sql: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        if cached(app, sql).await.1 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `/query` with `use_cache: true`; returns (rows, from_cache, the whole answer).
async fn cached(app: &TestApp, sql: &str) -> (Value, bool, Value) {
    let (status, body) = app.post("/query", &json!({"sql": sql, "use_cache": true})).await;
    assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    (body["rows"].clone(), body["from_cache"].as_bool().unwrap(), body)
}

#[tokio::test]
async fn a_cached_read_is_dropped_by_writes_through_query_and_transaction() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')").await;
    let read = "SELECT v FROM t WHERE id = 1";
    assert!(!cached(&app, read).await.1);
    let (rows, hit, _) = cached(&app, read).await;
    assert_eq!((rows, hit), (json!([{"v": "a"}]), true));

    app.rows("UPDATE t SET v = 'b' WHERE id = 1", json!([])).await;
    let (rows, hit, _) = cached(&app, read).await;
    assert_eq!((rows, hit), (json!([{"v": "b"}]), false), "the write through /query must drop the entry before answering");
    assert!(cached_again(&app, read).await);

    let (status, body) = app.post("/transaction", &json!({"queries": [{"sql": "UPDATE t SET v = 'c' WHERE id = 1"}]})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (rows, hit, _) = cached(&app, read).await;
    assert_eq!((rows, hit), (json!([{"v": "c"}]), false));

    // Parameters are part of the key.
    let (status, body) = app.post("/query", &json!({"sql": "SELECT v FROM t WHERE id = $1", "params": [2], "use_cache": true})).await;
    assert_eq!((status, &body["rows"]), (StatusCode::OK, &json!([])));
    let (_, health) = app.get("/health").await;
    let cache = &health["cache"];
    assert!(cache["hits"].as_u64().unwrap() >= 2 && cache["entries"].as_u64().unwrap() >= 1, "{health:#}");
    assert!(health["statistics"]["cache_hits"].as_u64().unwrap() >= 2, "{health:#}");
}

#[tokio::test]
async fn a_direct_write_by_another_client_reaches_the_cache_within_the_bound() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0)").await;
    let direct = app.db.connect().await;
    let read = "SELECT v FROM t WHERE id = 1";
    let mut worst = Duration::ZERO;
    for round in 1..=5 {
        cached(&app, read).await;
        assert!(cached(&app, read).await.1, "round {round}: not cached");
        direct.execute("UPDATE t SET v = $1 WHERE id = 1", &[&round]).await.unwrap();
        let written = Instant::now();
        loop {
            let (rows, _, _) = cached(&app, read).await;
            if rows == json!([{"v": round}]) {
                break;
            }
            assert!(written.elapsed() < Duration::from_secs(2), "round {round}: still stale after 2 s: {rows}");
        }
        worst = worst.max(written.elapsed());
    }
    eprintln!("staleness after an outside write (worst of 5): {:.1} ms", worst.as_secs_f64() * 1e3);
}

#[tokio::test]
async fn views_and_partitions_are_watched_through_their_base_tables() {
    let app = spawn_app().await;
    app.setup(
        "CREATE TABLE base (id int, v int); INSERT INTO base VALUES (1, 1);
         CREATE VIEW over_base AS SELECT sum(v) AS total FROM base;
         CREATE TABLE parted (id int, v int) PARTITION BY RANGE (id);
         CREATE TABLE parted_low PARTITION OF parted FOR VALUES FROM (0) TO (100);
         INSERT INTO parted VALUES (1, 1);",
    )
    .await;
    let direct = app.db.connect().await;
    let wait_for = |sql: &'static str, want: Value| {
        let app = &app;
        async move {
            let start = Instant::now();
            while cached(app, sql).await.0 != want {
                assert!(start.elapsed() < Duration::from_secs(2), "{sql} never showed {want}");
            }
        }
    };
    cached(&app, "SELECT total FROM over_base").await;
    assert!(cached(&app, "SELECT total FROM over_base").await.1);
    direct.batch_execute("INSERT INTO base VALUES (2, 41)").await.unwrap();
    wait_for("SELECT total FROM over_base", json!([{"total": 42}])).await;

    // A write straight into a partition invalidates reads of the parent, and a partition
    // created later is covered too.
    cached(&app, "SELECT count(*) AS n FROM parted").await;
    assert!(cached(&app, "SELECT count(*) AS n FROM parted").await.1);
    direct.batch_execute("INSERT INTO parted_low VALUES (2, 2)").await.unwrap();
    wait_for("SELECT count(*) AS n FROM parted", json!([{"n": 2}])).await;
    direct.batch_execute("CREATE TABLE parted_high PARTITION OF parted FOR VALUES FROM (100) TO (200)").await.unwrap();
    assert!(cached(&app, "SELECT count(*) AS n FROM parted").await.1);
    direct.batch_execute("INSERT INTO parted_high VALUES (150, 3)").await.unwrap();
    wait_for("SELECT count(*) AS n FROM parted", json!([{"n": 3}])).await;
}

#[tokio::test]
async fn volatile_locking_and_unwatchable_queries_are_never_cached_and_say_why() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE t (id int); CREATE MATERIALIZED VIEW mv AS SELECT count(*) FROM t").await;
    for (sql, reason) in [
        ("SELECT now()", "now"),
        ("SELECT random()", "random"),
        ("SELECT CURRENT_TIMESTAMP", "clock"),
        ("SELECT * FROM t FOR UPDATE", "FOR UPDATE"),
        ("SELECT * FROM mv", "materialized view"),
        ("SELECT count(*) FROM pg_class", "system catalog"),
        ("INSERT INTO t VALUES (1)", "read-only SELECT"),
    ] {
        for _ in 0..2 {
            let (status, body) = app.post("/query", &json!({"sql": sql, "use_cache": true})).await;
            assert_eq!(status, StatusCode::OK, "{sql}: {body}");
            assert_eq!(body["from_cache"], false, "{sql} was cached: {body}");
            let why = body["cache_bypass"].as_str().unwrap_or_else(|| panic!("{sql}: no reason given: {body}"));
            assert!(why.contains(reason), "{sql}: {why}");
        }
    }
    // Immutable functions are fine. (The INSERT above notifies asynchronously: a spurious miss
    // is allowed, see `cached_again`.)
    cached(&app, "SELECT lower('ABC') AS l, count(*) AS n FROM t").await;
    assert!(cached_again(&app, "SELECT lower('ABC') AS l, count(*) AS n FROM t").await);
}

#[tokio::test]
async fn one_caller_never_gets_another_callers_cached_rows() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE t (id int); INSERT INTO t VALUES (1)").await;
    // Keys are not required on loopback, but a key given is a caller of its own.
    let key = |name: &'static str| {
        let app = &app;
        async move {
            let (status, created) = app.post("/keys", &json!({"name": name, "scopes": ["read"]})).await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            created["secret"].as_str().unwrap().to_owned()
        }
    };
    let (alice, bob) = (key("alice").await, key("bob").await);
    let as_caller = |who: &str| {
        let (app, who) = (&app, who.to_owned());
        async move {
            let body = json!({"sql": "SELECT id FROM t", "use_cache": true});
            let response = app.http.post(format!("{}/query", app.address)).bearer_auth(who).json(&body).send().await.unwrap();
            let body = response.json::<Value>().await.unwrap();
            body["from_cache"].as_bool().unwrap_or_else(|| panic!("{body}"))
        }
    };
    assert!(!as_caller(&alice).await);
    assert!(as_caller(&alice).await);
    assert!(!as_caller(&bob).await, "bob got alice's cached result");
    assert!(!cached(&app, "SELECT id FROM t").await.1, "an anonymous caller got a signed-in caller's result");
}

/// A private redis-server on a free port, killed on drop.
struct Redis {
    port: u16,
    child: Option<Child>,
}

impl Redis {
    fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (scripts/setup.sh installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis { port, child: Some(child) }
    }

    fn start() -> Redis {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Redis::start_on(port)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.child.as_ref().expect("running").id() as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).unwrap();
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn agents_sharing_redis_share_entries_and_invalidate_each_other() {
    let redis = Redis::start();
    let db = TestDb::create().await;
    let url = db.url.clone();
    let with_redis = |c: &mut dbagent::config::Config| c.caching.redis_url = Some(dbagent::config::Secret::new(redis.url()));
    let a = spawn_app_on(db, with_redis).await;
    let b = spawn_app_on(TestDb::existing(&url), with_redis).await;
    a.setup("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')").await;
    let read = "SELECT v FROM t WHERE id = 1";
    assert!(!cached(&a, read).await.1);
    assert!(cached(&b, read).await.1, "agent b does not see agent a's entry");

    // A write through b drops the entry for a, at once.
    b.rows("UPDATE t SET v = 'b' WHERE id = 1", json!([])).await;
    let (rows, hit, _) = cached(&a, read).await;
    assert_eq!((rows, hit), (json!([{"v": "b"}]), false));
    assert_eq!(a.get("/health").await.1["cache"]["backend"], "redis");
}

#[tokio::test]
async fn requests_succeed_while_redis_is_down_and_caching_resumes_when_it_is_back() {
    let mut redis = Redis::start();
    let port = redis.port;
    let app = crate::helpers::spawn_app_with(|c| c.caching.redis_url = Some(dbagent::config::Secret::new(redis.url()))).await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')").await;
    let read = "SELECT v FROM t WHERE id = 1";
    cached(&app, read).await;
    assert!(cached(&app, read).await.1);

    redis.kill();
    for _ in 0..3 {
        let started = Instant::now();
        let (rows, hit, _) = cached(&app, read).await;
        assert_eq!((rows, hit), (json!([{"v": "a"}]), false));
        assert!(started.elapsed() < Duration::from_secs(2), "a request waited {:?} on the dead Redis", started.elapsed());
    }
    // A write while Redis is down: its invalidation cannot reach Redis ...
    app.rows("UPDATE t SET v = 'b' WHERE id = 1", json!([])).await;
    let (_, health) = app.get("/health").await;
    assert!(health["cache"]["redis_errors"].as_u64().unwrap() >= 1, "{health:#}");

    let redis = Redis::start_on(port);
    wait_until_cached(&app, read, json!([{"v": "b"}])).await;

    // Frozen rather than killed, Redis keeps its entries: the invalidation it missed must
    // still hide the old one when it answers again.
    redis.signal(nix::sys::signal::Signal::SIGSTOP);
    app.rows("UPDATE t SET v = 'c' WHERE id = 1", json!([])).await;
    redis.signal(nix::sys::signal::Signal::SIGCONT);
    wait_until_cached(&app, read, json!([{"v": "c"}])).await;
}

/// Reads until the answer comes from the cache (once Redis answers again and the store's
/// back-off is over); every answer, from the cache or not, must be `want`.
async fn wait_until_cached(app: &TestApp, read: &str, want: Value) {
    wait_until("caching to resume", Duration::from_secs(10), async || {
        let (rows, hit, _) = cached(app, read).await;
        assert_eq!(rows, want, "a stale entry survived the outage");
        hit
    })
    .await;
}

#[tokio::test]
async fn the_cache_listen_session_names_itself_in_pg_stat_activity() {
    let app = spawn_app().await;
    let named = "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'dbagent cache'";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = app.rows(named, json!([])).await;
        if rows == vec![json!({"n": 1})] {
            break;
        }
        assert!(Instant::now() < deadline, "no session named \"dbagent cache\": {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
