//! What the checks decide on, read once: the server's settings and catalogs (on a session of
//! its own), the agent's configuration, the backup catalogue and the API keys. Whatever cannot
//! be read is `None` with the reason, so its checks say "not applicable" instead of failing
//! the report.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;

use super::Error;
use crate::config::{self, Config};
use crate::db;
use crate::security::keys;

/// A role as the checks see it.
#[derive(Debug, Clone, Default)]
pub struct RoleFacts {
    pub name: String,
    pub bootstrap: bool,
    pub superuser: bool,
    pub login: bool,
    pub createrole: bool,
    pub replication: bool,
    pub bypassrls: bool,
    pub connection_limit: i32,
    pub expires: bool,
    /// Predefined roles reaching the server's files or programs it is a member of.
    pub server_access: Vec<String>,
    /// From `pg_authid` (superusers only): has a password, and an MD5 one.
    pub password_set: Option<bool>,
    pub md5: Option<bool>,
}

/// One line of `pg_hba_file_rules`.
#[derive(Debug, Clone, Default)]
pub struct HbaRule {
    pub line: i32,
    pub kind: String,
    pub database: String,
    pub user: String,
    pub address: String,
    pub method: String,
}

/// A backup as the checks see it.
#[derive(Debug, Clone)]
pub struct BackupFact {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub encrypted: bool,
}

/// Everything the checks decide on.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub now: DateTime<Utc>,
    pub database: String,
    pub server_version: String,
    pub settings: HashMap<String, String>,
    /// The report's session is a superuser's (and so could read `pg_authid` and
    /// `pg_hba_file_rules`).
    pub superuser: bool,
    pub login: String,
    pub roles: Vec<RoleFacts>,
    /// `None`: unreadable (the reason is in [`Facts::unreadable`]).
    pub hba: Option<Vec<HbaRule>>,
    pub unreadable: String,
    /// `None`: there is no schema public.
    pub public_create: Option<bool>,
    /// Untrusted languages and the non-superusers that may use them.
    pub untrusted_languages: Vec<(String, Vec<String>)>,
    pub definers_without_search_path: Vec<String>,
    pub pii_columns: Vec<String>,
    /// The report's own connection uses TLS, and goes to this host.
    pub own_ssl: bool,
    pub own_local: bool,
    pub agent: AgentFacts,
}

/// dbagent's own side.
#[derive(Debug, Clone)]
pub struct AgentFacts {
    pub bound_beyond_loopback: bool,
    pub keys_required: bool,
    pub allow_unauthenticated: bool,
    pub allowed_ips: usize,
    pub audit: bool,
    pub audit_retention_days: u32,
    pub allow_superuser_roles: bool,
    pub backup_encryption_configured: bool,
    pub backup_max_age_hours: f64,
    /// `Err`: the catalogue could not be read (the reason).
    pub backups: Result<Vec<BackupFact>, String>,
    /// Active keys with the admin scope and no expiry; `Err`: the keys table could not be read.
    pub admin_keys_without_expiry: Result<Vec<String>, String>,
    // TODO(tls): also read `postgresql.sslmode` once the TLS work is merged (require /
    // verify-full is what the check should ask for, beside what pg_stat_ssl shows).
    // TODO(masking): also read `security.masking` once the masking work is merged: PII-like
    // columns with masking rules pass.
}

impl Default for AgentFacts {
    fn default() -> Self {
        AgentFacts {
            bound_beyond_loopback: false,
            keys_required: false,
            allow_unauthenticated: false,
            allowed_ips: 0,
            audit: false,
            audit_retention_days: 0,
            allow_superuser_roles: false,
            backup_encryption_configured: false,
            backup_max_age_hours: 26.0,
            backups: Err("not read".into()),
            admin_keys_without_expiry: Err("not read".into()),
        }
    }
}

/// Reads the server's side on `client`, and the agent's from its configuration.
pub async fn read(client: &Client, config: &Config, backup: &crate::backup::Settings, keys_required: bool) -> Result<Facts, Error> {
    let me = client.query_one(include_str!("sql/own_session.sql"), &[]).await.map_err(Error::driver)?;
    let mut facts = Facts {
        now: Utc::now(),
        database: db::get(&me, "database")?,
        server_version: db::get(&me, "server_version")?,
        superuser: db::get(&me, "superuser")?,
        login: db::get(&me, "login")?,
        own_ssl: db::get(&me, "ssl")?,
        own_local: db::get(&me, "local")?,
        ..Facts::default()
    };
    for row in client.query(include_str!("sql/settings.sql"), &[]).await.map_err(Error::driver)? {
        facts.settings.insert(db::get(&row, "name")?, db::get(&row, "setting")?);
    }
    facts.roles = roles(client).await?;
    if facts.superuser {
        passwords(client, &mut facts.roles).await?;
        facts.hba = Some(hba(client).await?);
    } else {
        facts.unreadable = format!("dbagent's login ({}) is not a superuser, and only superusers may read pg_authid and pg_hba_file_rules", facts.login);
    }
    let public = client.query_opt(include_str!("sql/schema_public.sql"), &[]).await.map_err(Error::driver)?;
    facts.public_create = public.map(|r| db::get(&r, "public_create")).transpose()?;
    for row in client.query(include_str!("sql/languages.sql"), &[]).await.map_err(Error::driver)? {
        facts.untrusted_languages.push((db::get(&row, "name")?, db::get(&row, "users")?));
    }
    facts.definers_without_search_path = names(client, include_str!("sql/definers.sql")).await?;
    facts.pii_columns = names(client, include_str!("sql/pii_columns.sql")).await?;
    facts.agent = agent(client, config, backup, keys_required).await;
    Ok(facts)
}

async fn names(client: &Client, sql: &str) -> Result<Vec<String>, Error> {
    client.query(sql, &[]).await.map_err(Error::driver)?.iter().map(|r| Ok(db::get(r, "name")?)).collect()
}

async fn roles(client: &Client) -> Result<Vec<RoleFacts>, Error> {
    let rows = client.query(include_str!("sql/roles.sql"), &[]).await.map_err(Error::driver)?;
    rows.iter()
        .map(|row| {
            Ok(RoleFacts {
                name: db::get(row, "name")?,
                bootstrap: db::get(row, "bootstrap")?,
                superuser: db::get(row, "superuser")?,
                login: db::get(row, "login")?,
                createrole: db::get(row, "createrole")?,
                replication: db::get(row, "replication")?,
                bypassrls: db::get(row, "bypassrls")?,
                connection_limit: db::get(row, "connection_limit")?,
                expires: db::get(row, "expires")?,
                server_access: db::get(row, "server_access")?,
                password_set: None,
                md5: None,
            })
        })
        .collect()
}

async fn passwords(client: &Client, roles: &mut [RoleFacts]) -> Result<(), Error> {
    for row in client.query(include_str!("sql/passwords.sql"), &[]).await.map_err(Error::driver)? {
        let name: String = db::get(&row, "name")?;
        if let Some(role) = roles.iter_mut().find(|r| r.name == name) {
            role.password_set = Some(db::get(&row, "password_set")?);
            role.md5 = Some(db::get(&row, "md5")?);
        }
    }
    Ok(())
}

async fn hba(client: &Client) -> Result<Vec<HbaRule>, Error> {
    let rows = client.query(include_str!("sql/hba.sql"), &[]).await.map_err(Error::driver)?;
    rows.iter()
        .map(|row| {
            Ok(HbaRule {
                line: db::get(row, "line_number")?,
                kind: db::get(row, "type")?,
                database: db::get(row, "database")?,
                user: db::get(row, "user_name")?,
                address: db::get(row, "address")?,
                method: db::get(row, "auth_method")?,
            })
        })
        .collect()
}

async fn agent(client: &Client, config: &Config, backup: &crate::backup::Settings, keys_required: bool) -> AgentFacts {
    let security = &config.security;
    let backups = crate::backup::list(backup)
        .map(|all| all.into_iter().map(|m| BackupFact { id: m.id, created_at: m.created_at, encrypted: m.encryption.is_some() }).collect())
        .map_err(|e| format!("the backup catalogue cannot be read: {}", db::error_chain(&e)));
    let admin_keys = match keys::list(client).await {
        Ok(all) => Ok(all
            .into_iter()
            .filter(|k| k.status == "active" && k.expires_at.is_none() && k.scopes.contains(&crate::security::Scope::Admin))
            .map(|k| format!("{} ({})", k.name, k.id))
            .collect()),
        Err(_) => Err("no API keys are stored (dbagent.api_keys is not readable or not created yet)".to_owned()),
    };
    AgentFacts {
        bound_beyond_loopback: !config::is_loopback(&config.server.bind),
        keys_required,
        allow_unauthenticated: security.allow_unauthenticated,
        allowed_ips: security.allowed_ips.len(),
        audit: security.audit.enabled,
        audit_retention_days: security.audit.retention_days,
        allow_superuser_roles: security.allow_superuser_roles,
        backup_encryption_configured: backup.encryption.is_some(),
        backup_max_age_hours: config.backup.max_age_hours(),
        backups,
        admin_keys_without_expiry: admin_keys,
    }
}
