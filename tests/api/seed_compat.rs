//! The seed documents' client calls, as they wrote them (request bodies copied from
//! `shared/seeds/000_*.txt` "API Usage", `001_*.txt` "Monitoring", `004_*.txt` "API Endpoints"),
//! against a real dbagent, asserting the answer fields the seeds document. The seeds' config
//! files and environments are unit tests in `src/config/seed/tests.rs`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with, spawn_managed_app};

/// Seed 000's `users` (id, name, email) with a creation time and an organisation, 20k rows,
/// analyzed; `orgs` is referenced without an index on `users.org_id`.
async fn users(app: &TestApp) {
    app.setup(
        "CREATE TABLE orgs (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO orgs SELECT i, 'org ' || i FROM generate_series(1, 50) i;
         CREATE TABLE users (id serial PRIMARY KEY, name varchar(100) NOT NULL, email varchar(255) NOT NULL,
                             created_at timestamptz NOT NULL, org_id int REFERENCES orgs (id), active boolean NOT NULL);
         INSERT INTO users (name, email, created_at, org_id, active)
           SELECT 'user ' || i, 'user' || i || '@example.com', timestamptz '2023-06-01' + i * interval '1 hour', 1 + i % 50, i % 2 = 0
           FROM generate_series(1, 20000) i;
         INSERT INTO users (name, email, created_at, org_id, active) VALUES ('Alice', 'alice@example.com', now(), 1, true);
         ANALYZE orgs; ANALYZE users;",
    )
    .await;
}

#[tokio::test]
async fn seed_000_optimize_answers_suggestions_as_strings_and_the_findings_in_full() {
    let app = spawn_app().await;
    users(&app).await;
    // Seed 000, "8. Optimize Query".
    let (status, body) = app.post("/optimize", &json!({"sql": "SELECT * FROM users WHERE email = 'alice@example.com'", "analyze": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for field in ["execution_time_ms", "planning_time_ms", "total_time_ms"] {
        assert!(body[field].as_f64().is_some(), "{field}: {body:#}");
    }
    assert!(body["plan"].is_object() && body["is_slow"].is_boolean(), "{body:#}");
    let suggestions = body["suggestions"].as_array().unwrap();
    assert!(!suggestions.is_empty() && suggestions.iter().all(Value::is_string), "{body:#}");
    let findings = body["findings"].as_array().unwrap();
    assert_eq!(findings.len(), suggestions.len());
    let scan = findings.iter().find(|f| f["rule"] == "seq_scan_large_table").unwrap_or_else(|| panic!("{body:#}"));
    assert_eq!(scan["fix"], "CREATE INDEX CONCURRENTLY ON \"public\".\"users\" (\"email\");");
    assert!(suggestions.iter().any(|s| s.as_str().unwrap().contains("CREATE INDEX CONCURRENTLY ON \"public\".\"users\" (\"email\")")), "{body:#}");
}

#[tokio::test]
async fn seed_000_index_suggest_without_a_workload_falls_back_to_the_catalog_and_rebuild_takes_a_table() {
    let app = spawn_app().await;
    users(&app).await;
    // Seed 000, "9. Manage Indexes": analyze, suggest, rebuild, as written.
    let (status, body) = app.post("/indexes", &json!({"table": "users", "action": "analyze"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = app.post("/indexes", &json!({"table": "users", "action": "suggest"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["basis"], "catalog_heuristic", "{body:#}");
    assert!(body["note"].as_str().unwrap().contains("unvalidated"), "{body:#}");
    let suggestions = body["suggestions"].as_array().unwrap();
    for s in suggestions {
        // Seed 000's fields beside dbagent's own.
        assert!(s["table"] == "users" && s["column"].is_string() && s["type"].is_string() && s["reason"].is_string(), "{s}");
        assert_eq!(s["confidence"], "unvalidated", "{s}");
        assert!(s["sql"].as_str().unwrap().starts_with("CREATE INDEX CONCURRENTLY"), "{s}");
    }
    let column = |name: &str| suggestions.iter().find(|s| s["column"] == name);
    let fk = column("org_id").unwrap_or_else(|| panic!("no foreign key suggestion: {body:#}"));
    assert!(fk["reason"].as_str().unwrap().contains("orgs"), "{fk}");
    let email = column("email").unwrap_or_else(|| panic!("no selective column suggestion: {body:#}"));
    assert_eq!(email["type"], "btree");
    assert!(column("active").is_none() && column("id").is_none(), "unselective or indexed columns suggested: {body:#}");

    // A table that does not exist is still a 404, not a guess.
    let (status, _) = app.post("/indexes", &json!({"table": "no_such_table", "action": "suggest"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = app.post("/indexes", &json!({"table": "users", "action": "rebuild"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["done"], "REINDEX TABLE CONCURRENTLY \"public\".\"users\";");
    assert!(body["bytes_after"].as_i64().unwrap() > 0, "{body}");
}

#[tokio::test]
async fn the_managed_instance_has_pg_stat_statements_and_suggest_answers_there() {
    let app = spawn_managed_app(|_| {}).await;
    let found = app.rows("SELECT count(*) AS n FROM pg_extension WHERE extname = 'pg_stat_statements'", json!([])).await;
    assert_eq!(found, vec![json!({"n": 1})]);
    app.setup("CREATE TABLE users (id serial PRIMARY KEY, email text NOT NULL)").await;
    // The report: this answered 400 on the managed instance.
    let (status, body) = app.post("/indexes", &json!({"table": "users", "action": "suggest"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["suggestions"].is_array(), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn seed_003_a_function_over_a_filtered_column_gets_a_range_rewrite_or_an_expression_index() {
    let app = spawn_app().await;
    users(&app).await;
    // Seed 003's "Before (Slow)", in PostgreSQL's spelling (YEAR() is MySQL's).
    let (status, body) = app.post("/optimize", &json!({"sql": "SELECT * FROM users WHERE extract(year FROM created_at) = 2024"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let findings = body["findings"].as_array().unwrap();
    let rewrite = findings.iter().find(|f| f["rule"] == "function_on_filtered_column").unwrap_or_else(|| panic!("{body:#}"));
    // Seed 003's "After (Fast)".
    assert_eq!(rewrite["fix"], "WHERE \"created_at\" >= '2024-01-01' AND \"created_at\" < '2025-01-01'", "{rewrite}");
    // No index on created_at exists, and none on the bare column is proposed for this predicate.
    assert!(!findings.iter().any(|f| f["rule"] == "seq_scan_large_table"), "{body:#}");

    let (_, body) = app.post("/optimize", &json!({"sql": "SELECT id FROM users WHERE date_trunc('month', created_at) = '2024-03-01'"})).await;
    let fix = body["findings"].as_array().unwrap().iter().find(|f| f["rule"] == "function_on_filtered_column").unwrap()["fix"].clone();
    assert_eq!(fix, "WHERE \"created_at\" >= '2024-03-01' AND \"created_at\" < '2024-03-01'::timestamp + interval '1 month'");

    let (_, body) = app.post("/optimize", &json!({"sql": "SELECT id FROM users WHERE lower(email) = $1", "params": ["alice@example.com"]})).await;
    let found = body["findings"].as_array().unwrap().iter().find(|f| f["rule"] == "function_on_filtered_column").cloned().unwrap_or_else(|| panic!("{body:#}"));
    let fix = found["fix"].as_str().unwrap();
    assert_eq!(fix, "CREATE INDEX CONCURRENTLY ON \"public\".\"users\" (lower(\"email\"));");
    // The fix is valid SQL that PostgreSQL accepts, and the predicate then uses it.
    let (status, applied) = app.post("/indexes", &json!({"action": "apply", "sql": fix, "query": {"sql": "SELECT id FROM users WHERE lower(email) = $1", "params": ["alice@example.com"]}})).await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert!(!applied["after"]["scans"][0].as_str().unwrap().starts_with("Seq Scan"), "{applied}");
}

#[tokio::test]
async fn seed_000_migrate_on_a_fresh_start_succeeds_with_nothing_applied() {
    let missing = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("no-migrations-{}", uuid::Uuid::new_v4().simple()));
    let app = spawn_app_with(move |c| c.migrations.directory = missing).await;
    // Seed 000, "3. Run Migration".
    let (status, body) = app.post("/migrate", &json!({"direction": "upgrade", "target": "head"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["applied"], json!([]), "{body}");
    assert!(body.get("migration_file").is_some_and(Value::is_null), "{body}");
    assert!(body["execution_time"].as_f64().is_some(), "{body}");
}

#[tokio::test]
async fn seed_000_migrate_names_the_migration_file_it_ran() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("seed-migrations-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("1_create_users.up.sql"), "CREATE TABLE users (id int PRIMARY KEY);").unwrap();
    std::fs::write(dir.join("1_create_users.down.sql"), "DROP TABLE users;").unwrap();
    let migrations = dir.clone();
    let app = spawn_app_with(move |c| {
        c.migrations.directory = migrations;
        c.migrations.backup_before_migrate = false;
    })
    .await;
    let (status, body) = app.post("/migrate", &json!({"direction": "upgrade", "target": "head"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["migration_file"].as_str().unwrap().ends_with("1_create_users.up.sql"), "{body}");
    let (status, body) = app.post("/migrate", &json!({"direction": "downgrade", "target": "-1", "confirm": true})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["migration_file"].as_str().unwrap().ends_with("1_create_users.down.sql"), "{body}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A backup location of the test's own.
fn location(what: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{what}-{}", uuid::Uuid::new_v4().simple()))
}

#[tokio::test]
async fn seed_000_backup_file_is_what_restore_takes_back_and_exports_to_a_plain_pg_restore_file() {
    let dir = location("seed-backups");
    let loc = dir.clone();
    let app = spawn_app_with(move |c| c.backup.location = loc).await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)").await;
    // Seed 000, "4. Create Backup" and "5. Restore Database".
    let (status, created) = app.post("/backup", &json!({"backup_name": "daily_backup", "compress": true})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let backup_file = created["backup_file"].as_str().unwrap().to_owned();
    let (status, restored) = app.post("/restore", &json!({"backup_file": backup_file, "drop_existing": false})).await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["backup_file"], json!(backup_file), "{restored}");
    let copy = restored["database"].as_str().unwrap().to_owned();
    app.setup(&format!("DROP DATABASE \"{copy}\" WITH (FORCE)")).await;

    // `dbagent backup export ID --to FILE`: plain pg_dump custom format, readable by pg_restore.
    let settings = dbagent::backup::Settings::new(&dir);
    let out = dir.join("export.dump");
    let id = created["backup_id"].as_str().unwrap();
    let exported = dbagent::backup::export(&settings, id, &out).await.unwrap();
    assert!(exported.bytes > 0 && exported.restore_with.starts_with("pg_restore"), "{exported:?}");
    let bin = std::env::var("PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into());
    let listing = std::process::Command::new(std::path::Path::new(&bin).join("pg_restore")).arg("--list").arg(&out).output().unwrap();
    assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
    assert!(String::from_utf8_lossy(&listing.stdout).contains("TABLE public t"), "{}", String::from_utf8_lossy(&listing.stdout));
    // Never over an existing file.
    assert!(dbagent::backup::export(&settings, id, &out).await.is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn seed_004_backup_routes_take_their_bodies_and_restore_needs_confirm() {
    let dir = location("seed-004-backups");
    let loc = dir.clone();
    let app = spawn_app_with(move |c| c.backup.location = loc).await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)").await;
    // Seed 004, "Backup Management".
    let (status, created) = app.post("/api/database/backups", &json!({"backup_type": "full", "custom_name": "pre-deployment-backup"})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["backup_id"].as_str().unwrap().to_owned();
    assert_eq!(created["manifest"]["name"], "pre-deployment-backup", "{created}");
    let (status, listed) = app.get("/api/database/backups").await;
    assert_eq!((status, listed["backups"][0]["id"].as_str()), (StatusCode::OK, Some(id.as_str())), "{listed}");
    let (status, one) = app.get(&format!("/api/database/backups/{id}")).await;
    assert_eq!((status, one["id"].as_str()), (StatusCode::OK, Some(id.as_str())), "{one}");
    let download = app.http.get(format!("{}/api/database/backups/{id}/download", app.address)).send().await.unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    let (status, valid) = app.post(&format!("/api/database/backups/{id}/validate"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{valid}");

    let (status, refused) = app.post("/api/database/backups", &json!({"backup_type": "incremental"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("pitr"), "{refused}");
    let (status, refused) = app.post("/api/database/restore", &json!({"backup_id": id})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("confirm"), "{refused}");
    let (status, refused) = app.post("/restore", &json!({"backup_id": id, "drop_existing": true, "confirm": false})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");

    // Confirmed: the database is replaced by the backup's copy, swapped in whole.
    app.setup("INSERT INTO t VALUES (1000)").await;
    let (status, restored) = app.post("/api/database/restore", &json!({"backup_id": id, "confirm": true})).await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["mode"], "replaced", "{restored}");
    assert!(restored["backup_file"].as_str().unwrap().ends_with(&id), "{restored}");
    // The replaced database is kept (renamed) for backup.keep_replaced_hours; not past this test.
    crate::helpers::drop_databases(crate::helpers::server_url(), vec![restored["replaced_as"].as_str().unwrap().to_owned()]);
    let client = app.db.connect().await;
    let n: i64 = client.query_one("SELECT count(*) FROM t", &[]).await.unwrap().get(0);
    assert_eq!(n, 100);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn seed_001_and_004_health_shapes_and_aliases() {
    let app = spawn_app().await;
    // Seed 001, "Monitoring": components[] with the pool in SQLAlchemy's terms.
    let (status, health) = app.get("/health").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    let database = &health["components"][0];
    assert_eq!((database["name"].as_str(), database["status"].as_str()), (Some("database"), Some("healthy")), "{health:#}");
    assert!(database["latency_ms"].as_f64().is_some(), "{database}");
    for field in ["pool_size", "max_overflow", "checked_in", "checked_out", "overflow", "total"] {
        assert!(database["details"][field].is_u64(), "{field}: {database}");
    }
    // Seed 000's fields are still there.
    assert!(health["connection_pool"]["pool_stats"]["total"].is_u64() && health["statistics"].is_object(), "{health:#}");

    // Seed 004, "Health & Monitoring".
    let (status, alias) = app.get("/api/database/health").await;
    assert_eq!((status, alias["status"].as_str()), (StatusCode::OK, Some("healthy")), "{alias}");
    let (status, stats) = app.get("/api/database/connections/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert!(stats["primary"]["details"]["pool_size"].is_u64() && stats["primary"]["pool_stats"]["max"].is_u64(), "{stats}");
    // Not built yet: an unknown route is a 404 in the common error shape.
    let (status, missing) = app.get("/api/database/performance/analyze").await;
    assert_eq!((status, missing["success"].as_bool()), (StatusCode::NOT_FOUND, Some(false)), "{missing}");
    // Seed 004's alert list is `GET /alerts`.
    let (status, alerts) = app.get("/api/database/alerts").await;
    assert_eq!((status, alerts["success"].as_bool()), (StatusCode::OK, Some(true)), "{alerts}");
}
