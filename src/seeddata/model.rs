//! What the generator knows of a table, read from the catalog inside the generating
//! transaction: columns with their base types, unique column sets, CHECK rules and foreign
//! keys.

use std::collections::BTreeMap;

use tokio_postgres::GenericClient;

use super::checks::{self, Rules};
use super::Error;

const TABLE_SQL: &str = include_str!("sql/table.sql");
const BY_OID_SQL: &str = include_str!("sql/by_oid.sql");
const COLUMNS_SQL: &str = include_str!("sql/columns.sql");
const UNIQUES_SQL: &str = include_str!("sql/uniques.sql");
const CHECKS_SQL: &str = include_str!("sql/checks.sql");
const FOREIGN_KEYS_SQL: &str = include_str!("sql/foreign_keys.sql");
const REFERENCED_BY_SQL: &str = include_str!("sql/referenced_by.sql");

/// A table as named in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub oid: u32,
    pub schema: String,
    pub name: String,
}

impl TableName {
    pub fn display(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The quoted name for statements.
    pub fn sql(&self) -> String {
        crate::db::sql::qualified(&self.schema, &self.name)
    }
}

/// How the server fills a column the generator leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filled {
    /// Nobody: the generator must give a value (or NULL).
    No,
    /// A sequence (`nextval(...)`, identity): the generator never gives one.
    Sequence,
    /// `GENERATED ALWAYS AS (...) STORED` or `GENERATED ALWAYS AS IDENTITY`: it cannot be given.
    Always,
    /// Some other default (`now()`, `'active'`).
    Default,
}

#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub not_null: bool,
    pub formatted_type: String,
    /// The element type's name behind domains and arrays (`int4`, `varchar`, `mpaa_rating`).
    pub base_type: String,
    pub typmod: i32,
    pub is_array: bool,
    pub enum_labels: Vec<String>,
    pub filled: Filled,
    /// CHECK rules of the table and of the column's domain.
    pub rules: Rules,
}

#[derive(Debug, Clone)]
pub struct ForeignKey {
    pub name: String,
    pub parent: u32,
    pub columns: Vec<String>,
    pub parent_columns: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub name: TableName,
    pub columns: Vec<Column>,
    pub uniques: Vec<Vec<String>>,
    pub foreign_keys: Vec<ForeignKey>,
    /// Every CHECK constraint: name and definition (for errors naming the one broken).
    pub checks: Vec<(String, String)>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

fn relation(row: &tokio_postgres::Row, asked: &str) -> Result<TableName, Error> {
    let relkind: String = row.get("relkind");
    let name = TableName { oid: row.get("oid"), schema: row.get("schema"), name: row.get("name") };
    if relkind != "r" && relkind != "p" {
        return Err(Error::NotATable { name: asked.to_owned() });
    }
    // dbagent's own tables (keys, audit, history) and the catalogs are never filled with
    // made-up rows: a generated key row would break the key ring.
    if ["dbagent", "pg_catalog", "information_schema"].contains(&name.schema.as_str()) {
        return Err(Error::Invalid(format!("{asked:?} is in the {} schema, which seed data never fills", name.schema)));
    }
    Ok(name)
}

/// The table a user named, or `NotFound` / `InvalidName` / `NotATable`.
pub async fn resolve(client: &impl GenericClient, name: &str) -> Result<TableName, Error> {
    let rows = client.query(TABLE_SQL, &[&name]).await.map_err(|err| match err.code().map(|c| c.code()) {
        Some("42602" | "22P02" | "0A000" | "42601" | "3F000" | "42P01") => Error::Schema(crate::schema::Error::InvalidName {
            name: name.to_owned(),
            reason: err.as_db_error().map_or_else(|| err.to_string(), |db| db.message().to_owned()),
        }),
        _ => Error::from_driver(err),
    })?;
    let row = rows.first().ok_or_else(|| Error::Schema(crate::schema::Error::NotFound { name: name.to_owned() }))?;
    relation(row, name)
}

pub async fn by_oid(client: &impl GenericClient, oid: u32) -> Result<TableName, Error> {
    let rows = client.query(BY_OID_SQL, &[&oid]).await.map_err(Error::from_driver)?;
    let row = rows.first().ok_or_else(|| Error::Schema(crate::schema::Error::NotFound { name: oid.to_string() }))?;
    relation(row, &format!("{}.{}", row.get::<_, String>("schema"), row.get::<_, String>("name")))
}

/// Everything about `table` the generator uses.
pub async fn load(client: &impl GenericClient, table: TableName) -> Result<Table, Error> {
    let oid = table.oid;
    let columns = client.query(COLUMNS_SQL, &[&oid]).await.map_err(Error::from_driver)?;
    let uniques = client.query(UNIQUES_SQL, &[&oid]).await.map_err(Error::from_driver)?;
    let checks = client.query(CHECKS_SQL, &[&oid]).await.map_err(Error::from_driver)?;
    let fks = client.query(FOREIGN_KEYS_SQL, &[&oid]).await.map_err(Error::from_driver)?;
    let checks: Vec<(String, String)> = checks.iter().map(|r| (r.get("name"), r.get("definition"))).collect();
    let mut table_rules: BTreeMap<String, Rules> = BTreeMap::new();
    for (_, definition) in &checks {
        for (col, rules) in checks::read(definition) {
            merge(table_rules.entry(col).or_default(), rules);
        }
    }
    let columns = columns
        .iter()
        .map(|r| {
            let name: String = r.get("name");
            let mut rules = table_rules.remove(&name).unwrap_or_default();
            let domain_checks: Vec<String> = r.get("domain_checks");
            for definition in &domain_checks {
                if let Some(domain) = checks::read(definition).remove("value") {
                    merge(&mut rules, domain);
                }
            }
            let identity: String = r.get("identity");
            let generated: String = r.get("generated");
            let default: Option<String> = r.get("default_expr");
            let filled = if generated == "s" || identity == "a" {
                Filled::Always
            } else if identity == "d" || default.as_deref().is_some_and(|d| d.starts_with("nextval(")) {
                Filled::Sequence
            } else if default.is_some() {
                Filled::Default
            } else {
                Filled::No
            };
            Column {
                name,
                not_null: r.get("not_null"),
                formatted_type: r.get("formatted_type"),
                base_type: r.get("base_type"),
                typmod: r.get("typmod"),
                is_array: r.get("is_array"),
                enum_labels: r.get("enum_labels"),
                filled,
                rules,
            }
        })
        .collect();
    Ok(Table {
        name: table,
        columns,
        uniques: uniques.iter().map(|r| r.get("columns")).collect(),
        foreign_keys: fks
            .iter()
            .map(|r| ForeignKey { name: r.get("name"), parent: r.get("parent"), columns: r.get("columns"), parent_columns: r.get("parent_columns") })
            .collect(),
        checks,
    })
}

/// Tables with a foreign key to `oid` (itself excluded).
pub async fn referenced_by(client: &impl GenericClient, oid: u32) -> Result<Vec<String>, Error> {
    let rows = client.query(REFERENCED_BY_SQL, &[&oid]).await.map_err(Error::from_driver)?;
    Ok(rows.iter().map(|r| r.get("child")).collect())
}

/// `extra`'s rules added to `rules` (the narrower bound wins; a value list replaces none).
fn merge(rules: &mut Rules, extra: Rules) {
    if let Some(min) = extra.min
        && rules.min.is_none_or(|m| min.value > m.value)
    {
        rules.min = Some(min);
    }
    if let Some(max) = extra.max
        && rules.max.is_none_or(|m| max.value < m.value)
    {
        rules.max = Some(max);
    }
    if extra.allowed.is_some() {
        rules.allowed = extra.allowed;
    }
    rules.min_len = rules.min_len.max(extra.min_len);
    rules.max_len = match (rules.max_len, extra.max_len) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
}
