//! Catalog introspection: the tables of the database, and one table's columns, indexes,
//! constraints and foreign keys.
//!
//! Names from users are resolved by PostgreSQL itself (`to_regclass`, passed as a bind
//! parameter), so schema-qualified and quoted names work and no name can inject SQL.

pub mod catalog;
pub mod dictionary;
pub mod erd;

use serde::Serialize;
use tokio_postgres::Row;

use crate::db::{self, Pools, Target};
use crate::error::{Classify, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no table, view or materialized view named {name:?}")]
    NotFound { name: String },
    #[error("{name:?} is not a valid relation name: {reason}")]
    InvalidName { name: String, reason: String },
    #[error(transparent)]
    Db(#[from] db::Error),
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::InvalidName { .. } => ErrorKind::BadRequest,
            Error::Db(err) => err.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "table_not_found",
            Error::InvalidName { .. } => "invalid_name",
            Error::Db(err) => err.code(),
        }
    }

    fn server(&self) -> Option<&db::PgError> {
        match self {
            Error::Db(err) => err.server(),
            _ => None,
        }
    }
}

/// One row of `GET /schema`.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TableSummary {
    /// The relation's oid (internal: catalog lookups by oid).
    #[serde(skip)]
    pub oid: u32,
    pub schema: String,
    pub name: String,
    /// `table`, `partitioned table`, `view`, `materialized view`, `foreign table`.
    pub kind: String,
    /// The planner's estimate (`reltuples`); null until the table was first analyzed.
    pub row_estimate: Option<i64>,
    /// Table, indexes and TOAST (partitions included for partitioned tables).
    pub total_bytes: i64,
    pub table_bytes: i64,
    pub index_bytes: i64,
    pub is_partition: bool,
    pub comment: Option<String>,
}

/// `GET /schema/{table}`: seed 000's shape (`table`, `columns`) plus the rest.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TableDetail {
    pub table: String,
    pub schema: String,
    pub kind: String,
    pub row_estimate: Option<i64>,
    pub total_bytes: i64,
    pub columns: Vec<ColumnDetail>,
    pub indexes: Vec<IndexDetail>,
    pub constraints: Vec<ConstraintDetail>,
    pub foreign_keys: Vec<ForeignKey>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ColumnDetail {
    pub column_name: String,
    /// information_schema's name (`integer`, `character varying`, `USER-DEFINED`).
    pub data_type: String,
    /// `YES` / `NO`, as information_schema says it.
    pub is_nullable: String,
    pub column_default: Option<String>,
    pub ordinal_position: i32,
    /// The full type as PostgreSQL prints it (`character varying(45)`, `mpaa_rating`).
    #[serde(rename = "type")]
    pub formatted_type: String,
    pub character_maximum_length: Option<i32>,
    pub is_identity: bool,
    pub is_generated: bool,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct IndexDetail {
    pub name: String,
    pub definition: String,
    pub columns: Vec<String>,
    pub method: String,
    pub is_unique: bool,
    pub is_primary: bool,
    pub is_valid: bool,
    pub size_bytes: i64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ConstraintDetail {
    pub name: String,
    /// `primary key`, `unique`, `check`, `foreign key`, `exclusion`, `trigger`, `not null`.
    #[serde(rename = "type")]
    pub kind: String,
    pub definition: String,
    pub deferrable: bool,
    pub validated: bool,
    /// The constrained columns in key order (empty for a check on no column in particular).
    pub columns: Vec<String>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub referenced_schema: String,
    pub referenced_table: String,
    pub referenced_columns: Vec<String>,
    pub on_update: String,
    pub on_delete: String,
}

const TABLES_SQL: &str = include_str!("sql/tables.sql");
const RESOLVE_SQL: &str = include_str!("sql/resolve.sql");
const COLUMNS_SQL: &str = include_str!("sql/columns.sql");
const INDEXES_SQL: &str = include_str!("sql/indexes.sql");
const CONSTRAINTS_SQL: &str = include_str!("sql/constraints.sql");
const FOREIGN_KEYS_SQL: &str = include_str!("sql/foreign_keys.sql");

/// Every user table, view and materialized view with sizes and row estimates.
pub async fn tables(pools: &Pools) -> Result<Vec<TableSummary>, Error> {
    let rows = catalog_query(pools, TABLES_SQL, &[]).await?;
    Ok(rows.iter().map(summary).collect())
}

/// One relation, by a name as a user writes it: `users`, `public.users`, `"Order Items"`.
pub async fn describe(pools: &Pools, name: &str) -> Result<TableDetail, Error> {
    let table = resolve(pools, name).await?;
    let oid = table.oid;
    let mut details = details(pools, &[oid]).await?;
    let parts = details.remove(&oid).unwrap_or_default();
    Ok(TableDetail {
        table: table.name,
        schema: table.schema,
        kind: table.kind,
        row_estimate: table.row_estimate,
        total_bytes: table.total_bytes,
        columns: parts.columns,
        indexes: parts.indexes,
        constraints: parts.constraints,
        foreign_keys: parts.foreign_keys,
    })
}

/// A relation by a name as a user writes it, or `NotFound` / `InvalidName`.
pub async fn resolve(pools: &Pools, name: &str) -> Result<TableSummary, Error> {
    let found = catalog_query(pools, RESOLVE_SQL, &[&name]).await.map_err(|err| match err.sqlstate() {
        // invalid_name, invalid_text_representation, cross-database / syntax errors of the name
        Some("42602" | "22P02" | "0A000" | "42601" | "3F000" | "42P01") => Error::InvalidName {
            name: name.to_string(),
            reason: match &err {
                db::Error::Server(pg) => pg.message.clone(),
                other => other.to_string(),
            },
        },
        _ => Error::Db(err),
    })?;
    found.first().map(summary).ok_or_else(|| Error::NotFound { name: name.to_string() })
}

/// The columns, indexes, constraints and foreign keys of a relation.
#[derive(Debug, Clone, Default)]
pub struct Parts {
    pub columns: Vec<ColumnDetail>,
    pub indexes: Vec<IndexDetail>,
    pub constraints: Vec<ConstraintDetail>,
    pub foreign_keys: Vec<ForeignKey>,
}

/// The parts of the relations `oids`, four catalog queries whatever their number.
pub(crate) async fn details(pools: &Pools, oids: &[u32]) -> Result<std::collections::HashMap<u32, Parts>, db::Error> {
    let oids = oids.to_vec();
    let by_oid: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&oids];
    let (columns, indexes, constraints, foreign_keys) = tokio::try_join!(
        catalog_query(pools, COLUMNS_SQL, &by_oid),
        catalog_query(pools, INDEXES_SQL, &by_oid),
        catalog_query(pools, CONSTRAINTS_SQL, &by_oid),
        catalog_query(pools, FOREIGN_KEYS_SQL, &by_oid),
    )?;
    let mut parts: std::collections::HashMap<u32, Parts> = oids.iter().map(|&o| (o, Parts::default())).collect();
    let relid = |row: &Row| row.get::<_, u32>("relid");
    for row in &columns {
        parts.entry(relid(row)).or_default().columns.push(column(row));
    }
    for row in &indexes {
        parts.entry(relid(row)).or_default().indexes.push(index(row));
    }
    for row in &constraints {
        parts.entry(relid(row)).or_default().constraints.push(constraint(row));
    }
    for row in &foreign_keys {
        parts.entry(relid(row)).or_default().foreign_keys.push(foreign_key(row));
    }
    Ok(parts)
}

/// Runs one catalog query on a read connection (replicas have the same catalog).
pub(crate) async fn catalog_query(
    pools: &Pools,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>, db::Error> {
    let mut lease = pools.acquire(Target::Read).await?;
    lease.begin_use();
    let stmt = lease.prepare(sql, true).await.map_err(|e| db::Error::from_driver(e, false))?;
    let result = lease.client().query(&stmt, params).await;
    match result {
        Ok(rows) => {
            lease.end_use();
            Ok(rows)
        }
        Err(err) => {
            if err.as_db_error().is_some() {
                lease.end_use();
            }
            Err(db::Error::from_driver(err, false))
        }
    }
}

fn summary(row: &Row) -> TableSummary {
    TableSummary {
        oid: row.get("oid"),
        schema: row.get("schema"),
        name: row.get("name"),
        kind: row.get("kind"),
        row_estimate: row.get("row_estimate"),
        total_bytes: row.get("total_bytes"),
        table_bytes: row.get("table_bytes"),
        index_bytes: row.get("index_bytes"),
        is_partition: row.get("is_partition"),
        comment: row.get("comment"),
    }
}

fn column(row: &Row) -> ColumnDetail {
    ColumnDetail {
        column_name: row.get("column_name"),
        data_type: row.get("data_type"),
        is_nullable: row.get("is_nullable"),
        column_default: row.get("column_default"),
        ordinal_position: row.get("ordinal_position"),
        formatted_type: row.get("type"),
        character_maximum_length: row.get("character_maximum_length"),
        is_identity: row.get("is_identity"),
        is_generated: row.get("is_generated"),
        comment: row.get("comment"),
    }
}

fn index(row: &Row) -> IndexDetail {
    IndexDetail {
        name: row.get("name"),
        definition: row.get("definition"),
        columns: row.get("columns"),
        method: row.get("method"),
        is_unique: row.get("is_unique"),
        is_primary: row.get("is_primary"),
        is_valid: row.get("is_valid"),
        size_bytes: row.get("size_bytes"),
    }
}

fn constraint(row: &Row) -> ConstraintDetail {
    ConstraintDetail {
        name: row.get("name"),
        kind: row.get("kind"),
        definition: row.get("definition"),
        deferrable: row.get("deferrable"),
        validated: row.get("validated"),
        columns: row.get("columns"),
    }
}

fn foreign_key(row: &Row) -> ForeignKey {
    ForeignKey {
        name: row.get("name"),
        columns: row.get("columns"),
        referenced_schema: row.get("referenced_schema"),
        referenced_table: row.get("referenced_table"),
        referenced_columns: row.get("referenced_columns"),
        on_update: row.get("on_update"),
        on_delete: row.get("on_delete"),
    }
}
