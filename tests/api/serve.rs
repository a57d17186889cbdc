//! Serving: the zero-configuration start (the real binary, no configuration, an empty
//! directory), and the graceful shutdown every test app goes through.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_serve};

/// The postmaster's pid from its pid file (first line).
fn postmaster_pid(data_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()
}

#[tokio::test]
async fn serve_with_no_configuration_runs_its_own_postgres_and_leaves_nothing_behind() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("serve-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_dbagent"));
    command.args(["serve", "--port", "0"]).current_dir(&dir);
    for var in ["DATABASE_URL", "CONFIG_PATH", "DB_POOL_SIZE", "DB_MAX_OVERFLOW", "RUST_LOG"] {
        command.env_remove(var);
    }
    // It prints where it listens once the instance is up and the API is bound.
    let (mut child, address) = spawn_serve(&mut command, Duration::from_secs(120));
    let data_dir = dir.join(".dbagent/pgdata");
    let pid = postmaster_pid(&data_dir).expect("the managed instance runs in ./.dbagent/pgdata");

    let http = reqwest::Client::new();
    let health: Value = http.get(format!("{address}/health")).send().await.unwrap().json().await.unwrap();
    assert_eq!(health["status"], "healthy", "{health:#}");
    let answer: Value =
        http.post(format!("{address}/query")).json(&json!({"sql": "SELECT 40 + 2 AS n"})).send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["rows"], json!([{"n": 42}]), "{answer:#}");

    // SIGTERM: the API drains, the pools close, the instance stops; nothing is left running.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "dbagent did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    // Dead means gone, or a zombie waiting for PID 1 (not our child) to reap it.
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(), "the postmaster (pid {pid}) is still running");
    assert!(!data_dir.join("postmaster.pid").exists(), "the server did not shut down cleanly");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn stopping_lets_the_requests_in_flight_finish_and_takes_no_new_ones() {
    let app = spawn_app().await;
    let sql = "SELECT pg_sleep(1) /* in flight at shutdown */";
    let (http, address) = (app.http.clone(), app.address.clone());
    let in_flight = tokio::spawn(async move {
        let response = http.post(format!("{address}/query")).json(&json!({"sql": sql})).send().await.expect("request");
        (response.status(), response.text().await.expect("body"))
    });
    app.wait_for_running(sql, 1).await;
    let (http, address) = (app.http.clone(), app.address.clone());

    app.stop().await;

    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(http.get(format!("{address}/health/live")).send().await.is_err(), "still serving after the shutdown");
}
