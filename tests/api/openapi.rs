//! `GET /openapi.json` and `GET /docs`: every route of the router is in the document, the
//! document validates as OpenAPI 3.1 (openapi-spec-validator, installed by scripts/setup.sh),
//! real answers carry only documented fields, and the viewer is served from the binary.

use dbagent::api::auth::ROUTES;
use dbagent::config::{Config, KeysRequired, Secret};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn document(app: &TestApp) -> Value {
    let response = app.http.get(format!("{}/openapi.json", app.address)).send().await.expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.expect("JSON")
}

#[tokio::test]
async fn the_document_has_every_route_and_validates_as_openapi_3_1() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    for spec in ROUTES {
        let op = &doc["paths"][spec.path][spec.method.to_ascii_lowercase()];
        assert!(op.is_object(), "{} {} is not in /openapi.json", spec.method, spec.path);
        assert!(op["responses"]["default"].is_object(), "{} {}: no error answer", spec.method, spec.path);
    }
    // Seed 004's aliases are there, and say what they stand for.
    assert_eq!(doc["paths"]["/api/database/restore"]["post"]["x-dbagent-alias-of"], "POST /restore");
    assert_eq!(doc["paths"]["/keys"]["post"]["x-dbagent-scope"], "admin");

    let validator = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/venv/bin/openapi-spec-validator");
    assert!(validator.exists(), "openapi-spec-validator is missing: run scripts/setup.sh");
    let dir = std::env::temp_dir().join(format!("dbagent-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let out = tokio::process::Command::new(&validator).arg(&file).output().await.expect("run openapi-spec-validator");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "openapi-spec-validator: {said}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Every property name `schema` can have (through `$ref`, `allOf`, `anyOf`, `oneOf`).
fn properties(doc: &Value, schema: &Value, out: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return properties(doc, &doc["components"]["schemas"][name], out);
    }
    if let Some(props) = schema["properties"].as_object() {
        out.extend(props.keys().cloned());
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        for sub in schema[key].as_array().into_iter().flatten() {
            properties(doc, sub, out);
        }
    }
}

fn answer_schema<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let responses = &doc["paths"][path][method]["responses"];
    let ok = responses.as_object().unwrap().iter().find(|(status, _)| status.starts_with('2')).expect("a success answer").1;
    &ok["content"]["application/json"]["schema"]
}

#[tokio::test]
async fn real_answers_carry_only_documented_fields() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let calls: [(&str, &str, Option<Value>); 7] = [
        ("post", "/query", Some(json!({ "sql": "SELECT 1 AS one" }))),
        ("post", "/transaction", Some(json!({ "queries": [{ "sql": "SELECT 1" }] }))),
        ("get", "/health", None),
        ("get", "/health/ready", None),
        ("get", "/schema", None),
        ("get", "/migrations", None),
        ("get", "/backups", None),
    ];
    for (method, path, body) in calls {
        let url = format!("{}{path}", app.address);
        let request = match &body {
            Some(body) => app.http.post(url).json(body),
            None => app.http.get(url),
        };
        let answer: Value = request.send().await.expect("request").json().await.expect("JSON");
        let mut documented = Vec::new();
        properties(&doc, answer_schema(&doc, method, path), &mut documented);
        for field in answer.as_object().expect("an object").keys() {
            assert!(documented.contains(field), "{method} {path}: `{field}` is not in the document ({documented:?})");
        }
    }
    // And an error answer is the documented error shape.
    let answer: Value = app.http.post(format!("{}/query", app.address)).json(&json!({ "sql": "SELEC" })).send().await.unwrap().json().await.unwrap();
    let mut documented = Vec::new();
    properties(&doc, &doc["paths"]["/query"]["post"]["responses"]["default"]["content"]["application/json"]["schema"], &mut documented);
    assert!(answer.as_object().unwrap().keys().all(|k| documented.contains(k)), "{answer}");
}

#[tokio::test]
async fn the_viewer_is_served_from_the_binary_and_the_document_needs_a_key() {
    let app = spawn_app_with(|c: &mut Config| {
        c.security.api_keys_required = KeysRequired::Yes;
        c.security.admin_key = Some(Secret::new("bootstrap-admin-key-for-the-openapi-tests-0123456789"));
    })
    .await;
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = no_redirects.get(format!("{}/docs", app.address)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(response.headers()["location"], "/docs/");
    let page = app.http.get(format!("{}/docs/", app.address)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("swagger-ui-bundle.js"));
    let bundle = app.http.get(format!("{}/docs/swagger-ui-bundle.js", app.address)).send().await.unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    assert!(bundle.bytes().await.unwrap().len() > 100_000, "the bundle is compiled in");
    let start = app.http.get(format!("{}/docs/swagger-initializer.js", app.address)).send().await.unwrap().text().await.unwrap();
    assert!(start.contains("/openapi.json") && start.contains("Authorization"), "{start}");
    let missing = app.http.get(format!("{}/docs/..%2F..%2Fetc%2Fpasswd", app.address)).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // The document itself is behind the read scope.
    let response = app.http.get(format!("{}/openapi.json", app.address)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .http
        .get(format!("{}/openapi.json", app.address))
        .header("authorization", "Bearer bootstrap-admin-key-for-the-openapi-tests-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
