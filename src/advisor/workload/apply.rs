//! Building a chosen set: each `CREATE INDEX CONCURRENTLY` in turn, then the catalog is asked
//! what it left. A build that fails, or leaves an invalid index (a concurrent build that
//! failed half-way), has its index dropped, so nothing half-built stays to slow writes; the
//! others go on. Each is reported with its outcome and its size on disk.

use serde::Serialize;

use super::super::Error;
use super::super::upkeep;
use crate::db::{self, Pools, sql};

/// What happened to one statement of the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Built and valid.
    Built,
    /// The build failed; whatever it left was dropped.
    Failed,
}

/// One index of the set.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AppliedIndex {
    pub sql: String,
    pub outcome: Outcome,
    /// The index built (as `regclass` text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// Its size on disk, measured after the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<i64>,
    /// Why the build failed, and what was dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `apply_set`: each index and the total built.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct AppliedSet {
    pub applied: Vec<AppliedIndex>,
    pub built: usize,
    pub failed: usize,
    pub total_bytes: i64,
}

const INDEXES_SQL: &str = "SELECT i.indexrelid::regclass::text AS index, i.indisvalid AS valid, pg_relation_size(i.indexrelid)::int8 AS bytes \
                           FROM pg_index i WHERE i.indrelid = to_regclass($1)";

/// The table a `CREATE INDEX CONCURRENTLY` statement is on (`regclass` text), or why the
/// statement is refused.
fn table_of(statement: &str) -> Result<String, Error> {
    let refused = || Error::Invalid(format!("apply_set takes CREATE INDEX CONCURRENTLY statements, one each: {statement:?} is not one"));
    let parsed = pg_query::parse(statement, pg_query::ParserOptions::DEFAULT).map_err(|_| refused())?;
    let [raw] = parsed.protobuf.stmts.as_slice() else { return Err(refused()) };
    match raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
        Some(pg_query::NodeEnum::IndexStmt(i)) if i.concurrent => {
            let rel = i.relation.as_ref().ok_or_else(refused)?;
            Ok(if rel.schemaname.is_empty() { sql::ident(&rel.relname) } else { sql::qualified(&rel.schemaname, &rel.relname) })
        }
        _ => Err(refused()),
    }
}

async fn indexes(pools: &Pools, table: &str) -> Result<Vec<(String, bool, i64)>, Error> {
    let rows = pools.primary().query(INDEXES_SQL, &[&table]).await?;
    Ok(rows.iter().map(|r| Ok((db::get(r, "index")?, db::get(r, "valid")?, db::get(r, "bytes")?))).collect::<Result<_, db::Error>>()?)
}

/// Builds each statement of `set` (all checked before any runs).
pub async fn apply(pools: &Pools, config: &crate::db::PgConfig, set: &[String]) -> Result<AppliedSet, Error> {
    if set.is_empty() {
        return Err(Error::Invalid("statements: give at least one CREATE INDEX CONCURRENTLY statement".into()));
    }
    let tables = set.iter().map(|s| table_of(s)).collect::<Result<Vec<_>, _>>()?;
    let mut applied = Vec::new();
    for (statement, table) in set.iter().zip(&tables) {
        let before = indexes(pools, table).await?;
        let result = upkeep::run_concurrently(config, statement).await;
        let new: Vec<(String, bool, i64)> = indexes(pools, table).await?.into_iter().filter(|(i, ..)| !before.iter().any(|(b, ..)| b == i)).collect();
        let error = match (&result, new.as_slice()) {
            (Err(err), _) => Some(err.to_string()),
            (Ok(()), [(_, true, _)]) => None,
            (Ok(()), _) => Some("the build left no valid index".into()),
        };
        let Some(error) = error else {
            let (index, _, bytes) = new.into_iter().next().unwrap_or_default();
            applied.push(AppliedIndex { sql: statement.clone(), outcome: Outcome::Built, index: Some(index), bytes: Some(bytes), error: None });
            continue;
        };
        let mut dropped = Vec::new();
        for (index, ..) in &new {
            if upkeep::run_concurrently(config, &format!("DROP INDEX CONCURRENTLY IF EXISTS {index};")).await.is_ok() {
                dropped.push(index.clone());
            }
        }
        let error = if dropped.is_empty() { error } else { format!("{error}; dropped what it left: {}", dropped.join(", ")) };
        applied.push(AppliedIndex { sql: statement.clone(), outcome: Outcome::Failed, index: None, bytes: None, error: Some(error) });
    }
    let built = applied.iter().filter(|a| a.outcome == Outcome::Built).count();
    Ok(AppliedSet { built, failed: applied.len() - built, total_bytes: applied.iter().filter_map(|a| a.bytes).sum(), applied })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_concurrent_index_builds_are_taken() {
        assert_eq!(table_of("CREATE INDEX CONCURRENTLY ON \"public\".\"orders\" (region)").unwrap(), "\"public\".\"orders\"");
        assert_eq!(table_of("create index concurrently o_r on orders (lower(email))").unwrap(), "\"orders\"");
        for refused in ["CREATE INDEX ON orders (region)", "DROP TABLE orders", "CREATE INDEX CONCURRENTLY ON t (a); DROP TABLE t", "nonsense"] {
            assert!(table_of(refused).is_err(), "{refused}");
        }
    }
}
