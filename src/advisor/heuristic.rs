//! Index suggestions from the catalog alone, for `/indexes suggest` when there is no workload
//! to validate against (no queries given, and `pg_stat_statements` missing or holding none for
//! the table): foreign-key columns that no index starts with, and columns whose statistics say
//! an equality filter would keep few rows of a large table (a time column laid out in insertion
//! order gets a BRIN index instead). Every one is marked `validated_with: "catalog_heuristic"`,
//! `confidence: "unvalidated"`: nobody asked the planner, and nothing says the column is
//! filtered on. The decisions are pure functions of the catalog rows ([`decide`]).

use super::Error;
use super::rules::{LARGE_TABLE_ROWS, SELECTIVE_SHARE};
use super::suggest::IndexSuggestion;
use crate::db::{self, Pools, sql};

const HEURISTIC_SQL: &str = include_str!("sql/heuristic.sql");
/// At most this many suggestions are returned, best first.
const MAX_SUGGESTIONS: usize = 10;
/// Rows past which a time column in insertion order is better served by BRIN (a few pages)
/// than by a B-tree as large as a tenth of the table.
const BRIN_ROWS: f64 = 1_000_000.0;

/// One column as the catalog describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnFacts {
    pub schema: String,
    pub table: String,
    pub column: String,
    /// `character varying(255)`, `timestamp with time zone` ...
    pub type_name: String,
    pub rows: f64,
    pub seq_scan: i64,
    pub idx_scan: i64,
    /// Distinct values (from `pg_stats.n_distinct`), when the column was analyzed.
    pub distinct: Option<f64>,
    pub correlation: Option<f64>,
    /// The foreign key starting with this column that no index starts with, and its target.
    pub foreign_key: Option<(String, String)>,
}

/// Reads the candidate columns of `table` (or of every user table).
pub async fn suggest(pools: &Pools, table: Option<&str>) -> Result<Vec<IndexSuggestion>, Error> {
    let regclass = table.map(sql::regclass);
    let rows = pools.primary().query(HEURISTIC_SQL, &[&regclass]).await?;
    let mut facts = Vec::with_capacity(rows.len());
    for row in &rows {
        let fk_name: Option<String> = db::get(row, "fk_name")?;
        let refers: Option<String> = db::get(row, "refers")?;
        facts.push(ColumnFacts {
            schema: db::get(row, "schema")?,
            table: db::get(row, "table")?,
            column: db::get(row, "column")?,
            type_name: db::get(row, "type")?,
            rows: db::get(row, "rows")?,
            seq_scan: db::get(row, "seq_scan")?,
            idx_scan: db::get(row, "idx_scan")?,
            distinct: db::get(row, "distinct_values")?,
            correlation: db::get(row, "correlation")?,
            foreign_key: fk_name.zip(refers),
        });
    }
    Ok(decide(&facts))
}

/// The suggestions the facts support, best first: foreign keys (always worth an index: joins,
/// and every delete or key update on the referenced table, scan this one without it), then
/// the most selective columns.
pub fn decide(facts: &[ColumnFacts]) -> Vec<IndexSuggestion> {
    let mut scored: Vec<(f64, IndexSuggestion)> = facts.iter().filter_map(judge).collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(MAX_SUGGESTIONS).map(|(_, s)| s).collect()
}

fn judge(f: &ColumnFacts) -> Option<(f64, IndexSuggestion)> {
    let scans = if f.seq_scan > 0 {
        format!("; {} sequential scans of {} so far, {} index scans", f.seq_scan, f.table, f.idx_scan)
    } else {
        String::new()
    };
    if let Some((name, refers)) = &f.foreign_key {
        let reason = format!(
            "foreign key column ({}): {name} references {refers}, and no index starts with {}; joins to {refers} and deletes there scan {}{scans} (unvalidated: from the catalog, no workload)",
            f.type_name, f.column, f.table
        );
        return Some((2.0, suggestion(f, "btree", reason, 0.0)));
    }
    let distinct = f.distinct.filter(|d| *d >= 1.0)?;
    if f.rows < LARGE_TABLE_ROWS {
        return None;
    }
    let kept_share = 1.0 / distinct;
    let time = f.type_name.starts_with("timestamp") || f.type_name == "date";
    if time && f.rows >= BRIN_ROWS && f.correlation.is_some_and(|c| c.abs() > 0.9) {
        let reason = format!(
            "time column ({}) in insertion order (correlation {:.2}) of ~{:.0} rows: a BRIN index serves its ranges at a fraction of a B-tree's size{scans} (unvalidated: from the catalog, no workload)",
            f.type_name,
            f.correlation.unwrap_or(0.0),
            f.rows
        );
        return Some((0.5, suggestion(f, "brin", reason, 0.9)));
    }
    if kept_share > SELECTIVE_SHARE {
        return None;
    }
    let reason = format!(
        "selective column ({}): ~{:.0} distinct values in ~{:.0} rows, so an equality filter on it keeps ~{:.0} rows{scans} (unvalidated: from the catalog's statistics, no workload)",
        f.type_name,
        distinct,
        f.rows,
        (f.rows * kept_share).max(1.0)
    );
    Some((1.0 - kept_share, suggestion(f, "btree", reason, 1.0 - kept_share)))
}

fn suggestion(f: &ColumnFacts, index_type: &'static str, reason: String, improvement: f64) -> IndexSuggestion {
    let table = sql::qualified(&f.schema, &f.table);
    let using = if index_type == "btree" { String::new() } else { format!(" USING {index_type}") };
    IndexSuggestion {
        include: Vec::new(),
        table: f.table.clone(),
        columns: vec![f.column.clone()],
        sql: format!("CREATE INDEX CONCURRENTLY ON {table}{using} ({});", sql::ident(&f.column)),
        validated_with: "catalog_heuristic",
        confidence: "unvalidated",
        cost_before: None,
        cost_after: None,
        improvement,
        // A B-tree entry is the key plus ~16 bytes of tuple header and pointer; BRIN is tiny.
        estimated_bytes: if index_type == "brin" { 64 * 1024 } else { (f.rows * 24.0 * 1.1) as i64 },
        queries: Vec::new(),
        serves: Vec::new(),
        write_cost: 0.0,
        column: f.column.clone(),
        index_type,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(column: &str, type_name: &str, rows: f64, distinct: Option<f64>) -> ColumnFacts {
        ColumnFacts {
            schema: "public".into(),
            table: "users".into(),
            column: column.into(),
            type_name: type_name.into(),
            rows,
            seq_scan: 0,
            idx_scan: 0,
            distinct,
            correlation: None,
            foreign_key: None,
        }
    }

    #[test]
    fn foreign_keys_first_then_selective_columns_and_nothing_unselective_or_small() {
        let mut org = facts("org_id", "integer", 50.0, Some(3.0));
        org.foreign_key = Some(("users_org_id_fkey".into(), "orgs".into()));
        let mut created = facts("created_at", "timestamp with time zone", 2_000_000.0, Some(1_900_000.0));
        created.correlation = Some(0.99);
        let found = decide(&[
            facts("email", "character varying(255)", 20_000.0, Some(20_000.0)),
            facts("status", "text", 20_000.0, Some(3.0)),
            facts("name", "text", 500.0, Some(500.0)),
            facts("nickname", "text", 20_000.0, None),
            created,
            org,
        ]);
        let got: Vec<(&str, &str)> = found.iter().map(|s| (s.column.as_str(), s.index_type)).collect();
        assert_eq!(got, [("org_id", "btree"), ("email", "btree"), ("created_at", "brin")]);
        assert!(found.iter().all(|s| s.confidence == "unvalidated" && s.reason.contains("unvalidated")));
        assert_eq!(found[0].sql, "CREATE INDEX CONCURRENTLY ON \"public\".\"users\" (\"org_id\");");
        assert_eq!(found[2].sql, "CREATE INDEX CONCURRENTLY ON \"public\".\"users\" USING brin (\"created_at\");");
        assert!(found[1].reason.starts_with("selective column (character varying(255))"), "{}", found[1].reason);
    }
}
