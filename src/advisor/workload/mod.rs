//! Index advice for a whole workload: its statements made plannable ([`intake`]), candidates
//! from what they filter, join, sort and group on ([`candidates`]), and a set chosen with
//! HypoPG under a storage budget ([`search`]) on a what-if planner session ([`planner`]);
//! [`apply`] builds a chosen set.
//!
//! Invariants: one statement that cannot be planned is listed in `skipped` with the server's
//! reason and never sinks the others; nothing is created in the database while advising (the
//! planner session's transaction is rolled back); a recorded statement weighs what it cost
//! (its total time), a given one weighs 1; no candidate repeats or prefixes an existing index.

pub mod apply;
mod candidates;
pub mod intake;
mod planner;
mod search;

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use super::catalog::{self, TableStats};
use super::rules::same_table;
use super::suggest::{IndexSuggestion, Suggested};
use super::Error;
use crate::db::{self, Pools};
pub use intake::{Skipped, Statement};

/// The storage budget when none is given: 1 GiB of new indexes.
pub const DEFAULT_MAX_INDEX_BYTES: i64 = 1 << 30;
/// Time spent maintaining one index entry per written row (B-tree insertion), ms: the write
/// cost of an index over the period the statistics cover.
const WRITE_MS_PER_ROW: f64 = 0.005;
/// Rows written to the table since statistics were reset (`$1` its oid).
const WRITES_SQL: &str = "SELECT coalesce(n_tup_ins + n_tup_upd - n_tup_hot_upd + n_tup_del, 0)::float8 AS writes FROM pg_stat_user_tables WHERE relid = $1::int8::oid";
/// How long pg_stat_statements has counted, and how long the tables' counters have (since
/// this database's statistics were reset, else since the server started: counters kept over
/// a restart make that window too short, so writes weigh more, never less), in seconds.
const WINDOWS_SQL: &str = "SELECT extract(epoch FROM now() - i.stats_reset)::float8 AS statements, \
     extract(epoch FROM now() - coalesce(d.stats_reset, pg_postmaster_start_time()))::float8 AS tables \
     FROM pg_stat_statements_info i, pg_stat_database d WHERE d.datname = current_database()";

/// One statement a recommended index serves.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Served {
    pub sql: String,
    /// pg_stat_statements' id (recorded statements only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queryid: Option<i64>,
    /// Its planned cost without the new indexes, and with the whole chosen set.
    pub cost_before: f64,
    pub cost_after: f64,
}

/// An index the search found worth having but left out.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DeclinedIndex {
    pub table: String,
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    pub sql: String,
    /// `write_cost` (it would cost the table's writes more than it saves the reads) or
    /// `budget` (it does not fit in what is left of `max_index_bytes`).
    pub reason: &'static str,
    /// What it would save the workload, beside the chosen set (`cost_unit`).
    pub saves: f64,
    /// What it would cost the table's writes over the same period (`cost_unit`).
    pub write_cost: f64,
}

/// Declined indexes listed at most.
const DECLINED_SHOWN: usize = 10;

/// Advice for `statements` with HypoPG; `None` when HypoPG cannot be loaded.
pub async fn advise(pools: &Pools, config: &crate::db::PgConfig, statements: Vec<Statement>, recorded: bool, budget: i64) -> Result<Option<Suggested>, Error> {
    let started = Instant::now();
    let Some(mut planner) = planner::Planner::open(config).await? else { return Ok(None) };
    let answer = run(pools, &mut planner, statements, recorded, budget, started).await;
    planner.close().await;
    answer.map(Some)
}

async fn run(pools: &Pools, p: &mut planner::Planner, all: Vec<Statement>, recorded: bool, budget: i64, started: Instant) -> Result<Suggested, Error> {
    let mut skipped = Vec::new();
    let (mut statements, mut declared, mut base) = (Vec::new(), Vec::new(), Vec::new());
    for st in all {
        let types = if st.params > 0 { p.declare(&st).await? } else { Ok(Vec::new()) };
        let costed = match types {
            Ok(types) => p.cost(&st, &types).await?.map(|c| (types, c)),
            Err(reason) => Err(reason),
        };
        match costed {
            Ok((types, c)) => {
                statements.push(st);
                declared.push(types);
                base.push(c.cost);
            }
            Err(reason) => skipped.push(Skipped { sql: st.sql, reason }),
        }
    }
    let weights: Vec<f64> = statements
        .iter()
        .zip(&base)
        .map(|(st, cost)| match st.total_ms {
            Some(ms) if recorded && *cost > 0.0 => ms / cost,
            _ => 1.0,
        })
        .collect();
    let tables = tables(pools, &statements).await?;
    let mut cands = Vec::new();
    for (name, stats) in &tables {
        let distinct = candidates::distinct(pools, stats).await?;
        let shapes: Vec<&super::shape::Shape> = statements.iter().map(|s| &s.shape).filter(|s| s.tables.iter().any(|t| same_table(t, name))).collect();
        cands.extend(candidates::generate(name, stats, &distinct, &shapes));
    }
    // Reads weigh what they cost over pg_stat_statements' window; writes are counted over the
    // tables' window, which may be longer (a bulk load long before the statements were reset):
    // only the share of writes in the statements' window is charged, at the same rate.
    let share = if recorded { window_share(pools).await } else { 0.0 };
    let mut write_cost = Vec::new();
    for c in &cands {
        write_cost.push(if recorded { writes(pools, &tables[&c.table]).await? * share * WRITE_MS_PER_ROW } else { 0.0 });
    }
    let hypothetical: Vec<String> = cands.iter().map(|c| c.hypothetical(&tables[&c.table])).collect();
    let input = search::Input {
        statements: &statements,
        declared: &declared,
        weights: &weights,
        base: &base,
        candidates: &cands,
        hypothetical: &hypothetical,
        write_cost: &write_cost,
        budget,
    };
    let outcome = search::search(p, &input).await?;
    let mut suggestions = Vec::new();
    for &(c, bytes) in &outcome.chosen {
        let served: Vec<usize> = (0..statements.len()).filter(|&i| outcome.uses[i].contains(&c)).collect();
        if served.is_empty() {
            continue;
        }
        let serves: Vec<Served> = served
            .iter()
            .map(|&i| Served { sql: statements[i].sql.clone(), queryid: statements[i].queryid, cost_before: base[i], cost_after: outcome.after[i] })
            .collect();
        suggestions.push(suggestion(&cands[c], &tables[&cands[c].table], bytes, write_cost[c], serves));
    }
    suggestions.sort_by(|a, b| b.improvement.total_cmp(&a.improvement));
    let declined = outcome
        .declined
        .iter()
        .take(DECLINED_SHOWN)
        .map(|&(c, saves, why)| DeclinedIndex {
            table: tables[&cands[c].table].name.clone(),
            columns: cands[c].keys.clone(),
            include: cands[c].include.clone(),
            sql: cands[c].create_sql(&tables[&cands[c].table]),
            reason: match why {
                search::Declined::WriteCost => "write_cost",
                search::Declined::Budget => "budget",
            },
            saves,
            write_cost: write_cost[c],
        })
        .collect();
    let total = |costs: &[f64]| -> f64 { weights.iter().zip(costs).map(|(w, c)| w * c).sum() };
    let (before, after) = (total(&base), total(&outcome.after));
    let note = outcome.capped.then(|| format!("the search stopped after {} plans; the set is the best found so far", search::MAX_EXPLAINS));
    Ok(Suggested {
        index_bytes: Some(suggestions.iter().map(|s| s.estimated_bytes).sum()),
        suggestions,
        basis: "workload",
        note,
        skipped,
        declined,
        statements: Some(statements.len()),
        total_cost_before: Some(before),
        total_cost_after: Some(after),
        gain_percent: Some(if before > 0.0 { 100.0 * (before - after) / before } else { 0.0 }),
        cost_unit: Some(if recorded { "ms" } else { "planner_cost" }),
        max_index_bytes: Some(budget),
        analysis_ms: Some(started.elapsed().as_millis() as u64),
    })
}

/// Statistics of every table the statements read, by name.
async fn tables(pools: &Pools, statements: &[Statement]) -> Result<BTreeMap<String, TableStats>, Error> {
    let mut out: BTreeMap<String, TableStats> = BTreeMap::new();
    for t in statements.iter().flat_map(|s| &s.shape.tables) {
        if out.keys().any(|k| same_table(t, k)) {
            continue;
        }
        if let Some(stats) = catalog::table(pools, t).await? {
            out.insert(stats.name.clone(), stats);
        }
    }
    Ok(out)
}

/// The share of the tables' counting window that pg_stat_statements' covers (1 when either is
/// unknown: pg_stat_statements before 1.9 has no reset time).
async fn window_share(pools: &Pools) -> f64 {
    let Ok(rows) = pools.primary().query(WINDOWS_SQL, &[]).await else { return 1.0 };
    let get = |name| rows.first().and_then(|r| db::get::<Option<f64>>(r, name).ok().flatten());
    match (get("statements"), get("tables")) {
        (Some(statements), Some(tables)) if tables > 0.0 => (statements / tables).clamp(0.0, 1.0),
        _ => 1.0,
    }
}

async fn writes(pools: &Pools, stats: &TableStats) -> Result<f64, Error> {
    let rows = pools.primary().query(WRITES_SQL, &[&stats.oid]).await?;
    Ok(rows.first().map(|r| db::get::<f64>(r, "writes")).transpose()?.unwrap_or(0.0))
}

fn suggestion(c: &candidates::Candidate, stats: &TableStats, bytes: i64, write_cost: f64, serves: Vec<Served>) -> IndexSuggestion {
    let before: f64 = serves.iter().map(|s| s.cost_before).sum();
    let after: f64 = serves.iter().map(|s| s.cost_after).sum();
    let improvement = if before > 0.0 { 1.0 - after / before } else { 0.0 };
    IndexSuggestion {
        table: stats.name.clone(),
        columns: c.keys.clone(),
        include: c.include.clone(),
        sql: c.create_sql(stats),
        validated_with: "hypopg",
        confidence: "high",
        cost_before: Some(before),
        cost_after: Some(after),
        improvement,
        estimated_bytes: bytes,
        queries: serves.iter().map(|s| s.sql.clone()).collect(),
        column: c.keys.join(", "),
        index_type: "btree",
        reason: format!(
            "chosen for the workload's set: the {} statement(s) it serves drop from a planned cost of {before:.0} to {after:.0} ({:.0} % cheaper) with the whole set in place (HypoPG)",
            serves.len(),
            improvement * 100.0
        ),
        serves,
        write_cost,
    }
}
