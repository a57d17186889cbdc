//! Running `EXPLAIN` safely: on the primary, inside a transaction that is always rolled back
//! (so `EXPLAIN ANALYZE` of a write changes nothing), under a statement timeout.

use std::time::Duration;

use serde_json::Value;

use super::Error;
use super::plan::{self, Explained};
use crate::db::{self, Target};
use crate::query::{self, Executor, run};

/// How far `EXPLAIN` may go.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// Run the statement (`EXPLAIN ANALYZE`, then roll back).
    pub analyze: bool,
    /// Run it even when it calls functions whose effects a rollback does not undo, or code
    /// dbagent cannot vouch for.
    pub allow_side_effects: bool,
    /// Whom it runs as (the caller's key): PostgreSQL checks the statement's privileges.
    pub login: db::Login,
}

/// Explains `sql` with `params`. With `mode.analyze` it runs it (then rolls back) — unless it
/// calls a function acting outside the transaction (refused, naming it) or code dbagent
/// cannot vouch for (explained without ANALYZE; the second value says why), and the caller
/// did not allow side effects.
pub async fn explain(exec: &Executor, sql: &str, params: &[Value], mode: Mode, timeout: Duration) -> Result<(Explained, Option<String>), Error> {
    let class = exec.classifier.classify(sql).map_err(query::Error::from)?;
    if let Some(reason) = &class.refused {
        return Err(Error::NotExplainable { reason: reason.clone() });
    }
    if !matches!(class.query_type, "select" | "insert" | "update" | "delete" | "merge") {
        return Err(Error::NotExplainable { reason: format!("EXPLAIN takes SELECT, INSERT, UPDATE, DELETE or MERGE, not {}", class.query_type) });
    }
    if mode.analyze {
        crate::security::allows(mode.login, &class).map_err(|reason| query::Error::Forbidden { reason })?;
    }
    let user_code = exec.guard.may_run_user_code(&class);
    let discard = user_code || class.effects.outside_transaction().is_some();
    let mut analyze = mode.analyze;
    let mut skipped = None;
    if analyze && !mode.allow_side_effects {
        if let Some(function) = class.effects.outside_transaction() {
            return Err(Error::NotExplainable {
                reason: format!(
                    "EXPLAIN ANALYZE runs the statement, and {function}() acts outside the transaction, so the rollback \
                     would not undo it; send \"analyze\": false, or \"allow_side_effects\": true to run it anyway"
                ),
            });
        }
        if user_code {
            analyze = false;
            skipped = Some(
                "not run (EXPLAIN without ANALYZE): the statement calls functions, or touches views or tables with \
                 triggers, that dbagent cannot vouch for; send \"allow_side_effects\": true to run it (rolled back)"
                    .to_owned(),
            );
        }
    }
    let options = if analyze { "ANALYZE, BUFFERS, FORMAT JSON" } else { "FORMAT JSON" };
    let explain_sql = format!("EXPLAIN ({options}) {sql}");
    let mut lease = exec.pools.acquire_as(Target::Write, None, mode.login).await?;
    lease.begin_use();
    let begin = format!("BEGIN; SET LOCAL statement_timeout = {}", timeout.as_millis().max(1));
    lease.client().simple_query(&begin).await.map_err(|e| db::Error::from_driver(e, false))?;
    let statement = run::Statement {
        mask: None,
        sql: &explain_sql,
        params,
        max_rows: 10,
        max_bytes: exec.limits.max_response_bytes,
        cache: false,
        autocommit_read_only: None,
        may_write: false,
        check_session: false,
    };
    let conn: &mut db::Conn = &mut lease;
    let result = run::execute(conn, &statement).await;
    // Always rolled back: EXPLAIN ANALYZE really ran the statement.
    match lease.client().simple_query("ROLLBACK").await {
        // User code or a function acting outside the transaction may have changed the session
        // (even planning can run an immutable function): not worth a check, it is discarded.
        Ok(_) if !discard => lease.end_use(),
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "ROLLBACK after EXPLAIN failed; discarding the connection"),
    }
    let rows = result.map_err(|e| match e {
        query::Error::Db(db::Error::Server(pg)) if pg.is("57014") => Error::Timeout { seconds: timeout.as_secs_f64() },
        other => Error::Query(other),
    })?;
    let value: Value = serde_json::from_slice(&rows.json).map_err(|e| Error::Plan(e.to_string()))?;
    let plan_json = value.get(0).and_then(|row| row.as_object()).and_then(|row| row.values().next()).cloned().unwrap_or(Value::Null);
    plan::parse(&plan_json).map_err(Error::Plan).map(|explained| (explained, skipped))
}

/// Highest `$n` in `sql` (from the parser's tokens, not a regex).
pub fn count_placeholders(sql: &str) -> usize {
    let Ok(scan) = pg_query::scan(sql) else { return 0 };
    scan.tokens
        .iter()
        .filter_map(|t| sql.get(t.start as usize..t.end as usize))
        .filter_map(|text| text.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_counted_by_token() {
        assert_eq!(count_placeholders("SELECT * FROM t WHERE a = $1 AND b = $2 AND c = '$3'"), 2);
        assert_eq!(count_placeholders("SELECT 1"), 0);
    }
}
