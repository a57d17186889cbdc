//! TLS to PostgreSQL: libpq's `sslmode`s against a managed instance serving TLS with its
//! generated certificates, one without TLS, and a CA that signed neither.

use std::path::PathBuf;
use std::sync::OnceLock;

use dbagent::config::SslMode;
use dbagent::instance;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestDb, spawn_app_on, spawn_managed_app, start_instance, test_instance_settings};

/// A managed instance with `instance.ssl: true`, shared by the tests that only connect to it.
fn ssl_server() -> &'static instance::Running {
    static SERVER: OnceLock<instance::Running> = OnceLock::new();
    SERVER.get_or_init(|| {
        let mut settings = test_instance_settings("tls-on-pgdata");
        settings.ssl = true;
        start_instance(&settings)
    })
}

/// A managed instance without TLS.
fn plain_server() -> &'static instance::Running {
    static SERVER: OnceLock<instance::Running> = OnceLock::new();
    SERVER.get_or_init(|| start_instance(&test_instance_settings("tls-off-pgdata")))
}

/// A CA made here, which signed nothing the servers present.
fn stranger_ca() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tls-stranger-ca.crt");
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
    path
}

async fn health_of(server: &instance::Running, configure: impl FnOnce(&mut dbagent::config::Config)) -> (StatusCode, Value) {
    let url = server.url("postgres");
    let app = spawn_app_on(TestDb::existing(&url), |c| {
        // A checkout that cannot connect gives up (with the connection's error) before
        // /health's own 3 s limit would hide it.
        c.postgresql.connection_pool.timeout = 1.0;
        configure(c);
    })
    .await;
    let answer = app.get("/health").await;
    app.stop().await;
    answer
}

#[tokio::test]
async fn verify_full_with_the_managed_instances_own_ca_encrypts_queries_health_and_pg_dump() {
    // Arrange: an agent running its managed instance with TLS, asking for verify-full and
    // given no CA (it trusts the instance's generated one).
    let app = spawn_managed_app(|c| {
        c.instance.ssl = true;
        c.postgresql.sslmode = Some(SslMode::VerifyFull);
    })
    .await;

    // Act
    let rows = app.rows("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", json!([])).await;
    let (status, health) = app.get("/health").await;
    let (backup_status, backup) = app.post("/backup", &json!({})).await;

    // Assert
    assert_eq!(rows[0]["ssl"], json!(true), "{rows:?}");
    assert_eq!(status, StatusCode::OK, "{health}");
    let tls = &health["database"]["tls"];
    assert_eq!(tls["encrypted"], json!(true), "{health}");
    assert_eq!(tls["sslmode"], json!("verify-full"), "{health}");
    assert_eq!(tls["version"], json!("TLSv1.3"), "{health}");
    assert!(tls["cipher"].as_str().is_some_and(|c| !c.is_empty()), "{health}");
    assert_eq!(backup_status, StatusCode::OK, "pg_dump with PGSSLMODE=verify-full: {backup}");
    let data_dir = &app.agent.managed().unwrap().primary.running.data_dir;
    let key = data_dir.join(instance::certs::SERVER_KEY);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    app.stop().await;
}

#[tokio::test]
async fn a_ca_that_did_not_sign_the_server_fails_with_the_certificate_problem_named() {
    let ca = stranger_ca();
    let (status, health) = health_of(ssl_server(), |c| {
        c.postgresql.sslmode = Some(SslMode::VerifyFull);
        c.postgresql.sslrootcert = Some(ca.display().to_string());
    })
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    let error = health["database"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("certificate verify failed: unknown issuer"), "{health}");
}

#[tokio::test]
async fn require_against_a_server_without_tls_fails_and_says_so() {
    let (status, health) = health_of(plain_server(), |c| c.postgresql.sslmode = Some(SslMode::Require)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    let error = health["database"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("does not support SSL"), "{health}");
}

#[tokio::test]
async fn prefer_encrypts_when_the_server_offers_tls_and_not_when_it_does_not() {
    let (status, on) = health_of(ssl_server(), |c| c.postgresql.sslmode = Some(SslMode::Prefer)).await;
    assert_eq!(status, StatusCode::OK, "{on}");
    assert_eq!(on["database"]["tls"]["encrypted"], json!(true), "{on}");
    let (status, off) = health_of(plain_server(), |_| {}).await;
    assert_eq!(status, StatusCode::OK, "{off}");
    assert_eq!(off["database"]["tls"]["encrypted"], json!(false), "{off}");
    assert_eq!(off["database"]["tls"]["sslmode"], json!("prefer"), "{off}");
}

#[tokio::test]
async fn the_urls_libpq_parameters_are_honoured() {
    let server = ssl_server();
    let ca = instance::certs::ca_file(&server.data_dir);
    let url = format!("{}?sslmode=verify-ca&sslrootcert={}", server.url("postgres"), ca.display());
    let app = spawn_app_on(TestDb::existing(&server.url("postgres")), |c| c.postgresql.url = Some(dbagent::config::Secret::new(url))).await;
    let (status, health) = app.get("/health").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    assert_eq!(health["database"]["tls"]["sslmode"], json!("verify-ca"), "{health}");
    assert_eq!(health["database"]["tls"]["encrypted"], json!(true), "{health}");
    app.stop().await;
}
