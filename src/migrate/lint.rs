//! Lint: warnings about migration statements that take heavy locks, rewrite or scan whole
//! tables, or lose data, each with the safer way to do it.
//!
//! [`lint`] is pure: PostgreSQL's own parser (pg_query) reads the file, and the rules look at
//! the statements in order, remembering what the file itself did (a table created earlier in the
//! file is new and empty, so nothing on it is worth a warning; a `CHECK (c IS NOT NULL)` validated
//! earlier makes `SET NOT NULL` cheap). [`lint_with_sizes`] adds what only the database knows:
//! which functions are volatile, and how big each table is.
//!
//! Code map: `rules.rs` walks the parsed statements and records findings; `finding.rs` turns a
//! finding into a [`Warning`] with its message.

mod finding;
mod rules;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use tokio_postgres::Client;

use finding::TableRef;
use rules::findings;

/// One warning about one statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Warning {
    /// 0-based index of the statement in the file.
    pub statement: usize,
    /// A stable identifier: `create-index-without-concurrently`, `set-not-null`, ...
    pub rule: &'static str,
    /// The table concerned, as the statement names it.
    pub table: Option<String>,
    /// `pg_total_relation_size` of the table (with indexes and TOAST), when known.
    pub table_bytes: Option<i64>,
    /// What happens, in plain words, with the table size when known, and the safer way.
    pub message: String,
}

/// What can go wrong reading sizes and functions from the database.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be reached, or the connection was lost.
    #[error("the database is unavailable")]
    Unavailable {
        #[source]
        source: tokio_postgres::Error,
    },
    /// A catalog query was refused.
    #[error("could not {action}")]
    Catalog {
        action: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
}

impl Error {
    fn catalog(action: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Error {
        move |source| match source.as_db_error() {
            None => Error::Unavailable { source },
            Some(_) => Error::Catalog { action, source },
        }
    }
}

/// Warnings for `sql`; `volatile_functions` are the (unqualified, lower-case) names of functions
/// whose use as a column default rewrites the table. [`default_volatile_functions`] has the
/// common ones when no database is at hand.
pub fn lint(sql: &str, volatile_functions: &HashSet<String>) -> Vec<Warning> {
    findings(sql, volatile_functions)
        .iter()
        .map(|f| f.warning(None))
        .collect()
}

/// [`lint`] with the database's volatile functions (`pg_proc.provolatile = 'v'`) and each
/// table's current size.
pub async fn lint_with_sizes(client: &Client, sql: &str) -> Result<Vec<Warning>, Error> {
    let volatile: HashSet<String> = client
        .query(
            "SELECT DISTINCT proname::text FROM pg_catalog.pg_proc WHERE provolatile = 'v'",
            &[],
        )
        .await
        .map_err(Error::catalog("read the volatile functions"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let findings = findings(sql, &volatile);
    let mut names: Vec<String> = findings
        .iter()
        .filter_map(|f| f.table.as_ref().map(TableRef::regclass))
        .collect();
    names.sort();
    names.dedup();
    let sizes: HashMap<String, i64> = client
        .query(
            "SELECT name, pg_catalog.pg_total_relation_size(pg_catalog.to_regclass(name))
             FROM unnest($1::text[]) AS name",
            &[&names],
        )
        .await
        .map_err(Error::catalog("read the table sizes"))?
        .iter()
        .filter_map(|r| r.get::<_, Option<i64>>(1).map(|bytes| (r.get(0), bytes)))
        .collect();
    Ok(findings
        .iter()
        .map(|f| f.warning(f.table.as_ref().and_then(|t| sizes.get(&t.regclass()).copied())))
        .collect())
}

/// The rules whose statements lose data for good (dropped tables and columns, every row
/// deleted): `migrate down` past one needs `confirm`.
pub const DATA_LOSS_RULES: &[&str] = &["drop-table", "drop-column", "truncate", "delete-without-where"];

/// The warnings of `sql` that lose data (see [`DATA_LOSS_RULES`]).
pub fn data_loss(sql: &str) -> Vec<Warning> {
    lint(sql, &default_volatile_functions()).into_iter().filter(|w| DATA_LOSS_RULES.contains(&w.rule)).collect()
}

/// Volatile functions commonly used as defaults, for linting without a database.
pub fn default_volatile_functions() -> HashSet<String> {
    [
        "random",
        "gen_random_uuid",
        "uuid_generate_v1",
        "uuid_generate_v1mc",
        "uuid_generate_v4",
        "uuidv4",
        "uuidv7",
        "clock_timestamp",
        "timeofday",
        "nextval",
        "txid_current",
        "pg_current_xact_id",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}
