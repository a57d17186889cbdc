//! What a statement is, decided by PostgreSQL's own parser (pg_query), never by a regex.
//!
//! The classification decides routing (read → replica, in a READ ONLY transaction; write →
//! primary), refuses statements that would leak session state into a pooled connection, and
//! gives the `query_type` and the fingerprint of the slow-query log. Results are memoised per
//! SQL text, so the parser runs once per distinct statement, not once per request.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pg_query::NodeEnum;
use pg_query::protobuf::{TransactionStmtKind, VariableSetKind};

/// Distinct statements remembered.
const MEMO_CAPACITY: u64 = 10_000;

/// A parsed statement's classification.
#[derive(Debug)]
pub struct Classification {
    /// `select`, `insert`, `update`, `delete`, `merge`, `ddl`, `explain`, `show`, `utility`, ...
    pub query_type: &'static str,
    /// Safe to run READ ONLY on a replica. Cleared when the server proves otherwise.
    read_only: AtomicBool,
    /// Tables the statement reads or writes (schema-qualified when written so).
    pub tables: Vec<String>,
    /// Tables it writes (DML) or changes (DDL).
    pub written_tables: Vec<String>,
    /// Functions and constructs that decide whether its result may be cached.
    pub cache: crate::cache::Analysis,
    /// Why this statement cannot run through a pooled, stateless endpoint.
    pub refused: Option<String>,
    /// What it may do beyond its own transaction (see `effects.rs`).
    pub effects: super::effects::Effects,
    /// Transaction control (BEGIN, COMMIT, SAVEPOINT ...): kind, for `/transaction` checks.
    pub transaction_control: Option<TransactionControl>,
    /// The relations and columns it names, for masking results with no origin.
    pub references: crate::security::masking::References,
    fingerprint: OnceLock<String>,
    /// Recent run time in µs, exponentially weighted; 0 until it has run once.
    typical_us: AtomicU32,
    /// Rows it returned, plus one, weighted the same way; 0 until it has returned once.
    typical_rows: AtomicU32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionControl {
    /// BEGIN, START, COMMIT, ROLLBACK, PREPARE/COMMIT/ROLLBACK PREPARED.
    Boundary,
    /// SAVEPOINT, RELEASE, ROLLBACK TO: fine inside `/transaction`.
    Savepoint,
}

impl Classification {
    pub fn is_read_only(&self) -> bool {
        self.read_only.load(Ordering::Relaxed)
    }

    /// The server rejected this "read" in a READ ONLY transaction (a volatile function that
    /// writes, say): from now on it is routed as a write.
    pub fn demote_to_write(&self) {
        self.read_only.store(false, Ordering::Relaxed);
    }

    /// Records how long one run took and how many rows it returned (`None`: it failed).
    /// Recent runs weigh most: one slow run lifts the typical time at once (a quarter of it
    /// counts), a dozen fast ones bring it back down.
    pub fn record_run(&self, took: Duration, rows: Option<u64>) {
        fn weigh(typical: &AtomicU32, sample: u64) {
            let sample = sample.clamp(1, u64::from(u32::MAX)) as u32;
            let old = typical.load(Ordering::Relaxed);
            let new = if old == 0 { sample } else { old - old / 4 + sample / 4 };
            typical.store(new.max(1), Ordering::Relaxed);
        }
        weigh(&self.typical_us, took.as_micros() as u64);
        if let Some(rows) = rows {
            // Stored plus one, so that 0 still means "never measured".
            weigh(&self.typical_rows, rows.saturating_add(1));
        }
    }

    /// Known, from its earlier runs, to take no longer than `limit` and to return at most
    /// `max_rows` rows: what may share a connection. Never true before the first run: a
    /// statement nobody has timed yet is not assumed short.
    pub fn runs_within(&self, limit: Duration, max_rows: u32) -> bool {
        let typical = self.typical_us.load(Ordering::Relaxed);
        let rows = self.typical_rows.load(Ordering::Relaxed);
        typical != 0 && u128::from(typical) <= limit.as_micros() && rows != 0 && rows - 1 <= max_rows
    }
}

/// Why SQL could not be classified.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ClassifyError {
    #[error("syntax error: {message}")]
    Syntax { message: String, position: Option<u32> },
    #[error("the SQL is empty")]
    Empty,
    #[error("the SQL holds {count} statements; send one per query, or several through /transaction")]
    Multiple { count: usize },
}

/// Memoising classifier, shared by every request.
pub struct Classifier {
    memo: moka::sync::Cache<Arc<str>, Arc<Classification>>,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier { memo: moka::sync::Cache::new(MEMO_CAPACITY) }
    }
}

impl Classifier {
    pub fn classify(&self, sql: &str) -> Result<Arc<Classification>, ClassifyError> {
        if let Some(found) = self.memo.get(sql) {
            return Ok(found);
        }
        let class = Arc::new(classify(sql)?);
        self.memo.insert(Arc::from(sql), class.clone());
        Ok(class)
    }

    /// The fingerprint (pg_stat_statements-style grouping) and normalized text of `sql`.
    pub fn fingerprint<'a>(&self, class: &'a Classification, sql: &str) -> &'a str {
        class.fingerprint.get_or_init(|| {
            let hex = pg_query::fingerprint(sql, pg_query::ParserOptions::DEFAULT, 0).map(|f| f.hex).unwrap_or_default();
            let normalized = pg_query::normalize(sql).unwrap_or_else(|_| sql.to_string());
            format!("{hex} {normalized}")
        })
    }
}

/// Parses and classifies one statement (no memo).
pub fn classify(sql: &str) -> Result<Classification, ClassifyError> {
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).map_err(|err| syntax_error(sql, err))?;
    let stmts = &parsed.protobuf.stmts;
    let node = match stmts.len() {
        0 => return Err(ClassifyError::Empty),
        1 => stmts[0].stmt.as_ref().and_then(|n| n.node.as_ref()),
        count => return Err(ClassifyError::Multiple { count }),
    };
    let node = node.ok_or(ClassifyError::Empty)?;
    let mut written_tables = parsed.dml_tables();
    written_tables.extend(parsed.ddl_tables());
    written_tables.sort();
    written_tables.dedup();
    let read_only = is_read(node) && written_tables.is_empty();
    // Both walks read one serialization of the whole tree (pg_query's own node iterator skips
    // some node kinds).
    let tree = serde_json::to_value(&parsed.protobuf).ok();
    let effects = super::effects::Effects::of(tree.as_ref());
    Ok(Classification {
        query_type: query_type(node),
        read_only: AtomicBool::new(read_only),
        tables: parsed.tables(),
        cache: if matches!(node, NodeEnum::SelectStmt(_)) { crate::cache::analyze(tree.as_ref()) } else { crate::cache::Analysis::default() },
        written_tables,
        refused: refusal(node).map(str::to_owned).or_else(|| effects.refused.clone()),
        effects,
        transaction_control: transaction_control(node),
        references: crate::security::masking::References::of(tree.as_ref()),
        fingerprint: OnceLock::new(),
        typical_us: AtomicU32::new(0),
        typical_rows: AtomicU32::new(0),
    })
}

/// A plain SELECT (no INTO, no FOR UPDATE/SHARE), SHOW, or EXPLAIN without ANALYZE of one.
fn is_read(node: &NodeEnum) -> bool {
    match node {
        NodeEnum::SelectStmt(s) => s.into_clause.is_none() && s.locking_clause.is_empty() && set_ops_read(s),
        NodeEnum::VariableShowStmt(_) => true,
        NodeEnum::ExplainStmt(e) => {
            let analyze = e.options.iter().any(|o| matches!(&o.node, Some(NodeEnum::DefElem(d)) if d.defname == "analyze"));
            !analyze && e.query.as_ref().and_then(|q| q.node.as_ref()).is_some_and(is_read)
        }
        _ => false,
    }
}

/// UNION / INTERSECT branches may carry FOR UPDATE too.
fn set_ops_read(s: &pg_query::protobuf::SelectStmt) -> bool {
    let branch = |b: &Option<Box<pg_query::protobuf::SelectStmt>>| {
        b.as_ref().is_none_or(|b| b.locking_clause.is_empty() && b.into_clause.is_none() && set_ops_read(b))
    };
    branch(&s.larg) && branch(&s.rarg)
}

fn query_type(node: &NodeEnum) -> &'static str {
    use NodeEnum as N;
    match node {
        N::SelectStmt(_) => "select",
        N::InsertStmt(_) => "insert",
        N::UpdateStmt(_) => "update",
        N::DeleteStmt(_) => "delete",
        N::MergeStmt(_) => "merge",
        N::ExplainStmt(_) => "explain",
        N::VariableShowStmt(_) => "show",
        N::VariableSetStmt(_) => "set",
        N::CopyStmt(_) => "copy",
        N::CallStmt(_) => "call",
        N::DoStmt(_) => "do",
        N::TransactionStmt(_) => "transaction",
        N::VacuumStmt(_) => "vacuum",
        N::TruncateStmt(_) => "truncate",
        N::LockStmt(_) => "lock",
        N::GrantStmt(_) | N::GrantRoleStmt(_) => "grant",
        N::CreateStmt(_)
        | N::CreateTableAsStmt(_)
        | N::AlterTableStmt(_)
        | N::DropStmt(_)
        | N::IndexStmt(_)
        | N::ViewStmt(_)
        | N::CreateSchemaStmt(_)
        | N::CreateSeqStmt(_)
        | N::AlterSeqStmt(_)
        | N::CreateFunctionStmt(_)
        | N::CreateTrigStmt(_)
        | N::CreateEnumStmt(_)
        | N::CreateDomainStmt(_)
        | N::CompositeTypeStmt(_)
        | N::CreateExtensionStmt(_)
        | N::RenameStmt(_)
        | N::CommentStmt(_)
        | N::CreateRoleStmt(_)
        | N::AlterRoleStmt(_)
        | N::DropRoleStmt(_)
        | N::RefreshMatViewStmt(_)
        | N::AlterEnumStmt(_)
        | N::AlterDomainStmt(_)
        | N::CreatedbStmt(_)
        | N::DropdbStmt(_)
        | N::AlterObjectSchemaStmt(_)
        | N::AlterOwnerStmt(_)
        | N::CreatePolicyStmt(_)
        | N::RuleStmt(_) => "ddl",
        _ => "utility",
    }
}

/// Statements that would change the session of a pooled connection for whoever uses it next.
fn refusal(node: &NodeEnum) -> Option<&'static str> {
    match node {
        NodeEnum::VariableSetStmt(s) if !s.is_local && !is_set_transaction(s) => {
            Some("a session-level SET would leak into a pooled connection; use SET LOCAL inside /transaction")
        }
        NodeEnum::ListenStmt(_) | NodeEnum::UnlistenStmt(_) => Some("LISTEN/UNLISTEN need a dedicated session"),
        NodeEnum::DiscardStmt(_) => Some("DISCARD would reset a pooled connection"),
        NodeEnum::PrepareStmt(_) | NodeEnum::ExecuteStmt(_) | NodeEnum::DeallocateStmt(_) => {
            Some("dbagent prepares statements itself; send the statement with params instead")
        }
        NodeEnum::DeclareCursorStmt(_) | NodeEnum::FetchStmt(_) | NodeEnum::ClosePortalStmt(_) => {
            Some("cursors need a dedicated session")
        }
        NodeEnum::CopyStmt(c) if c.filename.is_empty() => Some("COPY FROM STDIN / TO STDOUT is not supported over the query API"),
        // Not a session change, but a way out of the database: a shell command or a file on
        // the database server, as its operating-system user. The API is not a shell.
        NodeEnum::CopyStmt(c) if c.is_program => {
            Some("COPY ... PROGRAM runs a shell command on the database server; dbagent does not run it over the API")
        }
        NodeEnum::CopyStmt(_) => Some(
            "COPY to or from a file on the database server is not run over the API; \
             read rows with SELECT, write them with INSERT, or load files with psql's \\copy",
        ),
        _ => None,
    }
}

fn is_set_transaction(s: &pg_query::protobuf::VariableSetStmt) -> bool {
    s.kind == VariableSetKind::VarSetMulti as i32 && s.name.eq_ignore_ascii_case("TRANSACTION")
}

fn transaction_control(node: &NodeEnum) -> Option<TransactionControl> {
    let NodeEnum::TransactionStmt(t) = node else { return None };
    let savepoint = [TransactionStmtKind::TransStmtSavepoint, TransactionStmtKind::TransStmtRelease, TransactionStmtKind::TransStmtRollbackTo];
    Some(if savepoint.iter().any(|k| *k as i32 == t.kind) { TransactionControl::Savepoint } else { TransactionControl::Boundary })
}

/// pg_query reports "syntax error at or near ..." with a cursor position in its message.
fn syntax_error(sql: &str, err: pg_query::Error) -> ClassifyError {
    let message = match &err {
        pg_query::Error::Parse(m) => m.clone(),
        other => other.to_string(),
    };
    let position = position_of(sql, &message);
    ClassifyError::Syntax { message, position }
}

/// Best-effort cursor position (1-based, characters) from the token quoted in the message.
fn position_of(sql: &str, message: &str) -> Option<u32> {
    let token = message.split("at or near \"").nth(1)?.split('"').next()?;
    let byte = sql.find(token)?;
    Some(sql[..byte].chars().count() as u32 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_are_told_apart_by_the_parser() {
        let cases: &[(&str, &str, bool)] = &[
            ("SELECT * FROM users WHERE id = $1", "select", true),
            ("select 1", "select", true),
            ("WITH t AS (INSERT INTO a VALUES (1) RETURNING *) SELECT * FROM t", "select", false),
            ("SELECT * FROM a FOR UPDATE", "select", false),
            ("SELECT * INTO b FROM a", "select", false),
            ("SELECT 1 UNION SELECT id FROM a FOR SHARE", "select", false),
            ("INSERT INTO a VALUES ($1)", "insert", false),
            ("UPDATE a SET x = 1", "update", false),
            ("DELETE FROM a", "delete", false),
            ("CREATE TABLE t (id int)", "ddl", false),
            ("VACUUM (ANALYZE) a", "vacuum", false),
            ("DO $$ BEGIN RAISE NOTICE 'x'; END $$", "do", false),
            ("SHOW search_path", "show", true),
            ("EXPLAIN SELECT 1", "explain", true),
            ("EXPLAIN ANALYZE SELECT 1", "explain", false),
            ("EXPLAIN (ANALYZE) DELETE FROM a", "explain", false),
            ("VALUES (1), (2)", "select", true),
        ];
        for (sql, kind, read) in cases {
            let c = classify(sql).unwrap();
            assert_eq!((c.query_type, c.is_read_only()), (*kind, *read), "{sql}");
        }
    }

    #[test]
    fn a_statement_is_short_only_once_timed_and_one_slow_run_disqualifies_it_for_a_while() {
        let class = classify("SELECT 1").unwrap();
        let limit = Duration::from_millis(10);
        assert!(!class.runs_within(limit, 16), "never run: not assumed short");
        class.record_run(Duration::from_micros(200), None);
        assert!(!class.runs_within(limit, 16), "its result size is not known yet");
        class.record_run(Duration::from_micros(200), Some(1));
        assert!(class.runs_within(limit, 16));
        assert!(!class.runs_within(limit, 0) && class.runs_within(limit, 1));
        class.record_run(Duration::from_secs(2), Some(1));
        assert!(!class.runs_within(limit, 16));
        let fast_runs_to_recover = (1..100)
            .find(|_| {
                class.record_run(Duration::from_micros(200), Some(1));
                class.runs_within(limit, 16)
            })
            .unwrap();
        assert!((10..=25).contains(&fast_runs_to_recover), "{fast_runs_to_recover}");
        // Big results do not share, however fast.
        let class = classify("SELECT 2").unwrap();
        class.record_run(Duration::from_micros(200), Some(100));
        assert!(!class.runs_within(limit, 16));
    }

    #[test]
    fn session_state_is_refused_and_transaction_control_is_flagged() {
        assert!(classify("SET search_path = x").unwrap().refused.is_some());
        assert!(classify("SET LOCAL search_path = x").unwrap().refused.is_none());
        assert!(classify("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").unwrap().refused.is_none());
        assert!(classify("LISTEN ch").unwrap().refused.is_some());
        assert_eq!(classify("BEGIN").unwrap().transaction_control, Some(TransactionControl::Boundary));
        assert_eq!(classify("COMMIT").unwrap().transaction_control, Some(TransactionControl::Boundary));
        assert_eq!(classify("SAVEPOINT a").unwrap().transaction_control, Some(TransactionControl::Savepoint));
    }

    #[test]
    fn bad_sql_gives_a_position_and_several_statements_are_refused() {
        match classify("SELEC oops") {
            Err(ClassifyError::Syntax { position, .. }) => assert_eq!(position, Some(1)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(classify("SELECT 1; SELECT 'a;b'"), Err(ClassifyError::Multiple { count: 2 })));
        assert!(matches!(classify("  ;  "), Err(ClassifyError::Empty)));
        for copy in ["COPY t TO PROGRAM 'true'", "COPY t FROM PROGRAM 'cat /etc/passwd'", "COPY t TO '/tmp/x'", "COPY t FROM '/etc/passwd'"] {
            assert!(classify(copy).unwrap().refused.is_some(), "{copy}");
        }
        assert!(matches!(classify("-- nothing"), Err(ClassifyError::Empty)));
    }

    #[test]
    fn tables_are_listed() {
        let c = classify("SELECT * FROM public.users u JOIN orders o ON o.uid = u.id").unwrap();
        assert!(c.tables.contains(&"public.users".to_string()), "{:?}", c.tables);
        assert!(c.tables.contains(&"orders".to_string()), "{:?}", c.tables);
    }
}
