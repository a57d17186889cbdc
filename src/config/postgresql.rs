//! `postgresql:` — the database dbagent serves, and its read replicas.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConnectionPool, Error, Secret, invalid};

/// Default of `postgresql.max_response_bytes`: 64 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 64 << 20;
/// Below this an ordinary answer (a few rows) would not fit.
const MIN_RESPONSE_BYTES: usize = 1024;

/// The database dbagent serves. With neither `url` nor `host` set, dbagent runs a managed
/// instance (see [`Instance`](super::Instance)).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Postgresql {
    /// `postgresql://user:pass@host:port/db?...` or `key=value` form. `DATABASE_URL` overrides.
    pub url: Option<Secret>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// TLS to PostgreSQL, with libpq's meanings: `disable`, `prefer` (TLS when the server offers
    /// it, certificate not checked), `require` (TLS or fail), `verify-ca` (and the certificate
    /// is signed by `sslrootcert`), `verify-full` (and it names the host). Default: the URL's
    /// `sslmode`, else `prefer`.
    pub sslmode: Option<SslMode>,
    /// PEM file of the CA certificates that sign the server's, or `system` for the system's
    /// store. Default: the URL's, else `~/.postgresql/root.crt` when it exists. When one is
    /// found, `prefer` and `require` check the chain too (as libpq does).
    pub sslrootcert: Option<String>,
    /// PEM file of a client certificate (with `sslkey`). Default: the URL's, else
    /// `~/.postgresql/postgresql.crt` when it exists.
    pub sslcert: Option<PathBuf>,
    /// PEM file of the client certificate's private key. Default: the URL's, else
    /// `~/.postgresql/postgresql.key`.
    pub sslkey: Option<PathBuf>,
    pub connection_pool: ConnectionPool,
    /// Seconds a statement may run; the server cancels it (`statement_timeout`). Default 30.
    pub query_timeout: f64,
    /// Rows `/query` returns before it answers `truncated: true`. Default 10000.
    pub max_rows: usize,
    /// Bytes of row JSON one `/query` or `/transaction` answer may carry; past it the answer is
    /// 422 `response_too_large` (no partial rows). Also bounds the memory one answer takes.
    /// Default 67108864 (64 MiB); at least 1024.
    pub max_response_bytes: usize,
    /// Read replicas; reads go to them round-robin while they are healthy.
    pub read_replicas: Vec<Replica>,
    /// Log every statement at INFO (`DB_ECHO_SQL`). Default false.
    pub echo_sql: bool,
}

impl Default for Postgresql {
    fn default() -> Self {
        Postgresql {
            url: None,
            host: None,
            port: None,
            database: None,
            user: None,
            password: None,
            sslmode: None,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            connection_pool: ConnectionPool::default(),
            query_timeout: 30.0,
            max_rows: 10_000,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            read_replicas: Vec::new(),
            echo_sql: false,
        }
    }
}

impl Postgresql {
    /// True when a server was named (URL or host); false means "run a managed instance".
    pub fn is_configured(&self) -> bool {
        self.url.is_some() || self.host.is_some()
    }

    pub fn query_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.query_timeout)
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        self.connection_pool.validate()?;
        if !(self.query_timeout > 0.0 && self.query_timeout.is_finite()) {
            return invalid("postgresql.query_timeout", "must be a positive number of seconds");
        }
        if self.sslcert.is_some() != self.sslkey.is_some() {
            return invalid("postgresql.sslkey", "sslcert and sslkey go together: set both or neither");
        }
        if self.max_rows == 0 {
            return invalid("postgresql.max_rows", "must be at least 1");
        }
        if self.max_response_bytes < MIN_RESPONSE_BYTES {
            return invalid("postgresql.max_response_bytes", format!("must be at least {MIN_RESPONSE_BYTES} bytes"));
        }
        for (i, replica) in self.read_replicas.iter().enumerate() {
            replica.validate(&format!("postgresql.read_replicas[{i}]"))?;
        }
        Ok(())
    }
}

/// libpq's `sslmode` values (`allow` is not offered: it would try clear text first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    /// libpq's name for it (`verify-full`).
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// From libpq's name; `None` for anything else.
    pub fn parse(name: &str) -> Option<SslMode> {
        [SslMode::Disable, SslMode::Prefer, SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull]
            .into_iter()
            .find(|m| m.as_str() == name)
    }
}

/// One read replica: a URL or host/port/..., which inherit the primary's unset fields.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Replica {
    pub url: Option<Secret>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// Stop routing reads here while replay lag exceeds this. Default: no limit.
    pub max_lag_seconds: Option<f64>,
}

impl Replica {
    /// `key` is this replica's path, `postgresql.read_replicas[<i>]`.
    fn validate(&self, key: &str) -> Result<(), Error> {
        if self.url.is_none() && self.host.is_none() {
            return invalid(key, "needs a url or a host");
        }
        if self.max_lag_seconds.is_some_and(|s| !(s >= 0.0 && s.is_finite())) {
            return invalid(&format!("{key}.max_lag_seconds"), "must be zero or positive");
        }
        Ok(())
    }
}
