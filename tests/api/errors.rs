//! Bad input gets a 4xx in one JSON shape with PostgreSQL's diagnostics, and changes nothing.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn bad_requests_get_clear_400s() {
    let app = spawn_app().await;
    let cases = [
        ("not json", "invalid_request"),
        ("{}", "invalid_request"),
        (r#"{"sql": "SELECT 1", "parmas": []}"#, "invalid_request"),
        (r#"{"sql": 5}"#, "invalid_request"),
        (r#"{"sql": ""}"#, "invalid_sql"),
        (r#"{"sql": "SELECT 1; SELECT 2"}"#, "invalid_sql"),
        (r#"{"sql": "SET search_path = evil"}"#, "statement_not_allowed"),
        (r#"{"sql": "BEGIN"}"#, "statement_not_allowed"),
        (r#"{"sql": "SELECT $1::int", "params": []}"#, "invalid_parameters"),
        (r#"{"sql": "SELECT $1::int", "params": [1, 2]}"#, "invalid_parameters"),
        (r#"{"sql": "SELECT $1::int", "params": [{"a": 1}]}"#, "invalid_parameters"),
        (r#"{"sql": "SELECT $1::int", "params": [1.5]}"#, "invalid_parameters"),
    ];
    for (body, code) in cases {
        let (status, answer) = app.post_raw("/query", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["success"], json!(false), "{body}");
        assert_eq!(answer["error"]["code"], json!(code), "{body}: {answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn server_errors_carry_sqlstate_message_detail_hint_and_position() {
    let app = spawn_app().await;
    let (status, body) = app.query("SELECT nope FROM pg_class", json!([])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["sqlstate"], json!("42703"));
    assert_eq!(body["error"]["position"], json!(8));

    let (status, body) = app.query("SELECT * FROM missing_table", json!([])).await;
    assert_eq!((status, body["error"]["sqlstate"].clone()), (StatusCode::BAD_REQUEST, json!("42P01")));

    let (status, body) = app.query("SELECT $1::int", json!(["twelve"])).await;
    assert_eq!((status, body["error"]["sqlstate"].clone()), (StatusCode::BAD_REQUEST, json!("22P02")));

    let (status, body) = app.query("SELEC 1", json!([])).await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::BAD_REQUEST, json!("syntax_error")));
    assert_eq!(body["error"]["position"], json!(1));

    app.setup("CREATE TABLE u (id int PRIMARY KEY)").await;
    app.query("INSERT INTO u VALUES (1)", json!([])).await;
    let (status, body) = app.query("INSERT INTO u VALUES ($1)", json!([1])).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["sqlstate"], json!("23505"));
    assert_eq!(body["error"]["code"], json!("constraint_violation"));
    assert!(body["error"]["detail"].as_str().unwrap().contains("already exists"), "{body}");

    let (_, body) = app.query("SELECT * FROM pg_class WHERE relname = 1", json!([])).await;
    assert!(body["error"]["hint"].is_string(), "{body}");
}

#[tokio::test]
async fn a_failed_statement_changes_nothing() {
    let app = spawn_app().await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)").await;
    let (status, _) = app.query("INSERT INTO t VALUES (2), (1)", json!([])).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(app.rows("SELECT count(*) AS n FROM t", json!([])).await[0]["n"], json!(1));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_shape() {
    let app = spawn_app().await;
    let (status, body) = app.get("/nope").await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::NOT_FOUND, json!("not_found")));
    let (status, body) = app.get("/query").await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::METHOD_NOT_ALLOWED, json!("method_not_allowed")));
}
