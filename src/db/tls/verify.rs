//! The server certificate check, by `sslmode`: nothing without a root certificate, the chain
//! with one, and the host name too in `verify-full`. rustls' WebPKI verifier does the work;
//! this only leaves the name out where libpq does.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::SslMode;

/// The crypto provider every TLS configuration of dbagent uses (ring, which reqwest and lettre
/// already build).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[derive(Debug)]
pub struct Verifier {
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl Verifier {
    /// `roots` is `None` when nothing is to be checked.
    pub fn new(mode: SslMode, roots: Option<RootCertStore>) -> Verifier {
        let provider = provider();
        let chain = roots.and_then(|roots| WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().ok());
        Verifier { chain, check_name: mode == SslMode::VerifyFull, provider }
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        // WebPKI checks the chain first and the name last, so a name error means the chain held.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }))
                if !self.check_name =>
            {
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS failure in a connection error's chain, told in libpq's words ("certificate verify
/// failed: unknown issuer"); `None` for any other error.
pub fn describe_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    if err.to_string() == "server does not support TLS" {
        return Some("the server does not support SSL, and sslmode requires it".into());
    }
    let io = err.downcast_ref::<std::io::Error>()?;
    let tls = io.get_ref()?.downcast_ref::<rustls::Error>()?;
    let text = match tls {
        rustls::Error::InvalidCertificate(cert) => format!("certificate verify failed: {}", certificate_problem(cert)),
        rustls::Error::AlertReceived(alert) => format!("the server refused the TLS handshake ({alert:?})"),
        other => format!("TLS failed: {other}"),
    };
    Some(text)
}

fn certificate_problem(err: &CertificateError) -> String {
    match err {
        CertificateError::UnknownIssuer => "unknown issuer (the server's certificate is not signed by a CA in sslrootcert)".into(),
        CertificateError::NotValidForName => "the certificate does not name the host".into(),
        CertificateError::Expired => "certificate has expired".into(),
        CertificateError::BadSignature => "bad signature".into(),
        other => other.to_string(),
    }
}
