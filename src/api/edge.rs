//! The HTTP edge: accepting connections and handing them to hyper, with the limits
//! `axum::serve` does not offer.
//!
//! - `server.max_connections`: a permit per connection; with none left the accept loop
//!   pauses, so new connections wait in the kernel's listen backlog (not refused) until one
//!   closes.
//! - `server.header_read_timeout`: hyper's HTTP/1 header timer. It runs whenever a connection
//!   waits for a request's head, so a slow client dribbling headers and an idle keep-alive
//!   connection are both closed once it passes.
//! - `server.tls`: the TLS handshake (bounded by the header read timeout too) before hyper;
//!   a connection whose first byte is not a TLS handshake gets a short plain `400` and is
//!   closed.
//! - Graceful shutdown as before: stop accepting, let requests in flight finish, close idle
//!   connections at once.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// What the edge enforces (from `server:`).
#[derive(Debug, Clone, Copy)]
pub struct EdgeLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Connections the kernel keeps waiting for `accept` (it caps this at `net.core.somaxconn`):
/// tokio's default, 1024, overflowed when thousands of clients connected at once, and each
/// overflowed client waited a second for its SYN to be sent again.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `bind:port` with [`LISTEN_BACKLOG`].
pub async fn bind(bind: &str, port: u16) -> std::io::Result<TcpListener> {
    let mut last = None;
    for address in tokio::net::lookup_host((bind, port)).await? {
        let socket = match address {
            std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(address).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "the address resolves to nothing")))
}

/// Serves `router` on `listener` (over TLS with `tls`) until `stop` completes, then drains as
/// described above.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: EdgeLimits,
    tls: Option<TlsAcceptor>,
    stop: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let stopping = tokio_util::sync::CancellationToken::new();
    let mut stop = std::pin::pin!(stop);
    let mut warned = false;
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if !warned {
                    tracing::warn!(max_connections = limits.max_connections, "server.max_connections reached: new connections wait until one closes");
                    warned = true;
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                    () = &mut stop => break,
                }
            }
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let (router, tls) = (router.clone(), tls.clone());
        let (builder, watcher, first_byte_within) = (builder.clone(), graceful.watcher(), limits.header_read_timeout);
        let stopping = stopping.clone();
        tokio::spawn(async move {
            // hyper's header timer starts once it knows the protocol, which takes a first byte:
            // a client that never sends one is dropped here after the same time (or at shutdown).
            let mut first = [0u8; 1];
            tokio::select! {
                peeked = tokio::time::timeout(first_byte_within, stream.peek(&mut first)) => match peeked {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return,
                },
                () = stopping.cancelled() => return,
            }
            match tls {
                None => serve_io(&builder, TokioIo::new(stream), router, remote, watcher).await,
                Some(_) if first[0] != super::tls::HANDSHAKE => refuse_plain(stream).await,
                Some(acceptor) => {
                    let handshake = tokio::select! {
                        done = tokio::time::timeout(first_byte_within, acceptor.accept(stream)) => done,
                        () = stopping.cancelled() => return,
                    };
                    match handshake {
                        Ok(Ok(stream)) => serve_io(&builder, TokioIo::new(stream), router, remote, watcher).await,
                        Ok(Err(err)) => tracing::debug!(error = %err, %remote, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    drop(listener);
    stopping.cancel();
    graceful.shutdown().await;
    Ok(())
}

/// Serves one connection (plain or TLS) with hyper until it ends or the shutdown closes it.
async fn serve_io<I>(builder: &Builder<TokioExecutor>, io: I, router: Router, remote: SocketAddr, watcher: Watcher)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = router.map_request(move |mut request: axum::http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(remote));
        request
    });
    let connection = builder.serve_connection(io, TowerToHyperService::new(service));
    if let Err(err) = watcher.watch(connection.into_owned()).await {
        tracing::trace!(error = %err, %remote, "connection ended");
    }
}

/// Answers a plain-HTTP request on the HTTPS port with a short 400, then closes.
async fn refuse_plain(mut stream: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let _ = stream.write_all(super::tls::PLAIN_HTTP_REFUSAL).await;
    let _ = stream.shutdown().await;
}

/// Accept errors are the connection's or the process's (out of descriptors): neither ends the
/// server. Out of descriptors, wait a little for some to close (as `axum::serve` does).
async fn accept_failed(err: std::io::Error) {
    let per_connection = matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
    );
    if !per_connection {
        tracing::error!(error = %err, "accepting a connection failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Raises this process's open-file soft limit to its hard limit (each connection takes a
/// descriptor; the usual soft limit, 1024, is far below `server.max_connections`).
pub fn raise_open_file_limit() -> Option<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_err() {
        return Some(soft);
    }
    Some(hard)
}
