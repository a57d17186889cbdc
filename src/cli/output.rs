//! Printing results: aligned tables for people, JSON (`--json`) for scripts. Stdout only.

use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;
use serde_json::{Value, json};

use super::Failure;
use crate::monitor::health::HealthReport;
use crate::query::{QueryOutput, Rows};
use crate::schema::{TableDetail, TableSummary};
use crate::txn::TransactionOutput;

fn print_json<T: Serialize>(value: &T) -> Result<(), Failure> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn new_table(header: Vec<String>) -> Table {
    let mut table = Table::new();
    table.load_style(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Disabled).set_header(header);
    table
}

/// A JSON value as a cell: strings bare, NULL as `NULL`, the rest as compact JSON.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "NULL".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn rows_value(rows: &Rows) -> Result<Value, Failure> {
    Ok(serde_json::from_slice(&rows.json)?)
}

fn print_rows(rows: &Rows) -> Result<(), Failure> {
    let parsed = rows_value(rows)?;
    if !rows.columns.is_empty() {
        let mut table = new_table(rows.columns.iter().map(|c| c.name.clone()).collect());
        for row in parsed.as_array().into_iter().flatten() {
            table.add_row(order_cells(rows, row));
        }
        println!("{table}");
    }
    let more = if rows.truncated { format!(" (showing the first {})", rows.returned) } else { String::new() };
    println!("({} row{}{more})", rows.row_count, if rows.row_count == 1 { "" } else { "s" });
    Ok(())
}

/// Cells in column order (a JSON object's own key order is not kept by the parser); a
/// repeated column name was written as `name_2`, `name_3` ... by the row encoder.
fn order_cells(rows: &Rows, row: &Value) -> Vec<String> {
    let Some(object) = row.as_object() else { return Vec::new() };
    let mut seen = std::collections::HashMap::new();
    rows.columns
        .iter()
        .map(|c| {
            let n = seen.entry(c.name.as_str()).or_insert(0usize);
            *n += 1;
            let key = if *n == 1 { c.name.clone() } else { format!("{}_{}", c.name, n) };
            object.get(&key).map(cell).unwrap_or_default()
        })
        .collect()
}

pub fn query(out: &QueryOutput, as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(&json!({
            "success": true,
            "rows": rows_value(&out.rows)?,
            "row_count": out.rows.row_count,
            "truncated": out.rows.truncated,
            "columns": out.rows.columns,
            "execution_time_ms": out.execution_time.as_secs_f64() * 1e3,
            "query_type": out.query_type,
            "served_by": out.served_by,
            "commit_lsn": out.commit_lsn,
        }));
    }
    print_rows(&out.rows)
}

pub fn transaction(out: &TransactionOutput, as_json: bool) -> Result<(), Failure> {
    if as_json {
        let results = out
            .results
            .iter()
            .map(|r| {
                Ok(json!({
                    "query_type": r.query_type,
                    "rows": rows_value(&r.rows)?,
                    "row_count": r.rows.row_count,
                    "truncated": r.rows.truncated,
                }))
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        return print_json(&json!({
            "success": true,
            "queries_executed": out.results.len(),
            "retries": out.retries,
            "isolation_level": out.isolation_level,
            "read_only": out.read_only,
            "execution_time_ms": out.execution_time.as_secs_f64() * 1e3,
            "commit_lsn": out.commit_lsn,
            "results": results,
        }));
    }
    for (i, result) in out.results.iter().enumerate() {
        println!("-- statement {} ({})", i + 1, result.query_type);
        print_rows(&result.rows)?;
    }
    println!("committed: {} statement(s), {} retr{}", out.results.len(), out.retries, if out.retries == 1 { "y" } else { "ies" });
    Ok(())
}

pub fn health(report: &HealthReport, as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(report);
    }
    let mut table = new_table(vec!["pool".into(), "healthy".into(), "total".into(), "idle".into(), "active".into(), "waiting".into(), "max".into(), "lag (s)".into()]);
    let pool = &report.connection_pool;
    for p in std::iter::once(&pool.pool_stats).chain(&pool.replicas) {
        table.add_row(vec![
            format!("{} ({})", p.name, p.location),
            p.healthy.to_string(),
            p.total.to_string(),
            p.idle.to_string(),
            p.active.to_string(),
            p.waiting.to_string(),
            p.max.to_string(),
            p.lag_seconds.map(|l| format!("{l:.3}")).unwrap_or_default(),
        ]);
    }
    println!("status: {}", report.status);
    match (&report.database.latency_ms, &report.database.error) {
        (Some(ms), _) => println!("database: {} reachable ({ms:.3} ms)", report.database.location),
        (None, Some(err)) => println!("database: {} UNREACHABLE: {err}", report.database.location),
        _ => {}
    }
    println!("{table}");
    Ok(())
}

pub fn tables(tables: &[TableSummary], as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(&json!({ "tables": tables }));
    }
    let mut table = new_table(vec!["schema".into(), "name".into(), "kind".into(), "rows (est.)".into(), "total size".into()]);
    for t in tables {
        table.add_row(vec![
            t.schema.clone(),
            t.name.clone(),
            t.kind.clone(),
            t.row_estimate.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
            human_bytes(t.total_bytes),
        ]);
    }
    println!("{table}");
    Ok(())
}

pub fn table_detail(detail: &TableDetail, as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(detail);
    }
    println!("{} {}.{} ({}, {} est. rows)", detail.kind, detail.schema, detail.table, human_bytes(detail.total_bytes), detail.row_estimate.map(|r| r.to_string()).unwrap_or_else(|| "?".into()));
    let mut columns = new_table(vec!["column".into(), "type".into(), "nullable".into(), "default".into()]);
    for c in &detail.columns {
        columns.add_row(vec![c.column_name.clone(), c.formatted_type.clone(), c.is_nullable.clone(), c.column_default.clone().unwrap_or_default()]);
    }
    println!("{columns}");
    if !detail.indexes.is_empty() {
        let mut indexes = new_table(vec!["index".into(), "definition".into()]);
        for i in &detail.indexes {
            indexes.add_row(vec![i.name.clone(), i.definition.clone()]);
        }
        println!("{indexes}");
    }
    if !detail.constraints.is_empty() {
        let mut constraints = new_table(vec!["constraint".into(), "type".into(), "definition".into()]);
        for c in &detail.constraints {
            constraints.add_row(vec![c.name.clone(), c.kind.clone(), c.definition.clone()]);
        }
        println!("{constraints}");
    }
    Ok(())
}

pub fn key_values(value: &Value, as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(value);
    }
    if let Some(object) = value.as_object() {
        let width = object.keys().map(String::len).max().unwrap_or(0);
        for (k, v) in object {
            println!("{k:width$}  {}", cell(v));
        }
    }
    Ok(())
}

fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{bytes} B") } else { format!("{value:.1} {}", UNITS[unit]) }
}

/// A list of flat JSON objects as a table (columns from the first object's keys).
pub fn rows(items: &[Value], as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(&items);
    }
    let Some(first) = items.first().and_then(Value::as_object) else {
        println!("(none)");
        return Ok(());
    };
    let keys: Vec<String> = first.keys().cloned().collect();
    let mut table = new_table(keys.clone());
    for item in items {
        table.add_row(keys.iter().map(|k| item.get(k).map(cell).unwrap_or_default()).collect::<Vec<_>>());
    }
    println!("{table}");
    Ok(())
}

/// What `migrate up` / `down` did (or, with `--dry-run`, would do, with the SQL).
pub fn migration_report(report: &crate::migrate::Report, as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(report);
    }
    if report.applied.is_empty() {
        println!("nothing to do");
    }
    for a in &report.applied {
        let verb = if report.dry_run { "would run" } else { "ran" };
        println!("{verb} {} {} ({:?}, {:.1} ms)", a.version, a.name, a.direction, a.execution_time_ms);
        if let Some(sql) = &a.sql {
            println!("{sql}");
        }
    }
    if let Some(id) = &report.backup_id {
        println!("backup taken first: {id}");
    }
    println!("current version: {}", report.version.map_or("none".to_string(), |v| v.to_string()));
    Ok(())
}

/// `migrate status`.
pub fn migration_status(status: &crate::migrate::Status, as_json: bool) -> Result<(), Failure> {
    let value = serde_json::to_value(status)?;
    if as_json {
        return print_json(&value);
    }
    println!("current version: {}", status.current.map_or("none".to_string(), |v| v.to_string()));
    for key in ["applied", "pending", "drifted", "missing", "out_of_order"] {
        let items = value.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
        println!("{key}: {}", items.len());
        if !items.is_empty() && items[0].is_object() {
            rows(&items, false)?;
        } else if !items.is_empty() {
            println!("  {}", items.iter().map(cell).collect::<Vec<_>>().join(", "));
        }
    }
    Ok(())
}

/// `dbagent indexes`: suggestions and reports as tables, an action as what it did.
pub fn indexes(answer: &crate::advisor::IndexesAnswer, as_json: bool) -> Result<(), Failure> {
    use crate::advisor::IndexesAnswer as A;
    if as_json {
        return print_json(answer);
    }
    match answer {
        A::Suggestions(found) if found.suggestions.is_empty() => println!("(none){}", found.note.as_deref().map(|n| format!("\n{n}")).unwrap_or_default()),
        A::Suggestions(found) => {
            if let Some(note) = &found.note {
                println!("{note}");
            }
            let suggestions = &found.suggestions;
            let header = ["table", "columns", "improvement", "validated with", "confidence", "estimated size", "sql"];
            let mut table = new_table(header.map(String::from).to_vec());
            for s in suggestions {
                table.add_row(vec![
                    s.table.clone(),
                    s.columns.join(", "),
                    format!("{:.0} %", s.improvement * 100.0),
                    s.validated_with.to_owned(),
                    s.confidence.to_owned(),
                    human_bytes(s.estimated_bytes),
                    s.sql.clone(),
                ]);
            }
            println!("{table}");
        }
        A::Reports { indexes } if indexes.is_empty() => println!("(none)"),
        A::Reports { indexes } => {
            let mut table = new_table(["index", "table", "size", "reason", "fix"].map(String::from).to_vec());
            for r in indexes {
                table.add_row(vec![r.index.clone(), r.table.clone(), human_bytes(r.bytes), r.reason.clone(), r.fix.clone().unwrap_or_default()]);
            }
            println!("{table}");
        }
        A::Analyzed(done) => println!("{}", done.done),
        A::Rebuilt(done) => {
            println!("{}", done.done);
            println!("size: {} before, {} after", human_bytes(done.bytes_before), human_bytes(done.bytes_after));
        }
        A::Created(done) => println!("{}", done.done),
        A::Dropped(done) => println!("{}", done.done),
        A::Applied(applied) => {
            println!("{}", applied.done);
            let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3} ms"));
            for (when, m) in [("before", &applied.before), ("after", &applied.after)] {
                println!("{when}: cost {:.1}, execution {}, {}", m.cost, ms(m.execution_time_ms), m.scans.join("; "));
            }
            if let Some(speedup) = applied.speedup {
                println!("speedup: {speedup:.1}x");
            }
        }
    }
    Ok(())
}

/// `dbagent optimize`: timings, the plan as an indented tree, then the suggestions.
pub fn optimize(report: &crate::advisor::OptimizeReport, as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(report);
    }
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3} ms"));
    println!(
        "planning {}, execution {}, total {}, cost {:.1}{}",
        ms(report.planning_time_ms),
        ms(report.execution_time_ms),
        ms(report.total_time_ms),
        report.estimated_cost,
        if report.is_slow { " (slow)" } else { "" }
    );
    for (path, node) in report.plan.walk() {
        let depth = path.matches('.').count();
        let actual = node.actual_rows.map(|r| format!(", actual {r} rows x {} loops", node.actual_loops.unwrap_or(1.0))).unwrap_or_default();
        println!("{}{} (est. {} rows{actual})", "  ".repeat(depth), node.label(), node.plan_rows);
    }
    for s in &report.findings {
        println!("\n[{:?}] {}: {}", s.severity, s.rule, s.reason);
        if let Some(fix) = &s.fix {
            println!("  fix: {fix}");
        }
    }
    for s in &report.index_suggestions {
        println!("\nindex ({}, {} confidence): {}", s.validated_with, s.confidence, s.sql);
    }
    Ok(())
}
