//! Hostile input over every route. The routes come from the running agent's own
//! `/openapi.json` (itself generated from the router's table), so a new route joins the corpus
//! without anyone listing it here.
//!
//! Each route gets: ids and file names that climb out (`../`, encoded, absolute), overlong,
//! NUL and invalid UTF-8 in its path parameters; wrong types, NUL, invalid UTF-8 and 70 KB
//! values in its query parameters; and for a JSON body: malformed JSON, invalid UTF-8, the
//! wrong top-level type, deep nesting, duplicate and unknown keys, each required field
//! missing, each field with the wrong JSON type, and each field with hostile values (empty,
//! whitespace, NUL, 70 KB, huge and negative numbers, traversal). `/query` and `/transaction`
//! also get SQL meant to escape the pool's session.
//!
//! Every answer must be below 500, never show a server path or driver internals, and a 4xx
//! must be in the common error shape. Inputs that are invalid by construction (wrong types,
//! missing fields, malformed JSON ...) must be refused with a 4xx that names the field. The
//! cluster's databases, every table, the settings file, the backup location's and the
//! migrations directory's files and a bystander session are compared before and after each
//! route: a route whose answers were all refusals changed nothing. The few hostile values a
//! route may accept (an empty comment is a comment) are listed in `MAY_ACCEPT`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use dbagent::config::{Config, KeysRequired, Secret};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_managed_app};

const ADMIN: &str = "hostile-corpus-admin-key-0123456789abcdefghij";

/// Hostile values a route may accept, each with the reason: (method, path, field, value
/// tags). A GET's query parameters may accept any well-formed text (a filter that matches
/// nothing); the state check still runs for them.
const MAY_ACCEPT: &[(&str, &str, &str, &[&str])] = &[
    // Labels for people, never file names: path-like text is text.
    ("POST", "/backup", "backup_name", &["traversal", "absolute", "encoded traversal"]),
    ("POST", "/api/database/backups", "backup_name", &["traversal", "absolute", "encoded traversal"]),
    // Filters of the sessions to close: text that matches no session closes none.
    ("POST", "/connections/close-idle", "application", &["*"]),
    ("POST", "/connections/close-idle", "database", &["*"]),
    ("POST", "/connections/close-idle", "user", &["*"]),
    ("POST", "/api/database/connections/close-idle", "application", &["*"]),
    ("POST", "/api/database/connections/close-idle", "database", &["*"]),
    ("POST", "/api/database/connections/close-idle", "user", &["*"]),
    ("POST", "/connections/close-idle", "states", &["long"]),
    ("POST", "/api/database/connections/close-idle", "states", &["long"]),
    ("POST", "/connections/close-idle", "idle_for", &["huge"]),
    ("POST", "/api/database/connections/close-idle", "idle_for", &["huge"]),
    // The same scope named many times is that scope.
    ("POST", "/keys", "scopes", &["long"]),
    // A role name is any text PostgreSQL keeps whole (quoted by dbagent): path-like text is a
    // name like any other. The corpus drops the roles it made after the route (below).
    ("POST", "/roles", "name", &["traversal", "absolute", "encoded traversal"]),
    // A password of 8 characters or more is a password, whatever it looks like.
    ("POST", "/roles", "password", &["traversal", "absolute", "encoded traversal"]),
];

/// What a server must never show a client.
fn leaks(body: &str, private: &[String]) -> Option<String> {
    for needle in private {
        if body.contains(needle.as_str()) {
            return Some(format!("a server path ({needle})"));
        }
    }
    for needle in ["panicked", "tokio_postgres", "tokio-postgres", "bb8::", "serde_json::", "RUST_BACKTRACE", ".rs:", "/root/"] {
        if body.contains(needle) {
            return Some(format!("driver or runtime internals ({needle})"));
        }
    }
    None
}

/// One request of the corpus and what it must get.
struct Probe {
    method: &'static str,
    /// The operation's path template, for reports and `MAY_ACCEPT`.
    template: String,
    /// The path and query actually sent (already percent-encoded where meant).
    target: String,
    body: Option<Vec<u8>>,
    /// What was done, for the report.
    what: String,
    /// The field the input is about, which a refusal must name.
    field: Option<String>,
    /// Invalid by construction: anything but a 4xx is a failure.
    must_refuse: bool,
    /// For `MAY_ACCEPT`: the hostile value's tag ("" for structural probes).
    tag: &'static str,
}

struct Corpus {
    app: TestApp,
    doc: Value,
    private: Vec<String>,
    backups: PathBuf,
    migrations: PathBuf,
    failures: Vec<String>,
    accepted: Vec<String>,
    tried: usize,
    refused: usize,
}

#[tokio::test]
async fn hostile_input_on_every_route_is_refused_cleanly_and_changes_nothing() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-{}", uuid::Uuid::new_v4().simple()));
    let (backups, migrations) = (root.join("backups"), root.join("migrations-not-yet-created"));
    let app = {
        let (backups, migrations) = (backups.clone(), migrations.clone());
        spawn_managed_app(move |c: &mut Config| {
            c.security.api_keys_required = KeysRequired::Yes;
            c.security.admin_key = Some(Secret::new(ADMIN));
            // The corpus is a burst of requests from one key, not what the limits are for.
            c.security.default_rate = 100_000.0;
            c.backup.location = backups;
            c.migrations.directory = migrations;
        })
        .await
    };
    let private = vec![
        root.display().to_string(),
        env!("CARGO_MANIFEST_DIR").to_string(),
        env!("CARGO_TARGET_TMPDIR").to_string(),
    ];
    let mut corpus = Corpus { app, doc: Value::Null, private, backups, migrations, failures: vec![], accepted: vec![], tried: 0, refused: 0 };
    corpus.prepare().await;
    let bystander = corpus.app.db.connect().await;

    let operations = corpus.operations();
    assert!(operations.len() >= 60, "the document lists every route: {}", operations.len());
    for (method, template, operation) in operations {
        let probes = corpus.probes(method, &template, &operation);
        let before = corpus.snapshot().await;
        let mut accepted_here = false;
        for probe in probes {
            accepted_here |= corpus.run(probe).await;
        }
        if method == "POST" && template == "/roles" {
            corpus.drop_new_roles(&before).await;
        }
        let after = corpus.snapshot().await;
        if before != after && !accepted_here {
            corpus.failures.push(format!("{method} {template}: refused every input yet changed state:\n{}", diff(&before, &after)));
        }
    }
    // The bystander session survived every cancel and terminate of made-up pids.
    let alive = bystander.query_one("SELECT 1", &[]).await;
    if alive.is_err() {
        corpus.failures.push("a bystander session was terminated".into());
    }
    eprintln!(
        "hostile corpus: {} requests over {} operations, {} refused with a 4xx, {} accepted (allowed), 5xx = {}",
        corpus.tried,
        corpus.operations().len(),
        corpus.refused,
        corpus.accepted.len(),
        corpus.failures.iter().filter(|f| f.contains(" 5")).count()
    );
    for accepted in &corpus.accepted {
        eprintln!("  accepted: {accepted}");
    }
    assert!(corpus.failures.is_empty(), "{} failures:\n{}", corpus.failures.len(), corpus.failures.join("\n"));
    let _ = std::fs::remove_dir_all(&root);
    corpus.app.stop().await;
}

impl Corpus {
    /// The document, a table with rows, a backup and a key, so that real ids exist next to
    /// the hostile ones.
    async fn prepare(&mut self) {
        let (status, doc) = self.call("GET", "/openapi.json", None).await;
        assert_eq!(status, StatusCode::OK);
        self.doc = doc;
        let (status, body) = self
            .call("POST", "/query", Some(json!({"sql": "CREATE TABLE accounts (id int PRIMARY KEY, email text NOT NULL)"})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = self
            .call("POST", "/query", Some(json!({"sql": "INSERT INTO accounts SELECT g, 'user' || g || '@example.com' FROM generate_series(1, 50) g"})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = self.call("POST", "/backup", Some(json!({}))).await;
        assert!(status.is_success(), "{body}");
        let (status, body) = self.call("POST", "/keys", Some(json!({"name": "bystander", "scopes": ["read"]}))).await;
        assert!(status.is_success(), "{body}");
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let url = format!("{}{path}", self.app.address);
        let mut request = self.app.http.request(method.parse().unwrap(), url).bearer_auth(ADMIN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// (method, path template, operation) for every operation in the document.
    fn operations(&self) -> Vec<(&'static str, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for method in ["get", "post", "put", "patch", "delete"] {
                if let Some(operation) = item.get(method) {
                    let method: &'static str = match method {
                        "get" => "GET",
                        "post" => "POST",
                        "put" => "PUT",
                        "patch" => "PATCH",
                        _ => "DELETE",
                    };
                    out.push((method, path.clone(), operation.clone()));
                }
            }
        }
        out
    }

    /// Follows `$ref`s to the schema they name.
    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let name = reference.rsplit('/').next().unwrap();
                self.resolve(&self.doc["components"]["schemas"][name])
            }
            None => schema,
        }
    }

    /// The JSON types a schema admits ("integer" also admits "number" values with no
    /// fraction; we only need to know which wrong types to send). None: anything.
    fn types(&self, schema: &Value) -> Option<Vec<String>> {
        let schema = self.resolve(schema);
        if let Some(alternatives) = schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Value::as_array) {
            let mut all = Vec::new();
            for alternative in alternatives {
                all.extend(self.types(alternative)?);
            }
            return Some(all);
        }
        if schema.get("enum").is_some() || schema.get("const").is_some() {
            let values: Vec<&Value> = match schema.get("enum") {
                Some(Value::Array(values)) => values.iter().collect(),
                _ => vec![&schema["const"]],
            };
            return Some(values.iter().map(|v| json_type(v).to_string()).collect());
        }
        match schema.get("type") {
            Some(Value::String(t)) => Some(vec![t.clone()]),
            Some(Value::Array(ts)) => Some(ts.iter().filter_map(|t| t.as_str().map(String::from)).collect()),
            _ => None,
        }
    }

    /// A value of the schema's first type, to fill required fields.
    fn placeholder(&self, schema: &Value) -> Value {
        let schema = self.resolve(schema);
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            return values[0].clone();
        }
        if let Some(value) = schema.get("const") {
            return value.clone();
        }
        if let Some(alternatives) = schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Value::as_array) {
            return self.placeholder(&alternatives[0]);
        }
        let types = self.types(schema).unwrap_or_default();
        match types.iter().find(|t| *t != "null").map(String::as_str) {
            Some("string") => json!("x"),
            Some("integer") | Some("number") => json!(1),
            Some("boolean") => json!(false),
            Some("array") => json!([]),
            Some("object") => {
                let mut object = serde_json::Map::new();
                for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
                    let name = name.as_str().unwrap();
                    object.insert(name.into(), self.placeholder(&schema["properties"][name]));
                }
                Value::Object(object)
            }
            _ => Value::Null,
        }
    }

    fn probes(&self, method: &'static str, template: &str, operation: &Value) -> Vec<Probe> {
        let mut probes = Vec::new();
        let params: Vec<&Value> = operation.get("parameters").and_then(Value::as_array).map(|p| p.iter().collect()).unwrap_or_default();
        let path_params: Vec<&str> = params.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect();
        let query_params: Vec<&Value> = params.iter().filter(|p| p["in"] == "query").copied().collect();
        let body_schema = operation.pointer("/requestBody/content/application~1json/schema").map(|s| self.resolve(s).clone());
                let base_body = body_schema.as_ref().map(|s| self.placeholder(s));
        let base_bytes = base_body.as_ref().map(|b| serde_json::to_vec(b).unwrap());
        // Path parameters get a harmless valid-looking value unless they are the target.
        let fill = |target: Option<(&str, &str)>| -> String {
            let mut path = template.to_string();
            for name in &path_params {
                let value = match target {
                    Some((n, v)) if n == *name => v.to_string(),
                    _ => "1".to_string(),
                };
                path = path.replace(&format!("{{{name}}}"), &value);
            }
            path
        };
        let probe = |target: String, body: Option<Vec<u8>>, what: String, field: Option<&str>, must_refuse: bool, tag: &'static str| Probe {
            method,
            template: template.to_string(),
            target,
            body,
            what,
            field: field.map(String::from),
            must_refuse,
            tag,
        };

        // Path parameters: ids and file names that climb out, overlong, NUL, invalid UTF-8.
        let long_id = "a".repeat(300);
        for name in &path_params {
            for (tag, value) in [
                ("traversal", "..%2F..%2F..%2Fetc%2Fpasswd"),
                ("traversal", "%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
                ("traversal", "..%5C..%5Cwindows"),
                ("absolute", "%2Fetc%2Fpasswd"),
                ("dotdot", ".."),
                ("nul", "a%00b"),
                ("utf8", "%ff%fe"),
                ("blank", "%20%09"),
                ("negative", "-1"),
                ("huge", "99999999999999999999999"),
                ("overlong", long_id.as_str()),
            ] {
                // /docs/{file} serves the documentation's own files; nothing else is there.
                probes.push(probe(fill(Some((name, value))), base_bytes.clone(), format!("path {name}={value:.40}"), None, true, tag));
            }
        }
        let path = fill(None);

        // Query parameters: wrong types, NUL, invalid UTF-8, 70 KB, huge and negative numbers.
        // A URI is at most 64 KiB (the `http` crate's limit): 60 KB is what a client can send.
        let long_value = "x".repeat(60 * 1024);
        for param in &query_params {
            let name = param["name"].as_str().unwrap();
            let types = self.types(&param["schema"]).unwrap_or_default();
            let enumerated = self.resolve(&param["schema"]).get("enum").is_some()
                || self.resolve(&param["schema"]).get("oneOf").is_some();
            let typed = types.iter().any(|t| t == "integer" || t == "number" || t == "boolean") && !types.iter().any(|t| t == "string");
            let integer = types.iter().any(|t| t == "integer") && !types.iter().any(|t| t == "string" || t == "number");
            let mut values: Vec<(&'static str, String, bool)> = vec![
                ("nul", "a%00b".into(), typed || enumerated),
                ("utf8", "%ff%fe".into(), true),
                ("long", long_value.clone(), typed || enumerated),
                ("negative", "-1".into(), false),
                ("huge", "99999999999999999999999".into(), integer),
            ];
            if typed || enumerated {
                values.push(("wrong type", "not-a-number-or-choice".into(), true));
            }
            for (tag, value, must_refuse) in values {
                let target = format!("{path}?{name}={value}");
                probes.push(probe(target, base_bytes.clone(), format!("query {name}={value:.40}"), Some(name), must_refuse, tag));
            }
        }

        // The JSON body.
        let Some(schema) = body_schema else { return probes };
        let mut structural: Vec<(String, Vec<u8>, Option<String>)> = vec![
            ("malformed JSON".into(), b"{\"a\": ".to_vec(), None),
            ("invalid UTF-8".into(), b"{\"\xff\xfe\": 1}".to_vec(), None),
            ("a lone surrogate".into(), b"{\"x\": \"\\ud800\"}".to_vec(), None),
            ("an array instead of an object".into(), b"[]".to_vec(), None),
            ("a string instead of an object".into(), b"\"x\"".to_vec(), None),
            ("deep nesting".into(), format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(), None),
        ];
        let properties: Vec<(String, Value)> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let required: Vec<String> = schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(|v| v.as_str().map(String::from)).collect();
        let base = base_body.clone().unwrap_or(json!({}));
        let with = |field: &str, value: Value| -> Vec<u8> {
            let mut body = base.clone();
            if let Value::Object(map) = &mut body {
                map.insert(field.to_string(), value);
            }
            serde_json::to_vec(&body).unwrap()
        };
        if base.is_object() {
            let mut extra = base.clone();
            extra.as_object_mut().unwrap().insert("surely_not_a_field".into(), json!(1));
            structural.push(("an unknown field".into(), serde_json::to_vec(&extra).unwrap(), Some("surely_not_a_field".into())));
            for name in &required {
                let mut missing = base.clone();
                missing.as_object_mut().unwrap().remove(name);
                structural.push((format!("{name} missing"), serde_json::to_vec(&missing).unwrap(), Some(name.clone())));
            }
            if let Some((name, schema)) = properties.first() {
                let value = serde_json::to_string(&self.placeholder(schema)).unwrap();
                let mut rest = base.clone();
                rest.as_object_mut().unwrap().remove(name);
                let rest = serde_json::to_string(&rest).unwrap();
                let inner = &rest[1..rest.len() - 1];
                let text = format!("{{\"{name}\": {value}, \"{name}\": {value}{}{inner}}}", if inner.is_empty() { "" } else { ", " });
                structural.push((format!("{name} given twice"), text.into_bytes(), Some(name.clone())));
                structural.push((
                    format!("{name} nested 100,000 deep"),
                    format!("{{\"{name}\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
                    Some(name.clone()),
                ));
            }
        }
        for (what, body, field) in structural {
            probes.push(probe(path.clone(), Some(body), what, field.as_deref(), true, ""));
        }
        for (name, field_schema) in &properties {
            // Wrong JSON types.
            if let Some(types) = self.types(field_schema) {
                let admits = |t: &str| types.iter().any(|a| a == t || (a == "number" && t == "integer"));
                for (t, value) in [("string", json!("wrong")), ("integer", json!(7)), ("boolean", json!(true)), ("array", json!(["x"])), ("object", json!({"x": 1}))] {
                    if !admits(t) {
                        probes.push(probe(path.clone(), Some(with(name, value)), format!("{name} as {t}"), Some(name), true, ""));
                    }
                }
                if self.resolve(field_schema).get("enum").is_some() {
                    probes.push(probe(path.clone(), Some(with(name, json!("surely-not-a-choice"))), format!("{name} not one of its choices"), Some(name), true, ""));
                }
            }
            // Hostile values of the field's own type.
            let types = self.types(field_schema).unwrap_or_default();
            if types.iter().any(|t| t == "string") {
                for (tag, value) in [
                    ("empty", json!("")),
                    ("blank", json!(" \t\n ")),
                    ("nul", json!("a\u{0}b")),
                    ("long", json!("x".repeat(70 * 1024))),
                    ("traversal", json!("../../../../etc/passwd")),
                    ("absolute", json!("/etc/passwd")),
                    ("encoded traversal", json!("%2e%2e%2f%2e%2e%2fetc%2fpasswd")),
                ] {
                    probes.push(probe(path.clone(), Some(with(name, value)), format!("{name} {tag}"), Some(name), false, tag));
                }
            }
            if types.iter().any(|t| t == "integer" || t == "number") {
                for (tag, value) in [("negative", json!(-1)), ("huge", json!(u64::MAX)), ("very negative", json!(i64::MIN)), ("fraction", json!(1.5))] {
                    probes.push(probe(path.clone(), Some(with(name, value)), format!("{name} {tag}"), Some(name), false, tag));
                }
                // A number past any integer type is never valid for an integer field.
                let text = String::from_utf8(with(name, json!(0))).unwrap().replacen(&format!("\"{name}\":0"), &format!("\"{name}\":1e400"), 1);
                probes.push(probe(path.clone(), Some(text.into_bytes()), format!("{name} 1e400"), Some(name), true, ""));
            }
            if types.iter().any(|t| t == "array") {
                let items = self.resolve(field_schema).get("items").map(|i| self.placeholder(i)).unwrap_or(json!("x"));
                probes.push(probe(path.clone(), Some(with(name, Value::Array(vec![items; 20_000]))), format!("{name} with 20,000 items"), Some(name), false, "long"));
                probes.push(probe(path.clone(), Some(with(name, json!([null]))), format!("{name} with a null item"), Some(name), false, "null item"));
            }
        }
        // SQL meant to escape the pool's session, where a body carries SQL.
        let session_escapes = [
            "SET search_path TO pg_temp, public",
            "SET SESSION statement_timeout = 0",
            "RESET ALL",
            "DISCARD ALL",
            "SELECT set_config('search_path', 'evil', false)",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "LISTEN evil",
            "COPY accounts TO PROGRAM 'touch /tmp/dbagent-hostile'",
            "SELECT pg_advisory_lock(42)",
            "CREATE TEMP TABLE t (x int)",
            "PREPARE p AS SELECT 1",
        ];
        if template == "/query" {
            for sql in session_escapes {
                probes.push(probe(path.clone(), Some(serde_json::to_vec(&json!({"sql": sql})).unwrap()), format!("sql {sql}"), None, true, ""));
            }
        }
        if template == "/transaction" {
            for sql in session_escapes {
                probes.push(probe(path.clone(), Some(serde_json::to_vec(&json!({"queries": [{"sql": sql}]})).unwrap()), format!("sql {sql}"), None, true, ""));
            }
        }
        probes
    }

    /// Sends one probe and checks its answer; says whether it was accepted (2xx).
    async fn run(&mut self, probe: Probe) -> bool {
        self.tried += 1;
        let url = format!("{}{}", self.app.address, probe.target);
        let mut request = self.app.http.request(probe.method.parse().unwrap(), &url).bearer_auth(ADMIN);
        if let Some(body) = &probe.body {
            request = request.header("content-type", "application/json").body(body.clone());
        }
        let label = format!("{} {} [{}]", probe.method, probe.template, probe.what);
        let response = match request.send().await {
            Ok(response) => response,
            Err(err) => {
                self.failures.push(format!("{label}: no answer: {err}"));
                return false;
            }
        };
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        // A success may say where its files are (a backup's directory); a refusal never does.
        let private: &[String] = if status.is_success() { &[] } else { &self.private };
        if let Some(leak) = leaks(&text, private) {
            self.failures.push(format!("{label}: answer shows {leak}: {text:.300}"));
        }
        if status.is_server_error() {
            self.failures.push(format!("{label}: {status}: {text:.300}"));
            return false;
        }
        if status.is_client_error() {
            self.refused += 1;
            let parsed: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let (code, message) = (parsed.pointer("/error/code").and_then(Value::as_str), parsed.pointer("/error/message").and_then(Value::as_str));
            match (parsed.get("success"), code, message) {
                (Some(Value::Bool(false)), Some(_), Some(message)) => {
                    if let Some(field) = &probe.field
                        && probe.must_refuse
                        && !message.contains(field.as_str())
                    {
                        self.failures.push(format!("{label}: the refusal does not name `{field}`: {message:.300}"));
                    }
                }
                _ => self.failures.push(format!("{label}: {status} not in the common error shape: {text:.300}")),
            }
            return false;
        }
        // Accepted.
        let allowed = (probe.method == "GET" && probe.target.contains('?'))
            || MAY_ACCEPT.iter().any(|(m, p, f, tags)| {
                *m == probe.method && *p == probe.template && probe.field.as_deref() == Some(*f) && tags.iter().any(|t| *t == "*" || *t == probe.tag)
            });
        if probe.must_refuse {
            self.failures.push(format!("{label}: invalid input accepted with {status}: {text:.200}"));
        } else if !allowed {
            self.failures.push(format!("{label}: hostile value accepted with {status} (refuse it, or list it in MAY_ACCEPT with the reason): {text:.200}"));
        } else {
            self.accepted.push(label);
        }
        true
    }

    /// Drops the roles `POST /roles` legally made from hostile names, so later routes meet the
    /// cluster as it was.
    async fn drop_new_roles(&self, before: &BTreeMap<String, String>) {
        let client = self.app.db.connect().await;
        let known: Vec<&str> = before.get("roles").map(|r| r.split(',').collect()).unwrap_or_default();
        let now: Vec<String> = client.query("SELECT rolname::text FROM pg_roles", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        for role in now.iter().filter(|r| !known.contains(&r.as_str())) {
            client.batch_execute(&format!("DROP ROLE {}", dbagent::db::sql::ident(role))).await.unwrap();
        }
    }

    /// What a refused request must leave as it was.
    async fn snapshot(&self) -> BTreeMap<String, String> {
        let client = self.app.db.connect().await;
        let mut state = BTreeMap::new();
        let databases: Vec<String> = client.query("SELECT datname FROM pg_database ORDER BY 1", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        state.insert("databases".into(), databases.join(","));
        let roles: Vec<String> = client.query("SELECT rolname FROM pg_roles ORDER BY 1", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        state.insert("roles".into(), roles.join(","));
        let settings: Vec<String> = client
            .query("SELECT name || '=' || setting FROM pg_file_settings WHERE sourcefile LIKE '%auto.conf' ORDER BY 1", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        state.insert("postgresql.auto.conf".into(), settings.join(","));
        // Every table's contents but the audit trail's, which grows with every request, and
        // the key ring's use times.
        let tables: Vec<String> = client
            .query(
                "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
                   AND n.nspname NOT LIKE 'pg_toast%' AND (n.nspname, c.relname) <> ('dbagent', 'audit_log') ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        for table in tables {
            let sql = if table == "dbagent.api_keys" {
                "SELECT count(*)::text || ':' || coalesce(string_agg(id || revoked_at::text, ',' ORDER BY id), '') FROM dbagent.api_keys".to_string()
            } else {
                format!("SELECT count(*)::text || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') FROM {table} t")
            };
            let value: String = match client.query_one(&sql, &[]).await {
                Ok(row) => row.get(0),
                Err(err) => format!("unreadable: {err}"),
            };
            state.insert(format!("table {table}"), value);
        }
        for (name, dir) in [("backups", &self.backups), ("migrations", &self.migrations)] {
            state.insert(format!("files {name}"), files(dir).join(","));
        }
        state.insert("/tmp/dbagent-hostile".into(), Path::new("/tmp/dbagent-hostile").exists().to_string());
        state
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Every file under `dir`, with its size.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.push(format!("{}:{}", path.display(), if path.is_dir() { 0 } else { size }));
        }
    }
    out.sort();
    out
}

fn diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (key, value) in after {
        if before.get(key) != Some(value) {
            out.push_str(&format!("  {key}: {:.200} -> {value:.200}\n", before.get(key).map(String::as_str).unwrap_or("(none)")));
        }
    }
    for key in before.keys().filter(|k| !after.contains_key(*k)) {
        out.push_str(&format!("  {key}: gone\n"));
    }
    out
}
