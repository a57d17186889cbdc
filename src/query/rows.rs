//! Streaming a statement's result rows straight into JSON text.
//!
//! Rows are written as bytes as they arrive (no intermediate value trees): this is the hot
//! path of every read. Rows past `max_rows` are counted but not encoded.

use futures_util::TryStreamExt;
use serde::Serialize;
use tokio_postgres::{Column, RowStream};

use crate::db::types::{Raw, write_json, write_json_str};

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
}

/// A result column as the API reports it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ColumnInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

/// Reads the whole stream, encoding at most `max_rows` rows.
pub async fn collect(stream: RowStream, columns: &[Column], max_rows: usize) -> Result<Rows, CollectError> {
    let keys = object_keys(columns);
    let mut json = Vec::with_capacity(256);
    json.push(b'[');
    let mut returned = 0usize;
    let mut seen = 0u64;
    let mut stream = std::pin::pin!(stream);
    while let Some(row) = stream.try_next().await.map_err(CollectError::Driver)? {
        seen += 1;
        if returned == max_rows {
            continue;
        }
        if returned > 0 {
            json.push(b',');
        }
        json.push(b'{');
        for (i, (key, column)) in keys.iter().zip(columns).enumerate() {
            json.extend_from_slice(key.as_bytes());
            let Raw(raw) = row.try_get::<_, Raw>(i).map_err(CollectError::Driver)?;
            write_json(&mut json, column.type_(), raw).map_err(CollectError::Decode)?;
        }
        json.push(b'}');
        returned += 1;
    }
    json.push(b']');
    let row_count = stream.rows_affected().unwrap_or(seen);
    Ok(Rows {
        json,
        returned,
        row_count,
        truncated: seen > returned as u64,
        columns: columns.iter().map(|c| ColumnInfo { name: c.name().to_string(), type_name: c.type_().name().to_string() }).collect(),
    })
}

#[derive(Debug)]
pub enum CollectError {
    Driver(tokio_postgres::Error),
    Decode(crate::db::types::DecodeError),
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
