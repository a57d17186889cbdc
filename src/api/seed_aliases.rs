//! Seed 004's routes (`/api/database/...`), each an alias of a dbagent route with the same
//! handler, kept in one router so that they can be put behind scopes (and dropped one day)
//! together. The README lists them beside their dbagent names.
//!
//! Seed 004 routes with no dbagent equivalent yet (404 like any unknown path):
//! `GET /api/database/metrics/history`, `GET /api/database/alerts`,
//! `GET /api/database/connections/details`, `POST /api/database/connections/close-idle`,
//! `GET /api/database/performance/analyze`, `POST /api/database/performance/optimize`,
//! `GET /api/database/security/audit`, `GET /api/database/security/compliance`,
//! `PUT /api/database/security/settings`.

use axum::Router;
use axum::routing::{get, post};

use super::{AppState, backup, health};

/// Seed 004's paths → dbagent's handlers.
pub fn router() -> Router<AppState> {
    Router::new()
        // → GET /health
        .route("/api/database/health", get(health::full))
        // → the pools of GET /health
        .route("/api/database/connections/stats", get(health::connections))
        // → GET /backups, POST /backup (seed 004's `backup_type`, `custom_name`)
        .route("/api/database/backups", get(backup::list).post(backup::create))
        // → GET /backups/{id}
        .route("/api/database/backups/{id}", get(backup::get))
        // → GET /backups/{id}/download
        .route("/api/database/backups/{id}/download", get(backup::download))
        // → POST /backups/{id}/verify
        .route("/api/database/backups/{id}/validate", post(backup::verify))
        // → POST /restore, with `confirm: true` required (it replaces the database)
        .route("/api/database/restore", post(backup::restore_confirmed))
}
