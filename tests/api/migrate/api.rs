//! Migrations through the HTTP API and the CLI binary, on a realistic set of files.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, TestDb, spawn_app_on};

/// A migrations directory (and a backup directory) under `target/tmp`, removed on drop.
struct Files {
    root: PathBuf,
}

impl Files {
    fn new() -> Files {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("migrations-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(root.join("migrations")).unwrap();
        Files { root }
    }

    fn dir(&self) -> PathBuf {
        self.root.join("migrations")
    }

    fn write(&self, name: &str, sql: &str) {
        std::fs::write(self.dir().join(name), sql).unwrap();
    }

    /// Users with an enum, orders with a foreign key and a check, and an index built
    /// concurrently.
    fn realistic() -> Files {
        let files = Files::new();
        files.write(
            "1_users.up.sql",
            "CREATE TYPE mood AS ENUM ('happy', 'sad');
             CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, mood mood);",
        );
        files.write("1_users.down.sql", "DROP TABLE users; DROP TYPE mood;");
        files.write(
            "2_orders.up.sql",
            "CREATE TABLE orders (id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id),
                                  total numeric(10,2) NOT NULL CHECK (total >= 0));
             CREATE INDEX orders_user_idx ON orders (user_id);",
        );
        files.write("2_orders.down.sql", "DROP TABLE orders;");
        files.write("3_mood_index.up.sql", "-- dbagent:no-transaction\nCREATE INDEX CONCURRENTLY users_mood_idx ON users (mood);");
        files.write("3_mood_index.down.sql", "-- dbagent:no-transaction\nDROP INDEX CONCURRENTLY users_mood_idx;");
        files
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

async fn app_with(files: &Files, db: TestDb, auto: bool) -> TestApp {
    let (dir, backups) = (files.dir(), files.root.join("backups"));
    spawn_app_on(db, move |c| {
        c.migrations.directory = dir;
        c.backup.location = backups;
        c.migrations.auto_migrate = auto;
    })
    .await
}

async fn relations(app: &TestApp) -> Vec<String> {
    let rows = app.rows("SELECT relname FROM pg_class WHERE relname IN ('users', 'orders', 'users_mood_idx', 'orders_user_idx') ORDER BY 1", json!([])).await;
    rows.iter().map(|r| r["relname"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn upgrade_and_downgrade_over_the_api_with_a_backup_first() {
    let files = Files::realistic();
    let app = app_with(&files, TestDb::create().await, false).await;

    let (status, body) = app.post("/migrate", &json!({"direction": "upgrade", "target": "head", "dry_run": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["applied"][0]["sql"].as_str().unwrap().contains("CREATE TYPE mood"), "{body}");
    assert!(relations(&app).await.is_empty(), "the dry run changed the database");

    let (status, body) = app.post("/migrate", &json!({"direction": "upgrade", "target": "head"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["success"].clone(), body["version"].clone()), (json!(true), json!(3)), "{body}");
    assert!(body["execution_time"].as_f64().is_some(), "{body}");
    let backup = body["backup_id"].as_str().expect("a backup was taken first").to_string();
    let manifest = std::fs::read_to_string(files.root.join("backups").join(&backup).join("manifest.json")).unwrap();
    assert!(manifest.contains("\"pinned_by\": \"migration run"), "{manifest}");
    assert_eq!(relations(&app).await, ["orders", "orders_user_idx", "users", "users_mood_idx"]);

    let (status, listing) = app.get("/migrations").await;
    assert_eq!(status, StatusCode::OK, "{listing}");
    assert_eq!(listing["applied"].as_array().unwrap().len(), 3, "{listing}");
    assert_eq!(listing["applied"][0]["backup_id"], json!(backup), "{listing}");

    let (status, body) = app.post("/migrate", &json!({"direction": "downgrade", "target": "-1", "confirm": true})).await;
    assert_eq!((status, body["version"].clone()), (StatusCode::OK, json!(2)), "{body}");
    assert_eq!(relations(&app).await, ["orders", "orders_user_idx", "users"]);
    let (status, body) = app.post("/migrate", &json!({"direction": "downgrade", "target": "base", "confirm": true})).await;
    assert_eq!((status, body["version"].clone()), (StatusCode::OK, json!(null)), "{body}");
    assert!(relations(&app).await.is_empty());
    let (_, listing) = app.get("/migrations").await;
    let kinds: Vec<&str> = listing["history"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "apply").count(), 3, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "revert").count(), 3, "{kinds:?}");
}

#[tokio::test]
async fn bad_requests_and_edited_files_are_refused_and_change_nothing() {
    let files = Files::realistic();
    let app = app_with(&files, TestDb::create().await, false).await;
    for (body, code) in [
        (json!({"direction": "sideways"}), "invalid_request"),
        (json!({"direction": "upgrade", "target": "soon"}), "invalid_request"),
        (json!({"direction": "downgrade", "target": "-x"}), "invalid_request"),
        (json!({"direction": "upgrade", "extra": 1}), "invalid_request"),
    ] {
        let (status, answer) = app.post("/migrate", &body).await;
        assert_eq!((status, answer["error"]["code"].as_str()), (StatusCode::BAD_REQUEST, Some(code)), "{body}: {answer}");
    }
    assert!(relations(&app).await.is_empty());

    let (status, body) = app.post("/migrate", &json!({"target": "+1"})).await;
    assert_eq!((status, body["version"].clone()), (StatusCode::OK, json!(1)), "{body}");
    files.write("1_users.up.sql", "CREATE TYPE mood AS ENUM ('happy'); CREATE TABLE users (id int);");
    let (status, body) = app.post("/migrate", &json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("migration_drift")), "{body}");
    assert_eq!(relations(&app).await, ["users"], "nothing more was applied");

    // A failing migration: 422 with the SQLSTATE, nothing of it left behind.
    files.write("1_users.up.sql", "CREATE TYPE mood AS ENUM ('happy', 'sad');\n             CREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL UNIQUE, mood mood);");
    files.write("4_broken.up.sql", "CREATE TABLE broken (id int); SELECT * FROM no_such_table;");
    let (status, body) = app.post("/migrate", &json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("migration_failed")), "{body}");
    assert_eq!(body["error"]["sqlstate"], "42P01", "{body}");
    assert!(app.rows("SELECT to_regclass('broken') IS NULL AS gone", json!([])).await[0]["gone"] == json!(true));
}

#[tokio::test]
async fn auto_migrate_holds_readiness_until_done_and_two_agents_apply_once() {
    let files = Files::new();
    files.write("1_slow.up.sql", "SELECT pg_sleep(1); CREATE TABLE counted (n int); INSERT INTO counted VALUES (1);");
    let db = TestDb::create().await;
    let url = db.url.clone();
    // Serving starts auto-migrate; the migration sleeps for a second, so `a` is not ready yet
    // when `b` starts (and takes its turn on the migration lock).
    let a = app_with(&files, db, true).await;
    let (status, body) = a.get("/health/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["migrations"]["state"], "running", "{body}");
    let b = app_with(&files, TestDb::existing(&url), true).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    for app in [&a, &b] {
        loop {
            let (status, body) = app.get("/health/ready").await;
            if status == StatusCode::OK {
                break;
            }
            assert_ne!(body["migrations"]["state"], "failed", "{body}");
            assert!(Instant::now() < deadline, "never ready: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(a.rows("SELECT count(*) AS n FROM counted", json!([])).await, vec![json!({"n": 1})]);
}

/// The CLI binary against the same database.
fn cli(files: &Files, db_url: &str, args: &[&str]) -> (i32, serde_json::Value, String) {
    let config = files.root.join("dbagent.yaml");
    std::fs::write(
        &config,
        format!(
            "migrations:\n  directory: {}\n  backup_before_migrate: false\n  seeds_directory: {}\n",
            files.dir().display(),
            files.root.join("seeds").display()
        ),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_dbagent"))
        .arg("--config")
        .arg(&config)
        .arg("--json")
        .args(args)
        .env("DATABASE_URL", db_url)
        .output()
        .expect("run dbagent");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let value = serde_json::from_str(&stdout).unwrap_or(serde_json::Value::Null);
    (output.status.code().unwrap_or(-1), value, stderr)
}

#[tokio::test]
async fn the_cli_migrates_seeds_queries_and_reports_failures_with_exit_codes() {
    let files = Files::realistic();
    let db = TestDb::create().await;
    let url = db.url.clone();
    // Blocking is fine here: nothing else runs on this test's runtime meanwhile.
    let run = |args: &[&str]| cli(&files, &url, args);

    let (code, out, err) = run(&["migrate", "up"]);
    assert_eq!(code, 0, "{out} {err}");
    assert_eq!(out["version"], 3, "{out}");
    let (code, out, _) = run(&["migrate", "status"]);
    assert_eq!((code, out["pending"].as_array().map(Vec::len)), (0, Some(0)), "{out}");
    let (code, out, err) = run(&["migrate", "down", "-2", "--confirm"]);
    assert_eq!((code, out["version"].clone()), (0, json!(1)), "{out} {err}");

    std::fs::create_dir_all(files.root.join("seeds/development")).unwrap();
    std::fs::write(files.root.join("seeds/development/01_users.sql"), "INSERT INTO users (email) VALUES ('a@example.com');").unwrap();
    std::fs::write(files.root.join("seeds/development/02_more.sql"), "INSERT INTO users (email) VALUES ('b@example.com');").unwrap();
    let (code, out, err) = run(&["seed", "run"]);
    assert_eq!(code, 0, "{out} {err}");
    let (code, out, _) = run(&["query", "SELECT count(*) AS n FROM users"]);
    assert_eq!((code, out["rows"].clone()), (0, json!([{"n": 2}])), "{out}");

    // A failing seed rolls back all of them (exit 1); bad SQL exits 1; an unknown table 4.
    std::fs::write(files.root.join("seeds/development/03_bad.sql"), "INSERT INTO nowhere VALUES (1);").unwrap();
    let (code, _, err) = run(&["seed", "run"]);
    assert_eq!(code, 1, "{err}");
    let (_, out, _) = run(&["query", "SELECT count(*) AS n FROM users"]);
    assert_eq!(out["rows"], json!([{"n": 2}]), "the failed seed left rows behind");
    let (code, _, err) = run(&["query", "SELEC 1"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("syntax"), "{err}");
    let (code, _, _) = run(&["schema", "no_such_table"]);
    assert_eq!(code, 4);
    drop(db);
}

#[tokio::test]
async fn autogenerate_writes_a_migration_to_the_desired_schema_and_lint_warns_before_it_runs() {
    let files = Files::new();
    let app = app_with(&files, TestDb::create().await, false).await;
    app.setup("CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, 'a')").await;
    let desired = "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2));
                   CREATE INDEX items_name_idx ON items (name);";
    let (status, out) = app.post("/migrations/autogenerate", &json!({"name": "item prices", "schema_sql": desired})).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["files"].as_array().unwrap().len(), 2, "{out}");
    assert!(out["up"].as_str().unwrap().contains("price"), "{out}");

    // The dry run shows the SQL and the lint warnings about the existing table.
    let (status, plan) = app.post("/migrate", &json!({"dry_run": true})).await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    let rules: Vec<&str> = plan["warnings"].as_array().unwrap().iter().map(|w| w["rule"].as_str().unwrap()).collect();
    assert!(rules.contains(&"create-index-without-concurrently") && rules.contains(&"set-not-null"), "{plan}");
    let (status, done) = app.post("/migrate", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let (status, again) = app.post("/migrations/autogenerate", &json!({"name": "nothing", "schema_sql": desired})).await;
    assert_eq!((status, again["changes"].as_u64(), again["files"].as_array().map(Vec::len)), (StatusCode::OK, Some(0), Some(0)), "{again}");

    let (status, back) = app.post("/migrate", &json!({"direction": "downgrade", "confirm": true})).await;
    assert_eq!(status, StatusCode::OK, "{back}");
    let columns = app.rows("SELECT count(*) AS n FROM information_schema.columns WHERE table_name = 'items'", json!([])).await;
    assert_eq!(columns, vec![json!({"n": 2})]);

    let (status, bad) = app.post("/migrations/autogenerate", &json!({"name": "bad", "schema_sql": "CREATE TABLE x (id nosuchtype);"})).await;
    assert_eq!((status, bad["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_schema")), "{bad}");
}
