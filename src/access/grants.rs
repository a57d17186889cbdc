//! `POST /grants` and `DELETE /grants`: GRANT or REVOKE privileges on a schema, a table, a
//! sequence, or every table or sequence of a schema (with default privileges for those made
//! later), checked against what the object kind takes and run in one transaction. The object
//! is found by its schema and name as bind parameters (no parsing of dotted names), and named
//! in the statement through `db::sql`.

use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, GenericClient};

use super::list::{self, DefaultPrivileges, Privileges};
use super::{Error, roles};
use crate::db::sql;

/// A privilege the API grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Privilege {
    Select,
    Insert,
    Update,
    Delete,
    Usage,
    Create,
}

impl Privilege {
    fn keyword(self) -> &'static str {
        match self {
            Privilege::Select => "SELECT",
            Privilege::Insert => "INSERT",
            Privilege::Update => "UPDATE",
            Privilege::Delete => "DELETE",
            Privilege::Usage => "USAGE",
            Privilege::Create => "CREATE",
        }
    }
}

/// What a grant is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum On {
    Table,
    Schema,
    Sequence,
    AllTablesInSchema,
    AllSequencesInSchema,
}

impl On {
    /// The privileges this kind of object takes (PostgreSQL's own table of them, for the ones
    /// this API offers).
    pub fn allows(self) -> &'static [Privilege] {
        use Privilege::*;
        match self {
            On::Table | On::AllTablesInSchema => &[Select, Insert, Update, Delete],
            On::Schema => &[Usage, Create],
            On::Sequence | On::AllSequencesInSchema => &[Usage, Select, Update],
        }
    }

    fn noun(self) -> &'static str {
        match self {
            On::Table => "table",
            On::Sequence => "sequence",
            On::Schema | On::AllTablesInSchema | On::AllSequencesInSchema => "schema",
        }
    }
}

/// The body of `POST /grants` and `DELETE /grants`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRequest {
    /// The grantee; `PUBLIC` means everyone.
    pub role: String,
    pub privileges: Vec<Privilege>,
    pub on: On,
    /// The table or sequence; for `schema`, `all_tables_in_schema` and
    /// `all_sequences_in_schema`, the schema.
    pub name: String,
    /// The schema of a table or sequence. Default `public`.
    pub schema: Option<String>,
    /// With `all_tables_in_schema` / `all_sequences_in_schema`: also for tables or sequences
    /// dbagent's login creates there later (ALTER DEFAULT PRIVILEGES).
    #[serde(default)]
    pub default_privileges: bool,
    /// Granting: the grantee may grant them on. Revoking: only that right is taken back.
    #[serde(default)]
    pub with_grant_option: bool,
}

/// What the grantee now holds on the object (after the change).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Granted {
    pub role: String,
    /// The statements run, in order (one transaction).
    pub statements: Vec<String>,
    pub privileges: Vec<Privileges>,
    pub default_privileges: Vec<DefaultPrivileges>,
}

/// GRANT (`revoke` false) or REVOKE.
pub async fn apply(client: &mut Client, request: &GrantRequest, revoke: bool) -> Result<Granted, Error> {
    if request.privileges.is_empty() {
        return Err(Error::Invalid("`privileges`: name at least one".into()));
    }
    if let Some(wrong) = request.privileges.iter().find(|p| !request.on.allows().contains(p)) {
        let allowed: Vec<&str> = request.on.allows().iter().map(|p| p.keyword()).collect();
        return Err(Error::Invalid(format!("`privileges`: {} does not apply to {:?}; it takes {}", wrong.keyword(), request.on, allowed.join(", "))));
    }
    if request.default_privileges && !matches!(request.on, On::AllTablesInSchema | On::AllSequencesInSchema) {
        return Err(Error::Invalid("`default_privileges`: only with all_tables_in_schema or all_sequences_in_schema".into()));
    }
    let mut keywords: Vec<&str> = request.privileges.iter().map(|p| p.keyword()).collect();
    keywords.sort_unstable();
    keywords.dedup();
    let keywords = keywords.join(", ");
    let public = request.role.eq_ignore_ascii_case("public");
    let grantee = if public { "PUBLIC".to_owned() } else { sql::ident(&request.role) };
    let tx = client.transaction().await.map_err(Error::driver)?;
    if !public && !roles::exists(&tx, &request.role).await? {
        return Err(Error::RoleNotFound { name: request.role.clone() });
    }
    let (schema, object) = locate(&tx, request).await?;
    let target = match request.on {
        On::Table => format!("TABLE {object}"),
        On::Sequence => format!("SEQUENCE {object}"),
        On::Schema => format!("SCHEMA {object}"),
        On::AllTablesInSchema => format!("ALL TABLES IN SCHEMA {object}"),
        On::AllSequencesInSchema => format!("ALL SEQUENCES IN SCHEMA {object}"),
    };
    let option = request.with_grant_option;
    let mut statements = vec![if revoke {
        format!("REVOKE {}{keywords} ON {target} FROM {grantee}", if option { "GRANT OPTION FOR " } else { "" })
    } else {
        format!("GRANT {keywords} ON {target} TO {grantee}{}", if option { " WITH GRANT OPTION" } else { "" })
    }];
    if request.default_privileges {
        let objects = if request.on == On::AllTablesInSchema { "TABLES" } else { "SEQUENCES" };
        statements.push(if revoke {
            format!("ALTER DEFAULT PRIVILEGES IN SCHEMA {object} REVOKE {}{keywords} ON {objects} FROM {grantee}", if option { "GRANT OPTION FOR " } else { "" })
        } else {
            format!("ALTER DEFAULT PRIVILEGES IN SCHEMA {object} GRANT {keywords} ON {objects} TO {grantee}{}", if option { " WITH GRANT OPTION" } else { "" })
        });
    }
    for statement in &statements {
        tx.batch_execute(statement).await.map_err(Error::driver)?;
    }
    let role = if public { "PUBLIC" } else { request.role.as_str() };
    let name = matches!(request.on, On::Table | On::Sequence).then_some(request.name.as_str());
    let privileges = list::privileges(&tx, Some(role), Some(&schema), name).await?.into_iter().map(|(_, p)| p).collect();
    let default_privileges = list::default_privileges(&tx, Some(role), Some(&schema)).await?.into_iter().map(|(_, p)| p).collect();
    tx.commit().await.map_err(Error::driver)?;
    Ok(Granted { role: role.to_owned(), statements, privileges, default_privileges })
}

/// The object's schema, and its quoted name for the statement; 404 naming it when missing.
async fn locate(client: &impl GenericClient, request: &GrantRequest) -> Result<(String, String), Error> {
    match request.on {
        On::Schema | On::AllTablesInSchema | On::AllSequencesInSchema => {
            if request.schema.is_some() {
                return Err(Error::Invalid(format!("`schema`: with {:?}, `name` is the schema", request.on)));
            }
            let found = client.query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&request.name]).await.map_err(Error::driver)?;
            found.ok_or_else(|| Error::ObjectNotFound { kind: request.on.noun(), name: sql::ident(&request.name) })?;
            Ok((request.name.clone(), sql::ident(&request.name)))
        }
        On::Table | On::Sequence => {
            let schema = request.schema.clone().unwrap_or_else(|| "public".into());
            let kinds: &[&str] = if request.on == On::Table { &["r", "p", "v", "m", "f"] } else { &["S"] };
            let kinds: Vec<String> = kinds.iter().map(|k| k.to_string()).collect();
            let found = client
                .query_opt(
                    "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind::text = ANY($3)",
                    &[&schema, &request.name, &kinds],
                )
                .await
                .map_err(Error::driver)?;
            let qualified = sql::qualified(&schema, &request.name);
            found.ok_or_else(|| Error::ObjectNotFound { kind: request.on.noun(), name: qualified.clone() })?;
            Ok((schema, qualified))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_takes_only_its_own_privileges() {
        use Privilege::*;
        assert!(On::Table.allows().contains(&Delete) && !On::Table.allows().contains(&Usage));
        assert!(On::Schema.allows().contains(&Usage) && !On::Schema.allows().contains(&Select));
        assert!(On::Sequence.allows().contains(&Usage) && !On::Sequence.allows().contains(&Insert));
        assert_eq!(On::AllTablesInSchema.allows(), On::Table.allows());
        assert_eq!(On::AllSequencesInSchema.allows(), On::Sequence.allows());
    }
}
