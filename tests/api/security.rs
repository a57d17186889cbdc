//! Access control and audit, against real PostgreSQL over real HTTP: every route needs a key
//! (the router's own table is walked), scopes are enforced by PostgreSQL roles whatever SQL is
//! crafted, revocation reaches another agent within a second, limits answer 429, and the audit
//! log records who did what, survives a restart, and loses nothing when its queue is full.

use std::time::Duration;

use dbagent::api::auth::ROUTES;
use dbagent::config::{Config, KeysRequired, Secret};
use dbagent::security::Access;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_on, spawn_app_with, wait_until, TestDb};

const ADMIN: &str = "bootstrap-admin-key-for-the-security-tests-0123456789";

fn keyed(c: &mut Config) {
    c.security.api_keys_required = KeysRequired::Yes;
    c.security.admin_key = Some(Secret::new(ADMIN));
}

async fn call(app: &TestApp, method: &str, path: &str, key: Option<&str>, body: Option<&Value>) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let url = format!("{}{path}", app.address);
    let mut request = match method {
        "GET" => app.http.get(url),
        "DELETE" => app.http.delete(url),
        "PATCH" => app.http.patch(url),
        _ => app.http.post(url),
    };
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("request");
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)), headers)
}

async fn query(app: &TestApp, key: &str, sql: &str) -> (StatusCode, Value) {
    let (status, body, _) = call(app, "POST", "/query", Some(key), Some(&json!({ "sql": sql }))).await;
    (status, body)
}

async fn create_key(app: &TestApp, body: Value) -> String {
    let (status, created, _) = call(app, "POST", "/keys", Some(ADMIN), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["secret"].as_str().expect("secret").to_owned()
}

/// The route with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{table}", "t").replace("{id}", "x").replace("{file}", "index.css").replace("{name}", "someone")
}

#[tokio::test]
async fn every_route_but_the_probes_needs_a_key_and_its_scope() {
    let app = spawn_app_with(keyed).await;
    let read = create_key(&app, json!({ "name": "reader", "scopes": ["read"] })).await;
    for spec in ROUTES {
        let path = concrete(spec.path);
        let (status, body, _) = call(&app, spec.method, &path, None, Some(&json!({}))).await;
        match spec.access {
            Access::Open => assert_ne!(status, StatusCode::UNAUTHORIZED, "{} {path} is a probe", spec.method),
            Access::Needs(scope) => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{} {path} without a key: {body}", spec.method);
                assert_eq!(body["error"]["code"], "unauthenticated");
                let (status, _, _) = call(&app, spec.method, &path, Some("dbk_000000000000_wrong"), Some(&json!({}))).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{} {path} with a wrong key", spec.method);
                let (status, body, _) = call(&app, spec.method, &path, Some(&read), Some(&json!({}))).await;
                if scope > dbagent::security::Scope::Read {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{} {path} with a read key: {body}", spec.method);
                    assert_eq!(body["error"]["code"], "scope_forbids");
                } else {
                    assert!(status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN, "{} {path} with a read key: {status} {body}", spec.method);
                }
            }
        }
    }
    // X-API-Key works as well as Authorization; a wrong key and no key answer alike.
    let response = app.http.get(format!("{}/schema", app.address)).header("x-api-key", &read).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (_, no_key, _) = call(&app, "GET", "/schema", None, None).await;
    let (_, wrong_key, _) = call(&app, "GET", "/schema", Some("dbk_0123456789ab_nope"), None).await;
    assert_eq!(no_key["error"]["message"], wrong_key["error"]["message"]);
    app.stop().await;
}

#[tokio::test]
async fn a_read_key_cannot_change_anything_whatever_the_sql() {
    let app = spawn_app_with(keyed).await;
    app.setup(
        "CREATE TABLE items (id serial PRIMARY KEY, name text);
         INSERT INTO items (name) VALUES ('a');
         CREATE SEQUENCE counter;
         CREATE FUNCTION sneaky() RETURNS int LANGUAGE sql AS $$ INSERT INTO items (name) VALUES ('sneaky') RETURNING id $$;
         CREATE FUNCTION become(r text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN EXECUTE format('SET ROLE %I', r); RETURN current_user; END $$;
         CREATE FUNCTION unlock_then_write() RETURNS int LANGUAGE plpgsql AS $$
           BEGIN PERFORM set_config('default_transaction_read_only', 'off', false);
                 PERFORM set_config('transaction_read_only', 'off', true);
                 INSERT INTO items (name) VALUES ('unlocked'); RETURN 1; END $$;",
    )
    .await;
    let read = create_key(&app, json!({ "name": "reader", "scopes": ["read"] })).await;
    let (status, body) = query(&app, &read, "SELECT count(*) AS n FROM items").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let superuser: String = app.db.connect().await.query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
    let victim = app.db.connect().await;
    let victim_pid: i32 = victim.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);

    // Through the API: refused (by the scope check, the parser or PostgreSQL), never run.
    let attempts = [
        "INSERT INTO items (name) VALUES ('plain')".to_string(),
        "WITH w AS (INSERT INTO items (name) VALUES ('cte') RETURNING id) SELECT * FROM w".into(),
        "SELECT sneaky()".into(),
        "SELECT unlock_then_write()".into(),
        "SELECT set_config('default_transaction_read_only', 'off', false)".into(),
        format!("SELECT become('{superuser}')"),
        format!("SET ROLE {superuser}"),
        "RESET ROLE".into(),
        format!("SELECT set_config('role', '{superuser}', false)"),
        "COPY (SELECT 1) TO PROGRAM 'touch /tmp/dbagent-pwned'".into(),
        "SELECT pg_read_file('/etc/passwd')".into(),
        format!("SELECT pg_terminate_backend({victim_pid})"),
        "ALTER SYSTEM SET work_mem = '1GB'".into(),
        "SELECT lo_import('/etc/passwd')".into(),
        "SELECT nextval('counter')".into(),
        "DROP TABLE items".into(),
    ];
    for sql in &attempts {
        let (status, body) = query(&app, &read, sql).await;
        assert!(status.is_client_error(), "{sql} with a read key: {status} {body}");
    }
    let (status, body, _) = call(&app, "POST", "/transaction", Some(&read), Some(&json!({ "queries": [{ "sql": "SELECT sneaky()" }] }))).await;
    assert!(status.is_client_error(), "{body}");

    // Straight to PostgreSQL as the read role, past dbagent's parser: PostgreSQL refuses each.
    let mut config: tokio_postgres::Config = app.db.url.parse().unwrap();
    config.user("dbagent_read");
    let (as_reader, connection) = config.connect(tokio_postgres::NoTls).await.expect("log in as the read role");
    tokio::spawn(connection);
    let current: String = as_reader.query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
    assert_eq!(current, "dbagent_read");
    for sql in &attempts {
        let refused = as_reader.batch_execute(sql).await.is_err()
            // set_config of the session's read-only default is allowed, but nothing after it writes:
            || sql.starts_with("SELECT set_config('default_transaction_read_only'")
            || sql == "RESET ROLE";
        assert!(refused, "PostgreSQL let the read role run {sql}");
    }
    as_reader.batch_execute("SELECT set_config('default_transaction_read_only', 'off', false)").await.unwrap();
    assert!(as_reader.batch_execute("INSERT INTO items (name) VALUES ('after unlock')").await.is_err());
    let keys_seen = as_reader.query("SELECT * FROM dbagent.api_keys", &[]).await.unwrap().len();
    assert_eq!(keys_seen, 0, "row-level security hides the key digests from the read role");

    // Nothing changed.
    let check = app.db.connect().await;
    let names: Vec<String> = check.query("SELECT name FROM items ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(names, ["a"]);
    let called: bool = check.query_one("SELECT is_called FROM counter", &[]).await.unwrap().get(0);
    assert!(!called, "nextval ran");
    assert!(!victim.is_closed() && victim.simple_query("SELECT 1").await.is_ok(), "the other session was terminated");
    assert!(!std::path::Path::new("/tmp/dbagent-pwned").exists());
    app.stop().await;
}

#[tokio::test]
async fn a_write_key_changes_rows_but_not_the_schema() {
    let app = spawn_app_with(keyed).await;
    app.setup("CREATE TABLE items (id serial PRIMARY KEY, name text)").await;
    let write = create_key(&app, json!({ "name": "writer", "scopes": ["read", "write"] })).await;
    let (status, body) = query(&app, &write, "INSERT INTO items (name) VALUES ('ok') RETURNING id").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = query(&app, &write, "DROP TABLE items").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = query(&app, &write, "CREATE TABLE t2 (id int)").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = query(&app, &write, "COPY (SELECT 1) TO PROGRAM 'true'").await;
    assert!(status.is_client_error(), "{body}");
    let (status, body, _) = call(&app, "POST", "/indexes", Some(&write), Some(&json!({ "action": "create", "table": "items", "columns": ["name"] }))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let rows: i64 = app.db.connect().await.query_one("SELECT count(*) FROM items", &[]).await.unwrap().get(0);
    assert_eq!(rows, 1);
    app.stop().await;
}

#[tokio::test]
async fn revoked_and_expired_keys_stop_working_on_every_agent() {
    let db = TestDb::create().await;
    let other_db = TestDb::existing(&db.url);
    let app = spawn_app_on(db, keyed).await;
    let other = spawn_app_on(other_db, keyed).await;
    let key = create_key(&app, json!({ "name": "shared", "scopes": ["read"] })).await;
    // The other agent hears of the new key.
    wait_until("the other agent knows the key", Duration::from_secs(2), async || query(&other, &key, "SELECT 1").await.0 == StatusCode::OK).await;
    let id = key.split('_').nth(1).unwrap();
    let (status, body, _) = call(&app, "DELETE", &format!("/keys/{id}"), Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["key"]["revoked_at"].is_string());
    let revoked_at = std::time::Instant::now();
    wait_until("the other agent refuses the revoked key", Duration::from_secs(1), async || query(&other, &key, "SELECT 1").await.0 == StatusCode::UNAUTHORIZED).await;
    assert!(revoked_at.elapsed() < Duration::from_secs(1));

    // Expiry: a key that expires in a second.
    let short = create_key(&app, json!({ "name": "short", "scopes": ["read"], "expires": "1s" })).await;
    assert_eq!(query(&app, &short, "SELECT 1").await.0, StatusCode::OK);
    wait_until("the key expires", Duration::from_secs(3), async || query(&app, &short, "SELECT 1").await.0 == StatusCode::UNAUTHORIZED).await;

    // Rotation: the new secret works, and so does the old one during the grace period.
    let old = create_key(&app, json!({ "name": "rotated", "scopes": ["read"] })).await;
    let (status, rotated, _) = call(&app, "POST", "/keys/rotated/rotate", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().unwrap().to_owned();
    wait_until("the new secret works", Duration::from_secs(2), async || query(&app, &new, "SELECT 1").await.0 == StatusCode::OK).await;
    assert_eq!(query(&app, &old, "SELECT 1").await.0, StatusCode::OK);
    let (_, listed, _) = call(&app, "GET", "/keys", Some(ADMIN), None).await;
    let listed = listed["keys"].as_array().unwrap();
    assert!(listed.iter().all(|k| k.get("secret").is_none() && k.get("digest").is_none()), "{listed:?}");
    assert!(listed.iter().any(|k| k["name"] == "rotated" && k["replaced_by"].is_string()));
    other.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn limits_answer_429_with_retry_after_and_allow_from_is_checked() {
    let app = spawn_app_with(keyed).await;
    let slow = create_key(&app, json!({ "name": "slow", "scopes": ["read"], "rate": "1/s", "burst": 2 })).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let (status, _, headers) = call(&app, "GET", "/schema", Some(&slow), None).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            retry_after = headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        }
        statuses.push(status);
    }
    assert_eq!(&statuses[..2], [StatusCode::OK, StatusCode::OK]);
    assert!(statuses[2..].contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    assert!(retry_after.is_some_and(|s| (1..=2).contains(&s)), "{retry_after:?}");

    // One request in flight at most: a second one meanwhile is refused, not queued.
    let single = create_key(&app, json!({ "name": "single", "scopes": ["read"], "max_concurrent": 1 })).await;
    let (http, address, key) = (app.http.clone(), app.address.clone(), single.clone());
    let long = tokio::spawn(async move {
        http.post(format!("{address}/query")).bearer_auth(key).json(&json!({ "sql": "SELECT pg_sleep(1.5)" })).send().await.unwrap().status()
    });
    app.wait_for_running("SELECT pg_sleep(1.5)", 1).await;
    assert_eq!(query(&app, &single, "SELECT 1").await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(long.await.unwrap(), StatusCode::OK);
    assert_eq!(query(&app, &single, "SELECT 1").await.0, StatusCode::OK);

    let elsewhere = create_key(&app, json!({ "name": "elsewhere", "scopes": ["read"], "allow_from": ["10.0.0.0/8"] })).await;
    let (status, body) = query(&app, &elsewhere, "SELECT 1").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "address_forbidden");
    let here = create_key(&app, json!({ "name": "here", "scopes": ["read"], "allow_from": ["127.0.0.1"] })).await;
    assert_eq!(query(&app, &here, "SELECT 1").await.0, StatusCode::OK);
    let (status, body, _) = call(&app, "POST", "/keys", Some(ADMIN), Some(&json!({ "name": "bad", "scopes": ["read"], "allow_from": ["nowhere"] }))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    app.stop().await;
}

async fn audit_rows(app: &TestApp, filter: &str) -> Vec<Value> {
    let (status, body, _) = call(app, "GET", &format!("/audit?{filter}"), Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["entries"].as_array().unwrap().clone()
}

#[tokio::test]
async fn the_audit_log_records_who_did_what_and_survives_a_restart() {
    let db = TestDb::create().await;
    let url = db.url.clone();
    let app = spawn_app_on(TestDb::existing(&url), |c| {
        keyed(c);
        c.security.audit.flush_interval_ms = 100;
    })
    .await;
    app.setup("CREATE TABLE doomed (id int); CREATE TABLE kept (id int)").await;
    let admin = create_key(&app, json!({ "name": "dba", "scopes": ["admin"] })).await;
    let read = create_key(&app, json!({ "name": "reader", "scopes": ["read"] })).await;
    let response = app
        .http
        .post(format!("{}/query", app.address))
        .bearer_auth(&admin)
        .header("user-agent", "audit-test/1.0")
        .json(&json!({ "sql": "DROP TABLE doomed" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, _) = query(&app, &admin, "INSERT INTO kept VALUES (42)").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = query(&app, &admin, "INSERT INTO missing VALUES (1)").await;
    assert!(status.is_client_error());
    let (status, _) = query(&app, &read, "DELETE FROM kept").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let _ = query(&app, &read, "SELECT * FROM kept").await; // a read: not audited by default
    let _ = call(&app, "GET", "/schema", Some("dbk_0123456789ab_forged"), None).await;

    let mut rows = Vec::new();
    wait_until("the audit rows are written", Duration::from_secs(5), async || {
        rows = audit_rows(&app, "limit=50").await;
        rows.iter().filter(|r| r["action"].as_str().is_some_and(|a| a.starts_with("query."))).count() >= 4
            && rows.iter().any(|r| r["action"] == "auth.failed")
    })
    .await;
    let drop = rows.iter().find(|r| r["action"] == "query.ddl").expect("the DROP TABLE row");
    assert_eq!(drop["key_name"], "dba");
    assert_eq!(drop["remote_addr"], "127.0.0.1");
    assert_eq!(drop["user_agent"], "audit-test/1.0");
    assert_eq!(drop["outcome"], "ok");
    assert_eq!(drop["statement"], "DROP TABLE doomed");
    assert_eq!(drop["tables_written"], json!(["doomed"]));
    assert!(drop["request_id"].is_string());
    let insert = rows.iter().find(|r| r["action"] == "query.write" && r["outcome"] == "ok").expect("the INSERT row");
    assert_eq!(insert["statement"], "INSERT INTO kept VALUES ($1)", "literals are never recorded");
    assert_eq!(insert["rows_affected"], 1);
    let failed = rows.iter().find(|r| r["outcome"] == "error").expect("the failed INSERT");
    assert_eq!(failed["sqlstate"], "42P01");
    let denied = rows.iter().find(|r| r["outcome"] == "denied" && r["key_name"] == "reader").expect("the denied DELETE");
    assert_eq!(denied["status"], 403);
    assert!(!rows.iter().any(|r| r["statement"] == "SELECT * FROM kept"), "reads are not audited by default");
    let keys = rows.iter().filter(|r| r["action"] == "keys.create").count();
    assert_eq!(keys, 2);
    assert!(!rows.iter().any(|r| r.to_string().contains(ADMIN) || r.to_string().contains(&admin)), "a secret reached the audit log");

    // Filters.
    let only_ddl = audit_rows(&app, "action=query.ddl").await;
    assert!(only_ddl.iter().all(|r| r["action"] == "query.ddl") && !only_ddl.is_empty());
    let by_table = audit_rows(&app, "table=kept").await;
    assert!(by_table.iter().all(|r| r["statement"].as_str().unwrap_or_default().contains("kept")));
    let (status, _, _) = call(&app, "GET", "/audit?since=yesterday", Some(ADMIN), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The table is append-only, even for the superuser's plain DELETE.
    let direct = app.db.connect().await;
    assert!(direct.batch_execute("DELETE FROM dbagent.audit_log").await.is_err());
    assert!(direct.batch_execute("UPDATE dbagent.audit_log SET outcome = 'ok'").await.is_err());

    // A restart: the rows are still there, and the new agent keeps appending.
    let count = rows.len();
    app.stop().await;
    let again = spawn_app_on(TestDb::existing(&url), keyed).await;
    let after = audit_rows(&again, "limit=1000").await;
    assert!(after.len() >= count, "{} rows before the restart, {} after", count, after.len());
    assert!(after.iter().any(|r| r["action"] == "query.ddl" && r["key_name"] == "dba"));
    again.stop().await;
    std::mem::drop(db);
}

#[tokio::test]
async fn a_full_audit_queue_makes_requests_wait_and_loses_nothing() {
    let app = spawn_app_with(|c| {
        c.security.audit.queue_size = 2;
        c.security.audit.flush_interval_ms = 50;
    })
    .await;
    app.setup("CREATE TABLE hits (n int)").await;
    let writes = (0..60).map(|i| {
        let (http, address) = (app.http.clone(), app.address.clone());
        tokio::spawn(async move {
            let body = json!({ "sql": "INSERT INTO hits VALUES ($1)", "params": [i] });
            http.post(format!("{address}/query")).json(&body).send().await.unwrap().status()
        })
    });
    for status in futures_util::future::join_all(writes).await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    let client = app.db.connect().await;
    wait_until("every write has its audit row", Duration::from_secs(10), async || {
        let n: i64 = client
            .query_one("SELECT count(*) FROM dbagent.audit_log WHERE statement = 'INSERT INTO hits VALUES ($1)'", &[])
            .await
            .unwrap()
            .get(0);
        n == 60
    })
    .await;
    let (_, health) = app.get("/health").await;
    assert_eq!(health["security"]["audit"]["dropped"], 0);
    app.stop().await;
}

#[tokio::test]
async fn start_refuses_roles_that_cannot_enforce_a_scope() {
    let db = TestDb::create().await;
    let superuser: String = db.connect().await.query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
    let mut config = crate::helpers::test_config(&db.url);
    keyed(&mut config);
    config.security.read_role.user = superuser;
    let err = dbagent::app::Agent::start(config).await.err().expect("a superuser read role is refused");
    let message = dbagent::db::error_chain(err.as_ref());
    assert!(message.contains("superuser"), "{message}");
}
