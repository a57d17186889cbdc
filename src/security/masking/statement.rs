//! What a statement's parse tree says about the data it reads, for result columns PostgreSQL
//! gives no origin (expressions, whole rows, aggregates): the relations it names, the column
//! names it refers to, and whether it takes whole rows (`t.*`, `*`, a bare `t`).
//!
//! Names only, as written (pg_query folds unquoted names to lower case): which schema a name
//! resolves to is not known here, so a name matches a masked relation of any schema. That
//! errs toward masking.

use std::collections::BTreeSet;

use serde_json::Value;

/// The names a statement refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// Relations in FROM, JOIN, DML targets (`relname` of each RangeVar).
    pub relations: BTreeSet<String>,
    /// Every name that can stand for a whole row: relations, aliases, CTE names.
    pub row_names: BTreeSet<String>,
    /// The last name of every column reference (`c.email` → `email`; a bare `c` → `c`).
    pub columns: BTreeSet<String>,
    /// A `*` or `t.*` somewhere.
    pub star: bool,
}

impl References {
    /// Walks a parse tree serialized by pg_query's protobuf types (the one `query::classify`
    /// makes; `None`: nothing is known, so whole rows are assumed).
    pub fn of(tree: Option<&Value>) -> References {
        let mut refs = References::default();
        match tree {
            Some(tree) => refs.walk(tree),
            None => refs.star = true,
        }
        refs
    }

    fn walk(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(name)) = map.get("relname") {
                    self.relations.insert(name.clone());
                    self.row_names.insert(name.clone());
                }
                for key in ["aliasname", "ctename"] {
                    if let Some(Value::String(name)) = map.get(key) {
                        self.row_names.insert(name.clone());
                    }
                }
                if let Some(column_ref) = map.get("ColumnRef") {
                    self.column_ref(column_ref);
                }
                map.values().for_each(|child| self.walk(child));
            }
            Value::Array(items) => items.iter().for_each(|item| self.walk(item)),
            _ => {}
        }
    }

    fn column_ref(&mut self, node: &Value) {
        let Some(fields) = node.get("fields").and_then(Value::as_array) else { return };
        match fields.last().and_then(|f| f.get("node")) {
            Some(last) if last.get("AStar").is_some() => self.star = true,
            Some(last) => {
                if let Some(name) = last.get("String").and_then(|s| s.get("sval")).and_then(Value::as_str) {
                    self.columns.insert(name.to_owned());
                }
            }
            None => {}
        }
    }

    /// Whether output without an origin may carry a masked value: the statement names a
    /// relation with masked columns and refers to one of its masked column names, or takes
    /// whole rows.
    pub fn may_read_masked(&self, relation_has_masked: impl Fn(&str) -> bool, column_is_masked: impl Fn(&str) -> bool) -> bool {
        self.relations.iter().any(|r| relation_has_masked(r))
            && (self.star || self.columns.iter().any(|c| column_is_masked(c) || self.row_names.contains(c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(sql: &str) -> References {
        let tree = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).unwrap().protobuf;
        References::of(serde_json::to_value(&tree).ok().as_ref())
    }

    #[test]
    fn expressions_over_masked_columns_are_found() {
        let masked_table = |r: &str| r == "customer";
        let masked_column = |c: &str| c == "email";
        for (sql, expected) in [
            ("SELECT lower(email) FROM customer", true),
            ("SELECT lower(c.email) AS e FROM public.customer c", true),
            ("SELECT row_to_json(c) FROM customer c", true),
            ("SELECT customer FROM customer", true),
            ("SELECT to_jsonb(c.*) FROM customer c", true),
            ("SELECT count(*) FROM customer", false),
            ("SELECT count(*), max(id) FROM customer", false),
            ("SELECT lower(name) FROM customer", false),
            ("SELECT lower(email) FROM staff", false),
            ("WITH x AS (SELECT email AS e FROM customer) SELECT upper(e) FROM x", true),
            ("SELECT (SELECT max(email) FROM customer) AS m", true),
            ("SELECT 1 AS one", false),
        ] {
            assert_eq!(refs(sql).may_read_masked(masked_table, masked_column), expected, "{sql}");
        }
    }

    #[test]
    fn no_tree_assumes_whole_rows() {
        assert!(References::of(None).star);
    }
}
