//! Choosing a set of indexes, not a list: the greedy search of Microsoft's Database Tuning
//! Advisor (and Dexter, Postgres MCP Pro), costed with HypoPG over the whole workload.
//!
//! Each round adds the candidate with the best net gain per byte — the workload's weighted cost
//! saved with it beside those already chosen, minus its write cost — among those that fit in
//! what is left of the storage budget; it stops when no candidate saves at least
//! [`MIN_GAIN_SHARE`] of the workload's cost. Then every chosen index is taken out once (the
//! smallest first): when the others serve the workload almost as well without it (its loss is
//! under the same bar), it is redundant and goes (`orders(region)` once `orders(region, total)`
//! is chosen). Only the statements reading a candidate's table are re-planned, and the number
//! of plans is bounded ([`MAX_EXPLAINS`]) so the analysis stays in seconds.

use super::super::Error;
use super::candidates::Candidate;
use super::intake::Statement;
use super::planner::{Hypo, Planner};

/// The least a chosen index must save, as a share of the workload's cost.
pub const MIN_GAIN_SHARE: f64 = 0.01;
/// The most plans one analysis asks for (a 20-statement workload needs a few hundred).
pub const MAX_EXPLAINS: usize = 4_000;

/// What the search works on; `statements[i]` has weight `weights[i]` and cost `base[i]`
/// without any new index.
pub struct Input<'a> {
    pub statements: &'a [Statement],
    pub declared: &'a [Vec<String>],
    pub weights: &'a [f64],
    pub base: &'a [f64],
    pub candidates: &'a [Candidate],
    /// `CREATE INDEX ON ...` of each candidate (for HypoPG).
    pub hypothetical: &'a [String],
    /// Each candidate's write cost, in the weighted cost's unit.
    pub write_cost: &'a [f64],
    pub budget: i64,
}

/// The chosen set.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Chosen candidates with their estimated size.
    pub chosen: Vec<(usize, i64)>,
    /// Each statement's cost with the chosen set.
    pub after: Vec<f64>,
    /// For each statement, the chosen candidates its plan uses.
    pub uses: Vec<Vec<usize>>,
    /// The plan budget ran out before the search finished.
    pub capped: bool,
    /// Candidates that would have saved enough but were left out, with what they would have
    /// saved: their write cost outweighs it, or they do not fit in what is left of the budget.
    pub declined: Vec<(usize, f64, Declined)>,
}

/// Why a useful candidate is not in the set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declined {
    WriteCost,
    Budget,
}

/// Whether statement `st` reads candidate `c`'s table.
fn reads(st: &Statement, c: &Candidate) -> bool {
    st.shape.tables.iter().any(|t| super::super::rules::same_table(t, &c.table) || t == &c.table)
}

/// The costs of the statements `which` with the hypothetical indexes that exist now (a
/// statement that cannot be planned keeps `current`).
async fn costs(p: &mut Planner, input: &Input<'_>, which: &[usize], current: &[f64]) -> Result<Vec<(usize, f64, Vec<String>)>, Error> {
    let mut out = Vec::with_capacity(which.len());
    for &i in which {
        match p.cost(&input.statements[i], &input.declared[i]).await? {
            Ok(c) => out.push((i, c.cost, c.indexes)),
            Err(_) => out.push((i, current[i], Vec::new())),
        }
    }
    Ok(out)
}

fn weighted_change(input: &Input<'_>, current: &[f64], new: &[(usize, f64, Vec<String>)]) -> f64 {
    new.iter().map(|(i, cost, _)| input.weights[*i] * (current[*i] - cost)).sum()
}

/// The greedy search, then the removal of redundant indexes.
pub async fn search(p: &mut Planner, input: &Input<'_>) -> Result<Outcome, Error> {
    let touches: Vec<Vec<usize>> =
        input.candidates.iter().map(|c| (0..input.statements.len()).filter(|&i| reads(&input.statements[i], c)).collect()).collect();
    let total: f64 = input.weights.iter().zip(input.base).map(|(w, c)| w * c).sum();
    let bar = MIN_GAIN_SHARE * total;
    let mut current = input.base.to_vec();
    let mut live: Vec<(usize, Hypo)> = Vec::new();
    let mut open: Vec<usize> = (0..input.candidates.len()).collect();
    let mut capped = false;
    let mut first = true;
    let mut declined = Vec::new();
    loop {
        let used: i64 = live.iter().map(|(_, h)| h.bytes).sum();
        let mut best: Option<(usize, f64)> = None;
        let mut useless = Vec::new();
        declined.clear();
        for &c in &open {
            if p.explains + touches[c].len() > MAX_EXPLAINS {
                capped = true;
                break;
            }
            let Some(hypo) = p.hypo(&input.hypothetical[c]).await? else {
                useless.push(c);
                continue;
            };
            let new = costs(p, input, &touches[c], &current).await?;
            p.drop_hypo(&hypo).await?;
            let gain = weighted_change(input, &current, &new);
            // Useless alone now is useless later (a later index only makes it less needed).
            if first && gain <= 0.0 {
                useless.push(c);
            }
            let net = gain - input.write_cost[c];
            let score = net / hypo.bytes.max(1) as f64;
            let fits = used + hypo.bytes <= input.budget;
            if fits && net >= bar && net > 0.0 && best.is_none_or(|(_, s)| score > s) {
                best = Some((c, score));
            } else if gain >= bar {
                declined.push((c, gain, if fits { Declined::WriteCost } else { Declined::Budget }));
            }
        }
        first = false;
        open.retain(|c| !useless.contains(c));
        let Some((c, _)) = best else { break };
        open.retain(|&o| o != c);
        let Some(hypo) = p.hypo(&input.hypothetical[c]).await? else { continue };
        for (i, cost, _) in costs(p, input, &touches[c], &current).await? {
            current[i] = cost;
        }
        live.push((c, hypo));
    }
    // Redundant indexes: the smallest first, each judged beside all the others still chosen.
    live.sort_by_key(|(_, h)| h.bytes);
    let mut k = 0;
    while k < live.len() && live.len() > 1 {
        let c = live[k].0;
        p.drop_hypo(&live[k].1).await?;
        let without = costs(p, input, &touches[c], &current).await?;
        let loss = -weighted_change(input, &current, &without);
        if loss - input.write_cost[c] < bar {
            for (i, cost, _) in without {
                current[i] = cost;
            }
            live.remove(k);
            continue;
        }
        match p.hypo(&input.hypothetical[c]).await? {
            Some(hypo) => live[k].1 = hypo,
            None => {
                live.remove(k);
                continue;
            }
        }
        k += 1;
    }
    // What each statement's final plan uses.
    let everyone: Vec<usize> = (0..input.statements.len()).filter(|&i| live.iter().any(|(c, _)| touches[*c].contains(&i))).collect();
    let mut uses = vec![Vec::new(); input.statements.len()];
    for (i, cost, indexes) in costs(p, input, &everyone, &current).await? {
        current[i] = cost;
        uses[i] = live.iter().filter(|(_, h)| indexes.contains(&h.name)).map(|(c, _)| *c).collect();
    }
    for (_, hypo) in &live {
        p.drop_hypo(hypo).await?;
    }
    // What the last round found worth having but could not take, the most useful first (a
    // candidate the chosen set made redundant is not among them: its gain fell with it).
    declined.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(Outcome { chosen: live.iter().map(|(c, h)| (*c, h.bytes)).collect(), after: current, uses, capped, declined })
}
