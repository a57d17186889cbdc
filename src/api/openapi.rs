//! `GET /openapi.json`: the API as an OpenAPI 3.1 document, and `GET /docs`: Swagger UI over it.
//!
//! The document is built from [`ROUTES`] (so every route is in it, with its scope and audit
//! rule) and from the request and answer types themselves: their `JsonSchema` derives follow
//! the same serde attributes that parse and write them, so a renamed or added field changes the
//! document with the code. [`DOCS`] only says which type is which route's body, query and
//! answer. Seed 004's aliases are described as their dbagent route, tagged and linked to it.
//!
//! Swagger UI's files are compiled in (`utoipa-swagger-ui`'s vendored copy: nothing is
//! downloaded at build or run time). Its start script is ours: with keys required, the page
//! asks for a key once, keeps it for the browser tab (`sessionStorage`) and sends it with the
//! document request and every "Try it out".

use std::sync::{Arc, LazyLock};

use super::body::PathParam;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::auth::{Audited, ROUTES, RouteSpec};
use crate::security::Access;

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// A named type's schema: a `$ref` into `components/schemas`.
fn of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// A type's own object schema, for its fields as query parameters.
fn fields<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    T::json_schema(generator)
}

/// What a route answers with on success.
pub enum Answer {
    Json(SchemaFn),
    /// Not JSON: these content types, as text or bytes.
    Other(&'static [&'static str]),
    /// JSON of this type, or (asked for by a `format` parameter) these text types.
    JsonOrText(SchemaFn, &'static [&'static str]),
}

/// One route's documentation: which types are its body, query string and answer.
pub struct Doc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub body: Option<SchemaFn>,
    pub query: Option<SchemaFn>,
    pub answer: Answer,
    /// The success status (200 unless the route creates something).
    pub status: u16,
    /// The body may be left out (every field then takes its default).
    pub body_optional: bool,
}

const fn doc(method: &'static str, path: &'static str, summary: &'static str, body: Option<SchemaFn>, query: Option<SchemaFn>, answer: Answer) -> Doc {
    Doc { method, path, summary, body, query, answer, status: 200, body_optional: false }
}

const fn optional_body(doc: Doc) -> Doc {
    Doc { body_optional: true, ..doc }
}

const fn created(doc: Doc) -> Doc {
    Doc { status: 201, ..doc }
}

use super::answer::Succeeded;
use Answer::{Json as J, Other};

/// Every route's types, in [`ROUTES`]' order. A seed alias without an entry of its own is
/// documented as the route with the same method and action. A unit test keeps the two tables
/// in step.
pub static DOCS: &[Doc] = &[
    doc("POST", "/query", "Run one SQL statement (reads may go to a replica, and to the cache)", Some(of::<crate::query::QueryRequest>), None, J(of::<super::query::QueryAnswer>)),
    doc("POST", "/transaction", "Run statements as one transaction, retried on serialization failures", Some(of::<crate::txn::TransactionRequest>), None, J(of::<super::transaction::TransactionAnswer>)),
    doc("GET", "/health", "The agent, its database, pools, replicas, cache, backups and security (503 when the primary is down)", None, None, J(of::<crate::monitor::health::HealthReport>)),
    doc("GET", "/health/live", "Liveness: the process answers", None, None, J(of::<super::health::Liveness>)),
    doc("GET", "/health/ready", "Readiness: the primary answers and auto-migrate is done (503 otherwise)", None, None, J(of::<super::health::Readiness>)),
    doc("GET", "/schema", "Every table and view", None, None, J(of::<super::schema::TableList>)),
    doc("GET", "/schema/erd", "The entity-relationship diagram as Mermaid or Graphviz", None, Some(fields::<super::schema::ErdQuery>), Other(&["text/vnd.mermaid", "text/vnd.graphviz"])),
    doc("GET", "/schema/dictionary", "The data dictionary as Markdown, HTML or JSON", None, Some(fields::<super::schema::DictionaryQuery>), Other(&["text/markdown", "text/html", "application/json"])),
    doc("GET", "/schema/{table}", "One table: columns, keys, indexes, constraints, triggers, size", None, None, J(of::<crate::schema::TableDetail>)),
    doc("POST", "/seed/generate", "Generate plausible rows for a table (parents first, one transaction)", Some(of::<crate::seeddata::Request>), None, J(of::<crate::seeddata::Report>)),
    doc("GET", "/stats/replication", "Standbys, each replica's lag, failover state", None, None, J(of::<crate::replication::ReplicationReport>)),
    doc("POST", "/replication/switchover", "Promote a managed replica and make the old primary its replica; the write pause is measured", Some(of::<super::replication::SwitchoverRequest>), None, J(of::<Succeeded<crate::replication::SwitchoverReport>>)),
    doc("POST", "/replication/rejoin", "Rewind fenced former primaries with pg_rewind and start them as replicas of the primary", None, None, J(of::<Succeeded<crate::replication::RejoinReport>>)),
    doc("POST", "/replication/promote", "Promote a managed replica now (a failover on request; force while the primary answers)", Some(of::<super::replication::PromoteRequest>), None, J(of::<Succeeded<crate::replication::FailoverEvent>>)),
    doc("GET", "/replication/replicas", "The read replicas, managed or configured: health, reads, lag", None, None, J(of::<Succeeded<super::replication::ReplicaList>>)),
    doc("POST", "/replication/replicas", "Create a managed replica in a free read pool (the one a promoted replica left)", None, None, J(of::<Succeeded<crate::replication::Rejoined>>)),
    doc("GET", "/stats/database", "Connections, TPS, cache hit ratio, deadlocks, sizes, wraparound, disk", None, None, J(of::<crate::monitor::dbstats::DatabaseStats>)),
    doc("GET", "/stats/tables", "Tables by size with scans, dead tuples, vacuum and analyze times", None, Some(fields::<super::stats::Limit>), J(of::<Vec<crate::monitor::dbstats::TableStats>>)),
    doc("GET", "/stats/indexes", "Indexes with scans, size, unused and invalid ones", None, Some(fields::<super::stats::Limit>), J(of::<Vec<crate::monitor::dbstats::IndexStats>>)),
    doc("GET", "/stats/slow-queries", "The slowest statements (pg_stat_statements)", None, Some(fields::<super::stats::SlowQueries>), J(of::<Vec<crate::monitor::dbstats::SlowQuery>>)),
    doc("GET", "/stats/activity", "Every session of the server, with its statement", None, Some(fields::<super::stats::Limit>), J(of::<crate::monitor::dbstats::Activity>)),
    doc("GET", "/stats/system", "The host: CPU, memory, disk of the data directory", None, None, J(of::<crate::monitor::system::SystemStats>)),
    doc("GET", "/metrics", "Prometheus metrics (postgres_exporter names for the database's)", None, None, Other(&["text/plain; version=0.0.4"])),
    doc("GET", "/metrics/history", "Sampled metrics over a time range, aligned", None, Some(fields::<crate::monitor::history::HistoryRequest>), J(of::<crate::monitor::history::History>)),
    doc("POST", "/optimize", "Explain a statement: plan, problems found, suggestions (HypoPG-validated indexes)", Some(of::<crate::advisor::OptimizeRequest>), None, J(of::<Succeeded<crate::advisor::OptimizeReport>>)),
    doc("POST", "/indexes", "Suggest indexes for a workload, or create, drop, rebuild one", Some(of::<crate::advisor::IndexesRequest>), None, J(of::<Succeeded<crate::advisor::IndexesAnswer>>)),
    doc("POST", "/backup", "Take a backup now", Some(of::<super::backup::BackupRequest>), None, J(of::<super::backup::BackupCreated>)),
    doc("GET", "/backups", "Every backup, newest first (with remote=true, also the remote store's)", None, Some(fields::<super::backup::ListQuery>), J(of::<super::backup::BackupList>)),
    doc("POST", "/backups/prune", "Apply the retention rules (or show what they would delete)", Some(of::<super::backup::PruneRequest>), None, J(of::<super::backup::Pruned>)),
    doc("GET", "/backups/status", "The WAL archive, the recoverable window, any gap, and the off-site copies", None, None, J(of::<Succeeded<crate::backup::PitrStatus>>)),
    doc("GET", "/backups/{id}", "One backup's manifest", None, None, J(of::<Succeeded<crate::backup::Manifest>>)),
    doc("DELETE", "/backups/{id}", "Delete a backup (the newest good one or a pinned one only with force)", None, Some(fields::<super::backup::DeleteQuery>), J(of::<super::backup::Deleted>)),
    doc("GET", "/backups/{id}/download", "A stored backup file as it is (compressed, maybe encrypted)", None, Some(fields::<super::backup::DownloadQuery>), Other(&["application/octet-stream"])),
    optional_body(doc("POST", "/backups/{id}/verify", "Check every checksum (level 1) or also restore into a scratch database (level 2)", Some(of::<super::backup::VerifyRequest>), None, J(of::<Succeeded<crate::backup::VerifyReport>>))),
    doc("POST", "/restore", "Restore a backup into a new database, over one (swapped in when complete), or to a point in time", Some(of::<super::backup::RestoreBody>), None, J(of::<super::backup::Restored>)),
    doc("GET", "/restores", "The databases restores replaced: kept (until expires_at), swapped back or dropped", None, None, J(of::<super::backup::ReplacedList>)),
    doc("POST", "/restores/{id}/undo", "Swap a kept replaced database back in (the restored copy is kept as replaced in turn)", None, None, J(of::<Succeeded<crate::backup::Undone>>)),
    doc("POST", "/migrate", "Apply or revert migrations (upgrade to head by default)", Some(of::<super::migrate::MigrateRequest>), None, J(of::<super::migrate::Migrated>)),
    doc("GET", "/migrations", "Migration status, history and auto-migrate state", None, None, J(of::<super::migrate::MigrationList>)),
    doc("POST", "/migrations/autogenerate", "Write the migration that turns the database into a desired schema", Some(of::<super::migrate::AutogenerateRequest>), None, J(of::<Succeeded<crate::migrate::Autogenerated>>)),
    doc("GET", "/keys", "Every API key (never a secret)", None, None, J(of::<Succeeded<super::keys::KeyList>>)),
    created(doc("POST", "/keys", "Create an API key (its secret is shown once)", Some(of::<crate::security::keys::NewKey>), None, J(of::<Succeeded<crate::security::keys::Created>>))),
    doc("DELETE", "/keys/{id}", "Revoke an API key", None, None, J(of::<Succeeded<super::keys::Revoked>>)),
    doc("POST", "/keys/{id}/rotate", "A new secret; the old one keeps working for security.rotate_grace", None, None, J(of::<Succeeded<crate::security::keys::Created>>)),
    doc("GET", "/audit", "The audit log, newest first, filtered", None, Some(fields::<crate::security::audit::Filter>), J(of::<Succeeded<super::keys::AuditRows>>)),
    doc("GET", "/roles", "Roles with their attributes, memberships and privileges in this database", None, Some(fields::<crate::access::list::RoleFilter>), J(of::<Succeeded<crate::access::list::RoleList>>)),
    created(doc("POST", "/roles", "Create a role (password sent as a SCRAM verifier; never SUPERUSER, REPLICATION or BYPASSRLS)", Some(of::<crate::access::roles::NewRole>), None, J(of::<Succeeded<super::access::RoleAnswer>>))),
    doc("PATCH", "/roles/{name}", "Change a role's password, expiry, login, connection limit, CREATEDB/CREATEROLE or name", Some(of::<crate::access::roles::RoleChange>), None, J(of::<Succeeded<super::access::RoleAnswer>>)),
    doc("DELETE", "/roles/{name}", "Drop a role (refused while it owns objects or holds privileges, unless reassign_to or drop_owned)", None, Some(fields::<crate::access::roles::DropOptions>), J(of::<Succeeded<crate::access::roles::Dropped>>)),
    doc("POST", "/grants", "GRANT privileges on a schema, table, sequence or all of a schema's (with default privileges)", Some(of::<crate::access::grants::GrantRequest>), None, J(of::<Succeeded<crate::access::grants::Granted>>)),
    doc("DELETE", "/grants", "REVOKE privileges (the same body as POST /grants)", Some(of::<crate::access::grants::GrantRequest>), None, J(of::<Succeeded<crate::access::grants::Granted>>)),
    doc("GET", "/security/compliance", "The compliance report: CIS-style checks with evidence and fixes, summarised per framework (JSON or Markdown)", None, Some(fields::<super::compliance::ComplianceQuery>), Answer::JsonOrText(of::<Succeeded<crate::compliance::Report>>, &["text/markdown"])),
    doc("GET", "/alerts", "Active and recent alerts, filtered", None, Some(fields::<crate::alerts::store::Filter>), J(of::<super::alerts::AlertList>)),
    doc("GET", "/alerts/rules", "Every rule with its thresholds, current value and state", None, None, J(of::<super::alerts::RulesAnswer>)),
    doc("POST", "/alerts/test", "Send a test notification through a channel", Some(of::<super::alerts::TestRequest>), None, J(of::<super::alerts::TestAnswer>)),
    doc("GET", "/alerts/{id}", "One alert with its history", None, None, J(of::<super::alerts::AlertAnswer>)),
    doc("POST", "/alerts/{id}/ack", "Acknowledge an alert (it stops repeating)", Some(of::<super::alerts::AckRequest>), None, J(of::<super::alerts::AlertAnswer>)),
    doc("GET", "/silences", "Silences, active by default", None, Some(fields::<super::alerts::SilenceFilter>), J(of::<super::alerts::SilenceList>)),
    created(doc("POST", "/silences", "Silence matching alerts until a time", Some(of::<crate::alerts::store::NewSilence>), None, J(of::<super::alerts::SilenceAnswer>))),
    doc("DELETE", "/silences/{id}", "End a silence now", None, None, J(of::<super::alerts::SilenceAnswer>)),
    doc("GET", "/connections", "Every session of the server, with what it waits on and who blocks it", None, Some(fields::<crate::ops::sessions::ConnectionFilter>), J(of::<super::ops::Connections>)),
    doc("GET", "/connections/stats", "Sessions by state against max_connections, dbagent's pools beside them", None, None, J(of::<crate::ops::sessions::ConnectionStats>)),
    optional_body(doc("POST", "/connections/close-idle", "Terminate sessions idle longer than a limit (never dbagent's own without force)", Some(of::<crate::ops::signal::CloseIdle>), None, J(of::<super::ops::Signalled>))),
    optional_body(doc("POST", "/connections/{pid}/cancel", "Cancel a session's running statement", Some(of::<super::ops::SignalRequest>), None, J(of::<super::ops::Signalled>))),
    optional_body(doc("POST", "/connections/{pid}/terminate", "Terminate a session", Some(of::<super::ops::SignalRequest>), None, J(of::<super::ops::Signalled>))),
    doc("GET", "/locks", "The blocking tree: who blocks whom, on what, for how long", None, None, J(of::<crate::ops::locks::LockReport>)),
    optional_body(doc("POST", "/maintenance/vacuum", "VACUUM a table or the database (FULL only with force)", Some(of::<crate::ops::maintenance::VacuumRequest>), None, J(of::<Succeeded<crate::ops::maintenance::Maintained>>))),
    optional_body(doc("POST", "/maintenance/analyze", "ANALYZE a table or the database", Some(of::<crate::ops::maintenance::AnalyzeRequest>), None, J(of::<Succeeded<crate::ops::maintenance::Maintained>>))),
    doc("GET", "/maintenance/progress", "Running VACUUM, ANALYZE, CLUSTER and index builds with their progress", None, None, J(of::<super::ops::Running>)),
    doc("GET", "/maintenance/report", "Dead tuples, bloat, stale statistics, wraparound, sequences, invalid indexes, each with its fix", None, None, J(of::<Succeeded<crate::ops::report::Report>>)),
    doc("GET", "/maintenance/history", "Runs of the scheduled maintenance jobs", None, Some(fields::<super::ops::HistoryParams>), J(of::<super::ops::History>)),
    doc("GET", "/advisor/config", "Server settings advice from the host and the workload, with ALTER SYSTEM statements", None, Some(fields::<crate::ops::settings::AdviceRequest>), J(of::<Succeeded<crate::ops::settings::ConfigAdvice>>)),
    doc("POST", "/advisor/config/apply", "Apply chosen settings with ALTER SYSTEM and reload", Some(of::<crate::ops::settings::ApplyRequest>), None, J(of::<super::ops::AppliedSettings>)),
    doc("GET", "/openapi.json", "This document", None, None, Other(&["application/json"])),
    doc("GET", "/docs", "Swagger UI over this document (redirects to /docs/)", None, None, Other(&["text/html"])),
    doc("GET", "/docs/", "Swagger UI over this document", None, None, Other(&["text/html"])),
    doc("GET", "/docs/{file}", "Swagger UI's files", None, None, Other(&["text/javascript", "text/css"])),
    doc("GET", "/api/database/connections/stats", "The pools, in dbagent's terms and SQLAlchemy's", None, None, J(of::<super::health::PoolsAnswer>)),
];

/// Seed 004's aliases live under this prefix.
const SEED_ALIAS_PREFIX: &str = "/api/database/";

/// The document, built once: it depends on nothing but the code.
static DOCUMENT: LazyLock<Vec<u8>> = LazyLock::new(|| serde_json::to_vec(&document()).unwrap_or_default());

/// `GET /openapi.json`.
pub async fn spec() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT.as_slice()).into_response()
}

/// The OpenAPI 3.1 document of [`ROUTES`].
pub fn document() -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    let mut generator = settings.into_generator();
    let error = of::<super::error::ErrorAnswer>(&mut generator);
    let mut paths = Map::new();
    for spec in ROUTES {
        let Some((doc, canonical)) = doc_for(spec) else { continue };
        let operation = operation(spec, doc, canonical, &error, &mut generator);
        // axum's `{name}` path templates are OpenAPI's already.
        let item = paths.entry(spec.path).or_insert_with(|| json!({}));
        item[spec.method.to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "dbagent",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "A PostgreSQL management agent: queries and transactions over HTTP, pools, replicas, cache, migrations, backups, the advisor, monitoring, keys and audit. With keys in use, send one as `Authorization: Bearer <key>` or `X-API-Key`; each operation names the scope it needs in `x-dbagent-scope`.",
            "license": { "name": "MIT", "identifier": "MIT" },
        },
        "paths": paths,
        "components": {
            "schemas": generator.definitions().clone(),
            "securitySchemes": {
                "bearer": { "type": "http", "scheme": "bearer", "description": "An API key (`dbk_...`)" },
                "apiKey": { "type": "apiKey", "in": "header", "name": "X-API-Key" },
            },
        },
    })
}

/// The route's entry in [`DOCS`], or for a seed alias without one, its dbagent route's
/// (returned as the second value).
fn doc_for(spec: &RouteSpec) -> Option<(&'static Doc, Option<&'static RouteSpec>)> {
    if let Some(doc) = DOCS.iter().find(|d| d.method == spec.method && d.path == spec.path) {
        return Some((doc, None));
    }
    let canonical = ROUTES.iter().find(|r| r.method == spec.method && r.action == spec.action && !r.path.starts_with(SEED_ALIAS_PREFIX))?;
    let doc = DOCS.iter().find(|d| d.method == canonical.method && d.path == canonical.path)?;
    Some((doc, Some(canonical)))
}

fn operation(spec: &RouteSpec, doc: &Doc, canonical: Option<&RouteSpec>, error: &Schema, generator: &mut SchemaGenerator) -> Value {
    let mut op = Map::new();
    let alias = spec.path.starts_with(SEED_ALIAS_PREFIX);
    op.insert("operationId".into(), json!(operation_id(spec)));
    op.insert("tags".into(), json!([if alias { "seed 004 aliases" } else { tag(spec.path) }]));
    let summary = match canonical {
        Some(c) => format!("Seed 004's name for {} {}: {}", c.method, c.path, doc.summary),
        None => doc.summary.to_owned(),
    };
    op.insert("summary".into(), json!(summary));
    if let Some(c) = canonical {
        op.insert("x-dbagent-alias-of".into(), json!(format!("{} {}", c.method, c.path)));
    }
    let (scope, security) = match spec.access {
        Access::Open => ("none", json!([])),
        Access::Needs(scope) => (scope.as_str(), json!([{ "bearer": [] }, { "apiKey": [] }])),
    };
    op.insert("security".into(), security);
    op.insert("x-dbagent-scope".into(), json!(scope));
    let audited = match spec.audited {
        Audited::Always => "always",
        Audited::Reads => "with security.audit_reads",
        Audited::ByStatement => "writes always, reads with security.audit_reads",
        Audited::Never => "never",
    };
    op.insert("x-dbagent-audited".into(), json!(audited));
    let mut parameters = path_parameters(spec.path);
    if let Some(query) = doc.query {
        parameters.extend(query_parameters(&query(generator)));
    }
    if !parameters.is_empty() {
        op.insert("parameters".into(), Value::Array(parameters));
    }
    if let Some(body) = doc.body {
        op.insert(
            "requestBody".into(),
            json!({ "required": !doc.body_optional, "content": { "application/json": { "schema": body(generator) } } }),
        );
    }
    let content = match &doc.answer {
        Answer::Json(schema) => json!({ "application/json": { "schema": schema(generator) } }),
        Answer::JsonOrText(schema, types) => {
            let mut content = Map::new();
            content.insert("application/json".into(), json!({ "schema": schema(generator) }));
            for t in *types {
                content.insert(t.to_string(), json!({ "schema": { "type": "string" } }));
            }
            Value::Object(content)
        }
        Answer::Other(types) => {
            let binary = types.iter().any(|t| t.starts_with("application/octet-stream"));
            let schema = if binary { json!({ "type": "string", "contentMediaType": "application/octet-stream" }) } else { json!({ "type": "string" }) };
            // A JSON rendering among text ones (the data dictionary's) is a document, not a string.
            let schema_of = |t: &str| if t == "application/json" { json!({ "type": "object" }) } else { schema.clone() };
            Value::Object(types.iter().map(|t| (t.to_string(), json!({ "schema": schema_of(t) }))).collect())
        }
    };
    let mut responses = Map::new();
    let ok = if spec.path == "/docs" { json!({ "description": "redirect to /docs/" }) } else { json!({ "description": "success", "content": content }) };
    let status = if spec.path == "/docs" { 308 } else { doc.status };
    responses.insert(status.to_string(), ok);
    responses.insert(
        "default".into(),
        json!({ "description": "an error, in the common shape (`code` is stable; see the README's table)", "content": { "application/json": { "schema": error } } }),
    );
    op.insert("responses".into(), Value::Object(responses));
    Value::Object(op)
}

fn operation_id(spec: &RouteSpec) -> String {
    let mut id = spec.method.to_ascii_lowercase();
    for part in spec.path.split(|c: char| !c.is_ascii_alphanumeric()).filter(|p| !p.is_empty()) {
        id.push('_');
        id.push_str(part);
    }
    if spec.path.ends_with('/') {
        id.push_str("_index");
    }
    id
}

fn tag(path: &str) -> &str {
    path.trim_start_matches('/').split(['/', '.']).next().unwrap_or_default()
}

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect()
}

/// A query type's fields as query parameters.
fn query_parameters(schema: &Schema) -> Vec<Value> {
    let required: Vec<&str> = schema.get("required").and_then(Value::as_array).map(|r| r.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else { return Vec::new() };
    properties
        .iter()
        .map(|(name, property)| {
            let mut param = json!({ "name": name, "in": "query", "required": required.contains(&name.as_str()), "schema": property });
            if let Some(description) = property.get("description") {
                param["description"] = description.clone();
            }
            param
        })
        .collect()
}

/// `GET /docs`: to `/docs/`, where Swagger UI's relative links work.
pub async fn docs_redirect() -> Redirect {
    Redirect::permanent("/docs/")
}

/// `GET /docs/`: Swagger UI's page.
pub async fn docs_index() -> Response {
    swagger_file("index.html")
}

/// `GET /docs/{file}`: Swagger UI's files, and our start script.
pub async fn docs_file(PathParam(file): PathParam) -> Response {
    if file == "swagger-initializer.js" {
        return ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], INITIALIZER).into_response();
    }
    swagger_file(&file)
}

fn swagger_file(name: &str) -> Response {
    static CONFIG: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> = LazyLock::new(|| Arc::new(utoipa_swagger_ui::Config::new(["/openapi.json"])));
    match utoipa_swagger_ui::serve(name, CONFIG.clone()) {
        Ok(Some(file)) => ([(header::CONTENT_TYPE, file.content_type)], file.bytes.into_owned()).into_response(),
        Ok(None) => super::error::ApiError::not_found(format!("no file {name} in the API viewer")).into_response(),
        Err(err) => super::error::ApiError::internal(err.to_string()).into_response(),
    }
}

/// Swagger UI's start: fetch the document with the tab's key (asking for one when the agent
/// answers 401), then send the key with every call made from the page.
const INITIALIZER: &str = r##"window.onload = async function () {
  const KEY = "dbagent.api_key";
  const withKey = (headers) => {
    const key = sessionStorage.getItem(KEY);
    if (key && !headers["Authorization"] && !headers["X-API-Key"]) headers["Authorization"] = "Bearer " + key;
    return headers;
  };
  let answer = await fetch("/openapi.json", { headers: withKey({}) });
  while (answer.status === 401) {
    const key = window.prompt("This dbagent requires an API key (read scope or more):");
    if (!key) break;
    sessionStorage.setItem(KEY, key.trim());
    answer = await fetch("/openapi.json", { headers: withKey({}) });
  }
  if (!answer.ok) {
    document.getElementById("swagger-ui").textContent = "Could not load /openapi.json: HTTP " + answer.status;
    return;
  }
  window.ui = SwaggerUIBundle({
    spec: await answer.json(),
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
    requestInterceptor: (request) => { withKey(request.headers); return request; },
  });
};
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_its_types_or_is_an_alias_of_one_that_has() {
        let missing: Vec<String> = ROUTES.iter().filter(|r| doc_for(r).is_none()).map(|r| format!("{} {}", r.method, r.path)).collect();
        assert!(missing.is_empty(), "routes without an entry in openapi::DOCS: {missing:?}");
        let stale: Vec<String> =
            DOCS.iter().filter(|d| !ROUTES.iter().any(|r| r.method == d.method && r.path == d.path)).map(|d| format!("{} {}", d.method, d.path)).collect();
        assert!(stale.is_empty(), "openapi::DOCS entries for no route: {stale:?}");
    }

    #[test]
    fn the_document_has_every_route_once_with_unique_operation_ids() {
        let doc = document();
        let mut ids = std::collections::HashSet::new();
        for spec in ROUTES {
            let op = &doc["paths"][spec.path][spec.method.to_ascii_lowercase()];
            assert!(op.is_object(), "{} {} is missing", spec.method, spec.path);
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()), "{} {}: operationId taken", spec.method, spec.path);
        }
        // Every $ref resolves.
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(doc["components"]["schemas"].get(name).is_some(), "dangling $ref {name}");
        }
    }

    #[test]
    fn request_types_are_described_by_the_fields_serde_reads() {
        let doc = document();
        let query = &doc["components"]["schemas"]["QueryRequest"];
        assert!(query["properties"]["sql"].is_object(), "{query}");
        assert_eq!(query["additionalProperties"], json!(false), "unknown fields are refused, and the document says so");
        let alias = &doc["paths"]["/api/database/backups"]["post"];
        assert_eq!(alias["x-dbagent-alias-of"], "POST /backup");
        assert_eq!(alias["tags"][0], "seed 004 aliases");
    }
}
