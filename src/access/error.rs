//! What can go wrong managing roles and grants.

use crate::db;
use crate::error::{Classify, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A catalog read or a statement failed on the database's side (or could not run).
    #[error(transparent)]
    Db(#[from] db::Error),
    /// A field of the request is unusable (the message names it).
    #[error("{0}")]
    Invalid(String),
    #[error("no role named {name:?}")]
    RoleNotFound { name: String },
    /// The schema, table or sequence a grant names does not exist (or is another kind).
    #[error("no {kind} named {name}")]
    ObjectNotFound { kind: &'static str, name: String },
    #[error("a role named {name:?} already exists")]
    RoleExists { name: String },
    /// dbagent's own login, a key role or the bootstrap superuser.
    #[error("role {name:?} is {reason}; dbagent does not alter or drop it")]
    Protected { name: String, reason: &'static str },
    /// DROP ROLE refused while the role owns objects or holds privileges.
    #[error(
        "role {name:?} owns or holds privileges on {} object(s) in this database: {}{}; pass reassign_to (REASSIGN OWNED, then DROP OWNED) or drop_owned: true (DROP OWNED drops what it owns) to drop it anyway",
        objects.len(),
        objects.join(", "),
        other_databases.as_ref().map(|d| format!(" (and objects in other databases, which this agent does not see: {d})")).unwrap_or_default()
    )]
    InUse { name: String, objects: Vec<String>, other_databases: Option<String> },
}

impl Error {
    /// A driver error on this module's own session (nothing of the caller's in flight).
    pub fn driver(err: tokio_postgres::Error) -> Error {
        Error::Db(db::Error::from_driver(err, false))
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Db(err) => err.kind(),
            Error::Invalid(_) => ErrorKind::BadRequest,
            Error::RoleNotFound { .. } | Error::ObjectNotFound { .. } => ErrorKind::NotFound,
            Error::RoleExists { .. } | Error::Protected { .. } | Error::InUse { .. } => ErrorKind::Conflict,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::Db(err) => err.code(),
            Error::Invalid(_) => "invalid_request",
            Error::RoleNotFound { .. } => "role_not_found",
            Error::ObjectNotFound { .. } => "object_not_found",
            Error::RoleExists { .. } => "role_exists",
            Error::Protected { .. } => "role_protected",
            Error::InUse { .. } => "role_in_use",
        }
    }

    fn server(&self) -> Option<&db::PgError> {
        match self {
            Error::Db(err) => err.server(),
            _ => None,
        }
    }
}
