//! Index upkeep: reports (unused, duplicate, invalid, bloated indexes) and actions (ANALYZE,
//! REINDEX CONCURRENTLY, CREATE / DROP INDEX CONCURRENTLY, apply a suggestion and measure).
//!
//! Actions run on a connection of their own without the API's statement timeout (an index
//! build on a big table takes what it takes) and never inside a transaction (CONCURRENTLY
//! forbids it). Names are checked against the catalog before anything runs, and an index that
//! backs a constraint is never dropped.

use serde::Serialize;
use tokio_postgres::Row;

use super::Error;
use crate::db::{self, Pools, sql};

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct IndexReport {
    pub index: String,
    pub table: String,
    pub bytes: i64,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl IndexReport {
    fn from_row(row: &Row) -> Result<IndexReport, db::Error> {
        Ok(IndexReport {
            index: db::get(row, "index")?,
            table: db::get(row, "table")?,
            bytes: db::get(row, "bytes")?,
            reason: db::get(row, "reason")?,
            fix: db::get(row, "fix")?,
        })
    }
}

/// `analyze`: the statement run.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Analyzed {
    pub done: String,
}

/// `rebuild`: the statement run, the index's table and its size before and after (for a
/// whole table: the total of its indexes, and each index's).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Rebuilt {
    pub done: String,
    pub table: String,
    pub bytes_before: i64,
    pub bytes_after: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexSizes>,
}

/// One index of a rebuilt table, before and after.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct IndexSizes {
    pub index: String,
    pub bytes_before: i64,
    pub bytes_after: i64,
}

/// `create`: the statement run and the new index's name.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Created {
    pub done: String,
    pub index: String,
}

/// `drop`: the statement run and the table the index was on.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Dropped {
    pub done: String,
    pub table: String,
}

const UNUSED_SQL: &str = include_str!("sql/unused.sql");
const DUPLICATES_SQL: &str = include_str!("sql/duplicates.sql");
const INVALID_SQL: &str = include_str!("sql/invalid.sql");
/// Bloated B-tree indexes: `$1` a table or NULL, `$2` the least waste reported, in percent.
/// Also the maintenance jobs' `reindex_bloated` candidates (its `schema` and `name` columns).
pub const BLOAT_SQL: &str = include_str!("sql/bloat.sql");
/// The advisor's threshold for [`BLOAT_SQL`].
const BLOAT_PCT: f64 = 30.0;
const INDEX_SQL: &str = include_str!("sql/index.sql");

/// The rows of one report query, for every user table or only `table`.
async fn report(pools: &Pools, sql: &str, table: Option<&str>) -> Result<Vec<IndexReport>, Error> {
    let table = table.map(sql::regclass);
    let rows = pools.primary().query(sql, &[&table]).await?;
    Ok(rows.iter().map(IndexReport::from_row).collect::<Result<_, _>>()?)
}

/// Indexes never scanned since statistics were reset, that enforce nothing.
pub async fn unused(pools: &Pools, table: Option<&str>) -> Result<Vec<IndexReport>, Error> {
    report(pools, UNUSED_SQL, table).await
}

/// Indexes whose key columns are a prefix of another index's on the same table, with the same
/// method, expressions and predicate (an identical pair is reported once). A unique or
/// constraint index is never the one proposed for dropping.
pub async fn duplicates(pools: &Pools, table: Option<&str>) -> Result<Vec<IndexReport>, Error> {
    let mut found = report(pools, DUPLICATES_SQL, table).await?;
    found.dedup_by(|a, b| a.index == b.index);
    Ok(found)
}

/// Indexes left invalid by a failed `CREATE INDEX CONCURRENTLY`: they cost writes, help no read.
pub async fn invalid(pools: &Pools, table: Option<&str>) -> Result<Vec<IndexReport>, Error> {
    report(pools, INVALID_SQL, table).await
}

/// B-tree indexes larger than their contents need: expected size from the row count and the key
/// columns' average widths (pg_stats) at the default 90 % fill, against the actual size. An
/// estimate; reported when the waste is over 30 % and 1 MB.
pub async fn bloat(pools: &Pools, table: Option<&str>) -> Result<Vec<IndexReport>, Error> {
    let table = table.map(sql::regclass);
    let rows = pools.primary().query(BLOAT_SQL, &[&table, &BLOAT_PCT]).await?;
    Ok(rows.iter().map(IndexReport::from_row).collect::<Result<_, _>>()?)
}

/// An index as the catalog knows it.
struct IndexEntry {
    /// `regclass` text: qualified and quoted as needed.
    name: String,
    table: String,
    /// Backs a constraint (primary key, unique, exclusion).
    constraint: bool,
    bytes: i64,
}

/// The index `regclass` names (text for `to_regclass`, see [`sql::regclass`]).
async fn index_entry(pools: &Pools, regclass: &str) -> Result<Option<IndexEntry>, Error> {
    let rows = pools.primary().query(INDEX_SQL, &[&regclass]).await?;
    let Some(row) = rows.first() else { return Ok(None) };
    Ok(Some(IndexEntry {
        name: db::get(row, "index")?,
        table: db::get(row, "table")?,
        constraint: db::get(row, "constraint")?,
        bytes: db::get(row, "bytes")?,
    }))
}

/// The index a user named.
async fn index_named(pools: &Pools, index: &str) -> Result<IndexEntry, Error> {
    index_entry(pools, &sql::regclass(index)).await?.ok_or_else(|| Error::IndexNotFound { index: index.to_owned() })
}

/// Runs one statement outside any transaction (what `CONCURRENTLY` needs), on a connection of
/// its own without the API's statement timeout.
pub(super) async fn run_concurrently(db: &crate::db::PgConfig, sql: &str) -> Result<(), Error> {
    run(db, sql).await
}

async fn run(db: &crate::db::PgConfig, sql: &str) -> Result<(), Error> {
    let client = db::admin::connect(db, db::Purpose::Indexes).await.map_err(|e| db::Error::Unavailable { reason: db::error_chain(&e) })?;
    client.batch_execute(sql).await.map_err(|e| Error::from(db::Error::from_driver(e, false)))
}

/// `ANALYZE table`.
pub async fn analyze(pools: &Pools, db: &crate::db::PgConfig, table: &str) -> Result<Analyzed, Error> {
    let stats = super::catalog::table(pools, table).await?.ok_or_else(|| Error::TableNotFound { table: table.to_owned() })?;
    let sql = format!("ANALYZE {};", stats.qualified());
    run(db, &sql).await?;
    Ok(Analyzed { done: sql })
}

/// `REINDEX INDEX CONCURRENTLY`, with the size before and after.
pub async fn rebuild(pools: &Pools, db: &crate::db::PgConfig, index: &str) -> Result<Rebuilt, Error> {
    let before = index_named(pools, index).await?;
    let sql = format!("REINDEX INDEX CONCURRENTLY {};", before.name);
    run(db, &sql).await?;
    let after = index_entry(pools, &before.name).await?.map_or(0, |after| after.bytes);
    Ok(Rebuilt { done: sql, table: before.table, bytes_before: before.bytes, bytes_after: after, indexes: Vec::new() })
}

/// Every index of `table` (seed 000's rebuild by table): `REINDEX TABLE CONCURRENTLY`, which
/// builds each anew beside the old one and swaps, so reads and writes go on meanwhile. The
/// sizes are the table's indexes' total before and after, and each index's.
pub async fn rebuild_table(pools: &Pools, db: &crate::db::PgConfig, table: &str) -> Result<Rebuilt, Error> {
    let stats = super::catalog::table(pools, table).await?.ok_or_else(|| Error::TableNotFound { table: table.to_owned() })?;
    let qualified = stats.qualified();
    let before = index_sizes(pools, &qualified).await?;
    // A system catalog or a TOAST table cannot be reindexed concurrently; those are not
    // user tables, which is what `catalog::table` resolves.
    let sql = format!("REINDEX TABLE CONCURRENTLY {qualified};");
    run(db, &sql).await?;
    let after = index_sizes(pools, &qualified).await?;
    let indexes: Vec<IndexSizes> = before
        .iter()
        .map(|(index, bytes)| IndexSizes {
            index: index.clone(),
            bytes_before: *bytes,
            bytes_after: after.iter().find(|(i, _)| i == index).map_or(0, |(_, b)| *b),
        })
        .collect();
    let total = |sizes: &[(String, i64)]| sizes.iter().map(|(_, b)| b).sum();
    Ok(Rebuilt { done: sql, table: stats.name, bytes_before: total(&before), bytes_after: total(&after), indexes })
}

/// Each index of a table (given as `regclass` text) with its size, by name.
async fn index_sizes(pools: &Pools, regclass: &str) -> Result<Vec<(String, i64)>, Error> {
    let sql = "SELECT i.indexrelid::regclass::text AS index, pg_relation_size(i.indexrelid)::int8 AS bytes \
               FROM pg_index i WHERE i.indrelid = to_regclass($1) ORDER BY 1";
    let rows = pools.primary().query(sql, &[&regclass]).await?;
    Ok(rows.iter().map(|row| Ok((db::get(row, "index")?, db::get(row, "bytes")?))).collect::<Result<_, db::Error>>()?)
}

/// `CREATE [UNIQUE] INDEX CONCURRENTLY name ON table (columns)`. A failed build's invalid
/// leftover is dropped; an index of that name already there is never touched.
pub async fn create(pools: &Pools, db: &crate::db::PgConfig, table: &str, columns: &[String], name: Option<&str>, unique: bool) -> Result<Created, Error> {
    let stats = super::catalog::table(pools, table).await?.ok_or_else(|| Error::TableNotFound { table: table.to_owned() })?;
    if columns.is_empty() {
        return Err(Error::Invalid("columns: give at least one column".into()));
    }
    if let Some(missing) = columns.iter().find(|c| !stats.columns.contains(c)) {
        return Err(Error::Invalid(format!("{} has no column {missing}", stats.name)));
    }
    let name = match name {
        Some(n) => sql::name(n).map_err(|e| Error::Invalid(format!("name: {e}")))?.to_owned(),
        None => sql::fit(&format!("{}_{}_idx", stats.name, columns.join("_"))).to_owned(),
    };
    let qualified = sql::qualified(&stats.schema, &name);
    if index_entry(pools, &qualified).await?.is_some() {
        return Err(Error::Refused(format!("an index named {name} already exists")));
    }
    let cols: Vec<String> = columns.iter().map(|c| sql::ident(c)).collect();
    let sql = format!(
        "CREATE {}INDEX CONCURRENTLY {} ON {} ({});",
        if unique { "UNIQUE " } else { "" },
        sql::ident(&name),
        stats.qualified(),
        cols.join(", ")
    );
    if let Err(err) = run(db, &sql).await {
        let _ = run(db, &format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified};")).await;
        return Err(err);
    }
    Ok(Created { done: sql, index: name })
}

/// `DROP INDEX CONCURRENTLY`, refused for an index that backs a constraint or is not on
/// `table` (when given).
pub async fn drop(pools: &Pools, db: &crate::db::PgConfig, index: &str, table: Option<&str>) -> Result<Dropped, Error> {
    let IndexEntry { name, table: on, constraint, .. } = index_named(pools, index).await?;
    if let Some(table) = table {
        let stats = super::catalog::table(pools, table).await?.ok_or_else(|| Error::TableNotFound { table: table.to_owned() })?;
        if !super::rules::same_table(&on, &stats.name) {
            return Err(Error::Refused(format!("{name} is on {on}, not on {table}")));
        }
    }
    if constraint {
        return Err(Error::Refused(format!("{name} enforces a constraint (primary key, unique or exclusion); drop the constraint instead")));
    }
    let sql = format!("DROP INDEX CONCURRENTLY {name};");
    run(db, &sql).await?;
    Ok(Dropped { done: sql, table: on })
}

/// Runs a suggested `CREATE INDEX CONCURRENTLY` statement (nothing else is accepted).
pub async fn create_from_sql(db: &crate::db::PgConfig, sql: &str) -> Result<(), Error> {
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).map_err(|e| Error::Invalid(format!("not SQL: {e}")))?;
    let ok = parsed.protobuf.stmts.len() == 1
        && matches!(parsed.protobuf.stmts[0].stmt.as_ref().and_then(|s| s.node.as_ref()), Some(pg_query::NodeEnum::IndexStmt(i)) if i.concurrent);
    if !ok {
        return Err(Error::Invalid("apply takes one CREATE INDEX CONCURRENTLY statement".into()));
    }
    run(db, sql).await
}
