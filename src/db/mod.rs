//! Connections to PostgreSQL: pools for the primary and the read replicas, routing between
//! them, and the conversion of values between JSON and PostgreSQL's wire formats.
//!
//! This is the only module that opens database connections.

pub mod admin;
mod conn;
pub(crate) mod conninfo;
mod error;
pub mod listen;
mod lsn;
mod pools;
mod row;
pub mod sql;
pub mod types;

pub use conn::{Conn, ConnectError, Credentials, Login, Role, PING_AFTER};
pub use conninfo::describe;
pub use error::{Error, PgError, error_chain};
pub use lsn::{Lsn, LsnParseError};
pub use conn::Upstream;
pub use admin::Purpose;
pub use row::get;
pub use pools::{Endpoint, Lease, PoolStats, Pools, PoolsStats, Setup, Shared, Target};
