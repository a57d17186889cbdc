//! Every capability error maps to a documented code and status, and a 500 leaks nothing.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

use super::*;

/// The module documentation's tables: code → status, and kind → status.
fn documented() -> (HashMap<String, u16>, HashMap<String, u16>) {
    let (mut codes, mut kinds) = (HashMap::new(), HashMap::new());
    for line in include_str!("../error.rs").lines().filter_map(|l| l.strip_prefix("//! | ")) {
        // `code`, `code` | kind | status | when |   or   `Kind` | status |
        let cells: Vec<&str> = line.split(" | ").map(str::trim).collect();
        let number = |i: usize| cells.get(i).and_then(|c| c.trim_end_matches('|').trim().parse::<u16>().ok());
        if let Some(status) = number(2) {
            for code in cells[0].split(", ") {
                codes.insert(code.trim_matches('`').to_owned(), status);
            }
        } else if let Some(status) = number(1) {
            kinds.insert(cells[0].trim_matches('`').to_owned(), status);
        }
    }
    (codes, kinds)
}

fn pg(sqlstate: &str) -> PgError {
    PgError { sqlstate: sqlstate.into(), message: "m".into(), detail: None, hint: None, position: None }
}

fn driver() -> tokio_postgres::Error {
    tokio_postgres::Error::__private_api_timeout()
}

fn io() -> io::Error {
    io::Error::other("/secret/path: disk on fire")
}

fn path() -> PathBuf {
    PathBuf::from("/secret/path")
}

// Each `samples_*` holds one value of every variant; the exhaustive `match` beside it stops
// compiling when a variant is added, as a reminder to add its sample.

fn samples_db() -> Vec<db::Error> {
    let decode = db::types::DecodeError::Malformed { type_name: "int4".into(), reason: "short" };
    let sqlstates = ["42601", "42P01", "22P02", "23505", "40001", "40P01", "55P03", "42501", "57014", "57P01", "53300", "08006", "28P01", "XX000", "58030", "P0001"];
    let mut all: Vec<db::Error> = sqlstates.iter().map(|s| db::Error::Server(pg(s))).collect();
    all.extend([
        db::Error::PoolExhausted { timeout_secs: 1.0, max_size: 2 },
        db::Error::Unavailable { reason: "r".into() },
        db::Error::OutcomeUnknown,
        db::Error::Timeout { timeout_secs: 1.0 },
        db::Error::NotPrimary,
        db::Error::Decode(decode),
        db::Error::UnexpectedAnswer { reason: "column x: not an int".into() },
        db::Error::Encode { reason: "error encoding message to server".into() },
    ]);
    for e in &all {
        match e {
            db::Error::Server(_) | db::Error::PoolExhausted { .. } | db::Error::Unavailable { .. } | db::Error::OutcomeUnknown => {}
            db::Error::Timeout { .. } | db::Error::NotPrimary | db::Error::Decode(_) | db::Error::UnexpectedAnswer { .. } | db::Error::Encode { .. } => {}
        }
    }
    all
}

fn samples_query() -> Vec<query::Error> {
    let param = db::types::ParamError::TypeMismatch { index: 0, expected: "int4".into(), got: "object" };
    let mut all = vec![
        query::Error::Sql(ClassifyError::Syntax { message: "m".into(), position: Some(1) }),
        query::Error::Sql(ClassifyError::Empty),
        query::Error::Sql(ClassifyError::Multiple { count: 2 }),
        query::Error::NotAllowed { reason: "r".into() },
        query::Error::Forbidden { reason: "r".into() },
        query::Error::ParamCount { expected: 1, given: 2 },
        query::Error::Param(param),
        query::Error::ResponseTooLarge { limit: 1024 },
    ];
    all.extend(samples_db().into_iter().map(query::Error::Db));
    for e in &all {
        match e {
            query::Error::Sql(_) | query::Error::NotAllowed { .. } | query::Error::Forbidden { .. } | query::Error::ParamCount { .. } => {}
            query::Error::Param(_) | query::Error::Db(_) | query::Error::ResponseTooLarge { .. } => {}
        }
    }
    all
}

fn samples_security() -> Vec<security::Error> {
    let mut all = vec![
        security::Error::Unauthenticated(security::Refusal::Invalid),
        security::Error::Forbidden("f".into()),
        security::Error::AddressForbidden("10.1.2.3".parse().unwrap()),
        security::Error::RateLimited { retry_after: std::time::Duration::from_secs(1) },
        security::Error::Invalid("i".into()),
        security::Error::NotFound("k".into()),
        security::Error::Roles("r".into()),
    ];
    all.extend(samples_db().into_iter().map(security::Error::Db));
    for e in &all {
        match e {
            security::Error::Unauthenticated(_) | security::Error::Forbidden(_) | security::Error::AddressForbidden(_) => {}
            security::Error::RateLimited { .. } | security::Error::Invalid(_) | security::Error::NotFound(_) => {}
            security::Error::Roles(_) | security::Error::Db(_) => {}
        }
    }
    all
}

fn samples_alerts() -> Vec<crate::alerts::Error> {
    use crate::alerts::Error as E;
    let mut all = vec![
        E::AlertNotFound("a".into()),
        E::SilenceNotFound("s".into()),
        E::ChannelNotFound("c".into()),
        E::NotificationFailed { channel: "c".into(), reason: "r".into() },
        E::Invalid("i".into()),
    ];
    all.extend(samples_db().into_iter().map(E::Db));
    for e in &all {
        match e {
            E::AlertNotFound(_) | E::SilenceNotFound(_) | E::ChannelNotFound(_) | E::NotificationFailed { .. } | E::Invalid(_) | E::Db(_) => {}
        }
    }
    all
}

fn samples_txn() -> Vec<txn::Error> {
    let mut all = vec![
        txn::Error::Empty,
        txn::Error::RetriesExhausted { attempts: 3, last: pg("40001") },
        txn::Error::Commit(pg("23505")),
        txn::Error::OutcomeUnknown,
    ];
    all.extend(samples_query().into_iter().map(|source| txn::Error::Statement { index: 1, source }));
    all.extend(samples_db().into_iter().map(txn::Error::Db));
    for e in &all {
        match e {
            txn::Error::Empty | txn::Error::Statement { .. } | txn::Error::RetriesExhausted { .. } => {}
            txn::Error::Commit(_) | txn::Error::OutcomeUnknown | txn::Error::Db(_) => {}
        }
    }
    all
}

fn samples_schema() -> Vec<schema::Error> {
    let mut all = vec![
        schema::Error::NotFound { name: "t".into() },
        schema::Error::InvalidName { name: "t".into(), reason: "r".into() },
    ];
    all.extend(samples_db().into_iter().map(schema::Error::Db));
    for e in &all {
        match e {
            schema::Error::NotFound { .. } | schema::Error::InvalidName { .. } | schema::Error::Db(_) => {}
        }
    }
    all
}

fn samples_seeddata() -> Vec<seeddata::Error> {
    use seeddata::Error as E;
    let mut all = vec![
        E::Invalid("rows".into()),
        E::NotATable { name: "v".into() },
        E::UnsupportedType { table: "t".into(), column: "c".into(), type_name: "point".into() },
        E::Cycle { path: "a → b → a".into() },
        E::SelfReference { table: "t".into(), columns: "parent_id".into() },
        E::UniqueExhausted { table: "t".into(), columns: "f".into(), wanted: 5 },
        E::CheckUnsatisfied { table: "t".into(), constraint: "c".into(), definition: "CHECK ((a < b))".into() },
        E::Rejected { table: "t".into(), server: Box::new(pg("22003")) },
        E::ClearBlocked { table: "t".into(), referenced_by: "u".into() },
    ];
    all.extend(samples_schema().into_iter().map(E::Schema));
    all.extend(samples_db().into_iter().map(E::Db));
    for e in &all {
        match e {
            E::Invalid(_)
            | E::NotATable { .. }
            | E::UnsupportedType { .. }
            | E::Cycle { .. }
            | E::SelfReference { .. }
            | E::UniqueExhausted { .. }
            | E::CheckUnsatisfied { .. }
            | E::Rejected { .. }
            | E::ClearBlocked { .. }
            | E::Schema(_)
            | E::Db(_) => {}
        }
    }
    all
}

fn samples_monitor() -> Vec<crate::monitor::Error> {
    use crate::monitor::Error as E;
    let mut all = vec![E::StatementsUnavailable { how: "h".into() }, E::Invalid("m".into())];
    all.extend(samples_db().into_iter().map(E::Db));
    for e in &all {
        match e {
            E::StatementsUnavailable { .. } | E::Invalid(_) | E::Db(_) => {}
        }
    }
    all
}

fn samples_ops() -> Vec<crate::ops::Error> {
    use crate::ops::Error as E;
    let mut all = vec![
        E::Invalid("m".into()),
        E::SessionNotFound { pid: 1 },
        E::Protected { pid: 1, reason: "r".into() },
        E::TableNotFound { table: "t".into() },
        E::Refused("r".into()),
    ];
    all.extend(samples_db().into_iter().map(E::Db));
    for e in &all {
        match e {
            E::Invalid(_) | E::SessionNotFound { .. } | E::Protected { .. } | E::TableNotFound { .. } | E::Refused(_) | E::Db(_) => {}
        }
    }
    all
}

fn samples_access() -> Vec<crate::access::Error> {
    use crate::access::Error as E;
    let mut all = vec![
        E::Invalid("m".into()),
        E::RoleNotFound { name: "r".into() },
        E::ObjectNotFound { kind: "table", name: "t".into() },
        E::RoleExists { name: "r".into() },
        E::Protected { name: "r".into(), reason: "r" },
        E::InUse { name: "r".into(), objects: vec!["table t (owner)".into()], other_databases: Some("d".into()) },
    ];
    all.extend(samples_db().into_iter().map(E::Db));
    for e in &all {
        match e {
            E::Invalid(_) | E::RoleNotFound { .. } | E::ObjectNotFound { .. } | E::RoleExists { .. } | E::Protected { .. } | E::InUse { .. } | E::Db(_) => {}
        }
    }
    all
}

fn samples_compliance() -> Vec<crate::compliance::Error> {
    use crate::compliance::Error as E;
    let all: Vec<E> = samples_db().into_iter().map(E::Db).collect();
    for e in &all {
        match e {
            E::Db(_) => {}
        }
    }
    all
}

fn samples_autogen() -> Vec<migrate::autogen::Error> {
    use migrate::autogen::Error as A;
    let all = vec![
        A::Unavailable { source: driver() },
        A::CreateScratch { name: "s".into(), source: driver() },
        A::InvalidSchema { statement: Some(1), location: None, server: Box::new(pg("42601")), source: driver() },
        A::Catalog { action: "a", source: driver() },
    ];
    for e in &all {
        match e {
            A::Unavailable { .. } | A::CreateScratch { .. } | A::InvalidSchema { .. } | A::Catalog { .. } => {}
        }
    }
    all
}

fn samples_migrate() -> Vec<migrate::Error> {
    use migrate::Error as E;
    let mut all = vec![
        E::Io { action: "read", path: path(), source: io() },
        E::InvalidFile { path: path(), reason: "r".into() },
        E::DuplicateVersion { version: 1, first: path(), second: path() },
        E::InvalidName { name: "n".into(), reason: "r" },
        E::InvalidDownTarget { input: "x".into() },
        E::UnknownVersion { version: 1 },
        E::NotEnoughApplied { requested: 2, applied: 1 },
        E::Irreversible { version: 1, path: path() },
        E::FileMissing { version: 1 },
        E::Drift { versions: vec![1] },
        E::OutOfOrder { versions: vec![1] },
        E::LockTimeout { waited_ms: 1 },
        E::AlreadyApplied { applied: 1 },
        E::SchemaTooNew { found: 2, known: 1 },
        E::DataLossUnconfirmed { summary: "s".into() },
        E::Unavailable { source: driver() },
        E::History { action: "a", source: driver() },
        E::InvalidUpTarget { given: "x".into() },
        E::BackupFailed { source: Box::new(io()) },
        E::SeedFailed { path: path(), server: Some(Box::new(pg("42P01"))), source: driver() },
        E::MigrationFailed {
            version: 1,
            path: path(),
            direction: migrate::Direction::Up,
            statement: None,
            server: Some(Box::new(pg("42P01"))),
            completed: vec![],
            source: driver(),
        },
    ];
    all.extend(samples_autogen().into_iter().map(|source| E::Autogenerate { source: Box::new(source) }));
    for e in &all {
        match e {
            E::Io { .. } | E::InvalidFile { .. } | E::DuplicateVersion { .. } | E::InvalidName { .. } => {}
            E::InvalidDownTarget { .. } | E::UnknownVersion { .. } | E::NotEnoughApplied { .. } => {}
            E::Irreversible { .. } | E::FileMissing { .. } | E::Drift { .. } | E::OutOfOrder { .. } => {}
            E::LockTimeout { .. } | E::AlreadyApplied { .. } | E::SchemaTooNew { .. } | E::Unavailable { .. } => {}
            E::DataLossUnconfirmed { .. } => {}
            E::History { .. } | E::InvalidUpTarget { .. } | E::BackupFailed { .. } | E::Autogenerate { .. } => {}
            E::SeedFailed { .. } | E::MigrationFailed { .. } => {}
        }
    }
    all
}

fn samples_advisor() -> Vec<advisor::Error> {
    use advisor::Error as E;
    let mut all = vec![
        E::NotExplainable { reason: "r".into() },
        E::Timeout { seconds: 1.0 },
        E::Plan("p".into()),
        E::TableNotFound { table: "t".into() },
        E::IndexNotFound { index: "i".into() },
        E::Invalid("i".into()),
        E::Refused("r".into()),
    ];
    all.extend(samples_query().into_iter().map(E::Query));
    for e in &all {
        match e {
            E::NotExplainable { .. } | E::Query(_) | E::Timeout { .. } | E::Plan(_) => {}
            E::TableNotFound { .. } | E::IndexNotFound { .. } | E::Invalid(_) | E::Refused(_) => {}
        }
    }
    all
}

fn samples_backup() -> Vec<backup::Error> {
    use backup::Error as E;
    let schedule = backup::next_run("not a schedule", chrono::Utc::now()).expect_err("not a schedule");
    let manifest = serde_json::from_str::<serde_json::Value>("{").expect_err("not JSON");
    let mismatch = backup::RowMismatch { table: "t".into(), expected: 1, found: None };
    let all = vec![
        E::InvalidRequest { reason: "r".into() },
        E::InvalidKey { reason: "r" },
        schedule,
        E::OutsideLocation { path: path(), location: path() },
        E::NotFound { id: "i".into() },
        E::Pinned { id: "i".into(), reason: "r".into() },
        E::TargetExists { database: "d".into() },
        E::Conflict { reason: "r".into() },
        E::ConfirmationRequired { reason: "r".into() },
        E::ForceRequired { reason: "r".into() },
        E::ReplacedNotFound { id: "i".into() },
        E::KeyRequired { id: "i".into() },
        E::WrongKey { id: "i".into() },
        E::Decrypt { file: "f".into() },
        E::VerificationFailed { file: "f".into(), reason: "r".into() },
        E::RowCountMismatch { id: "i".into(), tables: vec![mismatch] },
        E::InvalidManifest { path: path(), source: manifest },
        E::ToolsNotFound { tool: "pg_dump", server_major: 18, searched: vec![path()] },
        E::ToolTooOld { binary: path(), found: 15, needed: 18, needed_for: "n" },
        E::ToolNotRunnable { binary: path(), source: io() },
        E::ToolFailed { tool: "pg_dump", stderr: "/secret/path: no space".into() },
        E::ToolTimedOut { tool: "pg_dump", seconds: 1 },
        E::Io { action: "write", path: path(), source: io() },
        E::Database { action: "a", source: driver() },
        E::Unavailable { source: driver() },
        E::NoSpace,
        E::Remote { action: "upload", key: "k".into(), source: object_store::Error::NotImplemented { operation: "o".into(), implementer: "i".into() } },
        E::RemoteIo { action: "upload", key: "k".into(), source: io() },
        E::RemoteNotConfigured,
    ];
    for e in &all {
        match e {
            E::InvalidRequest { .. } | E::InvalidKey { .. } | E::InvalidSchedule { .. } | E::OutsideLocation { .. } => {}
            E::NotFound { .. } | E::Pinned { .. } | E::TargetExists { .. } | E::Conflict { .. } => {}
            E::ConfirmationRequired { .. } | E::ForceRequired { .. } | E::ReplacedNotFound { .. } => {}
            E::KeyRequired { .. } | E::WrongKey { .. } | E::Decrypt { .. } | E::VerificationFailed { .. } => {}
            E::RowCountMismatch { .. } | E::InvalidManifest { .. } | E::ToolsNotFound { .. } => {}
            E::ToolTooOld { .. } | E::ToolNotRunnable { .. } | E::ToolFailed { .. } | E::ToolTimedOut { .. } => {}
            E::Io { .. } | E::Database { .. } | E::Unavailable { .. } | E::NoSpace => {}
            E::Remote { .. } | E::RemoteIo { .. } | E::RemoteNotConfigured => {}
        }
    }
    all
}

/// The error's own kind and code, and its answer, agree with the documented tables; an
/// internal error's answer says nothing of its insides.
fn check(name: &str, kind: ErrorKind, code: &'static str, answer: ApiError) {
    let (codes, kinds) = documented();
    let documented_status = codes.get(code).unwrap_or_else(|| panic!("{name}: code {code} is not in the table"));
    assert_eq!(answer.body.code, code, "{name}");
    assert_eq!(answer.status.as_u16(), *documented_status, "{name}: {code}");
    assert_eq!(status(kind), answer.status, "{name}: {kind:?}");
    assert_eq!(kinds.get(&format!("{kind:?}")), Some(documented_status), "{name}: {kind:?}");
    if kind == ErrorKind::Internal {
        assert_eq!(code, INTERNAL, "{name}");
        assert_eq!(answer.body.message, "internal error", "{name}");
        let sent = serde_json::to_string(&answer.body).unwrap();
        assert!(!sent.contains("secret") && answer.body.sqlstate.is_none(), "{name}: {sent}");
        assert!(answer.internal.is_some(), "{name}: the detail is kept for the log");
    }
}

#[test]
fn every_variant_of_every_capability_error_has_a_documented_code_and_status() {
    for e in samples_db() {
        check(&format!("db {e:?}"), e.kind(), e.code(), e.into());
    }
    for e in samples_query() {
        check(&format!("query {e:?}"), e.kind(), e.code(), e.into());
    }
    for e in samples_txn() {
        check(&format!("txn {e:?}"), e.kind(), e.code(), e.into());
    }
    for e in samples_schema() {
        check(&format!("schema {e:?}"), e.kind(), e.code(), e.into());
    }
    for e in samples_migrate() {
        check(&format!("migrate {e:?}"), e.kind(), e.code(), e.into());
    }
    for e in samples_seeddata() {
        check(&format!("seeddata {e:?}"), e.kind(), e.code(), e.into());
    }
    for e in samples_advisor() {
        check(&format!("advisor {e:?}"), e.kind(), e.code(), e.into());
    }
    for e in samples_backup() {
        check(&format!("backup {e:?}"), e.kind(), e.code(), e.into());
    }
    for e in samples_security() {
        check(&format!("security {e:?}"), e.kind(), e.code(), e.into());
    }
    for e in samples_monitor() {
        check(&format!("monitor {e:?}"), e.kind(), e.code(), e.into());
    }
    for e in samples_alerts() {
        check(&format!("alerts {e:?}"), e.kind(), e.code(), e.into());
    }
    for e in samples_ops() {
        check(&format!("ops {e:?}"), e.kind(), e.code(), e.into());
    }
    for e in samples_access() {
        check(&format!("access {e:?}"), e.kind(), e.code(), e.into());
    }
    for e in samples_compliance() {
        check(&format!("compliance {e:?}"), e.kind(), e.code(), e.into());
    }
    use crate::replication::SwitchoverError as S;
    for e in [S::NotManaged, S::NoSuchReplica(3), S::NotReady("m".into()), S::Busy, S::Failed("m".into()), S::PrimaryUp] {
        check(&format!("switchover {e:?}"), e.kind(), e.code(), e.into());
    }
}

#[test]
fn answers_built_here_are_documented_too() {
    let cases = [
        (ErrorKind::BadRequest, ApiError::invalid_request("m")),
        (ErrorKind::NotFound, ApiError::not_found("m")),
        (ErrorKind::TooLarge, ApiError::payload_too_large("m")),
        (ErrorKind::Internal, ApiError::internal("/secret/path")),
    ];
    for (kind, answer) in cases {
        check("api", kind, answer.body.code, answer);
    }
    let (codes, _) = documented();
    assert_eq!(codes.get("method_not_allowed"), Some(&ApiError::method_not_allowed().status.as_u16()));
}

#[test]
fn every_kind_has_its_documented_status() {
    let (_, kinds) = documented();
    for kind in ErrorKind::ALL {
        assert_eq!(kinds.get(&format!("{kind:?}")), Some(&status(kind).as_u16()), "{kind:?}");
    }
}

#[test]
fn every_sqlstate_class_has_one_status() {
    let cases = [
        ("42601", 400),
        ("42P01", 400),
        ("22P02", 400),
        ("23505", 409),
        ("23503", 409),
        ("40001", 409),
        ("40P01", 409),
        ("42501", 403),
        ("57014", 504),
        ("57P01", 503),
        ("53300", 503),
        ("08006", 503),
        ("XX000", 502),
        ("P0001", 400),
    ];
    for (sqlstate, expected) in cases {
        assert_eq!(ApiError::from_pg(pg(sqlstate)).status.as_u16(), expected, "{sqlstate}");
    }
}
