//! Bad input gets a 4xx in one JSON shape with PostgreSQL's diagnostics, and changes nothing;
//! an internal failure gets a 500 that names the request and nothing of dbagent's insides.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_app_with};

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

#[tokio::test]
async fn an_internal_error_answers_with_the_request_id_and_no_detail() {
    // Arrange: the backup fails after writing its files, with an I/O error naming its path.
    let location = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("errors-{}", uuid::Uuid::new_v4().simple()));
    let dir = location.clone();
    let app = spawn_app_with(move |c| c.backup.location = dir).await;
    dbagent::failpoints::arm("backup-before-manifest", &app.db.name, 1);
    let id = format!("errors-test-{}", uuid::Uuid::new_v4().simple());

    // Act
    let response = app.http.post(format!("{}/backup", app.address)).header("x-request-id", &id).json(&json!({})).send().await.unwrap();
    let status = response.status();
    let header = response.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_owned());
    let text = response.text().await.unwrap();

    // Assert
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"]["code"], json!("internal_error"), "{text}");
    assert_eq!(body["error"]["message"], json!("internal error"), "{text}");
    assert_eq!(body["error"]["request_id"], json!(id), "{text}");
    assert_eq!(header.as_deref(), Some(id.as_str()));
    let location = location.display().to_string();
    assert!(!text.contains("manifest") && !text.contains(&location) && !text.contains("Interrupted"), "{text}");
    let _ = std::fs::remove_dir_all(&location);
}

#[tokio::test]
async fn every_answer_carries_a_request_id() {
    let app = spawn_app().await;
    let first = app.http.get(format!("{}/health/live", app.address)).send().await.unwrap();
    let second = app.http.post(format!("{}/query", app.address)).body("not json").send().await.unwrap();
    let ids: Vec<String> = [&first, &second]
        .iter()
        .map(|r| r.headers().get("x-request-id").expect("x-request-id").to_str().unwrap().to_owned())
        .collect();
    assert!(ids.iter().all(|id| uuid::Uuid::parse_str(id).is_ok()), "{ids:?}");
    assert_ne!(ids[0], ids[1]);
}
