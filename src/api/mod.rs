//! The HTTP API (axum). Handlers parse, call the capability, and shape the answer; errors
//! become responses in [`error`] alone. This module and `web` are the only ones that know HTTP.

mod advisor;
mod backup;
mod body;
pub mod error;
mod health;
mod migrate;
mod query;
mod schema;
mod stats;
mod transaction;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
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
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/query", post(query::handle))
        .route("/transaction", post(transaction::handle))
        .route("/health", get(health::full))
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/schema", get(schema::list))
        .route("/schema/{table}", get(schema::describe))
        .route("/stats/replication", get(stats::replication))
        .route("/optimize", post(advisor::optimize))
        .route("/indexes", post(advisor::indexes))
        .route("/backup", post(backup::create))
        .route("/backups", get(backup::list))
        .route("/backups/prune", post(backup::prune))
        .route("/backups/status", get(backup::status))
        .route("/backups/{id}", get(backup::get).delete(backup::delete))
        .route("/backups/{id}/download", get(backup::download))
        .route("/backups/{id}/verify", post(backup::verify))
        .route("/restore", post(backup::restore))
        .route("/migrate", post(migrate::migrate))
        .route("/migrations", get(migrate::list))
        .route("/migrations/autogenerate", post(migrate::autogenerate))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this endpoint does not take that method")
}

/// A bug must still answer in the common shape (and be logged as one).
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    tracing::error!("a request handler panicked");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error").into_response()
}
