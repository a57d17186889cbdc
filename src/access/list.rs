//! `GET /roles`: roles, their attributes and memberships, and what each may do on the schemas,
//! tables and sequences of this database (explicit grants and owners' implicit ones, from
//! `aclexplode`), with the default privileges that will apply to objects made later.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;

use super::Error;
use crate::db;

/// `GET /roles?role=&include_system=`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleFilter {
    /// One role by its exact name.
    pub role: Option<String>,
    /// PostgreSQL's predefined `pg_*` roles too. Default false.
    #[serde(default)]
    pub include_system: bool,
}

/// One role as `GET /roles` shows it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RoleInfo {
    pub name: String,
    pub superuser: bool,
    pub login: bool,
    pub inherit: bool,
    pub createdb: bool,
    pub createrole: bool,
    pub replication: bool,
    pub bypassrls: bool,
    /// `None`: no limit.
    pub connection_limit: Option<i32>,
    /// When its password stops working; `None`: never.
    pub valid_until: Option<DateTime<Utc>>,
    /// Whether it has a password (never the hash); `None` when dbagent's login may not read
    /// `pg_authid` (only superusers may).
    pub password_set: Option<bool>,
    /// The roles it is a member of.
    pub member_of: Vec<String>,
    /// Its privileges on this database's schemas, tables and sequences.
    pub privileges: Vec<Privileges>,
    /// Default privileges granted to it on objects others create later.
    pub default_privileges: Vec<DefaultPrivileges>,
}

/// What one grantee may do on one object.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Privileges {
    /// `schema`, `table` (views and the like included) or `sequence`.
    pub kind: String,
    pub schema: String,
    /// The table or sequence; `None` for a schema.
    pub name: Option<String>,
    /// `SELECT`, `INSERT`, `USAGE`, `CREATE` ...
    pub privileges: Vec<String>,
    /// The ones it may grant on.
    pub grantable: Vec<String>,
}

/// An `ALTER DEFAULT PRIVILEGES` entry for one grantee.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DefaultPrivileges {
    /// Whose new objects it applies to.
    pub creator: String,
    /// `None`: in every schema.
    pub schema: Option<String>,
    /// `tables`, `sequences`, `functions`, `types` or `schemas`.
    pub objects: String,
    pub privileges: Vec<String>,
}

/// The answer of `GET /roles`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct RoleList {
    pub roles: Vec<RoleInfo>,
    /// What everyone (`PUBLIC`) may do on this database's schemas, tables and sequences.
    pub public: Vec<Privileges>,
    /// Privileges are those of the database dbagent is connected to; roles are the server's.
    pub database: String,
}

/// Roles matching `filter`, with their privileges in this database.
pub async fn roles(client: &Client, filter: &RoleFilter) -> Result<RoleList, Error> {
    let rows = client.query(include_str!("sql/roles.sql"), &[&filter.include_system, &filter.role]).await.map_err(Error::driver)?;
    let passwords = password_flags(client).await?;
    let grantee = filter.role.as_deref();
    let all_privileges = privileges(client, grantee, None, None).await?;
    let all_defaults = default_privileges(client, grantee, None).await?;
    let mut roles = Vec::with_capacity(rows.len());
    for row in &rows {
        let name: String = db::get(row, "name")?;
        let limit: i32 = db::get(row, "connection_limit")?;
        roles.push(RoleInfo {
            superuser: db::get(row, "superuser")?,
            login: db::get(row, "login")?,
            inherit: db::get(row, "inherit")?,
            createdb: db::get(row, "createdb")?,
            createrole: db::get(row, "createrole")?,
            replication: db::get(row, "replication")?,
            bypassrls: db::get(row, "bypassrls")?,
            connection_limit: (limit >= 0).then_some(limit),
            valid_until: db::get(row, "valid_until")?,
            password_set: passwords.as_ref().map(|p| p.contains(&name)),
            member_of: db::get(row, "member_of")?,
            privileges: all_privileges.iter().filter(|(g, _)| *g == name).map(|(_, p)| p.clone()).collect(),
            default_privileges: all_defaults.iter().filter(|(g, _)| *g == name).map(|(_, p)| p.clone()).collect(),
            name,
        });
    }
    let public = if grantee.is_none() { privileges(client, Some("PUBLIC"), None, None).await?.into_iter().map(|(_, p)| p).collect() } else { Vec::new() };
    let database: String = client.query_one("SELECT current_database()::text AS db", &[]).await.map_err(Error::driver).and_then(|r| Ok(db::get(&r, "db")?))?;
    Ok(RoleList { roles, public, database })
}

/// The roles that have a password, when dbagent's login may read `pg_authid`.
async fn password_flags(client: &Client) -> Result<Option<Vec<String>>, Error> {
    let superuser: bool = client.query_one("SELECT rolsuper FROM pg_roles WHERE rolname = current_user", &[]).await.map_err(Error::driver)?.get(0);
    if !superuser {
        return Ok(None);
    }
    let rows = client.query(include_str!("sql/passwords.sql"), &[]).await.map_err(Error::driver)?;
    let mut with = Vec::new();
    for row in &rows {
        if db::get::<bool>(row, "password_set")? {
            with.push(db::get(row, "name")?);
        }
    }
    Ok(Some(with))
}

/// (grantee, privileges) of this database's objects, filtered.
pub async fn privileges(client: &impl tokio_postgres::GenericClient, grantee: Option<&str>, schema: Option<&str>, name: Option<&str>) -> Result<Vec<(String, Privileges)>, Error> {
    let rows = client.query(include_str!("sql/privileges.sql"), &[&grantee, &schema, &name]).await.map_err(Error::driver)?;
    rows.iter()
        .map(|row| {
            let grantable: Option<Vec<String>> = db::get(row, "grantable")?;
            Ok((
                db::get(row, "grantee")?,
                Privileges {
                    kind: db::get(row, "kind")?,
                    schema: db::get(row, "schema")?,
                    name: db::get(row, "name")?,
                    privileges: db::get(row, "privileges")?,
                    grantable: grantable.unwrap_or_default(),
                },
            ))
        })
        .collect()
}

/// (grantee, default privileges), filtered.
pub async fn default_privileges(client: &impl tokio_postgres::GenericClient, grantee: Option<&str>, schema: Option<&str>) -> Result<Vec<(String, DefaultPrivileges)>, Error> {
    let rows = client.query(include_str!("sql/default_privileges.sql"), &[&grantee, &schema]).await.map_err(Error::driver)?;
    rows.iter()
        .map(|row| {
            Ok((
                db::get(row, "grantee")?,
                DefaultPrivileges {
                    creator: db::get(row, "creator")?,
                    schema: db::get(row, "schema")?,
                    objects: db::get(row, "objects")?,
                    privileges: db::get(row, "privileges")?,
                },
            ))
        })
        .collect()
}
