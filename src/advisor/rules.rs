//! The rules: pure functions from a plan, the tables' statistics and the query's shape to
//! suggestions, each with the rule's name, the node, a severity, the reason in plain words with
//! the numbers, and the fix as SQL where there is one.

use std::collections::HashMap;

use serde::Serialize;

use super::catalog::{TableStats, unquote};
use super::plan::{Explained, Node};
use super::shape::{Shape, Use};

/// A table smaller than this is read faster whole than through an index.
pub const LARGE_TABLE_ROWS: f64 = 10_000.0;
/// A scan returning at most this share of the table is selective enough for an index.
pub const SELECTIVE_SHARE: f64 = 0.10;
/// Estimated and actual rows this many times apart mean the planner is guessing.
pub const MISESTIMATE_FACTOR: f64 = 10.0;
/// Inner loops of a nested loop past which the join is suspect.
pub const MANY_LOOPS: f64 = 1_000.0;
/// Average row width (bytes) past which `SELECT *` is called wide.
pub const WIDE_ROW_BYTES: f64 = 200.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Suggestion {
    pub rule: &'static str,
    /// `0.1 Seq Scan on orders`: the node's path in the tree and its label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub severity: Severity,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Suggestion {
    /// The finding as one line of text (seed 000's `suggestions` are strings): the reason,
    /// then the fix on the same line.
    pub fn sentence(&self) -> String {
        match &self.fix {
            Some(fix) => format!("{}. Fix: {}", self.reason, fix.split_whitespace().collect::<Vec<_>>().join(" ")),
            None => self.reason.clone(),
        }
    }
}

/// What the rules look at. `tables` is keyed by table name (as plans print `Relation Name`).
pub struct Context<'a> {
    pub plan: &'a Explained,
    pub tables: &'a HashMap<String, TableStats>,
    pub shape: &'a Shape,
}

/// Every rule, most severe first.
pub fn run_all(ctx: &Context<'_>) -> Vec<Suggestion> {
    let rules: [fn(&Context<'_>) -> Vec<Suggestion>; 8] = [
        seq_scan_selective,
        misestimate,
        spill_to_disk,
        nested_loop_many_loops,
        filter_discards_most,
        function_on_column,
        select_star_wide,
        missing_fk_index,
    ];
    let mut out: Vec<Suggestion> = rules.iter().flat_map(|rule| rule(ctx)).collect();
    out.sort_by_key(|s| std::cmp::Reverse(s.severity));
    out
}

fn at(path: &str, node: &Node) -> Option<String> {
    Some(format!("{path} {}", node.label()))
}

fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 && c != '-' {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Columns the query filters `table` on: equality first, then one range column (max 2).
pub fn index_columns(shape: &Shape, table: &str, uses: &[Use]) -> Vec<String> {
    let of = |u: Use| -> Vec<String> {
        shape
            .columns
            .iter()
            .filter(|c| c.used == u && c.table.as_deref().is_some_and(|t| same_table(t, table)))
            .map(|c| c.column.clone())
            .collect()
    };
    let mut cols: Vec<String> = Vec::new();
    for u in uses {
        for c in of(*u) {
            if !cols.contains(&c) && cols.len() < 2 {
                cols.push(c);
            }
        }
        if *u == Use::Range && cols.len() == 2 {
            break;
        }
    }
    cols
}

/// `public.orders` written in SQL and `orders` in a plan name the same table.
pub fn same_table(written: &str, name: &str) -> bool {
    let last = written.rsplit('.').next().unwrap_or(written);
    unquote(last) == unquote(name)
}

fn create_index(t: &TableStats, cols: &[String]) -> String {
    let list: Vec<String> = cols.iter().map(|c| crate::db::sql::ident(c)).collect();
    format!("CREATE INDEX CONCURRENTLY ON {} ({});", t.qualified(), list.join(", "))
}

/// Sequential scan of a large table keeping few of its rows.
pub fn seq_scan_selective(ctx: &Context<'_>) -> Vec<Suggestion> {
    let mut out = Vec::new();
    for (path, node) in ctx.plan.root.walk() {
        let (true, Some(rel), Some(filter)) = (node.node_type == "Seq Scan", &node.relation, &node.filter) else { continue };
        let Some(t) = ctx.tables.get(rel) else { continue };
        // A parallel scan's loops share the table; other loops each scan all of it.
        let loops = if node.parallel_aware { 1.0 } else { node.actual_loops.unwrap_or(1.0).max(1.0) };
        let kept = node.rows_out() / loops;
        if t.rows < LARGE_TABLE_ROWS || kept > t.rows * SELECTIVE_SHARE {
            continue;
        }
        let share = kept / t.rows.max(1.0);
        let cols = index_columns(ctx.shape, rel, &[Use::Equality, Use::Range]);
        // Filtered only through a function or cast (`extract(year FROM at) = 2024`): an index
        // on the column would not be used; `function_on_filtered_column` says what would.
        let wrapped = ctx.shape.wrapped.iter().any(|w| w.table.as_deref().is_some_and(|wt| same_table(wt, rel)));
        if cols.is_empty() && wrapped {
            continue;
        }
        out.push(Suggestion {
            rule: "seq_scan_large_table",
            node: at(&path, node),
            severity: if t.rows >= 1_000_000.0 || share <= 0.01 { Severity::High } else { Severity::Medium },
            reason: format!(
                "reads all ~{} rows of {} to keep {} ({:.2} %) with filter {filter}; an index on the filtered column(s) reads only those",
                thousands(t.rows),
                t.name,
                thousands(kept),
                share * 100.0
            ),
            fix: (!cols.is_empty()).then(|| create_index(t, &cols)),
        });
    }
    out
}

/// Row estimates far from the actual rows (needs ANALYZE): stale or missing statistics.
pub fn misestimate(ctx: &Context<'_>) -> Vec<Suggestion> {
    let mut out = Vec::new();
    for (path, node) in ctx.plan.root.walk() {
        let (Some(actual), Some(rel)) = (node.actual_rows, &node.relation) else { continue };
        let estimated = node.plan_rows;
        let (hi, lo) = (actual.max(estimated), actual.min(estimated).max(1.0));
        let factor = hi / lo;
        if factor < MISESTIMATE_FACTOR || hi < 100.0 {
            continue;
        }
        let severity = if factor >= 1000.0 { Severity::High } else if factor >= 100.0 { Severity::Medium } else { Severity::Low };
        let t = ctx.tables.get(rel);
        let staleness = t
            .map(|t| {
                let changed = t.mod_since_analyze.map(|m| format!("; {} rows changed since the last ANALYZE", thousands(m as f64))).unwrap_or_default();
                let when = t.last_analyze.as_deref().map(|w| format!(" ({w})")).unwrap_or_else(|| " (never analyzed)".into());
                format!("{changed}{when}")
            })
            .unwrap_or_default();
        out.push(Suggestion {
            rule: "row_misestimate",
            node: at(&path, node),
            severity,
            reason: format!(
                "the planner expected {} rows per loop and got {} ({:.0}× off){staleness}: plans built on wrong estimates pick wrong joins and scans",
                thousands(estimated),
                thousands(actual),
                factor
            ),
            fix: t.map(|t| format!("ANALYZE {};", t.qualified())),
        });
    }
    out
}

/// Sorts and hashes that did not fit in `work_mem` and went to disk.
pub fn spill_to_disk(ctx: &Context<'_>) -> Vec<Suggestion> {
    let mut out = Vec::new();
    for (path, node) in ctx.plan.root.walk() {
        let needed_kb = if node.sort_space_type.as_deref() == Some("Disk") {
            node.sort_space_used.unwrap_or(0.0)
        } else if node.hash_batches.unwrap_or(1.0) > 1.0 || node.original_hash_batches.unwrap_or(1.0) > 1.0 {
            node.peak_memory_kb.unwrap_or(0.0) * node.hash_batches.unwrap_or(1.0).max(node.original_hash_batches.unwrap_or(1.0))
        } else {
            continue;
        };
        let mb = ((needed_kb * 2.0 / 1024.0).ceil() as u64).max(8).next_power_of_two();
        let what = match node.node_type.as_str() {
            "Sort" | "Incremental Sort" => format!("the sort ({}) spilled {} kB to disk", node.sort_method.as_deref().unwrap_or("external"), thousands(needed_kb)),
            _ => format!("the hash table was split into {} batches (about {} kB needed)", node.hash_batches.unwrap_or(1.0), thousands(needed_kb)),
        };
        out.push(Suggestion {
            rule: "spill_to_disk",
            node: at(&path, node),
            severity: if needed_kb > 64.0 * 1024.0 { Severity::High } else { Severity::Medium },
            reason: format!("{what}; more work_mem keeps it in memory (per operation, per connection: raise it for this query or role, not globally)"),
            fix: Some(format!("SET LOCAL work_mem = '{mb}MB';")),
        });
    }
    out
}

/// A nested loop running its inner side thousands of times.
pub fn nested_loop_many_loops(ctx: &Context<'_>) -> Vec<Suggestion> {
    let mut out = Vec::new();
    for (path, node) in ctx.plan.root.walk() {
        if node.node_type != "Nested Loop" || node.children.len() < 2 {
            continue;
        }
        let inner = &node.children[1];
        let loops = inner.actual_loops.unwrap_or(node.children[0].plan_rows);
        if loops < MANY_LOOPS {
            continue;
        }
        let inner_scan = inner.walk().into_iter().map(|(_, n)| n).find(|n| n.is_scan()).cloned();
        let seq = inner_scan.as_ref().is_some_and(|n| n.node_type == "Seq Scan");
        if !seq && loops < 100.0 * MANY_LOOPS {
            continue;
        }
        let fix = inner_scan.as_ref().and_then(|scan| {
            let rel = scan.relation.as_deref()?;
            let t = ctx.tables.get(rel)?;
            let cols = index_columns(ctx.shape, rel, &[Use::Join]);
            (seq && !cols.is_empty() && t.index_leading_with(&cols.iter().map(String::as_str).collect::<Vec<_>>()).is_none())
                .then(|| create_index(t, &cols[..1]))
        });
        out.push(Suggestion {
            rule: "nested_loop_many_loops",
            node: at(&path, node),
            severity: if seq { Severity::High } else { Severity::Medium },
            reason: format!(
                "the inner side ({}) runs {} times{}",
                inner.label(),
                thousands(loops),
                if seq { ", each time scanning the whole table: index the join column" } else { "; a hash join may be cheaper, check the outer row estimate" }
            ),
            fix,
        });
    }
    out
}

/// An index scan whose filter throws away most of what the index found.
pub fn filter_discards_most(ctx: &Context<'_>) -> Vec<Suggestion> {
    let mut out = Vec::new();
    for (path, node) in ctx.plan.root.walk() {
        if !matches!(node.node_type.as_str(), "Index Scan" | "Index Only Scan" | "Bitmap Heap Scan") {
            continue;
        }
        let (Some(removed), Some(rel)) = (node.rows_removed_by_filter, &node.relation) else { continue };
        let kept = node.actual_rows.unwrap_or(node.plan_rows);
        if removed < 1000.0 || removed < 9.0 * kept {
            continue;
        }
        let share = removed / (removed + kept).max(1.0);
        let fix = ctx.tables.get(rel).and_then(|t| {
            let cols = index_columns(ctx.shape, rel, &[Use::Equality, Use::Range]);
            (cols.len() >= 2).then(|| create_index(t, &cols))
        });
        out.push(Suggestion {
            rule: "filter_discards_most_rows",
            node: at(&path, node),
            severity: Severity::Medium,
            reason: format!(
                "the filter {} discards {} of {} rows the index returned ({:.0} %); an index covering the filter columns too reads only what is kept",
                node.filter.as_deref().unwrap_or("?"),
                thousands(removed),
                thousands(removed + kept),
                share * 100.0
            ),
            fix,
        });
    }
    out
}

/// `extract(year FROM created_at) = 2024`, `date_trunc('month', at) = ...`, `ts::date = ...`,
/// `lower(email) = $1`: a function or cast over a filtered column, which no index on the bare
/// column can serve (whether there is one or not). The fix is the predicate rewritten as a
/// range on the bare column when the constant allows it (seed 003's example), else an index on
/// the expression; time functions over `timestamptz` are not immutable, so those only get the
/// rewrite.
pub fn function_on_column(ctx: &Context<'_>) -> Vec<Suggestion> {
    let mut out = Vec::new();
    for w in &ctx.shape.wrapped {
        let Some(t) = ctx.tables.values().find(|t| w.table.as_deref().is_some_and(|wt| same_table(wt, &t.name))) else { continue };
        let column = crate::db::sql::ident(&w.column);
        let time = matches!(w.wrapper.as_str(), "extract" | "date_part" | "date_trunc" | "::date" | "date");
        let hidden = if t.indexed(&w.column) {
            format!("hides {}.{} from its index", t.name, w.column)
        } else {
            format!("cannot use an index on {}.{} (nor could one on the bare column)", t.name, w.column)
        };
        let written = match (&w.field, w.wrapper.starts_with("::")) {
            (Some(field), _) => format!("{}({field}, {})", w.wrapper, w.column),
            (None, true) => format!("{}{}", w.column, w.wrapper),
            (None, false) => format!("{}({})", w.wrapper, w.column),
        };
        let (reason, fix) = if let Some(range) = range_rewrite(w, &column) {
            (format!("{written} {hidden}; the same rows as a range on the bare column can use a B-tree index on it"), Some(range))
        } else if time {
            (format!("{written} {hidden}; compare the bare column with a range instead (column >= start AND column < end)"), None)
        } else {
            let expression = match w.wrapper.strip_prefix("::") {
                Some(ty) => format!("(({column}::{}))", parsed_name(ty)),
                None => format!("({}({column}))", parsed_name(&w.wrapper)),
            };
            (
                format!("{written} {hidden}; an index on the expression serves it as written"),
                Some(format!("CREATE INDEX CONCURRENTLY ON {} {expression};", t.qualified())),
            )
        };
        let node = ctx.plan.root.walk().into_iter().find(|(_, n)| n.relation.as_deref() == Some(t.name.as_str())).and_then(|(p, n)| at(&p, n));
        out.push(Suggestion { rule: "function_on_filtered_column", node, severity: Severity::Medium, reason, fix });
    }
    out
}

/// A function or type name as the parser gave it: a plain lower-case word is written as is
/// (even a grammar keyword such as `coalesce`, which must not be quoted), anything else quoted.
fn parsed_name(name: &str) -> String {
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { name.to_owned() } else { crate::db::sql::ident(name) }
}

/// Units `date_trunc` takes, which are also `interval` units.
const TRUNC_UNITS: &[&str] = &["microseconds", "milliseconds", "second", "minute", "hour", "day", "week", "month", "quarter", "year", "decade", "century", "millennium"];

/// The predicate as a half-open range on the bare column, when the constant allows it.
fn range_rewrite(w: &super::shape::WrappedColumn, column: &str) -> Option<String> {
    use crate::db::sql::literal;
    let value = w.value.as_deref().filter(|_| w.op == "=")?;
    match (w.wrapper.as_str(), w.field.as_deref()) {
        ("extract" | "date_part", Some("year")) => {
            let year: i32 = value.trim().parse().ok().filter(|y| (1..=9998).contains(y))?;
            Some(format!("WHERE {column} >= '{year:04}-01-01' AND {column} < '{:04}-01-01'", year + 1))
        }
        ("date_trunc", Some(unit)) if TRUNC_UNITS.contains(&unit) => {
            let at = literal(value);
            Some(format!("WHERE {column} >= {at} AND {column} < {at}::timestamp + interval '1 {unit}'"))
        }
        ("::date" | "date", None) => {
            let at = literal(value);
            Some(format!("WHERE {column} >= {at} AND {column} < {at}::date + 1"))
        }
        _ => None,
    }
}

/// `SELECT *` returning wide rows.
pub fn select_star_wide(ctx: &Context<'_>) -> Vec<Suggestion> {
    let root = &ctx.plan.root;
    let widest = ctx.tables.values().map(|t| t.columns.len()).max().unwrap_or(0);
    if !ctx.shape.select_star || root.plan_width < WIDE_ROW_BYTES || widest < 6 {
        return Vec::new();
    }
    vec![Suggestion {
        rule: "select_star_wide_rows",
        node: at("0", root),
        severity: Severity::Low,
        reason: format!(
            "SELECT * returns about {:.0} bytes per row ({} rows) from tables of up to {widest} columns; naming only the columns used moves less data and allows index-only scans",
            root.plan_width,
            thousands(root.rows_out())
        ),
        fix: None,
    }]
}

/// A foreign key the query joins on, with no index on the referencing columns.
pub fn missing_fk_index(ctx: &Context<'_>) -> Vec<Suggestion> {
    let mut out = Vec::new();
    for t in ctx.tables.values() {
        for fk in &t.foreign_keys {
            let referenced = fk.references.rsplit('.').next().unwrap_or(&fk.references);
            let joined_with_parent = ctx.tables.values().any(|p| unquote(&p.name) == unquote(referenced));
            let joined_on = ctx.shape.columns.iter().any(|c| {
                c.used == Use::Join && c.table.as_deref().is_some_and(|ct| same_table(ct, &t.name)) && fk.columns.first() == Some(&c.column)
            });
            let cols: Vec<&str> = fk.columns.iter().map(String::as_str).collect();
            if !joined_with_parent || !joined_on || t.index_leading_with(&cols).is_some() {
                continue;
            }
            let node = ctx.plan.root.walk().into_iter().find(|(_, n)| n.relation.as_deref() == Some(t.name.as_str())).and_then(|(p, n)| at(&p, n));
            out.push(Suggestion {
                rule: "missing_foreign_key_index",
                node,
                severity: if t.rows >= LARGE_TABLE_ROWS { Severity::Medium } else { Severity::Low },
                reason: format!(
                    "{}.{} references {} (foreign key {}) and the query joins on it, but no index starts with it; joins and deletes on {} scan {}",
                    t.name,
                    fk.columns.join(", "),
                    fk.references,
                    fk.name,
                    fk.references,
                    t.name
                ),
                fix: Some(create_index(t, &fk.columns)),
            });
        }
    }
    out
}
