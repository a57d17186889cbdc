//! Destructive operations keep a way back (issue 20): a restore over a database keeps the one it
//! replaced (listed, swapped back, dropped when it expires); replacing another, a protected or
//! dbagent's own database needs `confirm` / `force`; deleting the newest good backup needs
//! `force`; a constraint's index is never dropped; a superuser's session is not terminated
//! without `force`; `migrate down` past a down file that loses data needs `confirm`. Every
//! refused call is checked to have changed nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, connect, drop_databases, server_url, spawn_app_on, spawn_app_with, wait_until};

/// A backup location of the test's own, removed when the test passes.
struct Location(PathBuf);

impl Location {
    fn new(what: &str) -> Location {
        Location(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("destructive-{what}-{}", uuid::Uuid::new_v4().simple())))
    }
}

impl Drop for Location {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn url(name: &str) -> String {
    format!("{}/{name}", server_url())
}

/// The databases whose names start with one of `prefixes` (other tests create and drop their
/// own databases meanwhile, so the whole list is not this test's to compare).
async fn databases(prefixes: &[&str]) -> Vec<String> {
    let admin = connect(&url("postgres")).await;
    let patterns: Vec<String> = prefixes.iter().map(|p| format!("{p}%")).collect();
    let rows = admin.query("SELECT datname::text FROM pg_database WHERE datname LIKE ANY($1) ORDER BY 1", &[&patterns]).await.unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// The rows of `table` in database `db`, as text, in order.
async fn contents(db: &str, table: &str) -> Vec<String> {
    let client = connect(&url(db)).await;
    match client.query(&format!("SELECT t::text FROM {table} t ORDER BY 1"), &[]).await {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        Err(_) => vec!["(no such table)".into()],
    }
}

fn code(answer: &Value) -> &str {
    answer["error"]["code"].as_str().unwrap_or("(none)")
}

fn message(answer: &Value) -> &str {
    answer["error"]["message"].as_str().unwrap_or("")
}

async fn backup(app: &TestApp) -> String {
    let (status, created) = app.post("/backup", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    created["backup_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn replacing_another_database_needs_its_name_keeps_the_replaced_one_and_undo_swaps_back() {
    // Arrange: the agent's database `app` (100 rows in t) and its backup; an unrelated `other`
    // (5 rows in o); a backup of `other` in the same location; a template database.
    let location = Location::new("restore");
    let dir = location.0.clone();
    let app = spawn_app_with(move |c| c.backup.location = dir).await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)").await;
    let app_backup = backup(&app).await;
    let other = TestDb::create().await;
    other.connect().await.batch_execute("CREATE TABLE o (id int PRIMARY KEY); INSERT INTO o SELECT generate_series(1, 5)").await.unwrap();
    let settings = dbagent::backup::Settings::new(&location.0);
    let other_config = dbagent::db::PgConfig::plain(other.url.parse().unwrap());
    let other_backup = dbagent::backup::create(&other_config, &settings, &dbagent::backup::CreateRequest::default(), &|_| {}).await.unwrap().id;
    let template = format!("dbagent_tpl_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let admin = connect(&url("postgres")).await;
    admin.batch_execute(&format!("CREATE DATABASE {template} IS_TEMPLATE true")).await.unwrap();

    let (app_name, other_name) = (app.db.name.clone(), other.name.clone());
    let prefixes = [&app_name[..30], &other_name[..30], "postgres", "template", &template];
    let listed_before = databases(&prefixes).await;
    let o_before = contents(&other_name, "o").await;
    let t_before = contents(&app_name, "t").await;

    // Act and assert: every refusal answers what to send and changes nothing.
    let refusals = [
        // Another database's backup over `other`, not named.
        (json!({"backup_id": app_backup, "target_database": other_name, "drop_existing": true}), StatusCode::CONFLICT, "confirmation_required", format!("\"confirm\": \"{other_name}\"")),
        (json!({"backup_id": app_backup, "target_database": other_name, "drop_existing": true, "confirm": true}), StatusCode::CONFLICT, "confirmation_required", format!("\"confirm\": \"{other_name}\"")),
        (json!({"backup_id": app_backup, "target_database": other_name, "confirm": app_name}), StatusCode::CONFLICT, "confirmation_required", format!("\"confirm\": \"{other_name}\"")),
        // Protected databases, even named.
        (json!({"backup_id": app_backup, "target_database": "postgres", "drop_existing": true, "confirm": "postgres"}), StatusCode::CONFLICT, "force_required", "\"force\": true".into()),
        (json!({"backup_id": app_backup, "target_database": template, "drop_existing": true, "confirm": template}), StatusCode::CONFLICT, "force_required", "template".into()),
        (json!({"backup_id": other_backup, "target_database": app_name, "drop_existing": true, "confirm": app_name}), StatusCode::CONFLICT, "force_required", "dbagent".into()),
        // Forced, but still not named.
        (json!({"backup_id": app_backup, "target_database": "postgres", "drop_existing": true, "force": true}), StatusCode::CONFLICT, "confirmation_required", "\"confirm\": \"postgres\"".into()),
        (json!({"backup_id": app_backup, "target_database": "template1", "drop_existing": true, "confirm": "template1", "force": true}), StatusCode::BAD_REQUEST, "invalid_request", "template1".into()),
        (json!({"backup_id": app_backup, "target_database": other_name, "drop_replaced": true}), StatusCode::BAD_REQUEST, "invalid_request", "drop_existing".into()),
    ];
    for (body, status, want, hint) in &refusals {
        let (got, answer) = app.post("/restore", body).await;
        assert_eq!((got, code(&answer)), (*status, *want), "{body}: {answer}");
        assert!(message(&answer).contains(hint.as_str()), "{body}: the answer names what to send ({hint}): {answer}");
    }
    assert_eq!(databases(&prefixes).await, listed_before, "a refused restore created, renamed or dropped a database");
    assert_eq!(contents(&other_name, "o").await, o_before);
    assert_eq!(contents(&app_name, "t").await, t_before);
    let (status, listed) = app.get("/restores").await;
    assert_eq!((status, listed["replaced"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)), "{listed}");

    // Named: `other` gets app's rows; the original is kept under a recognisable name.
    let started = Instant::now();
    let (status, restored) = app.post("/restore", &json!({"backup_id": app_backup, "target_database": other_name, "drop_existing": true, "confirm": other_name})).await;
    let restore_took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{restored}");
    let kept = restored["replaced_as"].as_str().unwrap().to_owned();
    let mut cleanup = vec![kept.clone()];
    assert!(kept.starts_with(&format!("{}_replaced_", &other_name[..other_name.len().min(39)])) && kept.len() <= 63, "{kept}");
    assert_eq!((restored["replaced_dropped"].as_bool(), restored["replaced_expires_at"].is_string()), (Some(false), true), "{restored}");
    assert_eq!(contents(&other_name, "t").await, t_before);
    assert_eq!(contents(&other_name, "o").await, ["(no such table)"]);
    assert_eq!(contents(&kept, "o").await, o_before, "the replaced database is kept whole");

    let (status, listed) = app.get("/restores").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let entry = &listed["replaced"][0];
    assert_eq!(
        (entry["id"].as_str(), entry["database"].as_str(), entry["backup_id"].as_str(), entry["state"].as_str(), entry["exists"].as_bool(), entry["replaced_by"].as_str()),
        (Some(kept.as_str()), Some(other_name.as_str()), Some(app_backup.as_str()), Some("kept"), Some(true), Some("api")),
        "{listed}"
    );
    let expires: chrono::DateTime<chrono::Utc> = entry["expires_at"].as_str().unwrap().parse().unwrap();
    let hours = (expires - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((23.9..=24.0).contains(&hours), "kept for backup.keep_replaced_hours (24): {hours} h");

    // Undo: the original is back; the restored copy is kept in turn, and that undo undoes too.
    let started = Instant::now();
    let (status, undone) = app.post(&format!("/restores/{kept}/undo"), &json!({})).await;
    let undo_took = started.elapsed();
    assert_eq!(status, StatusCode::OK, "{undone}");
    let restored_copy = undone["replaced_as"].as_str().unwrap().to_owned();
    cleanup.push(restored_copy.clone());
    assert_eq!(contents(&other_name, "o").await, o_before);
    assert_eq!(contents(&restored_copy, "t").await, t_before);
    let (status, again) = app.post(&format!("/restores/{kept}/undo"), &json!({})).await;
    assert_eq!((status, code(&again)), (StatusCode::NOT_FOUND, "replaced_not_found"), "an undone entry is not undone twice: {again}");
    let (_, listed) = app.get("/restores").await;
    let states: Vec<(&str, &str)> = listed["replaced"].as_array().unwrap().iter().map(|r| (r["id"].as_str().unwrap(), r["state"].as_str().unwrap())).collect();
    assert!(states.contains(&(kept.as_str(), "undone")) && states.contains(&(restored_copy.as_str(), "kept")), "{listed}");
    let (status, redone) = app.post(&format!("/restores/{restored_copy}/undo"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{redone}");
    cleanup.push(redone["replaced_as"].as_str().unwrap().to_owned());
    assert_eq!(contents(&other_name, "t").await, t_before, "undoing the undo brings the restored copy back");

    // drop_replaced: the replaced database goes at once (and the record says so).
    let (status, dropped) = app
        .post("/restore", &json!({"backup_id": app_backup, "target_database": other_name, "confirm": other_name, "drop_replaced": true}))
        .await;
    assert_eq!(status, StatusCode::OK, "{dropped}");
    assert_eq!(dropped["replaced_dropped"], json!(true), "{dropped}");
    let gone = dropped["replaced_as"].as_str().unwrap().to_owned();
    assert!(databases(&[&gone]).await.is_empty(), "{gone} was dropped");
    let (_, listed) = app.get("/restores").await;
    assert_eq!(listed["replaced"][0]["state"], "dropped", "{listed}");

    for (path, want) in [("/restores/nope/undo", "replaced_not_found"), ("/restores/..%2F..%2Fetc/undo", "replaced_not_found")] {
        let (status, answer) = app.post(path, &json!({})).await;
        assert_eq!((status, code(&answer)), (StatusCode::NOT_FOUND, want), "{path}: {answer}");
    }
    // The CLI: `backup list --replaced` lists them; `restore undo` of an unknown id exits 4;
    // a refused `restore --drop-existing` without --confirm exits 1 and changes nothing.
    let config = location.0.join("dbagent.yaml");
    std::fs::write(&config, format!("backup:\n  location: {}\n  schedule: null\n", location.0.display())).unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_dbagent"))
            .arg("--config")
            .arg(&config)
            .arg("--json")
            .args(args)
            .env("DATABASE_URL", &app.db.url)
            .output()
            .expect("run dbagent");
        (out.status.code(), serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null), String::from_utf8_lossy(&out.stderr).to_string())
    };
    let (exit, listed, err) = cli(&["backup", "list", "--replaced"]);
    assert_eq!(exit, Some(0), "{err}");
    let kept_ids: Vec<&str> = listed.as_array().unwrap().iter().filter(|r| r["state"] == "kept").map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(kept_ids, [cleanup[2].as_str()], "{listed}");
    let (exit, _, err) = cli(&["restore", "undo", "nope"]);
    assert_eq!(exit, Some(4), "{err}");
    let listed_before = databases(&prefixes).await;
    let (exit, _, err) = cli(&["restore", &app_backup, "--target-database", &other_name, "--drop-existing"]);
    assert_eq!(exit, Some(1), "{err}");
    assert!(err.contains(&format!("\"confirm\": \"{other_name}\"")), "{err}");
    assert_eq!(databases(&prefixes).await, listed_before);
    eprintln!("destructive: restore over another database {restore_took:.2?}, undo (swap back) {undo_took:.2?}");
    admin.batch_execute(&format!("ALTER DATABASE {template} IS_TEMPLATE false")).await.unwrap();
    cleanup.push(template);
    drop_databases(server_url(), cleanup);
}

#[tokio::test]
async fn a_restore_over_dbagents_own_database_keeps_its_record_across_the_swaps_and_expired_ones_are_dropped_at_start() {
    // Arrange: the agent's database with a backup, then a row written after it.
    let location = Location::new("own");
    let dir = location.0.clone();
    let app = spawn_app_with(move |c| c.backup.location = dir).await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10)").await;
    let id = backup(&app).await;
    app.setup("INSERT INTO t VALUES (11)").await;
    let name = app.db.name.clone();

    // Act: its own backup over itself (no confirm needed), then undo.
    let (status, restored) = app.post("/restore", &json!({"backup_id": id, "drop_existing": true})).await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    let kept = restored["replaced_as"].as_str().unwrap().to_owned();
    let mut cleanup = vec![kept.clone()];
    assert_eq!(contents(&name, "t").await.len(), 10);
    assert_eq!(contents(&kept, "t").await.len(), 11);
    // The swap ended the agent's sessions on the database; the pool finds its feet.
    let mut listed = Value::Null;
    wait_until("GET /restores to answer after the swap", Duration::from_secs(10), async || {
        let (status, body) = app.get("/restores").await;
        listed = body;
        status == StatusCode::OK
    })
    .await;
    assert_eq!(listed["replaced"][0]["id"], json!(kept), "recorded in the restored copy: {listed}");

    let (status, undone) = app.post(&format!("/restores/{kept}/undo"), &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{undone}");
    let copy = undone["replaced_as"].as_str().unwrap().to_owned();
    cleanup.push(copy.clone());
    assert_eq!(contents(&name, "t").await.len(), 11, "the row written after the backup is back");
    // The swapped-back database never saw the restore; its record was carried over.
    let client = connect(&url(&name)).await;
    let rows = client.query("SELECT id, state FROM dbagent.replaced_databases ORDER BY replaced_at", &[]).await.unwrap();
    let states: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(states, [(kept.clone(), "undone".to_owned()), (copy.clone(), "kept".to_owned())]);

    // Expiry: the kept copy's time is up; an agent starting on the database drops it.
    client.execute("UPDATE dbagent.replaced_databases SET expires_at = now() - interval '1 minute' WHERE id = $1", &[&copy]).await.unwrap();
    drop(client);
    let started = Instant::now();
    let second = spawn_app_on(TestDb::existing(&url(&name)), |_| {}).await;
    let client = connect(&url(&name)).await;
    let state = async || -> String { client.query_one("SELECT state FROM dbagent.replaced_databases WHERE id = $1", &[&copy]).await.unwrap().get(0) };
    wait_until("the expired replaced database to be dropped and marked so", Duration::from_secs(20), async || {
        state().await == "dropped" && databases(&[&copy]).await.is_empty()
    })
    .await;
    eprintln!("destructive: expired replaced database dropped {:.2?} after the agent started", started.elapsed());
    drop(second);
    drop_databases(server_url(), cleanup);
}

#[tokio::test]
async fn keep_replaced_hours_zero_drops_the_replaced_database_after_the_swap() {
    let location = Location::new("zero");
    let dir = location.0.clone();
    let app = spawn_app_with(move |c| {
        c.backup.location = dir;
        c.backup.keep_replaced_hours = 0;
    })
    .await;
    app.setup("CREATE TABLE t (id int); INSERT INTO t VALUES (1)").await;
    let id = backup(&app).await;
    let (status, restored) = app.post("/restore", &json!({"backup_id": id, "drop_existing": true})).await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["replaced_dropped"], json!(true), "{restored}");
    assert!(databases(&[restored["replaced_as"].as_str().unwrap()]).await.is_empty());
}

#[tokio::test]
async fn the_newest_good_backup_is_deleted_only_with_force() {
    let location = Location::new("delete");
    let dir = location.0.clone();
    let app = spawn_app_with(move |c| c.backup.location = dir).await;
    app.setup("CREATE TABLE t (id int); INSERT INTO t VALUES (1)").await;
    let older = backup(&app).await;
    let newest = backup(&app).await;
    let delete = async |path: &str| {
        let response = app.http.delete(format!("{}{path}", app.address)).send().await.unwrap();
        let status = response.status();
        (status, response.json::<Value>().await.unwrap())
    };

    let (status, refused) = delete(&format!("/backups/{newest}")).await;
    assert_eq!((status, code(&refused)), (StatusCode::CONFLICT, "force_required"), "{refused}");
    assert!(message(&refused).contains("force"), "{refused}");
    let (_, listed) = app.get("/backups").await;
    let ids: Vec<&str> = listed["backups"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [newest.as_str(), older.as_str()], "the refused delete changed nothing");
    assert!(location.0.join(&newest).join("manifest.json").exists());

    let (status, gone) = delete(&format!("/backups/{older}")).await;
    assert_eq!(status, StatusCode::OK, "an older backup goes without force: {gone}");
    let (status, refused) = delete(&format!("/backups/{newest}")).await;
    assert_eq!(status, StatusCode::CONFLICT, "still the newest good one: {refused}");
    let (status, gone) = delete(&format!("/backups/{newest}?force=true")).await;
    assert_eq!(status, StatusCode::OK, "{gone}");
    assert!(!location.0.join(&newest).exists());
}

#[tokio::test]
async fn a_constraints_index_and_a_superusers_session_are_left_alone_without_force() {
    let app = spawn_app_with(|_| {}).await;
    app.setup("CREATE TABLE t (id int PRIMARY KEY, code text UNIQUE); INSERT INTO t VALUES (1, 'a')").await;
    let indexes = async || app.rows("SELECT indexname FROM pg_indexes WHERE tablename = 't' ORDER BY 1", json!([])).await;
    let before = indexes().await;
    for index in ["t_pkey", "t_code_key"] {
        let (status, refused) = app.post("/indexes", &json!({"action": "drop", "index": index})).await;
        assert_eq!((status, code(&refused)), (StatusCode::CONFLICT, "refused"), "{index}: {refused}");
        assert!(message(&refused).contains("constraint"), "{refused}");
    }
    assert_eq!(indexes().await, before, "a refused drop changed nothing");
    let (status, dup) = app.post("/query", &json!({"sql": "INSERT INTO t VALUES (1, 'b')"})).await;
    assert_eq!((status, code(&dup)), (StatusCode::CONFLICT, "constraint_violation"), "the key still holds: {dup}");

    // The test's own connection is a superuser's.
    let superuser = app.db.connect().await;
    let pid: i32 = superuser.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    for action in ["terminate", "cancel"] {
        let (status, refused) = app.post(&format!("/connections/{pid}/{action}"), &json!({})).await;
        assert_eq!((status, code(&refused)), (StatusCode::CONFLICT, "session_protected"), "{action}: {refused}");
        assert!(message(&refused).contains("superuser"), "{refused}");
    }
    let n: i64 = superuser.query_one("SELECT count(*) FROM t", &[]).await.expect("the session still serves").get(0);
    assert_eq!(n, 1);
}

#[tokio::test]
async fn migrate_down_past_a_down_file_that_loses_data_needs_confirm() {
    // Arrange: 1 creates a table with rows, 2 adds a column (its down drops it), 3 an index
    // (its down loses nothing).
    let location = Location::new("migrate");
    let migrations = location.0.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    for (file, sql) in [
        ("1_items.up.sql", "CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 3);"),
        ("1_items.down.sql", "DROP TABLE items;"),
        ("2_note.up.sql", "ALTER TABLE items ADD COLUMN note text; UPDATE items SET note = 'n' || id;"),
        ("2_note.down.sql", "ALTER TABLE items DROP COLUMN note;"),
        ("3_index.up.sql", "CREATE INDEX items_note ON items (note);"),
        ("3_index.down.sql", "DROP INDEX items_note;"),
    ] {
        std::fs::write(migrations.join(file), sql).unwrap();
    }
    let dir = migrations.clone();
    let app = spawn_app_with(move |c| {
        c.migrations.directory = dir;
        c.migrations.backup_before_migrate = false;
    })
    .await;
    let (status, up) = app.post("/migrate", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{up}");
    let (status, down) = app.post("/migrate", &json!({"direction": "downgrade"})).await;
    assert_eq!((status, down["version"].clone()), (StatusCode::OK, json!(2)), "a down file that loses nothing needs no confirm: {down}");
    let state = async || {
        let notes = app.rows("SELECT note FROM items ORDER BY id", json!([])).await;
        let history = app.rows("SELECT count(*) AS n FROM dbagent.migration_events", json!([])).await;
        (notes, history)
    };
    let before = state().await;

    // Refused: names the migration and the rule; nothing ran.
    for target in ["-1", "base"] {
        let (status, refused) = app.post("/migrate", &json!({"direction": "downgrade", "target": target})).await;
        assert_eq!((status, code(&refused)), (StatusCode::CONFLICT, "confirmation_required"), "{target}: {refused}");
        assert!(message(&refused).contains("migration 2 (drop-column items)") && message(&refused).contains("confirm"), "{refused}");
    }
    assert_eq!(state().await, before, "a refused downgrade changed nothing");

    // The dry run still shows the plan, with the warning.
    let (status, plan) = app.post("/migrate", &json!({"direction": "downgrade", "target": "base", "dry_run": true})).await;
    assert_eq!(status, StatusCode::OK, "{plan}");
    let rules: Vec<(i64, &str)> = plan["warnings"].as_array().unwrap().iter().map(|w| (w["version"].as_i64().unwrap(), w["rule"].as_str().unwrap())).collect();
    assert_eq!(rules, [(2, "drop-column"), (1, "drop-table")], "{plan}");
    assert!(plan["applied"].as_array().unwrap().iter().any(|m| m["sql"].as_str().is_some_and(|s| s.contains("DROP COLUMN note"))), "{plan}");
    assert_eq!(state().await, before);

    let (status, done) = app.post("/migrate", &json!({"direction": "downgrade", "confirm": true})).await;
    assert_eq!((status, done["version"].clone()), (StatusCode::OK, json!(1)), "{done}");
    let columns = app.rows("SELECT count(*) AS n FROM information_schema.columns WHERE table_name = 'items' AND column_name = 'note'", json!([])).await;
    assert_eq!(columns, [json!({"n": 0})]);
}
