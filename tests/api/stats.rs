//! `/stats/database|tables|indexes|slow-queries|activity|system` against real PostgreSQL, and
//! `dbagent stats` on the command line.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, wait_until};

#[tokio::test]
async fn database_stats_show_connections_tps_cache_hits_and_size() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)").await;
    // Commits while the two samples are taken.
    let url = app.db.url.clone();
    let traffic = tokio::spawn(async move {
        let client = crate::helpers::connect(&url).await;
        for _ in 0..200 {
            client.batch_execute("INSERT INTO t VALUES (1)").await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let (status, stats) = app.get("/stats/database").await;
    traffic.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["database"], app.db.name.as_str());
    assert!(stats["backends"].as_i64().unwrap() >= 1, "{stats}");
    assert!(stats["max_connections"].as_i64().unwrap() > 0);
    assert!(stats["tps"].as_f64().unwrap() > 1.0, "commits were running: {stats}");
    assert!(stats["sample_seconds"].as_f64().unwrap() >= 1.0);
    let ratio = stats["cache_hit_ratio"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ratio), "{stats}");
    assert!(stats["size_bytes"].as_i64().unwrap() > 0);
    assert!(stats["xid_age"].as_i64().unwrap() > 0);
    for key in ["deadlocks", "temp_bytes", "conflicts", "rollbacks_per_second", "oldest_transaction_seconds", "xid_wraparound_pct"] {
        assert!(stats.get(key).is_some(), "{key} missing: {stats}");
    }
    let (status, body) = app.get("/stats/database?verbose=1").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")));
    app.stop().await;
}

#[tokio::test]
async fn table_and_index_stats_follow_writes_and_scans() {
    let app = spawn_app().await;
    app.setup(
        "CREATE TABLE items (id int PRIMARY KEY, sku text, note text);
         CREATE INDEX items_note ON items (note);
         INSERT INTO items SELECT g, 'sku' || g, NULL FROM generate_series(1, 500) g;
         DELETE FROM items WHERE id <= 100;",
    )
    .await;
    let mut tables = Value::Null;
    wait_until("the statistics of the writes are flushed", Duration::from_secs(10), async || {
        tables = app.get("/stats/tables").await.1;
        tables[0]["live_tuples"] == 400 && tables[0]["dead_tuples"] == 100
    })
    .await;
    let items = &tables[0];
    assert_eq!((items["schema"].as_str(), items["name"].as_str()), (Some("public"), Some("items")));
    assert_eq!((items["inserted"].as_i64(), items["deleted"].as_i64()), (Some(500), Some(100)));
    assert!(items["total_bytes"].as_i64().unwrap() >= items["table_bytes"].as_i64().unwrap() + items["index_bytes"].as_i64().unwrap());
    assert_eq!(items["dead_pct"], 20.0);
    assert!(items.get("last_autovacuum").is_some());

    app.rows("SELECT sku FROM items WHERE id = $1", json!([200])).await;
    let mut indexes = Value::Null;
    wait_until("the index scan is counted", Duration::from_secs(10), async || {
        indexes = app.get("/stats/indexes?limit=10").await.1;
        indexes.as_array().unwrap().iter().any(|i| i["name"] == "items_pkey" && i["scans"].as_i64() >= Some(1))
    })
    .await;
    let by_name = |name: &str| indexes.as_array().unwrap().iter().find(|i| i["name"] == name).unwrap().clone();
    let note = by_name("items_note");
    assert_eq!((note["unused"].as_bool(), note["scans"].as_i64()), (Some(true), Some(0)));
    let pkey = by_name("items_pkey");
    assert_eq!((pkey["unused"].as_bool(), pkey["primary"].as_bool()), (Some(false), Some(true)));
    assert!(pkey["size_bytes"].as_i64().unwrap() > 0);

    for bad in ["/stats/tables?limit=0", "/stats/tables?limit=lots", "/stats/indexes?limit=5000", "/stats/tables?order=size"] {
        let (status, body) = app.get(bad).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{bad}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn slow_queries_say_how_to_enable_pg_stat_statements_then_list_normalised_statements() {
    let app = spawn_app().await;
    let (status, body) = app.get("/stats/slow-queries").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "pg_stat_statements_unavailable");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("CREATE EXTENSION pg_stat_statements") && message.contains(&app.db.name), "{message}");

    // The test server preloads the library (as the managed instance does); a DBA creates the
    // extension in the database.
    app.setup("CREATE EXTENSION pg_stat_statements; CREATE TABLE pets (id int, name text)").await;
    for i in 0..7 {
        app.rows("INSERT INTO pets VALUES ($1, 'rex')", json!([i])).await;
    }
    app.rows("SELECT pg_sleep(0.05)", json!([])).await;
    let (status, by_calls) = app.get("/stats/slow-queries?order=calls&limit=50").await;
    assert_eq!(status, StatusCode::OK, "{by_calls}");
    let insert = by_calls
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["query"].as_str().is_some_and(|t| t.starts_with("INSERT INTO pets")))
        .unwrap_or_else(|| panic!("the insert is listed: {by_calls}"))
        .clone();
    assert_eq!(insert["calls"], 7);
    assert_eq!(insert["rows"], 7);
    assert!(insert["query"].as_str().unwrap().contains("$1"), "normalised text, no constants: {insert}");
    assert!(insert["queryid"].as_str().is_some());
    for key in ["total_time_ms", "mean_time_ms", "stddev_time_ms", "max_time_ms", "shared_blks_hit", "shared_blks_read", "temp_blks_written"] {
        assert!(insert.get(key).is_some(), "{key}: {insert}");
    }

    let (_, slow) = app.get("/stats/slow-queries?threshold_ms=40&order=mean_time").await;
    let slow = slow.as_array().unwrap();
    assert!(!slow.is_empty() && slow.iter().all(|q| q["mean_time_ms"].as_f64().unwrap() >= 40.0), "{slow:?}");
    assert!(slow.iter().any(|q| q["query"].as_str().unwrap().contains("pg_sleep")));

    for bad in ["?order=fastest", "?threshold_ms=-1", "?limit=0"] {
        let (status, body) = app.get(&format!("/stats/slow-queries{bad}")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{bad}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn activity_shows_sessions_by_state_and_the_oldest_transaction_with_its_blocker() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE acct (id int PRIMARY KEY, balance int); INSERT INTO acct VALUES (1, 10)").await;
    let holder = app.db.connect().await;
    holder.batch_execute("BEGIN; UPDATE acct SET balance = 0 WHERE id = 1").await.unwrap();
    let holder_pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let waiter = app.db.connect().await;
    let waiting = tokio::spawn(async move { waiter.batch_execute("UPDATE acct SET balance = 1 WHERE id = 1").await });

    let mut activity = Value::Null;
    wait_until("the waiter is blocked", Duration::from_secs(10), async || {
        activity = app.get("/stats/activity").await.1;
        // The two lists are read one after the other: wait until both show the wait.
        activity["longest_transactions"].as_array().unwrap().iter().any(|t| t["blocked_by"] == json!([holder_pid]))
            && activity["sessions"].as_array().unwrap().iter().any(|g| g["wait_event_type"] == "Lock")
    })
    .await;
    let oldest = &activity["longest_transactions"][0];
    assert_eq!(oldest["pid"], holder_pid, "the holder's transaction is the oldest: {activity}");
    assert_eq!(oldest["state"], "idle in transaction");
    assert!(oldest["transaction_seconds"].as_f64().unwrap() >= 0.0);
    let groups = activity["sessions"].as_array().unwrap();
    assert!(groups.iter().any(|g| g["state"] == "idle in transaction" && g["database"] == app.db.name.as_str()), "{activity}");

    holder.batch_execute("ROLLBACK").await.unwrap();
    waiting.await.unwrap().unwrap();
    app.stop().await;
}

#[tokio::test]
async fn system_stats_describe_the_host() {
    let app = spawn_app().await;
    let (status, system) = app.get("/stats/system").await;
    assert_eq!(status, StatusCode::OK, "{system}");
    assert!(system["cpus"].as_u64().unwrap() >= 1);
    assert_eq!(system["database_host"], false, "not the managed instance's host");
    assert!(system["memory"]["total_bytes"].as_u64().unwrap() > 0);
    assert!(system["load_average"].as_array().is_some_and(|l| l.len() == 3));
    assert!(system["process"]["resident_bytes"].as_u64().unwrap() > 0);
    app.stop().await;
}

#[tokio::test]
async fn the_cli_prints_the_same_statistics_as_tables_or_json() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE cli_t (id int); INSERT INTO cli_t VALUES (1)").await;
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbagent"))
            .args(args)
            .env("DATABASE_URL", &app.db.url)
            .env_remove("CONFIG_PATH")
            .output()
            .expect("run dbagent");
        (out.status.code(), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (code, stdout, stderr) = run(&["stats", "tables", "--json"]);
    assert_eq!(code, Some(0), "{stderr}");
    let tables: Value = serde_json::from_str(&stdout).unwrap();
    // dbagent's own tables (its audit log, its keys) are listed too.
    assert!(tables.as_array().unwrap().iter().any(|t| t["name"] == "cli_t"), "{tables}");
    let (code, stdout, stderr) = run(&["stats", "tables"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("cli_t") && stdout.contains("live tuples"), "{stdout}");
    let (code, stdout, _) = run(&["stats", "database"]);
    assert_eq!(code, Some(0));
    assert!(stdout.contains("tps") && stdout.contains("max_connections"), "{stdout}");
    let (code, _, stderr) = run(&["stats", "slow-queries"]);
    assert_eq!(code, Some(1), "not enabled here: a failed request");
    assert!(stderr.contains("CREATE EXTENSION pg_stat_statements"), "{stderr}");
    let (code, _, stderr) = run(&["stats", "slow-queries", "--order", "fastest"]);
    assert_eq!(code, Some(2), "{stderr}");
    app.stop().await;
}

#[tokio::test]
async fn on_the_managed_instance_slow_queries_work_out_of_the_box_and_disk_is_reported() {
    let app = crate::helpers::spawn_managed_app(|_| {}).await;
    app.rows("CREATE TABLE IF NOT EXISTS managed_t (id int)", json!([])).await;
    for i in 0..3 {
        app.rows("INSERT INTO managed_t VALUES ($1)", json!([i])).await;
    }
    let (status, statements) = app.get("/stats/slow-queries?order=calls").await;
    assert_eq!(status, StatusCode::OK, "dbagent created pg_stat_statements itself: {statements}");
    assert!(statements.as_array().unwrap().iter().any(|q| q["query"].as_str().is_some_and(|t| t.contains("managed_t"))), "{statements}");
    let (_, database) = app.get("/stats/database").await;
    assert!(database["disk"]["free_bytes"].as_u64().unwrap() > 0, "{database}");
    let (_, system) = app.get("/stats/system").await;
    assert_eq!(system["database_host"], true);
    assert!(system["disk"]["total_bytes"].as_u64().unwrap() > 0, "{system}");
    app.stop().await;
}
