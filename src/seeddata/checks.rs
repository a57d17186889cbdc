//! What a CHECK constraint allows a column, read from PostgreSQL's own text of it
//! (`pg_get_constraintdef`) with PostgreSQL's own parser (pg_query): the conjuncts the
//! generator can honour — bounds (`x > 0`, `x BETWEEN 1 AND 5`, written back by PostgreSQL as
//! `>=`/`<=`), value lists (`x IN (...)`, `x = ANY (ARRAY[...])`), lengths (`length(x) <= 10`,
//! `x <> ''`). Anything else is left to the database, which names the constraint if a
//! generated row breaks it.

use std::collections::BTreeMap;

use pg_query::NodeEnum;
use pg_query::protobuf::{AExprKind, BoolExprType, Node, a_const};

/// A bound on a number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

/// What the checks read so far allow one column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    pub min: Option<Bound>,
    pub max: Option<Bound>,
    /// Only these values (as text).
    pub allowed: Option<Vec<String>>,
    pub min_len: Option<usize>,
    pub max_len: Option<usize>,
}

impl Rules {
    fn lower(&mut self, bound: Bound) {
        if self.min.is_none_or(|m| bound.value > m.value || (bound.value == m.value && !bound.inclusive)) {
            self.min = Some(bound);
        }
    }

    fn upper(&mut self, bound: Bound) {
        if self.max.is_none_or(|m| bound.value < m.value || (bound.value == m.value && !bound.inclusive)) {
            self.max = Some(bound);
        }
    }
}

/// The rules per column that `definition` (`CHECK ((price > (0)::numeric))`) implies; for a
/// domain's check the column is `value`. A definition that does not parse gives none.
pub fn read(definition: &str) -> BTreeMap<String, Rules> {
    let mut rules = BTreeMap::new();
    let body = definition.trim();
    let body = body.strip_suffix("NOT VALID").unwrap_or(body).trim();
    let Some(expr) = body.strip_prefix("CHECK") else { return rules };
    let Ok(parsed) = pg_query::parse(&format!("SELECT {expr}"), pg_query::ParserOptions::DEFAULT) else { return rules };
    let Some(NodeEnum::SelectStmt(select)) = parsed.protobuf.stmts.first().and_then(|s| s.stmt.as_ref()).and_then(|s| s.node.as_ref()) else {
        return rules;
    };
    let Some(NodeEnum::ResTarget(target)) = select.target_list.first().and_then(|t| t.node.as_ref()) else { return rules };
    if let Some(val) = target.val.as_deref() {
        conjuncts(val, &mut rules);
    }
    rules
}

fn conjuncts(node: &Node, rules: &mut BTreeMap<String, Rules>) {
    match node.node.as_ref() {
        Some(NodeEnum::BoolExpr(b)) if b.boolop == BoolExprType::AndExpr as i32 => {
            for arg in &b.args {
                conjuncts(arg, rules);
            }
        }
        Some(NodeEnum::AExpr(e)) => comparison(e, rules),
        _ => {}
    }
}

fn comparison(e: &pg_query::protobuf::AExpr, rules: &mut BTreeMap<String, Rules>) {
    let op = e.name.last().and_then(string).unwrap_or_default();
    let (Some(left), Some(right)) = (e.lexpr.as_deref(), e.rexpr.as_deref()) else { return };
    if e.kind == AExprKind::AexprOpAny as i32 && op == "=" {
        if let (Some(col), Some(NodeEnum::AArrayExpr(array))) = (column(left), right.node.as_ref())
            && let Some(values) = array.elements.iter().map(constant).collect::<Option<Vec<String>>>()
        {
            rules.entry(col).or_default().allowed = Some(values);
        }
        return;
    }
    if e.kind == AExprKind::AexprIn as i32 && op == "=" {
        if let (Some(col), Some(NodeEnum::List(list))) = (column(left), right.node.as_ref())
            && let Some(values) = list.items.iter().map(constant).collect::<Option<Vec<String>>>()
        {
            rules.entry(col).or_default().allowed = Some(values);
        }
        return;
    }
    if e.kind != AExprKind::AexprOp as i32 {
        return;
    }
    // `constant op column` is `column flipped(op) constant`.
    let (subject, value, op) = match (constant(right), constant(left)) {
        (Some(v), _) => (left, v, op),
        (None, Some(v)) => (right, v, flip(&op)),
        _ => return,
    };
    if let Some(col) = column(subject) {
        let r = rules.entry(col).or_default();
        match (op.as_str(), value.parse::<f64>()) {
            (">", Ok(v)) => r.lower(Bound { value: v, inclusive: false }),
            (">=", Ok(v)) => r.lower(Bound { value: v, inclusive: true }),
            ("<", Ok(v)) => r.upper(Bound { value: v, inclusive: false }),
            ("<=", Ok(v)) => r.upper(Bound { value: v, inclusive: true }),
            ("=", _) => r.allowed = Some(vec![value]),
            ("<>", _) if value.is_empty() => r.min_len = Some(r.min_len.unwrap_or(0).max(1)),
            _ => {}
        }
    } else if let Some(col) = length_of(subject) {
        let Ok(n) = value.parse::<f64>() else { return };
        let r = rules.entry(col).or_default();
        let n = n.max(0.0) as usize;
        match op.as_str() {
            ">" => r.min_len = Some(n + 1),
            ">=" => r.min_len = Some(n),
            "<" => r.max_len = Some(n.saturating_sub(1)),
            "<=" => r.max_len = Some(n),
            "=" => {
                r.min_len = Some(n);
                r.max_len = Some(n);
            }
            _ => {}
        }
    }
}

fn flip(op: &str) -> String {
    match op {
        ">" => "<",
        ">=" => "<=",
        "<" => ">",
        "<=" => ">=",
        other => other,
    }
    .to_owned()
}

fn string(node: &Node) -> Option<String> {
    match node.node.as_ref() {
        Some(NodeEnum::String(s)) => Some(s.sval.clone()),
        _ => None,
    }
}

/// A column reference, through casts (`(name)::text`); its last name part.
fn column(node: &Node) -> Option<String> {
    match node.node.as_ref() {
        Some(NodeEnum::ColumnRef(c)) => c.fields.last().and_then(string),
        Some(NodeEnum::TypeCast(c)) => column(c.arg.as_deref()?),
        _ => None,
    }
}

/// `length(col)`, `char_length(col)`, `character_length(col)`, `octet_length(col)`.
fn length_of(node: &Node) -> Option<String> {
    match node.node.as_ref() {
        Some(NodeEnum::FuncCall(f)) => {
            let name = f.funcname.last().and_then(string)?;
            if matches!(name.as_str(), "length" | "char_length" | "character_length" | "octet_length") && f.args.len() == 1 {
                column(&f.args[0])
            } else {
                None
            }
        }
        Some(NodeEnum::TypeCast(c)) => length_of(c.arg.as_deref()?),
        _ => None,
    }
}

/// A constant as text, through casts (`(0)::numeric`, `'G'::text`) and a unary minus.
fn constant(node: &Node) -> Option<String> {
    match node.node.as_ref() {
        Some(NodeEnum::AConst(c)) => match c.val.as_ref()? {
            a_const::Val::Ival(i) => Some(i.ival.to_string()),
            a_const::Val::Fval(f) => Some(f.fval.clone()),
            a_const::Val::Sval(s) => Some(s.sval.clone()),
            a_const::Val::Boolval(b) => Some(b.boolval.to_string()),
            a_const::Val::Bsval(_) => None,
        },
        Some(NodeEnum::TypeCast(c)) => constant(c.arg.as_deref()?),
        Some(NodeEnum::AExpr(e)) if e.lexpr.is_none() && e.name.last().and_then(string).as_deref() == Some("-") => {
            constant(e.rexpr.as_deref()?).map(|v| format!("-{v}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(def: &str, col: &str) -> Rules {
        read(def).remove(col).unwrap_or_default()
    }

    #[test]
    fn reads_what_postgresql_writes_back() {
        let inc = |v| Some(Bound { value: v, inclusive: true });
        let exc = |v| Some(Bound { value: v, inclusive: false });
        let cases: Vec<(&str, &str, Rules)> = vec![
            ("CHECK ((price > (0)::numeric))", "price", Rules { min: exc(0.0), ..Default::default() }),
            ("CHECK (((score >= 0) AND (score <= 100)))", "score", Rules { min: inc(0.0), max: inc(100.0), ..Default::default() }),
            ("CHECK (((VALUE >= 1901) AND (VALUE <= 2155)))", "value", Rules { min: inc(1901.0), max: inc(2155.0), ..Default::default() }),
            ("CHECK ((10 > qty))", "qty", Rules { max: exc(10.0), ..Default::default() }),
            ("CHECK ((t >= '-5'::integer))", "t", Rules { min: inc(-5.0), ..Default::default() }),
            (
                "CHECK ((status = ANY (ARRAY['active'::text, 'closed'::text])))",
                "status",
                Rules { allowed: Some(vec!["active".into(), "closed".into()]), ..Default::default() },
            ),
            ("CHECK ((length((code)::text) <= 8))", "code", Rules { max_len: Some(8), ..Default::default() }),
            ("CHECK ((name <> ''::text)) NOT VALID", "name", Rules { min_len: Some(1), ..Default::default() }),
            ("CHECK ((email ~~ '%@%'::text))", "email", Rules::default()),
            ("CHECK (((a > 0) OR (b > 0)))", "a", Rules::default()),
        ];
        for (def, col, want) in cases {
            assert_eq!(rules(def, col), want, "{def}");
        }
    }
}
