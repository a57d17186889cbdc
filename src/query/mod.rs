//! Running single statements: classification, routing, timeouts, results, slow-query log.
//!
//! A statement classified as a read runs READ ONLY — on a healthy replica when there is one —
//! so the database itself checks the classification: if a "read" turns out to write
//! (a volatile function, say), it fails there with SQLSTATE 25006, is re-run on the primary
//! as a write, and is routed as a write from then on.

pub mod classify;
pub mod effects;
mod error;
pub mod guard;
pub mod rows;
pub mod run;
mod caller;

pub use classify::{Classification, Classifier, ClassifyError};
pub use error::Error;
pub use rows::{ColumnInfo, Rows};
pub use caller::CallerCommits;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::cache::Cache;
use crate::config::Config;
use crate::db::{self, Lease, Lsn, Pools, Setup, Shared, Target};
use crate::monitor::Stats;
use crate::security::{self, masking::Masking};
use crate::timing;

/// Extra time the client waits beyond the server-side `statement_timeout` before it cancels
/// the query itself (the server should always act first; this covers a hung network).
const CLIENT_TIMEOUT_GRACE: Duration = Duration::from_secs(2);

/// How long a cancel request may take (connect, send, the server closing it).
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads that typically return more rows than this never share a connection. tokio-postgres
/// hands each answer's rows to its request through a channel one batch deep, so a request that
/// is slow to take its many rows holds up every answer behind it on the connection: measured
/// on 100-row reads at 64 clients, sharing raised throughput by half but tripled p99
/// (BENCHMARKS.md). Small answers pass through at once.
const MULTIPLEX_MAX_ROWS: u32 = 16;

/// SQLSTATE of "cannot execute ... in a read-only transaction".
const READ_ONLY_VIOLATION: &str = "25006";

/// A `/query` request (seed 000's contract).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    pub sql: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub params: Vec<Value>,
    /// Run inside an explicit transaction (with the retry policy of `/transaction`).
    #[serde(default)]
    pub transaction: bool,
    /// Serve a read from the result cache when caching is on and the statement may be cached.
    #[serde(default)]
    pub use_cache: bool,
    /// Read-your-writes: a replica serves this read only if it has replayed at least this WAL
    /// position (a `commit_lsn` from an earlier write); otherwise the primary does.
    #[serde(default)]
    pub min_lsn: Option<Lsn>,
    /// `eventual` (default: any usable replica), `read_your_writes` (at least the last
    /// `commit_lsn` of the caller's session) or `strong` (always the primary).
    #[serde(default)]
    pub consistency: Consistency,
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    #[default]
    Eventual,
    ReadYourWrites,
    Strong,
}

/// Where a read may be served from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freshness {
    /// Only replicas that replayed at least this far.
    pub min_lsn: Option<Lsn>,
    /// Only the primary.
    pub primary_only: bool,
    /// Whom the statement runs as: a caller's scope, enforced by PostgreSQL (see `security`).
    pub login: db::Login,
    /// The caller's results are masked (`security::masking`; no effect without rules).
    pub masked: bool,
}

/// `params: null` means no parameters (shared by `/transaction`'s statements).
pub(crate) fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    Ok(Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default())
}

/// The outcome of one statement.
#[derive(Debug)]
pub struct QueryOutput {
    pub rows: Rows,
    pub query_type: &'static str,
    pub execution_time: Duration,
    /// `primary` or `replica-N`.
    pub served_by: String,
    /// For a write: a WAL position at or past its commit (see [`Freshness::min_lsn`]).
    pub commit_lsn: Option<Lsn>,
    /// A WAL position the data read is at least as new as (the server's position at its last
    /// check); what a cached copy of this result is stamped with.
    pub data_lsn: Lsn,
    /// Served from the result cache.
    pub from_cache: bool,
    /// `use_cache` was asked for but this statement may not be cached: why.
    pub cache_bypass: Option<String>,
}

/// Limits and switches every statement obeys.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_rows: usize,
    /// `postgresql.max_response_bytes`: row JSON per answer.
    pub max_response_bytes: usize,
    pub query_timeout: Duration,
    pub cache_statements: bool,
    pub slow_query_threshold: Option<Duration>,
    pub echo_sql: bool,
    /// Answer writes with `commit_lsn` (one more statement in the same round trip). On when
    /// there are read replicas, the only case where a reader can use it.
    pub report_commit_lsn: bool,
    /// Reads known to take no longer than this may share a connection (`db::Shared`).
    pub multiplex_max: Duration,
}

impl Limits {
    pub fn from_config(config: &Config) -> Self {
        let opt = &config.optimization;
        Limits {
            max_rows: config.postgresql.max_rows,
            max_response_bytes: config.postgresql.max_response_bytes,
            query_timeout: config.postgresql.query_timeout(),
            cache_statements: opt.prepared_statements,
            slow_query_threshold: opt.slow_query_log.then(|| Duration::from_secs_f64(opt.slow_query_threshold_ms / 1000.0)),
            echo_sql: config.postgresql.echo_sql,
            report_commit_lsn: !config.postgresql.read_replicas.is_empty() || config.replication.replicas > 0,
            multiplex_max: Duration::from_secs_f64(config.postgresql.connection_pool.multiplex_max_ms / 1000.0),
        }
    }
}

/// Runs statements against the pools. Cheap to share behind an `Arc`.
pub struct Executor {
    pub pools: Arc<Pools>,
    pub classifier: Classifier,
    pub stats: Arc<Stats>,
    pub limits: Limits,
    /// Last commit positions of callers (read-your-writes).
    pub caller_commits: CallerCommits,
    /// The result cache, when enabled.
    pub cache: Option<Arc<Cache>>,
    /// What in the catalog runs user code (session checks after statements that may run it).
    pub guard: guard::Guard,
    /// Column masking, when rules are configured.
    pub masking: Option<Arc<Masking>>,
}

impl Executor {
    pub fn new(pools: Arc<Pools>, stats: Arc<Stats>, limits: Limits) -> Self {
        Executor {
            pools,
            classifier: Classifier::default(),
            stats,
            limits,
            caller_commits: CallerCommits::default(),
            cache: None,
            guard: guard::Guard::default(),
            masking: None,
        }
    }

    /// Runs one statement outside any explicit transaction (autocommit). A read is served
    /// by a replica only when `freshness` allows it.
    pub async fn query(&self, sql: &str, params: &[Value], freshness: Freshness) -> Result<QueryOutput, Error> {
        let started = Instant::now();
        let result = self.query_inner(sql, params, freshness).await;
        let elapsed = started.elapsed();
        self.stats.record_query(result.is_ok());
        self.record_statement(sql, &result);
        self.log_statement(sql, params.len(), elapsed, result.as_ref().ok().map(|o| o.query_type));
        result.map(|mut out| {
            out.execution_time = elapsed;
            out
        })
    }

    /// [`Executor::query`] through the result cache (`use_cache: true`): a read that may be
    /// cached is answered from a valid entry, or run and stored. `identity` separates callers.
    pub async fn query_cached(&self, sql: &str, params: &[Value], freshness: Freshness, identity: &str) -> Result<QueryOutput, Error> {
        let Some(cache) = &self.cache else {
            return self.query(sql, params, freshness).await.map(|mut out| {
                out.cache_bypass = Some("the query cache is disabled".into());
                out
            });
        };
        let class = self.classifier.classify(sql)?;
        // Masked and unmasked results never share an entry, nor results masked under rules
        // resolved differently.
        let caller = identity;
        let identity = match (&self.masking, freshness.masked) {
            (Some(masking), true) => format!("{caller}|{}", masking.profile()),
            _ => caller.to_owned(),
        };
        let plan = match freshness.primary_only {
            true => Err("consistency \"strong\" reads from the primary".to_string()),
            false => cache.plan(&class, &identity, sql, params).await,
        };
        let plan = match plan {
            Ok(plan) => plan,
            Err(reason) => {
                tracing::debug!(reason, "not cached");
                let mut out = self.query(sql, params, freshness).await?;
                out.cache_bypass = Some(reason);
                return Ok(out);
            }
        };
        let started = Instant::now();
        if let Some(rows) = cache.get(&plan, freshness.min_lsn).await {
            self.stats.record_cache(true);
            self.stats.record_query(true);
            self.stats.record_statement(class.query_type, crate::monitor::Served::Cache, crate::monitor::Outcome::Ok);
            let out = QueryOutput {
                rows,
                query_type: class.query_type,
                execution_time: started.elapsed(),
                served_by: "cache".into(),
                commit_lsn: None,
                data_lsn: Lsn(0),
                from_cache: true,
                cache_bypass: None,
            };
            return Ok(out);
        }
        self.stats.record_cache(false);
        let snapshot = cache.snapshot(&plan).await;
        let out = self.query(sql, params, freshness).await?;
        // A masked result is stored under the generation it was masked with, which a catalog
        // read for a relation masking did not know yet may have moved on while it ran.
        let plan = match (freshness.masked, out.rows.mask_generation) {
            (true, Some(generation)) => plan.rekeyed(&format!("{caller}|{}", Masking::profile_of(generation)), sql, params),
            _ => plan,
        };
        // Stored only if it really ran READ ONLY (not re-run as a write) and is not truncated.
        if let Some(snapshot) = snapshot
            && class.is_read_only()
            && !out.rows.truncated
        {
            cache.put(&plan, snapshot, &out.rows, out.data_lsn).await;
        }
        Ok(out)
    }

    async fn query_inner(&self, sql: &str, params: &[Value], freshness: Freshness) -> Result<QueryOutput, Error> {
        let class = self.classifier.classify(sql)?;
        timing::mark("classify");
        if let Some(reason) = &class.refused {
            return Err(Error::NotAllowed { reason: reason.clone() });
        }
        if class.transaction_control.is_some() {
            return Err(Error::NotAllowed {
                reason: "transaction control belongs in /transaction, which runs a list of statements in one transaction".into(),
            });
        }
        crate::security::allows(freshness.login, &class).map_err(|reason| Error::Forbidden { reason })?;
        // A statement that may run user code never shares a connection: a change to the
        // session would hit concurrent callers before the check after it could contain it.
        let user_code = self.guard.may_run_user_code(&class);
        if class.is_read_only()
            && !user_code
            && class.runs_within(self.limits.multiplex_max, MULTIPLEX_MAX_ROWS)
            && let Some((shared, setup)) = self.pools.share_read(freshness.min_lsn, freshness.primary_only, freshness.login).await?
        {
            timing::mark("acquire");
            let shared = self.run_shared(shared, setup, sql, params, &class, freshness.masked).await;
            timing::mark("db");
            match shared {
                Err(Error::Db(db::Error::Server(pg))) if pg.is(READ_ONLY_VIOLATION) => {
                    tracing::debug!("statement classified as a read writes; re-running it on the primary");
                    class.demote_to_write();
                }
                // The shared connection was lost: a read is safe to run again, on a connection
                // of its own (which the pool checks or opens afresh).
                Err(Error::Db(db::Error::Unavailable { reason })) => {
                    tracing::debug!(reason, "shared connection lost; running the read on a connection of its own");
                }
                other => return other,
            }
        }
        let read = class.is_read_only();
        let target = if read && !freshness.primary_only { Target::Read } else { Target::Write };
        // A read whose connection died under it (its backend terminated, the server restarted)
        // is safe to run again, once, on a fresh connection, as the shared path does: the caller
        // should not see a 503 for a statement that changed nothing. The broken connection was
        // already dropped (its lease never ended its use), so the pool checks or opens another.
        // (`class` is read again: a "read" the server caught writing has been demoted.)
        let mut may_retry = read && !user_code;
        let result = loop {
            let lease = self.pools.acquire_as(target, freshness.min_lsn, freshness.login).await?;
            timing::mark("acquire");
            let result = self.run_autocommit_routed(lease, sql, params, &class, read, user_code, freshness).await;
            timing::mark("db");
            match &result {
                Err(Error::Db(db::Error::Unavailable { reason })) if may_retry && class.is_read_only() => {
                    tracing::debug!(reason, "connection lost under a read; running it once more on a fresh connection");
                    may_retry = false;
                }
                _ => break result,
            }
        };
        if let (Ok(_), Some(cache)) = (&result, &self.cache)
            && !class.is_read_only()
        {
            cache.wrote(&class).await; // before the answer goes out
        }
        if result.is_ok() && guard::changes_catalog(class.query_type) {
            self.refresh_guard().await; // a new function, trigger or view is known at once
            self.refresh_masking().await; // and a new comment or view to masking
        }
        result
    }

    /// Reads again what in the catalog runs user code (see [`guard::Guard`]).
    pub async fn refresh_guard(&self) {
        let refreshed = match self.pools.acquire(Target::Write).await {
            Ok(mut lease) => {
                lease.begin_use();
                let refreshed = self.guard.refresh(lease.client()).await;
                if refreshed.is_ok() {
                    lease.end_use();
                }
                refreshed.map_err(|e| db::error_chain(&e))
            }
            Err(err) => Err(err.to_string()),
        };
        if let Err(error) = refreshed {
            tracing::warn!(error, "could not read which functions, triggers and views run user code");
        }
    }

    /// Resolves the masking rules again (see [`Masking::refresh`]), when there are any.
    pub async fn refresh_masking(&self) {
        if let Some(masking) = &self.masking
            && let Err(err) = masking.refresh().await
        {
            tracing::warn!(error = %db::error_chain(&err), "could not read the catalog for masking; unknown columns are redacted");
        }
    }

    /// Runs on `lease`; a read the server refuses as a write is re-run on the primary.
    async fn run_autocommit_routed(
        &self,
        mut lease: Lease<'_>,
        sql: &str,
        params: &[Value],
        class: &Classification,
        read: bool,
        user_code: bool,
        freshness: Freshness,
    ) -> Result<QueryOutput, Error> {
        let (login, masked) = (freshness.login, freshness.masked);
        match self.run_autocommit(&mut lease, sql, params, class, read, user_code, masked).await {
            Err(Error::Db(db::Error::Server(pg))) if read && pg.is(READ_ONLY_VIOLATION) => {
                tracing::debug!("statement classified as a read writes; re-running it on the primary");
                class.demote_to_write();
                drop(lease);
                if login == db::Login::Read {
                    return Err(Error::Forbidden { reason: "this API key may only read, and the statement writes".into() });
                }
                let mut lease = self.pools.acquire_as(Target::Write, None, login).await?;
                self.run_autocommit(&mut lease, sql, params, class, false, user_code, masked).await
            }
            Err(Error::Db(db::Error::Server(pg))) if !read && pg.is(READ_ONLY_VIOLATION) => {
                // A write refused on the "primary": it is a standby now. Evict, never reuse.
                lease.mark_broken();
                Err(Error::Db(db::Error::NotPrimary))
            }
            other => other,
        }
    }

    /// Runs a short read on a connection it shares with other reads (already read-only).
    async fn run_shared(
        &self,
        shared: Shared<'_>,
        setup: Option<Setup>,
        sql: &str,
        params: &[Value],
        class: &Classification,
        masked: bool,
    ) -> Result<QueryOutput, Error> {
        // Shared connections are read-only already: no mode switch.
        let statement = self.autocommit_statement(sql, params, class, None, false, masked);
        let (served_by, data_lsn) = self.served_by(shared.replica);
        let started = Instant::now();
        // A client-side timeout cannot cancel one statement of a shared session: the
        // connection is taken out of service instead (the server's statement_timeout, set on
        // every connection, cancels the statement itself).
        let run = self.with_timeout(|| shared.discard(), run::execute_shared(shared.conn(), &statement));
        let setup = async {
            match setup {
                Some(setup) => setup.await,
                None => Ok(()),
            }
        };
        let (setup, result) = tokio::join!(setup, run);
        // The server's time, not the wait behind other statements: under load the queue would
        // otherwise make every statement look long and take it off the shared connections.
        class.record_run(shared.service_time(started), result.as_ref().ok().map(|rows| rows.row_count));
        if let Err(err) = setup {
            shared.discard();
            return Err(Error::Db(err));
        }
        if let Err(err) = &result
            && !run::leaves_connection_clean_after(err)
        {
            shared.discard();
        }
        result.map(|rows| QueryOutput {
            rows,
            query_type: class.query_type,
            execution_time: Duration::ZERO,
            served_by,
            commit_lsn: None,
            data_lsn,
            from_cache: false,
            cache_bypass: None,
        })
    }

    /// One autocommit statement under this executor's limits; `read_only`: the session mode it
    /// needs (`None`: the connection is known to be in read-only mode already).
    fn autocommit_statement<'a>(
        &'a self,
        sql: &'a str,
        params: &'a [Value],
        class: &'a Classification,
        read_only: Option<bool>,
        check_session: bool,
        masked: bool,
    ) -> run::Statement<'a> {
        run::Statement {
            sql,
            params,
            max_rows: self.limits.max_rows,
            max_bytes: self.limits.max_response_bytes,
            cache: self.limits.cache_statements && caches_well(class.query_type),
            autocommit_read_only: read_only,
            may_write: read_only == Some(false),
            check_session,
            mask: self.mask(masked, class),
        }
    }

    /// What a statement's results are masked by, for a caller who is `masked`.
    pub(crate) fn mask<'a>(&'a self, masked: bool, class: &'a Classification) -> Option<(&'a Masking, &'a security::masking::References)> {
        match (masked, &self.masking) {
            (true, Some(masking)) => Some((masking, &class.references)),
            _ => None,
        }
    }

    /// Who serves a statement on `replica` (or the primary), and how new its data is at least.
    fn served_by(&self, replica: Option<usize>) -> (String, Lsn) {
        match replica {
            Some(i) => (self.pools.replicas()[i].name.clone(), self.pools.replicas()[i].replayed_lsn()),
            None => ("primary".to_string(), self.pools.primary().received_lsn()),
        }
    }

    async fn run_autocommit(
        &self,
        lease: &mut Lease<'_>,
        sql: &str,
        params: &[Value],
        class: &Classification,
        read_only: bool,
        check_session: bool,
        masked: bool,
    ) -> Result<QueryOutput, Error> {
        let statement = self.autocommit_statement(sql, params, class, Some(read_only), check_session, masked);
        let (served_by, data_lsn) = self.served_by(lease.replica);
        lease.begin_use();
        let cancel = cancel_on_timeout(lease.canceller());
        let conn = lease_conn(lease);
        let started = Instant::now();
        let result = if read_only || !self.limits.report_commit_lsn {
            self.with_timeout(cancel, async { run::execute(conn, &statement).await.map(|rows| (rows, None)) }).await
        } else {
            self.with_timeout(cancel, run::execute_write(conn, &statement)).await
        };
        if read_only {
            class.record_run(started.elapsed(), result.as_ref().ok().map(|(rows, _)| rows.row_count));
        }
        let clean = match &result {
            Ok(_) => true,
            Err(err) => run::leaves_connection_clean_after(err),
        };
        if clean {
            lease.end_use();
        }
        result.map(|(rows, commit_lsn)| QueryOutput {
            rows,
            query_type: class.query_type,
            execution_time: Duration::ZERO,
            served_by,
            commit_lsn,
            data_lsn,
            from_cache: false,
            cache_bypass: None,
        })
    }

    /// Bounds `work` by the query timeout plus a grace period. The server's own
    /// `statement_timeout` normally fires first (57014); if it does not (a hung network),
    /// `on_timeout` runs (see [`cancel_on_timeout`]) and the connection is discarded.
    pub(crate) async fn with_timeout<T>(
        &self,
        on_timeout: impl FnOnce(),
        work: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let timeout_secs = self.limits.query_timeout.as_secs_f64();
        match tokio::time::timeout(self.limits.query_timeout + CLIENT_TIMEOUT_GRACE, work).await {
            Ok(Err(Error::Db(db::Error::Server(pg)))) if pg.is("57014") => {
                Err(Error::Db(db::Error::Timeout { timeout_secs }))
            }
            Ok(result) => result,
            Err(_) => {
                on_timeout();
                Err(Error::Db(db::Error::Timeout { timeout_secs }))
            }
        }
    }

    /// Counts the statement by type, server and outcome (`dbagent_statements_total`); a
    /// failed one is classified again (memoised) for its type.
    fn record_statement(&self, sql: &str, result: &Result<QueryOutput, Error>) {
        use crate::monitor::{Outcome, Served};
        match result {
            Ok(out) => self.stats.record_statement(out.query_type, Served::from_served_by(&out.served_by), Outcome::Ok),
            Err(err) => {
                let query_type = self.classifier.classify(sql).map_or("utility", |c| c.query_type);
                self.stats.record_statement(query_type, Served::None, Outcome::of_kind(crate::error::Classify::kind(err)));
            }
        }
    }

    fn log_statement(&self, sql: &str, params: usize, elapsed: Duration, query_type: Option<&str>) {
        if self.limits.echo_sql {
            tracing::info!(sql, params, elapsed_ms = elapsed.as_secs_f64() * 1e3, "statement");
        }
        if let Some(threshold) = self.limits.slow_query_threshold
            && elapsed > threshold {
                self.stats.record_slow_query();
                let fingerprint = match self.classifier.classify(sql) {
                    Ok(class) => self.classifier.fingerprint(&class, sql).to_string(),
                    Err(_) => String::new(),
                };
                tracing::warn!(elapsed_ms = elapsed.as_secs_f64() * 1e3, query_type, fingerprint, "slow query");
            }
    }
}

/// What a timed-out statement on a connection of its own does: cancel it through PostgreSQL's
/// cancel protocol (in the background; the connection is discarded anyway).
pub(crate) fn cancel_on_timeout(cancel: db::Canceller) -> impl FnOnce() {
    move || {
        tokio::spawn(async move {
            // Bounded: on a blackholed network the cancel request's connection (or its wait
            // for the server to close it) would otherwise hang this task forever.
            match tokio::time::timeout(CANCEL_TIMEOUT, cancel.cancel()).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "could not cancel a timed-out query"),
                Err(_) => tracing::warn!("could not cancel a timed-out query: no answer within {CANCEL_TIMEOUT:?}"),
            }
        });
    }
}

/// The `Conn` inside a lease, for functions that take `&mut Conn`.
fn lease_conn<'a>(lease: &'a mut Lease<'_>) -> &'a mut db::Conn {
    lease
}

/// Statements worth keeping prepared: plannable ones. Utility statements (DDL, VACUUM ...)
/// are prepared per use so they never pin stale catalog state.
pub(crate) fn caches_well(query_type: &str) -> bool {
    matches!(query_type, "select" | "insert" | "update" | "delete" | "merge")
}
