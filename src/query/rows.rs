//! Streaming a statement's result rows straight into JSON text.
//!
//! Rows are written as bytes as they arrive (no intermediate value trees): this is the hot
//! path of every read. Rows past `max_rows` are counted but not encoded.
//!
//! The JSON is bounded by `max_bytes` (`postgresql.max_response_bytes`): past it the statement
//! fails with [`CollectError::TooLarge`] rather than being cut in the middle of a row. A value
//! whose JSON cannot be shorter than its raw bytes (text, bytea, json) is measured before it is
//! decoded, so a value over the limit is never copied; other values are checked after each one
//! is written. The driver's copy of the row (tokio-postgres reads whole messages) is the one
//! copy left; a connection whose read buffer grew for a big row is replaced after it
//! (`run::BIG_ROW`), and the JSON moves into the HTTP answer without another copy.

use futures_util::TryStreamExt;
use serde::Serialize;
use tokio_postgres::types::Type;
use tokio_postgres::{Column, RowStream};

use crate::db::types::{Raw, write_json, write_json_str};
use crate::security::masking::MaskPlan;

/// Encoded result of one statement.
#[derive(Debug, Clone)]
pub struct Rows {
    /// A JSON array of row objects.
    pub json: Vec<u8>,
    /// Rows encoded into `json`.
    pub returned: usize,
    /// Rows the statement produced or affected (the command tag's count).
    pub row_count: u64,
    /// More rows existed than `max_rows`.
    pub truncated: bool,
    pub columns: Vec<ColumnInfo>,
    /// Bytes of the largest row as PostgreSQL sent it (what the driver's read buffer grew to
    /// hold; see `run::BIG_ROW`).
    pub largest_row: usize,
    /// For a masked caller: the masking resolution's generation this result was masked under
    /// (what a cached copy is keyed by).
    pub mask_generation: Option<u64>,
}

/// A result column as the API reports it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ColumnInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

/// Reads the whole stream, encoding at most `max_rows` rows in at most `max_bytes` of JSON,
/// the columns of `mask` masked. Past `max_bytes` the rest of the stream is still read (not
/// encoded), so the statement ends as it would have (an autocommit write commits) and the
/// connection stays in step.
pub async fn collect(
    stream: RowStream,
    columns: &[Column],
    max_rows: usize,
    max_bytes: usize,
    mask: Option<&MaskPlan>,
) -> Result<Rows, CollectError> {
    let keys = object_keys(columns);
    let mut json = Vec::with_capacity(256);
    json.push(b'[');
    let (mut returned, mut seen, mut largest_row, mut too_large) = (0usize, 0u64, 0usize, false);
    let mut stream = std::pin::pin!(stream);
    while let Some(row) = stream.try_next().await.map_err(CollectError::Driver)? {
        seen += 1;
        largest_row = largest_row.max(raw_size(&row));
        if too_large || returned == max_rows {
            continue;
        }
        if !write_row(&mut json, &row, &keys, columns, returned > 0, max_bytes, mask)? {
            too_large = true;
            json = Vec::new();
            continue;
        }
        returned += 1;
    }
    if too_large {
        return Err(CollectError::TooLarge { limit: max_bytes, largest_row });
    }
    json.push(b']');
    let row_count = stream.rows_affected().unwrap_or(seen);
    Ok(Rows {
        json,
        returned,
        row_count,
        truncated: seen > returned as u64,
        columns: columns.iter().map(|c| ColumnInfo { name: c.name().to_string(), type_name: c.type_().name().to_string() }).collect(),
        largest_row,
        mask_generation: None,
    })
}

/// Appends `row` as a JSON object; false (and `json` unusable) when it would pass `max_bytes`.
fn write_row(
    json: &mut Vec<u8>,
    row: &tokio_postgres::Row,
    keys: &[String],
    columns: &[Column],
    comma: bool,
    max_bytes: usize,
    mask: Option<&MaskPlan>,
) -> Result<bool, CollectError> {
    if comma {
        json.push(b',');
    }
    json.push(b'{');
    for (i, (key, column)) in keys.iter().zip(columns).enumerate() {
        json.extend_from_slice(key.as_bytes());
        let Raw(raw) = row.try_get::<_, Raw>(i).map_err(CollectError::Driver)?;
        if let Some((plan, strategy)) = mask.and_then(|plan| Some((plan, plan.column(i)?))) {
            plan.write(json, strategy, column.type_(), raw).map_err(CollectError::Decode)?;
            if json.len() > max_bytes {
                return Ok(false);
            }
            continue;
        }
        let least = raw.map_or(4, |raw| least_json_len(column.type_(), raw.len()));
        if json.len().saturating_add(least) > max_bytes {
            return Ok(false);
        }
        write_json(json, column.type_(), raw).map_err(CollectError::Decode)?;
        if json.len() > max_bytes {
            return Ok(false);
        }
    }
    json.push(b'}');
    Ok(true)
}

/// Bytes of the row's values as PostgreSQL sent them.
fn raw_size(row: &tokio_postgres::Row) -> usize {
    (0..row.len()).map(|i| row.try_get::<_, Raw>(i).ok().and_then(|Raw(raw)| raw).map_or(0, <[u8]>::len)).sum()
}

#[derive(Debug)]
pub enum CollectError {
    Driver(tokio_postgres::Error),
    Decode(crate::db::types::DecodeError),
    /// The rows' JSON would pass `max_bytes`.
    TooLarge { limit: usize, largest_row: usize },
}

/// The fewest bytes of JSON a non-null value of type `ty` with `raw_len` bytes in PostgreSQL's
/// binary form can take: text-like values are quoted (escaping only adds), bytea is hex,
/// jsonb is a version byte and the text. 0 for the rest (numbers, arrays ...), whose JSON can
/// be shorter than their binary form; those are checked once written.
fn least_json_len(ty: &Type, raw_len: usize) -> usize {
    match *ty {
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::XML | Type::UNKNOWN => raw_len + 2,
        Type::JSON => raw_len,
        Type::JSONB => raw_len.saturating_sub(1),
        Type::BYTEA => 2 * raw_len + 4,
        _ => 0,
    }
}

/// `"name":` for every column (with a leading comma after the first), made unique: a second
/// `id` becomes `id_2`, so no key is silently overwritten by a JSON parser.
fn object_keys(columns: &[Column]) -> Vec<String> {
    let mut used = std::collections::HashSet::with_capacity(columns.len());
    columns
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let mut name = column.name().to_string();
            let mut n = 2;
            while !used.insert(name.clone()) {
                name = format!("{}_{n}", column.name());
                n += 1;
            }
            let mut key = Vec::with_capacity(name.len() + 4);
            if i > 0 {
                key.push(b',');
            }
            write_json_str(&mut key, &name);
            key.push(b':');
            String::from_utf8(key).unwrap_or_default()
        })
        .collect()
}
