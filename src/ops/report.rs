//! `GET /maintenance/report`: what needs upkeep, each finding with its severity and the SQL
//! that fixes it.
//!
//! Five catalog reads (tables, databases, autovacuum, sequences, invalid indexes; in
//! `sql/report_*.sql`) and then pure decisions ([`findings`]) over their rows, with the
//! thresholds written down beside them. Fixes name objects quoted by `db::sql`.

use std::time::Instant;

use serde::Serialize;
use tokio_postgres::Row;

use super::Error;
use crate::db::{self, Pools, sql};

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    DeadTuples,
    Bloat,
    StaleVacuum,
    StaleAnalyze,
    NeverAnalyzed,
    Unlogged,
    XidWraparound,
    MultixactWraparound,
    AutovacuumOff,
    AutovacuumSaturated,
    AutovacuumBlocked,
    SequenceExhaustion,
    InvalidIndex,
}

/// One thing to look at.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Finding {
    pub check: Check,
    pub severity: Severity,
    /// The table, database, sequence or index concerned (qualified and quoted for tables).
    pub object: String,
    pub message: String,
    /// The statement that fixes it, when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// One table's upkeep figures.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct TableHealth {
    /// Qualified and quoted (`"public"."users"`).
    pub table: String,
    pub unlogged: bool,
    pub bytes: i64,
    pub live_tuples: i64,
    pub dead_tuples: i64,
    /// `dead / (live + dead)`.
    pub dead_ratio: f64,
    pub modified_since_analyze: i64,
    pub estimated_rows: f64,
    pub vacuumed_seconds_ago: Option<f64>,
    pub analyzed_seconds_ago: Option<f64>,
    pub xid_age: i64,
    pub mxid_age: i64,
    /// Whether pg_stats allows a bloat estimate (analysed, no `name` columns).
    pub bloat_estimable: bool,
    pub bloat_bytes: i64,
    pub bloat_pct: f64,
}

impl TableHealth {
    fn from_row(row: &Row) -> Result<TableHealth, db::Error> {
        let (schema, name): (String, String) = (db::get(row, "schema")?, db::get(row, "name")?);
        let live: i64 = db::get(row, "live_tuples")?;
        let dead: i64 = db::get(row, "dead_tuples")?;
        Ok(TableHealth {
            table: sql::qualified(&schema, &name),
            unlogged: db::get(row, "unlogged")?,
            bytes: db::get(row, "bytes")?,
            live_tuples: live,
            dead_tuples: dead,
            dead_ratio: if live + dead > 0 { dead as f64 / (live + dead) as f64 } else { 0.0 },
            modified_since_analyze: db::get(row, "modified_since_analyze")?,
            estimated_rows: db::get(row, "estimated_rows")?,
            vacuumed_seconds_ago: db::get(row, "vacuumed_seconds_ago")?,
            analyzed_seconds_ago: db::get(row, "analyzed_seconds_ago")?,
            xid_age: db::get(row, "xid_age")?,
            mxid_age: db::get(row, "mxid_age")?,
            bloat_estimable: db::get(row, "bloat_estimable")?,
            bloat_bytes: db::get(row, "bloat_bytes")?,
            bloat_pct: db::get(row, "bloat_pct")?,
        })
    }
}

/// A database's freeze ages and their distance to the limit.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DatabaseAge {
    pub database: String,
    pub xid_age: i64,
    pub mxid_age: i64,
    /// Transaction ids left before the server stops assigning new ones.
    pub xids_left: i64,
    pub multixacts_left: i64,
    pub autovacuum_freeze_max_age: i64,
    pub autovacuum_multixact_freeze_max_age: i64,
    /// The database this agent is connected to (table-level ages are for this one).
    pub current: bool,
}

/// Autovacuum as it runs now.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Autovacuum {
    pub enabled: bool,
    pub max_workers: i64,
    pub running: i64,
    /// Workers waiting for a lock, and the sessions they wait for.
    pub blocked_pids: Vec<i32>,
    pub blocker_pids: Vec<i32>,
    pub working_on: Vec<String>,
}

/// A sequence and how much of its range is gone.
#[derive(Debug, Clone, Serialize)]
pub struct SequenceUse {
    pub sequence: String,
    pub data_type: String,
    pub last_value: Option<f64>,
    pub used_pct: Option<f64>,
    pub cycle: bool,
}

/// An index left invalid.
#[derive(Debug, Clone, Serialize)]
pub struct InvalidIndex {
    pub index: String,
    pub table: String,
    pub bytes: i64,
}

/// Everything [`findings`] decides from.
#[derive(Debug, Clone, Serialize)]
pub struct Observed {
    pub tables: Vec<TableHealth>,
    pub databases: Vec<DatabaseAge>,
    pub autovacuum: Autovacuum,
    pub sequences: Vec<SequenceUse>,
    pub invalid_indexes: Vec<InvalidIndex>,
}

/// The report: findings (most severe first) and the figures behind them.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Report {
    /// What computing the report took.
    pub seconds: f64,
    pub tables_checked: usize,
    pub findings: Vec<Finding>,
    pub databases: Vec<DatabaseAge>,
    pub autovacuum: Autovacuum,
    /// The tables with the most dead rows (at most [`TOP_TABLES`]).
    pub tables: Vec<TableHealth>,
}

/// Tables listed with their figures in the report (all are checked).
pub const TOP_TABLES: usize = 20;

/// The hard limit: 2^31 ids of each kind may be in use before the server stops assigning them
/// (it refuses writes a few million before, see "Preventing Transaction ID Wraparound
/// Failures" in the documentation).
const WRAP_LIMIT: i64 = 2_147_483_647;

pub async fn report(pools: &Pools) -> Result<Report, Error> {
    let started = Instant::now();
    let observed = observe(pools).await?;
    let findings = findings(&observed);
    let tables_checked = observed.tables.len();
    let mut tables = observed.tables;
    tables.truncate(TOP_TABLES);
    Ok(Report {
        seconds: started.elapsed().as_secs_f64(),
        tables_checked,
        findings,
        databases: observed.databases,
        autovacuum: observed.autovacuum,
        tables,
    })
}

/// Reads everything the findings need (five catalog queries).
pub async fn observe(pools: &Pools) -> Result<Observed, Error> {
    let primary = pools.primary();
    let tables = primary.query(include_str!("sql/report_tables.sql"), &[]).await?;
    let databases = primary.query(include_str!("sql/report_databases.sql"), &[]).await?;
    let autovacuum = primary.query(include_str!("sql/report_autovacuum.sql"), &[]).await?;
    let sequences = primary.query(include_str!("sql/report_sequences.sql"), &[]).await?;
    let invalid = primary.query(include_str!("sql/report_invalid.sql"), &[]).await?;
    let autovacuum = autovacuum.first().ok_or_else(|| db::Error::UnexpectedAnswer { reason: "no autovacuum row".into() })?;
    Ok(Observed {
        tables: tables.iter().map(TableHealth::from_row).collect::<Result<_, _>>()?,
        databases: databases.iter().map(database_age).collect::<Result<_, _>>()?,
        autovacuum: Autovacuum {
            enabled: db::get(autovacuum, "enabled")?,
            max_workers: db::get(autovacuum, "max_workers")?,
            running: db::get(autovacuum, "running")?,
            blocked_pids: db::get(autovacuum, "blocked_pids")?,
            blocker_pids: db::get(autovacuum, "blocker_pids")?,
            working_on: db::get(autovacuum, "working_on")?,
        },
        sequences: sequences.iter().map(sequence_use).collect::<Result<_, _>>()?,
        invalid_indexes: invalid.iter().map(invalid_index).collect::<Result<_, _>>()?,
    })
}

fn database_age(row: &Row) -> Result<DatabaseAge, db::Error> {
    let xid_age: i64 = db::get(row, "xid_age")?;
    let mxid_age: i64 = db::get(row, "mxid_age")?;
    Ok(DatabaseAge {
        database: db::get(row, "database")?,
        xid_age,
        mxid_age,
        xids_left: WRAP_LIMIT - xid_age,
        multixacts_left: WRAP_LIMIT - mxid_age,
        autovacuum_freeze_max_age: db::get(row, "autovacuum_freeze_max_age")?,
        autovacuum_multixact_freeze_max_age: db::get(row, "autovacuum_multixact_freeze_max_age")?,
        current: db::get(row, "current")?,
    })
}

fn sequence_use(row: &Row) -> Result<SequenceUse, db::Error> {
    let (schema, name): (String, String) = (db::get(row, "schema")?, db::get(row, "name")?);
    Ok(SequenceUse {
        sequence: sql::qualified(&schema, &name),
        data_type: db::get(row, "data_type")?,
        last_value: db::get(row, "last_value")?,
        used_pct: db::get(row, "used_pct")?,
        cycle: db::get(row, "cycle")?,
    })
}

fn invalid_index(row: &Row) -> Result<InvalidIndex, db::Error> {
    let schema: String = db::get(row, "schema")?;
    Ok(InvalidIndex {
        index: sql::qualified(&schema, &db::get::<String>(row, "name")?),
        table: sql::qualified(&schema, &db::get::<String>(row, "table_name")?),
        bytes: db::get(row, "bytes")?,
    })
}

// Thresholds. Sources: the research notes' anchors (pgwatch, PgHero, awesome-prometheus-alerts
// rules) and the documentation's "Routine Vacuuming" chapter.

/// Dead rows worth a VACUUM: a fifth of the table and at least this many rows (below, autovacuum
/// handles it soon and it costs little).
const DEAD_MIN_ROWS: i64 = 1_000;
const DEAD_WARNING_RATIO: f64 = 0.2;
const DEAD_CRITICAL_RATIO: f64 = 0.5;
/// Table bloat: 30 % and 10 MB wasted is worth knowing; 80 % and 200 MB (the
/// PostgresqlBloatTableHigh alert) is worth a rewrite.
const BLOAT_WARNING: (f64, i64) = (30.0, 10 << 20);
const BLOAT_CRITICAL: (f64, i64) = (80.0, 200 << 20);
/// Stale statistics: changes past autovacuum's own analyze threshold (50 rows + 10 % by
/// default) and no analyze for a day.
const STALE_ANALYZE_SECONDS: f64 = 86_400.0;
/// Not vacuumed for 10 days while dead rows pile past autovacuum's threshold
/// (PostgresqlTableNotAutoVacuumed).
const STALE_VACUUM_SECONDS: f64 = 10.0 * 86_400.0;
/// Freeze age: warn when fewer than 1.5 billion ids are left (PgHero), critical under 500
/// million (the server warns from 40 million and stops at 3 million).
const WRAP_WARNING_LEFT: i64 = 1_500_000_000;
const WRAP_CRITICAL_LEFT: i64 = 500_000_000;
/// Sequences: three quarters of the range used, then nine tenths.
const SEQUENCE_WARNING_PCT: f64 = 75.0;
const SEQUENCE_CRITICAL_PCT: f64 = 90.0;

/// Every finding of `observed`, most severe first.
pub fn findings(observed: &Observed) -> Vec<Finding> {
    let mut found = Vec::new();
    for table in &observed.tables {
        table_findings(table, &mut found);
    }
    for database in &observed.databases {
        wraparound(Check::XidWraparound, &database.database, WRAP_LIMIT - database.xids_left, database.xids_left, "transaction ids", "VACUUM (FREEZE);", &mut found);
        wraparound(Check::MultixactWraparound, &database.database, WRAP_LIMIT - database.multixacts_left, database.multixacts_left, "multixact ids", "VACUUM (FREEZE);", &mut found);
    }
    autovacuum_findings(&observed.autovacuum, &mut found);
    for sequence in &observed.sequences {
        sequence_findings(sequence, &mut found);
    }
    for index in &observed.invalid_indexes {
        found.push(Finding {
            check: Check::InvalidIndex,
            severity: Severity::Warning,
            object: index.index.clone(),
            message: format!("invalid index on {} ({} bytes): it slows every write and serves no read", index.table, index.bytes),
            fix: Some(format!("REINDEX INDEX CONCURRENTLY {};", index.index)),
        });
    }
    found.sort_by(|a, b| b.severity.cmp(&a.severity));
    found
}

fn table_findings(t: &TableHealth, found: &mut Vec<Finding>) {
    let finding = |check, severity, message: String, fix: Option<String>| Finding { check, severity, object: t.table.clone(), message, fix };
    let vacuum_threshold = 50.0 + 0.2 * t.estimated_rows;
    if t.dead_tuples >= DEAD_MIN_ROWS && t.dead_ratio >= DEAD_WARNING_RATIO {
        let severity = if t.dead_ratio >= DEAD_CRITICAL_RATIO { Severity::Critical } else { Severity::Warning };
        let message = format!("{} dead rows, {:.0} % of the table", t.dead_tuples, t.dead_ratio * 100.0);
        found.push(finding(Check::DeadTuples, severity, message, Some(format!("VACUUM (ANALYZE) {};", t.table))));
    } else if t.dead_tuples as f64 > vacuum_threshold && t.vacuumed_seconds_ago.is_none_or(|s| s > STALE_VACUUM_SECONDS) {
        let message = format!("{} dead rows and no vacuum for over 10 days", t.dead_tuples);
        found.push(finding(Check::StaleVacuum, Severity::Warning, message, Some(format!("VACUUM (ANALYZE) {};", t.table))));
    }
    if t.bloat_estimable && t.bloat_pct >= BLOAT_WARNING.0 && t.bloat_bytes >= BLOAT_WARNING.1 {
        let severity = if t.bloat_pct >= BLOAT_CRITICAL.0 && t.bloat_bytes >= BLOAT_CRITICAL.1 { Severity::Critical } else { Severity::Warning };
        let message = format!(
            "about {} MB ({:.0} %) more than its rows need (estimate); VACUUM FULL gives it back but locks the table (ACCESS EXCLUSIVE) while it runs",
            t.bloat_bytes >> 20,
            t.bloat_pct
        );
        found.push(finding(Check::Bloat, severity, message, Some(format!("VACUUM (FULL, ANALYZE) {};", t.table))));
    }
    let analyzed = t.analyzed_seconds_ago;
    if analyzed.is_none() && (t.live_tuples > 0 || t.estimated_rows > 0.0) {
        found.push(finding(Check::NeverAnalyzed, Severity::Warning, "never analysed: the planner guesses its row counts".into(), Some(format!("ANALYZE {};", t.table))));
    } else if t.modified_since_analyze as f64 > 50.0 + 0.1 * t.estimated_rows && analyzed.is_some_and(|s| s > STALE_ANALYZE_SECONDS) {
        let message = format!("{} rows changed since the last analyze, over a day ago", t.modified_since_analyze);
        found.push(finding(Check::StaleAnalyze, Severity::Warning, message, Some(format!("ANALYZE {};", t.table))));
    }
    if t.unlogged {
        let message = "unlogged: emptied after a crash, never replicated nor in base backups".into();
        found.push(finding(Check::Unlogged, Severity::Info, message, Some(format!("ALTER TABLE {} SET LOGGED;", t.table))));
    }
    let table_fix = format!("VACUUM (FREEZE) {};", t.table);
    wraparound(Check::XidWraparound, &t.table, t.xid_age, WRAP_LIMIT - t.xid_age, "transaction ids", &table_fix, found);
    wraparound(Check::MultixactWraparound, &t.table, t.mxid_age, WRAP_LIMIT - t.mxid_age, "multixact ids", &table_fix, found);
}

fn wraparound(check: Check, object: &str, age: i64, left: i64, what: &str, fix: &str, found: &mut Vec<Finding>) {
    let severity = match left {
        l if l < WRAP_CRITICAL_LEFT => Severity::Critical,
        l if l < WRAP_WARNING_LEFT => Severity::Warning,
        _ => return,
    };
    found.push(Finding {
        check,
        severity,
        object: object.to_owned(),
        message: format!("{what}: age {age}, {left} left before the server stops assigning new ones"),
        fix: Some(fix.to_owned()),
    });
}

fn autovacuum_findings(a: &Autovacuum, found: &mut Vec<Finding>) {
    if !a.enabled {
        found.push(Finding {
            check: Check::AutovacuumOff,
            severity: Severity::Critical,
            object: "autovacuum".into(),
            message: "autovacuum is off: dead rows and freeze ages grow until someone vacuums by hand".into(),
            fix: Some("ALTER SYSTEM SET autovacuum = on; SELECT pg_reload_conf();".into()),
        });
    }
    if a.running >= a.max_workers && a.max_workers > 0 {
        found.push(Finding {
            check: Check::AutovacuumSaturated,
            severity: Severity::Warning,
            object: "autovacuum".into(),
            message: format!("all {} autovacuum workers are busy: tables wait their turn", a.max_workers),
            fix: None,
        });
    }
    if !a.blocked_pids.is_empty() {
        found.push(Finding {
            check: Check::AutovacuumBlocked,
            severity: Severity::Warning,
            object: "autovacuum".into(),
            message: format!("autovacuum workers {:?} wait for a lock held by sessions {:?}", a.blocked_pids, a.blocker_pids),
            fix: a.blocker_pids.first().map(|pid| format!("SELECT pg_cancel_backend({pid});")),
        });
    }
}

fn sequence_findings(s: &SequenceUse, found: &mut Vec<Finding>) {
    let Some(used) = s.used_pct else { return };
    if s.cycle || used < SEQUENCE_WARNING_PCT {
        return;
    }
    let severity = if used >= SEQUENCE_CRITICAL_PCT { Severity::Critical } else { Severity::Warning };
    let fix = if s.data_type == "bigint" { None } else { Some(format!("ALTER SEQUENCE {} AS bigint;", s.sequence)) };
    found.push(Finding {
        check: Check::SequenceExhaustion,
        severity,
        object: s.sequence.clone(),
        message: format!("{used:.1} % of its {} range used (widen the column it feeds too)", s.data_type),
        fix,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> TableHealth {
        TableHealth {
            table: sql::qualified("public", name),
            unlogged: false,
            bytes: 1 << 20,
            live_tuples: 10_000,
            dead_tuples: 0,
            dead_ratio: 0.0,
            modified_since_analyze: 0,
            estimated_rows: 10_000.0,
            vacuumed_seconds_ago: Some(60.0),
            analyzed_seconds_ago: Some(60.0),
            xid_age: 1_000,
            mxid_age: 1,
            bloat_estimable: true,
            bloat_bytes: 0,
            bloat_pct: 0.0,
        }
    }

    fn observed(tables: Vec<TableHealth>) -> Observed {
        Observed {
            tables,
            databases: Vec::new(),
            autovacuum: Autovacuum { enabled: true, max_workers: 3, running: 0, blocked_pids: vec![], blocker_pids: vec![], working_on: vec![] },
            sequences: Vec::new(),
            invalid_indexes: Vec::new(),
        }
    }

    fn checks(found: &[Finding]) -> Vec<(Check, Severity)> {
        found.iter().map(|f| (f.check, f.severity)).collect()
    }

    #[test]
    fn a_healthy_table_has_no_findings() {
        assert!(findings(&observed(vec![table("ok")])).is_empty());
    }

    #[test]
    fn each_problem_is_found_with_its_fix() {
        let mut dead = table("dead");
        (dead.dead_tuples, dead.dead_ratio) = (10_000, 0.5);
        let mut bloated = table("bloated");
        (bloated.bloat_pct, bloated.bloat_bytes) = (85.0, 300 << 20);
        let mut never = table("never");
        never.analyzed_seconds_ago = None;
        let mut old = table("old");
        old.xid_age = 1_800_000_000;
        let mut unlogged = table("unlogged");
        unlogged.unlogged = true;
        let found = findings(&observed(vec![dead, bloated, never, old, unlogged]));
        assert_eq!(
            checks(&found),
            [
                (Check::DeadTuples, Severity::Critical),
                (Check::Bloat, Severity::Critical),
                (Check::XidWraparound, Severity::Critical),
                (Check::NeverAnalyzed, Severity::Warning),
                (Check::Unlogged, Severity::Info),
            ]
        );
        assert_eq!(found[0].fix.as_deref(), Some("VACUUM (ANALYZE) \"public\".\"dead\";"));
        assert_eq!(found[3].fix.as_deref(), Some("ANALYZE \"public\".\"never\";"));
    }

    #[test]
    fn sequences_and_autovacuum_are_checked() {
        let mut o = observed(vec![]);
        o.autovacuum = Autovacuum { enabled: false, max_workers: 3, running: 3, blocked_pids: vec![9], blocker_pids: vec![4], working_on: vec![] };
        o.sequences = vec![
            SequenceUse { sequence: "\"public\".\"s\"".into(), data_type: "integer".into(), last_value: Some(2.0e9), used_pct: Some(93.0), cycle: false },
            SequenceUse { sequence: "\"public\".\"c\"".into(), data_type: "integer".into(), last_value: Some(2.0e9), used_pct: Some(93.0), cycle: true },
        ];
        let found = findings(&o);
        assert_eq!(
            checks(&found),
            [
                (Check::AutovacuumOff, Severity::Critical),
                (Check::SequenceExhaustion, Severity::Critical),
                (Check::AutovacuumSaturated, Severity::Warning),
                (Check::AutovacuumBlocked, Severity::Warning),
            ]
        );
        assert_eq!(found[1].fix.as_deref(), Some("ALTER SEQUENCE \"public\".\"s\" AS bigint;"));
        assert_eq!(found[3].fix.as_deref(), Some("SELECT pg_cancel_backend(4);"));
    }
}
