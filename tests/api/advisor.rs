//! The advisor against real plans: every rule once where it fires and once where it must not,
//! index suggestions with and without HypoPG, upkeep reports and actions.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_managed_app};

/// `events`: 200k rows; user_id has 10k values, kind 100, amount 0..999; a wide payload.
async fn events(app: &TestApp) {
    app.setup(
        "CREATE TABLE events (id bigserial PRIMARY KEY, user_id int NOT NULL, kind text NOT NULL,
                              created_at timestamptz NOT NULL, amount int NOT NULL, payload text);
         INSERT INTO events (user_id, kind, created_at, amount, payload)
           SELECT i % 10000, 'k' || (i % 100), timestamptz '2023-01-01' + i * interval '5 minutes', (i * 7) % 1000, repeat('x', 250)
           FROM generate_series(1, 200000) i;
         ANALYZE events;",
    )
    .await;
}

async fn optimize(app: &TestApp, sql: &str, params: Value) -> Value {
    let (status, body) = app.post("/optimize", &json!({"sql": sql, "params": params})).await;
    assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    body
}

fn rules(report: &Value) -> Vec<String> {
    report["findings"].as_array().unwrap().iter().map(|s| s["rule"].as_str().unwrap().to_string()).collect()
}

fn suggestion<'a>(report: &'a Value, rule: &str) -> &'a Value {
    report["findings"].as_array().unwrap().iter().find(|s| s["rule"] == rule).unwrap_or_else(|| panic!("no {rule} in {report:#}"))
}

#[tokio::test]
async fn a_selective_seq_scan_gets_an_index_that_turns_it_into_an_index_scan() {
    let app = spawn_app().await;
    events(&app).await;
    let sql = "SELECT id FROM events WHERE user_id = $1";
    let report = optimize(&app, sql, json!([42])).await;
    assert!(report["plan"].to_string().contains("\"Seq Scan\""), "{report:#}");
    assert!(report["execution_time_ms"].as_f64().is_some() && report["planning_time_ms"].as_f64().is_some());
    let rule = suggestion(&report, "seq_scan_large_table");
    let fix = rule["fix"].as_str().unwrap();
    assert_eq!(fix, "CREATE INDEX CONCURRENTLY ON \"public\".\"events\" (\"user_id\");");
    assert!(rule["reason"].as_str().unwrap().contains("200,000"), "{rule}");
    // HypoPG validated the same index: the planner's cost at least halves.
    let hypo = &report["index_suggestions"][0];
    assert_eq!((hypo["validated_with"].as_str(), hypo["columns"].clone()), (Some("hypopg"), json!(["user_id"])), "{report:#}");
    assert!(hypo["cost_after"].as_f64().unwrap() * 2.0 <= hypo["cost_before"].as_f64().unwrap(), "{hypo}");
    assert!(hypo["estimated_bytes"].as_i64().unwrap() > 0);

    // Not selective: every row qualifies, no index would help.
    let report = optimize(&app, "SELECT id FROM events WHERE amount >= 0", json!([])).await;
    assert!(!rules(&report).contains(&"seq_scan_large_table".to_string()), "{report:#}");

    // Apply and measure: the index is built concurrently and the plan changes.
    let (status, applied) = app.post("/indexes", &json!({"action": "apply", "sql": fix, "query": {"sql": sql, "params": [42]}})).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert!(applied["before"]["scans"][0].as_str().unwrap().starts_with("Seq Scan"), "{applied}");
    assert!(!applied["after"]["scans"][0].as_str().unwrap().starts_with("Seq Scan"), "{applied}");
    assert!(applied["after"]["cost"].as_f64().unwrap() < applied["before"]["cost"].as_f64().unwrap());
    let report = optimize(&app, sql, json!([42])).await;
    assert!(!rules(&report).contains(&"seq_scan_large_table".to_string()), "{report:#}");
}

#[tokio::test]
async fn stale_statistics_are_caught_and_analyze_fixes_them() {
    let app = spawn_app().await;
    app.setup(
        "CREATE TABLE t (k int) WITH (autovacuum_enabled = off);
         INSERT INTO t SELECT 1 FROM generate_series(1, 1000); ANALYZE t;
         INSERT INTO t SELECT 2 FROM generate_series(1, 100000);",
    )
    .await;
    let report = optimize(&app, "SELECT count(*) FROM t WHERE k = 2", json!([])).await;
    let rule = suggestion(&report, "row_misestimate");
    assert_eq!(rule["fix"], "ANALYZE \"public\".\"t\";", "{rule}");
    assert!(rule["reason"].as_str().unwrap().contains("changed since the last ANALYZE"), "{rule}");
    let (status, done) = app.post("/indexes", &json!({"action": "analyze", "table": "t"})).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let report = optimize(&app, "SELECT count(*) FROM t WHERE k = 2", json!([])).await;
    assert!(!rules(&report).contains(&"row_misestimate".to_string()), "{report:#}");
}

#[tokio::test]
async fn spills_nested_loops_and_discarding_filters_are_found_only_where_they_happen() {
    let app = spawn_app().await;
    events(&app).await;
    app.setup(
        "CREATE INDEX events_kind ON events (kind);
         CREATE TABLE small (id int, user_id int); INSERT INTO small SELECT i, i FROM generate_series(1, 5000) i; ANALYZE small;",
    )
    .await;

    let spill = optimize(&app, "SELECT payload, id FROM events ORDER BY payload, id", json!([])).await;
    assert!(suggestion(&spill, "spill_to_disk")["fix"].as_str().unwrap().starts_with("SET LOCAL work_mem"), "{spill:#}");
    let small_sort = optimize(&app, "SELECT id FROM small ORDER BY user_id LIMIT 10", json!([])).await;
    assert!(!rules(&small_sort).contains(&"spill_to_disk".to_string()), "{small_sort:#}");

    let lateral = "SELECT x.id FROM generate_series(1, $1::int) g(i), LATERAL (SELECT id FROM small WHERE user_id = g.i LIMIT 1) x";
    let many = optimize(&app, lateral, json!([1500])).await;
    let rule = suggestion(&many, "nested_loop_many_loops");
    assert_eq!(rule["fix"], "CREATE INDEX CONCURRENTLY ON \"public\".\"small\" (\"user_id\");", "{rule}");
    let few = optimize(&app, lateral, json!([10])).await;
    assert!(!rules(&few).contains(&"nested_loop_many_loops".to_string()), "{few:#}");

    let discards = optimize(&app, "SELECT id FROM events WHERE kind = 'k5' AND amount > 995", json!([])).await;
    let rule = suggestion(&discards, "filter_discards_most_rows");
    assert_eq!(rule["fix"], "CREATE INDEX CONCURRENTLY ON \"public\".\"events\" (\"kind\", \"amount\");", "{rule}");
    let keeps = optimize(&app, "SELECT id FROM events WHERE kind = 'k5'", json!([])).await;
    assert!(!rules(&keeps).contains(&"filter_discards_most_rows".to_string()), "{keeps:#}");
}

#[tokio::test]
async fn wrapped_columns_wide_rows_and_unindexed_foreign_keys_are_found_only_where_they_happen() {
    let app = spawn_app().await;
    events(&app).await;
    app.setup(
        "CREATE INDEX events_created ON events (created_at);
         CREATE TABLE users (id int PRIMARY KEY, name text); INSERT INTO users SELECT i, 'u' || i FROM generate_series(1, 20000) i;
         CREATE TABLE orders (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users (id), total int);
         INSERT INTO orders SELECT i, 1 + i % 20000, i FROM generate_series(1, 50000) i; ANALYZE users; ANALYZE orders;",
    )
    .await;

    let wrapped = optimize(&app, "SELECT id FROM events WHERE extract(year FROM created_at) = 2024", json!([])).await;
    assert!(suggestion(&wrapped, "function_on_filtered_column")["fix"].as_str().unwrap().contains(">= '2024-01-01'"), "{wrapped:#}");
    let ranged = optimize(&app, "SELECT id FROM events WHERE created_at >= '2024-01-01' AND created_at < '2025-01-01'", json!([])).await;
    assert!(!rules(&ranged).contains(&"function_on_filtered_column".to_string()), "{ranged:#}");

    let star = optimize(&app, "SELECT * FROM events WHERE user_id < 100", json!([])).await;
    assert_eq!(suggestion(&star, "select_star_wide_rows")["severity"], "low");
    let narrow = optimize(&app, "SELECT id FROM events WHERE user_id < 100", json!([])).await;
    assert!(!rules(&narrow).contains(&"select_star_wide_rows".to_string()), "{narrow:#}");

    let join = "SELECT o.id, u.name FROM orders o JOIN users u ON u.id = o.user_id WHERE u.name = 'u7'";
    let report = optimize(&app, join, json!([])).await;
    assert_eq!(suggestion(&report, "missing_foreign_key_index")["fix"], "CREATE INDEX CONCURRENTLY ON \"public\".\"orders\" (\"user_id\");");
    app.setup("CREATE INDEX orders_user ON orders (user_id)").await;
    let report = optimize(&app, join, json!([])).await;
    assert!(!rules(&report).contains(&"missing_foreign_key_index".to_string()), "{report:#}");
}

#[tokio::test]
async fn explain_analyze_of_a_write_changes_nothing_and_bad_input_is_refused() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE t (id int); INSERT INTO t SELECT generate_series(1, 100)").await;
    let report = optimize(&app, "DELETE FROM t WHERE id > $1", json!([10])).await;
    assert_eq!(report["analyzed"], true);
    assert_eq!(report["plan"]["Node Type"], "ModifyTable", "{report:#}");
    assert_eq!(app.rows("SELECT count(*) AS n FROM t", json!([])).await, vec![json!({"n": 100})]);
    for (body, status) in [
        (json!({"sql": "VACUUM t"}), StatusCode::BAD_REQUEST),
        (json!({"sql": "SELECT FROM nowhere"}), StatusCode::BAD_REQUEST),
        (json!({"sql": "SELECT 1; SELECT 2"}), StatusCode::BAD_REQUEST),
        (json!({"nosql": 1}), StatusCode::BAD_REQUEST),
    ] {
        let (got, answer) = app.post("/optimize", &body).await;
        assert_eq!(got, status, "{body}: {answer}");
    }
    let (status, answer) = app.post("/indexes", &json!({"action": "explode"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, answer) = app.post("/indexes", &json!({"action": "apply", "sql": "DROP TABLE t", "query": {"sql": "SELECT 1"}})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(app.rows("SELECT count(*) AS n FROM t", json!([])).await, vec![json!({"n": 100})]);
}

fn names(answer: &Value) -> Vec<String> {
    answer["indexes"].as_array().unwrap().iter().map(|i| i["index"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn upkeep_finds_duplicate_unused_invalid_and_bloated_indexes_and_never_drops_a_constraint() {
    let app = spawn_app().await;
    app.setup(
        "CREATE TABLE t (id int PRIMARY KEY, code text UNIQUE, x int, y int);
         INSERT INTO t SELECT i, 'c' || i, i % 50, i FROM generate_series(1, 100000) i;
         CREATE INDEX t_x ON t (x); CREATE INDEX t_x_y ON t (x, y); CREATE INDEX t_y ON t (y);
         INSERT INTO t VALUES (100001, 'dup', 1, 1);",
    )
    .await;
    // A failed concurrent build leaves an invalid index behind.
    let direct = app.db.connect().await;
    assert!(direct.batch_execute("CREATE UNIQUE INDEX CONCURRENTLY t_x_unique ON t (x)").await.is_err());
    app.setup("DELETE FROM t WHERE id % 10 <> 0").await;
    app.setup("VACUUM t").await;

    let (_, dups) = app.post("/indexes", &json!({"action": "duplicates", "table": "t"})).await;
    assert_eq!(names(&dups), ["t_x"], "{dups:#}");
    let (_, unused) = app.post("/indexes", &json!({"action": "unused", "table": "t"})).await;
    let unused = names(&unused);
    assert!(unused.contains(&"t_x".to_string()) && !unused.iter().any(|n| n == "t_pkey" || n == "t_code_key"), "{unused:?}");
    let (_, invalid) = app.post("/indexes", &json!({"action": "invalid"})).await;
    assert_eq!(names(&invalid), ["t_x_unique"], "{invalid:#}");
    let (_, bloat) = app.post("/indexes", &json!({"action": "bloat", "table": "t"})).await;
    assert!(names(&bloat).contains(&"t_y".to_string()), "{bloat:#}");

    let (status, refused) = app.post("/indexes", &json!({"action": "drop", "index": "t_pkey"})).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("refused")), "{refused}");
    let (status, missing) = app.post("/indexes", &json!({"action": "drop", "index": "no_such_index"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    let (status, rebuilt) = app.post("/indexes", &json!({"action": "rebuild", "index": "t_y"})).await;
    assert_eq!(status, StatusCode::OK, "{rebuilt}");
    assert!(rebuilt["bytes_after"].as_i64().unwrap() < rebuilt["bytes_before"].as_i64().unwrap(), "{rebuilt}");
    let (status, dropped) = app.post("/indexes", &json!({"action": "drop", "index": "t_x", "table": "t"})).await;
    assert_eq!(status, StatusCode::OK, "{dropped}");
    let (status, created) = app.post("/indexes", &json!({"action": "create", "table": "t", "columns": ["code", "y"]})).await;
    assert_eq!((status, created["index"].as_str()), (StatusCode::OK, Some("t_code_y_idx")), "{created}");
    let (status, _) = app.post("/indexes", &json!({"action": "create", "table": "t", "columns": ["nope"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn suggestions_come_from_pg_stat_statements_validated_with_hypopg_or_estimated_without() {
    // pg_stat_statements needs shared_preload_libraries: a managed instance configures it.
    let app = spawn_managed_app(|_| {}).await;
    app.setup_then_reset_statistics(
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
         CREATE TABLE items (id int PRIMARY KEY, category int NOT NULL, price int NOT NULL);
         INSERT INTO items SELECT i, i % 5000, i % 977 FROM generate_series(1, 100000) i; ANALYZE items;",
    )
    .await;
    for i in 0..5 {
        app.rows("SELECT id FROM items WHERE category = $1", json!([i])).await;
    }
    let (status, found) = app.post("/indexes", &json!({"action": "suggest", "table": "items"})).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let first = &found["suggestions"][0];
    assert_eq!((first["columns"].clone(), first["validated_with"].as_str()), (json!(["category"]), Some("hypopg")), "{found:#}");
    assert_eq!(first["sql"], "CREATE INDEX CONCURRENTLY ON \"public\".\"items\" (\"category\");");
    assert!(first["queries"][0].as_str().unwrap().contains("category"), "{first}");

    let (status, estimated) = app.post("/indexes", &json!({"action": "suggest", "table": "items", "use_hypopg": false})).await;
    assert_eq!(status, StatusCode::OK, "{estimated}");
    let first = &estimated["suggestions"][0];
    assert_eq!((first["validated_with"].as_str(), first["confidence"].as_str()), (Some("statistics"), Some("low")), "{estimated:#}");
    // No hypothetical index, extension or prepared statement is left behind.
    let left = app.rows("SELECT count(*) AS n FROM pg_extension WHERE extname = 'hypopg'", json!([])).await;
    assert_eq!(left, vec![json!({"n": 0})]);
    app.stop().await;
}

#[tokio::test]
async fn an_index_action_with_an_unknown_name_or_fields_is_a_clear_400() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY, x int)").await;
    for (body, says) in [
        (json!({"action": "explode"}), "unknown variant `explode`"),
        (json!({"table": "t"}), "missing field `action`"),
        (json!({"action": "rebuild"}), "rebuild takes index (one index) or table"),
        (json!({"action": "create", "table": "t"}), "missing field `columns`"),
        (json!({"action": "apply", "sql": "CREATE INDEX CONCURRENTLY ON t (x)"}), "missing field `query`"),
        (json!({"action": "analyze", "table": "t", "columns": ["x"]}), "unknown field `columns`"),
    ] {
        let (status, answer) = app.post("/indexes", &body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(says), "{body}: {answer}");
    }
}

#[tokio::test]
async fn creating_an_index_refuses_a_name_past_63_bytes_and_never_touches_an_index_of_the_same_name() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY, x int, y int); CREATE INDEX \"Taken\" ON t (x)").await;
    let long = "é".repeat(32);
    let (status, answer) = app.post("/indexes", &json!({"action": "create", "table": "t", "columns": ["y"], "name": long})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("63 bytes"), "{answer}");
    let (status, answer) = app.post("/indexes", &json!({"action": "create", "table": "t", "columns": ["y"], "name": "Taken"})).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("refused")), "{answer}");
    let kept = app.rows("SELECT indexdef FROM pg_indexes WHERE indexname = 'Taken'", json!([])).await;
    assert_eq!(kept, vec![json!({"indexdef": "CREATE INDEX \"Taken\" ON public.t USING btree (x)"})]);
    let (status, created) = app.post("/indexes", &json!({"action": "create", "table": "t", "columns": ["y"], "name": "it's \"y\""})).await;
    assert_eq!((status, created["index"].as_str()), (StatusCode::OK, Some("it's \"y\"")), "{created}");
}
