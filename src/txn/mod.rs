//! Running a list of statements as one transaction on the primary, re-running the whole
//! transaction after a serialization failure (40001) or deadlock (40P01), with exponential
//! backoff and jitter.
//!
//! Invariants:
//! - a COMMIT whose answer was lost is reported as `OutcomeUnknown` and never re-run;
//! - a failed or abandoned transaction never returns its connection to the pool mid-transaction
//!   (the connection is rolled back, or discarded when that is not certain);
//! - statements that end or begin transactions, or change the session, are refused up front.

mod error;

pub use error::Error;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::config::{Backoff, IsolationLevel, Transactions};
use crate::db::{self, Lease, Lsn, PgError, Target};
use crate::query::Classification;
use crate::query::classify::TransactionControl;
use crate::query::{self, Executor, Rows, run};

/// Longest pause between two attempts, whatever the backoff says.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// One statement of a transaction.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatementRequest {
    pub sql: String,
    #[serde(default, deserialize_with = "crate::query::null_as_empty")]
    pub params: Vec<Value>,
}

/// A `/transaction` request.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransactionRequest {
    pub queries: Vec<StatementRequest>,
    /// Default: `transactions.isolation_level`.
    #[serde(default)]
    pub isolation_level: Option<IsolationLevel>,
    #[serde(default)]
    pub read_only: bool,
    /// Only meaningful for SERIALIZABLE READ ONLY: wait for a safe snapshot, never fail.
    #[serde(default)]
    pub deferrable: bool,
    /// Default: `transactions.max_retries`.
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// Whom the statements run as (the caller's key; not part of the request body).
    #[serde(skip)]
    pub login: db::Login,
    /// The caller's results are masked (`security::masking`; not part of the request body).
    #[serde(skip)]
    pub masked: bool,
}

impl TransactionRequest {
    /// One statement in a transaction with the configured defaults (`/query` with
    /// `transaction: true`, `dbagent query --transaction`).
    pub fn single(sql: String, params: Vec<Value>) -> Self {
        TransactionRequest {
            queries: vec![StatementRequest { sql, params }],
            isolation_level: None,
            read_only: false,
            deferrable: false,
            max_retries: None,
            login: db::Login::Service,
            masked: false,
        }
    }
}

/// Result of one statement inside the transaction.
#[derive(Debug)]
pub struct StatementOutput {
    pub query_type: &'static str,
    pub rows: Rows,
}

/// A committed transaction.
#[derive(Debug)]
pub struct TransactionOutput {
    pub results: Vec<StatementOutput>,
    pub retries: u32,
    pub isolation_level: IsolationLevel,
    pub read_only: bool,
    pub execution_time: Duration,
    /// A WAL position at or past the COMMIT (read-write transactions).
    pub commit_lsn: Option<Lsn>,
}

/// How one attempt ended.
enum Attempt {
    Committed(Vec<StatementOutput>, Option<Lsn>),
    /// Serialization failure or deadlock: worth re-running.
    Conflict(PgError),
}

/// Runs `request` as one transaction, with the retry policy of `policy`.
pub async fn run(exec: &Executor, policy: &Transactions, request: &TransactionRequest) -> Result<TransactionOutput, Error> {
    let started = Instant::now();
    let result = run_inner(exec, policy, request, started).await;
    let retries = match &result {
        Ok(out) => out.retries,
        Err(Error::RetriesExhausted { attempts, .. }) => attempts.saturating_sub(1),
        Err(_) => 0,
    };
    exec.stats.record_transaction(crate::monitor::Outcome::of(&result), retries);
    result
}

async fn run_inner(
    exec: &Executor,
    policy: &Transactions,
    request: &TransactionRequest,
    started: Instant,
) -> Result<TransactionOutput, Error> {
    let classes = check(exec, request)?;
    let isolation = request.isolation_level.unwrap_or(policy.isolation_level);
    let max_retries = request.max_retries.unwrap_or(policy.max_retries);
    let begin = begin_sql(isolation, request.read_only, request.deferrable);
    // What user code changes with session scope (set_config(..., false) in a function, say)
    // outlives the COMMIT: the session is checked after it, in the same round trip.
    let user_code = classes.iter().any(|class| exec.guard.may_run_user_code(class));
    let mut attempt = 0u32;
    loop {
        let mut lease = exec.pools.acquire_as(Target::Write, None, request.login).await.map_err(Error::Db)?;
        match run_attempt(exec, &mut lease, &begin, request, &classes, user_code).await? {
            Attempt::Committed(results, commit_lsn) => {
                drop(lease);
                if classes.iter().any(|c| crate::query::guard::changes_catalog(c.query_type)) {
                    exec.refresh_guard().await;
                }
                if let (Some(cache), false) = (&exec.cache, request.read_only) {
                    // Before the answer goes out; reads inside the transaction are not cached.
                    for class in classes.iter().filter(|c| !c.is_read_only()) {
                        cache.wrote(class).await;
                    }
                }
                return Ok(TransactionOutput {
                    results,
                    commit_lsn,
                    retries: attempt,
                    isolation_level: isolation,
                    read_only: request.read_only,
                    execution_time: started.elapsed(),
                });
            }
            Attempt::Conflict(pg) if attempt < max_retries => {
                drop(lease);
                let pause = backoff(policy, attempt);
                tracing::debug!(attempt, sqlstate = %pg.sqlstate, pause_ms = pause.as_millis() as u64, "transaction conflict; re-running");
                tokio::time::sleep(pause).await;
                attempt += 1;
            }
            Attempt::Conflict(last) => return Err(Error::RetriesExhausted { attempts: attempt + 1, last }),
        }
    }
}

/// Classifies every statement before anything runs, so a bad one changes nothing.
fn check(exec: &Executor, request: &TransactionRequest) -> Result<Vec<Arc<Classification>>, Error> {
    if request.queries.is_empty() {
        return Err(Error::Empty);
    }
    request
        .queries
        .iter()
        .enumerate()
        .map(|(index, q)| {
            let class = exec.classifier.classify(&q.sql).map_err(|e| Error::statement(index, e.into()))?;
            if let Some(reason) = &class.refused {
                return Err(Error::statement(index, query::Error::NotAllowed { reason: reason.clone() }));
            }
            if let Err(reason) = crate::security::allows(request.login, &class) {
                return Err(Error::statement(index, query::Error::Forbidden { reason }));
            }
            if class.transaction_control == Some(TransactionControl::Boundary) {
                let reason = "dbagent begins and commits the transaction itself; use SAVEPOINT for nested units".into();
                return Err(Error::statement(index, query::Error::NotAllowed { reason }));
            }
            Ok(class)
        })
        .collect()
}

fn begin_sql(isolation: IsolationLevel, read_only: bool, deferrable: bool) -> String {
    let access = if read_only { "READ ONLY" } else { "READ WRITE" };
    let deferrable = if deferrable && read_only && isolation == IsolationLevel::Serializable { " DEFERRABLE" } else { "" };
    format!("BEGIN ISOLATION LEVEL {} {access}{deferrable}", isolation.sql())
}

/// One attempt: BEGIN, every statement, COMMIT. The connection is marked busy throughout and
/// only released as clean once the transaction is over one way or the other.
async fn run_attempt(
    exec: &Executor,
    lease: &mut Lease<'_>,
    begin: &str,
    request: &TransactionRequest,
    classes: &[Arc<Classification>],
    user_code: bool,
) -> Result<Attempt, Error> {
    lease.begin_use();
    let begun = lease.client().simple_query(begin).await;
    begun.map_err(|e| Error::Db(db::Error::from_driver(e, false)))?;
    let mut results: Vec<StatementOutput> = Vec::with_capacity(request.queries.len());
    for (index, (q, class)) in request.queries.iter().zip(classes).enumerate() {
        let query_type = class.query_type;
        // One budget for the whole answer: what earlier statements returned counts.
        let spent: usize = results.iter().map(|r| r.rows.json.len()).sum();
        let statement = run::Statement {
            sql: &q.sql,
            params: &q.params,
            max_rows: exec.limits.max_rows,
            max_bytes: exec.limits.max_response_bytes.saturating_sub(spent),
            cache: exec.limits.cache_statements && query::caches_well(query_type),
            autocommit_read_only: None,
            // Before COMMIT nothing is durable: a lost connection means "not committed".
            may_write: false,
            check_session: false,
            mask: exec.mask(request.masked, class),
        };
        let cancel = query::cancel_on_timeout(lease.canceller());
        let conn: &mut db::Conn = lease;
        match exec.with_timeout(cancel, run::execute(conn, &statement)).await {
            Ok(rows) => results.push(StatementOutput { query_type, rows }),
            Err(err) => {
                rollback(lease).await;
                if user_code {
                    // Rare enough not to be worth a check: the session may have changed.
                    lease.taint();
                }
                return match err {
                    query::Error::Db(db::Error::Server(pg)) if pg.is_retryable() => Ok(Attempt::Conflict(pg)),
                    err => Err(Error::statement(index, err)),
                };
            }
        }
    }
    let first_sql = request.queries.first().map_or("", |q| q.sql.as_str());
    commit(lease, results, !request.read_only && exec.limits.report_commit_lsn, user_code, first_sql).await
}

/// COMMIT, and for a read-write transaction the WAL position after it, in one round trip.
/// With `check_session`, the session check follows in the same round trip.
async fn commit(
    lease: &mut Lease<'_>,
    results: Vec<StatementOutput>,
    report_lsn: bool,
    check_session: bool,
    first_sql: &str,
) -> Result<Attempt, Error> {
    let lsn_statement = match report_lsn {
        true => run::lsn_statement(lease).await.ok(),
        false => None,
    };
    let check_statement = match check_session {
        true => run::check_statement(lease).await.ok(),
        false => None,
    };
    if check_session && check_statement.is_none() {
        lease.taint();
    }
    let client = lease.client();
    let lsn = async {
        match &lsn_statement {
            Some(statement) => run::commit_lsn(client, statement).await,
            None => None,
        }
    };
    let conn: &db::Conn = lease;
    let check = async {
        if let Some(statement) = &check_statement {
            run::check_session(conn, statement).await;
        }
    };
    let (committed, lsn, ()) = tokio::join!(client.simple_query("COMMIT"), lsn, check);
    // The server committed, but the answer is "lost" on the way back.
    #[cfg(not(feature = "failpoints"))]
    let _ = first_sql;
    #[cfg(feature = "failpoints")]
    if committed.is_ok() && crate::failpoints::fire("txn-commit-answer-lost", first_sql) {
        return Err(Error::OutcomeUnknown);
    }
    match committed {
        Ok(_) => {
            lease.end_use();
            Ok(Attempt::Committed(results, lsn))
        }
        Err(err) => match err.as_db_error().map(PgError::from_db) {
            // Serialization failures can surface at COMMIT; the transaction is gone, retry.
            Some(pg) if pg.is_retryable() => {
                lease.end_use();
                Ok(Attempt::Conflict(pg))
            }
            Some(pg) => {
                lease.end_use();
                Err(Error::Commit(pg))
            }
            None => Err(Error::OutcomeUnknown),
        },
    }
}

/// Rolls back after a failed statement. If that fails too, the connection stays marked busy
/// and the pool discards it, which rolls back on the server.
async fn rollback(lease: &mut Lease<'_>) {
    if lease.client().is_closed() {
        return;
    }
    // Bounded: after a client-side timeout the connection may still be busy with the query.
    match tokio::time::timeout(Duration::from_secs(2), lease.client().simple_query("ROLLBACK")).await {
        Ok(Ok(_)) => lease.end_use(),
        Ok(Err(err)) => tracing::warn!(error = %err, "ROLLBACK failed; discarding the connection"),
        Err(_) => tracing::warn!("ROLLBACK did not answer in time; discarding the connection"),
    }
}

/// Pause before re-run number `attempt + 1`: exponential (or constant) with jitter drawn
/// from the upper half, so concurrent losers spread out instead of colliding again.
fn backoff(policy: &Transactions, attempt: u32) -> Duration {
    let base = policy.retry_delay.max(0.0);
    let nominal = match policy.backoff {
        Backoff::Exponential => base * 2f64.powi(attempt.min(16) as i32),
        Backoff::Constant => base,
    };
    let nominal = nominal.min(MAX_BACKOFF.as_secs_f64());
    Duration::from_secs_f64(nominal * (0.5 + fastrand::f64() * 0.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_stays_bounded() {
        let policy = Transactions { retry_delay: 0.1, ..Transactions::default() };
        for attempt in 0..5 {
            let d = backoff(&policy, attempt).as_secs_f64();
            let nominal = 0.1 * 2f64.powi(attempt as i32);
            assert!(d >= nominal * 0.5 - 1e-9 && d <= nominal + 1e-9, "attempt {attempt}: {d}");
        }
        assert!(backoff(&policy, 40) <= MAX_BACKOFF);
        let constant = Transactions { retry_delay: 0.2, backoff: Backoff::Constant, ..Transactions::default() };
        assert!(backoff(&constant, 5).as_secs_f64() <= 0.2 + 1e-9);
    }

    #[test]
    fn begin_statement_matches_the_request() {
        assert_eq!(begin_sql(IsolationLevel::ReadCommitted, false, false), "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE");
        assert_eq!(
            begin_sql(IsolationLevel::Serializable, true, true),
            "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE"
        );
        assert_eq!(begin_sql(IsolationLevel::RepeatableRead, true, true), "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    }
}
