//! Property-based API testing: Schemathesis generates requests from the agent's own
//! `/openapi.json` (valid ones and, in its negative mode, invalid ones) and checks every
//! answer: never a 5xx, every body and content type as the document says. The agent runs on
//! a cluster of its own, with an admin key, so every route can be reached and nothing it
//! does touches other tests.
//!
//! Schemathesis is installed into `target/tools/venv` by `scripts/setup.sh` (the test
//! command runs it). The examples per operation are bounded to fit CI; the seed is fixed so a
//! failure reproduces (`DBAGENT_SCHEMATHESIS_SEED` and `DBAGENT_SCHEMATHESIS_EXAMPLES` override).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use dbagent::config::{Config, KeysRequired, Secret};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_managed_app;

const ADMIN: &str = "schemathesis-admin-key-0123456789abcdefghij";

#[tokio::test]
async fn generated_requests_never_get_a_server_error_and_answers_match_the_document() {
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/venv/bin/schemathesis");
    assert!(tool.exists(), "{} is missing: run `bash scripts/setup.sh` (the test command does)", tool.display());
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("schemathesis-{}", uuid::Uuid::new_v4().simple()));
    let app = {
        let root = root.clone();
        spawn_managed_app(move |c: &mut Config| {
            c.security.api_keys_required = KeysRequired::Yes;
            c.security.admin_key = Some(Secret::new(ADMIN));
            c.security.default_rate = 100_000.0;
            c.backup.location = root.join("backups");
            c.migrations.directory = root.join("migrations");
        })
        .await
    };
    let (status, body) = {
        let response = app
            .http
            .post(format!("{}/query", app.address))
            .bearer_auth(ADMIN)
            .json(&json!({"sql": "CREATE TABLE accounts (id int PRIMARY KEY, email text)"}))
            .send()
            .await
            .unwrap();
        (response.status(), response.text().await.unwrap())
    };
    assert_eq!(status, StatusCode::OK, "{body}");

    let seed = std::env::var("DBAGENT_SCHEMATHESIS_SEED").unwrap_or_else(|_| "1".into());
    let examples = std::env::var("DBAGENT_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "10".into());
    let report = root.join("report");
    let mut command = Command::new(&tool);
    command
        .arg("run")
        .arg(format!("{}/openapi.json", app.address))
        .args(["--header", &format!("Authorization: Bearer {ADMIN}")])
        .args(["--checks", "not_a_server_error,response_schema_conformance,content_type_conformance"])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--no-shrink", "--workers", "2", "--request-timeout", "60", "--no-color"])
        .args(["--generation-database", "none", "--output-truncate", "false"])
        .arg("--report-dir")
        .arg(&report)
        .current_dir(&root)
        .env("SCHEMATHESIS_TELEMETRY", "false");
    std::fs::create_dir_all(&root).unwrap();
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Vec<&str> = stdout.lines().filter(|l| l.contains("generated") || l.contains("Seed:") || l.contains(" in ")).collect();
    eprintln!("schemathesis: {} in {:.0} s", summary.join(" | ").trim(), started.elapsed().as_secs_f64());
    assert!(
        output.status.success(),
        "schemathesis found failures (seed {seed}):\n{}\n{}",
        stdout.split("FAILURES").nth(1).unwrap_or(&stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    app.stop().await;
    let _ = std::fs::remove_dir_all(&root);
}
