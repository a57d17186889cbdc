//! Reading the rows of dbagent's own queries by column name, into Rust types.

use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use super::Error;

/// Column `name` of `row` as a `T`. A missing column or a type that does not convert is a bug
/// in the query, reported as [`Error::UnexpectedAnswer`], never as a default value.
pub fn get<'a, T: FromSql<'a>>(row: &'a Row, name: &str) -> Result<T, Error> {
    row.try_get(name).map_err(|err| Error::UnexpectedAnswer { reason: format!("column {name}: {}", super::error_chain(&err)) })
}
