//! The HTTP API (axum). Handlers parse, call the capability, and shape the answer; errors
//! become responses in [`error`] alone. This is the only module that knows HTTP; every request
//! carries an id ([`request_id`]) that its server errors are answered and logged with.

mod access;
mod advisor;
mod alerts;
mod answer;
pub mod auth;
mod backup;
mod compliance;
mod body;
pub mod edge;
pub mod error;
mod health;
mod keys;
mod metrics;
mod migrate;
mod ops;
pub mod openapi;
mod query;
mod replication;
pub mod request_id;
mod schema;
mod stats;
pub mod timing;
pub mod tls;
mod transaction;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::query::Executor;
use error::ApiError;

/// Largest request body accepted.
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// What every handler can reach: cheap handles only.
#[derive(Clone)]
pub struct AppState {
    pub executor: Arc<Executor>,
    pub config: Arc<Config>,
    pub started: Instant,
    pub replication: Arc<crate::replication::Supervisor>,
    pub migrations: Arc<crate::migrate::Service>,
    pub auto_migrate: Arc<crate::migrate::AutoMigrate>,
    pub backup: Arc<crate::backup::Settings>,
    pub backup_schedule: Arc<crate::backup::ScheduleStats>,
    pub wal_watch: Arc<crate::backup::WalWatch>,
    pub security: Arc<crate::security::Security>,
    pub monitor: Arc<crate::monitor::Monitor>,
    pub alerts: Arc<crate::alerts::Alerts>,
    pub maintenance_jobs: Arc<crate::ops::jobs::JobsStatus>,
}

/// The API's routes ([`auth::ROUTES`], each behind its access check).
pub fn router(state: AppState) -> Router {
    auth::routes(&state)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.monitor.requests.clone(), metrics::track))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(axum::middleware::from_fn(request_id::scope))
        .layer(axum::middleware::from_fn_with_state(state.config.server.server_timing, timing::layer))
        .with_state(state)
}

/// Every route template of [`router`] (each once), for the request metrics' fixed table.
pub fn route_paths() -> Vec<&'static str> {
    let mut paths: Vec<&'static str> = Vec::new();
    for spec in auth::ROUTES {
        if !paths.contains(&spec.path) {
            paths.push(spec.path);
        }
    }
    paths
}

/// `/metrics` alone, for `monitoring.prometheus.port` (a listener Prometheus scrapes without
/// reaching the API).
pub fn metrics_router(state: AppState) -> Router {
    // Behind the same check as on the API's port: with keys in use, Prometheus sends a read
    // key (`authorization: {credentials: ...}` in its scrape config).
    auth::only(&state, "GET", "/metrics")
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// tower-http's default span (at DEBUG), with the request's id.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = req.headers().get(&request_id::HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    tracing::debug_span!("request", method = %req.method(), uri = %req.uri(), version = ?req.version(), request_id = %id)
}

/// A bug must still answer in the common shape: an internal error, logged (with what the
/// panic said) under the request's id.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let said = panic.downcast_ref::<&str>().copied().or_else(|| panic.downcast_ref::<String>().map(String::as_str)).unwrap_or("?");
    ApiError::internal(format!("a request handler panicked: {said}")).into_response()
}
