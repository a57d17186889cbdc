//! Index suggestions for a workload (`pg_stat_statements`, or the queries given). With HypoPG
//! a set is chosen over the whole workload ([`super::workload`]); without it, candidates from
//! the predicates are estimated from column statistics and marked low confidence; with no
//! workload at all, the catalog heuristic answers, labelled as such.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::catalog::{self, TableStats};
use super::rules::same_table;
use super::shape::{Shape, Use};
use super::workload::{self, Served, Skipped, Statement};
use super::Error;
use crate::db::{self, Pools};

/// What the planner knows about one column (`$1` schema, `$2` table, `$3` column).
const COLUMN_STATS_SQL: &str = "SELECT n_distinct, avg_width FROM pg_stats WHERE schemaname = $1 AND tablename = $2 AND attname = $3";

/// One query of the workload.
#[derive(Debug, Clone, Default, Deserialize, Serialize, schemars::JsonSchema)]
pub struct WorkloadQuery {
    pub sql: String,
    #[serde(default)]
    pub params: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct IndexSuggestion {
    pub table: String,
    /// Key columns, or expressions (`lower(email)`).
    pub columns: Vec<String>,
    /// Columns stored beside the keys (`INCLUDE`) for index-only scans.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// The exact statement to run.
    pub sql: String,
    /// `hypopg` (the planner used a hypothetical index) or `statistics` (an estimate).
    pub validated_with: &'static str,
    /// `high` with HypoPG, `low` from statistics alone.
    pub confidence: &'static str,
    /// The planned cost of the statements it serves, summed, before and after the set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_before: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_after: Option<f64>,
    /// Share of the cost saved (0.9 = 90 % cheaper), or the estimated share of rows skipped.
    pub improvement: f64,
    pub estimated_bytes: i64,
    /// The queries it helps.
    pub queries: Vec<String>,
    /// Each statement it serves with its cost before and after (HypoPG only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub serves: Vec<Served>,
    /// Estimated time spent maintaining it on writes over the period the statistics cover, in
    /// ms (the rows the write statements pg_stat_statements recorded wrote to its table, updates
    /// discounted by the table's HOT share; 0 for given queries, which have no period).
    pub write_cost: f64,
    /// Seed 000's fields: the column (several joined by `, `), the index method and the
    /// reason in words.
    pub column: String,
    #[serde(rename = "type")]
    pub index_type: &'static str,
    pub reason: String,
}

/// What `/indexes suggest` answers: the suggestions and what they rest on.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Suggested {
    pub suggestions: Vec<IndexSuggestion>,
    /// `workload` (queries given or pg_stat_statements), or `catalog_heuristic` when there was
    /// no workload to validate against.
    pub basis: &'static str,
    /// Why the catalog heuristic was used, and how to get validated suggestions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Statements left out, each with the reason (the others are advised).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// Indexes that would have saved enough but were left out of the set (their write cost
    /// outweighs what they save, or the budget is spent), the most useful first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub declined: Vec<super::workload::DeclinedIndex>,
    /// Statements analysed (HypoPG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statements: Option<usize>,
    /// The workload's weighted cost without and with the set (`cost_unit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cost_before: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_cost_after: Option<f64>,
    /// The workload's estimated gain, percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gain_percent: Option<f64>,
    /// `ms` (a recorded workload: each statement's total time, scaled by its planned cost
    /// ratio) or `planner_cost` (given queries, each weight 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_unit: Option<&'static str>,
    /// The set's estimated size and the budget it had to fit in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_index_bytes: Option<i64>,
    /// How long the analysis took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_ms: Option<u64>,
}

/// `/indexes suggest`: from the workload when there is one, else from the catalog alone
/// (clearly labelled: see [`super::heuristic`]), never a refusal for want of a workload.
pub async fn suggest_or_guess(
    pools: &Pools,
    db: &crate::db::PgConfig,
    table: Option<&str>,
    queries: &[WorkloadQuery],
    use_hypopg: bool,
    budget: i64,
) -> Result<Suggested, Error> {
    let recorded = queries.is_empty();
    let statements = if recorded { workload::intake::recorded(pools).await? } else { Some(workload::intake::given(queries)) };
    let statements = statements.map(|found| found.into_iter().filter(|s| reads(s, table)).collect::<Vec<_>>());
    let missing = match &statements {
        None => Some("pg_stat_statements is not available in this database"),
        Some(found) if found.is_empty() && recorded => Some("pg_stat_statements has recorded no reads of this table yet"),
        Some(_) => None,
    };
    if let Some(wanted) = table
        && catalog::table(pools, wanted).await?.is_none()
    {
        return Err(Error::TableNotFound { table: wanted.to_owned() });
    }
    if let (None, Some(statements)) = (missing, statements) {
        if use_hypopg
            && let Some(found) = workload::advise(pools, db, statements.clone(), recorded, budget).await?
        {
            return Ok(found);
        }
        let suggestions = estimated(pools, table, &statements).await?;
        return Ok(Suggested { suggestions, basis: "workload", ..Suggested::default() });
    }
    Ok(Suggested {
        suggestions: super::heuristic::suggest(pools, table).await?,
        basis: "catalog_heuristic",
        note: Some(format!(
            "unvalidated: no queries were given and {}, so these come from the catalog alone (unindexed foreign keys, selective columns); pass queries, or ask again once the workload has run, for suggestions the planner validated",
            missing.unwrap_or_default()
        )),
        ..Suggested::default()
    })
}

/// Whether `st` reads `table` (every statement does when no table is named).
fn reads(st: &Statement, table: Option<&str>) -> bool {
    table.is_none_or(|t| st.shape.tables.iter().any(|qt| same_table(qt, t.rsplit('.').next().unwrap_or(t))))
}

/// Suggestions for the given queries (`POST /optimize`): the set HypoPG chooses, or
/// statistics' estimates without it.
pub async fn suggest(pools: &Pools, db: &crate::db::PgConfig, queries: &[WorkloadQuery]) -> Result<Vec<IndexSuggestion>, Error> {
    let statements = workload::intake::given(queries);
    if let Some(found) = workload::advise(pools, db, statements.clone(), false, workload::DEFAULT_MAX_INDEX_BYTES).await? {
        return Ok(found.suggestions);
    }
    estimated(pools, None, &statements).await
}

/// Without HypoPG: candidates of each statement estimated from column statistics.
async fn estimated(pools: &Pools, table: Option<&str>, statements: &[Statement]) -> Result<Vec<IndexSuggestion>, Error> {
    let mut tables: std::collections::BTreeMap<String, TableStats> = std::collections::BTreeMap::new();
    for t in statements.iter().flat_map(|s| &s.shape.tables) {
        if table.is_some_and(|wanted| !same_table(t, wanted.rsplit('.').next().unwrap_or(wanted))) || tables.contains_key(t) {
            continue;
        }
        if let Some(stats) = catalog::table(pools, t).await? {
            tables.insert(t.clone(), stats);
        }
    }
    let mut out: Vec<IndexSuggestion> = Vec::new();
    for st in statements {
        for (name, stats) in tables.iter().filter(|(name, _)| st.shape.tables.contains(name)) {
            for found in estimate(pools, stats, &st.shape, name, &candidates(&st.shape, name, stats)).await? {
                match out.iter_mut().find(|s| s.table == found.table && s.columns == found.columns) {
                    Some(seen) if !seen.queries.contains(&st.sql) => seen.queries.push(st.sql.clone()),
                    Some(_) => {}
                    None => out.push(IndexSuggestion { queries: vec![st.sql.clone()], ..found }),
                }
            }
        }
    }
    out.sort_by(|a, b| b.improvement.total_cmp(&a.improvement));
    Ok(out)
}

/// Single columns (equality, range, join, sort), then equality-first pairs, minus those an
/// existing index already covers.
fn candidates(s: &Shape, table: &str, stats: &TableStats) -> Vec<Vec<String>> {
    let of = |u: Use| -> Vec<String> {
        let mut v: Vec<String> = s.columns.iter().filter(|c| c.used == u && c.table.as_deref() == Some(table)).map(|c| c.column.clone()).collect();
        v.dedup();
        v
    };
    let (eq, range, join, sort) = (of(Use::Equality), of(Use::Range), of(Use::Join), of(Use::Sort));
    let mut out: Vec<Vec<String>> = Vec::new();
    for c in eq.iter().chain(&range).chain(&join).chain(&sort) {
        out.push(vec![c.clone()]);
    }
    for a in &eq {
        for b in eq.iter().chain(&range).chain(&sort) {
            if a != b {
                out.push(vec![a.clone(), b.clone()]);
            }
        }
    }
    out.dedup();
    out.retain(|cols| stats.columns.contains(&cols[0]) && stats.index_leading_with(&cols.iter().map(String::as_str).collect::<Vec<_>>()).is_none());
    out
}

fn create_sql(stats: &TableStats, cols: &[String]) -> String {
    let list: Vec<String> = cols.iter().map(|c| crate::db::sql::ident(c)).collect();
    format!("CREATE INDEX CONCURRENTLY ON {} ({});", stats.qualified(), list.join(", "))
}

/// Without HypoPG: equality and range columns whose statistics say a lookup keeps few rows of a
/// large table. Lower confidence: the planner was not asked.
async fn estimate(pools: &Pools, stats: &TableStats, s: &Shape, table: &str, candidates: &[Vec<String>]) -> Result<Vec<IndexSuggestion>, Error> {
    let mut kept = Vec::new();
    if stats.rows < super::rules::LARGE_TABLE_ROWS {
        return Ok(kept);
    }
    for cols in candidates.iter().filter(|c| c.len() == 1) {
        let column = &cols[0];
        let equality = s.columns.iter().any(|c| c.used == Use::Equality && c.table.as_deref() == Some(table) && &c.column == column);
        let rows = pools.primary().query(COLUMN_STATS_SQL, &[&stats.schema, &stats.name, column]).await?;
        let Some(row) = rows.first() else { continue };
        // Both are null until the column has statistics of that kind.
        let n_distinct = f64::from(db::get::<Option<f32>>(row, "n_distinct")?.unwrap_or(0.0));
        let width = f64::from(db::get::<Option<i32>>(row, "avg_width")?.unwrap_or(8));
        let distinct = if n_distinct < 0.0 { -n_distinct * stats.rows } else { n_distinct };
        // Equality keeps one value's rows; a range is assumed to keep a third (the planner's
        // default guess), which is not selective.
        let kept_share = if equality && distinct > 0.0 { 1.0 / distinct } else { 1.0 / 3.0 };
        if kept_share > super::rules::SELECTIVE_SHARE {
            continue;
        }
        kept.push(IndexSuggestion {
            include: Vec::new(),
            table: stats.name.clone(),
            columns: cols.clone(),
            sql: create_sql(stats, cols),
            validated_with: "statistics",
            confidence: "low",
            cost_before: None,
            cost_after: None,
            improvement: 1.0 - kept_share,
            estimated_bytes: (stats.rows * (width + 16.0) * 1.1) as i64,
            queries: Vec::new(),
            serves: Vec::new(),
            write_cost: 0.0,
            column: column.clone(),
            index_type: "btree",
            reason: format!(
                "equality filter in the workload keeping ~{:.2} % of ~{:.0} rows (estimated from column statistics; the planner was not asked)",
                kept_share * 100.0,
                stats.rows
            ),
        });
    }
    Ok(kept)
}
