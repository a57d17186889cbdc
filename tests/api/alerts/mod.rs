//! Alerts driven by real traffic: a saturated pool fires the pool rule within its `for:` and
//! resolves after, delivered once to a webhook (Alertmanager's format), Slack and email
//! receivers started here; acknowledgements stop repeats, silences hold notifications back,
//! a receiver that is down gets retries and shows in `/health`; a failing scheduled backup and
//! a stopped replica fire their rules. Intervals are short so each test takes seconds.
//!
//! `mod.rs` holds the receivers (HTTP and SMTP) and the common arrangement; `notify.rs` the
//! lifecycle as the receivers see it, `rules.rs` what fires which rule, `cli.rs` the command
//! line and the Prometheus export.

mod cli;
mod notify;
mod rules;

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
