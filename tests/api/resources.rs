//! Load and resources: big answers against the real binary's memory, the HTTP edge under idle
//! and slow clients, and SERIALIZABLE transfers from many clients at once. Each test prints
//! its figures (`resources: ...`) for RELIABILITY.md.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestDb, spawn_app_with, spawn_serve, wait_until};

/// `dbagent serve` as a process of its own (so its memory is its own), on `db`, with
/// `DBAGENT_*` overrides; stopped with SIGTERM when dropped.
struct Served {
    child: Child,
    address: String,
    dir: PathBuf,
}

impl Served {
    fn start(db: &TestDb, env: &[(&str, &str)]) -> Served {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("resources-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_dbagent"));
        command.args(["serve", "--port", "0"]).current_dir(&dir);
        for var in ["CONFIG_PATH", "DB_POOL_SIZE", "DB_MAX_OVERFLOW", "RUST_LOG"] {
            command.env_remove(var);
        }
        command
            .env("DATABASE_URL", &db.url)
            .env("DBAGENT_MONITORING__ENABLE", "false")
            .env("DBAGENT_ALERTS__ENABLED", "false")
            .env("DBAGENT_LOGGING__LEVEL", "warn");
        for (key, value) in env {
            command.env(key, value);
        }
        let (child, address) = spawn_serve(&mut command, Duration::from_secs(60));
        Served { child, address, dir }
    }

    /// A `/proc/<pid>/status` figure in kB (`VmRSS`, `VmHWM`).
    fn status_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(&format!("{field}:"))).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    fn socket_address(&self) -> String {
        self.address.trim_start_matches("http://").to_string()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> (StatusCode, Value) {
    let response = http.post(url).json(&body).send().await.expect("request");
    let status = response.status();
    (status, response.json().await.expect("a JSON answer"))
}

/// Ten requests at once, each for a 100 MB value, are refused with the clear 422 (the
/// default `max_response_bytes`, 64 MiB), as is the same inside `/transaction`; a
/// 1,000,000-row select answers truncated at `max_rows`. The process's peak stays within
/// the stated bound and its resident memory comes back near where it was.
#[tokio::test]
async fn big_answers_are_refused_in_bounded_memory_that_is_given_back() {
    let db = TestDb::create().await;
    let agent = Served::start(&db, &[]);
    let http = reqwest::Client::new();
    let query = format!("{}/query", agent.address);
    for _ in 0..20 {
        let (status, _) = post(&http, query.clone(), json!({"sql": "SELECT 1 AS n"})).await;
        assert_eq!(status, StatusCode::OK);
    }
    // Under the limit, a big value answers whole.
    let (status, body) = post(&http, query.clone(), json!({"sql": "SELECT repeat('x', 1000000) AS v"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["rows"][0]["v"].as_str().map(str::len), Some(1_000_000));
    let base = agent.status_kb("VmRSS");

    let started = Instant::now();
    let big = json!({"sql": "SELECT repeat($1, 100000000) AS big", "params": ["x"]});
    let answers = futures_util::future::join_all((0..10).map(|_| post(&http, query.clone(), big.clone()))).await;
    let spike = started.elapsed();
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "response_too_large", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("max_response_bytes (67108864 bytes)") && message.contains("LIMIT"), "{message}");
    }
    let (status, body) = post(
        &http,
        format!("{}/transaction", agent.address),
        json!({"queries": [{"sql": "SELECT 1 AS n"}, {"sql": "SELECT repeat('y', 100000000) AS big"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!((body["error"]["code"].as_str(), body["error"]["statement_index"].as_u64()), (Some("response_too_large"), Some(1)), "{body}");

    let (status, body) = post(&http, query.clone(), json!({"sql": "SELECT g, md5(g::text) AS h FROM generate_series(1, 1000000) g"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((body["truncated"].as_bool(), body["row_count"].as_u64()), (Some(true), Some(1_000_000)));
    assert_eq!(body["rows"].as_array().map(Vec::len), Some(10_000));

    let peak = agent.status_kb("VmHWM");
    // The driver reads each 100 MB row message whole (one copy per request in flight); the
    // JSON for it is never made. Bound: 1.5 copies per request plus the base.
    let bound = base + 10 * 150 * 1024;
    eprintln!(
        "resources: 10 x 100 MB values refused in {:.2} s; RSS base {:.1} MB, peak {:.1} MB (bound {:.0} MB)",
        spike.as_secs_f64(),
        mb(base),
        mb(peak),
        mb(bound)
    );
    assert!(peak < bound, "peak RSS {:.1} MB is over {:.0} MB", mb(peak), mb(bound));

    eprintln!("resources: RSS right after the spike {:.1} MB", mb(agent.status_kb("VmRSS")));
    let settled = Instant::now();
    wait_until("the memory of the spike to be given back", Duration::from_secs(10), async || {
        agent.status_kb("VmRSS") < base + 32 * 1024
    })
    .await;
    eprintln!(
        "resources: RSS after the spike {:.1} MB (base {:.1} MB), back within {:.2} s",
        mb(agent.status_kb("VmRSS")),
        mb(base),
        settled.elapsed().as_secs_f64()
    );
    // Still serving, on the same pool.
    let (status, _) = post(&http, query, json!({"sql": "SELECT 1 AS n"})).await;
    assert_eq!(status, StatusCode::OK);
}

/// Raises the test process's open-file limit (it opens thousands of sockets) and tells how
/// many it may open.
fn raise_own_file_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    getrlimit(Resource::RLIMIT_NOFILE).unwrap().0
}

/// Whether the server closed `stream` (reads EOF or a reset) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a 408 answer before the close
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
}

/// 5,000 idle connections and 50 clients sending their headers a byte every 200 ms do not
/// keep others from being served; the slow and the idle are disconnected once
/// `server.header_read_timeout` passes.
#[tokio::test]
async fn idle_and_slow_clients_do_not_stop_others_being_served() {
    let limit = raise_own_file_limit();
    let db = TestDb::create().await;
    let agent = Served::start(&db, &[("DBAGENT_SERVER__HEADER_READ_TIMEOUT", "2")]);
    let target = agent.socket_address();
    let idle_count = 5000.min(limit.saturating_sub(200) as usize);
    let opened = Instant::now();
    let idle: Vec<TcpStream> = (0..idle_count).map(|_| TcpStream::connect(&target).expect("open an idle connection")).collect();
    eprintln!("resources: {idle_count} idle connections opened in {:.2} s (open-file limit {limit})", opened.elapsed().as_secs_f64());

    let slow: Vec<_> = (0..50)
        .map(|_| {
            let target = target.clone();
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(&target).unwrap();
                let started = Instant::now();
                for byte in b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                    if stream.write_all(&[*byte]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                // Disconnected at the timeout: the writes fail, or the read sees the close.
                let closed = closed_within(&mut stream, Duration::from_secs(5));
                (closed, started.elapsed())
            })
        })
        .collect();

    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut latencies = Vec::new();
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let started = Instant::now();
        let live = http.get(format!("{}/health/live", agent.address)).send().await.expect("/health/live");
        assert_eq!(live.status(), StatusCode::OK);
        let (status, body) = post(&http, format!("{}/query", agent.address), json!({"sql": "SELECT 1 AS n"})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        latencies.push(started.elapsed());
    }
    latencies.sort();
    let (p50, max) = (latencies[latencies.len() / 2], latencies[latencies.len() - 1]);
    eprintln!(
        "resources: with {idle_count} idle and 50 slow clients, {} request pairs (/health/live + /query): p50 {:.1} ms, max {:.1} ms",
        latencies.len(),
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    assert!(max < Duration::from_secs(1), "a request took {max:?}");

    let mut slowest = Duration::ZERO;
    for handle in slow {
        let (closed, after) = handle.join().unwrap();
        assert!(closed, "a slow client was not disconnected");
        slowest = slowest.max(after);
    }
    // 2 s of timeout; the client notices on its next byte (200 ms) or read.
    assert!(slowest < Duration::from_secs(5), "a slow client was held for {slowest:?}");
    let mut idle = idle;
    let sample = idle.iter_mut().step_by(500).map(|s| closed_within(s, Duration::from_secs(5))).filter(|c| *c).count();
    eprintln!("resources: slow clients disconnected within {:.2} s; idle connections closed: {sample} of 10 sampled", slowest.as_secs_f64());
    assert_eq!(sample, idle.iter().step_by(500).count(), "idle connections outlived the header read timeout");
}

/// With `server.max_connections` taken by idle connections, a new client waits (it is not
/// refused) and is served as soon as one of them is closed.
#[tokio::test]
async fn past_max_connections_a_new_client_waits_for_a_free_one() {
    let db = TestDb::create().await;
    let agent = Served::start(&db, &[("DBAGENT_SERVER__MAX_CONNECTIONS", "4"), ("DBAGENT_SERVER__HEADER_READ_TIMEOUT", "60")]);
    let target = agent.socket_address();
    // Each connection is served one request and then stays open, idle: it was accepted and
    // holds a permit (the kernel completes handshakes whether or not the agent accepts).
    let mut idle: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = TcpStream::connect(&target).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            stream.write_all(b"GET /health/live HTTP/1.1\r\nHost: dbagent\r\n\r\n").unwrap();
            let mut answer = Vec::new();
            let mut buf = [0u8; 1024];
            while !answer.ends_with(b"}") {
                let n = stream.read(&mut buf).expect("an answer on the idle connection");
                assert!(n > 0, "the agent closed a connection it should keep: {}", String::from_utf8_lossy(&answer));
                answer.extend_from_slice(&buf[..n]);
            }
            assert!(answer.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
            stream
        })
        .collect();
    let http = reqwest::Client::new();
    let waiting = tokio::spawn({
        let url = format!("{}/health/live", agent.address);
        async move {
            let started = Instant::now();
            let status = http.get(url).send().await.map(|r| r.status());
            (status, started.elapsed())
        }
    });
    let hold = Duration::from_millis(700);
    tokio::time::sleep(hold).await;
    assert!(!waiting.is_finished(), "a fifth connection was served past max_connections = 4");
    drop(idle.pop());
    let (status, waited) = waiting.await.unwrap();
    assert_eq!(status.expect("the waiting client is served, not refused"), StatusCode::OK);
    eprintln!("resources: past max_connections a client waited {:.2} s, served once a connection closed", waited.as_secs_f64());
    assert!(waited >= hold);
}

/// 64 clients move money between 100 accounts in SERIALIZABLE transactions for 5 s: every
/// answer is a commit (conflicts retried inside dbagent, none reaching a client while retries
/// remain), money is neither made nor lost, and each committed transfer took effect once.
#[tokio::test]
async fn sixty_four_clients_transferring_keep_the_total_and_never_see_40001() {
    let app = spawn_app_with(|c| {
        c.transactions.max_retries = 30;
        c.postgresql.connection_pool.max_size = 20;
        c.postgresql.connection_pool.timeout = 30.0;
    })
    .await;
    app.setup(
        "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
         INSERT INTO accounts SELECT g, 1000 FROM generate_series(1, 100) g;
         CREATE TABLE transfers (id bigserial PRIMARY KEY, src int NOT NULL, dst int NOT NULL, amount bigint NOT NULL);",
    )
    .await;
    let until = Instant::now() + Duration::from_secs(5);
    let clients: Vec<_> = (0..64u64)
        .map(|client| {
            let (http, url) = (app.http.clone(), format!("{}/transaction", app.address));
            tokio::spawn(async move {
                let mut outcomes: Vec<(StatusCode, Value)> = Vec::new();
                let mut n = client;
                while Instant::now() < until {
                    n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let (from, to, amount) = ((n >> 33) % 100 + 1, (n >> 17) % 100 + 1, (n >> 7) % 50 + 1);
                    if from == to {
                        continue;
                    }
                    let body = json!({"isolation_level": "serializable", "queries": [
                        {"sql": "UPDATE accounts SET balance = balance - $2 WHERE id = $1", "params": [from, amount]},
                        {"sql": "UPDATE accounts SET balance = balance + $2 WHERE id = $1", "params": [to, amount]},
                        {"sql": "INSERT INTO transfers (src, dst, amount) VALUES ($1, $2, $3)", "params": [from, to, amount]}
                    ]});
                    outcomes.push(post(&http, url.clone(), body).await);
                }
                outcomes
            })
        })
        .collect();
    let mut committed = 0u64;
    let mut retries: Vec<u64> = Vec::new();
    for client in clients {
        for (status, body) in client.await.unwrap() {
            assert_eq!(status, StatusCode::OK, "a client saw a failure while retries remained: {body}");
            committed += 1;
            retries.push(body["retries"].as_u64().expect("the answer carries retries"));
        }
    }
    let total = app.rows("SELECT sum(balance)::bigint AS total, count(*) AS n FROM accounts", json!([])).await;
    assert_eq!((total[0]["total"].as_i64(), total[0]["n"].as_i64()), (Some(100_000), Some(100)));
    let logged = app.rows("SELECT count(*) AS n FROM transfers", json!([])).await;
    assert_eq!(logged[0]["n"].as_u64(), Some(committed), "every committed transfer is logged once");
    // Each account's balance is what its logged transfers say: none applied twice.
    let drift = app
        .rows(
            "SELECT count(*) AS n FROM accounts a WHERE a.balance <> 1000
               - coalesce((SELECT sum(amount) FROM transfers WHERE src = a.id), 0)
               + coalesce((SELECT sum(amount) FROM transfers WHERE dst = a.id), 0)",
            json!([]),
        )
        .await;
    assert_eq!(drift[0]["n"].as_i64(), Some(0));
    retries.sort();
    let retried: u64 = retries.iter().sum();
    eprintln!(
        "resources: 64 clients, 5 s: {committed} SERIALIZABLE transfers committed ({:.0}/s), {retried} retries in all, {} transactions retried, p50 {} max {} retries; 0 errors",
        committed as f64 / 5.0,
        retries.iter().filter(|r| **r > 0).count(),
        retries[retries.len() / 2],
        retries[retries.len() - 1]
    );
    assert!(committed > 64, "too few transfers to say anything: {committed}");
}
