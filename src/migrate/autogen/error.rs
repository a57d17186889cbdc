//! What can go wrong generating a migration: reaching the server, the scratch database, the
//! desired schema's own SQL, and reading the catalogs.

use serde::Serialize;

pub use crate::db::PgError;
use crate::error::{Classify, ErrorKind, INTERNAL};

/// Where in the desired schema text a failure happened (1-based, in characters).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Location {
    pub line: u32,
    pub column: u32,
}

impl Location {
    /// The line and column of the 1-based character `position` in `text`.
    pub fn of(text: &str, position: u32) -> Location {
        let before: String = text.chars().take(position.saturating_sub(1) as usize).collect();
        let line = before.matches('\n').count() as u32 + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
        Location { line, column }
    }
}

/// Everything that can go wrong in `autogenerate` and `snapshot`.
///
/// [`Classify`] gives each variant's kind and code; the underlying error, when there is one, is
/// the [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server could not be reached, or a connection was lost.
    #[error("the database server is unavailable")]
    Unavailable {
        #[source]
        source: tokio_postgres::Error,
    },

    /// The scratch database could not be created, typically because the role lacks
    /// `CREATEDB`.
    #[error("could not create the scratch database {name} (the role needs CREATEDB)")]
    CreateScratch {
        name: String,
        #[source]
        source: tokio_postgres::Error,
    },

    /// A statement of the desired schema failed when loaded into the scratch database.
    /// The SQLSTATE and where the statement failed are kept.
    #[error("the desired schema does not load: {} failed{}", statement_name(*.statement), at(.location))]
    InvalidSchema {
        /// 1-based index of the failing statement; `None` when the text could not be split into
        /// statements (a syntax error) and was sent whole.
        statement: Option<usize>,
        location: Option<Location>,
        server: Box<PgError>,
        #[source]
        source: tokio_postgres::Error,
    },

    /// A catalog query was refused by the server.
    #[error("could not read the catalog: {action}")]
    Catalog {
        action: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
}

impl Error {
    /// The SQLSTATE PostgreSQL reported, if this error came from the server.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::InvalidSchema { server, .. } => Some(&server.sqlstate),
            Error::CreateScratch { source, .. } | Error::Catalog { source, .. } => {
                source.as_db_error().map(|db| db.code().code())
            }
            Error::Unavailable { .. } => None,
        }
    }

    /// Adapter for `map_err` on catalog queries: a lost connection is [`Error::Unavailable`],
    /// a server error is [`Error::Catalog`].
    pub(crate) fn catalog(action: &'static str) -> impl FnOnce(tokio_postgres::Error) -> Error {
        move |source| {
            if source.as_db_error().is_none() {
                Error::Unavailable { source }
            } else {
                Error::Catalog { action, source }
            }
        }
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::InvalidSchema { .. } => ErrorKind::Unprocessable,
            Error::CreateScratch { .. } | Error::Catalog { .. } => ErrorKind::Internal,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::Unavailable { .. } => "database_unavailable",
            Error::InvalidSchema { .. } => "invalid_schema",
            Error::CreateScratch { .. } | Error::Catalog { .. } => INTERNAL,
        }
    }

    fn server(&self) -> Option<&PgError> {
        match self {
            Error::InvalidSchema { server, .. } => Some(server),
            _ => None,
        }
    }
}

fn statement_name(statement: Option<usize>) -> String {
    match statement {
        Some(n) => format!("statement {n}"),
        None => "it".to_string(),
    }
}

fn at(location: &Option<Location>) -> String {
    match location {
        Some(Location { line, column }) => format!(" at line {line}, column {column}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_become_lines_and_columns() {
        let text = "CREATE TABLE a ();\nCREATE TABLE b (x nosuchtype);";
        let cases = [(1, (1, 1)), (18, (1, 18)), (20, (2, 1)), (37, (2, 18))];
        for (position, (line, column)) in cases {
            assert_eq!(
                Location::of(text, position),
                Location { line, column },
                "position {position}"
            );
        }
    }
}
