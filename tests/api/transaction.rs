//! `/transaction`: atomic, isolated, retried on conflicts.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn statements_commit_together_with_per_statement_results() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE users (id serial PRIMARY KEY, name text); CREATE TABLE sessions (user_id int, token text);").await;
    let (status, body) = app
        .post(
            "/transaction",
            &json!({"queries": [
                {"sql": "INSERT INTO users (name) VALUES ($1) RETURNING id", "params": ["Alice"]},
                {"sql": "INSERT INTO sessions (user_id, token) VALUES ($1, $2)", "params": [1, "abc123"]},
                {"sql": "SELECT count(*) AS n FROM sessions"}
            ], "isolation_level": "repeatable_read"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], json!(true));
    assert_eq!(body["queries_executed"], json!(3));
    assert_eq!(body["retries"], json!(0));
    assert_eq!(body["isolation_level"], json!("repeatable_read"));
    assert_eq!(body["results"][0]["rows"], json!([{"id": 1}]));
    assert_eq!(body["results"][1]["row_count"], json!(1));
    assert_eq!(body["results"][2]["rows"], json!([{"n": 1}]));
}

#[tokio::test]
async fn a_failing_statement_rolls_back_the_whole_transaction() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY)").await;
    let (status, body) = app
        .post("/transaction", &json!({"queries": [
            {"sql": "INSERT INTO t VALUES (1)"},
            {"sql": "INSERT INTO t VALUES (2)"},
            {"sql": "INSERT INTO t VALUES (1)"}
        ]}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["statement_index"], json!(2));
    assert_eq!(body["error"]["sqlstate"], json!("23505"));
    assert_eq!(app.rows("SELECT count(*) AS n FROM t", json!([])).await[0]["n"], json!(0));
}

#[tokio::test]
async fn a_bad_statement_anywhere_is_refused_before_anything_runs() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE t (id int)").await;
    for bad in ["COMMIT", "SELEC 1", "SET search_path = x"] {
        let (status, body) = app
            .post("/transaction", &json!({"queries": [{"sql": "INSERT INTO t VALUES (1)"}, {"sql": bad}]}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["statement_index"], json!(1));
    }
    let (status, _) = app.post("/transaction", &json!({"queries": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(app.rows("SELECT count(*) AS n FROM t", json!([])).await[0]["n"], json!(0));
}

#[tokio::test]
async fn a_read_only_transaction_refuses_writes_and_savepoints_work() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE t (id int)").await;
    let (status, body) = app
        .post("/transaction", &json!({"queries": [{"sql": "INSERT INTO t VALUES (1)"}], "read_only": true}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["sqlstate"], json!("25006"));
    let (status, body) = app
        .post("/transaction", &json!({"queries": [
            {"sql": "INSERT INTO t VALUES (1)"},
            {"sql": "SAVEPOINT s"},
            {"sql": "INSERT INTO t VALUES (2)"},
            {"sql": "ROLLBACK TO SAVEPOINT s"},
            {"sql": "SET LOCAL statement_timeout = '5s'"}
        ]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.rows("SELECT array_agg(id) AS ids FROM t", json!([])).await[0]["ids"], json!([1]));
}

/// Concurrent SERIALIZABLE transfers between a few accounts conflict constantly; every one
/// must still commit (after retries) and money is neither made nor lost.
#[tokio::test]
async fn concurrent_serializable_transfers_all_commit_and_keep_the_total() {
    let app = spawn_app_with(|c| {
        c.transactions.max_retries = 50;
        c.postgresql.connection_pool.max_size = 16;
        // Ring-shaped transfers deadlock; each deadlock takes deadlock_timeout (1 s) to detect.
        c.postgresql.connection_pool.timeout = 60.0;
    })
    .await;
    app.setup("CREATE TABLE accounts (id int PRIMARY KEY, balance numeric NOT NULL); INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 4) g;").await;
    let transfers = 40;
    let mut tasks = Vec::new();
    for i in 0..transfers {
        let (http, address) = (app.http.clone(), app.address.clone());
        tasks.push(tokio::spawn(async move {
            let (from, to) = (i % 4 + 1, (i + 1) % 4 + 1);
            let body = json!({"isolation_level": "serializable", "queries": [
                {"sql": "SELECT balance FROM accounts WHERE id = $1", "params": [from]},
                {"sql": "UPDATE accounts SET balance = balance - $2 WHERE id = $1", "params": [from, 10]},
                {"sql": "UPDATE accounts SET balance = balance + $2 WHERE id = $1", "params": [to, 10]},
                {"sql": "SELECT sum(balance) AS total FROM accounts"}
            ]});
            let response = http.post(format!("{address}/transaction")).json(&body).send().await.unwrap();
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap();
            (status, body)
        }));
    }
    let mut retries = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        retries += body["retries"].as_u64().unwrap();
    }
    let rows = app.rows("SELECT sum(balance)::text AS total FROM accounts", json!([])).await;
    assert_eq!(rows[0]["total"], json!("4000"));
    assert!(retries > 0, "expected some serialization failures to be retried");
    let (_, health) = app.get("/health").await;
    assert_eq!(health["statistics"]["transactions_executed"], json!(transfers));
}

#[tokio::test]
async fn conflicts_past_max_retries_answer_409() {
    let app = spawn_app_with(|c| c.transactions.max_retries = 1).await;
    // A serialization failure that recurs on every attempt.
    let (status, body) = app
        .post("/transaction", &json!({"queries": [
            {"sql": "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'forced serialization failure'; END $$"}
        ]}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], json!("retries_exhausted"));
    assert_eq!(body["error"]["sqlstate"], json!("40001"));
}

#[tokio::test]
async fn query_with_transaction_true_runs_in_a_transaction() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE t (id int)").await;
    let (status, body) = app
        .post("/query", &json!({"sql": "INSERT INTO t VALUES (1) RETURNING id", "transaction": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"], json!([{"id": 1}]));
    assert_eq!(body["retries"], json!(0));
}

/// A COMMIT the server carried out but whose answer never arrived: reported as
/// `outcome_unknown` (502), never re-run, so the write is there exactly once.
#[cfg(feature = "failpoints")]
#[tokio::test]
async fn a_lost_commit_answer_is_reported_as_unknown_and_never_retried() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE lost_commit (id int)").await;
    dbagent::failpoints::arm("txn-commit-answer-lost", "lost_commit", 1);
    let (status, body) = app.post("/transaction", &json!({"queries": [{"sql": "INSERT INTO lost_commit VALUES (1)"}]})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::BAD_GATEWAY, Some("outcome_unknown")), "{body}");
    let rows = app.rows("SELECT count(*) AS n FROM lost_commit", json!([])).await;
    assert_eq!(rows, vec![json!({"n": 1})], "committed once, not retried");
    let (status, _) = app.post("/transaction", &json!({"queries": [{"sql": "INSERT INTO lost_commit VALUES (2)"}]})).await;
    assert_eq!(status, StatusCode::OK, "the failpoint fires once; the pool recovered");
}
