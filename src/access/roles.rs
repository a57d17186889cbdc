//! Creating, altering and dropping roles. Each is one transaction on the access session; names
//! are quoted by `db::sql`, passwords sent only as SCRAM verifiers ([`Password`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use tokio_postgres::{Client, GenericClient};

use super::password::Password;
use super::{Error, list, new_role_name};
use crate::config;
use crate::db::{self, sql};

/// When a role's password stops working: a time, or `infinity` (never).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidUntil {
    At(DateTime<Utc>),
    Never,
}

impl ValidUntil {
    fn literal(self) -> String {
        match self {
            ValidUntil::At(at) => sql::literal(&at.to_rfc3339()),
            ValidUntil::Never => sql::literal("infinity"),
        }
    }
}

impl<'de> Deserialize<'de> for ValidUntil {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text == "infinity" {
            return Ok(ValidUntil::Never);
        }
        DateTime::parse_from_rfc3339(&text)
            .map(|t| ValidUntil::At(t.with_timezone(&Utc)))
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is neither an RFC 3339 time (2027-01-31T00:00:00Z) nor `infinity`")))
    }
}

impl schemars::JsonSchema for ValidUntil {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ValidUntil".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "An RFC 3339 time after which the password no longer works, or `infinity`."
        })
    }
}

/// `POST /roles`. No `superuser`, `replication` or `bypassrls`: dbagent never grants those.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRole {
    /// Any text PostgreSQL keeps whole (1 to 63 bytes), not blank, no control characters, not
    /// starting with `pg_`.
    pub name: String,
    /// At least 8 characters; sent as a SCRAM-SHA-256 verifier only.
    pub password: Option<Password>,
    /// May log in. Default true.
    #[serde(default = "yes")]
    pub login: bool,
    pub valid_until: Option<ValidUntil>,
    /// Sessions at once; left out: no limit.
    pub connection_limit: Option<u32>,
    #[serde(default)]
    pub createdb: bool,
    #[serde(default)]
    pub createrole: bool,
    /// Roles it becomes a member of (each must exist).
    #[serde(default)]
    pub in_roles: Vec<String>,
}

fn yes() -> bool {
    true
}

/// `PATCH /roles/{name}`: only what is given changes.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleChange {
    pub password: Option<Password>,
    pub login: Option<bool>,
    pub valid_until: Option<ValidUntil>,
    /// `-1` or a number of sessions; `-1` removes the limit.
    pub connection_limit: Option<i32>,
    pub createdb: Option<bool>,
    pub createrole: Option<bool>,
    /// A new name (ALTER ROLE ... RENAME TO).
    pub rename_to: Option<String>,
}

/// `DELETE /roles/{name}?reassign_to=&drop_owned=`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropOptions {
    /// Give what it owns in this database to this role (REASSIGN OWNED), drop its privileges
    /// (DROP OWNED), then the role.
    pub reassign_to: Option<String>,
    /// Drop what it owns in this database and its privileges (DROP OWNED), then the role.
    #[serde(default)]
    pub drop_owned: bool,
}

/// What a drop did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Dropped {
    pub name: String,
    /// The statements run, in order (one transaction).
    pub statements: Vec<String>,
}

/// Creates a role (and its memberships) in one transaction; answers it as `GET /roles` would.
pub async fn create(client: &mut Client, new: &NewRole) -> Result<list::RoleInfo, Error> {
    let name = new_role_name(&new.name)?;
    if new.in_roles.len() > 100 {
        return Err(Error::Invalid("`in_roles`: at most 100 roles".into()));
    }
    let tx = client.transaction().await.map_err(Error::driver)?;
    if exists(&tx, name).await? {
        return Err(Error::RoleExists { name: name.to_owned() });
    }
    let mut members = Vec::new();
    for role in &new.in_roles {
        if !exists(&tx, role).await? {
            return Err(Error::RoleNotFound { name: role.clone() });
        }
        if !members.contains(role) {
            members.push(role.clone());
        }
    }
    let mut statement = format!("CREATE ROLE {} WITH NOSUPERUSER NOREPLICATION NOBYPASSRLS", sql::ident(name));
    statement.push_str(if new.login { " LOGIN" } else { " NOLOGIN" });
    statement.push_str(if new.createdb { " CREATEDB" } else { " NOCREATEDB" });
    statement.push_str(if new.createrole { " CREATEROLE" } else { " NOCREATEROLE" });
    if let Some(limit) = new.connection_limit {
        let limit = i32::try_from(limit).map_err(|_| Error::Invalid("`connection_limit`: too large".into()))?;
        statement.push_str(&format!(" CONNECTION LIMIT {limit}"));
    }
    if let Some(password) = &new.password {
        statement.push_str(&format!(" PASSWORD {}", sql::literal(&password.verifier())));
    }
    if let Some(until) = new.valid_until {
        statement.push_str(&format!(" VALID UNTIL {}", until.literal()));
    }
    if !members.is_empty() {
        statement.push_str(" IN ROLE ");
        statement.push_str(&members.iter().map(|m| sql::ident(m)).collect::<Vec<_>>().join(", "));
    }
    tx.batch_execute(&statement).await.map_err(Error::driver)?;
    tx.commit().await.map_err(Error::driver)?;
    one(client, name).await
}

/// Changes what `change` gives, in one transaction.
pub async fn alter(client: &mut Client, settings: &config::Security, name: &str, change: &RoleChange) -> Result<list::RoleInfo, Error> {
    let tx = client.transaction().await.map_err(Error::driver)?;
    guard(&tx, settings, name).await?;
    let role = sql::ident(name);
    let mut options = Vec::new();
    if let Some(login) = change.login {
        options.push(if login { "LOGIN" } else { "NOLOGIN" }.to_owned());
    }
    if let Some(createdb) = change.createdb {
        options.push(if createdb { "CREATEDB" } else { "NOCREATEDB" }.to_owned());
    }
    if let Some(createrole) = change.createrole {
        options.push(if createrole { "CREATEROLE" } else { "NOCREATEROLE" }.to_owned());
    }
    if let Some(limit) = change.connection_limit {
        if limit < -1 {
            return Err(Error::Invalid("`connection_limit`: -1 (no limit) or a number of sessions".into()));
        }
        options.push(format!("CONNECTION LIMIT {limit}"));
    }
    if let Some(password) = &change.password {
        options.push(format!("PASSWORD {}", sql::literal(&password.verifier())));
    }
    if let Some(until) = change.valid_until {
        options.push(format!("VALID UNTIL {}", until.literal()));
    }
    if !options.is_empty() {
        tx.batch_execute(&format!("ALTER ROLE {role} WITH {}", options.join(" "))).await.map_err(Error::driver)?;
    }
    let mut current = name.to_owned();
    if let Some(new_name) = &change.rename_to {
        let new_name = new_role_name(new_name).map_err(|e| Error::Invalid(e.to_string().replace("`name`", "`rename_to`")))?;
        if new_name != name {
            if exists(&tx, new_name).await? {
                return Err(Error::RoleExists { name: new_name.to_owned() });
            }
            tx.batch_execute(&format!("ALTER ROLE {role} RENAME TO {}", sql::ident(new_name))).await.map_err(Error::driver)?;
            current = new_name.to_owned();
        }
    }
    tx.commit().await.map_err(Error::driver)?;
    one(client, &current).await
}

/// Drops a role; refused while it owns objects or holds privileges here (listed) unless
/// `reassign_to` or `drop_owned` says what to do with them. Objects in other databases are
/// only counted: this agent cannot see them, and PostgreSQL refuses the drop while they exist.
pub async fn drop(client: &mut Client, settings: &config::Security, name: &str, options: &DropOptions) -> Result<Dropped, Error> {
    let tx = client.transaction().await.map_err(Error::driver)?;
    guard(&tx, settings, name).await?;
    let role = sql::ident(name);
    let mut statements = Vec::new();
    match (&options.reassign_to, options.drop_owned) {
        (Some(_), true) => return Err(Error::Invalid("`reassign_to` and `drop_owned`: give one or the other".into())),
        (Some(heir), false) => {
            if !exists(&tx, heir).await? {
                return Err(Error::RoleNotFound { name: heir.clone() });
            }
            if heir == name {
                return Err(Error::Invalid("`reassign_to`: a role cannot inherit from itself".into()));
            }
            statements.push(format!("REASSIGN OWNED BY {role} TO {}", sql::ident(heir)));
            statements.push(format!("DROP OWNED BY {role}"));
        }
        (None, true) => statements.push(format!("DROP OWNED BY {role}")),
        (None, false) => {
            let (objects, elsewhere) = dependents(&tx, name).await?;
            if !objects.is_empty() || elsewhere.is_some() {
                return Err(Error::InUse { name: name.to_owned(), objects, other_databases: elsewhere });
            }
        }
    }
    statements.push(format!("DROP ROLE {role}"));
    for statement in &statements {
        tx.batch_execute(statement).await.map_err(|err| in_use(name, err))?;
    }
    tx.commit().await.map_err(Error::driver)?;
    Ok(Dropped { name: name.to_owned(), statements })
}

/// PostgreSQL's own refusal (2BP01: objects in other databases) as a conflict.
fn in_use(name: &str, err: tokio_postgres::Error) -> Error {
    match err.as_db_error() {
        Some(db) if db.code().code() == "2BP01" => Error::InUse {
            name: name.to_owned(),
            objects: db.detail().map(|d| d.lines().map(str::to_owned).collect()).unwrap_or_default(),
            other_databases: None,
        },
        _ => Error::driver(err),
    }
}

/// What `name` owns or holds privileges on here ("table public.t (owner)"), and the other
/// databases where it does too.
async fn dependents(client: &impl GenericClient, name: &str) -> Result<(Vec<String>, Option<String>), Error> {
    let rows = client.query(include_str!("sql/dependents.sql"), &[&name]).await.map_err(Error::driver)?;
    let (mut here, mut elsewhere) = (Vec::new(), Vec::<String>::new());
    for row in &rows {
        if db::get::<bool>(row, "here")? {
            here.push(format!("{} ({})", db::get::<String>(row, "object")?, db::get::<String>(row, "dependency")?));
        } else {
            let database: String = db::get(row, "database")?;
            if !elsewhere.contains(&database) {
                elsewhere.push(database);
            }
        }
    }
    Ok((here, (!elsewhere.is_empty()).then(|| elsewhere.join(", "))))
}

/// Refuses a role that does not exist, or one dbagent depends on.
async fn guard(client: &impl GenericClient, settings: &config::Security, name: &str) -> Result<(), Error> {
    let row = client
        .query_opt("SELECT r.oid = 10 AS bootstrap, r.rolname = current_user OR r.rolname = session_user AS ours FROM pg_roles r WHERE r.rolname = $1", &[&name])
        .await
        .map_err(Error::driver)?
        .ok_or_else(|| Error::RoleNotFound { name: name.to_owned() })?;
    let reason = if db::get::<bool>(&row, "bootstrap")? {
        Some("the bootstrap superuser")
    } else if db::get::<bool>(&row, "ours")? {
        Some("the login dbagent itself runs as")
    } else if name == settings.read_role.user || name == settings.write_role.user {
        Some("a role dbagent's read or write keys run as (security.read_role / write_role)")
    } else if name.starts_with("pg_") {
        Some("one of PostgreSQL's predefined roles")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::Protected { name: name.to_owned(), reason }),
        None => Ok(()),
    }
}

pub(super) async fn exists(client: &impl GenericClient, name: &str) -> Result<bool, Error> {
    Ok(client.query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&name]).await.map_err(Error::driver)?.is_some())
}

/// One role as `GET /roles?role=` shows it.
async fn one(client: &Client, name: &str) -> Result<list::RoleInfo, Error> {
    let filter = list::RoleFilter { role: Some(name.to_owned()), include_system: true };
    list::roles(client, &filter).await?.roles.into_iter().next().ok_or_else(|| Error::RoleNotFound { name: name.to_owned() })
}
