//! `GET /metrics` (Prometheus text format), `GET /metrics/history`, and the middleware that
//! counts every request by route template (axum's `MatchedPath`), method and status class.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::stats::Params;
use crate::monitor::RequestMetrics;
use crate::monitor::history::{self, History, HistoryRequest};
use crate::monitor::scrape::Scrape;

/// The exposition format's content type (text format 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders the agent's counters and the collector's last read; reads no database. 404 with
/// `monitoring.prometheus: false`.
pub async fn scrape(State(state): State<AppState>) -> Response {
    if !state.config.monitoring.prometheus.enable {
        return ApiError::not_found("Prometheus metrics are turned off (monitoring.prometheus)").into_response();
    }
    let monitor = &state.monitor;
    let executor = &state.executor;
    let backups = (state.backup.schedule.is_some() && state.config.backup.enable).then(|| state.backup_schedule.snapshot());
    let text = Scrape {
        stats: &executor.stats,
        requests: &monitor.requests,
        pools: executor.pools.stats(),
        up: executor.pools.primary().is_healthy(),
        cache: executor.cache.as_deref().map(|c| c.stats()),
        backups,
        wal: state.wal_watch.freshness(&state.backup),
        remote: state.backup.remote.as_ref().map(|r| r.status()),
        collector: monitor.collector.as_deref(),
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        alerts: state.config.alerts.enabled.then_some(&*state.alerts),
    }
    .render();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

/// Aligned series from `dbagent.metrics_history` for charts and alert rules.
pub async fn history(State(state): State<AppState>, Params(req): Params<HistoryRequest>) -> Result<Json<History>, ApiError> {
    let settings = &state.config.monitoring;
    Ok(Json(history::read(&state.executor.pools, &req, settings).await?))
}

/// Counts the request under its route template once it is answered (or, if the client went
/// away first, with status 499 as nginx logs it). Allocation-free: the route is an index
/// into a table built at start, the method a standard one (cloning it copies no bytes).
pub async fn track(State(metrics): State<Arc<RequestMetrics>>, req: Request, next: Next) -> Response {
    let route = metrics.route(req.extensions().get::<MatchedPath>().map(MatchedPath::as_str));
    let mut guard = Tracked { metrics: &metrics, route, method: req.method().clone(), started: Instant::now(), status: 499 };
    metrics.started();
    let response = next.run(req).await;
    guard.status = response.status().as_u16();
    drop(guard);
    response
}

struct Tracked<'a> {
    metrics: &'a RequestMetrics,
    route: usize,
    method: Method,
    started: Instant,
    status: u16,
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.metrics.finished(self.route, &self.method, self.status, self.started.elapsed());
    }
}
