//! No request leaves session state behind for later requests on the same pooled connection:
//! what the parser sees is refused with the alternative; what user code does (functions,
//! triggers, views, a function shadowing a built-in) is seen by the session check after the
//! statement and the connection is discarded. Every pooled connection is probed after each
//! vector.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};

const POOL_SIZE: usize = 2;

/// Everything a leaked session change would show, per connection (without its pid).
const PROBE: &str = "SELECT current_user::text AS current_user, session_user::text AS session_user, \
    current_setting('search_path') AS search_path, current_setting('statement_timeout') AS statement_timeout, \
    current_setting('work_mem') AS work_mem, current_setting('application_name') AS application_name, \
    coalesce(current_setting('app.tenant', true), '') AS tenant, \
    (SELECT count(*) FROM pg_class WHERE relnamespace = pg_my_temp_schema()) AS temp_objects, \
    (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS advisory_locks, \
    (SELECT count(*) FROM pg_prepared_statements WHERE from_sql) AS prepared, \
    (SELECT count(*) FROM pg_cursors WHERE is_holdable) AS cursors, \
    (SELECT count(*) FROM pg_listening_channels()) AS listening, \
    pg_backend_pid() AS pid, pg_sleep(0.25)::text AS slept";

async fn pooled_app() -> TestApp {
    spawn_app_with(|c| {
        c.postgresql.connection_pool.min_size = POOL_SIZE as u32;
        c.postgresql.connection_pool.max_size = POOL_SIZE as u32;
    })
    .await
}

/// The state of every pooled connection: as many concurrent probes as the pool has
/// connections, each holding its own for a while, twice.
async fn probe_every_connection(app: &TestApp) -> Vec<Value> {
    let mut seen = Vec::new();
    for _ in 0..2 {
        let probes = (0..POOL_SIZE).map(|_| {
            let (http, address) = (app.http.clone(), app.address.clone());
            tokio::spawn(async move {
                let response = http.post(format!("{address}/query")).json(&json!({ "sql": PROBE })).send().await.unwrap();
                let (status, body): (StatusCode, Value) = (response.status(), response.json().await.unwrap());
                assert_eq!(status, StatusCode::OK, "{body}");
                body["rows"][0].clone()
            })
        });
        for probe in futures_util::future::join_all(probes).await {
            let mut row = probe.unwrap();
            let object = row.as_object_mut().unwrap();
            object.remove("pid");
            seen.push(row);
        }
    }
    seen
}

async fn assert_sessions_unchanged(app: &TestApp, baseline: &Value, after: &str) {
    for row in probe_every_connection(app).await {
        assert_eq!(&row, baseline, "a pooled session changed after {after}");
    }
}

async fn baseline(app: &TestApp) -> Value {
    let rows = probe_every_connection(app).await;
    assert!(rows.windows(2).all(|w| w[0] == w[1]), "connections differ from the start: {rows:?}");
    rows[0].clone()
}

#[tokio::test]
async fn session_changes_the_parser_sees_are_refused_with_the_alternative_and_change_nothing() {
    let app = pooled_app().await;
    let before = baseline(&app).await;
    let cases: &[(&str, &str)] = &[
        ("SELECT set_config('role', 'pg_read_server_files', false)", "set_config(name, value, true)"),
        ("SELECT set_config('search_path', 'evil2', $1::bool)", "set_config(name, value, true)"),
        ("CREATE TEMP TABLE tt (x int)", "ON COMMIT DROP"),
        ("SELECT pg_advisory_lock(42)", "pg_advisory_xact_lock"),
        ("SELECT pg_try_advisory_lock_shared(42)", "pg_advisory_xact_lock"),
        ("LOAD 'plpgsql'", "LOAD"),
        ("SELECT setseed(0.5)", "setseed"),
        ("SET search_path = evil", "SET LOCAL"),
        ("PREPARE p AS SELECT 1", "params"),
        ("LISTEN ch", "LISTEN"),
        ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "cursors"),
    ];
    for (sql, alternative) in cases {
        let params = if sql.contains("$1") { json!([false]) } else { json!([]) };
        let (status, body) = app.query(sql, params.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{sql}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(alternative), "{sql}: {message}");
        // The same inside a transaction.
        let (status, body) = app.post("/transaction", &json!({ "queries": [{ "sql": sql, "params": params }] })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "/transaction {sql}: {body}");
    }
    assert_sessions_unchanged(&app, &before, "the refused statements").await;
}

#[tokio::test]
async fn what_user_defined_functions_do_to_the_session_never_reaches_a_later_request() {
    let app = pooled_app().await;
    // Made directly, as a migration or a DBA would: dbagent learns of them only by name.
    app.setup(
        "CREATE FUNCTION evil_role() RETURNS text LANGUAGE sql AS $$ SELECT set_config('role', 'pg_read_server_files', false) $$;
         CREATE FUNCTION evil_settings() RETURNS int LANGUAGE plpgsql AS $$ BEGIN
           PERFORM set_config('search_path', 'evil2', false);
           -- Not 1 ms: the transaction's next statement runs under it, and on a loaded machine
           -- even SELECT 1 can take that long (it did: 504). Any value unlike the default shows a leak.
           PERFORM set_config('statement_timeout', '123456', false);
           PERFORM set_config('work_mem', '64kB', false);
           PERFORM set_config('application_name', 'hijacked', false);
           PERFORM set_config('app.tenant', 'someone else', false);
           RETURN 1; END $$;
         CREATE FUNCTION evil_lock() RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_advisory_lock(4242); RETURN 1; END $$;
         CREATE FUNCTION evil_temp() RETURNS int LANGUAGE plpgsql AS $$ BEGIN
           EXECUTE 'CREATE TEMP TABLE IF NOT EXISTS leak (x int)'; RETURN 1; END $$;
         CREATE FUNCTION evil_cursor() RETURNS int LANGUAGE plpgsql AS $$ BEGIN
           EXECUTE 'DECLARE held CURSOR WITH HOLD FOR SELECT 1'; RETURN 1; END $$;
         CREATE FUNCTION evil_listen() RETURNS int LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'LISTEN leak'; RETURN 1; END $$;",
    )
    .await;
    let before = baseline(&app).await;
    for function in ["evil_role", "evil_settings", "evil_lock", "evil_temp", "evil_cursor", "evil_listen"] {
        let sql = format!("SELECT {function}()");
        let (status, body) = app.query(&sql, json!([])).await;
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
        assert_sessions_unchanged(&app, &before, &sql).await;
        let (status, body) = app.post("/transaction", &json!({ "queries": [{ "sql": sql }, { "sql": "SELECT 1" }] })).await;
        assert_eq!(status, StatusCode::OK, "/transaction {sql}: {body}");
        assert_sessions_unchanged(&app, &before, &format!("/transaction {sql}")).await;
    }
    // The discarded connection took its advisory lock with it.
    let direct = app.db.connect().await;
    let mut held = 1;
    for _ in 0..50 {
        held = direct.query_one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'", &[]).await.unwrap().get::<_, i64>(0);
        if held == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(held, 0, "a session-level advisory lock outlived its request");
    // Fast enough to share a connection, but it never does: many at once change nothing.
    let runs = (0..24).map(|_| {
        let (http, address) = (app.http.clone(), app.address.clone());
        tokio::spawn(async move { http.post(format!("{address}/query")).json(&json!({ "sql": "SELECT evil_settings()" })).send().await.unwrap().status() })
    });
    for status in futures_util::future::join_all(runs).await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    assert_sessions_unchanged(&app, &before, "concurrent SELECT evil_settings()").await;
}

#[tokio::test]
async fn triggers_views_and_a_function_shadowing_a_builtin_are_contained() {
    let app = pooled_app().await;
    // Through dbagent: its own DDL updates what it knows at once.
    for ddl in [
        "CREATE FUNCTION set_tenant() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
           PERFORM set_config('app.tenant', 'from a trigger', false); RETURN NEW; END $$",
        "CREATE TABLE audited (id int)",
        "CREATE TRIGGER audited_tenant BEFORE INSERT ON audited FOR EACH ROW EXECUTE FUNCTION set_tenant()",
        "CREATE TABLE parent (id int PRIMARY KEY)",
        "CREATE TABLE child (id int REFERENCES parent ON DELETE CASCADE)",
        "CREATE FUNCTION child_gone() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
           PERFORM set_config('search_path', 'from_a_cascade', false); RETURN OLD; END $$",
        "CREATE TRIGGER child_gone AFTER DELETE ON child FOR EACH ROW EXECUTE FUNCTION child_gone()",
        "CREATE FUNCTION sneaky() RETURNS int LANGUAGE plpgsql AS $$ BEGIN
           PERFORM set_config('work_mem', '64kB', false); RETURN 1; END $$",
        "CREATE VIEW innocent AS SELECT sneaky() AS one",
        "CREATE FUNCTION public.lower(integer) RETURNS text LANGUAGE plpgsql AS $$ BEGIN
           PERFORM set_config('statement_timeout', '1', false); RETURN 'x'; END $$",
    ] {
        let (status, body) = app.query(ddl, json!([])).await;
        assert_eq!(status, StatusCode::OK, "{ddl}: {body}");
    }
    let before = baseline(&app).await;
    for sql in [
        "INSERT INTO audited VALUES (1)",
        "INSERT INTO parent VALUES (1)",
        "INSERT INTO child VALUES (1)",
        "DELETE FROM parent WHERE id = 1",
        "SELECT * FROM innocent",
        "SELECT lower(1)",
    ] {
        let (status, body) = app.query(sql, json!([])).await;
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
        assert_sessions_unchanged(&app, &before, sql).await;
    }
    // Still working as before for everything else.
    assert_eq!(app.rows("SELECT lower('ABC') AS l", json!([])).await, vec![json!({"l": "abc"})]);
}

#[tokio::test]
async fn transaction_local_forms_still_work_inside_a_transaction() {
    let app = pooled_app().await;
    let before = baseline(&app).await;
    let (status, body) = app
        .post(
            "/transaction",
            &json!({ "queries": [
                { "sql": "SELECT set_config('search_path', 'tenant_a, public', true)" },
                { "sql": "SELECT current_setting('search_path') AS path" },
                { "sql": "SELECT set_config('app.tenant', $1, true)", "params": ["a"] },
                { "sql": "SELECT current_setting('app.tenant') AS tenant" },
                { "sql": "SELECT pg_advisory_xact_lock(7)" },
                { "sql": "SET LOCAL work_mem = '1MB'" },
                { "sql": "CREATE TEMP TABLE scratch (x int) ON COMMIT DROP" },
                { "sql": "INSERT INTO scratch VALUES (1), (2)" },
                { "sql": "SELECT count(*) AS n FROM scratch" },
            ] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][1]["rows"][0]["path"], json!("tenant_a, public"));
    assert_eq!(body["results"][3]["rows"][0]["tenant"], json!("a"));
    assert_eq!(body["results"][8]["rows"][0]["n"], json!(2));
    // In autocommit a transaction-local setting lasts for its own statement.
    let (status, body) = app.query("SELECT set_config('app.tenant', 'b', true) AS t", json!([])).await;
    assert_eq!((status, &body["rows"][0]["t"]), (StatusCode::OK, &json!("b")), "{body}");
    assert_sessions_unchanged(&app, &before, "transaction-local settings").await;
}

#[tokio::test]
async fn the_advisor_refuses_to_run_effects_a_rollback_cannot_undo() {
    let app = pooled_app().await;
    let victim = app.db.connect().await;
    victim.batch_execute("SET application_name = 'victim'").await.unwrap();
    app.setup(
        "CREATE SEQUENCE s;
         CREATE FUNCTION unknown_effects() RETURNS int LANGUAGE plpgsql AS $$ BEGIN
           PERFORM set_config('work_mem', '64kB', false); RETURN 1; END $$;",
    )
    .await;
    let before = baseline(&app).await;
    let kill = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim'";
    let (status, body) = app.post("/optimize", &json!({ "sql": kill, "analyze": true })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("pg_terminate_backend") && message.contains("allow_side_effects"), "{message}");
    victim.query_one("SELECT 1", &[]).await.expect("the victim's session is alive");
    // Without analyze it is only planned.
    let (status, body) = app.post("/optimize", &json!({ "sql": kill, "analyze": false })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    victim.query_one("SELECT 1", &[]).await.expect("the victim's session is alive");
    // Code dbagent cannot vouch for: planned, not run, and the answer says why.
    let (status, body) = app.post("/optimize", &json!({ "sql": "SELECT unknown_effects()", "analyze": true })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["analyzed"], json!(false), "{body}");
    assert!(body["analyze_skipped"].as_str().unwrap_or_default().contains("allow_side_effects"), "{body}");
    // Asked for explicitly, it runs (rolled back), and the session still does not leak.
    for sql in ["SELECT nextval('s')", "SELECT unknown_effects()"] {
        let (status, body) = app.post("/optimize", &json!({ "sql": sql, "analyze": true, "allow_side_effects": true })).await;
        assert_eq!(status, StatusCode::OK, "{sql}: {body}");
        assert_eq!(body["analyzed"], json!(true), "{sql}: {body}");
    }
    assert_sessions_unchanged(&app, &before, "/optimize").await;
}
