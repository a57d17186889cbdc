//! The managed instance's TLS (`instance.ssl: true`): a CA and a server certificate it signed
//! (for `localhost`, `127.0.0.1`, `::1` and the host name), written into the data directory
//! with the keys private to the server's OS user (0600, as PostgreSQL demands), and made again
//! only when missing, expired or no longer signed by the CA beside them. dbagent's own
//! connections trust that CA, so `verify-full` works with nothing to set up.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Datelike;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{ServerName, UnixTime};

use super::Error;
use super::user::ServerUser;

/// The CA's certificate: what clients put in `sslrootcert`.
pub const CA_CERT: &str = "dbagent-ca.crt";
const CA_KEY: &str = "dbagent-ca.key";
/// The server's certificate and key (`ssl_cert_file`, `ssl_key_file`).
pub const SERVER_CERT: &str = "dbagent-server.crt";
pub const SERVER_KEY: &str = "dbagent-server.key";
/// Years a generated certificate is valid.
const VALID_YEARS: i32 = 2;

/// The CA certificate of the managed instance in `data_dir`.
pub fn ca_file(data_dir: &Path) -> PathBuf {
    data_dir.join(CA_CERT)
}

/// dbagent's TLS to the managed server in `data_dir`: its generated CA trusted when it has
/// one (libpq's `prefer` then checks the chain), libpq's defaults otherwise.
pub fn client_tls(data_dir: &Path) -> crate::db::tls::Tls {
    use crate::db::tls::{Tls, TlsSettings};
    let ca = ca_file(data_dir);
    let rootcert = ca.is_file().then(|| ca.display().to_string());
    Tls::new(&TlsSettings { rootcert, ..TlsSettings::default() }).unwrap_or_else(|_| Tls::disabled())
}

/// Makes the certificates unless valid ones are there.
pub(crate) fn ensure(data_dir: &Path, user: &ServerUser) -> Result<(), Error> {
    if still_valid(data_dir) {
        return Ok(());
    }
    let failed = |e: rcgen::Error| Error::Io { action: "generate a certificate for", path: data_dir.to_owned(), source: std::io::Error::other(e) };
    let (ca_key, ca) = authority().map_err(failed)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(failed)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca, ca_key);
    let server_key = KeyPair::generate().map_err(failed)?;
    let server = server_params().map_err(failed)?.signed_by(&server_key, &issuer).map_err(failed)?;
    write(&data_dir.join(CA_KEY), &ca_key_pem, 0o600, user)?;
    write(&data_dir.join(SERVER_KEY), &server_key.serialize_pem(), 0o600, user)?;
    write(&data_dir.join(SERVER_CERT), &server.pem(), 0o644, user)?;
    write(&data_dir.join(CA_CERT), &ca_cert.pem(), 0o644, user)?;
    tracing::info!(data_dir = %data_dir.display(), "generated the managed instance's TLS certificates");
    Ok(())
}

/// The host names and addresses the server's certificate names.
fn names() -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Ok(host) = nix::unistd::gethostname()
        && let Some(host) = host.to_str().filter(|h| !h.is_empty() && *h != "localhost")
    {
        names.push(host.to_owned());
    }
    names
}

fn validity(params: &mut CertificateParams) {
    let today = chrono::Utc::now().date_naive() - chrono::Days::new(1);
    let (month, day) = (today.month() as u8, today.day().min(28) as u8);
    params.not_before = rcgen::date_time_ymd(today.year(), month, day);
    params.not_after = rcgen::date_time_ymd(today.year() + VALID_YEARS, month, day);
}

fn authority() -> Result<(KeyPair, CertificateParams), rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.distinguished_name.push(DnType::CommonName, "dbagent managed instance CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params);
    Ok((KeyPair::generate()?, params))
}

fn server_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(names())?;
    params.distinguished_name.push(DnType::CommonName, "localhost");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params);
    Ok(params)
}

/// True when the server certificate is there, within its dates and signed by the CA beside
/// it (checked the way a `verify-full` client for `localhost` checks it).
fn still_valid(data_dir: &Path) -> bool {
    let check = || -> Option<()> {
        let ca = crate::db::tls::certificates("sslrootcert", &data_dir.join(CA_CERT)).ok()?;
        let chain = crate::db::tls::certificates("sslcert", &data_dir.join(SERVER_CERT)).ok()?;
        crate::db::tls::private_key("sslkey", &data_dir.join(SERVER_KEY)).ok()?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(ca);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider).build().ok()?;
        let name = ServerName::try_from("localhost").ok()?;
        verifier.verify_server_cert(chain.first()?, &chain[1..], &name, &[], UnixTime::now()).ok().map(drop)
    };
    check().is_some()
}

fn write(path: &Path, contents: &str, mode: u32, user: &ServerUser) -> Result<(), Error> {
    let _ = fs::remove_file(path);
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(Error::io("write", path))?;
    file.write_all(contents.as_bytes()).map_err(Error::io("write", path))?;
    user.give(path)
}

/// The lines of `postgresql.conf` that turn TLS on with these files.
pub(crate) fn conf_lines() -> String {
    format!(
        "ssl = on\nssl_cert_file = '{SERVER_CERT}'\nssl_key_file = '{SERVER_KEY}'\nssl_ca_file = ''\nssl_min_protocol_version = 'TLSv1.2'\n"
    )
}
