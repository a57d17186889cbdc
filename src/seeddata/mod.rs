//! Generated seed data (`dbagent seed generate`, `POST /seed/generate`): plausible rows for a
//! table, made up from each column's type, name and CHECK rules, honouring unique keys and
//! foreign keys, loaded with COPY in one transaction. Not to be confused with
//! [`crate::migrate::seed`], which runs hand-written seed *scripts* (`seeds/<env>/*.sql`).
//!
//! * **Parents first.** A foreign key to a table with rows reuses its keys; to an empty table,
//!   that table is filled first (a tenth as many rows, 1 to 10,000), recursively. A cycle of
//!   foreign keys gets NULL where a column of the cycle is nullable, and is refused where none is.
//! * **One transaction.** The parents, the `--clear` (`TRUNCATE ... RESTART IDENTITY`, refused
//!   when another table references this one) and the rows commit together or not at all.
//! * **Reproducible.** Every value comes from a [`fastrand::Rng`] seeded with the request's
//!   seed (a random one, reported, when none is given) and the table's name; parent keys are
//!   read in key order. The same seed on the same starting state gives the same rows.
//! * **Checked by the database.** Rules the generator cannot read from a CHECK (a pattern, a
//!   comparison of two columns) are left to PostgreSQL; a row breaking one fails the COPY, and
//!   the answer names the constraint and its definition.

mod checks;
mod model;
mod values;

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use bytes::{BufMut, BytesMut};
use futures_util::SinkExt;
use serde::{Deserialize, Serialize};
use tokio_postgres::Transaction;

use crate::db::{self, admin::Purpose};
use crate::error::{Classify, ErrorKind};
use model::{Table, TableName};
use values::Maker;

/// Most rows one request may ask for.
pub const MAX_ROWS: u64 = 10_000_000;
/// Parent rows made per child row when a parent table is empty, and their bounds.
const PARENT_SHARE: u64 = 10;
const MAX_PARENT_ROWS: u64 = 10_000;
/// Attempts at a row whose unique key collides before giving up.
const UNIQUE_ATTEMPTS: usize = 100;
/// COPY data is sent in chunks of about this size.
const CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Schema(crate::schema::Error),
    #[error("{name:?} is not a table (rows can only be generated for tables)")]
    NotATable { name: String },
    #[error("cannot generate values for {table}.{column} of type {type_name} (NOT NULL, no default); give it a default or fill the table another way")]
    UnsupportedType { table: String, column: String, type_name: String },
    #[error("the foreign keys {path} form a cycle with no nullable column to break it")]
    Cycle { path: String },
    #[error("{table}.{columns} must reference a row of {table} itself, and the table is empty")]
    SelfReference { table: String, columns: String },
    #[error("cannot make {wanted} distinct values for the unique key ({columns}) of {table}: still colliding after {UNIQUE_ATTEMPTS} attempts (too few parent rows or possible values)")]
    UniqueExhausted { table: String, columns: String, wanted: u64 },
    #[error("generated rows for {table} break CHECK constraint {constraint}: {definition}; dbagent cannot satisfy this check, fill the table another way or relax it")]
    CheckUnsatisfied { table: String, constraint: String, definition: String },
    #[error("PostgreSQL refused the rows generated for {table}: {}{}", server.message, server.detail.as_ref().map_or_else(String::new, |d| format!(" ({d})")))]
    Rejected { table: String, server: Box<db::PgError> },
    #[error("cannot clear {table}: {referenced_by} reference(s) it; clear those first")]
    ClearBlocked { table: String, referenced_by: String },
    #[error(transparent)]
    Db(#[from] db::Error),
}

impl Error {
    fn from_driver(err: tokio_postgres::Error) -> Error {
        Error::Db(db::Error::from_driver(err, false))
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_) | Error::NotATable { .. } => ErrorKind::BadRequest,
            Error::Schema(err) => err.kind(),
            Error::UnsupportedType { .. }
            | Error::Cycle { .. }
            | Error::SelfReference { .. }
            | Error::UniqueExhausted { .. }
            | Error::CheckUnsatisfied { .. }
            | Error::Rejected { .. } => ErrorKind::Unprocessable,
            Error::ClearBlocked { .. } => ErrorKind::Conflict,
            Error::Db(err) => err.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "invalid_request",
            Error::NotATable { .. } => "not_a_table",
            Error::Schema(err) => err.code(),
            Error::UnsupportedType { .. } | Error::Cycle { .. } | Error::SelfReference { .. } | Error::UniqueExhausted { .. } | Error::Rejected { .. } => {
                "cannot_generate"
            }
            Error::CheckUnsatisfied { .. } => "check_unsatisfiable",
            Error::ClearBlocked { .. } => "clear_blocked",
            Error::Db(err) => err.code(),
        }
    }

    fn server(&self) -> Option<&db::PgError> {
        match self {
            Error::Db(err) => err.server(),
            Error::Schema(err) => err.server(),
            Error::Rejected { server, .. } => Some(server),
            _ => None,
        }
    }
}

/// `POST /seed/generate`'s body and `dbagent seed generate`'s arguments.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// The table, as a user writes it (`users`, `public.users`, `"Order Items"`).
    pub table: String,
    pub rows: u64,
    /// Empty the table first (`TRUNCATE ... RESTART IDENTITY`).
    #[serde(default)]
    pub clear: bool,
    /// The same seed on the same starting state gives the same rows.
    #[serde(default)]
    pub seed: Option<u64>,
}

/// What was generated.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub success: bool,
    /// The seed used (pass it again to get the same rows).
    pub seed: u64,
    pub table: String,
    pub rows: u64,
    pub cleared: bool,
    /// Every table filled, parents first, with its row count.
    pub tables: Vec<Filled>,
    pub duration_ms: f64,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Filled {
    pub table: String,
    pub rows: u64,
    /// `requested`, or `parent` for an empty table a foreign key needed rows in.
    pub reason: &'static str,
}

/// Generates `request.rows` rows for `request.table` on the primary `db`, in one transaction.
pub async fn generate(db: &crate::db::PgConfig, request: &Request) -> Result<Report, Error> {
    if request.rows == 0 || request.rows > MAX_ROWS {
        return Err(Error::Invalid(format!("rows must be between 1 and {MAX_ROWS}, not {}", request.rows)));
    }
    let started = Instant::now();
    let seed = request.seed.unwrap_or_else(|| fastrand::u64(..));
    let mut client = db::admin::connect(db, Purpose::Generate).await.map_err(|e| Error::Db(db::Error::Unavailable { reason: db::error_chain(&e) }))?;
    let tx = client.transaction().await.map_err(Error::from_driver)?;
    let target = model::resolve(&tx, &request.table).await?;
    if request.clear {
        clear(&tx, &target).await?;
    }
    let mut run = Run { seed, stack: Vec::new(), filled: Vec::new() };
    run.fill(&tx, target.clone(), request.rows, "requested").await?;
    tx.commit().await.map_err(|e| Error::Db(db::Error::from_driver(e, true)))?;
    Ok(Report {
        success: true,
        seed,
        table: target.display(),
        rows: request.rows,
        cleared: request.clear,
        tables: run.filled,
        duration_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

async fn clear(tx: &Transaction<'_>, table: &TableName) -> Result<(), Error> {
    let referenced_by = model::referenced_by(tx, table.oid).await?;
    if !referenced_by.is_empty() {
        return Err(Error::ClearBlocked { table: table.display(), referenced_by: referenced_by.join(", ") });
    }
    tx.batch_execute(&format!("TRUNCATE {} RESTART IDENTITY", table.sql())).await.map_err(Error::from_driver)
}

/// Where a foreign key's values come from.
enum KeySource {
    /// Key tuples of the parent, in key order.
    Keys(Vec<Vec<Option<String>>>),
    /// NULL (a nullable column that breaks a cycle).
    Null,
}

struct Run {
    seed: u64,
    /// Tables being filled, outermost first (for cycles).
    stack: Vec<u32>,
    filled: Vec<Filled>,
}

impl Run {
    fn fill<'a>(
        &'a mut self,
        tx: &'a Transaction<'_>,
        name: TableName,
        rows: u64,
        reason: &'static str,
    ) -> futures_util::future::BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let table = model::load(tx, name).await?;
            self.stack.push(table.name.oid);
            let mut sources = Vec::new();
            for fk in &table.foreign_keys {
                sources.push(self.keys_for(tx, &table, fk, rows).await?);
            }
            self.stack.pop();
            let copied = copy_rows(tx, &table, &sources, rows, self.seed).await?;
            self.filled.push(Filled { table: table.name.display(), rows: copied, reason });
            Ok(())
        })
    }

    /// The keys `fk` can take, filling an empty parent first.
    async fn keys_for(&mut self, tx: &Transaction<'_>, table: &Table, fk: &model::ForeignKey, rows: u64) -> Result<KeySource, Error> {
        let nullable = fk.columns.iter().any(|c| table.column(c).is_some_and(|c| !c.not_null));
        let parent = model::by_oid(tx, fk.parent).await?;
        let keys = parent_keys(tx, &parent, &fk.parent_columns).await?;
        if !keys.is_empty() {
            return Ok(KeySource::Keys(keys));
        }
        if fk.parent == table.name.oid {
            return if nullable {
                Ok(KeySource::Null)
            } else {
                Err(Error::SelfReference { table: table.name.display(), columns: fk.columns.join(", ") })
            };
        }
        if self.stack.contains(&fk.parent) {
            if nullable {
                return Ok(KeySource::Null);
            }
            return Err(Error::Cycle { path: format!("{} → {} ({})", table.name.display(), parent.display(), fk.name) });
        }
        let parent_rows = (rows / PARENT_SHARE).clamp(1, MAX_PARENT_ROWS);
        self.fill(tx, parent.clone(), parent_rows, "parent").await.map_err(|err| match err {
            Error::Cycle { path } => Error::Cycle { path: format!("{} → {path}", table.name.display()) },
            other => other,
        })?;
        Ok(KeySource::Keys(parent_keys(tx, &parent, &fk.parent_columns).await?))
    }
}

/// The parent's key tuples as text, in key order (at most 100,000: enough to spread rows over).
async fn parent_keys(tx: &Transaction<'_>, parent: &TableName, columns: &[String]) -> Result<Vec<Vec<Option<String>>>, Error> {
    let list: Vec<String> = columns.iter().map(|c| format!("{}::text", db::sql::ident(c))).collect();
    let order: Vec<String> = columns.iter().map(|c| db::sql::ident(c)).collect();
    let sql = format!("SELECT {} FROM {} ORDER BY {} LIMIT 100000", list.join(", "), parent.sql(), order.join(", "));
    let rows = tx.query(&sql, &[]).await.map_err(Error::from_driver)?;
    Ok(rows.iter().map(|r| (0..columns.len()).map(|i| r.get::<_, Option<String>>(i)).collect()).collect())
}

/// A stable 64-bit hash of a table's name, to give each table its own random stream.
fn name_hash(name: &str) -> u64 {
    // FNV-1a: std's hasher may change between releases, and the stream must not.
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// One column the generator fills, and how.
enum Source<'a> {
    Made(Maker),
    /// NULL: a nullable column of a type with no generator.
    Null,
    /// Part `index` of foreign key `fk`'s key tuple.
    Key { fk: usize, index: usize, keys: &'a KeySource },
}

/// Makes `rows` rows and COPYs them into `table`; returns how many were copied.
async fn copy_rows(tx: &Transaction<'_>, table: &Table, sources: &[KeySource], rows: u64, seed: u64) -> Result<u64, Error> {
    let existing: i64 = tx.query_one(&format!("SELECT count(*) FROM {}", table.name.sql()), &[]).await.map_err(Error::from_driver)?.get(0);
    let unique_alone: HashSet<&str> = table.uniques.iter().filter(|u| u.len() == 1).map(|u| u[0].as_str()).collect();
    let mut columns: Vec<(&str, Source)> = Vec::new();
    for column in &table.columns {
        let fk = table.foreign_keys.iter().position(|fk| fk.columns.contains(&column.name));
        if !values::generated(column, fk.is_some()) {
            continue;
        }
        if let Some(fk) = fk {
            let index = table.foreign_keys[fk].columns.iter().position(|c| c == &column.name).unwrap_or(0);
            columns.push((&column.name, Source::Key { fk, index, keys: &sources[fk] }));
            continue;
        }
        let unique = unique_alone.contains(column.name.as_str());
        match Maker::for_column(column, unique, table.uniques.iter().any(|u| u.contains(&column.name))) {
            Ok(mut maker) => {
                if unique && matches!(column.base_type.as_str(), "int2" | "int4" | "int8") && existing > 0 {
                    let max: Option<i64> = tx
                        .query_one(&format!("SELECT max({})::int8 FROM {}", db::sql::ident(&column.name), table.name.sql()), &[])
                        .await
                        .map_err(Error::from_driver)?
                        .get(0);
                    maker.start_after(max.unwrap_or(0));
                }
                columns.push((&column.name, Source::Made(maker)));
            }
            Err(values::Unsupported) if !column.not_null => columns.push((&column.name, Source::Null)),
            Err(values::Unsupported) => {
                return Err(Error::UnsupportedType { table: table.name.display(), column: column.name.clone(), type_name: column.formatted_type.clone() });
            }
        }
    }
    // Unique keys whose every column the generator fills: collisions are retried here, not
    // left to fail the COPY. Existing rows' keys count too.
    let mut tracked: Vec<(Vec<usize>, HashSet<Vec<String>>)> = Vec::new();
    for unique in &table.uniques {
        let positions: Option<Vec<usize>> = unique.iter().map(|c| columns.iter().position(|(name, _)| name == c)).collect();
        if let Some(positions) = positions {
            let seen = if existing > 0 { existing_keys(tx, &table.name, unique).await? } else { HashSet::new() };
            tracked.push((positions, seen));
        }
    }
    let mut rng = fastrand::Rng::with_seed(seed ^ name_hash(&table.name.display()));
    let names: Vec<String> = columns.iter().map(|(n, _)| db::sql::ident(n)).collect();
    let statement = format!("COPY {} ({}) FROM STDIN", table.name.sql(), names.join(", "));
    let sink = tx.copy_in::<_, bytes::Bytes>(&statement).await.map_err(Error::from_driver)?;
    futures_util::pin_mut!(sink);
    let mut buffer = BytesMut::with_capacity(CHUNK + 4096);
    let mut row: Vec<Option<String>> = vec![None; columns.len()];
    for i in 0..rows {
        let serial = existing as u64 + i;
        // A row whose unique keys collide is made again whole (a composite foreign key stays
        // one parent's tuple), with serials past this run's so serial-based values differ.
        let mut attempt = 0;
        loop {
            make_row(&columns, &mut rng, serial + attempt * rows, &mut row);
            let keys: Vec<Option<Vec<String>>> =
                tracked.iter().map(|(positions, _)| positions.iter().map(|&p| row[p].clone()).collect()).collect();
            // NULLs never collide.
            let clash = tracked.iter().zip(&keys).position(|((_, seen), key)| key.as_ref().is_some_and(|k| seen.contains(k)));
            let Some(clash) = clash else {
                for ((_, seen), key) in tracked.iter_mut().zip(keys) {
                    if let Some(key) = key {
                        seen.insert(key);
                    }
                }
                break;
            };
            attempt += 1;
            if attempt as usize >= UNIQUE_ATTEMPTS {
                let names: Vec<&str> = tracked[clash].0.iter().map(|&p| columns[p].0).collect();
                return Err(Error::UniqueExhausted { table: table.name.display(), columns: names.join(", "), wanted: rows });
            }
        }
        encode_row(&row, &mut buffer);
        if buffer.len() >= CHUNK {
            let chunk = buffer.split().freeze();
            if let Err(err) = sink.send(chunk).await {
                return Err(copy_error(err, table));
            }
        }
    }
    if !buffer.is_empty()
        && let Err(err) = sink.send(buffer.freeze()).await
    {
        return Err(copy_error(err, table));
    }
    sink.finish().await.map_err(|err| copy_error(err, table))
}

fn make_row(columns: &[(&str, Source)], rng: &mut fastrand::Rng, serial: u64, row: &mut [Option<String>]) {
    // Foreign keys of several columns take one parent tuple: pick it once per key.
    let mut picked: BTreeMap<usize, usize> = BTreeMap::new();
    for (slot, (_, source)) in row.iter_mut().zip(columns) {
        *slot = match source {
            Source::Key { fk, index, keys: KeySource::Keys(keys) } => {
                let at = *picked.entry(*fk).or_insert_with(|| rng.usize(..keys.len()));
                keys[at].get(*index).cloned().flatten()
            }
            other => make_value(other, rng, serial),
        };
    }
}

fn make_value(source: &Source, rng: &mut fastrand::Rng, serial: u64) -> Option<String> {
    match source {
        Source::Made(maker) => maker.make(rng, serial),
        Source::Null | Source::Key { keys: KeySource::Null, .. } => None,
        Source::Key { index, keys: KeySource::Keys(keys), .. } => keys[rng.usize(..keys.len())].get(*index).cloned().flatten(),
    }
}

/// The unique key `columns` of the rows `table` holds, as text.
async fn existing_keys(tx: &Transaction<'_>, table: &TableName, columns: &[String]) -> Result<HashSet<Vec<String>>, Error> {
    let list: Vec<String> = columns.iter().map(|c| format!("{}::text", db::sql::ident(c))).collect();
    let rows = tx.query(&format!("SELECT {} FROM {}", list.join(", "), table.sql()), &[]).await.map_err(Error::from_driver)?;
    Ok(rows.iter().filter_map(|r| (0..columns.len()).map(|i| r.get::<_, Option<String>>(i)).collect()).collect())
}

/// One row in COPY's text format: tab-separated, `\N` for NULL, backslash escapes.
fn encode_row(row: &[Option<String>], out: &mut BytesMut) {
    for (i, value) in row.iter().enumerate() {
        if i > 0 {
            out.put_u8(b'\t');
        }
        match value {
            None => out.put_slice(b"\\N"),
            Some(text) => {
                for b in text.bytes() {
                    match b {
                        b'\\' => out.put_slice(b"\\\\"),
                        b'\t' => out.put_slice(b"\\t"),
                        b'\n' => out.put_slice(b"\\n"),
                        b'\r' => out.put_slice(b"\\r"),
                        b => out.put_u8(b),
                    }
                }
            }
        }
    }
    out.put_u8(b'\n');
}

/// A failed COPY: a broken CHECK named with its definition; a value or constraint the
/// database refused (SQLSTATE classes 22 and 23: a generator's limit, not the caller's SQL)
/// as what it said; the rest (a lost connection, a timeout) as it is.
fn copy_error(err: tokio_postgres::Error, table: &Table) -> Error {
    let Some(db_err) = err.as_db_error() else { return Error::from_driver(err) };
    let code = db_err.code().code();
    if code == "23514" {
        let constraint = db_err.constraint().unwrap_or("?").to_owned();
        let definition = table.checks.iter().find(|(name, _)| name == &constraint).map_or_else(|| db_err.message().to_owned(), |(_, d)| d.clone());
        return Error::CheckUnsatisfied { table: table.name.display(), constraint, definition };
    }
    if code.starts_with("22") || code.starts_with("23") {
        return Error::Rejected { table: table.name.display(), server: Box::new(db::PgError::from_db(db_err)) };
    }
    Error::from_driver(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_copy_would_misread() {
        let mut out = BytesMut::new();
        encode_row(&[Some("a\tb\\c\nd".into()), None, Some(String::new())], &mut out);
        assert_eq!(&out[..], b"a\\tb\\\\c\\nd\t\\N\t\n");
    }

    #[test]
    fn table_streams_differ_and_stay_put() {
        assert_eq!(name_hash("public.users"), name_hash("public.users"));
        assert_ne!(name_hash("public.users"), name_hash("public.orders"));
    }
}
