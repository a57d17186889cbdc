//! Turning configuration into driver connection settings (PostgreSQL's "conninfo"); not to be
//! confused with [`super::Endpoint`], one server with its pool.

use tokio_postgres::config::Host;

use crate::config::{self, Postgresql, Replica};

/// Connection settings for the primary, from `url` or the host/port/... fields.
pub fn primary(pg: &Postgresql) -> Result<tokio_postgres::Config, config::Error> {
    let fields = Fields {
        url: pg.url.as_ref().map(|u| u.expose()),
        host: pg.host.as_deref(),
        port: pg.port,
        database: pg.database.as_deref(),
        user: pg.user.as_deref(),
        password: pg.password.as_ref().map(|p| p.expose()),
    };
    build(&fields, None, "postgresql")
}

/// Connection settings for replica `index`; fields it leaves unset come from the primary's.
pub fn replica(pg: &Postgresql, replica: &Replica, index: usize) -> Result<tokio_postgres::Config, config::Error> {
    let fields = Fields {
        url: replica.url.as_ref().map(|u| u.expose()),
        host: replica.host.as_deref(),
        port: replica.port,
        database: replica.database.as_deref(),
        user: replica.user.as_deref(),
        password: replica.password.as_ref().map(|p| p.expose()),
    };
    let base = primary(pg).ok();
    build(&fields, base.as_ref(), &format!("postgresql.read_replicas[{index}]"))
}

struct Fields<'a> {
    url: Option<&'a str>,
    host: Option<&'a str>,
    port: Option<u16>,
    database: Option<&'a str>,
    user: Option<&'a str>,
    password: Option<&'a str>,
}

fn build(f: &Fields<'_>, base: Option<&tokio_postgres::Config>, key: &str) -> Result<tokio_postgres::Config, config::Error> {
    let mut config = match f.url {
        Some(url) => url.parse::<tokio_postgres::Config>().map_err(|err| config::Error::Invalid {
            key: format!("{key}.url"),
            message: format!("not a PostgreSQL connection string: {err}"),
        })?,
        None => tokio_postgres::Config::new(),
    };
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
    Ok(config)
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
