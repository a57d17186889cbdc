//! HTTPS for the API (`server.tls`): rustls behind the edge, the certificate swappable while
//! the server runs (SIGHUP calls [`Https::reload`]; connections already open keep the
//! certificate they were handshaken with), and client certificates required when
//! `client_ca_file` is set (mutual TLS).
//!
//! A reload that cannot read or match the new files keeps serving the old certificate.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::config;
use crate::db::tls as pem;

/// Why the API's TLS cannot be set up or reloaded; names the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    File(#[from] pem::Error),
    #[error("the key in \"{}\" does not fit the certificate in \"{}\": {source}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf, source: rustls::Error },
    #[error("cannot use the client CAs of \"{}\": {reason}", path.display())]
    ClientCa { path: PathBuf, reason: String },
    #[error("cannot configure TLS: {0}")]
    Config(#[source] rustls::Error),
}

/// The certificate served, swapped whole on reload.
#[derive(Debug)]
struct Current(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.read().unwrap_or_else(|p| p.into_inner()).clone())
    }
}

/// The API's TLS: an acceptor for the edge and the reloadable certificate behind it.
pub struct Https {
    acceptor: TlsAcceptor,
    current: Arc<Current>,
    files: config::ServerTls,
}

impl Https {
    /// Reads the files now: a bad one fails the start.
    pub fn new(files: &config::ServerTls) -> Result<Https, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = Arc::new(Current(RwLock::new(load(files, &provider)?)));
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions().map_err(Error::Config)?;
        let builder = match &files.client_ca_file {
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add_parsable_certificates(pem::certificates("server.tls.client_ca_file", path)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .map_err(|e| Error::ClientCa { path: path.clone(), reason: e.to_string() })?;
                builder.with_client_cert_verifier(verifier)
            }
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Https { acceptor: TlsAcceptor::from(Arc::new(config)), current, files: files.clone() })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Reads the certificate and key files again and serves them to new connections; on any
    /// error the old ones stay.
    pub fn reload(&self) -> Result<(), Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let fresh = load(&self.files, &provider)?;
        *self.current.0.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }
}

fn load(files: &config::ServerTls, provider: &rustls::crypto::CryptoProvider) -> Result<Arc<CertifiedKey>, Error> {
    let certs = pem::certificates("server.tls.cert_file", &files.cert_file)?;
    let key = pem::private_key("server.tls.key_file", &files.key_file)?;
    let mismatch = |source| Error::Mismatch { cert: files.cert_file.clone(), key: files.key_file.clone(), source };
    let certified = CertifiedKey::from_der(certs, key, provider).map_err(mismatch)?;
    Ok(Arc::new(certified))
}

/// A plain-HTTP request sent to the HTTPS port gets this and the connection is closed.
pub const PLAIN_HTTP_REFUSAL: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 42\r\n\r\nThis port serves HTTPS: use https:// URLs\n";

/// The first byte of a TLS handshake record.
pub const HANDSHAKE: u8 = 0x16;

/// `Strict-Transport-Security` on every HTTPS answer.
pub async fn hsts(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        axum::http::HeaderValue::from_static("max-age=31536000"),
    );
    response
}

