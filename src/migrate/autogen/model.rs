//! The part of a database's catalog that autogenerate compares, as plain data.
//!
//! Every list is sorted by name, so two snapshots of equal schemas are equal (`PartialEq`) and
//! serialize to the same JSON. Expressions and definitions are PostgreSQL's own text
//! (`format_type`, `pg_get_expr`, `pg_get_constraintdef`, `pg_get_indexdef`, `pg_get_viewdef`),
//! produced with an empty `search_path` so every name in them is schema-qualified.

use std::fmt;

use serde::Serialize;

use crate::db::sql::ident_as_needed;

/// A snapshot of the managed schemas of one database.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Catalog {
    /// The requested schemas that exist.
    pub schemas: Vec<String>,
    /// Installed extensions (database-wide; their own objects are never compared).
    pub extensions: Vec<Extension>,
    pub enums: Vec<Enum>,
    pub tables: Vec<Table>,
    pub views: Vec<View>,
    /// Objects autogenerate sees but does not manage (functions, triggers, sequences, ...):
    /// differences in them become notes.
    pub unmanaged: Vec<Unmanaged>,
}

/// A schema-qualified name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Name {
    pub schema: String,
    pub name: String,
}

impl Name {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Name {
        Name {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

/// Quoted as SQL needs it: `public.users`, `"Sales"."Order"`.
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", ident_as_needed(&self.schema), ident_as_needed(&self.name))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extension {
    pub name: String,
    pub schema: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enum {
    pub name: Name,
    /// In sort order.
    pub labels: Vec<String>,
}

/// An ordinary table (not partitioned, not a partition, not inheriting).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    pub name: Name,
    /// In column order.
    pub columns: Vec<Column>,
    /// Primary key, unique, check, exclusion and foreign-key constraints, by name.
    pub constraints: Vec<Constraint>,
    /// Indexes that do not back a constraint, by name.
    pub indexes: Vec<Index>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    /// `format_type` with the typmod: `character varying(40)`, `public.mood`, `integer[]`.
    pub type_sql: String,
    /// A collation other than the type's default, quoted and qualified.
    pub collation: Option<String>,
    pub not_null: bool,
    /// The default expression; `None` for identity and generated columns.
    pub default: Option<String>,
    pub identity: Option<Identity>,
    pub generated: Option<Generation>,
    /// The default is `nextval` of a sequence owned by this column (`serial`, `bigserial`).
    pub serial: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Identity {
    Always,
    ByDefault,
}

/// A generated column's expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Generation {
    pub expression: String,
    /// `STORED` (else `VIRTUAL`, PostgreSQL 18).
    pub stored: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Constraint {
    pub name: String,
    pub kind: ConstraintKind,
    /// `pg_get_constraintdef`: `FOREIGN KEY (user_id) REFERENCES public.users(id) ON DELETE
    /// CASCADE`, `CHECK ((price > 0))`, `UNIQUE (email)`.
    pub definition: String,
    /// For a foreign key: the table it references and the unique index it relies on.
    pub references: Option<Reference>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    PrimaryKey,
    Unique,
    Check,
    Exclusion,
    ForeignKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reference {
    pub table: Name,
    /// The referenced table's unique index (a constraint's index has the constraint's name).
    pub index: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Index {
    pub name: String,
    /// `pg_get_indexdef`: a complete `CREATE INDEX` statement.
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct View {
    pub name: Name,
    /// `pg_get_viewdef`, without the trailing semicolon.
    pub definition: String,
    /// `reloptions`, e.g. `check_option=local`, `security_barrier=true`.
    pub options: Vec<String>,
    /// Output columns as (name, type): `CREATE OR REPLACE VIEW` needs them unchanged.
    pub columns: Vec<(String, String)>,
    /// Tables and views the view reads, in any schema.
    pub depends_on: Vec<Name>,
}

/// An object seen but not managed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Unmanaged {
    /// `function`, `trigger`, `sequence`, `materialized view`, `partitioned table`, ...
    pub kind: String,
    /// Qualified, with arguments for functions and the table for triggers.
    pub name: String,
    /// PostgreSQL's definition when it has one, so a change can be reported.
    pub definition: Option<String>,
}
