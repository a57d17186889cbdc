//! `GET /metrics` and `/metrics/history`: dbagent's own series move with traffic, the
//! database series carry postgres_exporter's names, the output passes `promtool check
//! metrics`, seed 000's second listener, and the history written, read and pruned.

use std::time::{Duration, Instant};

use dbagent::app::{Agent, Serving};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, spawn_app_on, spawn_app_with, test_config, wait_until};

/// Monitoring on, collecting every second.
fn fast(config: &mut dbagent::config::Config) {
    config.monitoring.enable = true;
    config.monitoring.collect_interval = 1.0;
    config.monitoring.detail_interval = 1.0;
    config.monitoring.sample_interval = 1.0;
}

async fn scrape(app: &TestApp) -> String {
    let response = app.http.get(format!("{}/metrics", app.address)).send().await.expect("scrape");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    response.text().await.expect("body")
}

/// The value of the sample `name{labels}` whose labels include all of `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, v) = line.rsplit_once(' ')?;
        let (n, rest) = series.split_once('{').unwrap_or((series, ""));
        if n != name || !labels.iter().all(|(k, val)| rest.contains(&format!("{k}=\"{val}\""))) {
            return None;
        }
        v.parse().ok()
    })
}

/// Runs `promtool check metrics` on `text`; a missing promtool fails the test (it is
/// installed by scripts/setup.sh), never skips it.
fn promtool_check(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is missing: run scripts/setup.sh (Debian package `prometheus`)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn metrics_move_with_traffic_use_postgres_exporter_names_and_pass_promtool() {
    let app = spawn_app_with(fast).await;
    app.setup("CREATE TABLE orders (id int PRIMARY KEY, total numeric); INSERT INTO orders SELECT g, g FROM generate_series(1, 50) g").await;
    let before = scrape(&app).await;
    let selects = |t: &str| value(t, "dbagent_statements_total", &[("query_type", "select"), ("served_by", "primary"), ("outcome", "ok")]);
    let query_posts = |t: &str| value(t, "dbagent_http_requests_total", &[("route", "/query"), ("method", "POST"), ("status", "2xx")]);

    for i in 0..5 {
        app.rows("SELECT total FROM orders WHERE id = $1", json!([i + 1])).await;
    }
    let (status, _) = app.query("SELECT * FROM no_such_table", json!([])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.rows("UPDATE orders SET total = total + 1 WHERE id = 1", json!([])).await;

    let db = app.db.name.clone();
    let mut text = String::new();
    wait_until("the collector reads the tables and statistics", Duration::from_secs(15), async || {
        text = scrape(&app).await;
        value(&text, "pg_stat_user_tables_n_live_tup", &[("relname", "orders")]) == Some(50.0)
            && value(&text, "pg_stat_database_xact_commit", &[("datname", &db)]).is_some_and(|v| v > 0.0)
    })
    .await;
    assert_eq!(selects(&text).unwrap_or(0.0) - selects(&before).unwrap_or(0.0), 5.0, "five selects counted");
    assert!(query_posts(&text).unwrap_or(0.0) - query_posts(&before).unwrap_or(0.0) >= 6.0);
    assert_eq!(value(&text, "dbagent_http_requests_total", &[("route", "/query"), ("status", "4xx")]), Some(1.0));
    assert_eq!(value(&text, "dbagent_statements_total", &[("query_type", "select"), ("served_by", "none"), ("outcome", "error")]), Some(1.0));
    assert_eq!(value(&text, "dbagent_statements_total", &[("query_type", "update"), ("outcome", "ok")]), Some(1.0));
    assert!(value(&text, "dbagent_http_request_duration_seconds_count", &[("route", "/query")]).is_some_and(|n| n >= 7.0));
    assert!(text.contains("dbagent_http_request_duration_seconds_bucket{route=\"/query\",le=\"0.0001\"}"));
    for (name, labels) in [
        ("pg_up", vec![]),
        ("pg_stat_activity_count", vec![("datname", db.as_str()), ("state", "active")]),
        ("pg_locks_count", vec![("datname", db.as_str()), ("mode", "accessexclusivelock")]),
        ("pg_settings_max_connections", vec![]),
        ("pg_database_size_bytes", vec![("datname", db.as_str())]),
        ("pg_stat_database_blks_hit", vec![("datname", db.as_str())]),
        ("pg_stat_archiver_archived_count", vec![]),
        ("pg_replication_is_replica", vec![]),
        ("dbagent_pool_max_connections", vec![("pool", "primary")]),
        ("dbagent_auth_failures_total", vec![("reason", "forbidden_ip")]),
        ("dbagent_rate_limited_total", vec![]),
        ("dbagent_collector_runs_total", vec![]),
    ] {
        assert!(value(&text, name, &labels).is_some(), "{name} {labels:?} missing");
    }
    assert_eq!(value(&text, "pg_up", &[]), Some(1.0));
    assert!(text.contains("pg_stat_bgwriter_") || text.contains("pg_stat_checkpointer_"));
    promtool_check(&text);
    app.stop().await;
}

#[tokio::test]
async fn every_listed_route_is_a_route() {
    let app = spawn_app_with(|_| {}).await;
    for route in dbagent::api::route_paths() {
        let path = route.replace("{table}", "t").replace("{id}", "x");
        let response = app.http.get(format!("{}{path}", app.address)).send().await.unwrap();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_ne!(body["error"]["message"], "no such endpoint", "{route} is listed in api::ROUTES but is not a route");
    }
    let text = scrape(&app).await;
    assert!(value(&text, "dbagent_http_requests_total", &[("route", "unmatched")]).is_none(), "a route missing from api::ROUTES");
}

#[tokio::test]
async fn a_scrape_of_a_thousand_tables_renders_cached_values_quickly() {
    let app = spawn_app_with(|c| {
        fast(c);
        c.monitoring.top_tables = 1000;
    })
    .await;
    app.setup("DO $$ BEGIN FOR i IN 1..1000 LOOP EXECUTE format('CREATE TABLE t%s (id int)', i); END LOOP; END $$").await;
    wait_until("the collector reads 1000 tables", Duration::from_secs(30), async || {
        scrape(&app).await.matches("pg_stat_user_tables_n_live_tup{").count() == 1000
    })
    .await;
    let mut fastest = Duration::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        let text = scrape(&app).await;
        fastest = fastest.min(started.elapsed());
        assert!(text.len() > 1_000_000, "{} bytes", text.len());
    }
    eprintln!("scrape of 1000 tables over HTTP: {fastest:?}");
    assert!(fastest < Duration::from_millis(100), "a scrape took {fastest:?}: it must only copy cached text");
    app.stop().await;
}

#[tokio::test]
async fn seed_000s_prometheus_port_serves_metrics_on_a_listener_of_its_own() {
    let db = TestDb::create().await;
    let mut config = test_config(&db.url);
    let yaml = "monitoring:\n  prometheus:\n    enable: true\n    port: 9090\n";
    let parsed: dbagent::config::Config = serde_norway::from_str(yaml).expect("seed 000's keys are accepted as written");
    assert_eq!(parsed.monitoring.prometheus.port, Some(9090));
    config.monitoring.prometheus.port = Some(0);
    let agent = Agent::start(config).await.expect("start");
    let serving = Serving::start(&agent).await.expect("serve");
    let metrics = serving.metrics_address().expect("a /metrics listener");
    assert_ne!(metrics.port(), serving.address().port());
    let http = reqwest::Client::new();
    let text = http.get(format!("http://{metrics}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("dbagent_build_info"), "{text}");
    let other = http.get(format!("http://{metrics}/query")).send().await.unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND, "only /metrics on the metrics port");
    serving.until(async {}).await.unwrap();
    agent.stop().await;
    assert!(http.get(format!("http://{metrics}/metrics")).send().await.is_err(), "the listener stops with the API");
}

#[tokio::test]
async fn the_history_is_sampled_read_as_aligned_series_and_pruned_by_one_agent() {
    let app = spawn_app_with(fast).await;
    let client = app.db.connect().await;
    let rows = "SELECT count(*) AS n, count(DISTINCT agent_id) AS agents FROM dbagent.metrics_history WHERE resolution = 0";
    wait_until("samples are written", Duration::from_secs(15), async || {
        app.rows("SELECT 1", json!([])).await;
        match client.query_one(rows, &[]).await {
            Ok(row) => row.get::<_, i64>("n") >= 3,
            Err(_) => false,
        }
    })
    .await;

    let (status, raw) = app.get("/metrics/history?series=requests_per_second,latency_p99_ms,tps&hours=1&step=1").await;
    assert_eq!(status, StatusCode::OK, "{raw}");
    assert_eq!(raw["resolution"], "raw");
    let timestamps = raw["timestamps"].as_array().unwrap();
    assert!(timestamps.len() >= 3600, "{}", timestamps.len());
    assert!(timestamps.windows(2).all(|w| w[1].as_i64().unwrap() - w[0].as_i64().unwrap() == 1));
    let series = raw["series"].as_array().unwrap();
    assert_eq!(series.len(), 3);
    for s in series {
        assert_eq!(s["values"].as_array().unwrap().len(), timestamps.len(), "aligned: {}", s["name"]);
    }
    let requests = series[0]["values"].as_array().unwrap();
    assert!(requests.iter().any(|v| v.as_f64().is_some_and(|v| v > 0.0)), "requests were sampled");
    assert_eq!(series[0]["unit"], "1/s");

    let (status, minute) = app.get("/metrics/history?hours=24&step=60").await;
    assert_eq!(status, StatusCode::OK, "{minute}");
    assert_eq!(minute["resolution"], "1m");
    let last_points = |h: &Value, name: &str| -> usize {
        let s = h["series"].as_array().unwrap().iter().find(|s| s["name"] == name).unwrap().clone();
        s["values"].as_array().unwrap().iter().rev().take(3).filter(|v| !v.is_null()).count()
    };
    assert!(last_points(&minute, "pool_utilization_pct") > 0, "the 1-minute rollup is current: {minute}");
    let (status, hour) = app.get("/metrics/history?hours=168&step=3600&series=connections_active").await;
    assert_eq!((status, hour["resolution"].as_str()), (StatusCode::OK, Some("1h")));
    assert!(last_points(&hour, "connections_active") > 0, "{hour}");

    for bad in ["?series=nope", "?hours=0", "?hours=1&step=0.5", "?hours=9999", "?bogus=1", "?hours=168&step=1"] {
        let (status, body) = app.get(&format!("/metrics/history{bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{bad}");
    }

    // Rows past retention, from an agent long gone: a second agent on the same database
    // prunes them as soon as it leads (one lock for all agents).
    client
        .batch_execute(
            "INSERT INTO dbagent.metrics_history VALUES
               ('gone:1', 0, now() - interval '30 hours', 1, '{}', '{}'),
               ('gone:1', 60, now() - interval '3 hours', 1, '{}', '{}'),
               ('gone:1', 60, now() - interval '30 minutes', 1, '{\"tps\": 1}', '{\"tps\": 1}')",
        )
        .await
        .unwrap();
    let second = spawn_app_on(TestDb::existing(&app.db.url), |c| {
        fast(c);
        c.monitoring.retention_hours = 2;
    })
    .await;
    let gone = "SELECT count(*) AS n FROM dbagent.metrics_history WHERE agent_id = 'gone:1'";
    wait_until("the leader prunes past retention", Duration::from_secs(15), async || {
        client.query_one(gone, &[]).await.unwrap().get::<_, i64>("n") == 1
    })
    .await;
    wait_until("both agents write with their ids", Duration::from_secs(15), async || {
        client.query_one(rows, &[]).await.unwrap().get::<_, i64>("agents") >= 2
    })
    .await;
    let (_, both) = app.get("/metrics/history?hours=1&step=60&series=tps,pool_active").await;
    assert!(both["agents"].as_array().unwrap().len() >= 3, "{both}");
    second.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let app = spawn_app_with(|c| c.monitoring.prometheus.enable = false).await;
    let (status, body) = app.get("/metrics").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    app.stop().await;
}
