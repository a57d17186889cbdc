//! Index candidates from what the workload's statements ask of each table: every column
//! filtered, joined, sorted or grouped on alone; equality columns combined, the most selective
//! first (by `pg_stats.n_distinct`), then a range or sort column after them (equality before
//! range: a B-tree can only seek on the columns before the first range); and an expression
//! index for a function compared with a value (`lower(email) = $1`). Never one an existing
//! valid index already leads with.

use std::collections::{BTreeMap, HashMap};

use super::super::catalog::{TableStats, unquote};
use super::super::rules::same_table;
use super::super::shape::{Shape, Use};
use super::super::Error;
use crate::db::{self, Pools, sql};

/// Functions whose result an expression index can store (one column argument).
const INDEXABLE_FUNCTIONS: &[&str] = &["lower", "upper", "btrim", "date", "abs"];
/// Candidates kept per table, the most specific first.
const PER_TABLE: usize = 16;
/// Most columns a covering candidate includes.
const MAX_INCLUDE: usize = 3;

/// One index that may be proposed.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The table's name in the `tables` map.
    pub table: String,
    /// Key columns, or expressions as written (`lower(email)`).
    pub keys: Vec<String>,
    /// The same keys as SQL (quoted).
    key_sql: Vec<String>,
    /// Columns stored beside the keys (`INCLUDE`), so that a statement reading only them and
    /// the keys is answered by an index-only scan.
    pub include: Vec<String>,
}

impl Candidate {
    /// `CREATE INDEX ON schema.table (keys)` (for HypoPG).
    pub fn hypothetical(&self, stats: &TableStats) -> String {
        format!("CREATE INDEX ON {} ({}){}", stats.qualified(), self.key_sql.join(", "), self.include_sql())
    }

    /// The statement to run.
    pub fn create_sql(&self, stats: &TableStats) -> String {
        format!("CREATE INDEX CONCURRENTLY ON {} ({}){};", stats.qualified(), self.key_sql.join(", "), self.include_sql())
    }

    fn include_sql(&self) -> String {
        match self.include.is_empty() {
            true => String::new(),
            false => format!(" INCLUDE ({})", self.include.iter().map(|c| sql::ident(c)).collect::<Vec<_>>().join(", ")),
        }
    }

    fn column(table: &str, cols: &[&String]) -> Candidate {
        Candidate {
            table: table.to_owned(),
            keys: cols.iter().map(|c| (*c).clone()).collect(),
            key_sql: cols.iter().map(|c| sql::ident(c)).collect(),
            include: Vec::new(),
        }
    }

    /// This candidate with the statement's other output columns included, when there are a
    /// few (an index-only scan pays when the heap fetches it saves are many; HypoPG's costing,
    /// which reads the table's visibility map, decides).
    fn covering(&self, outputs: &[String]) -> Option<Candidate> {
        let include: Vec<String> = outputs.iter().filter(|c| !self.keys.contains(c)).cloned().collect();
        (!include.is_empty() && include.len() <= MAX_INCLUDE && self.key_sql.iter().zip(&self.keys).all(|(s, k)| *s == sql::ident(k)))
            .then(|| Candidate { include, ..self.clone() })
    }
}

/// How many distinct values each column of `stats` has, from `pg_stats` (missing: unknown).
pub async fn distinct(pools: &Pools, stats: &TableStats) -> Result<HashMap<String, f64>, Error> {
    let rows = pools
        .primary()
        .query("SELECT attname::text AS column, n_distinct::float8 AS n FROM pg_stats WHERE schemaname = $1 AND tablename = $2", &[&stats.schema, &stats.name])
        .await?;
    let mut out = HashMap::new();
    for row in &rows {
        let n: f64 = db::get(row, "n")?;
        out.insert(db::get(row, "column")?, if n < 0.0 { -n * stats.rows } else { n });
    }
    Ok(out)
}

/// The candidates for `table` from the shapes of the statements that read it.
pub fn generate(table: &str, stats: &TableStats, distinct: &HashMap<String, f64>, shapes: &[&Shape]) -> Vec<Candidate> {
    let mut out: Vec<Candidate> = Vec::new();
    let mut push = |c: Candidate| {
        if !out.contains(&c) {
            out.push(c);
        }
    };
    let mut singles: BTreeMap<String, ()> = BTreeMap::new();
    for s in shapes {
        let of = |uses: &[Use]| -> Vec<String> {
            let mut v: Vec<String> = s
                .columns
                .iter()
                .filter(|c| uses.contains(&c.used) && c.table.as_deref().is_some_and(|t| same_table(t, &stats.name)) && stats.columns.contains(&c.column))
                .map(|c| c.column.clone())
                .collect();
            v.dedup();
            v
        };
        let mut eq = of(&[Use::Equality, Use::Join]);
        eq.sort_by(|a, b| distinct.get(b).unwrap_or(&0.0).total_cmp(distinct.get(a).unwrap_or(&0.0)));
        let after: Vec<String> = of(&[Use::Range, Use::Sort, Use::Group]).into_iter().filter(|c| !eq.contains(c)).collect();
        for c in eq.iter().chain(&after) {
            singles.insert(c.clone(), ());
        }
        // The statement's best-placed keys with its other outputs included (not for `*`).
        let outputs: Vec<String> = s
            .outputs
            .iter()
            .filter(|(t, c)| t.as_deref().is_some_and(|t| same_table(t, &stats.name)) && stats.columns.contains(c))
            .map(|(_, c)| c.clone())
            .collect();
        if !s.select_star && !outputs.is_empty() {
            let mut keys: Vec<&String> = eq.iter().take(2).collect();
            keys.extend(after.first());
            if !keys.is_empty()
                && let Some(covering) = Candidate::column(table, &keys).covering(&outputs)
            {
                push(covering);
            }
        }
        // The equality columns, most selective first, then each range or sort column.
        for n in 2..=eq.len().min(3) {
            push(Candidate::column(table, &eq.iter().take(n).collect::<Vec<_>>()));
        }
        for a in &after {
            if !eq.is_empty() {
                let mut cols: Vec<&String> = eq.iter().take(2).collect();
                cols.push(a);
                push(Candidate::column(table, &cols));
                push(Candidate::column(table, &[&eq[0], a]));
            }
        }
        for w in &s.wrapped {
            let ours = w.table.as_deref().is_some_and(|t| same_table(t, &stats.name)) && stats.columns.contains(&w.column);
            if ours && w.op == "=" && INDEXABLE_FUNCTIONS.contains(&w.wrapper.as_str()) {
                let key = format!("{}({})", w.wrapper, w.column);
                push(Candidate {
                    table: table.to_owned(),
                    keys: vec![key],
                    key_sql: vec![format!("{}({})", w.wrapper, sql::ident(&w.column))],
                    include: Vec::new(),
                });
            }
        }
    }
    for c in singles.keys() {
        push(Candidate::column(table, &[c]));
    }
    out.retain(|c| !covered(stats, &c.keys));
    out.truncate(PER_TABLE);
    out
}

/// Whether an existing valid, non-partial index starts with `keys` (the same index, or one
/// the candidate is a prefix of).
fn covered(stats: &TableStats, keys: &[String]) -> bool {
    let norm = |k: &str| unquote(k).replace([' ', '"'], "").to_lowercase();
    stats.indexes.iter().any(|i| {
        i.valid && i.predicate.is_none() && i.columns.len() >= keys.len() && i.columns.iter().zip(keys).all(|(a, b)| norm(a) == norm(b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::advisor::catalog::IndexInfo;
    use crate::advisor::shape::shape;

    fn orders(indexes: &[&[&str]]) -> TableStats {
        TableStats {
            name: "orders".into(),
            schema: "public".into(),
            rows: 100_000.0,
            columns: ["id", "region", "status", "total", "email"].map(String::from).to_vec(),
            indexes: indexes
                .iter()
                .map(|cols| IndexInfo { columns: cols.iter().map(|c| c.to_string()).collect(), valid: true, ..IndexInfo::default() })
                .collect(),
            ..TableStats::default()
        }
    }

    /// `keys` or `keys+included`.
    fn keys(found: &[Candidate]) -> Vec<String> {
        found.iter().map(|c| if c.include.is_empty() { c.keys.join(",") } else { format!("{}+{}", c.keys.join(","), c.include.join(",")) }).collect()
    }

    #[test]
    fn equality_columns_come_first_the_most_selective_leading() {
        let s = shape("SELECT id FROM orders WHERE status = $1 AND region = $2 AND total > $3 ORDER BY total");
        let distinct = HashMap::from([("region".to_owned(), 50.0), ("status".to_owned(), 5.0)]);
        let found = keys(&generate("orders", &orders(&[]), &distinct, &[&s]));
        assert_eq!(found, ["region,status,total+id", "region,status", "region,status,total", "region,total", "region", "status", "total"]);
    }

    #[test]
    fn a_statement_reading_few_columns_gets_a_covering_candidate_and_select_star_none() {
        let s = shape("SELECT sum(total), count(DISTINCT status) FROM orders WHERE region = $1");
        let found = generate("orders", &orders(&[]), &HashMap::new(), &[&s]);
        assert_eq!(keys(&found), ["region+status,total", "region"]);
        assert_eq!(found[0].create_sql(&orders(&[])), "CREATE INDEX CONCURRENTLY ON \"public\".\"orders\" (\"region\") INCLUDE (\"status\", \"total\");");
        let s = shape("SELECT * FROM orders WHERE region = $1");
        assert_eq!(keys(&generate("orders", &orders(&[]), &HashMap::new(), &[&s])), ["region"]);
        // Every output is a key: nothing to include.
        let s = shape("SELECT region FROM orders WHERE region = $1");
        assert_eq!(keys(&generate("orders", &orders(&[]), &HashMap::new(), &[&s])), ["region"]);
    }

    #[test]
    fn what_an_existing_index_leads_with_is_never_a_candidate_and_functions_get_expression_indexes() {
        let s = shape("SELECT id FROM orders WHERE region = $1 AND total > $2");
        let found = keys(&generate("orders", &orders(&[&["region", "total", "id"]]), &HashMap::new(), &[&s]));
        assert_eq!(found, ["total"]);
        let s = shape("SELECT id FROM orders WHERE lower(email) = $1");
        let found = generate("orders", &orders(&[]), &HashMap::new(), &[&s]);
        assert_eq!(keys(&found), ["lower(email)"]);
        assert_eq!(found[0].create_sql(&orders(&[])), "CREATE INDEX CONCURRENTLY ON \"public\".\"orders\" (lower(\"email\"));");
        let indexed = orders(&[&["lower(email)"]]);
        assert!(generate("orders", &indexed, &HashMap::new(), &[&s]).is_empty());
    }
}
