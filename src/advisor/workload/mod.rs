//! Index advice for a whole workload: its statements made plannable ([`intake`]), candidates
//! from what they filter, join, sort and group on ([`candidates`]), and a set chosen with
//! HypoPG under a storage budget ([`search`]) on a what-if planner session ([`planner`]);
//! [`apply`] builds a chosen set.
//!
//! Invariants: one statement that cannot be planned is listed in `skipped` with the server's
//! reason and never sinks the others; nothing is created in the database while advising (the
//! planner session's transaction is rolled back); a recorded statement weighs what it cost
//! (its total time), a given one weighs 1, and an index's write cost is counted over the same
//! window (the write statements recorded beside the reads); no candidate repeats or prefixes an
//! existing index.

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
/// The share of the table's updates that were HOT (`$1` its oid), from its counters.
const HOT_SQL: &str = "SELECT CASE WHEN n_tup_upd > 0 THEN n_tup_hot_upd::float8 / n_tup_upd ELSE 0 END AS hot FROM pg_stat_user_tables WHERE relid = $1::int8::oid";

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
    // Reads weigh what they cost over pg_stat_statements' window, and so do writes: the rows
    // its write statements changed in each table (not the tables' own counters, which may run
    // since long before: a bulk load before the statements were reset is not the workload).
    let written = if recorded { intake::recorded_writes(pools).await? } else { Vec::new() };
    let mut per_table: BTreeMap<&str, f64> = BTreeMap::new();
    for (name, stats) in &tables {
        let mut rows = 0.0;
        let mut updated = 0.0;
        for (_, kind, n) in written.iter().filter(|(t, _, _)| same_table(t, name)) {
            match kind {
                intake::WriteKind::Update => updated += n,
                intake::WriteKind::Insert | intake::WriteKind::Delete => rows += n,
            }
        }
        if updated > 0.0 {
            // A HOT update touches no index: only the table's share of others is charged.
            rows += updated * (1.0 - hot_share(pools, stats).await?);
        }
        per_table.insert(name.as_str(), rows);
    }
    let write_cost: Vec<f64> = cands.iter().map(|c| per_table.get(c.table.as_str()).copied().unwrap_or(0.0) * WRITE_MS_PER_ROW).collect();
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

async fn hot_share(pools: &Pools, stats: &TableStats) -> Result<f64, Error> {
    let rows = pools.primary().query(HOT_SQL, &[&stats.oid]).await?;
    Ok(rows.first().map(|r| db::get::<f64>(r, "hot")).transpose()?.unwrap_or(0.0).clamp(0.0, 1.0))
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
