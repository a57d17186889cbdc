//! Turning configuration into driver connection settings (PostgreSQL's "conninfo"); not to be
//! confused with [`super::Endpoint`], one server with its pool.

use tokio_postgres::config::Host;
use tokio_postgres::tls::MakeTlsConnect;

use super::tls::{Tls, TlsSettings};
use crate::config::{self, Postgresql, Replica};

/// A server's connection settings with the TLS to use: every connection dbagent opens is made
/// from one ([`PgConfig::connect`]), so none can bypass [`super::tls`]. It dereferences to the
/// driver's settings for everything else.
#[derive(Debug, Clone)]
pub struct PgConfig {
    pg: tokio_postgres::Config,
    tls: Tls,
}

/// The stream of a connection dbagent opened (TLS or not).
pub type Stream = <tokio_postgres_rustls::MakeRustlsConnect as MakeTlsConnect<tokio_postgres::Socket>>::Stream;
/// The driver half of a connection dbagent opened; it must be polled (spawned).
pub type Connection = tokio_postgres::Connection<tokio_postgres::Socket, Stream>;

impl PgConfig {
    pub fn new(mut pg: tokio_postgres::Config, tls: Tls) -> PgConfig {
        pg.ssl_mode(tls.wire_mode());
        PgConfig { pg, tls }
    }

    /// Settings without TLS ([`Tls::disabled`]): for servers known to be local and plain, such as
    /// the test suites' own.
    pub fn plain(pg: tokio_postgres::Config) -> PgConfig {
        PgConfig::new(pg, Tls::disabled())
    }

    /// Opens a connection through the TLS connector.
    pub async fn connect(&self) -> Result<(tokio_postgres::Client, Connection), tokio_postgres::Error> {
        self.pg.connect(self.tls.connector()).await
    }

    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    /// The same TLS, another server (a replica, a recovered copy).
    pub fn with(&self, pg: tokio_postgres::Config) -> PgConfig {
        PgConfig::new(pg, self.tls.clone())
    }
}

impl std::ops::Deref for PgConfig {
    type Target = tokio_postgres::Config;
    fn deref(&self) -> &tokio_postgres::Config {
        &self.pg
    }
}

impl std::ops::DerefMut for PgConfig {
    fn deref_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.pg
    }
}

/// The TLS settings of the `postgresql:` section's fields (the URL's come on top of them).
fn settings(pg: &Postgresql) -> TlsSettings {
    TlsSettings { mode: pg.sslmode, rootcert: pg.sslrootcert.clone(), cert: pg.sslcert.clone(), key: pg.sslkey.clone() }
}

/// Connection settings for the primary, from `url` or the host/port/... fields.
pub fn primary(pg: &Postgresql) -> Result<PgConfig, config::Error> {
    let fields = Fields {
        url: pg.url.as_ref().map(|u| u.expose()),
        host: pg.host.as_deref(),
        port: pg.port,
        database: pg.database.as_deref(),
        user: pg.user.as_deref(),
        password: pg.password.as_ref().map(|p| p.expose()),
    };
    build(&fields, None, &settings(pg), "postgresql")
}

/// Connection settings for replica `index`; fields it leaves unset come from the primary's.
pub fn replica(pg: &Postgresql, replica: &Replica, index: usize) -> Result<PgConfig, config::Error> {
    let fields = Fields {
        url: replica.url.as_ref().map(|u| u.expose()),
        host: replica.host.as_deref(),
        port: replica.port,
        database: replica.database.as_deref(),
        user: replica.user.as_deref(),
        password: replica.password.as_ref().map(|p| p.expose()),
    };
    let base = primary(pg).ok();
    build(&fields, base.as_deref(), &settings(pg), &format!("postgresql.read_replicas[{index}]"))
}

struct Fields<'a> {
    url: Option<&'a str>,
    host: Option<&'a str>,
    port: Option<u16>,
    database: Option<&'a str>,
    user: Option<&'a str>,
    password: Option<&'a str>,
}

fn build(f: &Fields<'_>, base: Option<&tokio_postgres::Config>, fields: &TlsSettings, key: &str) -> Result<PgConfig, config::Error> {
    let invalid = |message: String| config::Error::Invalid { key: format!("{key}.url"), message };
    let (mut config, from_url) = match f.url {
        Some(url) => {
            let (rest, params) = super::tls::split(url).map_err(|e| invalid(format!("not a PostgreSQL connection string: {e}")))?;
            let config = rest.parse::<tokio_postgres::Config>().map_err(|err| invalid(format!("not a PostgreSQL connection string: {err}")))?;
            (config, params)
        }
        None => (tokio_postgres::Config::new(), TlsSettings::default()),
    };
    // The URL's TLS parameters win, as its other parameters do over nothing.
    let settings = from_url.or(fields);
    let tls = Tls::new(&settings).map_err(|err| config::Error::Invalid { key: format!("postgresql.{}", err.key()), message: err.to_string() })?;
    if let Some(host) = f.host {
        config.host(host);
    }
    if let Some(port) = f.port {
        config.port(port);
    }
    if let Some(db) = f.database {
        config.dbname(db);
    }
    if let Some(user) = f.user {
        config.user(user);
    }
    if let Some(password) = f.password {
        config.password(password);
    }
    if let Some(base) = base {
        inherit(&mut config, base);
    }
    if config.get_hosts().is_empty() {
        config.host("localhost");
    }
    if config.get_user().is_none() {
        config.user("postgres");
    }
    Ok(PgConfig::new(config, tls))
}

fn inherit(config: &mut tokio_postgres::Config, base: &tokio_postgres::Config) {
    if config.get_dbname().is_none()
        && let Some(db) = base.get_dbname() {
            config.dbname(db);
        }
    if config.get_user().is_none()
        && let Some(user) = base.get_user() {
            config.user(user);
        }
    if config.get_password().is_none()
        && let Some(password) = base.get_password() {
            config.password(password);
        }
}

/// `host:port/db` for logs and /health, never the password.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().or(config.get_user()).unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}
