use std::path::PathBuf;

use super::*;

#[test]
fn the_url_form_gives_up_libpqs_tls_parameters_and_keeps_the_others() {
    let cases = [
        ("postgresql://u@h/db", "postgresql://u@h/db", None, None),
        ("postgresql://u@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem", "postgresql://u@h/db", Some(SslMode::VerifyFull), Some("/tmp/ca.pem")),
        ("postgres://h/db?application_name=x&sslmode=verify-ca&connect_timeout=3", "postgres://h/db?application_name=x&connect_timeout=3", Some(SslMode::VerifyCa), None),
        ("postgresql://h/db?sslrootcert=system", "postgresql://h/db", None, Some("system")),
    ];
    for (url, rest, mode, root) in cases {
        let (kept, params) = split(url).unwrap();
        assert_eq!(kept, rest, "{url}");
        assert_eq!(params.mode, mode, "{url}");
        assert_eq!(params.rootcert.as_deref(), root, "{url}");
    }
}

#[test]
fn the_keyword_form_gives_up_libpqs_tls_parameters_and_keeps_the_others() {
    let (kept, params) = split("host=h  dbname = 'my db' sslmode=require sslcert='/a b/c.crt' sslkey=/k").unwrap();
    assert_eq!(kept, "host='h' dbname='my db'");
    assert_eq!(params.mode, Some(SslMode::Require));
    assert_eq!(params.cert, Some(PathBuf::from("/a b/c.crt")));
    assert_eq!(params.key, Some(PathBuf::from("/k")));
    let parsed: tokio_postgres::Config = kept.parse().unwrap();
    assert_eq!(parsed.get_dbname(), Some("my db"));
}

#[test]
fn an_unknown_sslmode_or_a_broken_string_is_refused_with_the_reason() {
    assert!(split("postgresql://h/db?sslmode=allow").unwrap_err().contains("not one of disable, prefer"));
    assert!(split("host=h sslmode=verify").unwrap_err().contains("sslmode \"verify\""));
    assert!(split("host='h").unwrap_err().contains("no closing quote"));
    assert!(split("host").unwrap_err().contains("no value"));
}

#[test]
fn the_modes_map_to_the_wire_and_to_libpqs_environment_as_libpq_does() {
    let cases = [
        (SslMode::Disable, tokio_postgres::config::SslMode::Disable),
        (SslMode::Prefer, tokio_postgres::config::SslMode::Prefer),
        (SslMode::Require, tokio_postgres::config::SslMode::Require),
        (SslMode::VerifyCa, tokio_postgres::config::SslMode::Require),
        (SslMode::VerifyFull, tokio_postgres::config::SslMode::Require),
    ];
    let ca = std::env::temp_dir().join(format!("dbagent-tls-unit-{}.pem", std::process::id()));
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap().self_signed(&key).unwrap();
    std::fs::write(&ca, cert.pem()).unwrap();
    for (mode, wire) in cases {
        let settings = TlsSettings { mode: Some(mode), rootcert: Some(ca.display().to_string()), ..TlsSettings::default() };
        let tls = Tls::new(&settings).unwrap();
        assert_eq!(tls.wire_mode(), wire, "{mode:?}");
        let env = tls.libpq_env();
        assert_eq!(env[0], ("PGSSLMODE", mode.as_str().to_owned()));
        assert_eq!(env.iter().any(|(k, _)| *k == "PGSSLROOTCERT"), mode != SslMode::Disable, "{mode:?}");
    }
    std::fs::remove_file(&ca).unwrap();
}

#[test]
fn verify_modes_without_a_root_certificate_are_refused_at_start() {
    let missing = TlsSettings { mode: Some(SslMode::VerifyFull), rootcert: Some("/nonexistent/ca.pem".into()), ..TlsSettings::default() };
    let err = Tls::new(&missing).unwrap_err();
    assert_eq!(err.key(), "sslrootcert");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
