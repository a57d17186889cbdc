//! Alerts driven by real traffic: a saturated pool fires the pool rule within its `for:` and
//! resolves after, delivered once to a webhook (Alertmanager's format), Slack and email
//! receivers started here; acknowledgements stop repeats, silences hold notifications back,
//! a receiver that is down gets retries and shows in `/health`; a failing scheduled backup and
//! a stopped replica fire their rules. Intervals are short so each test takes seconds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use dbagent::config::{Channel, ChannelKind, Config, Delivery, Level, RuleOverride, Secret, SmtpSecurity};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::helpers::{TestApp, spawn_app_with, wait_until};

/// What a webhook receiver got: path, body, when.
type Received = Arc<Mutex<Vec<(String, Value, Instant)>>>;

/// A local HTTP receiver: records every POST; answers 500 while `down`.
struct Receiver {
    url: String,
    received: Received,
    down: Arc<AtomicBool>,
    attempts: Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Clone)]
struct ReceiverState {
    received: Received,
    down: Arc<AtomicBool>,
    attempts: Arc<std::sync::atomic::AtomicU64>,
}

async fn take(State(s): State<ReceiverState>, uri: Uri, axum::Json(body): axum::Json<Value>) -> StatusCode {
    s.attempts.fetch_add(1, Ordering::Relaxed);
    if s.down.load(Ordering::Relaxed) {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    s.received.lock().unwrap().push((uri.path().to_string(), body, Instant::now()));
    StatusCode::OK
}

async fn receiver() -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = ReceiverState { received: Arc::default(), down: Arc::default(), attempts: Arc::default() };
    let app = axum::Router::new().route("/{*path}", axum::routing::post(take)).with_state(state.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { url, received: state.received, down: state.down, attempts: state.attempts }
}

impl Receiver {
    /// Bodies posted to `path`.
    fn bodies(&self, path: &str) -> Vec<(Value, Instant)> {
        self.received.lock().unwrap().iter().filter(|(p, _, _)| p == path).map(|(_, b, t)| (b.clone(), *t)).collect()
    }

    /// Webhook bodies (`/hook`) with `status`.
    fn hooks(&self, status: &str) -> Vec<(Value, Instant)> {
        self.bodies("/hook").into_iter().filter(|(b, _)| b["status"] == status).collect()
    }
}

/// A minimal SMTP server (no TLS, no auth): enough for one client to hand over messages,
/// which it keeps whole (headers and body).
async fn smtp_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let messages: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = messages.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(smtp_session(stream, kept.clone()));
        }
    });
    (port, messages)
}

async fn smtp_session(stream: tokio::net::TcpStream, messages: Arc<Mutex<Vec<String>>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 localhost test SMTP\r\n").await?;
    while let Some(line) = lines.next_line().await? {
        let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" | "HELO" => b"250 localhost\r\n",
            "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut message = String::new();
                while let Some(line) = lines.next_line().await? {
                    if line == "." {
                        break;
                    }
                    message.push_str(&line);
                    message.push('\n');
                }
                messages.lock().unwrap().push(message);
                b"250 OK queued\r\n"
            }
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 not implemented\r\n",
        };
        write.write_all(answer).await?;
    }
    Ok(())
}

fn channel(name: &str, kind: ChannelKind, url: Option<String>, rule: &str) -> Channel {
    Channel {
        name: name.into(),
        kind,
        url: url.map(Secret::new),
        to: if kind == ChannelKind::Email { vec!["dba@example.org".into()] } else { Vec::new() },
        min_level: Level::Warning,
        rules: vec![rule.into()],
        send_resolved: true,
    }
}

/// Alerts on, evaluated every 200 ms, the pool rule firing after `for_seconds` at 2
/// connections, the channels given, quick retries.
fn alerting(config: &mut Config, for_seconds: f64, channels: Vec<Channel>) {
    config.alerts.enabled = true;
    config.alerts.evaluation_interval = 0.2;
    config.alerts.dashboard_url = Some("http://dashboard.test".into());
    config.alerts.delivery = Delivery { retries: 2, backoff: 0.1, max_backoff: 0.4, timeout: 2.0 };
    config.alerts.rules.insert("pool_saturation".into(), RuleOverride { for_seconds: Some(for_seconds), ..RuleOverride::default() });
    config.alerts.channels = channels;
    config.postgresql.connection_pool.max_size = 2;
    config.postgresql.connection_pool.timeout = 10.0;
}

/// Both pooled connections busy for `seconds` (transactions, so each holds its own).
async fn saturate(app: &TestApp, seconds: u32) -> Vec<tokio::task::JoinHandle<StatusCode>> {
    let sql = format!("SELECT pg_sleep({seconds})");
    let sleepers = (0..2)
        .map(|_| {
            let (http, address, sql) = (app.http.clone(), app.address.clone(), sql.clone());
            tokio::spawn(async move { http.post(format!("{address}/transaction")).json(&json!({"queries": [{"sql": sql}]})).send().await.unwrap().status() })
        })
        .collect();
    app.wait_for_running(&sql, 2).await;
    sleepers
}

async fn the_alert(app: &TestApp, rule: &str) -> Value {
    let (status, body) = app.get(&format!("/alerts?state=all&rule={rule}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["alerts"][0].clone()
}

#[tokio::test]
async fn a_saturated_pool_fires_once_within_its_for_to_every_channel_and_resolves_after() {
    // Arrange: a webhook, a Slack webhook and an email channel for the pool rule.
    let hooks = receiver().await;
    let (smtp_port, mails) = smtp_receiver().await;
    let channels = vec![
        channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "pool_saturation"),
        channel("slack", ChannelKind::Slack, Some(format!("{}/slack", hooks.url)), "pool_saturation"),
        channel("mail", ChannelKind::Email, None, "pool_saturation"),
    ];
    let app = spawn_app_with(move |c| {
        alerting(c, 1.0, channels);
        c.alerts.smtp.server = Some("127.0.0.1".into());
        c.alerts.smtp.port = smtp_port;
        c.alerts.smtp.security = SmtpSecurity::None;
        c.alerts.smtp.from = Some("dbagent@example.org".into());
    })
    .await;

    // Act: both connections busy for 4 s.
    let sleepers = saturate(&app, 4).await;
    let saturated_at = Instant::now();
    wait_until("the firing notification", Duration::from_secs(5), async || !hooks.hooks("firing").is_empty()).await;
    let detected = hooks.hooks("firing")[0].1 - saturated_at;
    eprintln!("pool_saturation detection latency (for: 1 s, evaluation every 200 ms): {} ms", detected.as_millis());

    // Assert: fired after its `for:` (not before), in Alertmanager's format, and listed.
    assert!(detected >= Duration::from_millis(900) && detected < Duration::from_secs(4), "{detected:?}");
    let firing = hooks.hooks("firing")[0].0.clone();
    assert_eq!((firing["version"].as_str(), firing["receiver"].as_str()), (Some("4"), Some("ops")), "{firing:#}");
    let labels = &firing["alerts"][0]["labels"];
    assert_eq!((labels["alertname"].as_str(), labels["severity"].as_str(), labels["subject"].as_str()), (Some("pool_saturation"), Some("critical"), Some("primary")));
    assert_eq!(firing["alerts"][0]["annotations"]["value"], "100%");
    let alert = the_alert(&app, "pool_saturation").await;
    assert_eq!((alert["state"].as_str(), alert["severity"].as_str()), (Some("firing"), Some("critical")), "{alert:#}");

    // No duplicate while it keeps firing.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(hooks.hooks("firing").len(), 1, "one firing notification while firing");

    // Resolved once the connections are free again.
    for s in sleepers {
        assert_eq!(s.await.unwrap(), StatusCode::OK);
    }
    wait_until("the resolved notification", Duration::from_secs(5), async || !hooks.hooks("resolved").is_empty()).await;
    let resolved = hooks.hooks("resolved")[0].0.clone();
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");

    // Slack: a formatted message with level, value, threshold and the dashboard link.
    wait_until("both Slack messages", Duration::from_secs(5), async || hooks.bodies("/slack").len() == 2).await;
    let slack = hooks.bodies("/slack")[0].0.to_string();
    for part in ["[FIRING:CRITICAL] pool_saturation on primary", "*Level*\\nCRITICAL", "*Value*\\n100%", "*Threshold*\\n100%", "http://dashboard.test/alerts/"] {
        assert!(slack.contains(part), "{part} in {slack}");
    }
    // Email: both messages through the SMTP server.
    wait_until("both emails", Duration::from_secs(5), async || mails.lock().unwrap().len() == 2).await;
    let mail = mails.lock().unwrap()[0].clone();
    assert!(mail.contains("Subject: [dbagent] [FIRING:CRITICAL] pool_saturation on primary"), "{mail}");
    assert!(mail.contains("To: dba@example.org") && mail.contains("Threshold: 100%"), "{mail}");

    // The alert's history says what happened, deliveries included.
    wait_until("the deliveries in the history", Duration::from_secs(5), async || {
        let alert = the_alert(&app, "pool_saturation").await;
        alert["history"].as_array().unwrap().iter().filter(|e| e["kind"] == "delivered").count() == 6
    })
    .await;
    let alert = the_alert(&app, "pool_saturation").await;
    let kinds: Vec<&str> = alert["history"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in ["pending", "firing", "notified", "resolved"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert_eq!(alert["state"], "resolved");
    app.stop().await;
}

#[tokio::test]
async fn an_acknowledged_alert_stops_repeating() {
    // Arrange: the pool rule fires at once and repeats every 400 ms.
    let hooks = receiver().await;
    let hook = channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "pool_saturation");
    let app = spawn_app_with(move |c| {
        alerting(c, 0.0, vec![hook]);
        c.alerts.repeat_interval = 0.4;
    })
    .await;
    let sleepers = saturate(&app, 5).await;
    wait_until("repeated notifications", Duration::from_secs(5), async || hooks.hooks("firing").len() >= 3).await;

    // Act
    let id = the_alert(&app, "pool_saturation").await["id"].as_str().unwrap().to_string();
    let (status, body) = app.post(&format!("/alerts/{id}/ack"), &json!({"comment": "looking into it"})).await;

    // Assert: who and why are kept; no more repeats (one may have been in flight).
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["alert"]["acked_by"].as_str(), body["alert"]["ack_comment"].as_str()), (Some("api"), Some("looking into it")));
    tokio::time::sleep(Duration::from_millis(800)).await;
    let after_ack = hooks.hooks("firing").len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(hooks.hooks("firing").len(), after_ack, "acknowledged: no more repeats");
    let (status, _) = app.post("/alerts/nope/ack", &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for s in sleepers {
        s.await.unwrap();
    }
    app.stop().await;
}

#[tokio::test]
async fn a_silence_holds_notifications_back_until_it_ends() {
    // Arrange: a silence on the pool rule, then a saturated pool.
    let hooks = receiver().await;
    let hook = channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "pool_saturation");
    let app = spawn_app_with(move |c| alerting(c, 0.0, vec![hook])).await;
    let (status, body) = app.post("/silences", &json!({"rule": "pool_saturation", "duration": "1h", "comment": "maintenance"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let silence = body["silence"]["id"].as_str().unwrap().to_string();
    let sleepers = saturate(&app, 4).await;

    // Act: it fires, silenced.
    wait_until("the alert to fire", Duration::from_secs(5), async || the_alert(&app, "pool_saturation").await["state"] == "firing").await;
    tokio::time::sleep(Duration::from_millis(600)).await;

    // Assert: nothing sent, and the history says why; once the silence ends it is sent.
    assert!(hooks.hooks("firing").is_empty(), "silenced");
    let alert = the_alert(&app, "pool_saturation").await;
    assert!(alert["history"].as_array().unwrap().iter().any(|e| e["kind"] == "silenced"), "{alert:#}");
    let (status, listed) = app.get("/silences").await;
    assert_eq!((status, listed["silences"][0]["id"].as_str()), (StatusCode::OK, Some(silence.as_str())));
    let status = app.http.delete(format!("{}/silences/{silence}", app.address)).send().await.unwrap().status();
    assert_eq!(status, StatusCode::OK);
    wait_until("the notification after the silence", Duration::from_secs(3), async || hooks.hooks("firing").len() == 1).await;
    let (status, body) = app.post("/silences", &json!({"rule": "pool_saturation"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a silence needs an end: {body}");
    for s in sleepers {
        s.await.unwrap();
    }
    app.stop().await;
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_retries_and_the_failure_shows_in_health_and_metrics() {
    // Arrange: the receiver answers 500.
    let hooks = receiver().await;
    hooks.down.store(true, Ordering::Relaxed);
    let hook = channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "pool_saturation");
    let app = spawn_app_with(move |c| alerting(c, 0.0, vec![hook])).await;

    // Act
    let sleepers = saturate(&app, 3).await;
    wait_until("the delivery to fail after its retries", Duration::from_secs(5), async || {
        app.get("/health").await.1["alerts"]["channels"][0]["failed"].as_u64() == Some(1)
    })
    .await;

    // Assert: 1 + 2 retries, visible in /health (degraded), /metrics and the history.
    assert_eq!(hooks.attempts.load(Ordering::Relaxed), 3);
    let (_, health) = app.get("/health").await;
    let ops = &health["alerts"]["channels"][0];
    assert_eq!((ops["retries"].as_u64(), ops["failing"].as_bool()), (Some(2), Some(true)), "{health:#}");
    assert!(ops["last_error"].as_str().unwrap().contains("500"), "{health:#}");
    assert_eq!(health["status"], "degraded");
    let metrics = app.http.get(format!("{}/metrics", app.address)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("dbagent_alert_notifications_total{channel=\"ops\",outcome=\"failed\"} 1"), "{metrics}");
    assert!(metrics.contains("dbagent_alerts_firing{rule=\"pool_saturation\",severity=\"critical\"} 1"), "{metrics}");
    wait_until("the failure in the alert's history", Duration::from_secs(3), async || {
        the_alert(&app, "pool_saturation").await["history"].as_array().unwrap().iter().any(|e| e["kind"] == "delivery_failed")
    })
    .await;
    // And a test notification now: refused with the reason.
    let (status, body) = app.post("/alerts/test", &json!({"channel": "ops"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("notification_failed")), "{body}");
    hooks.down.store(false, Ordering::Relaxed);
    let (status, body) = app.post("/alerts/test", &json!({"channel": "ops"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app.post("/alerts/test", &json!({"channel": "nope"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for s in sleepers {
        s.await.unwrap();
    }
    app.stop().await;
}

#[tokio::test]
async fn the_rules_endpoint_shows_each_rule_with_its_value_and_state() {
    let app = spawn_app_with(|c| alerting(c, 30.0, Vec::new())).await;
    let sleepers = saturate(&app, 2).await;
    wait_until("a pending pool alert", Duration::from_secs(5), async || {
        let (_, body) = app.get("/alerts/rules").await;
        let rules = body["rules"].as_array().cloned().unwrap_or_default();
        rules.iter().any(|r| r["name"] == "pool_saturation" && r["observations"][0]["state"] == "pending")
    })
    .await;
    let (_, body) = app.get("/alerts/rules").await;
    assert_eq!(body["leader"], true);
    // What one evaluation costs, over a few (the first also runs the slow checks and retention).
    let mut took = Vec::new();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        took.push(app.get("/alerts/rules").await.1["evaluation_ms"].as_f64().unwrap());
    }
    took.sort_by(f64::total_cmp);
    eprintln!("one evaluation (all rules, one database read, acknowledgements and silences, one active alert written): median {} ms, max {} ms", took[5], took[9]);
    let rules = body["rules"].as_array().unwrap();
    let pool = rules.iter().find(|r| r["name"] == "pool_saturation").unwrap();
    assert_eq!((pool["warning"].as_f64(), pool["critical"].as_f64(), pool["for_seconds"].as_f64()), (Some(80.0), Some(100.0), Some(30.0)));
    assert_eq!(pool["observations"][0]["value"], 100.0);
    let down = rules.iter().find(|r| r["name"] == "database_down").unwrap();
    assert_eq!(down["observations"][0]["value"], 0.0, "{down:#}");
    for s in sleepers {
        s.await.unwrap();
    }
    app.stop().await;
}

#[tokio::test]
async fn a_failing_scheduled_backup_fires_the_backup_alert() {
    // Arrange: one scheduled tick a few seconds from now, made to fail before its manifest.
    use chrono::{Datelike, Timelike};
    let hooks = receiver().await;
    let hook = channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "backup_failed");
    let location = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("alerts-backups-{}", uuid::Uuid::new_v4().simple()));
    let tick = (chrono::Utc::now() + chrono::Duration::seconds(4)).with_nanosecond(0).unwrap();
    let cron = format!("{} {} {} {} {} * {}", tick.second(), tick.minute(), tick.hour(), tick.day(), tick.month(), tick.year());
    let dir = location.clone();
    let app = spawn_app_with(move |c| {
        alerting(c, 0.0, vec![hook]);
        c.backup.location = dir;
        c.backup.schedule = Some(cron);
    })
    .await;
    dbagent::failpoints::arm("backup-before-manifest", &app.db.name, 1);

    // Act: the tick comes and its backup fails.
    wait_until("the scheduled backup to fail", Duration::from_secs(20), async || {
        app.get("/health").await.1["backups"]["failed"].as_u64() == Some(1)
    })
    .await;
    let failed_at = Instant::now();
    wait_until("the backup alert", Duration::from_secs(5), async || !hooks.hooks("firing").is_empty()).await;
    eprintln!("backup_failed detection latency (evaluation every 200 ms): {} ms", (hooks.hooks("firing")[0].1 - failed_at).as_millis());

    // Assert
    let firing = hooks.hooks("firing")[0].0.clone();
    let labels = &firing["alerts"][0]["labels"];
    assert_eq!((labels["alertname"].as_str(), labels["severity"].as_str(), labels["subject"].as_str()), (Some("backup_failed"), Some("critical"), Some("scheduled")));
    let alert = the_alert(&app, "backup_failed").await;
    assert_eq!(alert["state"], "firing", "{alert:#}");
    app.stop().await;
    let _ = std::fs::remove_dir_all(location);
}

#[tokio::test]
async fn a_stopped_replica_fires_the_replica_alert() {
    // Arrange: a primary and a streaming replica of the test's own, the replica rule at 1 s.
    use dbagent::instance;
    let root = format!("alerts-replica-{}", uuid::Uuid::new_v4().simple());
    let primary_settings = crate::helpers::test_instance_settings(&format!("{root}/primary"));
    let replica_settings = crate::helpers::test_instance_settings(&format!("{root}/replica"));
    let primary = crate::helpers::start_instance(&primary_settings);
    let replica = instance::create_replica(&primary, &replica_settings).await.expect("replica");
    let hooks = receiver().await;
    let hook = channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "replica_not_streaming");
    let app = crate::helpers::spawn_app_on(crate::helpers::TestDb::existing(&primary.url("postgres")), |c| {
        c.postgresql.url = Some(Secret::new(primary.url("postgres")));
        c.postgresql.read_replicas = vec![dbagent::config::Replica { url: Some(Secret::new(replica.url("postgres"))), ..Default::default() }];
        alerting(c, 0.0, vec![hook]);
        c.alerts.rules.insert("replica_not_streaming".into(), RuleOverride { for_seconds: Some(1.0), ..RuleOverride::default() });
    })
    .await;
    wait_until("the replica to be seen streaming", Duration::from_secs(10), async || {
        let (_, body) = app.get("/alerts/rules").await;
        let rules = body["rules"].as_array().cloned().unwrap_or_default();
        rules.iter().any(|r| r["name"] == "replica_not_streaming" && r["observations"][0]["value"] == 0.0)
    })
    .await;

    // Act
    instance::stop(&replica_settings, instance::StopMode::Fast).await.expect("stop the replica");
    let stopped_at = Instant::now();
    wait_until("the replica alert", Duration::from_secs(15), async || !hooks.hooks("firing").is_empty()).await;
    let detected = hooks.hooks("firing")[0].1 - stopped_at;
    eprintln!("replica_not_streaming detection latency (for: 1 s, health checks every second, evaluation every 200 ms): {} ms", detected.as_millis());

    // Assert
    let labels = hooks.hooks("firing")[0].0["alerts"][0]["labels"].clone();
    assert_eq!((labels["alertname"].as_str(), labels["severity"].as_str()), (Some("replica_not_streaming"), Some("critical")), "{labels}");
    assert!(detected >= Duration::from_secs(1), "not before its for: {detected:?}");
    app.stop().await;
    instance::stop(&primary_settings, instance::StopMode::Fast).await.unwrap();
    let _ = std::fs::remove_dir_all(primary_settings.data_dir.parent().unwrap());
}

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

#[tokio::test]
async fn a_custom_rule_over_the_history_fires() {
    // Arrange: the history sampled every second; a rule of the user's over one of its series.
    let hooks = receiver().await;
    let hook = channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "pool_busy");
    let app = spawn_app_with(move |c| {
        alerting(c, 0.0, vec![hook]);
        c.monitoring.enable = true;
        c.monitoring.sample_interval = 1.0;
        c.monitoring.collect_interval = 1.0;
        c.alerts.custom = vec![dbagent::config::CustomRule {
            name: "pool_busy".into(),
            metric: "pool_utilization_pct".into(),
            op: ">=".into(),
            warning: Some(50.0),
            critical: None,
            for_seconds: 0.0,
            labels: [("team".to_string(), "dba".to_string())].into(),
            summary: None,
        }];
    })
    .await;

    // Act
    let sleepers = saturate(&app, 4).await;
    wait_until("the custom rule to fire", Duration::from_secs(6), async || !hooks.hooks("firing").is_empty()).await;

    // Assert: its labels travel with it.
    let labels = hooks.hooks("firing")[0].0["alerts"][0]["labels"].clone();
    assert_eq!((labels["alertname"].as_str(), labels["severity"].as_str(), labels["team"].as_str()), (Some("pool_busy"), Some("warning"), Some("dba")), "{labels}");
    for s in sleepers {
        s.await.unwrap();
    }
    app.stop().await;
}

#[tokio::test]
async fn a_database_that_goes_down_is_notified_and_recorded_once_it_is_back() {
    // Arrange: a server of the test's own, the database_down rule at 1 s.
    use dbagent::instance;
    let root = format!("alerts-down-{}", uuid::Uuid::new_v4().simple());
    let settings = crate::helpers::test_instance_settings(&format!("{root}/primary"));
    let primary = crate::helpers::start_instance(&settings);
    let hooks = receiver().await;
    let hook = channel("ops", ChannelKind::Webhook, Some(format!("{}/hook", hooks.url)), "database_down");
    let app = crate::helpers::spawn_app_on(crate::helpers::TestDb::existing(&primary.url("postgres")), |c| {
        c.postgresql.url = Some(Secret::new(primary.url("postgres")));
        alerting(c, 0.0, vec![hook]);
        c.alerts.rules.insert("database_down".into(), RuleOverride { for_seconds: Some(1.0), ..RuleOverride::default() });
    })
    .await;
    wait_until("a first evaluation", Duration::from_secs(5), async || app.get("/alerts/rules").await.1["leader"] == true).await;

    // Act: the server stops; the agent cannot write the alert, but it notifies.
    instance::stop(&settings, instance::StopMode::Fast).await.expect("stop the server");
    let stopped_at = Instant::now();
    wait_until("the database_down notification", Duration::from_secs(10), async || !hooks.hooks("firing").is_empty()).await;
    eprintln!("database_down detection latency (for: 1 s, health checks every second): {} ms", (hooks.hooks("firing")[0].1 - stopped_at).as_millis());
    crate::helpers::start_instance(&settings);
    wait_until("the resolved notification", Duration::from_secs(15), async || !hooks.hooks("resolved").is_empty()).await;

    // Assert: once back, the alert is in the table with its whole story.
    wait_until("the alert written", Duration::from_secs(5), async || {
        let (status, body) = app.get("/alerts?state=all&rule=database_down").await;
        status == StatusCode::OK && body["alerts"][0]["state"] == "resolved"
    })
    .await;
    let alert = the_alert(&app, "database_down").await;
    let kinds: Vec<&str> = alert["history"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
    for kind in ["pending", "firing", "notified", "resolved"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    app.stop().await;
    instance::stop(&settings, instance::StopMode::Fast).await.unwrap();
    let _ = std::fs::remove_dir_all(settings.data_dir.parent().unwrap());
}

#[tokio::test]
async fn one_of_two_agents_evaluates_and_the_other_takes_over_when_it_stops() {
    // Arrange: two agents on one database (kept until the end: neither agent owns it).
    let db = crate::helpers::TestDb::create().await;
    let first = crate::helpers::spawn_app_on(crate::helpers::TestDb::existing(&db.url), |c| alerting(c, 0.0, Vec::new())).await;
    let second = crate::helpers::spawn_app_on(crate::helpers::TestDb::existing(&db.url), |c| alerting(c, 0.0, Vec::new())).await;
    let leader = async |app: &TestApp| app.get("/alerts/rules").await.1["leader"] == true;
    wait_until("a leader", Duration::from_secs(5), async || leader(&first).await || leader(&second).await).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Assert: exactly one evaluates.
    let (a, b) = (leader(&first).await, leader(&second).await);
    assert!(a != b, "one leader: first {a}, second {b}");

    // Act: the leader stops; the other takes over within an interval or two.
    let (stopping, staying) = if a { (first, second) } else { (second, first) };
    let stopped_at = Instant::now();
    stopping.stop().await;
    wait_until("the other agent to take over", Duration::from_secs(5), async || leader(&staying).await).await;
    eprintln!("alert leadership taken over {} ms after the leader began stopping", stopped_at.elapsed().as_millis());
    staying.stop().await;
    drop(db);
}
