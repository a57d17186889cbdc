//! `Server-Timing` (W3C Server Timing) on every answer when `server.server_timing` is on: the
//! request's stages as [`crate::timing`] recorded them. For finding a stall with evidence: a
//! browser's developer tools show the header, and `bench/run.sh` with `BENCH_TIMING=1` turns it
//! into per-stage percentiles beside the client's own.
//!
//! The stages of `POST /query`: `read` (from the request's headers to the handler: the body,
//! its parsing, the key check and the other middleware), `classify`, `acquire` (a connection,
//! shared or its own), `db` (the statement sent, its rows received and copied), `json` (the
//! answer written), and `total`. Other routes answer `total` and the marks their path passes.

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// The middleware: with `on`, records the request's stages and answers them.
pub async fn layer(State(on): State<bool>, req: Request, next: Next) -> Response {
    if !on {
        return next.run(req).await;
    }
    let (mut response, header) = crate::timing::scope(next.run(req)).await;
    if let Ok(value) = HeaderValue::from_str(&header) {
        response.headers_mut().insert("server-timing", value);
    }
    response
}
