//! The query and index advisor: `EXPLAIN` parsed into a plan tree and checked by rules (pure
//! functions of the plan, the tables' statistics and the query's shape), index suggestions
//! validated with hypothetical indexes, index upkeep, and applying a suggestion with the
//! measured before and after.
//!
//! Code map: `plan.rs` (the typed tree), `explain.rs` (running EXPLAIN safely), `catalog.rs`
//! (table and index statistics), `shape.rs` (what the SQL filters, joins and sorts on),
//! `rules.rs` (the rules), `suggest.rs` (index suggestions), `upkeep.rs` (reports and actions).

mod catalog;
mod error;
mod explain;
pub mod plan;
pub mod rules;
pub mod shape;
mod suggest;
mod upkeep;

pub use catalog::{IndexInfo, TableStats};
pub use error::Error;
pub use rules::{Severity, Suggestion};
pub use suggest::{IndexSuggestion, WorkloadQuery};
pub use upkeep::IndexReport;

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::query::Executor;

/// `POST /optimize` (seed 000's request plus options).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizeRequest {
    pub sql: String,
    #[serde(default, deserialize_with = "crate::query::null_as_empty")]
    pub params: Vec<Value>,
    /// Run the statement (EXPLAIN ANALYZE, rolled back). Default true.
    #[serde(default = "yes")]
    pub analyze: bool,
    /// Also look for indexes that would help this query. Default true.
    #[serde(default = "yes")]
    pub suggest_indexes: bool,
    /// Run `analyze` even when the statement calls functions whose effects the rollback does
    /// not undo (`pg_terminate_backend`, `nextval` ...) or code dbagent cannot vouch for.
    #[serde(default)]
    pub allow_side_effects: bool,
}

fn yes() -> bool {
    true
}

/// Seed 000's answer shape, with the typed plan.
#[derive(Debug, Clone, Serialize)]
pub struct OptimizeReport {
    pub execution_time_ms: Option<f64>,
    pub planning_time_ms: Option<f64>,
    pub total_time_ms: Option<f64>,
    pub estimated_cost: f64,
    pub analyzed: bool,
    /// Why `analyze` was asked for but the statement was not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analyze_skipped: Option<String>,
    pub is_slow: bool,
    pub plan: plan::Node,
    pub suggestions: Vec<Suggestion>,
    pub index_suggestions: Vec<IndexSuggestion>,
}

/// Explains `req.sql` and runs the rules (and, for a read, the index suggestions).
pub async fn optimize(exec: &Executor, db: &tokio_postgres::Config, req: &OptimizeRequest, slow: Duration) -> Result<OptimizeReport, Error> {
    let mode = explain::Mode { analyze: req.analyze, allow_side_effects: req.allow_side_effects };
    let (explained, analyze_skipped) = explain::explain(exec, &req.sql, &req.params, mode, exec.limits.query_timeout).await?;
    let shape = shape::shape(&req.sql);
    let tables = tables_of(exec, &explained, &shape).await?;
    let suggestions = rules::run_all(&rules::Context { plan: &explained, tables: &tables, shape: &shape });
    let read = exec.classifier.classify(&req.sql).map(|c| c.query_type == "select").unwrap_or(false);
    let index_suggestions = if req.suggest_indexes && read {
        let query = WorkloadQuery { sql: req.sql.clone(), params: req.params.clone() };
        match suggest::suggest(&exec.pools, db, None, &[query], true).await {
            Ok(found) => found,
            Err(err) => {
                tracing::warn!(error = %err, "index suggestions failed");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let total = match (explained.planning_time_ms, explained.execution_time_ms) {
        (Some(p), Some(e)) => Some(p + e),
        _ => None,
    };
    Ok(OptimizeReport {
        execution_time_ms: explained.execution_time_ms,
        planning_time_ms: explained.planning_time_ms,
        total_time_ms: total,
        estimated_cost: explained.root.total_cost,
        analyzed: explained.analyzed,
        analyze_skipped,
        is_slow: total.is_some_and(|t| t >= slow.as_secs_f64() * 1e3),
        plan: explained.root,
        suggestions,
        index_suggestions,
    })
}

/// Statistics of every table the plan scans or the query names, keyed by table name.
async fn tables_of(exec: &Executor, explained: &plan::Explained, shape: &shape::Shape) -> Result<HashMap<String, TableStats>, Error> {
    let mut names: Vec<String> = shape.tables.clone();
    for (_, node) in explained.root.walk() {
        if let Some(rel) = &node.relation
            && !names.iter().any(|n| rules::same_table(n, rel)) {
                names.push(rel.clone());
            }
    }
    let mut out = HashMap::new();
    for name in names {
        if let Some(stats) = catalog::table(&exec.pools, &name).await? {
            out.insert(stats.name.clone(), stats);
        }
    }
    Ok(out)
}

/// `POST /indexes`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexesRequest {
    /// suggest, analyze, unused, duplicates, invalid, bloat, rebuild, create, drop, apply.
    pub action: String,
    #[serde(default)]
    pub table: Option<String>,
    #[serde(default)]
    pub index: Option<String>,
    #[serde(default)]
    pub columns: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub unique: bool,
    /// suggest: the workload (default: pg_stat_statements).
    #[serde(default)]
    pub queries: Vec<WorkloadQuery>,
    /// suggest: validate with HypoPG when it can be loaded. Default true.
    #[serde(default = "yes")]
    pub use_hypopg: bool,
    /// apply: the suggested `CREATE INDEX CONCURRENTLY` statement ...
    #[serde(default)]
    pub sql: Option<String>,
    /// ... and the query to measure before and after.
    #[serde(default)]
    pub query: Option<WorkloadQuery>,
}

/// Runs one `/indexes` action; the answer is JSON.
pub async fn indexes(exec: &Executor, db: &tokio_postgres::Config, req: &IndexesRequest) -> Result<Value, Error> {
    let pools = &exec.pools;
    let table = req.table.as_deref();
    let need = |what: Option<&str>, field: &str| what.map(str::to_owned).ok_or_else(|| Error::Invalid(format!("{} needs \"{field}\"", req.action)));
    let json = |v: Result<Vec<IndexReport>, Error>| v.map(|found| serde_json::json!({ "indexes": found }));
    match req.action.as_str() {
        "suggest" => {
            let found = suggest::suggest(pools, db, table, &req.queries, req.use_hypopg).await?;
            Ok(serde_json::json!({ "suggestions": found }))
        }
        "unused" => json(upkeep::unused(pools, table).await),
        "duplicates" => json(upkeep::duplicates(pools, table).await),
        "invalid" => json(upkeep::invalid(pools, table).await),
        "bloat" => json(upkeep::bloat(pools, table).await),
        "analyze" => upkeep::analyze(pools, db, &need(table, "table")?).await,
        "rebuild" => upkeep::rebuild(pools, db, &need(req.index.as_deref(), "index")?).await,
        "create" => upkeep::create(pools, db, &need(table, "table")?, &req.columns, req.name.as_deref(), req.unique).await,
        "drop" => upkeep::drop(pools, db, &need(req.index.as_deref(), "index")?, table).await,
        "apply" => apply(exec, db, &need(req.sql.as_deref(), "sql")?, req.query.as_ref()).await,
        other => Err(Error::Invalid(format!(
            "unknown action {other:?} (suggest, analyze, unused, duplicates, invalid, bloat, rebuild, create, drop, apply)"
        ))),
    }
}

/// Creates a suggested index and measures the query before and after (EXPLAIN ANALYZE).
async fn apply(exec: &Executor, db: &tokio_postgres::Config, sql: &str, query: Option<&WorkloadQuery>) -> Result<Value, Error> {
    let query = query.ok_or_else(|| Error::Invalid("apply needs \"query\" ({sql, params}) to measure".into()))?;
    let timeout = exec.limits.query_timeout;
    let measure = |e: &plan::Explained| {
        let scans: Vec<String> = e.root.walk().into_iter().filter(|(_, n)| n.is_scan()).map(|(_, n)| n.label()).collect();
        serde_json::json!({ "cost": e.root.total_cost, "execution_time_ms": e.execution_time_ms, "scans": scans })
    };
    let mode = explain::Mode { analyze: true, allow_side_effects: false };
    let (before, _) = explain::explain(exec, &query.sql, &query.params, mode, timeout).await?;
    upkeep::create_from_sql(db, sql).await?;
    let (after, _) = explain::explain(exec, &query.sql, &query.params, mode, timeout).await?;
    let speedup = match (before.execution_time_ms, after.execution_time_ms) {
        (Some(b), Some(a)) if a > 0.0 => Some(b / a),
        _ => None,
    };
    Ok(serde_json::json!({ "done": sql, "before": measure(&before), "after": measure(&after), "speedup": speedup }))
}
