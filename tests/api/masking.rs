//! Column masking against real PostgreSQL over real HTTP: the same statements by a key without
//! `unmask` and by one with it, through aliases, joins, views, expressions and whole rows,
//! `/transaction` and the result cache; rules by pattern, comment tag and name heuristics.
//! Every table and view is made after the agent started, so the masking's catalog read for
//! relations it has not seen yet is what masks them.

use dbagent::config::{Config, KeysRequired, MaskRule, MaskStrategy, Secret};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, spawn_app_on, spawn_app_with};

const ADMIN: &str = "bootstrap-admin-key-for-the-masking-tests-0123456789";

fn rule(pattern: Option<&str>, strategy: Option<MaskStrategy>) -> MaskRule {
    MaskRule { pattern: pattern.map(Into::into), tag: false, security_label: None, heuristics: false, strategy }
}

/// Email partial, card numbers hashed, `[mask:...]` comments, and names like phone redacted.
fn masking(c: &mut Config) {
    let m = &mut c.security.masking;
    m.rules = vec![
        rule(Some("public.customer.email"), Some(MaskStrategy::Partial)),
        rule(Some("public.*.card_number"), Some(MaskStrategy::Hash)),
        MaskRule { tag: true, ..rule(None, None) },
        MaskRule { heuristics: true, ..rule(None, Some(MaskStrategy::Redact)) },
    ];
    m.hash_key = Some(Secret::new("masking-test-hash-key-0123456789"));
}

fn keyed(c: &mut Config) {
    c.security.api_keys_required = KeysRequired::Yes;
    c.security.admin_key = Some(Secret::new(ADMIN));
    c.security.audit.flush_interval_ms = 100;
    masking(c);
}

const TABLES: &str = "
CREATE TABLE customer (id int PRIMARY KEY, name text, email text, card_number text, notes text);
COMMENT ON COLUMN customer.notes IS 'free text from support [mask:null]';
INSERT INTO customer VALUES
    (1, 'Jane', 'jane@example.com', '4111111111111111', 'called twice'),
    (2, 'John', 'john@example.org', '4111111111111111', NULL),
    (3, 'Ann', 'ann@example.net', '5500000000000004', 'vip');
CREATE TABLE orders (id int PRIMARY KEY, customer_id int, amount numeric);
INSERT INTO orders VALUES (10, 1, 9.5), (11, 3, 20);
CREATE TABLE staff (id int, name text, mobile_phone text);
INSERT INTO staff VALUES (1, 'Sam', '+1 555 0100');
CREATE VIEW customer_contacts AS SELECT c.id, c.email AS contact, upper(c.name) AS shout FROM customer c;
CREATE VIEW contacts_again AS SELECT id, contact FROM customer_contacts;
CREATE VIEW order_summary AS SELECT o.id, o.amount, c.name FROM orders o JOIN customer c ON c.id = o.customer_id;
";

async fn post(app: &TestApp, key: &str, path: &str, body: &Value) -> (StatusCode, Value) {
    let response = app.http.post(format!("{}{path}", app.address)).bearer_auth(key).json(body).send().await.expect("request");
    let status = response.status();
    (status, response.json().await.expect("JSON body"))
}

async fn rows(app: &TestApp, key: &str, sql: &str) -> Vec<Value> {
    let (status, body) = post(app, key, "/query", &json!({ "sql": sql })).await;
    assert_eq!(status, StatusCode::OK, "{sql}: {body}");
    body["rows"].as_array().expect("rows").clone()
}

async fn key(app: &TestApp, scopes: Value) -> String {
    let (status, created) = post(app, ADMIN, "/keys", &json!({ "name": "k", "scopes": scopes })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["secret"].as_str().expect("secret").to_owned()
}

/// An agent with keys and masking, the tables made after it started, a read key and a
/// read + unmask key.
async fn masked_app() -> (TestApp, String, String) {
    let app = spawn_app_with(keyed).await;
    app.setup(TABLES).await;
    let masked = key(&app, json!(["read"])).await;
    let unmasked = key(&app, json!(["read", "unmask"])).await;
    (app, masked, unmasked)
}

#[tokio::test]
async fn a_key_without_unmask_sees_sensitive_columns_masked_and_one_with_it_does_not() {
    let (app, masked, unmasked) = masked_app().await;
    let sql = "SELECT * FROM customer ORDER BY id";
    let plain = rows(&app, &unmasked, sql).await;
    assert_eq!(plain[0], json!({"id": 1, "name": "Jane", "email": "jane@example.com", "card_number": "4111111111111111", "notes": "called twice"}));

    let hidden = rows(&app, &masked, sql).await;
    assert_eq!(hidden[0]["id"], 1);
    assert_eq!(hidden[0]["name"], "Jane");
    assert_eq!(hidden[0]["email"], "j***@example.com");
    assert_eq!(hidden[0]["notes"], Value::Null, "the comment tag asks for null");
    let card = hidden[0]["card_number"].as_str().unwrap();
    assert!(card.starts_with("h:") && !card.contains("4111"), "{card}");
    // Equal values hash alike (joins on them still match), different ones do not, and a
    // hash is the same on the next query.
    assert_eq!(hidden[1]["card_number"], card);
    assert_ne!(hidden[2]["card_number"], card);
    assert_eq!(rows(&app, &masked, sql).await, hidden);
    // Heuristics: a column named like a phone number.
    assert_eq!(rows(&app, &masked, "SELECT * FROM staff").await[0], json!({"id": 1, "name": "Sam", "mobile_phone": "***"}));
    assert_eq!(rows(&app, &unmasked, "SELECT mobile_phone FROM staff").await[0]["mobile_phone"], "+1 555 0100");
}

#[tokio::test]
async fn aliases_joins_views_and_expressions_do_not_unmask() {
    let (app, masked, unmasked) = masked_app().await;
    let cases = [
        // An alias keeps the column's origin.
        ("SELECT email AS contact, card_number AS x FROM customer c WHERE id = 1", json!({"contact": "j***@example.com"})),
        // A join.
        ("SELECT o.id, c.email FROM orders o JOIN customer c ON c.id = o.customer_id WHERE o.id = 10", json!({"id": 10, "email": "j***@example.com"})),
        // A view, its alias traced to the column; an expression in it is redacted whole.
        ("SELECT * FROM customer_contacts WHERE id = 1", json!({"id": 1, "contact": "j***@example.com", "shout": "***"})),
        // A view of a view.
        ("SELECT * FROM contacts_again WHERE id = 1", json!({"id": 1, "contact": "j***@example.com"})),
        // A view over the table that shows no masked column stays as it is.
        ("SELECT * FROM order_summary WHERE id = 10", json!({"id": 10, "amount": 9.5, "name": "Jane"})),
        // Expressions over a masked column, and whole rows.
        ("SELECT lower(email) AS e FROM customer WHERE id = 1", json!({"e": "***"})),
        ("SELECT row_to_json(c) AS j FROM customer c WHERE id = 1", json!({"j": "***"})),
        ("SELECT c AS whole FROM customer c WHERE id = 1", json!({"whole": "***"})),
        ("WITH x AS (SELECT email AS e FROM customer) SELECT upper(e) AS u FROM x LIMIT 1", json!({"u": "***"})),
        // Expressions over other columns are left alone.
        ("SELECT count(*) AS n, max(id) AS top FROM customer", json!({"n": 3, "top": 3})),
    ];
    for (sql, expected) in cases {
        let row = rows(&app, &masked, sql).await.remove(0);
        for (column, value) in expected.as_object().unwrap() {
            assert_eq!(&row[column], value, "{sql}: {row}");
        }
        if sql.contains("card_number") {
            assert!(row["x"].as_str().unwrap().starts_with("h:"), "{sql}: {row}");
        }
    }
    // The unmasked key sees every one of them plainly.
    let row = rows(&app, &unmasked, "SELECT * FROM customer_contacts WHERE id = 1").await.remove(0);
    assert_eq!(row, json!({"id": 1, "contact": "jane@example.com", "shout": "JANE"}));
    assert_eq!(rows(&app, &unmasked, "SELECT lower(email) AS e FROM customer WHERE id = 1").await[0]["e"], "jane@example.com");
}

#[tokio::test]
async fn transactions_are_masked_too() {
    let (app, masked, unmasked) = masked_app().await;
    let body = json!({ "queries": [{ "sql": "SELECT email FROM customer WHERE id = $1", "params": [1] }, { "sql": "SELECT email FROM customer_contacts c JOIN customer USING (id) WHERE id = 2" }], "read_only": true });
    let (status, answer) = post(&app, &masked, "/transaction", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["results"][0]["rows"][0]["email"], "j***@example.com", "{answer}");
    assert_eq!(answer["results"][1]["rows"][0]["email"], "j***@example.org", "{answer}");
    let (_, answer) = post(&app, &unmasked, "/transaction", &body).await;
    assert_eq!(answer["results"][0]["rows"][0]["email"], "jane@example.com", "{answer}");
    // `/query` with `transaction: true` as well.
    let (status, answer) = post(&app, &masked, "/query", &json!({ "sql": "SELECT email FROM customer WHERE id = 3", "transaction": true })).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["rows"][0]["email"], "a***@example.net");
}

#[tokio::test]
async fn a_cached_unmasked_result_is_never_served_to_a_masked_caller() {
    let (app, masked, unmasked) = masked_app().await;
    let body = json!({ "sql": "SELECT id, email FROM customer ORDER BY id", "use_cache": true });
    let (_, first) = post(&app, &unmasked, "/query", &body).await;
    let (_, again) = post(&app, &unmasked, "/query", &body).await;
    assert_eq!(again["from_cache"], true, "the unmasked result is cached: {again}");
    assert_eq!(first["rows"][0]["email"], "jane@example.com");

    let (_, hidden) = post(&app, &masked, "/query", &body).await;
    assert_eq!(hidden["from_cache"], false, "{hidden}");
    assert_eq!(hidden["rows"][0]["email"], "j***@example.com");
    let (_, hidden_again) = post(&app, &masked, "/query", &body).await;
    assert_eq!(hidden_again["from_cache"], true, "masked results are cached apart: {hidden_again}");
    assert_eq!(hidden_again["rows"], hidden["rows"]);
}

#[tokio::test]
async fn unmask_goes_beside_a_level_and_tables_made_before_it_accept_it() {
    // A table of keys made by an agent that knew no `unmask`.
    let db = TestDb::create().await;
    db.connect()
        .await
        .batch_execute(
            "CREATE SCHEMA dbagent;
             CREATE TABLE dbagent.api_keys (
                 id text PRIMARY KEY, name text NOT NULL, digest bytea NOT NULL,
                 scopes text[] NOT NULL CHECK (cardinality(scopes) > 0 AND scopes <@ ARRAY['read', 'write', 'admin']),
                 rate_per_second double precision, burst integer, max_concurrent integer,
                 allow_from text[] NOT NULL DEFAULT '{}', created_at timestamptz NOT NULL DEFAULT now(),
                 expires_at timestamptz, last_used_at timestamptz, revoked_at timestamptz, replaced_by text);
             ALTER TABLE dbagent.api_keys ENABLE ROW LEVEL SECURITY;",
        )
        .await
        .expect("old table");
    let app = spawn_app_on(db, keyed).await;
    let (status, body) = post(&app, ADMIN, "/keys", &json!({ "name": "peek", "scopes": ["unmask"] })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.to_string().contains("unmask goes beside one"), "{body}");
    let (status, created) = post(&app, ADMIN, "/keys", &json!({ "name": "auditor", "scopes": ["read", "unmask"] })).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["scopes"], json!(["read", "unmask"]));
    // The unmask scope grants no level: the key still only reads.
    let secret = created["secret"].as_str().unwrap();
    app.setup("CREATE TABLE t (id int)").await;
    let (status, _) = post(&app, secret, "/query", &json!({ "sql": "INSERT INTO t VALUES (1)" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn callers_without_a_key_are_masked_only_when_asked() {
    let plain = spawn_app_with(masking).await;
    plain.setup(TABLES).await;
    assert_eq!(plain.rows("SELECT email FROM customer WHERE id = 1", json!([])).await[0]["email"], "jane@example.com");
    let app = spawn_app_with(|c| {
        masking(c);
        c.security.masking.mask_unauthenticated = true;
    })
    .await;
    app.setup(TABLES).await;
    assert_eq!(app.rows("SELECT email FROM customer WHERE id = 1", json!([])).await[0]["email"], "j***@example.com");
}

#[tokio::test]
async fn the_audit_trail_keeps_no_literal_of_a_masked_callers_statement() {
    let app = spawn_app_with(|c| {
        keyed(c);
        c.security.audit_reads = true;
    })
    .await;
    app.setup(TABLES).await;
    let masked = key(&app, json!(["read"])).await;
    let found = rows(&app, &masked, "SELECT id, email FROM customer WHERE email = 'jane@example.com'").await;
    assert_eq!(found, vec![json!({"id": 1, "email": "j***@example.com"})]);
    let client = app.db.connect().await;
    crate::helpers::wait_until("the audit row", std::time::Duration::from_secs(5), async || {
        client.query_one("SELECT count(*) FROM dbagent.audit_log WHERE statement LIKE 'SELECT id, email FROM customer%'", &[]).await.unwrap().get::<_, i64>(0) > 0
    })
    .await;
    let statement: String =
        client.query_one("SELECT statement FROM dbagent.audit_log WHERE statement LIKE 'SELECT id, email FROM customer%'", &[]).await.unwrap().get(0);
    assert_eq!(statement, "SELECT id, email FROM customer WHERE email = $1");
}
