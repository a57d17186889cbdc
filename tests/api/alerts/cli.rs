//! `dbagent alerts ...` and the exported Prometheus rules.

use super::*;

#[tokio::test]
async fn exported_rules_pass_promtool() {
    // The CLI's `alerts export-rules` (no database needed) into a file promtool checks.
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("alert-rules-{}.yml", uuid::Uuid::new_v4().simple()));
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_dbagent"))
        .args(["alerts", "export-rules", "--output"])
        .arg(&path)
        .env("ALERT_CONNECTION_THRESHOLD", "0.75")
        .output()
        .await
        .expect("run dbagent");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rules = std::fs::read_to_string(&path).unwrap();
    assert!(rules.contains("sum(pg_stat_database_numbackends) / max(pg_settings_max_connections) * 100 >= 75"), "{rules}");
    let check = tokio::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .await
        .expect("promtool is missing: run scripts/setup.sh (Debian package `prometheus`)");
    assert!(check.status.success(), "promtool check rules failed:\n{}{}\n{rules}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    let _ = std::fs::remove_file(path);
}

/// `dbagent alerts ...` on the test's database: the same calls as the routes.
async fn cli(db: &crate::helpers::TestDb, args: &[&str]) -> (Option<i32>, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_dbagent"));
    command.args(args).current_dir(env!("CARGO_TARGET_TMPDIR")).env("DATABASE_URL", &db.url);
    for var in ["CONFIG_PATH", "DB_POOL_SIZE", "DB_MAX_OVERFLOW", "RUST_LOG", "REDIS_URL"] {
        command.env_remove(var);
    }
    let out = command.output().await.expect("run dbagent");
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test]
async fn the_cli_silences_lists_evaluates_and_names_what_is_missing() {
    let db = crate::helpers::TestDb::create().await;
    let (code, out, err) = cli(&db, &["alerts", "silence", "--rule", "pool_saturation", "--duration", "2h", "--comment", "upgrade", "--json"]).await;
    assert_eq!(code, Some(0), "{err}");
    let silence: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((silence["rule"].as_str(), silence["created_by"].as_str()), (Some("pool_saturation"), Some("cli")));
    let (code, out, err) = cli(&db, &["alerts", "silences", "--json"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()[0]["id"], silence["id"]);
    let (code, out, err) = cli(&db, &["alerts", "rules"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("pool_saturation") && out.contains("connections_used_pct") && out.contains("primary: 0"), "{out}");
    let (code, out, err) = cli(&db, &["alerts", "list", "--state", "all", "--json"]).await;
    assert_eq!((code, out.trim()), (Some(0), "[]"), "{err}");
    let (code, _, err) = cli(&db, &["alerts", "ack", "nope"]).await;
    assert_eq!(code, Some(4), "not found: {err}");
    let (code, _, err) = cli(&db, &["alerts", "test", "--channel", "nope"]).await;
    assert_eq!(code, Some(4), "no such channel: {err}");
}
