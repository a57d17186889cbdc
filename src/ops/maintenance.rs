//! Maintenance on demand: VACUUM and ANALYZE of a table or the whole database, and the progress
//! of whatever maintenance runs on the server (`GET /maintenance/progress`).
//!
//! VACUUM cannot run inside a transaction block, and a long one must not hold a pool
//! connection nor meet the API's statement timeout: each statement runs on a session of its
//! own (`db::admin`, `dbagent maintenance`), autocommit, without a statement timeout. VACUUM
//! FULL rewrites the table under an ACCESS EXCLUSIVE lock (no reads, no writes until done), so
//! it is refused unless the request says `force`. Table names are resolved through the catalog
//! (`to_regclass($1)`) and written into the statement quoted by `db::sql`.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio_postgres::Row;

use super::Error;
use crate::db::{self, Pools, sql};

/// `POST /maintenance/vacuum`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VacuumRequest {
    /// One table (`users`, `public.users`); the whole database when left out.
    pub table: Option<String>,
    /// Refresh the planner's statistics too.
    #[serde(default)]
    pub analyze: bool,
    /// Freeze every row (as if `vacuum_freeze_min_age` were 0): pushes wraparound away.
    #[serde(default)]
    pub freeze: bool,
    /// Rewrite the table to give space back to the OS: ACCESS EXCLUSIVE lock, needs `force`.
    #[serde(default)]
    pub full: bool,
    /// Return the server's per-table report.
    #[serde(default)]
    pub verbose: bool,
    #[serde(default)]
    pub force: bool,
}

/// `POST /maintenance/analyze`.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRequest {
    /// One table; the whole database when left out.
    pub table: Option<String>,
    #[serde(default)]
    pub verbose: bool,
}

/// What a VACUUM or ANALYZE did.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Maintained {
    /// The statement run.
    pub done: String,
    /// The table, qualified; `None` for the whole database.
    pub table: Option<String>,
    pub seconds: f64,
    /// The table's size (`pg_table_size`) or the database's, before and after.
    pub bytes_before: i64,
    pub bytes_after: i64,
    /// Dead rows the statistics counted, before and after (a table only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_tuples_before: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_tuples_after: Option<i64>,
    /// With `verbose`: the server's report, line by line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<String>,
}

/// A table as the catalog names it.
struct Relation {
    qualified: String,
    bytes: i64,
    dead_tuples: Option<i64>,
}

/// The table a user named.
async fn relation(pools: &Pools, table: &str) -> Result<Relation, Error> {
    relation_at(pools, &sql::regclass(table), table).await
}

/// The table `regclass` names (text for `to_regclass`, quoted already); `table` as the user
/// gave it, for the error.
async fn relation_at(pools: &Pools, regclass: &str, table: &str) -> Result<Relation, Error> {
    let rows = pools.primary().query(include_str!("sql/relation.sql"), &[&regclass]).await?;
    let row = rows.first().ok_or_else(|| Error::TableNotFound { table: table.to_owned() })?;
    let (schema, name): (String, String) = (db::get(row, "schema")?, db::get(row, "name")?);
    Ok(Relation { qualified: sql::qualified(&schema, &name), bytes: db::get(row, "bytes")?, dead_tuples: db::get(row, "dead_tuples")? })
}

async fn database_bytes(pools: &Pools) -> Result<i64, Error> {
    let rows = pools.primary().query("SELECT pg_database_size(current_database())::int8 AS bytes", &[]).await?;
    Ok(rows.first().map(|r| db::get(r, "bytes")).transpose()?.unwrap_or(0))
}

/// The VACUUM statement for `request` on `target` (qualified and quoted) or the database.
pub fn vacuum_statement(request: &VacuumRequest, target: Option<&str>) -> String {
    let options: Vec<&str> = [(request.full, "FULL"), (request.freeze, "FREEZE"), (request.verbose, "VERBOSE"), (request.analyze, "ANALYZE")]
        .into_iter()
        .filter_map(|(on, word)| on.then_some(word))
        .collect();
    let mut statement = String::from("VACUUM");
    if !options.is_empty() {
        statement.push_str(&format!(" ({})", options.join(", ")));
    }
    if let Some(target) = target {
        statement.push(' ');
        statement.push_str(target);
    }
    statement.push(';');
    statement
}

/// Why a VACUUM FULL needs `force`.
const FULL_REFUSAL: &str = "VACUUM FULL rewrites the table under an ACCESS EXCLUSIVE lock: nothing can read or write it until it \
     finishes, and it needs room for a whole new copy. A plain VACUUM makes the space reusable without blocking; pass \
     force: true to run VACUUM FULL anyway";

pub async fn vacuum(pools: &Pools, request: &VacuumRequest) -> Result<Maintained, Error> {
    if request.full && !request.force {
        return Err(Error::Refused(FULL_REFUSAL.into()));
    }
    let table = match &request.table {
        Some(name) => Some(relation(pools, name).await?),
        None => None,
    };
    let statement = vacuum_statement(request, table.as_ref().map(|t| t.qualified.as_str()));
    run(pools, statement, table).await
}

/// The ANALYZE statement for `target` or the database.
pub fn analyze_statement(verbose: bool, target: Option<&str>) -> String {
    let mut statement = String::from(if verbose { "ANALYZE VERBOSE" } else { "ANALYZE" });
    if let Some(target) = target {
        statement.push(' ');
        statement.push_str(target);
    }
    statement.push(';');
    statement
}

pub async fn analyze(pools: &Pools, request: &AnalyzeRequest) -> Result<Maintained, Error> {
    let table = match &request.table {
        Some(name) => Some(relation(pools, name).await?),
        None => None,
    };
    let statement = analyze_statement(request.verbose, table.as_ref().map(|t| t.qualified.as_str()));
    run(pools, statement, table).await
}

/// Runs `statement` on a maintenance session and measures what it changed.
async fn run(pools: &Pools, statement: String, table: Option<Relation>) -> Result<Maintained, Error> {
    let bytes_before = match &table {
        Some(t) => t.bytes,
        None => database_bytes(pools).await?,
    };
    let started = Instant::now();
    let messages = execute(&pools.admin_config(), &statement).await?;
    let seconds = started.elapsed().as_secs_f64();
    let (bytes_after, dead_after, qualified, dead_before) = match table {
        Some(t) => {
            let after = relation_at(pools, &t.qualified, &t.qualified).await?;
            (after.bytes, after.dead_tuples, Some(t.qualified), t.dead_tuples)
        }
        None => (database_bytes(pools).await?, None, None, None),
    };
    Ok(Maintained {
        done: statement,
        table: qualified,
        seconds,
        bytes_before,
        bytes_after,
        dead_tuples_before: dead_before,
        dead_tuples_after: dead_after,
        messages,
    })
}

/// Runs one maintenance statement on a session of its own and returns the server's notices.
pub async fn execute(admin: &crate::db::PgConfig, statement: &str) -> Result<Vec<String>, Error> {
    let (client, notices) = db::admin::connect_noting(admin, db::Purpose::Maintenance)
        .await
        .map_err(|e| db::Error::Unavailable { reason: db::error_chain(&e) })?;
    client.batch_execute(statement).await.map_err(Error::driver)?;
    drop(client);
    let lines = notices.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(lines)
}

/// One maintenance command running on the server.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Progress {
    /// `VACUUM`, `VACUUM FULL`, `CLUSTER`, `ANALYZE`, `CREATE INDEX CONCURRENTLY`, `REINDEX` ...
    pub command: String,
    pub pid: i32,
    pub database: Option<String>,
    pub relation: Option<String>,
    pub phase: Option<String>,
    /// Blocks done and to do in the current phase's scan.
    pub done: i64,
    pub total: i64,
    /// `done / total` as a percentage (`None` while the total is unknown).
    pub pct: Option<f64>,
    pub seconds: Option<f64>,
    /// The session's `application_name`.
    pub application: Option<String>,
}

fn progress_from_row(row: &Row) -> Result<Progress, db::Error> {
    let done: Option<i64> = db::get(row, "done")?;
    let total: Option<i64> = db::get(row, "total")?;
    let (done, total) = (done.unwrap_or(0), total.unwrap_or(0));
    Ok(Progress {
        command: db::get(row, "command")?,
        pid: db::get(row, "pid")?,
        database: db::get(row, "database")?,
        relation: db::get(row, "relation")?,
        phase: db::get(row, "phase")?,
        done,
        total,
        pct: (total > 0).then(|| (done as f64 * 100.0 / total as f64).min(100.0)),
        seconds: db::get(row, "seconds")?,
        application: db::get(row, "application")?,
    })
}

/// Every VACUUM, CLUSTER, ANALYZE, CREATE INDEX and REINDEX running on the server now.
pub async fn progress(pools: &Pools) -> Result<Vec<Progress>, Error> {
    let rows = pools.primary().query(include_str!("sql/progress.sql"), &[]).await?;
    Ok(rows.iter().map(progress_from_row).collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vacuum_statements_name_their_options() {
        let plain = VacuumRequest::default();
        assert_eq!(vacuum_statement(&plain, None), "VACUUM;");
        let all = VacuumRequest { analyze: true, freeze: true, full: true, verbose: true, ..VacuumRequest::default() };
        assert_eq!(vacuum_statement(&all, Some("public.\"Orders\"")), "VACUUM (FULL, FREEZE, VERBOSE, ANALYZE) public.\"Orders\";");
        assert_eq!(analyze_statement(false, Some("public.t")), "ANALYZE public.t;");
        assert_eq!(analyze_statement(true, None), "ANALYZE VERBOSE;");
    }
}
