//! What a query asks of its tables, read from its parse tree (pg_query): the columns it
//! filters on (equality or range), joins on and sorts by, functions and casts wrapped around
//! filtered columns, and `SELECT *`. Index candidates and several rules start from here.

use std::collections::HashMap;

use serde_json::Value;

/// How a column is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Use {
    /// `col = const`, `col IN (...)`.
    Equality,
    /// `col < const`, `BETWEEN`, `LIKE 'x%'`.
    Range,
    /// `a.col = b.col`.
    Join,
    /// `ORDER BY col`.
    Sort,
    /// `GROUP BY col`.
    Group,
}

/// A column reference resolved to its table (when the query says which, or has one table).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ColumnUse {
    /// The table as written in FROM (`public.orders` or `orders`).
    pub table: Option<String>,
    pub column: String,
    pub used: Use,
}

/// A function or cast wrapped around a filtered column: `extract(year FROM created_at) = 2024`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedColumn {
    pub table: Option<String>,
    pub column: String,
    /// `extract`, `lower`, `::date` ...
    pub wrapper: String,
    /// The constant first argument of `extract`, `date_part`, `date_trunc` (`year`, `month`).
    pub field: Option<String>,
    /// The comparison operator (`=`, `<` ...).
    pub op: String,
    /// The constant on the other side, as written (`2024`, `2024-01-01`); `None` for a
    /// parameter or an expression.
    pub value: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    pub columns: Vec<ColumnUse>,
    pub wrapped: Vec<WrappedColumn>,
    pub select_star: bool,
    /// Tables in FROM, as written.
    pub tables: Vec<String>,
    /// Columns the select list reads (also inside expressions and aggregates), with their
    /// table: what an index must hold for an index-only scan.
    pub outputs: Vec<(Option<String>, String)>,
}

/// Reads the shape of `sql` (the first statement). An unparsable query has an empty shape.
pub fn shape(sql: &str) -> Shape {
    let Ok(parsed) = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT) else { return Shape::default() };
    let Ok(tree) = serde_json::to_value(&parsed.protobuf) else { return Shape::default() };
    let mut reader = Reader::default();
    reader.collect_relations(&tree);
    let mut out = Shape { tables: reader.tables.clone(), ..Shape::default() };
    reader.walk_statement(&tree, &mut out);
    out.columns.sort();
    out.columns.dedup();
    out.outputs.sort();
    out.outputs.dedup();
    out
}

#[derive(Default)]
struct Reader {
    /// alias (or bare name) → table as written.
    aliases: HashMap<String, String>,
    tables: Vec<String>,
}

/// The variant inside a `{"node": {"Kind": {...}}}` value.
fn node(v: &Value) -> Option<(&str, &Value)> {
    let inner = v.get("node").unwrap_or(v);
    let map = inner.as_object()?;
    if map.len() != 1 {
        return None;
    }
    map.iter().next().map(|(k, v)| (k.as_str(), v))
}

fn strings(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|items| items.iter().filter_map(|n| match node(n) {
            Some(("String", s)) => s.get("sval").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        }).collect())
        .unwrap_or_default()
}

impl Reader {
    fn collect_relations(&mut self, v: &Value) {
        match v {
            Value::Object(map) => {
                if let Some(range) = map.get("RangeVar") {
                    let rel = range.get("relname").and_then(Value::as_str).unwrap_or_default();
                    let schema = range.get("schemaname").and_then(Value::as_str).unwrap_or_default();
                    let table = if schema.is_empty() { rel.to_owned() } else { format!("{schema}.{rel}") };
                    let alias = range.get("alias").and_then(|a| a.get("aliasname")).and_then(Value::as_str);
                    self.aliases.insert(alias.unwrap_or(rel).to_owned(), table.clone());
                    if !self.tables.contains(&table) {
                        self.tables.push(table);
                    }
                }
                map.values().for_each(|child| self.collect_relations(child));
            }
            Value::Array(items) => items.iter().for_each(|child| self.collect_relations(child)),
            _ => {}
        }
    }

    /// `[qualifier.]column` of a ColumnRef, resolved to a table.
    fn column(&self, v: &Value) -> Option<(Option<String>, String)> {
        let (kind, col) = node(v)?;
        if kind != "ColumnRef" {
            return None;
        }
        let fields = strings(col.get("fields")?);
        match fields.as_slice() {
            [column] => Some((self.only_table(), column.clone())),
            [.., qualifier, column] => Some((self.aliases.get(qualifier).cloned().or(Some(qualifier.clone())), column.clone())),
            _ => None,
        }
    }

    fn only_table(&self) -> Option<String> {
        (self.tables.len() == 1).then(|| self.tables[0].clone())
    }

    fn walk_statement(&self, v: &Value, out: &mut Shape) {
        match v {
            Value::Object(map) => {
                for (key, child) in map {
                    match key.as_str() {
                        "where_clause" | "quals" | "having_clause" => self.walk_condition(child, out),
                        "sort_clause" => self.walk_sort(child, out),
                        "group_clause" => self.walk_group(child, out),
                        "target_list" => self.walk_targets(child, out),
                        _ => {}
                    }
                    self.walk_statement(child, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|child| self.walk_statement(child, out)),
            _ => {}
        }
    }

    /// Every column reference under `v` (a select list's expressions), as an output.
    fn collect_outputs(&self, v: &Value, out: &mut Shape) {
        if let Some(column) = self.column(v) {
            out.outputs.push(column);
            return;
        }
        match v {
            Value::Object(map) => map.values().for_each(|child| self.collect_outputs(child, out)),
            Value::Array(items) => items.iter().for_each(|child| self.collect_outputs(child, out)),
            _ => {}
        }
    }

    fn walk_targets(&self, list: &Value, out: &mut Shape) {
        self.collect_outputs(list, out);
        for target in list.as_array().into_iter().flatten() {
            if let Some(("ResTarget", t)) = node(target)
                && let Some(("ColumnRef", c)) = t.get("val").and_then(node) {
                    let star = c.get("fields").and_then(Value::as_array).is_some_and(|f| f.iter().any(|n| matches!(node(n), Some(("AStar", _)))));
                    out.select_star |= star;
                }
        }
    }

    fn walk_sort(&self, list: &Value, out: &mut Shape) {
        for item in list.as_array().into_iter().flatten() {
            if let Some(("SortBy", s)) = node(item)
                && let Some((table, column)) = s.get("node").and_then(|n| self.column(n)) {
                    out.columns.push(ColumnUse { table, column, used: Use::Sort });
                }
        }
    }

    fn walk_group(&self, list: &Value, out: &mut Shape) {
        for item in list.as_array().into_iter().flatten() {
            if let Some((table, column)) = self.column(item) {
                out.columns.push(ColumnUse { table, column, used: Use::Group });
            }
        }
    }

    fn walk_condition(&self, v: &Value, out: &mut Shape) {
        let Some((kind, body)) = node(v) else { return };
        match kind {
            "BoolExpr" => body.get("args").and_then(Value::as_array).into_iter().flatten().for_each(|a| self.walk_condition(a, out)),
            "AExpr" => self.comparison(body, out),
            "NullTest" => {
                if let Some((table, column)) = body.get("arg").and_then(|a| self.column(a)) {
                    out.columns.push(ColumnUse { table, column, used: Use::Equality });
                }
            }
            _ => {}
        }
    }

    fn comparison(&self, expr: &Value, out: &mut Shape) {
        let kind = expr.get("kind").and_then(Value::as_i64).unwrap_or(0);
        let op = strings(expr.get("name").unwrap_or(&Value::Null)).join("");
        let (left, right) = (expr.get("lexpr"), expr.get("rexpr"));
        let left_col = left.and_then(|l| self.column(l));
        let right_col = right.and_then(|r| self.column(r));
        // AEXPR_OP = 1, AEXPR_OP_ANY = 2, AEXPR_IN = 7, AEXPR_LIKE = 8, AEXPR_ILIKE = 9,
        // AEXPR_BETWEEN = 11.
        let used = match (kind, op.as_str()) {
            (1 | 2, "=") | (7, _) => Use::Equality,
            (1, "<" | ">" | "<=" | ">=") | (11, _) | (8, _) => Use::Range,
            _ => return,
        };
        match (left_col, right_col) {
            (Some((lt, lc)), Some((rt, rc))) if used == Use::Equality && lt != rt => {
                out.columns.push(ColumnUse { table: lt, column: lc, used: Use::Join });
                out.columns.push(ColumnUse { table: rt, column: rc, used: Use::Join });
            }
            (Some((table, column)), None) | (None, Some((table, column))) => out.columns.push(ColumnUse { table, column, used }),
            (None, None) => {
                for (side, other) in [(left, right), (right, left)] {
                    if let Some(mut w) = side.and_then(|s| self.wrapped(s)) {
                        w.op = op.clone();
                        w.value = other.and_then(constant);
                        out.wrapped.push(w);
                    }
                }
            }
            _ => {}
        }
    }

    /// `f(..., col, ...)` or `col::type` on one side of a comparison.
    fn wrapped(&self, v: &Value) -> Option<WrappedColumn> {
        let (kind, body) = node(v)?;
        match kind {
            "FuncCall" => {
                let name = strings(body.get("funcname")?).last()?.to_lowercase();
                let args = body.get("args")?.as_array()?;
                let column = args.iter().find_map(|a| self.column(a))?;
                let field = match name.as_str() {
                    "extract" | "date_part" | "date_trunc" => args.first().and_then(constant).map(|f| f.to_lowercase()),
                    _ => None,
                };
                Some(WrappedColumn { table: column.0, column: column.1, wrapper: name, field, op: String::new(), value: None })
            }
            "TypeCast" => {
                let column = self.column(body.get("arg")?)?;
                let ty = strings(body.get("type_name")?.get("names")?).last()?.clone();
                Some(WrappedColumn { table: column.0, column: column.1, wrapper: format!("::{ty}"), field: None, op: String::new(), value: None })
            }
            _ => None,
        }
    }
}

/// A constant as written: `2024`, `'2024-01-01'` (without quotes), `'2024-01-01'::date`.
fn constant(v: &Value) -> Option<String> {
    let (kind, body) = node(v)?;
    match kind {
        "AConst" => {
            let val = body.get("val")?;
            if let Some(i) = val.get("Ival") {
                // A zero is left out of the serialized message.
                return Some(i.get("ival").and_then(Value::as_i64).unwrap_or(0).to_string());
            }
            if let Some(f) = val.get("Fval") {
                return f.get("fval").and_then(Value::as_str).map(str::to_owned);
            }
            val.get("Sval").and_then(|s| s.get("sval")).and_then(Value::as_str).map(str::to_owned)
        }
        "TypeCast" => body.get("arg").and_then(constant),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(s: &Shape) -> Vec<(String, String, Use)> {
        s.columns.iter().map(|c| (c.table.clone().unwrap_or_default(), c.column.clone(), c.used)).collect()
    }

    #[test]
    fn filters_joins_sorts_and_wrappers_are_found() {
        let s = shape(
            "SELECT * FROM orders o JOIN users u ON u.id = o.user_id \
             WHERE o.total > 5 AND extract(year FROM o.created_at) = 2024 AND o.status IN ('a', 'b') \
             AND o.day BETWEEN 1 AND 2 AND lower(u.email) = $1 AND o.placed::date = '2024-01-01' AND o.note IS NULL \
             ORDER BY o.created_at",
        );
        assert!(s.select_star);
        assert_eq!(s.tables, ["orders", "users"]);
        let got = cols(&s);
        for want in [
            ("orders", "total", Use::Range),
            ("orders", "status", Use::Equality),
            ("orders", "day", Use::Range),
            ("orders", "note", Use::Equality),
            ("orders", "user_id", Use::Join),
            ("users", "id", Use::Join),
            ("orders", "created_at", Use::Sort),
        ] {
            assert!(got.contains(&(want.0.into(), want.1.into(), want.2)), "{want:?} missing from {got:?}");
        }
        let wrapped: Vec<(String, String)> = s.wrapped.iter().map(|w| (w.column.clone(), w.wrapper.clone())).collect();
        assert_eq!(wrapped, [("created_at".into(), "extract".into()), ("email".into(), "lower".into()), ("placed".into(), "::date".into())]);
        let got: Vec<(Option<&str>, &str, Option<&str>)> = s.wrapped.iter().map(|w| (w.field.as_deref(), w.op.as_str(), w.value.as_deref())).collect();
        assert_eq!(got, [(Some("year"), "=", Some("2024")), (None, "=", None), (None, "=", Some("2024-01-01"))]);
        let trunc = shape("SELECT 1 FROM t WHERE date_trunc('month', at) = '2024-03-01'");
        assert_eq!((trunc.wrapped[0].field.as_deref(), trunc.wrapped[0].value.as_deref()), (Some("month"), Some("2024-03-01")));
    }

    #[test]
    fn an_unqualified_column_of_a_single_table_query_is_resolved() {
        let grouped = shape("SELECT region, count(*) FROM orders GROUP BY region");
        assert_eq!(cols(&grouped), [("orders".into(), "region".into(), Use::Group)]);
        let any = shape("SELECT id FROM orders WHERE region = ANY($1)");
        assert_eq!(cols(&any), [("orders".into(), "region".into(), Use::Equality)]);
        let s = shape("SELECT id, name FROM public.items WHERE category = $1 ORDER BY price");
        assert!(!s.select_star);
        assert_eq!(
            cols(&s),
            [("public.items".into(), "category".into(), Use::Equality), ("public.items".into(), "price".into(), Use::Sort)]
        );
    }
}
