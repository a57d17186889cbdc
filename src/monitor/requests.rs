//! HTTP request metrics without locks or per-request allocation: the routes are known when
//! the router is built, so each gets an index; a request bumps one counter of a fixed
//! `[route][method][status class]` table and one histogram of its route. Also the security
//! counters the auth layer bumps (`dbagent_auth_failures_total`, `dbagent_rate_limited_total`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::histogram::{Histogram, HistogramSnapshot};

/// The label of requests that matched no route (404s, probes).
pub const UNMATCHED: &str = "unmatched";

const METHODS: [&str; 8] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "OTHER"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Why an API key was refused (`reason` label of `dbagent_auth_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Missing,
    Invalid,
    Expired,
    Revoked,
    ForbiddenIp,
}

impl AuthFailure {
    pub const ALL: [AuthFailure; 5] =
        [AuthFailure::Missing, AuthFailure::Invalid, AuthFailure::Expired, AuthFailure::Revoked, AuthFailure::ForbiddenIp];

    pub fn label(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Invalid => "invalid",
            AuthFailure::Expired => "expired",
            AuthFailure::Revoked => "revoked",
            AuthFailure::ForbiddenIp => "forbidden_ip",
        }
    }
}

/// Request counters and latency histograms per route.
#[derive(Debug)]
pub struct RequestMetrics {
    /// Route templates (`/backups/{id}`); the last one is [`UNMATCHED`].
    routes: Vec<&'static str>,
    index: HashMap<&'static str, usize>,
    /// `[route][method][class]`.
    counts: Vec<AtomicU64>,
    durations: Vec<Histogram>,
    in_flight: AtomicU64,
    auth_failures: [AtomicU64; AuthFailure::ALL.len()],
    rate_limited: AtomicU64,
}

impl RequestMetrics {
    /// Metrics for `routes` (the router's path templates); requests on any other path count
    /// under `route="unmatched"`, so the label set is fixed at start.
    pub fn new(routes: &[&'static str]) -> RequestMetrics {
        let mut all: Vec<&'static str> = routes.to_vec();
        all.dedup();
        all.push(UNMATCHED);
        let index = all.iter().enumerate().map(|(i, r)| (*r, i)).collect();
        RequestMetrics {
            counts: (0..all.len() * METHODS.len() * CLASSES.len()).map(|_| AtomicU64::default()).collect(),
            durations: (0..all.len()).map(|_| Histogram::default()).collect(),
            routes: all,
            index,
            in_flight: AtomicU64::default(),
            auth_failures: Default::default(),
            rate_limited: AtomicU64::default(),
        }
    }

    /// The index of `route` (a matched path template), or of [`UNMATCHED`].
    pub fn route(&self, route: Option<&str>) -> usize {
        route.and_then(|r| self.index.get(r).copied()).unwrap_or(self.routes.len() - 1)
    }

    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// One request on route index `route` finished with `status` after `elapsed`.
    pub fn finished(&self, route: usize, method: &axum::http::Method, status: u16, elapsed: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let route = route.min(self.routes.len() - 1);
        let m = METHODS.iter().position(|m| *m == method.as_str()).unwrap_or(METHODS.len() - 1);
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.counts[(route * METHODS.len() + m) * CLASSES.len() + class].fetch_add(1, Ordering::Relaxed);
        self.durations[route].record(elapsed);
    }

    /// The auth layer refused a request.
    pub fn record_auth_failure(&self, reason: AuthFailure) {
        self.auth_failures[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The rate limiter refused a request.
    pub fn record_rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Every non-zero `(route, method, class, count)`.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, &'static str, &'static str, u64)> + '_ {
        let per_route = METHODS.len() * CLASSES.len();
        self.counts.iter().enumerate().filter_map(move |(i, c)| {
            let n = c.load(Ordering::Relaxed);
            (n > 0).then(|| {
                let (r, rest) = (i / per_route, i % per_route);
                (self.routes[r], METHODS[rest / CLASSES.len()], CLASSES[rest % CLASSES.len()], n)
            })
        })
    }

    /// `(route, histogram)` of every route that saw a request.
    pub fn durations(&self) -> impl Iterator<Item = (&'static str, HistogramSnapshot)> + '_ {
        self.routes.iter().zip(&self.durations).map(|(r, h)| (*r, h.snapshot())).filter(|(_, s)| s.count() > 0)
    }

    /// All routes' histograms added up (the history's latency percentiles).
    pub fn total_duration(&self) -> HistogramSnapshot {
        let mut all = HistogramSnapshot::default();
        for h in &self.durations {
            all.add(&h.snapshot());
        }
        all
    }

    /// Requests so far, and those answered with a 5xx.
    pub fn totals(&self) -> (u64, u64) {
        let (mut all, mut errors) = (0, 0);
        for (i, c) in self.counts.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            all += n;
            if i % CLASSES.len() == 4 {
                errors += n;
            }
        }
        (all, errors)
    }

    pub fn auth_failures(&self) -> impl Iterator<Item = (AuthFailure, u64)> + '_ {
        AuthFailure::ALL.iter().map(|r| (*r, self.auth_failures[*r as usize].load(Ordering::Relaxed)))
    }

    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    #[test]
    fn requests_count_under_their_route_method_and_class() {
        let m = RequestMetrics::new(&["/query", "/backups/{id}"]);
        let q = m.route(Some("/query"));
        m.started();
        m.finished(q, &Method::POST, 200, Duration::from_millis(2));
        m.started();
        m.finished(m.route(Some("/nope")), &Method::GET, 404, Duration::from_millis(1));
        m.started();
        m.finished(m.route(None), &Method::from_bytes(b"BREW").unwrap(), 503, Duration::from_millis(1));
        let counts: Vec<_> = m.counts().collect();
        assert_eq!(
            counts,
            vec![("/query", "POST", "2xx", 1), (UNMATCHED, "GET", "4xx", 1), (UNMATCHED, "OTHER", "5xx", 1)]
        );
        assert_eq!(m.totals(), (3, 1));
        assert_eq!(m.in_flight(), 0);
        assert_eq!(m.total_duration().count(), 3);
        m.record_auth_failure(AuthFailure::Expired);
        assert_eq!(m.auth_failures().find(|(r, _)| *r == AuthFailure::Expired).map(|(_, n)| n), Some(1));
    }
}
