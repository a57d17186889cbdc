//! The workload as the advisor plans it: statements from `pg_stat_statements` (this database's
//! reads, weighted by the time they took, without dbagent's catalog queries) or given by the
//! caller, each made plannable.
//!
//! `pg_stat_statements` replaces every constant with `$n`, and some of what it writes is no
//! longer SQL: `interval '1 day'` becomes `interval $4`, a typed literal the grammar only takes
//! with a quoted string. [`plannable`] puts a representative literal of that type back (found
//! from the scanner's tokens: a parameter right after a type name); so does a cast constant
//! (`$1::interval`), and `LIMIT $n` becomes a page of 10. Every other `$n` stays a
//! parameter: the statement is planned generically (`PREPARE` with the types PostgreSQL infers
//! from each parameter's context, `plan_cache_mode = force_generic_plan`, or `EXPLAIN
//! (GENERIC_PLAN)` on 16+), which estimates each comparison with the column's average
//! selectivity — the right estimate for a statement that ran with many values. A parameter
//! whose type nothing determines (`SELECT $1`) is declared `text`.

use serde_json::Value;

use super::super::Error;
use super::super::shape::{Shape, shape};
use super::super::suggest::WorkloadQuery;
use crate::db::{self, Pools};

/// Statements read from pg_stat_statements (the most expensive first).
const WORKLOAD_STATEMENTS: i64 = 50;
const WORKLOAD_SQL: &str = include_str!("../sql/workload.sql");

/// One statement of the workload, ready to plan.
#[derive(Debug, Clone)]
pub struct Statement {
    /// As recorded (or given).
    pub sql: String,
    pub queryid: Option<i64>,
    /// What is planned: `sql` with typed literals restored, or with the given values inlined.
    pub text: String,
    /// Highest `$n` left in `text` (planned generically when > 0).
    pub params: usize,
    /// Recorded total execution time (calls × mean), ms; `None` for a given query.
    pub total_ms: Option<f64>,
    pub calls: Option<i64>,
    pub shape: Shape,
}

/// Why one statement was left out of the analysis.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct Skipped {
    pub sql: String,
    pub reason: String,
}

/// The recorded workload of this database, or `None` when pg_stat_statements cannot be read.
pub async fn recorded(pools: &Pools) -> Result<Option<Vec<Statement>>, Error> {
    let rows = pools.primary().query("SELECT to_regclass('pg_stat_statements') IS NOT NULL AS installed", &[]).await?;
    let installed: bool = rows.first().map(|row| db::get(row, "installed")).transpose()?.unwrap_or(false);
    if !installed {
        return Ok(None);
    }
    let rows = match pools.primary().query(WORKLOAD_SQL, &[&WORKLOAD_STATEMENTS]).await {
        Ok(rows) => rows,
        // 55000: created but not in shared_preload_libraries.
        Err(err) if err.sqlstate() == Some("55000") => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    let mut out = Vec::new();
    for row in &rows {
        let Some(sql) = db::get::<Option<String>>(row, "query")? else { continue };
        let shape = shape(&sql);
        if !is_users(&sql, &shape) {
            continue;
        }
        let text = plannable(&sql);
        out.push(Statement {
            params: super::super::explain::count_placeholders(&text),
            text,
            queryid: db::get(row, "queryid")?,
            total_ms: Some(db::get(row, "total_ms")?),
            calls: Some(db::get(row, "calls")?),
            sql,
            shape,
        });
    }
    Ok(Some(out))
}

/// The writes pg_stat_statements recorded for this database, over the same window as the reads.
const WRITES_SQL: &str = "SELECT query, rows::float8 AS rows FROM pg_stat_statements \
     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
       AND rows > 0 AND query ~* '^\\s*(insert|update|delete|merge|copy)\\M'";

/// Rows each table had written by the statements pg_stat_statements recorded, by its name as
/// written (`INSERT`, `UPDATE`, `DELETE`, `MERGE`, `COPY ... FROM`): the writes an index on it
/// would have had to keep up with while the recorded reads ran. Empty when pg_stat_statements
/// cannot be read.
pub async fn recorded_writes(pools: &Pools) -> Result<Vec<(String, WriteKind, f64)>, Error> {
    let rows = match pools.primary().query(WRITES_SQL, &[]).await {
        Ok(rows) => rows,
        Err(err) => {
            tracing::debug!(error = %err, "pg_stat_statements' writes cannot be read; no write cost");
            return Ok(Vec::new());
        }
    };
    let mut out = Vec::new();
    for row in &rows {
        let Some(sql) = db::get::<Option<String>>(row, "query")? else { continue };
        if let Some((table, kind)) = write_target(&sql) {
            out.push((table, kind, db::get(row, "rows")?));
        }
    }
    Ok(out)
}

/// How a statement writes its table: an update may be HOT (no index touched).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Insert,
    Update,
    Delete,
}

/// The table a write statement changes, as written, and how (`None`: not a write, or
/// `COPY ... TO`).
pub fn write_target(sql: &str) -> Option<(String, WriteKind)> {
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).ok()?;
    let tree = serde_json::to_value(&parsed.protobuf).ok()?;
    let stmt = tree.get("stmts")?.get(0)?.get("stmt")?.get("node")?;
    let (kind, body) = stmt.as_object()?.iter().next()?;
    let kind = match kind.as_str() {
        "InsertStmt" => WriteKind::Insert,
        "UpdateStmt" | "MergeStmt" => WriteKind::Update,
        "DeleteStmt" => WriteKind::Delete,
        "CopyStmt" if body.get("is_from").and_then(Value::as_bool).unwrap_or(false) => WriteKind::Insert,
        _ => return None,
    };
    let relation = body.get("relation")?;
    let name = relation.get("relname")?.as_str()?;
    let table = match relation.get("schemaname").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        Some(schema) => format!("{schema}.{name}"),
        None => name.to_owned(),
    };
    Some((table, kind))
}

/// Queries given by the caller: their values inlined as literals, else planned generically.
pub fn given(queries: &[WorkloadQuery]) -> Vec<Statement> {
    queries
        .iter()
        .map(|q| {
            let text = if q.params.is_empty() { plannable(&q.sql) } else { inline(&q.sql, &q.params) };
            Statement {
                params: super::super::explain::count_placeholders(&text),
                text,
                queryid: None,
                total_ms: None,
                calls: None,
                shape: shape(&q.sql),
                sql: q.sql.clone(),
            }
        })
        .collect()
}

/// A statement of the user's: it reads at least one table, and none of the catalogs (dbagent's
/// own monitoring and schema queries, psql's `\d`), HypoPG or the statistics views.
pub fn is_users(sql: &str, shape: &Shape) -> bool {
    let system = |t: &String| {
        let t = t.to_lowercase();
        let bare = t.rsplit('.').next().unwrap_or(&t).to_owned();
        t.starts_with("pg_catalog.") || t.starts_with("information_schema.") || bare.starts_with("pg_") || bare.starts_with("hypopg")
    };
    !shape.tables.is_empty() && !shape.tables.iter().any(system) && !sql.to_lowercase().contains("hypopg")
}

/// A representative literal for a typed literal's type (`interval $1` → `interval '1 day'`), by
/// the type name's last word; `None` for a type this does not know (written as `$n::type`).
fn typed_default(type_word: &str) -> Option<&'static str> {
    Some(match type_word {
        "interval" => "'1 day'",
        "timestamp" | "timestamptz" | "zone" | "date" | "time" | "timetz" => "'now'",
        "int" | "integer" | "int2" | "int4" | "int8" | "smallint" | "bigint" | "numeric" | "decimal" | "dec" | "real" | "float"
        | "float4" | "float8" | "precision" | "money" | "oid" => "'1'",
        "boolean" | "bool" => "'true'",
        "text" | "varchar" | "char" | "character" | "bpchar" | "name" | "varying" | "citext" => "'x'",
        "json" | "jsonb" => "'{}'",
        "uuid" => "'00000000-0000-0000-0000-000000000000'",
        "inet" | "cidr" => "'127.0.0.1'",
        _ => return None,
    })
}

/// Keywords that may precede a parameter without being a type (`BETWEEN $1`, `VALUES`).
const NOT_TYPES: &[&str] = &[
    "select", "where", "and", "or", "not", "between", "in", "is", "like", "ilike", "limit", "offset", "then", "else", "when",
    "case", "values", "set", "on", "as", "by", "having", "return", "returning", "from", "distinct", "all", "any", "some",
    "escape", "similar", "to", "symmetric", "fetch", "first", "next", "row", "rows", "array", "using", "with", "over",
];

/// `sql` with each typed literal whose string pg_stat_statements replaced (`interval $4`,
/// `timestamptz $1`, `timestamp with time zone $2`) and each cast constant (`$1::interval`)
/// given a representative value of its type again, `LIMIT $n` a page of 10 and `OFFSET $n`
/// 0; other parameters are left as they are (planned generically).
pub fn plannable(sql: &str) -> String {
    let Ok(scan) = pg_query::scan(sql) else { return sql.to_owned() };
    let mut out = sql.to_owned();
    let tokens = &scan.tokens;
    for (i, token) in tokens.iter().enumerate().rev() {
        let (start, end) = (token.start as usize, token.end as usize);
        let Some(n) = sql.get(start..end).and_then(|t| t.strip_prefix('$')).filter(|n| n.parse::<usize>().is_ok()) else { continue };
        let text_of = |t: &pg_query::protobuf::ScanToken| sql.get(t.start as usize..t.end as usize).unwrap_or_default().to_lowercase();
        let next: Vec<String> = tokens.iter().skip(i + 1).take(2).map(text_of).collect();
        // `$n::interval`: a constant of a known type plans as the constant it was.
        if next.first().is_some_and(|t| t == "::")
            && let Some(value) = next.get(1).and_then(|t| typed_default(t))
        {
            out.replace_range(start..end, value);
            continue;
        }
        let Some(prev) = i.checked_sub(1).map(|p| &tokens[p]) else { continue };
        let word = text_of(prev);
        // `LIMIT $n` plans as a page of results, `OFFSET $n` as the first page.
        if let Some(value) = match word.as_str() { "limit" => Some("10"), "offset" => Some("0"), _ => None } {
            out.replace_range(start..end, value);
            continue;
        }
        // A parameter follows a type name only in a typed literal: the previous token is an
        // identifier or a keyword, not an operator or punctuation.
        let wordy = !word.is_empty() && word.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !wordy || NOT_TYPES.contains(&word.as_str()) || at_time_zone(sql, tokens, i) {
            continue;
        }
        let value = match typed_default(&word) {
            Some(v) => v.to_owned(),
            // An unknown single-word type: `uuid8 $1` ≡ `$1::uuid8`, still a parameter.
            None => {
                out.replace_range(prev.start as usize..end, &format!("${n}::{word}"));
                continue;
            }
        };
        out.replace_range(start..end, &value);
    }
    out
}

/// `... AT TIME ZONE $n`: the parameter is a zone name, not a typed literal's string.
fn at_time_zone(sql: &str, tokens: &[pg_query::protobuf::ScanToken], param: usize) -> bool {
    let word = |back: usize| {
        param.checked_sub(back).and_then(|i| tokens.get(i)).and_then(|t| sql.get(t.start as usize..t.end as usize)).map(str::to_lowercase)
    };
    word(1).as_deref() == Some("zone") && word(3).as_deref() == Some("at")
}

/// `sql` with `$n` replaced by `params[n-1]` as literals (planning only; never executed).
fn inline(sql: &str, params: &[Value]) -> String {
    let literals: Vec<String> = params
        .iter()
        .map(|v| match v {
            Value::Null => "NULL".into(),
            Value::Bool(b) => b.to_string(),
            Value::String(s) => db::sql::literal(s),
            other => db::sql::literal(&other.to_string()),
        })
        .collect();
    let Ok(scan) = pg_query::scan(sql) else { return sql.to_owned() };
    let mut out = sql.to_owned();
    for token in scan.tokens.iter().rev() {
        let (start, end) = (token.start as usize, token.end as usize);
        let Some(n) = sql.get(start..end).and_then(|t| t.strip_prefix('$')).and_then(|n| n.parse::<usize>().ok()) else { continue };
        if let Some(lit) = literals.get(n.wrapping_sub(1)) {
            out.replace_range(start..end, lit);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_literals_get_a_value_and_other_parameters_stay() {
        for (recorded, want) in [
            ("SELECT id FROM t WHERE at > now() - interval $1", "SELECT id FROM t WHERE at > now() - interval '1 day'"),
            ("SELECT id FROM t WHERE at > timestamptz $1 AND d = date $2", "SELECT id FROM t WHERE at > timestamptz 'now' AND d = date 'now'"),
            ("SELECT 1 FROM t WHERE at < timestamp with time zone $1", "SELECT 1 FROM t WHERE at < timestamp with time zone 'now'"),
            ("SELECT 1 FROM t WHERE u = uuid8 $1", "SELECT 1 FROM t WHERE u = $1::uuid8"),
            ("SELECT 1 FROM t WHERE a = $1 AND b IN ($2, $3) AND c BETWEEN $4 AND $5 LIMIT $6 OFFSET $7", "SELECT 1 FROM t WHERE a = $1 AND b IN ($2, $3) AND c BETWEEN $4 AND $5 LIMIT 10 OFFSET 0"),
            ("SELECT 1 FROM t WHERE at > now() - $1::interval AND x = ANY($2) AND y = $3::mytype", "SELECT 1 FROM t WHERE at > now() - '1 day'::interval AND x = ANY($2) AND y = $3::mytype"),
            ("SELECT 1 FROM t WHERE note = '$1' OR v = text $1", "SELECT 1 FROM t WHERE note = '$1' OR v = text 'x'"),
            ("SELECT at AT TIME ZONE $1 FROM t", "SELECT at AT TIME ZONE $1 FROM t"),
        ] {
            assert_eq!(plannable(recorded), want, "{recorded}");
        }
    }

    #[test]
    fn catalog_and_advisor_statements_are_not_the_users() {
        for (sql, users) in [
            ("SELECT id FROM orders WHERE region = $1", true),
            ("SELECT c.relname FROM pg_class c WHERE c.oid = $1", false),
            ("SELECT * FROM pg_catalog.pg_stat_activity", false),
            ("SELECT table_name FROM information_schema.tables", false),
            ("SELECT * FROM hypopg_create_index($1)", false),
            ("SELECT $1", false),
        ] {
            assert_eq!(is_users(sql, &shape(sql)), users, "{sql}");
        }
    }

    #[test]
    fn write_statements_name_their_table_and_kind() {
        for (sql, want) in [
            ("INSERT INTO logbook (kind) SELECT $1", Some(("logbook", WriteKind::Insert))),
            ("UPDATE public.orders SET total = $1 WHERE id = $2", Some(("public.orders", WriteKind::Update))),
            ("DELETE FROM \"Order Items\" WHERE order_id = $1", Some(("Order Items", WriteKind::Delete))),
            ("COPY orders FROM STDIN", Some(("orders", WriteKind::Insert))),
            ("COPY orders TO STDOUT", None),
            ("SELECT 1 FROM orders", None),
        ] {
            assert_eq!(write_target(sql).as_ref().map(|(t, k)| (t.as_str(), *k)), want, "{sql}");
        }
    }

    #[test]
    fn given_values_are_inlined_as_literals() {
        let q = WorkloadQuery { sql: "SELECT 1 FROM t WHERE a = $1 AND b = $2".into(), params: vec![serde_json::json!("it's"), serde_json::json!(4)] };
        let s = &given(&[q])[0];
        assert_eq!((s.text.as_str(), s.params), ("SELECT 1 FROM t WHERE a = 'it''s' AND b = '4'", 0));
    }
}
