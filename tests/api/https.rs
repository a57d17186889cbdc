//! The API over HTTPS (`server.tls`): a certificate the client trusts, HSTS, plain HTTP
//! refused, mutual TLS, and a certificate reload that keeps the old one when the new is bad.

use std::path::PathBuf;

use dbagent::config::ServerTls;
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair};
use reqwest::StatusCode;

use crate::helpers::{TestApp, TestDb, spawn_app_with, spawn_serve};

/// A CA made for one test.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { issuer: Issuer::new(params, key), pem }
    }

    /// A certificate and its key, PEM, signed by this CA.
    fn sign(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        params.extended_key_usages = vec![purpose];
        (params.signed_by(&key, &self.issuer).unwrap().pem(), key.serialize_pem())
    }
}

/// A directory with the server's certificate and key (signed by `ca`).
fn server_files(ca: &Ca, client_ca: Option<&Ca>) -> ServerTls {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("https-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = ca.sign(&["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(dir.join("server.crt"), cert).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
    let client_ca_file = client_ca.map(|c| {
        std::fs::write(dir.join("clients.crt"), &c.pem).unwrap();
        dir.join("clients.crt")
    });
    ServerTls { cert_file: dir.join("server.crt"), key_file: dir.join("server.key"), client_ca_file }
}

fn client(trusting: &Ca, identity: Option<(String, String)>) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(trusting.pem.as_bytes()).unwrap());
    if let Some((cert, key)) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

async fn health(app: &TestApp, client: &reqwest::Client) -> Result<reqwest::Response, reqwest::Error> {
    client.get(format!("{}/health", app.address)).send().await
}

#[tokio::test]
async fn https_with_a_certificate_the_client_trusts_sends_hsts_and_refuses_plain_http() {
    let ca = Ca::new();
    let files = server_files(&ca, None);
    let app = spawn_app_with(move |c| c.server.tls = Some(files)).await;
    assert!(app.address.starts_with("https://"), "{}", app.address);

    let answer = health(&app, &client(&ca, None)).await.expect("HTTPS works");
    let plain = reqwest::get(app.address.replacen("https://", "http://", 1) + "/health").await.expect("an answer");

    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()["strict-transport-security"], "max-age=31536000");
    assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
    assert!(plain.text().await.unwrap().contains("HTTPS"));
    assert!(health(&app, &client(&Ca::new(), None)).await.is_err(), "a client not trusting the CA must fail");
    app.stop().await;
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate_and_serves_one_with_a_signed_one() {
    let (ca, clients) = (Ca::new(), Ca::new());
    let files = server_files(&ca, Some(&clients));
    let app = spawn_app_with(move |c| c.server.tls = Some(files)).await;

    let without = health(&app, &client(&ca, None)).await;
    let stranger = health(&app, &client(&ca, Some(Ca::new().sign(&["me"], ExtendedKeyUsagePurpose::ClientAuth)))).await;
    let signed = health(&app, &client(&ca, Some(clients.sign(&["me"], ExtendedKeyUsagePurpose::ClientAuth)))).await;

    assert!(without.is_err(), "{without:?}");
    assert!(stranger.is_err(), "{stranger:?}");
    assert_eq!(signed.expect("a signed client certificate is accepted").status(), StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn a_reload_serves_the_new_certificate_and_a_bad_file_keeps_the_old_one() {
    let (old_ca, new_ca) = (Ca::new(), Ca::new());
    let files = server_files(&old_ca, None);
    let paths = files.clone();
    let app = spawn_app_with(move |c| c.server.tls = Some(files)).await;
    let https = app.https().expect("serving HTTPS");

    let (cert, key) = new_ca.sign(&["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(&paths.cert_file, cert).unwrap();
    std::fs::write(&paths.key_file, key).unwrap();
    https.reload().expect("the new files are good");
    assert_eq!(health(&app, &client(&new_ca, None)).await.expect("the new certificate").status(), StatusCode::OK);
    assert!(health(&app, &client(&old_ca, None)).await.is_err(), "the old certificate is no longer served");

    std::fs::write(&paths.cert_file, "not a certificate").unwrap();
    let err = https.reload().expect_err("a bad file is refused");
    assert!(err.to_string().contains("server.crt"), "{err}");
    assert_eq!(health(&app, &client(&new_ca, None)).await.expect("still the last good one").status(), StatusCode::OK);
    app.stop().await;
}

/// The real binary with `server.tls` from the environment; its address once it listens.
fn serve_https(db: &TestDb, files: &ServerTls) -> (std::process::Child, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dbagent"));
    command
        .args(["serve", "--port", "0"])
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .env("DATABASE_URL", &db.url)
        .env("DBAGENT_SERVER__TLS__CERT_FILE", &files.cert_file)
        .env("DBAGENT_SERVER__TLS__KEY_FILE", &files.key_file)
        .env_remove("CONFIG_PATH");
    spawn_serve(&mut command, std::time::Duration::from_secs(60))
}

#[tokio::test]
async fn sighup_makes_the_running_process_serve_the_new_certificate_without_dropping_an_open_connection() {
    let db = TestDb::create().await;
    let (old_ca, new_ca) = (Ca::new(), Ca::new());
    let files = server_files(&old_ca, None);
    let (mut child, address) = serve_https(&db, &files);
    assert!(address.starts_with("https://"), "{address}");
    // One client keeps its connection open across the reload (reqwest keeps it alive).
    let kept = client(&old_ca, None);
    let live = |c: reqwest::Client| {
        let url = format!("{address}/health/live");
        async move { c.get(url).send().await.map(|r| r.status()) }
    };
    assert_eq!(live(kept.clone()).await.expect("the first certificate"), StatusCode::OK);

    let (cert, key) = new_ca.sign(&["localhost", "127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    std::fs::write(&files.cert_file, cert).unwrap();
    std::fs::write(&files.key_file, key).unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGHUP).unwrap();
    // The reload is asynchronous: a new connection gets the new certificate within seconds.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while live(client(&new_ca, None)).await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the new certificate was not served after SIGHUP");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(live(client(&old_ca, None)).await.is_err(), "a new connection still gets the old certificate");
    assert_eq!(live(kept).await.expect("the connection opened before the reload still works"), StatusCode::OK);

    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status}");
}
