//! `POST /seed/generate`: generated rows the database accepts (types, CHECKs, unique and
//! foreign keys, parents first), reproducible with a seed, fast through COPY, and clear
//! refusals that leave nothing behind.

use std::time::Instant;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

async fn count(app: &TestApp, table: &str) -> i64 {
    app.rows(&format!("SELECT count(*) AS n FROM {table}"), json!([])).await[0]["n"].as_i64().unwrap()
}

const SHOP: &str = r#"
    CREATE TYPE plan AS ENUM ('free', 'pro', 'team');
    CREATE TABLE users (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        email text NOT NULL UNIQUE,
        first_name varchar(40) NOT NULL,
        last_name varchar(40) NOT NULL,
        phone varchar(20),
        age int CHECK (age BETWEEN 18 AND 120),
        plan plan NOT NULL,
        status text NOT NULL CHECK (status IN ('active', 'suspended')),
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE resources (
        id serial PRIMARY KEY,
        owner_id bigint NOT NULL REFERENCES users,
        code text NOT NULL UNIQUE CHECK (length(code) <= 24),
        price numeric(7,2) NOT NULL CHECK (price > 0),
        tags text[],
        data jsonb,
        created_at timestamp NOT NULL
    );
"#;

#[tokio::test]
async fn generated_rows_satisfy_the_schema_and_parents_come_first() {
    let app = spawn_app().await;
    app.setup(SHOP).await;
    let (status, body) = app.post("/seed/generate", &json!({"table": "resources", "rows": 500, "seed": 7})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["seed"], 7);
    assert_eq!(body["tables"], json!([{"table": "public.users", "rows": 50, "reason": "parent"}, {"table": "public.resources", "rows": 500, "reason": "requested"}]));
    assert_eq!(count(&app, "users").await, 50);
    assert_eq!(count(&app, "resources").await, 500);
    // Plausible by name; within every CHECK (the database accepted them, and they look right).
    let users = app.rows("SELECT email, first_name, phone, age, created_at FROM users ORDER BY id LIMIT 5", json!([])).await;
    for u in &users {
        assert!(u["email"].as_str().unwrap().ends_with("@example.com"), "{u}");
        assert!(u["first_name"].as_str().unwrap().chars().next().unwrap().is_uppercase(), "{u}");
    }
    // A parent table with rows has its keys reused: no new users.
    let (status, body) = app.post("/seed/generate", &json!({"table": "resources", "rows": 100})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tables"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(count(&app, "users").await, 50);
    let orphans = app.rows("SELECT count(*) AS n FROM resources r WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = r.owner_id)", json!([])).await;
    assert_eq!(orphans[0]["n"], 0);
}

#[tokio::test]
async fn the_same_seed_gives_the_same_rows() {
    let app = spawn_app().await;
    app.setup(SHOP).await;
    let snapshot = "SELECT u.email, u.first_name, u.age, u.plan::text, u.status, r.code, r.price::text, r.tags, r.data, r.created_at
                      FROM resources r JOIN users u ON u.id = r.owner_id ORDER BY r.id";
    let mut runs: Vec<Vec<Value>> = Vec::new();
    for _ in 0..2 {
        app.setup("TRUNCATE resources, users RESTART IDENTITY").await;
        let (status, body) = app.post("/seed/generate", &json!({"table": "resources", "rows": 200, "seed": 42})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        runs.push(app.rows(snapshot, json!([])).await);
    }
    assert_eq!(runs[0].len(), 200);
    assert_eq!(runs[0], runs[1]);
    // --clear empties the table itself first (and restarts its identity).
    let (status, body) = app.post("/seed/generate", &json!({"table": "resources", "rows": 200, "seed": 42, "clear": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cleared"], true);
    assert_eq!(count(&app, "resources").await, 200);
}

#[tokio::test]
async fn a_hundred_thousand_rows_take_seconds() {
    let app = spawn_app().await;
    app.setup(SHOP).await;
    let started = Instant::now();
    let (status, body) = app.post("/seed/generate", &json!({"table": "users", "rows": 100000, "seed": 1})).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(count(&app, "users").await, 100_000);
    let distinct = app.rows("SELECT count(DISTINCT email) AS n FROM users", json!([])).await;
    assert_eq!(distinct[0]["n"], 100_000);
    assert!(took.as_secs_f64() < 20.0, "100,000 rows took {took:?}");
}

#[tokio::test]
async fn pagila_tables_fill_with_composite_keys_and_domains() {
    let app = spawn_app().await;
    app.db.load_pagila().await;
    // film_actor: a two-column primary key made of two foreign keys; film: a domain with a
    // CHECK (year), an enum, a tsvector, arrays.
    let (status, body) = app.post("/seed/generate", &json!({"table": "film_actor", "rows": 300, "seed": 3})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tables: Vec<&str> = body["tables"].as_array().unwrap().iter().map(|t| t["table"].as_str().unwrap()).collect();
    assert_eq!(tables, ["public.actor", "public.language", "public.film", "public.film_actor"], "{body}");
    assert_eq!(count(&app, "film_actor").await, 300);
    // customer → address → city → country, and → store: four levels of parents first.
    let (status, body) = app.post("/seed/generate", &json!({"table": "customer", "rows": 40, "seed": 9})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let tables: Vec<&str> = body["tables"].as_array().unwrap().iter().map(|t| t["table"].as_str().unwrap()).collect();
    assert_eq!(tables, ["public.country", "public.city", "public.address", "public.store", "public.customer"], "{body}");
    assert_eq!(count(&app, "customer").await, 40);
}

#[tokio::test]
async fn what_cannot_be_generated_is_a_clear_4xx_and_changes_nothing() {
    let app = spawn_app().await;
    app.setup(
        "CREATE TABLE spans (id int PRIMARY KEY, starts int NOT NULL, ends int NOT NULL, CONSTRAINT ends_after_start CHECK (ends > starts));
         CREATE TABLE parent (id int PRIMARY KEY); CREATE TABLE child (id int PRIMARY KEY, parent_id int NOT NULL REFERENCES parent);
         INSERT INTO parent VALUES (1);
         CREATE VIEW v AS SELECT 1 AS x;
         CREATE TABLE flags (f bool PRIMARY KEY);
         CREATE TABLE a (id int PRIMARY KEY, b_id int NOT NULL);
         CREATE TABLE b (id int PRIMARY KEY, a_id int NOT NULL REFERENCES a);
         ALTER TABLE a ADD FOREIGN KEY (b_id) REFERENCES b;
         CREATE TABLE teams (id int PRIMARY KEY, lead_id int);
         CREATE TABLE people (id int PRIMARY KEY, team_id int NOT NULL REFERENCES teams);
         ALTER TABLE teams ADD FOREIGN KEY (lead_id) REFERENCES people;",
    )
    .await;
    let (status, body) = app.post("/seed/generate", &json!({"table": "spans", "rows": 100, "seed": 1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "check_unsatisfiable");
    assert!(body["error"]["message"].as_str().unwrap().contains("ends_after_start: CHECK ((ends > starts))"), "{body}");
    assert_eq!(count(&app, "spans").await, 0);

    let (status, body) = app.post("/seed/generate", &json!({"table": "parent", "rows": 5, "clear": true})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "clear_blocked");
    assert!(body["error"]["message"].as_str().unwrap().contains("public.child"), "{body}");
    assert_eq!(count(&app, "parent").await, 1);

    // A cycle of NOT NULL foreign keys cannot be started; one with a nullable column can.
    let (status, body) = app.post("/seed/generate", &json!({"table": "a", "rows": 5})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "cannot_generate");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("cycle") && message.contains("public.a → public.b → public.a"), "{message}");
    assert_eq!(count(&app, "b").await, 0, "nothing of the attempt is left");
    let (status, body) = app.post("/seed/generate", &json!({"table": "people", "rows": 20})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(count(&app, "teams").await, 2);
    assert_eq!(app.rows("SELECT count(*) AS n FROM teams WHERE lead_id IS NULL", json!([])).await[0]["n"], 2);

    let (status, body) = app.post("/seed/generate", &json!({"table": "flags", "rows": 5})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "cannot_generate");

    for (request, code, want) in [
        (json!({"table": "v", "rows": 1}), "not_a_table", StatusCode::BAD_REQUEST),
        (json!({"table": "nope", "rows": 1}), "table_not_found", StatusCode::NOT_FOUND),
        (json!({"table": "spans", "rows": 0}), "invalid_request", StatusCode::BAD_REQUEST),
        (json!({"table": "spans", "rows": 5, "colour": "red"}), "invalid_request", StatusCode::BAD_REQUEST),
    ] {
        let (status, body) = app.post("/seed/generate", &request).await;
        assert_eq!(status, want, "{request}: {body}");
        assert_eq!(body["error"]["code"], code, "{request}: {body}");
    }
}
