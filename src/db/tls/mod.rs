//! TLS to PostgreSQL: one connector, built once from the settings, that every connection
//! dbagent opens goes through (pools, LISTEN, dedicated sessions, cancel requests), and the
//! same settings handed to libpq's tools (`pg_dump`, `pg_restore`, `pg_basebackup`) as
//! `PGSSL*` environment variables.
//!
//! Invariants kept here, with libpq's meanings (an experienced user expects them):
//! - `disable` never sends an SSLRequest; `prefer` sends one and goes on in clear text only
//!   when the server answers that it has no TLS; `require` and the `verify-*` modes fail then;
//! - without a root certificate nothing is checked (`prefer`, `require`); with one (given, or
//!   `~/.postgresql/root.crt`) the chain is checked in every mode, the host name only in
//!   `verify-full`; `verify-*` without one is refused at start, not at the first connection;
//! - tokio-postgres knows only disable/prefer/require: the `verify-*` modes are `require` on
//!   the wire and the checking is done by this module's verifier.

mod params;
mod verify;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use crate::config::SslMode;
pub use params::{SslParams, split};
pub use verify::describe_error;

/// The TLS settings of one server, once defaults are resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `None` means libpq's default, `prefer`.
    pub mode: Option<SslMode>,
    /// A PEM file, or `system`.
    pub rootcert: Option<String>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl TlsSettings {
    pub fn mode(&self) -> SslMode {
        self.mode.unwrap_or(SslMode::Prefer)
    }

    /// Fills what `self` leaves unset from `other`.
    pub fn or(mut self, other: &TlsSettings) -> TlsSettings {
        self.mode = self.mode.or(other.mode);
        self.rootcert = self.rootcert.or_else(|| other.rootcert.clone());
        if self.cert.is_none() {
            self.cert = other.cert.clone();
            self.key = other.key.clone();
        }
        self
    }
}

/// Why the TLS settings cannot be used; each message names the setting and the file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {what} \"{}\": {source}", path.display())]
    Read { what: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{what} \"{}\" holds no PEM {kind}", path.display())]
    Empty { what: &'static str, path: PathBuf, kind: &'static str },
    #[error("sslmode={mode} needs a root certificate: set sslrootcert (a PEM file, or \"system\"); \"{}\" does not exist", default.display())]
    NoRootCert { mode: &'static str, default: PathBuf },
    #[error("the system's certificate store has no usable certificate")]
    NoSystemRoots,
    #[error("the client certificate and key do not go together: {0}")]
    ClientCert(#[source] rustls::Error),
}

impl Error {
    /// The configuration key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            Error::Read { what, .. } | Error::Empty { what, .. } => what,
            Error::NoRootCert { .. } | Error::NoSystemRoots => "sslrootcert",
            Error::ClientCert(_) => "sslcert",
        }
    }
}

/// The connector every connection to one server goes through; cheap to clone.
#[derive(Clone)]
pub struct Tls {
    settings: Arc<Resolved>,
    connector: MakeRustlsConnect,
}

/// Settings with libpq's default files looked up.
#[derive(Debug)]
struct Resolved {
    mode: SslMode,
    rootcert: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("settings", &self.settings).finish()
    }
}

impl Tls {
    /// Reads the certificate files now, so a bad file fails the start, not a connection.
    pub fn new(settings: &TlsSettings) -> Result<Tls, Error> {
        let resolved = resolve(settings);
        let verifier = verify::Verifier::new(resolved.mode, roots(&resolved)?);
        let builder = rustls::ClientConfig::builder_with_provider(verify::provider())
            .with_safe_default_protocol_versions()
            .map_err(Error::ClientCert)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        let config = match (&resolved.cert, &resolved.key) {
            (Some(cert), Some(key)) => builder.with_client_auth_cert(certificates("sslcert", cert)?, private_key("sslkey", key)?).map_err(Error::ClientCert)?,
            _ => builder.with_no_client_auth(),
        };
        Ok(Tls { settings: Arc::new(resolved), connector: MakeRustlsConnect::new(config) })
    }

    /// No TLS at all (`sslmode=disable`).
    pub fn disabled() -> Tls {
        Tls::new(&TlsSettings { mode: Some(SslMode::Disable), ..TlsSettings::default() }).expect("no file to read")
    }

    pub fn mode(&self) -> SslMode {
        self.settings.mode
    }

    /// What tokio-postgres is told: it checks nothing itself, the verifier does.
    pub fn wire_mode(&self) -> tokio_postgres::config::SslMode {
        match self.settings.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
        }
    }

    pub fn connector(&self) -> MakeRustlsConnect {
        self.connector.clone()
    }

    /// libpq's environment for a child process (`pg_dump` and the others): the same mode and
    /// files, never on the command line.
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        let s = &self.settings;
        let mut env = vec![("PGSSLMODE", s.mode.as_str().to_owned())];
        if let Some(root) = &s.rootcert {
            env.push(("PGSSLROOTCERT", root.clone()));
        }
        if let (Some(cert), Some(key)) = (&s.cert, &s.key) {
            env.push(("PGSSLCERT", cert.display().to_string()));
            env.push(("PGSSLKEY", key.display().to_string()));
        }
        env
    }
}

/// libpq's per-user directory, `~/.postgresql`, from the password database (as libpq).
fn user_dir() -> Option<PathBuf> {
    let user = nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten()?;
    Some(user.dir.join(".postgresql"))
}

fn resolve(settings: &TlsSettings) -> Resolved {
    let mode = settings.mode();
    let dir = user_dir();
    let default = |name: &str| dir.as_ref().map(|d| d.join(name)).filter(|p| p.is_file());
    let rootcert = match mode {
        SslMode::Disable => None,
        _ => settings.rootcert.clone().or_else(|| default("root.crt").map(|p| p.display().to_string())),
    };
    let (cert, key) = match (&settings.cert, &settings.key) {
        (Some(c), Some(k)) => (Some(c.clone()), Some(k.clone())),
        _ => match (default("postgresql.crt"), default("postgresql.key")) {
            (Some(c), Some(k)) if mode != SslMode::Disable => (Some(c), Some(k)),
            _ => (None, None),
        },
    };
    Resolved { mode, rootcert, cert, key }
}

/// The trusted CAs, or `None` when nothing is to be checked.
fn roots(s: &Resolved) -> Result<Option<RootCertStore>, Error> {
    let Some(root) = &s.rootcert else {
        return match s.mode {
            SslMode::VerifyCa | SslMode::VerifyFull => Err(Error::NoRootCert {
                mode: s.mode.as_str(),
                default: user_dir().unwrap_or_default().join("root.crt"),
            }),
            _ => Ok(None),
        };
    };
    let mut store = RootCertStore::empty();
    if root == "system" {
        store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        if store.is_empty() {
            return Err(Error::NoSystemRoots);
        }
    } else {
        store.add_parsable_certificates(certificates("sslrootcert", Path::new(root))?);
    }
    Ok(Some(store))
}

/// The certificates of a PEM file.
pub fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read { what, path: path.into(), source })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes).filter_map(Result::ok).collect();
    if certs.is_empty() {
        return Err(Error::Empty { what, path: path.into(), kind: "certificate" });
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, Error> {
    let bytes = std::fs::read(path).map_err(|source| Error::Read { what, path: path.into(), source })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| Error::Empty { what, path: path.into(), kind: "private key" })
}

#[cfg(test)]
mod tests;
