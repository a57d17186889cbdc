//! The command line as a person meets it: read-only commands never create or start a
//! database server; commands that need one start the managed instance, say so, and stop it
//! after (unless --keep-running); tables put the columns people look for first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::helpers::TestDb;

/// A fresh empty directory to run the binary in.
fn workdir(what: &str) -> PathBuf {
    // Short: the managed instance's socket directory lives under it (Unix socket paths are
    // limited to about 100 bytes).
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{what}-{}", &id[..8]));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `dbagent args...` in `dir` with no configuration but `env`.
fn dbagent(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dbagent"));
    command.args(args).current_dir(dir);
    for var in ["DATABASE_URL", "CONFIG_PATH", "DB_POOL_SIZE", "DB_MAX_OVERFLOW", "RUST_LOG", "REDIS_URL"] {
        command.env_remove(var);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("run dbagent")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn read_only_commands_with_nothing_configured_say_how_to_start_and_create_nothing() {
    let dir = workdir("readonly");
    for args in [&["health"][..], &["schema"], &["schema", "erd"], &["migrate", "status"], &["migrate", "history"], &["migrate", "current"]] {
        let out = dbagent(&dir, args, &[]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains("dbagent instance start") && stderr.contains("DATABASE_URL"), "{args:?}: {stderr}");
        assert!(!dir.join(".dbagent/pgdata/PG_VERSION").exists(), "{args:?} ran initdb");
    }
    // backup list reads the backup location only.
    let out = dbagent(&dir, &["backup", "list"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("no backups yet"));
    assert!(!dir.join(".dbagent/pgdata/PG_VERSION").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_command_that_needs_a_database_starts_the_managed_one_and_stops_it_after() {
    let dir = workdir("managed");
    let pid_file = dir.join(".dbagent/pgdata/postmaster.pid");
    let out = dbagent(&dir, &["query", "SELECT 40 + 2 AS answer"], &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(text(&out.stdout).contains("42"));
    assert!(stderr.contains("creating and starting the managed PostgreSQL instance"), "{stderr}");
    assert!(!pid_file.exists(), "the instance it started is stopped again");

    // --keep-running leaves it up; read-only commands then use it, and say nothing about it.
    let out = dbagent(&dir, &["query", "SELECT 1", "--keep-running"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("starting the managed PostgreSQL instance"));
    assert!(pid_file.exists(), "--keep-running leaves it running");
    let out = dbagent(&dir, &["health"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("starting"), "{}", text(&out.stderr));
    let out = dbagent(&dir, &["query", "SELECT 1"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(pid_file.exists(), "an instance that was already running stays running");

    let out = dbagent(&dir, &["instance", "stop"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn migrate_history_and_status_show_what_people_look_for_first() {
    let db = TestDb::create().await;
    let dir = workdir("history");
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).unwrap();
    std::fs::write(migrations.join("20260101000000_create_users.up.sql"), "CREATE TABLE users (id int PRIMARY KEY, email text);").unwrap();
    std::fs::write(migrations.join("20260101000000_create_users.down.sql"), "DROP TABLE users;").unwrap();
    std::fs::write(migrations.join("20260102000000_add_name.up.sql"), "ALTER TABLE users ADD name text;").unwrap();
    let env = [("DATABASE_URL", db.url.as_str()), ("DBAGENT_MIGRATIONS__BACKUP_BEFORE_MIGRATE", "false")];
    let out = dbagent(&dir, &["migrate", "up", "--target", "+1"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));

    let out = dbagent(&dir, &["migrate", "history"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let cells = |line: &str| -> Vec<String> { line.split(['│', '┆']).map(str::trim).filter(|c| !c.is_empty()).map(str::to_owned).collect() };
    let header = cells(table.lines().nth(1).unwrap());
    assert_eq!(header, ["version", "name", "kind", "when (UTC)", "by", "duration", "backup", "checksum"], "{table}");
    let row = cells(table.lines().nth(3).unwrap());
    assert_eq!(&row[..3], ["20260101000000", "create_users", "apply"], "{table}");
    assert_eq!(row.last().unwrap().len(), 12, "checksum shortened: {table}");
    assert!(row[5].ends_with("ms") || row[5].ends_with(" s"), "duration in human units: {table}");

    let out = dbagent(&dir, &["migrate", "history", "--json"], &env);
    let events: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(events[0]["checksum"].as_str().unwrap().len(), 64, "--json keeps everything: {events}");

    let out = dbagent(&dir, &["migrate", "status"], &env);
    let status = text(&out.stdout);
    assert!(status.starts_with("current version: 20260101000000\n"), "{status}");
    let lines: Vec<&str> = status.lines().collect();
    assert!(lines.iter().any(|l| l.contains("20260101000000") && l.contains("create_users") && l.contains("applied")), "{status}");
    assert!(lines.iter().any(|l| l.contains("20260102000000") && l.contains("pending, irreversible")), "{status}");
    assert!(status.trim_end().ends_with("1 applied, 1 pending"), "{status}");
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn schema_documents_and_seed_generate_from_the_command_line() {
    let db = TestDb::create().await;
    db.connect().await.batch_execute("CREATE TABLE teams (id serial PRIMARY KEY, name text NOT NULL); CREATE TABLE members (id serial PRIMARY KEY, team_id int NOT NULL REFERENCES teams, email text UNIQUE);").await.unwrap();
    let dir = workdir("docs");
    let env = [("DATABASE_URL", db.url.as_str())];
    let out = dbagent(&dir, &["seed", "generate", "--table", "members", "--rows", "20", "--seed", "5"], &env);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(stdout.contains("public.teams") && stdout.contains("parent") && stdout.contains("--seed 5"), "{stdout}");

    let out = dbagent(&dir, &["schema", "erd"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("members }o..|| teams : \"team_id\""), "{}", text(&out.stdout));
    let out = dbagent(&dir, &["schema", "dictionary", "--table", "members"], &env);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("## public.members"), "{}", text(&out.stdout));
    let out = dbagent(&dir, &["schema"], &env);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("members"));
    std::fs::remove_dir_all(&dir).ok();
}
