//! Index suggestions: candidates from the predicates, joins and ORDER BY of the workload
//! (`pg_stat_statements`, or the queries given), single-column then two-column, each validated
//! with HypoPG when it can be loaded — kept only when the planner's cost at least halves, with
//! the cost before and after — else estimated from column statistics and marked low
//! confidence. HypoPG runs on a connection of its own, inside a transaction that is rolled back
//! (so even `CREATE EXTENSION hypopg` leaves no trace), and the connection is closed after.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::catalog::{self, TableStats};
use super::rules::same_table;
use super::shape::{Shape, Use, shape};
use super::{Error, explain};
use crate::db::{self, Pools};

/// A suggestion is kept when the planner's cost drops at least this much (Dexter's bar).
pub const MIN_SAVING: f64 = 0.5;
/// Queries taken from pg_stat_statements.
const WORKLOAD_QUERIES: i64 = 50;
/// The most expensive reads of this database; `$1` is how many.
const WORKLOAD_SQL: &str = "SELECT query FROM pg_stat_statements \
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
    AND query ~* '^\\s*select' ORDER BY total_exec_time DESC LIMIT $1";
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
    pub columns: Vec<String>,
    /// The exact statement to run.
    pub sql: String,
    /// `hypopg` (the planner used a hypothetical index) or `statistics` (an estimate).
    pub validated_with: &'static str,
    /// `high` with HypoPG, `low` from statistics alone.
    pub confidence: &'static str,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_before: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_after: Option<f64>,
    /// Share of the cost saved (0.9 = 90 % cheaper), or the estimated share of rows skipped.
    pub improvement: f64,
    pub estimated_bytes: i64,
    /// The queries it helps.
    pub queries: Vec<String>,
    /// Seed 000's fields: the column (several joined by `, `), the index method and the
    /// reason in words.
    pub column: String,
    #[serde(rename = "type")]
    pub index_type: &'static str,
    pub reason: String,
}

/// What `/indexes suggest` answers: the suggestions and what they rest on.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Suggested {
    pub suggestions: Vec<IndexSuggestion>,
    /// `workload` (queries given or pg_stat_statements), or `catalog_heuristic` when there was
    /// no workload to validate against.
    pub basis: &'static str,
    /// Why the catalog heuristic was used, and how to get validated suggestions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `/indexes suggest`: from the workload when there is one, else from the catalog alone
/// (clearly labelled: see [`super::heuristic`]), never a refusal for want of a workload.
pub async fn suggest_or_guess(
    pools: &Pools,
    db: &tokio_postgres::Config,
    table: Option<&str>,
    queries: &[WorkloadQuery],
    use_hypopg: bool,
) -> Result<Suggested, Error> {
    let missing = if queries.is_empty() {
        match workload(pools, table).await? {
            None => Some("pg_stat_statements is not available in this database"),
            Some(found) if found.is_empty() => Some("pg_stat_statements has recorded no reads of this table yet"),
            Some(_) => None,
        }
    } else {
        None
    };
    let Some(missing) = missing else {
        let suggestions = suggest(pools, db, table, queries, use_hypopg).await?;
        return Ok(Suggested { suggestions, basis: "workload", note: None });
    };
    if let Some(wanted) = table
        && catalog::table(pools, wanted).await?.is_none()
    {
        return Err(Error::TableNotFound { table: wanted.to_owned() });
    }
    Ok(Suggested {
        suggestions: super::heuristic::suggest(pools, table).await?,
        basis: "catalog_heuristic",
        note: Some(format!(
            "unvalidated: no queries were given and {missing}, so these come from the catalog alone (unindexed foreign keys, selective columns); pass queries, or ask again once the workload has run, for suggestions the planner validated"
        )),
    })
}

/// Suggestions for `table` (or every table the workload reads), from `queries` or, when none
/// are given, the most expensive statements in `pg_stat_statements`.
pub async fn suggest(
    pools: &Pools,
    db: &tokio_postgres::Config,
    table: Option<&str>,
    queries: &[WorkloadQuery],
    use_hypopg: bool,
) -> Result<Vec<IndexSuggestion>, Error> {
    let workload = if queries.is_empty() {
        workload(pools, table).await?.ok_or_else(|| {
            Error::Invalid("no queries given and pg_stat_statements is not available in this database (preload it and CREATE EXTENSION pg_stat_statements, or pass queries)".into())
        })?
    } else {
        queries.to_vec()
    };
    let mut tables: BTreeMap<String, TableStats> = BTreeMap::new();
    let mut shaped = Vec::new();
    for q in &workload {
        let s = shape(&q.sql);
        for t in &s.tables {
            if table.is_some_and(|wanted| !same_table(t, wanted.rsplit('.').next().unwrap_or(wanted))) || tables.contains_key(t) {
                continue;
            }
            if let Some(stats) = catalog::table(pools, t).await? {
                tables.insert(t.clone(), stats);
            }
        }
        shaped.push((q, s));
    }
    if let (Some(wanted), true) = (table, tables.is_empty())
        && catalog::table(pools, wanted).await?.is_none() {
            return Err(Error::TableNotFound { table: wanted.to_owned() });
        }
    let client = db::admin::connect(db, db::Purpose::Advisor).await.map_err(|e| db::Error::Unavailable { reason: db::error_chain(&e) })?;
    let hypopg = use_hypopg && load_hypopg(&client).await;
    let mut found: BTreeMap<(String, Vec<String>), IndexSuggestion> = BTreeMap::new();
    for (q, s) in &shaped {
        for (name, stats) in &tables {
            if !s.tables.contains(name) {
                continue;
            }
            let candidates = candidates(s, name, stats);
            let kept = if hypopg {
                validate(&client, q, stats, &candidates).await?
            } else {
                estimate(pools, stats, s, name, &candidates).await?
            };
            for suggestion in kept {
                let key = (suggestion.table.clone(), suggestion.columns.clone());
                let entry = found.entry(key).or_insert_with(|| suggestion.clone());
                if suggestion.improvement > entry.improvement {
                    let queries = std::mem::take(&mut entry.queries);
                    *entry = suggestion.clone();
                    entry.queries = queries;
                }
                if !entry.queries.contains(&q.sql) {
                    entry.queries.push(q.sql.clone());
                }
            }
        }
    }
    if hypopg {
        let _ = client.batch_execute("ROLLBACK").await;
    }
    let mut out: Vec<IndexSuggestion> = found.into_values().collect();
    // A single-column suggestion is dropped when a two-column one starts with the same column.
    let multi: Vec<(String, String)> = out.iter().filter(|s| s.columns.len() > 1).map(|s| (s.table.clone(), s.columns[0].clone())).collect();
    out.retain(|s| s.columns.len() > 1 || !multi.contains(&(s.table.clone(), s.columns[0].clone())));
    out.sort_by(|a, b| b.improvement.total_cmp(&a.improvement));
    Ok(out)
}

/// The most expensive statements of this database that read `table` (pg_stat_statements);
/// `None` when the extension is not there (or not preloaded, so it cannot be read).
async fn workload(pools: &Pools, table: Option<&str>) -> Result<Option<Vec<WorkloadQuery>>, Error> {
    let rows = pools.primary().query("SELECT to_regclass('pg_stat_statements') IS NOT NULL AS installed", &[]).await?;
    let installed: bool = rows.first().map(|row| db::get(row, "installed")).transpose()?.unwrap_or(false);
    if !installed {
        return Ok(None);
    }
    let rows = match pools.primary().query(WORKLOAD_SQL, &[&WORKLOAD_QUERIES]).await {
        Ok(rows) => rows,
        // 55000: created but not in shared_preload_libraries.
        Err(err) if err.sqlstate() == Some("55000") => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let queries = rows.iter().map(|row| db::get::<Option<String>>(row, "query")).collect::<Result<Vec<_>, _>>()?;
    Ok(Some(
        queries
            .into_iter()
            .flatten()
            .filter(|q| table.is_none_or(|t| shape(q).tables.iter().any(|qt| same_table(qt, t.rsplit('.').next().unwrap_or(t)))))
            .map(|sql| WorkloadQuery { sql, params: Vec::new() })
            .collect(),
    ))
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

/// Loads HypoPG in a transaction on `client`; false when it cannot be (not installed).
async fn load_hypopg(client: &tokio_postgres::Client) -> bool {
    if client.batch_execute("BEGIN").await.is_err() {
        return false;
    }
    match client.batch_execute("SAVEPOINT h; CREATE EXTENSION IF NOT EXISTS hypopg; RELEASE h").await {
        Ok(()) => true,
        Err(err) => {
            tracing::info!(error = %err, "HypoPG is not available; index suggestions fall back to statistics");
            let _ = client.batch_execute("ROLLBACK").await;
            false
        }
    }
}

/// Each candidate as a hypothetical index: kept when the cost at least halves (a two-column
/// one must also halve the best single column's cost).
async fn validate(client: &tokio_postgres::Client, q: &WorkloadQuery, stats: &TableStats, candidates: &[Vec<String>]) -> Result<Vec<IndexSuggestion>, Error> {
    let _ = client.batch_execute("SELECT hypopg_reset()").await;
    let (before, _) = explain::cost(client, &q.sql, &q.params).await?;
    let mut kept = Vec::new();
    let mut best_single: Option<f64> = None;
    for cols in candidates {
        let plain = format!("CREATE INDEX ON {} ({})", stats.qualified(), cols.iter().map(|c| crate::db::sql::ident(c)).collect::<Vec<_>>().join(", "));
        let _ = client.batch_execute("SELECT hypopg_reset()").await;
        let created = client
            .query_one("SELECT indexname::text, hypopg_relation_size(indexrelid)::int8 FROM hypopg_create_index($1)", &[&plain])
            .await
            .map_err(|e| db::Error::from_driver(e, false))?;
        let (name, bytes): (String, i64) = (created.get(0), created.get(1));
        let (after, used) = explain::cost(client, &q.sql, &q.params).await?;
        let hypothetical_used = used.contains(&name);
        let bar = if cols.len() == 1 { before } else { best_single.unwrap_or(before).min(before) };
        if cols.len() == 1 && hypothetical_used {
            best_single = Some(best_single.map_or(after, |b: f64| b.min(after)));
        }
        if !hypothetical_used || after > bar * (1.0 - MIN_SAVING) {
            continue;
        }
        let improvement = 1.0 - after / before.max(f64::MIN_POSITIVE);
        kept.push(IndexSuggestion {
            table: stats.name.clone(),
            columns: cols.clone(),
            sql: create_sql(stats, cols),
            validated_with: "hypopg",
            confidence: "high",
            cost_before: Some(before),
            cost_after: Some(after),
            improvement,
            estimated_bytes: bytes,
            queries: Vec::new(),
            column: cols.join(", "),
            index_type: "btree",
            reason: format!(
                "filtered, joined or sorted on by the workload: with this index the planner's cost drops from {before:.0} to {after:.0} ({:.0} % cheaper; validated with a hypothetical index)",
                improvement * 100.0
            ),
        });
    }
    let _ = client.batch_execute("SELECT hypopg_reset()").await;
    Ok(kept)
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
