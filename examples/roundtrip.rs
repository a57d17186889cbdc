//! One client's round trips through tokio-postgres alone, no HTTP and no dbagent: the
//! experiment behind issue 22 (`bench/roundtrip.sh` runs it beside pgbench).
//!
//! dbagent's p99 at one client was 2–12× pgbench's, and its `Server-Timing` put the whole tail
//! in the `db` stage (statement handed to the connection until its rows are in). This program
//! runs the same prepared point read (workload A) the way dbagent drives a connection and two
//! other ways, so the tail can be pinned on the driver, the runtime or neither:
//!
//! - `spawned`: a multi-thread runtime (tokio's default, as `dbagent serve`), the connection in
//!   a task of its own, the client loop in another: each statement is two cross-task wake-ups
//!   that may cross worker threads.
//! - `current`: the same two tasks on a current-thread runtime: the hops stay, the threads go.
//! - `inline`: one task polls the connection and the query together (`select!`): no hop at all,
//!   like pgbench's single loop.
//!
//! And servers for wrk, which bench/roundtrip.sh runs beside `dbagent serve`:
//! - `serve`: the control for everything dbagent adds: the smallest HTTP server (axum, as
//!   dbagent) that answers `POST /query` by running the statement with the aid from the body
//!   through one spawned-connection client, measured by wrk exactly as dbagent is. `serve1`:
//!   the same on a current-thread runtime. Its `GET /ping` answers without the database (the
//!   HTTP hop alone). `serve-std`: a blocking std::net server, a thread per connection, that
//!   answers every request as `/ping` does: the HTTP hop without tokio or hyper.
//!
//! Usage: `roundtrip MODE SECONDS URL [SCALE]`. Prints one line:
//! `mode=... n=... p50_us=... p99_us=... p999_us=... max_us=...`.
//! `roundtrip serve|serve1 PORT URL` and `roundtrip serve-std PORT -` serve until killed (port 0:
//! any port, printed on stderr as `listening on PORT`).

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, seconds, url, rest @ ..] = args.as_slice() else {
        eprintln!("usage: roundtrip spawned|current|inline SECONDS URL [SCALE] | roundtrip serve|serve1 PORT URL | roundtrip serve-std PORT -");
        std::process::exit(2);
    };
    if mode == "serve-std" {
        return serve_std(seconds.parse().expect("PORT is a number"));
    }
    if mode == "serve" || mode == "serve1" {
        let port: u16 = seconds.parse().expect("PORT is a number");
        let runtime = if mode == "serve1" {
            tokio::runtime::Builder::new_current_thread().enable_all().build()
        } else {
            tokio::runtime::Builder::new_multi_thread().enable_all().build()
        };
        return runtime.expect("runtime").block_on(serve(port, url));
    }
    let seconds: f64 = seconds.parse().expect("SECONDS is a number");
    let scale: i32 = rest.first().map_or(10, |s| s.parse().expect("SCALE is a number"));
    let runtime = match mode.as_str() {
        "current" => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        "spawned" | "inline" => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    }
    .expect("runtime");
    let duration = Duration::from_secs_f64(seconds);
    let inline = mode == "inline";
    let url = url.clone();
    let mut latencies = runtime.block_on(async move {
        // The loop runs in a task of its own, as a request handler does.
        tokio::spawn(async move { run(&url, duration, scale, inline).await }).await.expect("client task")
    });
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "mode={mode} n={} p50_us={} p99_us={} p999_us={} max_us={}",
        latencies.len(),
        at(0.50),
        at(0.99),
        at(0.999),
        latencies.last().copied().unwrap_or(0)
    );
}

async fn run(url: &str, duration: Duration, scale: i32, inline: bool) -> Vec<u32> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    // What the loop polls beside each query: the connection itself (inline), or nothing.
    let mut connection: Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>> = if inline {
        Box::pin(connection)
    } else {
        tokio::spawn(async move { connection.await.expect("connection") });
        Box::pin(std::future::pending())
    };
    let statement = tokio::select! {
        s = client.prepare("SELECT abalance FROM pgbench_accounts WHERE aid = $1") => s.expect("prepare"),
        r = &mut connection => panic!("connection ended: {r:?}"),
    };
    let mut latencies = Vec::with_capacity(200_000);
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let rows = 100_000 * scale as u64;
    // One second of warm-up, not measured (pgbench and wrk get one too in bench/roundtrip.sh).
    let measure_from = Instant::now() + Duration::from_secs(1);
    let end = measure_from + duration;
    while Instant::now() < end {
        // xorshift64: a uniform aid without a dependency for it.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let aid = (seed % rows) as i32 + 1;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&aid];
        let start = Instant::now();
        tokio::select! {
            biased;
            r = &mut connection => panic!("connection ended: {r:?}"),
            row = client.query_one(&statement, &params) => { row.expect("query"); }
        }
        if start >= measure_from {
            latencies.push(start.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        }
    }
    latencies
}

/// `POST /query` with workload A's body (`{"sql": ..., "params": [aid]}`): the aid is the
/// number after the body's last `[`; the answer has the shape bench/query.lua checks.
async fn serve(port: u16, url: &str) {
    use std::sync::Arc;
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(async move { connection.await.expect("connection") });
    let statement = client.prepare("SELECT abalance FROM pgbench_accounts WHERE aid = $1").await.expect("prepare");
    let state = Arc::new((client, statement));
    let app = axum::Router::new().route("/ping", axum::routing::get(|| async { "{\"success\":true}" })).route(
        "/query",
        axum::routing::post(move |body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                let text = std::str::from_utf8(&body).unwrap_or("");
                let aid: i32 = text.rsplit('[').next().and_then(|t| t.trim_end_matches([']', '}']).parse().ok()).unwrap_or(1);
                let row = state.0.query_one(&state.1, &[&aid]).await.expect("query");
                let balance: i32 = row.get(0);
                ([(axum::http::header::CONTENT_TYPE, "application/json")], format!(r#"{{"success":true,"data":[{{"abalance":{balance}}}]}}"#))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    eprintln!("listening on {}", listener.local_addr().expect("address").port());
    axum::serve(listener, app).await.expect("serve");
}

/// A blocking HTTP/1.1 server with a thread per connection, no tokio and no hyper, that answers
/// every request with `/ping`'s body: whether the HTTP hop's tail belongs to the async stack.
fn serve_std(port: u16) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
    eprintln!("listening on {}", listener.local_addr().expect("address").port());
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || {
            let _ = stream.set_nodelay(true);
            let mut writer = stream.try_clone().expect("clone");
            let mut reader = BufReader::new(stream);
            let answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 16\r\n\r\n{\"success\":true}";
            loop {
                let mut length = 0usize;
                let mut line = String::new();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() || writer.write_all(answer).is_err() {
                    return;
                }
            }
        });
    }
}
