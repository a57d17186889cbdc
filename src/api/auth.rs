//! Every route's requirement, and the layer that enforces it and audits the call.
//!
//! The router is built from [`ROUTES`] alone, so a route cannot exist without a stated access
//! and audit rule (a test walks the table and calls each route without a key). The layer takes
//! the key from `Authorization: Bearer` or `X-API-Key`, asks `security` who the caller is,
//! checks the route's scope, takes a place in the key's rate and concurrency limits, and hands
//! the handler a [`Caller`] (whose login decides which role its SQL runs as). After the handler,
//! the call becomes an audit row when it changed something (or always, with `audit_reads`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};

use super::error::{ApiError, ErrorFacts};
use super::{AppState, access, advisor, alerts, compliance, backup, health, keys, metrics, migrate, openapi, ops, query, replication, schema, stats, transaction};
use crate::security::{Access, Caller, Scope, audit};

/// When a call becomes an audit row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audited {
    /// Always: it changes something (or may).
    Always,
    /// Only with `security.audit_reads`.
    Reads,
    /// As its statements say: writes always, reads with `audit_reads` (`/query`).
    ByStatement,
    /// Never (liveness and readiness probes).
    Never,
}

/// One route: method, path, who may call it, what its audit rows are called, and its handler.
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    pub action: &'static str,
    pub audited: Audited,
    make: fn() -> MethodRouter<AppState>,
}

const fn route(method: &'static str, path: &'static str, access: Access, action: &'static str, audited: Audited, make: fn() -> MethodRouter<AppState>) -> RouteSpec {
    RouteSpec { method, path, access, action, audited, make }
}

const READ: Access = Access::Needs(Scope::Read);
const ADMIN: Access = Access::Needs(Scope::Admin);

/// Every route of the API. `/query` and `/transaction` need `read`; what a statement does is
/// then checked against the key's scope, and enforced by the role it runs as.
pub static ROUTES: &[RouteSpec] = &[
    route("POST", "/query", READ, "query", Audited::ByStatement, || post(query::handle)),
    route("POST", "/transaction", READ, "transaction", Audited::ByStatement, || post(transaction::handle)),
    route("GET", "/health", READ, "health", Audited::Reads, || get(health::full)),
    route("GET", "/health/live", Access::Open, "health.live", Audited::Never, || get(health::live)),
    route("GET", "/health/ready", Access::Open, "health.ready", Audited::Never, || get(health::ready)),
    route("GET", "/schema", READ, "schema.list", Audited::Reads, || get(schema::list)),
    route("GET", "/schema/erd", READ, "schema.erd", Audited::Reads, || get(schema::erd)),
    route("GET", "/schema/dictionary", READ, "schema.dictionary", Audited::Reads, || get(schema::dictionary)),
    route("GET", "/schema/{table}", READ, "schema.describe", Audited::Reads, || get(schema::describe)),
    route("POST", "/seed/generate", ADMIN, "seed.generate", Audited::Always, || post(schema::generate)),
    route("GET", "/stats/replication", READ, "stats.replication", Audited::Reads, || get(stats::replication)),
    route("POST", "/replication/switchover", ADMIN, "replication.switchover", Audited::Always, || post(replication::switchover)),
    route("POST", "/replication/rejoin", ADMIN, "replication.rejoin", Audited::Always, || post(replication::rejoin)),
    route("POST", "/replication/promote", ADMIN, "replication.promote", Audited::Always, || post(replication::promote)),
    route("GET", "/replication/replicas", READ, "replication.replicas", Audited::Reads, || get(replication::replicas)),
    route("POST", "/replication/replicas", ADMIN, "replication.create_replica", Audited::Always, || post(replication::create_replica)),
    route("GET", "/stats/database", READ, "stats.database", Audited::Reads, || get(stats::database)),
    route("GET", "/stats/tables", READ, "stats.tables", Audited::Reads, || get(stats::tables)),
    route("GET", "/stats/indexes", READ, "stats.indexes", Audited::Reads, || get(stats::indexes)),
    route("GET", "/stats/slow-queries", READ, "stats.slow_queries", Audited::Reads, || get(stats::slow_queries)),
    // Other sessions' raw statements, literals and all.
    route("GET", "/stats/activity", ADMIN, "stats.activity", Audited::Reads, || get(stats::activity)),
    route("GET", "/stats/system", READ, "stats.system", Audited::Reads, || get(stats::system)),
    route("GET", "/metrics", READ, "metrics", Audited::Never, || get(metrics::scrape)),
    route("GET", "/metrics/history", READ, "metrics.history", Audited::Reads, || get(metrics::history)),
    route("POST", "/optimize", READ, "optimize", Audited::ByStatement, || post(advisor::optimize)),
    route("POST", "/indexes", READ, "indexes", Audited::ByStatement, || post(advisor::indexes)),
    route("GET", "/advisor/config", READ, "advisor.config", Audited::Reads, || get(ops::config_advice)),
    route("POST", "/advisor/config/apply", ADMIN, "advisor.config.apply", Audited::Always, || post(ops::config_apply)),
    route("POST", "/backup", ADMIN, "backup.create", Audited::Always, || post(backup::create)),
    route("GET", "/backups", READ, "backup.list", Audited::Reads, || get(backup::list)),
    route("POST", "/backups/prune", ADMIN, "backup.prune", Audited::Always, || post(backup::prune)),
    route("GET", "/backups/status", READ, "backup.status", Audited::Reads, || get(backup::status)),
    route("GET", "/backups/{id}", READ, "backup.get", Audited::Reads, || get(backup::get)),
    route("DELETE", "/backups/{id}", ADMIN, "backup.delete", Audited::Always, || delete(backup::delete)),
    route("GET", "/backups/{id}/download", ADMIN, "backup.download", Audited::Always, || get(backup::download)),
    route("POST", "/backups/{id}/verify", ADMIN, "backup.verify", Audited::Always, || post(backup::verify)),
    route("POST", "/restore", ADMIN, "restore", Audited::Always, || post(backup::restore)),
    route("GET", "/restores", READ, "restore.list", Audited::Reads, || get(backup::restores)),
    route("POST", "/restores/{id}/undo", ADMIN, "restore.undo", Audited::Always, || post(backup::undo)),
    route("POST", "/migrate", ADMIN, "migrate", Audited::Always, || post(migrate::migrate)),
    route("GET", "/migrations", READ, "migrate.list", Audited::Reads, || get(migrate::list)),
    route("POST", "/migrations/autogenerate", ADMIN, "migrate.autogenerate", Audited::Always, || post(migrate::autogenerate)),
    route("GET", "/keys", ADMIN, "keys.list", Audited::Reads, || get(keys::list)),
    route("POST", "/keys", ADMIN, "keys.create", Audited::Always, || post(keys::create)),
    route("DELETE", "/keys/{id}", ADMIN, "keys.revoke", Audited::Always, || delete(keys::revoke)),
    route("POST", "/keys/{id}/rotate", ADMIN, "keys.rotate", Audited::Always, || post(keys::rotate)),
    route("GET", "/audit", ADMIN, "audit.list", Audited::Reads, || get(keys::audit)),
    route("GET", "/roles", ADMIN, "roles.list", Audited::Reads, || get(access::list)),
    route("POST", "/roles", ADMIN, "roles.create", Audited::Always, || post(access::create)),
    route("PATCH", "/roles/{name}", ADMIN, "roles.alter", Audited::Always, || patch(access::alter)),
    route("DELETE", "/roles/{name}", ADMIN, "roles.drop", Audited::Always, || delete(access::drop)),
    route("POST", "/grants", ADMIN, "grants.grant", Audited::Always, || post(access::grant)),
    route("DELETE", "/grants", ADMIN, "grants.revoke", Audited::Always, || delete(access::revoke)),
    // Who can log in and how, the server's settings, the agent's own: for admins.
    route("GET", "/security/compliance", ADMIN, "security.compliance", Audited::Reads, || get(compliance::report)),
    route("GET", "/openapi.json", READ, "openapi", Audited::Never, || get(openapi::spec)),
    route("GET", "/docs", Access::Open, "docs", Audited::Never, || get(openapi::docs_redirect)),
    route("GET", "/docs/", Access::Open, "docs", Audited::Never, || get(openapi::docs_index)),
    route("GET", "/docs/{file}", Access::Open, "docs", Audited::Never, || get(openapi::docs_file)),
    route("GET", "/alerts", READ, "alerts.list", Audited::Reads, || get(alerts::list)),
    route("GET", "/alerts/rules", READ, "alerts.rules", Audited::Reads, || get(alerts::rules)),
    route("POST", "/alerts/test", ADMIN, "alerts.test", Audited::Always, || post(alerts::test)),
    route("GET", "/alerts/{id}", READ, "alerts.get", Audited::Reads, || get(alerts::get)),
    route("POST", "/alerts/{id}/ack", ADMIN, "alerts.ack", Audited::Always, || post(alerts::ack)),
    route("GET", "/silences", READ, "silences.list", Audited::Reads, || get(alerts::silences)),
    route("POST", "/silences", ADMIN, "silences.create", Audited::Always, || post(alerts::create_silence)),
    route("DELETE", "/silences/{id}", ADMIN, "silences.expire", Audited::Always, || delete(alerts::expire_silence)),
    // Other sessions' statements, literals and all.
    route("GET", "/connections", ADMIN, "connections.list", Audited::Reads, || get(ops::connections)),
    route("GET", "/connections/stats", READ, "connections.stats", Audited::Reads, || get(ops::connection_stats)),
    route("POST", "/connections/close-idle", ADMIN, "connections.close_idle", Audited::Always, || post(ops::close_idle)),
    route("POST", "/connections/{pid}/cancel", ADMIN, "connections.cancel", Audited::Always, || post(ops::cancel)),
    route("POST", "/connections/{pid}/terminate", ADMIN, "connections.terminate", Audited::Always, || post(ops::terminate)),
    route("GET", "/locks", ADMIN, "locks", Audited::Reads, || get(ops::locks)),
    route("POST", "/maintenance/vacuum", ADMIN, "maintenance.vacuum", Audited::Always, || post(ops::vacuum)),
    route("POST", "/maintenance/analyze", ADMIN, "maintenance.analyze", Audited::Always, || post(ops::analyze)),
    route("GET", "/maintenance/progress", READ, "maintenance.progress", Audited::Reads, || get(ops::progress)),
    route("GET", "/maintenance/report", READ, "maintenance.report", Audited::Reads, || get(ops::report)),
    route("GET", "/maintenance/history", READ, "maintenance.history", Audited::Reads, || get(ops::history)),
    // Seed 004's paths, aliases of the routes above with the same handlers and scopes. Seed 004
    // routes with no dbagent equivalent yet answer 404 like any unknown path:
    // `GET /api/database/metrics/history`,
    // `GET /api/database/performance/analyze`, `POST /api/database/performance/optimize`,
    // `GET /api/database/security/audit`,
    // `PUT /api/database/security/settings`.
    route("GET", "/api/database/health", READ, "health", Audited::Reads, || get(health::full)),
    route("GET", "/api/database/connections/stats", READ, "health.connections", Audited::Reads, || get(health::connections)),
    route("GET", "/api/database/connections/details", ADMIN, "connections.list", Audited::Reads, || get(ops::connections)),
    route("POST", "/api/database/connections/close-idle", ADMIN, "connections.close_idle", Audited::Always, || post(ops::close_idle)),
    route("GET", "/api/database/backups", READ, "backup.list", Audited::Reads, || get(backup::list)),
    route("POST", "/api/database/backups", ADMIN, "backup.create", Audited::Always, || post(backup::create)),
    route("GET", "/api/database/backups/{id}", READ, "backup.get", Audited::Reads, || get(backup::get)),
    route("GET", "/api/database/backups/{id}/download", ADMIN, "backup.download", Audited::Always, || get(backup::download)),
    route("POST", "/api/database/backups/{id}/validate", ADMIN, "backup.verify", Audited::Always, || post(backup::verify)),
    route("GET", "/api/database/alerts", READ, "alerts.list", Audited::Reads, || get(alerts::list)),
    route("GET", "/api/database/security/compliance", ADMIN, "security.compliance", Audited::Reads, || get(compliance::report)),
    // `confirm: true` required: it replaces the database.
    route("POST", "/api/database/restore", ADMIN, "restore", Audited::Always, || post(backup::restore_confirmed)),
];

/// [`ROUTES`] as the README's Markdown table (a test keeps the two the same).
pub fn markdown_table() -> String {
    let mut out = String::from("| method | route | needs | audited |\n|---|---|---|---|\n");
    for spec in ROUTES {
        let needs = match spec.access {
            Access::Open if spec.path.starts_with("/docs") => "nothing (the viewer's code; the document needs `read`)".to_string(),
            Access::Open => "nothing (probe)".to_string(),
            Access::Needs(scope) => format!("`{}`", scope.as_str()),
        };
        let audited = match spec.audited {
            Audited::Always => "always",
            Audited::Reads => "with `audit_reads`",
            Audited::ByStatement => "writes always; reads with `audit_reads`",
            Audited::Never => "never",
        };
        out.push_str(&format!("| {} | `{}` | {needs} | {audited} |\n", spec.method, spec.path));
    }
    out
}

/// The routes of [`ROUTES`], each behind [`check`].
pub fn routes(state: &AppState) -> axum::Router<AppState> {
    ROUTES.iter().fold(axum::Router::new(), |router, spec| {
        let guarded = Guarded { state: state.clone(), spec };
        router.route(spec.path, (spec.make)().route_layer(axum::middleware::from_fn_with_state(guarded, check)))
    })
}

/// One route of [`ROUTES`] alone, behind its check (for a listener of its own).
pub fn only(state: &AppState, method: &str, path: &str) -> axum::Router<AppState> {
    ROUTES.iter().filter(|spec| spec.method == method && spec.path == path).fold(axum::Router::new(), |router, spec| {
        let guarded = Guarded { state: state.clone(), spec };
        router.route(spec.path, (spec.make)().route_layer(axum::middleware::from_fn_with_state(guarded, check)))
    })
}

/// The route as the layer sees it.
#[derive(Clone)]
pub struct Guarded {
    state: AppState,
    spec: &'static RouteSpec,
}

/// What a handler tells the audit row about its call (statements, tables, rows, ids).
#[derive(Clone, Default)]
pub struct Note(Arc<Mutex<Noted>>);

#[derive(Default)]
pub struct Noted {
    /// Reads are recorded too (`security.audit_reads`): otherwise a read's statement is not
    /// even copied.
    reads_too: bool,
    /// Replaces the route's action (`query.write`, `indexes.create` ...).
    pub action: Option<String>,
    /// The call changed something (or tried to): audited even without `audit_reads`.
    pub writes: bool,
    pub fingerprint: Option<String>,
    pub statement: Option<String>,
    pub tables_read: Vec<String>,
    pub tables_written: Vec<String>,
    pub rows: Option<i64>,
    pub related: Option<String>,
}

impl Note {
    pub fn with(&self, f: impl FnOnce(&mut Noted)) {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Notes a statement (normalised; never its parameters) as classified by `executor`.
    pub fn statement(&self, executor: &crate::query::Executor, sql: &str) {
        let Ok(class) = executor.classifier.classify(sql) else { return };
        if class.is_read_only() && !self.0.lock().is_ok_and(|n| n.reads_too) {
            return;
        }
        let (fingerprint, normalized) = executor.classifier.fingerprint(&class, sql).split_once(' ').unwrap_or_default();
        self.with(|n| {
            let writes = !class.is_read_only();
            n.writes |= writes;
            let kind = match class.query_type {
                "ddl" | "grant" => "ddl",
                _ if writes => "write",
                _ => "read",
            };
            let base = n.action.get_or_insert_with(String::new);
            if base.is_empty() {
                base.push_str(kind);
            } else if base != kind && !base.contains(kind) {
                base.push('+');
                base.push_str(kind);
            }
            match (&mut n.statement, &mut n.fingerprint) {
                (Some(statement), Some(prints)) => {
                    statement.push_str(";\n");
                    statement.push_str(normalized);
                    prints.push(',');
                    prints.push_str(fingerprint);
                }
                _ => {
                    n.statement = Some(normalized.to_owned());
                    n.fingerprint = Some(fingerprint.to_owned());
                }
            }
            for t in &class.tables {
                let written = class.written_tables.contains(t);
                let list = if written { &mut n.tables_written } else { &mut n.tables_read };
                if !list.contains(t) {
                    list.push(t.clone());
                }
            }
        });
    }
}

/// The key a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>`. A header
/// that is there but unreadable counts as a wrong key, not as none.
fn presented(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let text = value.to_str().unwrap_or("\u{0}");
        return Some(text.strip_prefix("Bearer ").or_else(|| text.strip_prefix("bearer ")).unwrap_or("\u{0}").trim());
    }
    headers.get("x-api-key").map(|v| v.to_str().unwrap_or("\u{0}").trim())
}

/// The caller's address: the peer's, or — when the peer is a trusted proxy — the last address
/// in `X-Forwarded-For` that is not one of the trusted proxies.
fn remote(req: &Request, trusted: &[ipnet::IpNet]) -> IpAddr {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded = req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(','));
    let hops: Vec<IpAddr> = forwarded.filter_map(|hop| hop.trim().parse().ok()).collect();
    hops.into_iter().rev().find(|ip| !is_trusted(ip)).unwrap_or(peer)
}

/// The layer in front of every route (see the module's documentation).
pub async fn check(State(guarded): State<Guarded>, mut req: Request, next: Next) -> Response {
    let Guarded { state, spec } = guarded;
    let Access::Needs(needed) = spec.access else { return next.run(req).await };
    let started = Instant::now();
    let security = &state.security;
    let remote = remote(&req, &security.settings.trusted_proxies);
    // Kept as the header (a reference count, no copy): only an audited call reads it.
    let user_agent = req.headers().get(header::USER_AGENT).cloned();
    let caller = match security.authenticate(presented(req.headers()), remote) {
        Ok(caller) => caller,
        Err(err) => {
            use crate::monitor::requests::AuthFailure;
            use crate::security::{Error as E, Refusal};
            let failure = match &err {
                E::Unauthenticated(Refusal::Missing) => Some(AuthFailure::Missing),
                E::Unauthenticated(Refusal::Invalid) => Some(AuthFailure::Invalid),
                E::Unauthenticated(Refusal::Expired) => Some(AuthFailure::Expired),
                E::Unauthenticated(Refusal::Revoked) => Some(AuthFailure::Revoked),
                E::AddressForbidden(_) => Some(AuthFailure::ForbiddenIp),
                _ => None,
            };
            if let Some(failure) = failure {
                state.monitor.requests.record_auth_failure(failure);
            }
            let reason = match &err {
                E::Unauthenticated(refusal) => Some(refusal.as_str()),
                _ => None,
            };
            let response = ApiError::from(err).into_response();
            if security.audit_failure_allowed() {
                let caller = Caller::anonymous(remote);
                let note = Note::default();
                note.with(|n| n.related = reason.map(|r| format!("key {r}")));
                record(&state, spec, &caller, user_agent, Some(note), facts(&response), started, "auth.failed").await;
            }
            return response;
        }
    };
    if caller.scope() < needed {
        security.counters.forbidden.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let message = format!("this route needs a key with the {} scope; this key's scope is {}", needed.as_str(), caller.scope().as_str());
        let response = ApiError::from(crate::security::Error::Forbidden(message)).into_response();
        record(&state, spec, &caller, user_agent, None, facts(&response), started, spec.action).await;
        return response;
    }
    let permit = match &caller.key {
        Some(key) => match key.state.admit() {
            Ok(permit) => Some(permit),
            Err(err) => {
                security.counters.rate_limited.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                state.monitor.requests.record_rate_limited();
                let retry_after = match &err {
                    crate::security::Error::RateLimited { retry_after } => retry_after.as_secs_f64().ceil().max(1.0) as u64,
                    _ => 1,
                };
                let mut response = ApiError::from(err).into_response();
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                return response;
            }
        },
        None => None,
    };
    let audited = security.audit.is_some()
        && match spec.audited {
            Audited::Always | Audited::ByStatement => true,
            Audited::Reads => security.settings.audit_reads,
            Audited::Never => false,
        };
    let note = audited.then(|| {
        let note = Note::default();
        note.with(|n| n.reads_too = security.settings.audit_reads);
        note
    });
    if let Some(note) = &note {
        req.extensions_mut().insert(note.clone());
    }
    req.extensions_mut().insert(caller.clone());
    let response = next.run(req).await;
    drop(permit);
    if let Some(note) = note {
        let reads_only = spec.audited == Audited::ByStatement && !note.0.lock().map(|n| n.writes).unwrap_or(true);
        let denied = response.status() == axum::http::StatusCode::FORBIDDEN;
        if !reads_only || security.settings.audit_reads || denied {
            record(&state, spec, &caller, user_agent, Some(note), facts(&response), started, spec.action).await;
        }
    }
    response
}

/// What the audit row takes from a response (the response itself is not `Sync`).
struct Facts(axum::http::StatusCode, Option<ErrorFacts>);

fn facts(response: &Response) -> Facts {
    Facts(response.status(), response.extensions().get::<ErrorFacts>().cloned())
}

#[allow(clippy::too_many_arguments)]
async fn record(
    state: &AppState,
    spec: &RouteSpec,
    caller: &Caller,
    user_agent: Option<HeaderValue>,
    note: Option<Note>,
    response: Facts,
    started: Instant,
    action: &str,
) {
    let Some(audit) = &state.security.audit else { return };
    let Facts(status, facts) = response;
    let facts = facts.as_ref();
    let noted = note.map(|n| std::mem::take(&mut *n.0.lock().unwrap_or_else(|p| p.into_inner()))).unwrap_or_default();
    let action = match &noted.action {
        Some(kind) if spec.audited == Audited::ByStatement => format!("{action}.{kind}"),
        Some(other) => other.clone(),
        None => action.to_owned(),
    };
    let outcome = match status.as_u16() {
        401 | 403 | 429 => "denied",
        s if s < 400 => "ok",
        _ => "error",
    };
    let entry = audit::Entry {
        at: chrono::Utc::now(),
        request_id: super::request_id::current(),
        key_id: caller.key_id().map(str::to_owned),
        key_name: caller.key_name().map(str::to_owned),
        remote_addr: Some(caller.remote).filter(|ip| !ip.is_unspecified()),
        user_agent: user_agent.as_ref().and_then(|v| v.to_str().ok()).map(|v| v.chars().take(256).collect()),
        method: spec.method.to_owned(),
        route: spec.path.to_owned(),
        action,
        fingerprint: noted.fingerprint,
        statement: noted.statement,
        tables_read: noted.tables_read,
        tables_written: noted.tables_written,
        outcome: outcome.to_owned(),
        status: status.as_u16(),
        error_code: facts.map(|f| f.code.to_owned()),
        sqlstate: facts.and_then(|f| f.sqlstate.clone()),
        rows_affected: noted.rows,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
        related: noted.related,
    };
    audit.record(entry).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for spec in ROUTES {
            assert!(seen.insert((spec.method, spec.path)), "{} {} twice", spec.method, spec.path);
            assert!(["GET", "POST", "PATCH", "DELETE"].contains(&spec.method));
        }
    }

    #[test]
    fn the_readme_lists_every_route_with_its_scope() {
        let readme = include_str!("../../README.md");
        let table = markdown_table();
        assert!(readme.contains(&table), "README.md's route table is out of date; it should read:\n{table}");
    }

    #[test]
    fn only_probes_and_the_api_viewer_s_code_are_open() {
        for spec in ROUTES {
            if spec.access == Access::Open {
                assert!(spec.path.starts_with("/health/") || spec.path.starts_with("/docs"), "{} is open", spec.path);
            }
        }
    }

    #[test]
    fn changes_need_admin_and_are_audited() {
        for spec in ROUTES {
            let changes = spec.method != "GET" && !matches!(spec.path, "/query" | "/transaction" | "/optimize" | "/indexes");
            if changes {
                assert_eq!(spec.access, ADMIN, "{} {}", spec.method, spec.path);
                assert_eq!(spec.audited, Audited::Always, "{} {}", spec.method, spec.path);
            }
        }
    }

    #[test]
    fn forwarded_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let request = |peer: &str, xff: &str| {
            let mut req = Request::builder().header("x-forwarded-for", xff).body(axum::body::Body::empty()).unwrap();
            req.extensions_mut().insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 1)));
            req
        };
        // A trusted proxy: the last untrusted hop (a client cannot forge what the proxy appends).
        assert_eq!(remote(&request("10.0.0.5", "6.6.6.6, 203.0.113.9, 10.0.0.7"), &trusted), "203.0.113.9".parse::<IpAddr>().unwrap());
        // Anyone else: the header is ignored.
        assert_eq!(remote(&request("198.51.100.1", "10.0.0.1"), &trusted), "198.51.100.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn keys_come_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(presented(&h), None);
        h.insert("x-api-key", "dbk_a_b".parse().unwrap());
        assert_eq!(presented(&h), Some("dbk_a_b"));
        h.insert(header::AUTHORIZATION, "Bearer dbk_c_d".parse().unwrap());
        assert_eq!(presented(&h), Some("dbk_c_d"));
        h.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert_eq!(presented(&h), Some("\u{0}"));
    }
}

