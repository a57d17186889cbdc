//! What in a statement's parse tree decides whether its result may be cached: the functions it
//! calls (checked against their volatility in `pg_proc` later) and constructs whose result
//! changes by itself (`CURRENT_TIMESTAMP`, `TABLESAMPLE`, `FOR UPDATE`).
//!
//! The walk goes over the whole tree as serialized by pg_query's protobuf types, so no node
//! kind is missed (pg_query's own node iterator skips some, such as SQL value functions).

use std::collections::BTreeSet;

use serde_json::Value;

/// The parts of a statement that matter for caching.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Called functions, lower-case, as written (`now`, `pg_catalog.random`).
    pub functions: BTreeSet<String>,
    /// Why the result can never be cached, whatever the functions.
    pub never: Option<&'static str>,
}

/// Walks a parse tree, serialized (`None`: it could not be).
pub fn analyze(tree: Option<&Value>) -> Analysis {
    let mut out = Analysis::default();
    match tree {
        Some(value) => walk(value, &mut out),
        None => out.never = Some("the statement could not be analysed"),
    }
    out
}

fn walk(value: &Value, out: &mut Analysis) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match key.as_str() {
                    "FuncCall" => {
                        if let Some(name) = function_name(child) {
                            out.functions.insert(name);
                        }
                    }
                    "SqlvalueFunction" => {
                        out.never.get_or_insert("it reads the clock or the session (CURRENT_TIMESTAMP, CURRENT_USER ...)");
                    }
                    "RangeTableSample" => {
                        out.never.get_or_insert("TABLESAMPLE returns different rows each time");
                    }
                    "locking_clause" if child.as_array().is_some_and(|a| !a.is_empty()) => {
                        out.never.get_or_insert("SELECT ... FOR UPDATE/SHARE takes locks");
                    }
                    _ => {}
                }
                walk(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| walk(item, out)),
        _ => {}
    }
}

/// `funcname` is a list of String nodes: `["pg_catalog", "now"]`.
fn function_name(call: &Value) -> Option<String> {
    let parts: Vec<&str> = call
        .get("funcname")?
        .as_array()?
        .iter()
        .filter_map(|n| n.get("node")?.get("String")?.get("sval")?.as_str())
        .collect();
    (!parts.is_empty()).then(|| parts.join(".").to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(sql: &str) -> Analysis {
        let tree = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).unwrap().protobuf;
        analyze(serde_json::to_value(&tree).ok().as_ref())
    }

    #[test]
    fn functions_are_found_wherever_they_are() {
        let cases: &[(&str, &[&str])] = &[
            ("SELECT now()", &["now"]),
            ("SELECT * FROM t WHERE created_at > now() - interval '1 day'", &["now"]),
            ("SELECT ARRAY[random()]", &["random"]),
            ("SELECT x FROM t ORDER BY md5(x::text)", &["md5"]),
            ("SELECT count(*) OVER (PARTITION BY lower(a)) FROM t", &["count", "lower"]),
            ("SELECT * FROM generate_series(1, 3)", &["generate_series"]),
            ("SELECT (SELECT max(id) FROM t) + nextval('s')", &["max", "nextval"]),
            ("SELECT pg_catalog.upper(name) FROM t", &["pg_catalog.upper"]),
            ("SELECT id FROM t WHERE id = $1", &[]),
        ];
        for (sql, want) in cases {
            let analysis = of(sql);
            let got: Vec<&str> = analysis.functions.iter().map(String::as_str).collect();
            assert_eq!(got, *want, "{sql}");
        }
    }

    #[test]
    fn clock_session_sampling_and_locking_are_never_cached() {
        for sql in [
            "SELECT CURRENT_TIMESTAMP",
            "SELECT * FROM t WHERE d = CURRENT_DATE",
            "SELECT CURRENT_USER",
            "SELECT * FROM t TABLESAMPLE SYSTEM (10)",
            "SELECT * FROM t FOR UPDATE",
            "SELECT * FROM t FOR SHARE SKIP LOCKED",
        ] {
            assert!(of(sql).never.is_some(), "{sql}");
        }
        assert_eq!(of("SELECT * FROM t WHERE id = 1").never, None);
    }
}
