//! `/schema` and `/schema/{table}` on the pagila sample schema.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

fn find<'a>(items: &'a Value, key: &str, name: &str) -> &'a Value {
    items.as_array().unwrap().iter().find(|i| i[key] == json!(name)).unwrap_or_else(|| panic!("{name} not in {items}"))
}

#[tokio::test]
async fn schema_lists_tables_views_and_partitions_with_sizes() {
    let app = spawn_app().await;
    app.db.load_pagila().await;
    app.setup("ANALYZE").await;
    let (status, body) = app.get("/schema").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tables = &body["tables"];
    let film = find(tables, "name", "film");
    assert_eq!(film["schema"], json!("public"));
    assert_eq!(film["kind"], json!("table"));
    assert!(film["total_bytes"].as_i64().unwrap() > 0);
    assert_eq!(film["row_estimate"], json!(0));
    assert_eq!(find(tables, "name", "payment")["kind"], json!("partitioned table"));
    assert_eq!(find(tables, "name", "payment_p2022_01")["is_partition"], json!(true));
    assert_eq!(find(tables, "name", "rental_by_category")["kind"], json!("materialized view"));
    assert_eq!(find(tables, "name", "actor_info")["kind"], json!("view"));
}

#[tokio::test]
async fn one_table_shows_columns_indexes_constraints_and_foreign_keys() {
    let app = spawn_app().await;
    app.db.load_pagila().await;
    let (status, body) = app.get("/schema/film").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["table"], json!("film"));
    let film_id = find(&body["columns"], "column_name", "film_id");
    assert_eq!(film_id["data_type"], json!("integer"));
    assert_eq!(film_id["is_nullable"], json!("NO"));
    assert!(film_id["column_default"].as_str().unwrap().starts_with("nextval("));
    let rating = find(&body["columns"], "column_name", "rating");
    assert_eq!(rating["type"], json!("mpaa_rating"));
    assert_eq!(rating["data_type"], json!("USER-DEFINED"));
    let release_year = find(&body["columns"], "column_name", "release_year");
    assert_eq!(release_year["type"], json!("year"));
    assert!(find(&body["indexes"], "name", "film_pkey")["is_primary"].as_bool().unwrap());
    assert_eq!(find(&body["indexes"], "name", "film_fulltext_idx")["method"], json!("gist"));
    let fk = find(&body["foreign_keys"], "name", "film_language_id_fkey");
    assert_eq!(fk["referenced_table"], json!("language"));
    assert_eq!(fk["columns"], json!(["language_id"]));
    assert_eq!(fk["referenced_columns"], json!(["language_id"]));
    assert_eq!(fk["on_delete"], json!("RESTRICT"));
    assert_eq!(find(&body["constraints"], "name", "film_pkey")["type"], json!("primary key"));
}

#[tokio::test]
async fn qualified_and_quoted_names_resolve_and_nothing_can_inject() {
    let app = spawn_app().await;
    app.setup(r#"CREATE SCHEMA sales; CREATE TABLE sales."Order Items" (id int PRIMARY KEY); CREATE TABLE victim (id int);"#).await;
    let (status, body) = app.get("/schema/sales.%22Order%20Items%22").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["schema"].clone(), body["table"].clone()), (json!("sales"), json!("Order Items")));
    for evil in ["victim;DROP%20TABLE%20victim", "victim'%20OR%20'1'='1", "%22victim%22;%20DROP%20TABLE%20victim;--"] {
        let (status, body) = app.get(&format!("/schema/{evil}")).await;
        assert!(status == StatusCode::NOT_FOUND || status == StatusCode::BAD_REQUEST, "{evil}: {status} {body}");
        assert_eq!(body["success"], json!(false));
    }
    assert_eq!(app.get("/schema/victim").await.0, StatusCode::OK, "the table must still exist");
    let (status, body) = app.get("/schema/no_such_table").await;
    assert_eq!((status, body["error"]["code"].clone()), (StatusCode::NOT_FOUND, json!("table_not_found")));
}
