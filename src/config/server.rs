//! `server:` — the HTTP listener.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Error, invalid};

/// The HTTP listener.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Address to bind. Default `127.0.0.1`.
    pub bind: String,
    /// Port. Default `8016`; `0` picks a free port.
    pub port: u16,
    /// Seconds a client has to send a request's headers, counted from when the connection is
    /// ready for a request, so an idle keep-alive connection is closed after it too (slow or
    /// silent clients cannot hold connections). Default 10.
    pub header_read_timeout: f64,
    /// Connections served at once. Past it, new connections wait in the listen backlog until
    /// one closes (they are not refused). Default 10000; the process's open-file limit is
    /// raised to its hard limit at start so it can be reached.
    pub max_connections: usize,
    /// Seconds a shutdown (SIGTERM, Ctrl-C) waits for the requests in flight to finish before
    /// it stops anyway. Default 30.
    pub shutdown_timeout: f64,
    /// Every answer carries a `Server-Timing` header: where the request's time went, by stage
    /// (`read`, `classify`, `acquire`, `db`, `json`, `total`), for finding a stall. Default
    /// false.
    pub server_timing: bool,
    /// Serve HTTPS instead of HTTP. Default: none (plain HTTP).
    pub tls: Option<ServerTls>,
}

/// `server.tls`: the API over HTTPS.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// PEM certificate chain, the server's certificate first. Read again on SIGHUP.
    pub cert_file: PathBuf,
    /// PEM private key of that certificate. Read again on SIGHUP.
    pub key_file: PathBuf,
    /// PEM CA certificates: when set, every client must present a certificate one of them
    /// signed (mutual TLS). Default: none (no client certificate asked).
    pub client_ca_file: Option<PathBuf>,
}

impl Default for Server {
    fn default() -> Self {
        Server { bind: "127.0.0.1".into(), port: 8016, header_read_timeout: 10.0, max_connections: 10_000, shutdown_timeout: 30.0, server_timing: false, tls: None }
    }
}

impl Server {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.header_read_timeout)
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        if !(self.header_read_timeout > 0.0 && self.header_read_timeout.is_finite() && self.header_read_timeout <= 3600.0) {
            return invalid("server.header_read_timeout", "must be a number of seconds above 0 and at most 3600");
        }
        if self.max_connections == 0 {
            return invalid("server.max_connections", "must be at least 1");
        }
        if let Some(tls) = &self.tls {
            for (key, path) in [("server.tls.cert_file", Some(&tls.cert_file)), ("server.tls.key_file", Some(&tls.key_file)), ("server.tls.client_ca_file", tls.client_ca_file.as_ref())] {
                if path.is_some_and(|p| !p.is_file()) {
                    return invalid(key, "is not a readable file");
                }
            }
        }
        if !(self.shutdown_timeout.is_finite() && self.shutdown_timeout > 0.0 && self.shutdown_timeout <= 86_400.0) {
            return invalid("server.shutdown_timeout", "must be more than 0 and at most 86400 seconds");
        }
        Ok(())
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.shutdown_timeout)
    }
}
