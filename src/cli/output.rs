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
        let all: Vec<&Value> = parsed.as_array().into_iter().flatten().collect();
        for row in &all {
            table.add_row(order_cells(rows, row));
        }
        // Numbers right-aligned, so their digits line up.
        for (i, column) in rows.columns.iter().enumerate() {
            let numeric = all.iter().all(|row| row.get(&column.name).is_none_or(|v| v.is_number() || v.is_null()));
            if numeric && !all.is_empty() {
                right_align(&mut table, i);
            }
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
    right_align(&mut table, 3);
    right_align(&mut table, 4);
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
    crate::schema::dictionary::human_bytes(bytes)
}

/// A list of flat JSON objects as a table with the columns `keys`, in that order; numbers
/// right-aligned.
pub fn rows(items: &[Value], keys: &[&str], as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(&items);
    }
    if items.is_empty() {
        println!("(none)");
        return Ok(());
    }
    let mut table = new_table(keys.iter().map(|k| k.replace('_', " ")).collect());
    for item in items {
        table.add_row(keys.iter().map(|k| item.get(*k).map(cell).unwrap_or_default()).collect::<Vec<_>>());
    }
    for (i, key) in keys.iter().enumerate() {
        if items.iter().all(|item| item.get(*key).is_none_or(|v| v.is_number() || v.is_null())) {
            right_align(&mut table, i);
        }
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

/// `migrate status`: one row per migration, applied and pending, by version (as `sqlx
/// migrate info` and `alembic history --indicate-current` show them), then the counts.
pub fn migration_status(status: &crate::migrate::Status, as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(status);
    }
    println!("current version: {}", status.current.map_or("none".to_string(), |v| v.to_string()));
    let mut rows: Vec<(i64, Vec<String>)> = Vec::new();
    for a in &status.applied {
        let state = if status.drifted.contains(&a.version) {
            "applied, file changed"
        } else if status.missing.contains(&a.version) {
            "applied, file missing"
        } else {
            "applied"
        };
        rows.push((a.version, vec![
            a.version.to_string(),
            a.name.clone(),
            state.into(),
            when(&a.applied_at),
            a.applied_by.clone(),
            human_duration(a.execution_time_ms),
            a.backup_id.clone().unwrap_or_default(),
            short(&a.checksum),
        ]));
    }
    for p in &status.pending {
        let state = if status.out_of_order.contains(&p.version) { "pending (out of order)" } else { "pending" };
        let mut notes = vec![state.to_string()];
        if !p.reversible {
            notes.push("irreversible".into());
        }
        if p.no_transaction {
            notes.push("no transaction".into());
        }
        rows.push((p.version, vec![p.version.to_string(), p.name.clone(), notes.join(", "), String::new(), String::new(), String::new(), String::new(), String::new()]));
    }
    rows.sort_by_key(|(v, _)| *v);
    if rows.is_empty() {
        println!("no migrations");
        return Ok(());
    }
    let mut table = new_table(["version", "name", "state", "applied (UTC)", "by", "duration", "backup", "checksum"].map(String::from).to_vec());
    for (_, row) in rows {
        table.add_row(row);
    }
    right_align(&mut table, 5);
    println!("{table}");
    println!(
        "{} applied, {} pending{}{}",
        status.applied.len(),
        status.pending.len(),
        if status.drifted.is_empty() { String::new() } else { format!(", {} changed since applied (run `migrate repair` once reviewed)", status.drifted.len()) },
        if status.missing.is_empty() { String::new() } else { format!(", {} applied without a file", status.missing.len()) },
    );
    Ok(())
}

/// `migrate history`: newest first, the columns a person looks for first (version, name,
/// kind, when, by, duration, backup), checksums shortened; `--json` has everything.
pub fn migration_history(events: &[crate::migrate::Event], applied: &[crate::migrate::AppliedMigration], as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(&events);
    }
    if events.is_empty() {
        println!("no migration has run yet");
        return Ok(());
    }
    let with_detail = events.iter().any(|e| e.detail.is_some());
    let mut header: Vec<String> = ["version", "name", "kind", "when (UTC)", "by", "duration", "backup", "checksum"].map(String::from).to_vec();
    if with_detail {
        header.push("detail".into());
    }
    let mut table = new_table(header);
    for e in events {
        let kind = enum_name(&e.kind);
        let backup = if kind == "apply" { applied.iter().find(|a| a.version == e.version).and_then(|a| a.backup_id.clone()).unwrap_or_default() } else { String::new() };
        let mut row = vec![
            e.version.to_string(),
            e.name.clone(),
            kind,
            when(&e.at),
            e.by.clone(),
            e.execution_time_ms.map(human_duration).unwrap_or_default(),
            backup,
            e.checksum.as_deref().map(short).unwrap_or_default(),
        ];
        if with_detail {
            row.push(e.detail.clone().unwrap_or_default());
        }
        table.add_row(row);
    }
    right_align(&mut table, 5);
    println!("{table}");
    Ok(())
}

/// `backup list`: newest first, as `pgbackrest info` does (id, kind, when, sizes, duration),
/// sizes in human units; `--json` prints the whole manifests.
pub fn backups(list: &[crate::backup::Manifest], as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(&list);
    }
    if list.is_empty() {
        println!("no backups yet (`dbagent backup create` takes one)");
        return Ok(());
    }
    let header = ["id", "name", "kind", "created (UTC)", "size", "dump size", "duration", "verified", "kept"];
    let mut table = new_table(header.map(String::from).to_vec());
    for m in list {
        let verified = m.verification.as_ref().map_or_else(|| "-".to_string(), |v| if v.ok { format!("ok {}", when(&v.at)) } else { "FAILED".to_string() });
        let kept = match (&m.pinned_by, m.keep) {
            (Some(by), _) => format!("pinned: {by}"),
            (None, true) => "kept".into(),
            (None, false) => String::new(),
        };
        table.add_row(vec![
            m.id.clone(),
            m.name.clone().unwrap_or_default(),
            enum_name(&m.kind),
            when(&m.created_at),
            human_bytes(m.stored_bytes as i64),
            human_bytes(m.raw_bytes as i64),
            human_duration(m.duration_ms as f64),
            verified,
            kept,
        ]);
    }
    for column in [4, 5, 6] {
        right_align(&mut table, column);
    }
    println!("{table}");
    let total: u64 = list.iter().map(|m| m.stored_bytes).sum();
    println!("{} backup{}, {} stored", list.len(), if list.len() == 1 { "" } else { "s" }, human_bytes(total as i64));
    Ok(())
}

/// `backup list --remote`: the backups in the remote store, and which the location also has.
pub fn remote_backups(list: &[crate::backup::remote::RemoteBackup], as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(&list);
    }
    if list.is_empty() {
        println!("no backups in the remote store yet (the serving agent uploads each one once it is complete)");
        return Ok(());
    }
    let mut table = new_table(["id", "name", "kind", "created (UTC)", "size", "local copy"].map(String::from).to_vec());
    for r in list {
        let m = &r.manifest;
        table.add_row(vec![
            m.id.clone(),
            m.name.clone().unwrap_or_default(),
            enum_name(&m.kind),
            when(&m.created_at),
            human_bytes(m.stored_bytes as i64),
            if r.local { "yes".into() } else { "no (restore and verify download it)".into() },
        ]);
    }
    right_align(&mut table, 4);
    println!("{table}");
    let total: u64 = list.iter().map(|r| r.manifest.stored_bytes).sum();
    println!("{} backup{} in the remote store, {} stored", list.len(), if list.len() == 1 { "" } else { "s" }, human_bytes(total as i64));
    Ok(())
}

/// `backup list --replaced`: the databases restores replaced, and whether they can be swapped
/// back.
pub fn replaced(list: &[crate::backup::Replaced], as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(&list);
    }
    if list.is_empty() {
        println!("no database was replaced by a restore");
        return Ok(());
    }
    let header = ["id", "database", "backup", "replaced (UTC)", "by", "state", "expires (UTC)"];
    let mut table = new_table(header.map(String::from).to_vec());
    for r in list {
        let state = match (r.state, r.exists) {
            (crate::backup::ReplacedState::Kept, true) => "kept (dbagent restore undo ID)".to_string(),
            (crate::backup::ReplacedState::Kept, false) => "gone".to_string(),
            (state, _) => enum_name(&state),
        };
        table.add_row(vec![r.id.clone(), r.database.clone(), r.backup_id.clone(), when(&r.replaced_at), r.replaced_by.clone(), state, when(&r.expires_at)]);
    }
    println!("{table}");
    Ok(())
}

/// `backup prune`: what goes and what stays, and why.
pub fn prune(decisions: &[crate::backup::Decision], dry_run: bool, as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(&decisions);
    }
    if decisions.is_empty() {
        println!("no backups");
        return Ok(());
    }
    let gone = if dry_run { "would delete" } else { "deleted" };
    let mut table = new_table(["id", "verdict", "reason"].map(String::from).to_vec());
    for d in decisions {
        table.add_row(vec![d.id.clone(), if d.keep { "keep".into() } else { gone.to_string() }, d.reason.clone()]);
    }
    println!("{table}");
    Ok(())
}

/// `seed generate`: the tables filled (parents first), the seed to repeat it.
pub fn generated(report: &crate::seeddata::Report, as_json: bool) -> Result<(), Failure> {
    if as_json {
        return print_json(report);
    }
    let mut table = new_table(["table", "rows", "why"].map(String::from).to_vec());
    for t in &report.tables {
        table.add_row(vec![t.table.clone(), t.rows.to_string(), t.reason.to_string()]);
    }
    right_align(&mut table, 1);
    println!("{table}");
    println!(
        "{} rows into {}{} in {} (seed {}: pass --seed {} to get the same rows again)",
        report.rows,
        report.table,
        if report.cleared { " (cleared first)" } else { "" },
        human_duration(report.duration_ms),
        report.seed,
        report.seed
    );
    Ok(())
}

fn right_align(table: &mut Table, column: usize) {
    if let Some(c) = table.column_mut(column) {
        c.set_cell_alignment(comfy_table::CellAlignment::Right);
    }
}

/// An enum's serialized name (`apply`, `schema_only`).
fn enum_name<T: Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// A checksum shortened to 12 characters, as git shortens hashes.
fn short(checksum: &str) -> String {
    checksum.chars().take(12).collect()
}

/// A time to the second, in UTC.
fn when(at: &chrono::DateTime<chrono::Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// Milliseconds in the unit a person reads best: `850 ms`, `2.4 s`, `3m 05s`, `1h 02m`.
fn human_duration(ms: f64) -> String {
    if !ms.is_finite() || ms < 0.0 {
        return "-".into();
    }
    if ms < 1.0 {
        return format!("{ms:.2} ms");
    }
    if ms < 1000.0 {
        return format!("{ms:.0} ms");
    }
    let seconds = ms / 1000.0;
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let whole = seconds.round() as u64;
    if whole < 3600 { format!("{}m {:02}s", whole / 60, whole % 60) } else { format!("{}h {:02}m", whole / 3600, (whole % 3600) / 60) }
}

/// `dbagent indexes`: suggestions and reports as tables, an action as what it did.
pub fn indexes(answer: &crate::advisor::IndexesAnswer, as_json: bool) -> Result<(), Failure> {
    use crate::advisor::IndexesAnswer as A;
    if as_json {
        return print_json(answer);
    }
    match answer {
        A::Suggestions(found) if found.suggestions.is_empty() => {
            println!("(none){}", found.note.as_deref().map(|n| format!("\n{n}")).unwrap_or_default());
            suggestion_summary(found);
        }
        A::Suggestions(found) => {
            if let Some(note) = &found.note {
                println!("{note}");
            }
            let header = ["table", "columns", "improvement", "serves", "validated with", "estimated size", "sql"];
            let mut table = new_table(header.map(String::from).to_vec());
            for s in &found.suggestions {
                table.add_row(vec![
                    s.table.clone(),
                    s.columns.join(", "),
                    format!("{:.0} %", s.improvement * 100.0),
                    s.queries.len().to_string(),
                    format!("{} ({})", s.validated_with, s.confidence),
                    human_bytes(s.estimated_bytes),
                    s.sql.clone(),
                ]);
            }
            println!("{table}");
            suggestion_summary(found);
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
        A::AppliedSet(set) => {
            let mut table = new_table(["outcome", "index", "size", "sql", "error"].map(String::from).to_vec());
            for a in &set.applied {
                let outcome = if a.outcome == crate::advisor::workload::apply::Outcome::Built { "built" } else { "failed" };
                let size = a.bytes.map(human_bytes).unwrap_or_default();
                table.add_row(vec![outcome.into(), a.index.clone().unwrap_or_default(), size, a.sql.clone(), a.error.clone().unwrap_or_default()]);
            }
            println!("{table}");
            println!("{} built ({}), {} failed", set.built, human_bytes(set.total_bytes), set.failed);
        }
    }
    Ok(())
}

/// The workload's totals and the statements left out, under the suggestions.
fn suggestion_summary(found: &crate::advisor::Suggested) {
    if let (Some(before), Some(after), Some(gain)) = (found.total_cost_before, found.total_cost_after, found.gain_percent) {
        let unit = found.cost_unit.unwrap_or_default();
        println!(
            "workload: {} statements, cost {before:.1} -> {after:.1} {unit} ({gain:.0} % gain); new indexes {} of {}; analysis {} ms",
            found.statements.unwrap_or_default(),
            human_bytes(found.index_bytes.unwrap_or_default()),
            human_bytes(found.max_index_bytes.unwrap_or_default()),
            found.analysis_ms.unwrap_or_default()
        );
    }
    for s in &found.skipped {
        println!("skipped: {} — {}", s.sql, s.reason);
    }
    let unit = found.cost_unit.unwrap_or_default();
    for d in &found.declined {
        let why = match d.reason {
            "budget" => "does not fit in the budget".to_string(),
            _ => format!("its writes would cost {:.1} {unit}", d.write_cost),
        };
        println!("declined: {} — would save {:.1} {unit}, {why}", d.sql, d.saves);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_checksums_read_at_a_glance() {
        for (ms, text) in [(0.25, "0.25 ms"), (12.4, "12 ms"), (2400.0, "2.4 s"), (185_000.0, "3m 05s"), (3_720_000.0, "1h 02m"), (f64::NAN, "-")] {
            assert_eq!(human_duration(ms), text, "{ms}");
        }
        assert_eq!(short("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"), "9f86d081884c");
        assert_eq!(short("abc"), "abc");
    }
}
