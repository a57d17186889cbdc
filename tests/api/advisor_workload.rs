//! Index advice for a whole workload: normalised pg_stat_statements statements of every
//! parameter form advised together (one that cannot be planned listed, not fatal), a set chosen
//! under a budget without redundant indexes, existing indexes respected, and a set applied.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_managed_app};

/// `orders` (200k rows: region 50 values, status 5, total 0..99 999 as bigint, a year of
/// created_at) and `customers` (20k, email).
async fn shop(app: &TestApp) {
    app.setup_counted(
        "CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL);
         INSERT INTO customers SELECT i, 'C' || i || '@Example.com' FROM generate_series(1, 20000) i;
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, region int NOT NULL, status text NOT NULL,
                              total bigint NOT NULL, created_at timestamptz NOT NULL, note text);
         INSERT INTO orders SELECT i, 1 + i % 20000, i % 50, 's' || (i % 5), (i * 7919) % 100000,
                                   now() - (i % 365) * interval '1 day' - (i % 1440) * interval '1 minute', repeat('n', 40)
           FROM generate_series(1, 200000) i;
         ANALYZE customers; ANALYZE orders;",
    )
    .await;
}

fn suggestions(answer: &Value) -> Vec<(String, Vec<String>)> {
    answer["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["table"].as_str().unwrap().to_owned(), s["columns"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect()))
        .collect()
}

#[tokio::test]
async fn workload_mode_advises_normalised_statements_of_every_parameter_form_and_lists_the_one_it_cannot_plan() {
    let app = spawn_managed_app(|_| {}).await;
    app.setup("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; CREATE TABLE gone (id int)").await;
    shop(&app).await;
    app.setup_then_reset_statistics("").await;
    let statements = [
        // A typed literal (recorded as `interval $1`) and a cast constant (`$1::interval`).
        "SELECT id FROM orders WHERE created_at > now() - interval '1 day'",
        "SELECT count(*) FROM orders WHERE created_at > now() - '2 days'::interval",
        // An IN list, ANY, LIMIT, a join, a function predicate.
        "SELECT id FROM orders WHERE customer_id IN (1, 2, 3, 4)",
        "SELECT id FROM orders WHERE customer_id = ANY('{5,6,7}')",
        "SELECT id, total FROM orders WHERE region = 7 ORDER BY total DESC LIMIT 10",
        "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.id = 42",
        "SELECT id FROM customers WHERE lower(email) = 'c5@example.com'",
        // Recorded, then its table goes: it cannot be planned any more.
        "SELECT id FROM gone WHERE id = 1",
    ];
    let client = app.db.connect().await;
    for sql in statements {
        for _ in 0..3 {
            client.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }
    app.setup("DROP TABLE gone").await;
    let recorded = app.rows("SELECT query FROM pg_stat_statements WHERE query LIKE '%interval $%'", json!([])).await;
    assert!(!recorded.is_empty(), "the typed literal is recorded normalised");

    let (status, answer) = app.post("/indexes", &json!({"action": "suggest"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let skipped = answer["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{answer:#}");
    assert!(skipped[0]["sql"].as_str().unwrap().contains("gone") && skipped[0]["reason"].as_str().unwrap().contains("does not exist"), "{answer:#}");
    assert!(answer["statements"].as_u64().unwrap() >= 7, "{answer:#}");
    let found = suggestions(&answer);
    for want in [("orders", "created_at"), ("orders", "customer_id"), ("customers", "lower(email)")] {
        assert!(found.iter().any(|(t, cols)| t == want.0 && cols[0] == want.1), "{want:?} missing: {answer:#}");
    }
    for s in answer["suggestions"].as_array().unwrap() {
        assert!(s["estimated_bytes"].as_i64().unwrap() > 0 && s["validated_with"] == "hypopg", "{s}");
        for served in s["serves"].as_array().unwrap() {
            assert!(served["cost_after"].as_f64().unwrap() < served["cost_before"].as_f64().unwrap(), "{s}");
        }
    }
    assert_eq!(answer["cost_unit"], "ms");
    assert!(answer["total_cost_after"].as_f64().unwrap() < answer["total_cost_before"].as_f64().unwrap(), "{answer:#}");
    assert!(answer["gain_percent"].as_f64().unwrap() > 50.0, "{answer:#}");
    assert!(answer["analysis_ms"].as_u64().unwrap() < 10_000, "{answer:#}");
    // Nothing was created while advising.
    let left = app.rows("SELECT count(*) AS n FROM pg_indexes WHERE tablename IN ('orders', 'customers')", json!([])).await;
    assert_eq!(left, vec![json!({"n": 2})]);
    app.stop().await;
}

const SHAPES: [&str; 2] = [
    "SELECT id FROM orders WHERE region = 3 AND total > 99000",
    "SELECT id, total FROM orders WHERE region = 4 ORDER BY total DESC LIMIT 10",
];

async fn suggest(app: &TestApp, extra: Value) -> Value {
    let mut body = json!({"action": "suggest", "queries": SHAPES.map(|sql| json!({"sql": sql}))});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let (status, answer) = app.post("/indexes", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

#[tokio::test]
async fn one_two_column_index_serving_both_shapes_is_chosen_without_its_redundant_prefix_and_a_small_budget_gets_a_smaller_one() {
    let app = spawn_app().await;
    shop(&app).await;
    let answer = suggest(&app, json!({})).await;
    assert_eq!(suggestions(&answer), [("orders".to_owned(), vec!["region".to_owned(), "total".to_owned()])], "{answer:#}");
    let chosen = &answer["suggestions"][0];
    assert_eq!(chosen["serves"].as_array().unwrap().len(), 2, "{chosen:#}");
    let bytes = chosen["estimated_bytes"].as_i64().unwrap();
    assert_eq!(answer["index_bytes"].as_i64(), Some(bytes));

    let small = suggest(&app, json!({"max_index_bytes": bytes - 1})).await;
    let found = suggestions(&small);
    assert_eq!(found.len(), 1, "{small:#}");
    assert_ne!(found[0].1, ["region", "total"], "{small:#}");
    assert!(small["index_bytes"].as_i64().unwrap() < bytes, "{small:#}");

    let (status, refused) = app.post("/indexes", &json!({"action": "suggest", "max_index_bytes": 0})).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_request")), "{refused}");
}

#[tokio::test]
async fn an_existing_index_or_one_it_prefixes_is_never_proposed_again() {
    let app = spawn_app().await;
    shop(&app).await;
    app.setup("CREATE INDEX orders_region_total ON orders (region, total)").await;
    let answer = suggest(&app, json!({})).await;
    assert!(suggestions(&answer).iter().all(|(_, cols)| cols[0] != "region"), "{answer:#}");
}

#[tokio::test]
async fn applying_a_set_builds_each_index_and_drops_what_a_failed_build_leaves() {
    let app = spawn_app().await;
    shop(&app).await;
    let answer = suggest(&app, json!({})).await;
    let mut set: Vec<Value> = answer["suggestions"].as_array().unwrap().iter().map(|s| s["sql"].clone()).collect();
    // region has 50 values: a unique index on it fails half-way and leaves an invalid index.
    set.push(json!("CREATE UNIQUE INDEX CONCURRENTLY orders_region_unique ON orders (region)"));
    let (status, applied) = app.post("/indexes", &json!({"action": "apply_set", "statements": set})).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!((applied["built"].as_u64(), applied["failed"].as_u64()), (Some(1), Some(1)), "{applied:#}");
    let built = &applied["applied"][0];
    assert_eq!(built["outcome"], "built");
    assert!(built["bytes"].as_i64().unwrap() > 0 && applied["total_bytes"] == built["bytes"], "{applied:#}");
    let failed = &applied["applied"][1];
    assert_eq!(failed["outcome"], "failed");
    assert!(failed["error"].as_str().unwrap().contains("orders_region_unique"), "{applied:#}");
    let indexes = app.rows("SELECT indexrelid::regclass::text AS name, indisvalid AS valid FROM pg_index WHERE indrelid = 'orders'::regclass ORDER BY 1", json!([])).await;
    assert_eq!(indexes, vec![json!({"name": "orders_pkey", "valid": true}), json!({"name": "orders_region_total_idx", "valid": true})]);
    let (status, refused) = app.post("/indexes", &json!({"action": "apply_set", "statements": ["DROP TABLE orders"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
}

#[tokio::test]
async fn an_index_whose_write_cost_outweighs_what_it_saves_is_declined_with_both_figures() {
    let app = spawn_managed_app(|_| {}).await;
    app.setup_then_reset_statistics(
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
         CREATE TABLE logbook (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, kind int NOT NULL, at timestamptz NOT NULL DEFAULT now());
         CREATE TABLE quiet (id int PRIMARY KEY, kind int NOT NULL);
         INSERT INTO quiet SELECT i, i % 1000 FROM generate_series(1, 200000) i;
         ANALYZE quiet;",
    )
    .await;
    // logbook takes 300,000 rows and is read rarely; quiet is read as rarely but never written.
    app.setup_counted("INSERT INTO logbook (kind) SELECT i % 1000 FROM generate_series(1, 300000) i; ANALYZE logbook").await;
    let client = app.db.connect().await;
    for _ in 0..3 {
        client.batch_execute("SELECT id FROM logbook WHERE kind = 7").await.unwrap();
        client.batch_execute("SELECT id FROM quiet WHERE kind = 7").await.unwrap();
    }
    let (status, answer) = app.post("/indexes", &json!({"action": "suggest"})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(suggestions(&answer), [("quiet".to_owned(), vec!["kind".to_owned()])], "{answer:#}");
    let declined = answer["declined"].as_array().unwrap_or_else(|| panic!("{answer:#}"));
    let kind = declined.iter().find(|d| d["table"] == "logbook" && d["columns"] == json!(["kind"])).unwrap_or_else(|| panic!("{answer:#}"));
    assert_eq!(kind["reason"], "write_cost", "{kind}");
    assert!(kind["write_cost"].as_f64().unwrap() > kind["saves"].as_f64().unwrap() && kind["saves"].as_f64().unwrap() > 0.0, "{kind}");
    app.stop().await;
}

#[tokio::test]
async fn a_statement_whose_rows_are_spread_over_the_table_gets_a_covering_index_for_an_index_only_scan() {
    let app = spawn_app().await;
    shop(&app).await;
    // Vacuumed: the visibility map lets the planner count on an index-only scan.
    app.setup("VACUUM ANALYZE orders").await;
    // 4,000 rows of region 7 on every page of the table: an index on region alone still reads
    // most pages; one that holds total as well answers from the index.
    let body = json!({"action": "suggest", "queries": [{"sql": "SELECT sum(total) FROM orders WHERE region = 7"}]});
    let (status, answer) = app.post("/indexes", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let chosen = &answer["suggestions"][0];
    assert_eq!((chosen["columns"].clone(), chosen["include"].clone()), (json!(["region"]), json!(["total"])), "{answer:#}");
    assert_eq!(chosen["sql"], "CREATE INDEX CONCURRENTLY ON \"public\".\"orders\" (\"region\") INCLUDE (\"total\");");
    assert_eq!(answer["suggestions"].as_array().unwrap().len(), 1, "{answer:#}");
}
