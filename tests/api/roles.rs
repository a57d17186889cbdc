//! `/roles` and `/grants`: hostile names survive every statement, a role that owns objects is
//! not dropped behind anyone's back, dbagent's own roles are left alone, and a password works
//! for logging in while appearing nowhere (answers, audit rows, pg_stat_statements).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_managed_app, wait_until};

/// A short suffix so parallel tests never share a role name (roles are cluster-wide).
fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

async fn call(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = app.http.request(method.parse().unwrap(), format!("{}{path}", app.address));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    (status, response.json().await.expect("JSON body"))
}

fn encoded(name: &str) -> String {
    url::form_urlencoded::byte_serialize(name.as_bytes()).collect::<String>().replace('+', "%20")
}

async fn role_exists(app: &TestApp, name: &str) -> bool {
    let client = app.db.connect().await;
    client.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name]).await.unwrap().is_some()
}

#[tokio::test]
async fn roles_with_hostile_names_are_created_changed_granted_and_dropped() {
    let app = spawn_app().await;
    let id = unique();
    let table = format!("Order \"Items\"; DROP TABLE x; -- {id}");
    app.setup(&format!("CREATE TABLE {} (id int)", dbagent::db::sql::ident(&table))).await;
    for base in ["x\"; DROP ROLE postgres; --", "it's a \"role\" ", "Ünïcødé 表 rôle", "space in name"] {
        let name = format!("{base}{id}");
        // Create.
        let (status, body) = call(&app, "POST", "/roles", Some(json!({"name": name, "login": false, "connection_limit": 2}))).await;
        assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
        assert_eq!(body["role"]["name"], json!(name));
        assert_eq!(body["role"]["connection_limit"], json!(2));
        assert!(role_exists(&app, &name).await, "{name}");
        // A second one of the same name is a conflict, not an error of the server.
        let (status, body) = call(&app, "POST", "/roles", Some(json!({"name": name}))).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("role_exists")), "{body}");
        // Change.
        let path = format!("/roles/{}", encoded(&name));
        let (status, body) = call(&app, "PATCH", &path, Some(json!({"connection_limit": -1, "createdb": true, "valid_until": "2099-01-01T00:00:00Z"}))).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert_eq!(body["role"]["connection_limit"], Value::Null);
        assert_eq!(body["role"]["createdb"], json!(true));
        assert!(body["role"]["valid_until"].as_str().unwrap().starts_with("2099-01-01"), "{body}");
        // Grant on a table with a hostile name, then take part of it back.
        let grant = json!({"role": name, "privileges": ["SELECT", "INSERT"], "on": "table", "name": table});
        let (status, body) = call(&app, "POST", "/grants", Some(grant.clone())).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert_eq!(body["privileges"][0]["privileges"], json!(["INSERT", "SELECT"]), "{body}");
        let client = app.db.connect().await;
        let can = async |privilege: &str| -> bool {
            client
                .query_one("SELECT has_table_privilege($1, format('%I.%I', 'public', $2::text), $3)", &[&name, &table, &privilege])
                .await
                .unwrap()
                .get(0)
        };
        assert!(can("SELECT").await && can("INSERT").await);
        let (status, body) = call(&app, "DELETE", "/grants", Some(json!({"role": name, "privileges": ["INSERT"], "on": "table", "name": table}))).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert!(can("SELECT").await && !can("INSERT").await);
        // GET /roles shows the grant.
        let (status, body) = app.get(&format!("/roles?role={}", encoded(&name))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let privileges = &body["roles"][0]["privileges"];
        assert!(privileges.as_array().unwrap().iter().any(|p| p["name"] == json!(table) && p["privileges"] == json!(["SELECT"])), "{body}");
        // Holding a privilege, it is not dropped unless told to.
        let (status, body) = call(&app, "DELETE", &path, None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("role_in_use")), "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("Items"), "{body}");
        assert!(role_exists(&app, &name).await);
        let (status, body) = call(&app, "DELETE", &format!("{path}?drop_owned=true"), None).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
        assert!(!role_exists(&app, &name).await, "{name}");
    }
    assert!(role_exists(&app, "postgres").await, "the bootstrap superuser is still there");
}

#[tokio::test]
async fn a_role_that_owns_objects_is_dropped_only_once_told_who_inherits_them() {
    let app = spawn_app().await;
    let id = unique();
    let (owner, heir) = (format!("owner {id}"), format!("heir {id}"));
    for name in [&owner, &heir] {
        let (status, body) = call(&app, "POST", "/roles", Some(json!({"name": name, "login": false}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    app.setup(&format!("CREATE TABLE owned_things (id int); ALTER TABLE owned_things OWNER TO {}", dbagent::db::sql::ident(&owner))).await;

    let (status, body) = call(&app, "DELETE", &format!("/roles/{}", encoded(&owner)), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("role_in_use")), "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("table owned_things (owner)"), "{message}");

    let (status, body) = call(&app, "DELETE", &format!("/roles/{}?reassign_to=nobody-{id}", encoded(&owner)), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("role_not_found")), "{body}");
    assert!(role_exists(&app, &owner).await);

    let (status, body) = call(&app, "DELETE", &format!("/roles/{}?reassign_to={}", encoded(&owner), encoded(&heir)), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!role_exists(&app, &owner).await);
    let client = app.db.connect().await;
    let now: String = client.query_one("SELECT tableowner::text FROM pg_tables WHERE tablename = 'owned_things'", &[]).await.unwrap().get(0);
    assert_eq!(now, heir);
    app.setup("DROP TABLE owned_things").await;
    let (status, body) = call(&app, "DELETE", &format!("/roles/{}", encoded(&heir)), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn dbagent_s_own_roles_and_wrong_requests_are_refused_changing_nothing() {
    let app = spawn_app().await;
    let id = unique();
    let (status, body) = call(&app, "PATCH", "/roles/postgres", Some(json!({"login": false}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("role_protected")), "{body}");
    let (status, body) = call(&app, "DELETE", "/roles/postgres?drop_owned=true", None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("role_protected")), "{body}");
    let (status, body) = call(&app, "DELETE", "/roles/pg_monitor", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    let refusals = [
        (json!({"name": format!("su {id}"), "superuser": true}), "superuser"),
        (json!({"name": "pg_mine"}), "pg_"),
        (json!({"name": "a\nb"}), "control"),
        (json!({"name": format!("short {id}"), "password": "abc"}), "password"),
        (json!({"name": format!("when {id}"), "valid_until": "tomorrow"}), "valid_until"),
    ];
    for (body, says) in refusals {
        let (status, answer) = call(&app, "POST", "/roles", Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().contains(says), "{body}: {answer}");
    }
    assert!(!role_exists(&app, &format!("su {id}")).await);

    app.setup("CREATE TABLE t (id int)").await;
    let (status, body) = call(&app, "POST", "/grants", Some(json!({"role": "PUBLIC", "privileges": ["USAGE"], "on": "table", "name": "t"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("USAGE does not apply"), "{body}");
    let (status, body) = call(&app, "POST", "/grants", Some(json!({"role": "PUBLIC", "privileges": ["SELECT"], "on": "table", "name": "no such table"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("object_not_found")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("\"public\".\"no such table\""), "{body}");
    let (status, body) = call(&app, "POST", "/grants", Some(json!({"role": format!("ghost {id}"), "privileges": ["SELECT"], "on": "table", "name": "t"}))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("role_not_found")), "{body}");
    let client = app.db.connect().await;
    let public_select: bool = client.query_one("SELECT has_table_privilege('public', 't', 'SELECT')", &[]).await.map(|r| r.get(0)).unwrap_or(false);
    assert!(!public_select);
}

#[tokio::test]
async fn a_created_role_logs_in_with_its_password_within_its_limit_and_the_password_is_kept_nowhere() {
    let app = spawn_managed_app(|_| {}).await;
    let name = format!("login_{}", unique());
    let password = format!("Pw-{}-never-logged", unique());
    // This server trusts every connection; make it ask this role for its password (SCRAM).
    let client = app.db.connect().await;
    let hba: String = client.query_one("SHOW hba_file", &[]).await.unwrap().get(0);
    let rules = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(&hba, format!("host all {name} 127.0.0.1/32 scram-sha-256\n{rules}")).unwrap();
    client.batch_execute("SELECT pg_reload_conf()").await.unwrap();

    let (status, body) = call(&app, "POST", "/roles", Some(json!({"name": name, "password": password, "connection_limit": 1, "valid_until": "2099-12-31T00:00:00Z"}))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(!body.to_string().contains(&password), "the answer holds the password: {body}");

    let port = app.agent.managed().unwrap().primary.running.port;
    let connect = async |pw: &str| {
        tokio_postgres::Config::new().host("127.0.0.1").port(port).user(&name).password(pw).dbname("postgres").connect(tokio_postgres::NoTls).await
    };
    let wrong = connect("not the password").await;
    assert!(wrong.is_err(), "a wrong password was accepted: the test's pg_hba line is not in force");
    let (first, connection) = connect(&password).await.expect("the password logs in");
    tokio::spawn(connection);
    first.query_one("SELECT 1", &[]).await.unwrap();
    // CONNECTION LIMIT 1: a second session is refused while the first is open.
    let second = connect(&password).await;
    let err = second.err().expect("a second session past CONNECTION LIMIT 1");
    assert_eq!(err.code().map(|c| c.code()), Some("53300"), "{err}");

    // Nowhere: not in pg_authid (a SCRAM verifier), not in pg_stat_statements, not in the audit log.
    let stored: String = client.query_one("SELECT rolpassword FROM pg_authid WHERE rolname = $1", &[&name]).await.unwrap().get(0);
    assert!(stored.starts_with("SCRAM-SHA-256$") && !stored.contains(&password));
    let in_statements: i64 = client
        .query_one("SELECT count(*) FROM pg_stat_statements WHERE query LIKE '%' || $1 || '%'", &[&password])
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_statements, 0);
    let audit = "SELECT count(*) FROM dbagent.audit_log WHERE action = 'roles.create' AND related LIKE '%' || $1 || '%'";
    wait_until("the audit row of roles.create", Duration::from_secs(10), async || client.query_one(audit, &[&name]).await.is_ok_and(|r| r.get::<_, i64>(0) == 1)).await;
    let leaked: i64 = client.query_one("SELECT count(*) FROM dbagent.audit_log a WHERE row_to_json(a)::text LIKE '%' || $1 || '%'", &[&password]).await.unwrap().get(0);
    assert_eq!(leaked, 0, "the audit log holds the password");

    drop(first);
    let (status, body) = call(&app, "DELETE", &format!("/roles/{name}"), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}
