//! Index upkeep: reports (unused, duplicate, invalid, bloated indexes) and actions (ANALYZE,
//! REINDEX CONCURRENTLY, CREATE / DROP INDEX CONCURRENTLY, apply a suggestion and measure).
//!
//! Actions run on a connection of their own without the API's statement timeout (an index
//! build on a big table takes what it takes) and never inside a transaction (CONCURRENTLY
//! forbids it). Names are checked against the catalog before anything runs, and an index that
//! backs a constraint is never dropped.

use serde::Serialize;
use serde_json::Value;

use super::Error;
use crate::cache::watch::{quote_ident, quote_name};
use crate::db::{self, Pools};

#[derive(Debug, Clone, Serialize)]
pub struct IndexReport {
    pub index: String,
    pub table: String,
    pub bytes: i64,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

fn parse_rows(rows: Vec<Vec<Option<String>>>) -> Vec<IndexReport> {
    rows.into_iter()
        .filter_map(|r| {
            let text = |i: usize| r.get(i).cloned().flatten();
            Some(IndexReport {
                index: text(0)?,
                table: text(1)?,
                bytes: text(2).and_then(|b| b.parse().ok()).unwrap_or(0),
                reason: text(3).unwrap_or_default(),
                fix: text(4),
            })
        })
        .collect()
}

const USER_INDEXES: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'dbagent') AND n.nspname NOT LIKE 'pg_toast%'";

/// Indexes never scanned since statistics were reset, that enforce nothing.
pub async fn unused(pools: &Pools, table: Option<&str>) -> Result<Vec<IndexReport>, Error> {
    let filter = table.map(|t| format!("AND i.indrelid = to_regclass({})", quote_name(t))).unwrap_or_default();
    let sql = format!(
        "SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text, pg_relation_size(i.indexrelid)::text, \
           format('never used for a scan since statistics were reset (%s)', coalesce((SELECT stats_reset::text FROM pg_stat_database WHERE datname = current_database()), 'never reset')), \
           format('DROP INDEX CONCURRENTLY %s;', i.indexrelid::regclass) \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_stat_all_indexes s ON s.indexrelid = i.indexrelid \
         WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid) AND {USER_INDEXES} {filter} \
         ORDER BY pg_relation_size(i.indexrelid) DESC"
    );
    Ok(parse_rows(pools.primary().rows(&sql).await?))
}

/// Indexes whose key columns are a prefix of another index's on the same table, with the same
/// method, expressions and predicate (an identical pair is reported once). A unique or
/// constraint index is never the one proposed for dropping.
pub async fn duplicates(pools: &Pools, table: Option<&str>) -> Result<Vec<IndexReport>, Error> {
    let filter = table.map(|t| format!("AND a.indrelid = to_regclass({})", quote_name(t))).unwrap_or_default();
    let sql = format!(
        "SELECT a.indexrelid::regclass::text, a.indrelid::regclass::text, pg_relation_size(a.indexrelid)::text, \
           format('its columns are a prefix of %s (%s), which serves the same lookups', b.indexrelid::regclass, pg_get_indexdef(b.indexrelid)), \
           format('DROP INDEX CONCURRENTLY %s;', a.indexrelid::regclass) \
         FROM pg_index a JOIN pg_index b ON a.indrelid = b.indrelid AND a.indexrelid <> b.indexrelid \
         JOIN pg_class ca ON ca.oid = a.indexrelid JOIN pg_class cb ON cb.oid = b.indexrelid \
         JOIN pg_namespace n ON n.oid = ca.relnamespace \
         WHERE ca.relam = cb.relam AND a.indnkeyatts <= b.indnkeyatts AND a.indisvalid AND b.indisvalid \
           AND (a.indkey::int2[])[0:a.indnkeyatts - 1] = (b.indkey::int2[])[0:a.indnkeyatts - 1] \
           AND (a.indclass::oid[])[0:a.indnkeyatts - 1] = (b.indclass::oid[])[0:a.indnkeyatts - 1] \
           AND coalesce(pg_get_expr(a.indpred, a.indrelid), '') = coalesce(pg_get_expr(b.indpred, b.indrelid), '') \
           AND coalesce(pg_get_expr(a.indexprs, a.indrelid), '') = coalesce(pg_get_expr(b.indexprs, b.indrelid), '') \
           AND NOT a.indisunique AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = a.indexrelid) \
           AND (a.indnkeyatts < b.indnkeyatts OR b.indisunique OR a.indexrelid > b.indexrelid) \
           AND {USER_INDEXES} {filter} \
         ORDER BY 1"
    );
    let mut found = parse_rows(pools.primary().rows(&sql).await?);
    found.dedup_by(|a, b| a.index == b.index);
    Ok(found)
}

/// Indexes left invalid by a failed `CREATE INDEX CONCURRENTLY`: they cost writes, help no read.
pub async fn invalid(pools: &Pools, table: Option<&str>) -> Result<Vec<IndexReport>, Error> {
    let filter = table.map(|t| format!("AND i.indrelid = to_regclass({})", quote_name(t))).unwrap_or_default();
    let sql = format!(
        "SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text, pg_relation_size(i.indexrelid)::text, \
           'invalid (a failed concurrent build): maintained on every write, used by no query', \
           format('REINDEX INDEX CONCURRENTLY %s;  -- or DROP INDEX CONCURRENTLY %s;', i.indexrelid::regclass, i.indexrelid::regclass) \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT i.indisvalid AND {USER_INDEXES} {filter} ORDER BY 1"
    );
    Ok(parse_rows(pools.primary().rows(&sql).await?))
}

/// B-tree indexes larger than their contents need: expected size from the row count and the key
/// columns' average widths (pg_stats) at the default 90 % fill, against the actual size. An
/// estimate; reported when the waste is over 30 % and 1 MB.
pub async fn bloat(pools: &Pools, table: Option<&str>) -> Result<Vec<IndexReport>, Error> {
    let filter = table.map(|t| format!("AND i.indrelid = to_regclass({})", quote_name(t))).unwrap_or_default();
    let sql = format!(
        "WITH est AS ( \
           SELECT i.indexrelid, i.indrelid, pg_relation_size(i.indexrelid) AS actual, \
             ceil(greatest(ct.reltuples, 0) * (12 + coalesce((SELECT sum(coalesce(s.avg_width, 8)) FROM unnest(i.indkey::int2[]) k(attnum) \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = ct.relname AND s.attname = a.attname), 8)) \
               / (current_setting('block_size')::int * 0.9)) * current_setting('block_size')::int + 2 * current_setting('block_size')::int AS expected \
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class ct ON ct.oid = i.indrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = c.relam \
           WHERE am.amname = 'btree' AND i.indisvalid AND i.indexprs IS NULL AND {USER_INDEXES} {filter}) \
         SELECT indexrelid::regclass::text, indrelid::regclass::text, actual::text, \
           format('about %s of %s is waste (estimated from row count and key widths)', pg_size_pretty((actual - expected)::bigint), pg_size_pretty(actual)), \
           format('REINDEX INDEX CONCURRENTLY %s;', indexrelid::regclass) \
         FROM est WHERE actual - expected > greatest(actual * 0.3, 1024 * 1024) ORDER BY actual - expected DESC"
    );
    Ok(parse_rows(pools.primary().rows(&sql).await?))
}

/// An index by name, with its table and whether it backs a constraint.
async fn index_info(pools: &Pools, index: &str) -> Result<(String, String, bool), Error> {
    let sql = format!(
        "SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text, \
           EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid)::text \
         FROM pg_index i WHERE i.indexrelid = to_regclass({})",
        quote_name(index)
    );
    let row = pools.primary().rows(&sql).await?.into_iter().next().ok_or_else(|| Error::IndexNotFound { index: index.to_owned() })?;
    let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    Ok((text(0), text(1), text(2) == "true"))
}

async fn run(db: &tokio_postgres::Config, sql: &str) -> Result<(), Error> {
    let client = db::admin::connect(db, "dbagent-indexes").await.map_err(|e| db::Error::Unavailable { reason: db::error_chain(&e) })?;
    client.batch_execute(sql).await.map_err(|e| Error::from(db::Error::from_driver(e, false)))
}

async fn relation_size(pools: &Pools, name: &str) -> Result<i64, Error> {
    let rows = pools.primary().rows(&format!("SELECT pg_relation_size(to_regclass({}))::text", quote_name(name))).await?;
    Ok(rows.first().and_then(|r| r.first().cloned().flatten()).and_then(|s| s.parse().ok()).unwrap_or(0))
}

/// `ANALYZE table`.
pub async fn analyze(pools: &Pools, db: &tokio_postgres::Config, table: &str) -> Result<Value, Error> {
    let stats = super::catalog::table(pools, table).await?.ok_or_else(|| Error::TableNotFound { table: table.to_owned() })?;
    let sql = format!("ANALYZE {};", stats.qualified());
    run(db, &sql).await?;
    Ok(serde_json::json!({ "done": sql }))
}

/// `REINDEX INDEX CONCURRENTLY`, with the size before and after.
pub async fn rebuild(pools: &Pools, db: &tokio_postgres::Config, index: &str) -> Result<Value, Error> {
    let (name, table, _) = index_info(pools, index).await?;
    let before = relation_size(pools, &name).await?;
    let sql = format!("REINDEX INDEX CONCURRENTLY {name};");
    run(db, &sql).await?;
    let after = relation_size(pools, &name).await?;
    Ok(serde_json::json!({ "done": sql, "table": table, "bytes_before": before, "bytes_after": after }))
}

/// `CREATE [UNIQUE] INDEX CONCURRENTLY name ON table (columns)`. A failed build's invalid
/// leftover is dropped.
pub async fn create(pools: &Pools, db: &tokio_postgres::Config, table: &str, columns: &[String], name: Option<&str>, unique: bool) -> Result<Value, Error> {
    let stats = super::catalog::table(pools, table).await?.ok_or_else(|| Error::TableNotFound { table: table.to_owned() })?;
    if columns.is_empty() {
        return Err(Error::Invalid("columns: give at least one column".into()));
    }
    if let Some(missing) = columns.iter().find(|c| !stats.columns.contains(c)) {
        return Err(Error::Invalid(format!("{} has no column {missing}", stats.name)));
    }
    let name = match name {
        Some(n) if n.is_empty() || n.len() > 63 => return Err(Error::Invalid("an index name is 1 to 63 characters".into())),
        Some(n) => n.to_owned(),
        None => format!("{}_{}_idx", stats.name, columns.join("_")).chars().take(63).collect(),
    };
    let qualified = format!("{}.{}", quote_ident(&stats.schema), quote_ident(&name));
    if index_info(pools, &qualified).await.is_ok() {
        return Err(Error::Refused(format!("an index named {name} already exists")));
    }
    let cols: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
    let sql = format!(
        "CREATE {}INDEX CONCURRENTLY {} ON {} ({});",
        if unique { "UNIQUE " } else { "" },
        quote_ident(&name),
        stats.qualified(),
        cols.join(", ")
    );
    if let Err(err) = run(db, &sql).await {
        let _ = run(db, &format!("DROP INDEX CONCURRENTLY IF EXISTS {qualified};")).await;
        return Err(err);
    }
    Ok(serde_json::json!({ "done": sql, "index": name }))
}

/// `DROP INDEX CONCURRENTLY`, refused for an index that backs a constraint or is not on
/// `table` (when given).
pub async fn drop(pools: &Pools, db: &tokio_postgres::Config, index: &str, table: Option<&str>) -> Result<Value, Error> {
    let (name, on, constraint) = index_info(pools, index).await?;
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
    Ok(serde_json::json!({ "done": sql, "table": on }))
}

/// Runs a suggested `CREATE INDEX CONCURRENTLY` statement (nothing else is accepted).
pub async fn create_from_sql(db: &tokio_postgres::Config, sql: &str) -> Result<(), Error> {
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).map_err(|e| Error::Invalid(format!("not SQL: {e}")))?;
    let ok = parsed.protobuf.stmts.len() == 1
        && matches!(parsed.protobuf.stmts[0].stmt.as_ref().and_then(|s| s.node.as_ref()), Some(pg_query::NodeEnum::IndexStmt(i)) if i.concurrent);
    if !ok {
        return Err(Error::Invalid("apply takes one CREATE INDEX CONCURRENTLY statement".into()));
    }
    run(db, sql).await
}
