//! A TCP proxy between the agent and PostgreSQL that a test can make hostile: delay every
//! chunk, drop every open connection, or stop forwarding (accept, read, never pass anything
//! on: a blackhole, as a dead router or a partitioned network looks from the client).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

struct State {
    upstream: String,
    delay_ms: AtomicU64,
    blackhole: AtomicBool,
    /// Replaced by `drop_connections`: every connection task watches the token it started with.
    drop: std::sync::Mutex<CancellationToken>,
}

/// The proxy; it stops when dropped.
pub struct Proxy {
    pub port: u16,
    state: Arc<State>,
    stop: CancellationToken,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            upstream: upstream.to_string(),
            delay_ms: AtomicU64::new(0),
            blackhole: AtomicBool::new(false),
            drop: std::sync::Mutex::new(CancellationToken::new()),
        });
        let stop = CancellationToken::new();
        let (accept_state, accept_stop) = (state.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let client = tokio::select! {
                    _ = accept_stop.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((client, _)) => client,
                        Err(_) => continue,
                    },
                };
                let dropped = accept_state.drop.lock().unwrap().clone();
                let stopped = accept_stop.clone();
                tokio::spawn(relay(client, accept_state.clone(), dropped, stopped));
            }
        });
        Proxy { port, state, stop }
    }

    /// Delays every chunk in either direction by `ms`.
    pub fn delay(&self, ms: u64) {
        self.state.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Closes every open connection (new ones are still accepted).
    pub fn drop_connections(&self) {
        let mut token = self.state.drop.lock().unwrap();
        token.cancel();
        *token = CancellationToken::new();
    }

    /// Accepts and reads but never forwards anything, either way, on old and new connections.
    pub fn stop_forwarding(&self) {
        self.state.blackhole.store(true, Ordering::SeqCst);
    }

    /// Back to normal: no delay, forwarding (connections blackholed so far stay dead: their
    /// bytes were swallowed, so they are closed).
    pub fn heal(&self) {
        self.state.delay_ms.store(0, Ordering::SeqCst);
        if self.state.blackhole.swap(false, Ordering::SeqCst) {
            self.drop_connections();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.state.drop.lock().unwrap().cancel();
    }
}

async fn relay(client: TcpStream, state: Arc<State>, dropped: CancellationToken, stopped: CancellationToken) {
    // A blackhole accepts but never connects upstream: the client's start-up packet vanishes.
    let mut swallowed = false;
    while state.blackhole.load(Ordering::SeqCst) {
        swallowed = true;
        tokio::select! {
            _ = dropped.cancelled() => return,
            _ = stopped.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    if swallowed {
        return;
    }
    let Ok(server) = TcpStream::connect(&state.upstream).await else { return };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, state.clone());
    let down = pump(server_read, client_write, state);
    tokio::select! {
        _ = dropped.cancelled() => {}
        _ = stopped.cancelled() => {}
        _ = async { tokio::join!(up, down) } => {}
    }
}

/// Copies `from` to `to`, chunk by chunk, delayed; while blackholed, reads and discards.
async fn pump(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, state: Arc<State>) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let delay = state.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if state.blackhole.load(Ordering::SeqCst) {
            // Swallowed: this connection can never be consistent again; keep it open and
            // silent until the proxy is healed (which closes it) or dropped.
            loop {
                if from.read(&mut buffer).await.map_or(true, |n| n == 0) {
                    break;
                }
            }
            break;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
