//! What the rules and suggestions need to know about the tables a query touches: size, row
//! estimate, how stale the statistics are, columns, indexes (with use counts) and foreign keys.

use serde::{Deserialize, Serialize};

use crate::db::{self, Pools, sql};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TableStats {
    pub oid: i64,
    pub schema: String,
    pub name: String,
    /// `pg_class.reltuples` (the planner's row estimate).
    pub rows: f64,
    pub bytes: i64,
    /// Rows changed since the last ANALYZE.
    pub mod_since_analyze: Option<i64>,
    pub last_analyze: Option<String>,
    pub columns: Vec<String>,
    pub indexes: Vec<IndexInfo>,
    pub foreign_keys: Vec<ForeignKey>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IndexInfo {
    pub name: String,
    /// Key columns as `pg_get_indexdef` prints them (an expression for expression indexes).
    pub columns: Vec<String>,
    pub unique: bool,
    pub primary: bool,
    pub valid: bool,
    /// Backs a constraint (primary key, unique, exclusion): never proposed for dropping.
    pub constraint: bool,
    pub predicate: Option<String>,
    pub definition: String,
    pub bytes: i64,
    /// `idx_scan` since statistics were last reset.
    pub scans: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub references: String,
}

impl TableStats {
    pub fn qualified(&self) -> String {
        sql::qualified(&self.schema, &self.name)
    }

    /// An index whose leading key columns are `columns` (in order), if any.
    pub fn index_leading_with(&self, columns: &[&str]) -> Option<&IndexInfo> {
        self.indexes.iter().find(|i| {
            i.valid && i.predicate.is_none() && i.columns.len() >= columns.len() && i.columns.iter().zip(columns).all(|(a, b)| unquote(a) == *b)
        })
    }

    /// Whether some valid index has `column` among its key columns (anywhere).
    pub fn indexed(&self, column: &str) -> bool {
        self.indexes.iter().any(|i| i.valid && i.columns.first().is_some_and(|c| unquote(c) == column))
    }
}

/// `"Order"` → `Order`; other text unchanged.
pub fn unquote(name: &str) -> &str {
    name.strip_prefix('"').and_then(|n| n.strip_suffix('"')).unwrap_or(name)
}

const TABLE_SQL: &str = include_str!("sql/table.sql");

/// Statistics of `table` (as written in SQL), or `None` when there is no such table.
pub async fn table(pools: &Pools, table: &str) -> Result<Option<TableStats>, db::Error> {
    let rows = pools.primary().query(TABLE_SQL, &[&sql::regclass(table)]).await?;
    let Some(row) = rows.first() else { return Ok(None) };
    let text: String = db::get(row, "stats")?;
    serde_json::from_str(&text).map(Some).map_err(|e| db::Error::UnexpectedAnswer { reason: format!("table statistics: {e}") })
}
