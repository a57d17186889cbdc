//! `/query`: routing by the parser's classification, limits, timeouts.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn a_query_answers_in_the_seed_shape() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users VALUES (123, 'Alice');").await;
    let (status, body) = app
        .post("/query", &json!({"sql": "SELECT * FROM users WHERE id = $1", "params": [123], "transaction": false, "use_cache": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], json!(true));
    assert_eq!(body["rows"], json!([{"id": 123, "name": "Alice"}]));
    assert_eq!(body["row_count"], json!(1));
    assert_eq!(body["query_type"], json!("select"));
    assert_eq!(body["from_cache"], json!(false));
    assert!(body["execution_time_ms"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn writes_report_affected_rows_and_their_query_type() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE t (id int)").await;
    let (status, body) = app.query("INSERT INTO t SELECT generate_series(1, 5)", json!([])).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["query_type"].clone(), body["row_count"].clone()), (json!("insert"), json!(5)));
    let (_, body) = app.query("UPDATE t SET id = id + 1 WHERE id > $1", json!([2])).await;
    assert_eq!((body["query_type"].clone(), body["row_count"].clone()), (json!("update"), json!(3)));
    let (_, body) = app.query("WITH d AS (DELETE FROM t RETURNING id) SELECT count(*) FROM d", json!([])).await;
    assert_eq!(body["rows"], json!([{"count": 5}]));
}

#[tokio::test]
async fn results_over_max_rows_are_cut_and_say_so() {
    let app = spawn_app_with(|c| c.postgresql.max_rows = 3).await;
    let (status, body) = app.query("SELECT g FROM generate_series(1, 10) g", json!([])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["rows"], json!([{"g": 1}, {"g": 2}, {"g": 3}]));
    assert_eq!(body["truncated"], json!(true));
    assert_eq!(body["row_count"], json!(10));
}

#[tokio::test]
async fn a_read_that_writes_is_rerun_on_the_primary_and_works() {
    let app = spawn_app().await;
    app.setup("CREATE SEQUENCE s").await;
    // Parsed as a SELECT (a read), but nextval writes: the READ ONLY run fails with 25006
    // and the statement is re-run read-write.
    for expected in 1..=2 {
        let rows = app.rows("SELECT nextval('s') AS n", json!([])).await;
        assert_eq!(rows[0]["n"], json!(expected));
    }
}

#[tokio::test]
async fn a_data_modifying_cte_is_routed_as_a_write() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE a (id int)").await;
    let rows = app.rows("WITH t AS (INSERT INTO a VALUES (1) RETURNING id) SELECT id FROM t", json!([])).await;
    assert_eq!(rows, vec![json!({"id": 1})]);
    assert_eq!(app.rows("SELECT count(*) AS n FROM a", json!([])).await[0]["n"], json!(1));
}

#[tokio::test]
async fn the_query_timeout_cancels_the_statement_on_the_server() {
    let app = spawn_app_with(|c| c.postgresql.query_timeout = 1.0).await;
    let started = Instant::now();
    let (status, body) = app.query("SELECT pg_sleep(30) /* dbagent-timeout-probe */", json!([])).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
    assert_eq!(body["error"]["code"], json!("query_timeout"));
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let direct = app.db.connect().await;
    let running: i64 = direct
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%dbagent-timeout-probe%' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(running, 0, "the timed-out statement is still running on the server");
    // The connection is usable afterwards.
    assert_eq!(app.rows("SELECT 1 AS one", json!([])).await[0]["one"], json!(1));
}

#[tokio::test]
async fn duplicate_column_names_are_kept_apart() {
    let app = spawn_app().await;
    let rows = app.rows("SELECT 1 AS a, 2 AS a, 3", json!([])).await;
    assert_eq!(rows[0], json!({"a": 1, "a_2": 2, "?column?": 3}));
}

#[tokio::test]
async fn a_changed_table_does_not_break_its_cached_statement() {
    let app = spawn_app_with(|c| {
        c.postgresql.connection_pool.min_size = 1;
        c.postgresql.connection_pool.max_size = 1;
    })
    .await;
    app.setup("CREATE TABLE t (a int); INSERT INTO t VALUES (1)").await;
    assert_eq!(app.rows("SELECT * FROM t", json!([])).await[0], json!({"a": 1}));
    app.setup("ALTER TABLE t ADD COLUMN b text DEFAULT 'x'").await;
    assert_eq!(app.rows("SELECT * FROM t", json!([])).await[0], json!({"a": 1, "b": "x"}));
}

/// `name -> ms` of a `Server-Timing` header.
fn server_timing(response: &reqwest::Response) -> Vec<(String, f64)> {
    let Some(value) = response.headers().get("server-timing") else { return Vec::new() };
    value
        .to_str()
        .unwrap()
        .split(", ")
        .map(|stage| {
            let (name, dur) = stage.split_once(";dur=").unwrap_or_else(|| panic!("not name;dur=ms: {stage}"));
            (name.to_string(), dur.parse().unwrap_or_else(|_| panic!("not a number: {stage}")))
        })
        .collect()
}

#[tokio::test]
async fn with_server_timing_on_every_answer_says_where_its_time_went() {
    let app = spawn_app_with(|c| c.server.server_timing = true).await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)").await;
    let send = |sql: &'static str| app.http.post(format!("{}/query", app.address)).json(&json!({"sql": sql, "params": []})).send();
    // A statement that takes 200 ms on the server: the time is in `db`, not elsewhere.
    let response = send("SELECT pg_sleep(0.2)::text AS slept").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let stages = server_timing(&response);
    let names: Vec<&str> = stages.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["read", "classify", "acquire", "db", "json", "total"], "{stages:?}");
    let ms = |name: &str| stages.iter().find(|(n, _)| n == name).unwrap().1;
    assert!(ms("db") >= 200.0 && ms("db") < 2000.0, "{stages:?}");
    let parts: f64 = stages.iter().filter(|(n, _)| n != "total").map(|(_, ms)| ms).sum();
    assert!(parts <= ms("total") + 0.01 && ms("total") - parts < 50.0, "the stages add up to the total: {stages:?}");
    // Errors and other routes carry the total.
    let response = send("SELECT * FROM missing").await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(server_timing(&response).iter().any(|(n, _)| n == "total"));
    let response = app.http.get(format!("{}/health", app.address)).send().await.unwrap();
    assert!(server_timing(&response).iter().any(|(n, _)| n == "total"));
}

#[tokio::test]
async fn without_server_timing_no_answer_carries_the_header() {
    let app = spawn_app().await;
    let response = app.http.post(format!("{}/query", app.address)).json(&json!({"sql": "SELECT 1 AS one"})).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("server-timing").is_none());
}
