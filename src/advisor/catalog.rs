//! What the rules and suggestions need to know about the tables a query touches: size, row
//! estimate, how stale the statistics are, columns, indexes (with use counts) and foreign keys.

use serde::{Deserialize, Serialize};

use crate::cache::watch::quote_name;
use crate::db::{self, Pools};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub references: String,
}

impl TableStats {
    pub fn qualified(&self) -> String {
        format!("{}.{}", crate::cache::watch::quote_ident(&self.schema), crate::cache::watch::quote_ident(&self.name))
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

const SQL: &str = "SELECT json_build_object( \
  'oid', c.oid::int8, 'schema', n.nspname, 'name', c.relname, 'rows', greatest(c.reltuples, 0), \
  'bytes', pg_total_relation_size(c.oid), 'mod_since_analyze', s.n_mod_since_analyze, \
  'last_analyze', greatest(s.last_analyze, s.last_autoanalyze)::text, \
  'columns', (SELECT coalesce(json_agg(attname ORDER BY attnum), '[]') FROM pg_attribute \
              WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped), \
  'indexes', (SELECT coalesce(json_agg(json_build_object( \
      'name', ic.relname, \
      'columns', (SELECT json_agg(pg_get_indexdef(i.indexrelid, k, true) ORDER BY k) FROM generate_series(1, i.indnkeyatts) k), \
      'unique', i.indisunique, 'primary', i.indisprimary, 'valid', i.indisvalid, \
      'constraint', EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid AND co.conrelid = c.oid), \
      'predicate', pg_get_expr(i.indpred, i.indrelid), 'definition', pg_get_indexdef(i.indexrelid), \
      'bytes', pg_relation_size(i.indexrelid), 'scans', coalesce(us.idx_scan, 0)) ORDER BY ic.relname), '[]') \
    FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid \
    LEFT JOIN pg_stat_all_indexes us ON us.indexrelid = i.indexrelid WHERE i.indrelid = c.oid), \
  'foreign_keys', (SELECT coalesce(json_agg(json_build_object('name', co.conname, \
      'columns', (SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(co.conkey) WITH ORDINALITY k(attnum, ord) \
                  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum), \
      'references', co.confrelid::regclass::text)), '[]') \
    FROM pg_constraint co WHERE co.conrelid = c.oid AND co.contype = 'f') \
  )::text \
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid WHERE c.oid = to_regclass(";

/// Statistics of `table` (as written in SQL), or `None` when there is no such table.
pub async fn table(pools: &Pools, table: &str) -> Result<Option<TableStats>, db::Error> {
    let sql = format!("{SQL}{})", quote_name(table));
    let rows = pools.primary().rows(&sql).await?;
    let Some(text) = rows.into_iter().next().and_then(|r| r.into_iter().next().flatten()) else { return Ok(None) };
    serde_json::from_str(&text).map(Some).map_err(|e| db::Error::Unavailable { reason: format!("unexpected catalog answer: {e}") })
}
