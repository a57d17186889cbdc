//! The query and index advisor: `EXPLAIN` parsed into a plan tree and checked by rules (pure
//! functions of the plan, the tables' statistics and the query's shape), index suggestions
//! validated with hypothetical indexes, index upkeep, and applying a suggestion with the
//! measured before and after.
//!
//! Code map: `plan.rs` (the typed tree), `explain.rs` (running EXPLAIN safely), `catalog.rs`
//! (table and index statistics), `shape.rs` (what the SQL filters, joins and sorts on),
//! `rules.rs` (the rules), `suggest.rs` (index suggestions), `workload/` (a set of indexes
//! chosen for a whole workload with HypoPG, and building it), `upkeep.rs` (reports and actions).

mod catalog;
mod error;
mod explain;
pub mod heuristic;
pub mod plan;
pub mod rules;
pub mod shape;
mod suggest;
pub mod upkeep;
pub mod workload;

pub use catalog::{IndexInfo, TableStats};
pub use error::Error;
pub use rules::{Severity, Suggestion};
pub use suggest::{IndexSuggestion, Suggested, WorkloadQuery};
pub use upkeep::{Analyzed, Created, Dropped, IndexReport, Rebuilt};

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::query::Executor;

/// `POST /optimize` (seed 000's request plus options).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
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
    /// Whom the statement runs as (the caller's key; not part of the request body).
    #[serde(skip)]
    pub login: crate::db::Login,
}

fn yes() -> bool {
    true
}

/// Seed 000's answer shape, with the typed plan.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct OptimizeReport {
    pub execution_time_ms: Option<f64>,
    pub planning_time_ms: Option<f64>,
    pub total_time_ms: Option<f64>,
    pub estimated_cost: f64,
    pub analyzed: bool,
    /// Why `analyze` was asked for but the statement was not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyze_skipped: Option<String>,
    pub is_slow: bool,
    pub plan: plan::Node,
    /// Seed 000's shape: each finding as one sentence (its reason, then its fix).
    pub suggestions: Vec<String>,
    /// The findings in full: rule, plan node, severity, reason and fix.
    pub findings: Vec<Suggestion>,
    pub index_suggestions: Vec<IndexSuggestion>,
}

/// Explains `req.sql` and runs the rules (and, for a read, the index suggestions).
pub async fn optimize(exec: &Executor, db: &crate::db::PgConfig, req: &OptimizeRequest, slow: Duration) -> Result<OptimizeReport, Error> {
    let mode = explain::Mode { analyze: req.analyze, allow_side_effects: req.allow_side_effects, login: req.login };
    let (explained, analyze_skipped) = explain::explain(exec, &req.sql, &req.params, mode, exec.limits.query_timeout).await?;
    let shape = shape::shape(&req.sql);
    let tables = tables_of(exec, &explained, &shape).await?;
    let findings = rules::run_all(&rules::Context { plan: &explained, tables: &tables, shape: &shape });
    let read = exec.classifier.classify(&req.sql).map(|c| c.query_type == "select").unwrap_or(false);
    let index_suggestions = if req.suggest_indexes && read {
        let query = WorkloadQuery { sql: req.sql.clone(), params: req.params.clone() };
        match suggest::suggest(&exec.pools, db, &[query]).await {
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
        suggestions: findings.iter().map(Suggestion::sentence).collect(),
        findings,
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

/// `POST /indexes`: one action and exactly the fields it takes.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum IndexesRequest {
    /// Indexes that would help the workload (or `table`'s part of it).
    Suggest {
        #[serde(default)]
        table: Option<String>,
        /// The workload (default: pg_stat_statements).
        #[serde(default)]
        queries: Vec<WorkloadQuery>,
        /// Validate with HypoPG when it can be loaded. Default true.
        #[serde(default = "yes")]
        use_hypopg: bool,
        /// Storage budget for the whole set of new indexes, bytes. Default 1 GiB.
        #[serde(default)]
        max_index_bytes: Option<i64>,
    },
    /// `ANALYZE table`.
    Analyze { table: String },
    /// Indexes never scanned (of `table`, or of every table).
    Unused {
        #[serde(default)]
        table: Option<String>,
    },
    /// Indexes another index makes redundant.
    Duplicates {
        #[serde(default)]
        table: Option<String>,
    },
    /// Indexes left invalid by a failed concurrent build.
    Invalid {
        #[serde(default)]
        table: Option<String>,
    },
    /// Indexes much larger than their contents need.
    Bloat {
        #[serde(default)]
        table: Option<String>,
    },
    /// `REINDEX INDEX CONCURRENTLY index`, or (seed 000's `{"table", "action": "rebuild"}`)
    /// every index of `table`: `REINDEX TABLE CONCURRENTLY`.
    Rebuild {
        #[serde(default)]
        index: Option<String>,
        #[serde(default)]
        table: Option<String>,
    },
    /// `CREATE [UNIQUE] INDEX CONCURRENTLY [name] ON table (columns)`.
    Create {
        table: String,
        columns: Vec<String>,
        /// Default: `<table>_<columns>_idx`.
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        unique: bool,
    },
    /// `DROP INDEX CONCURRENTLY index`, checked to be on `table` when it is given.
    Drop {
        index: String,
        #[serde(default)]
        table: Option<String>,
    },
    /// Runs a suggested `CREATE INDEX CONCURRENTLY` statement (`sql`) and measures `query`
    /// before and after.
    Apply { sql: String, query: WorkloadQuery },
    /// Builds a set of suggested indexes (`statements`: `CREATE INDEX CONCURRENTLY` each), one
    /// after the other; a build that fails or leaves an invalid index has it dropped.
    ApplySet { statements: Vec<String> },
}

/// What a `/indexes` action answers, one shape per kind of action.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum IndexesAnswer {
    /// `suggest`.
    Suggestions(Suggested),
    /// `unused`, `duplicates`, `invalid`, `bloat`.
    Reports { indexes: Vec<IndexReport> },
    Analyzed(Analyzed),
    Rebuilt(Rebuilt),
    Created(Created),
    Dropped(Dropped),
    Applied(Applied),
    AppliedSet(workload::apply::AppliedSet),
}

/// `apply`: the index built and the query's plan before and after.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Applied {
    /// The statement run.
    pub done: String,
    pub before: Measured,
    pub after: Measured,
    /// Execution time before over after, when both were measured.
    pub speedup: Option<f64>,
}

/// One EXPLAIN ANALYZE of the measured query.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Measured {
    pub cost: f64,
    pub execution_time_ms: Option<f64>,
    /// The plan's scan nodes (`Seq Scan on t`, `Index Scan using t_x on t`).
    pub scans: Vec<String>,
}

impl Measured {
    fn of(explained: &plan::Explained) -> Measured {
        Measured {
            cost: explained.root.total_cost,
            execution_time_ms: explained.execution_time_ms,
            scans: explained.root.walk().into_iter().filter(|(_, n)| n.is_scan()).map(|(_, n)| n.label()).collect(),
        }
    }
}

/// Runs one `/indexes` action.
pub async fn indexes(exec: &Executor, db: &crate::db::PgConfig, req: &IndexesRequest) -> Result<IndexesAnswer, Error> {
    use IndexesAnswer as A;
    use IndexesRequest as R;
    let pools = &exec.pools;
    let reports = |found: Vec<IndexReport>| A::Reports { indexes: found };
    Ok(match req {
        R::Suggest { table, queries, use_hypopg, max_index_bytes } => {
            let budget = match max_index_bytes {
                Some(bytes) if *bytes <= 0 => return Err(Error::Invalid("max_index_bytes: give a positive number of bytes".into())),
                Some(bytes) => *bytes,
                None => workload::DEFAULT_MAX_INDEX_BYTES,
            };
            A::Suggestions(suggest::suggest_or_guess(pools, db, table.as_deref(), queries, *use_hypopg, budget).await?)
        }
        R::Unused { table } => reports(upkeep::unused(pools, table.as_deref()).await?),
        R::Duplicates { table } => reports(upkeep::duplicates(pools, table.as_deref()).await?),
        R::Invalid { table } => reports(upkeep::invalid(pools, table.as_deref()).await?),
        R::Bloat { table } => reports(upkeep::bloat(pools, table.as_deref()).await?),
        R::Analyze { table } => A::Analyzed(upkeep::analyze(pools, db, table).await?),
        R::Rebuild { index: Some(index), table: None } => A::Rebuilt(upkeep::rebuild(pools, db, index).await?),
        R::Rebuild { index: None, table: Some(table) } => A::Rebuilt(upkeep::rebuild_table(pools, db, table).await?),
        R::Rebuild { .. } => return Err(Error::Invalid("rebuild takes index (one index) or table (all of its indexes), not both".into())),
        R::Create { table, columns, name, unique } => A::Created(upkeep::create(pools, db, table, columns, name.as_deref(), *unique).await?),
        R::Drop { index, table } => A::Dropped(upkeep::drop(pools, db, index, table.as_deref()).await?),
        R::Apply { sql, query } => A::Applied(apply(exec, db, sql, query).await?),
        R::ApplySet { statements } => A::AppliedSet(workload::apply::apply(pools, db, statements).await?),
    })
}

/// Creates a suggested index and measures the query before and after (EXPLAIN ANALYZE).
async fn apply(exec: &Executor, db: &crate::db::PgConfig, sql: &str, query: &WorkloadQuery) -> Result<Applied, Error> {
    let timeout = exec.limits.query_timeout;
    let mode = explain::Mode { analyze: true, allow_side_effects: false, login: crate::db::Login::Service };
    let (before, _) = explain::explain(exec, &query.sql, &query.params, mode, timeout).await?;
    upkeep::create_from_sql(db, sql).await?;
    let (after, _) = explain::explain(exec, &query.sql, &query.params, mode, timeout).await?;
    let speedup = match (before.execution_time_ms, after.execution_time_ms) {
        (Some(b), Some(a)) if a > 0.0 => Some(b / a),
        _ => None,
    };
    Ok(Applied { done: sql.to_owned(), before: Measured::of(&before), after: Measured::of(&after), speedup })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> Result<IndexesRequest, String> {
        serde_json::from_value(json).map_err(|e| e.to_string())
    }

    #[test]
    fn each_action_takes_exactly_its_fields() {
        let create = parse(serde_json::json!({"action": "create", "table": "t", "columns": ["a"]})).unwrap();
        assert!(matches!(create, IndexesRequest::Create { ref table, ref name, unique: false, .. } if table == "t" && name.is_none()));
        let suggest = parse(serde_json::json!({"action": "suggest"})).unwrap();
        assert!(matches!(suggest, IndexesRequest::Suggest { table: None, use_hypopg: true, .. }));
        assert!(matches!(parse(serde_json::json!({"action": "unused", "table": null})).unwrap(), IndexesRequest::Unused { table: None }));

        let unknown = parse(serde_json::json!({"action": "explode"})).unwrap_err();
        assert!(unknown.contains("unknown variant `explode`"), "{unknown}");
        let table = parse(serde_json::json!({"action": "rebuild", "table": "users"})).unwrap();
        assert!(matches!(table, IndexesRequest::Rebuild { index: None, table: Some(_) }));
        let foreign = parse(serde_json::json!({"action": "analyze", "table": "t", "index": "i"})).unwrap_err();
        assert!(foreign.contains("unknown field `index`"), "{foreign}");
        let no_action = parse(serde_json::json!({"table": "t"})).unwrap_err();
        assert!(no_action.contains("missing field `action`"), "{no_action}");
    }
}
