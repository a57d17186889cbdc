//! Connections to PostgreSQL: pools for the primary and the read replicas, routing between
//! them, and the conversion of values between JSON and PostgreSQL's wire formats.
//!
//! This is the only module that opens database connections, and every one it opens goes
//! through [`tls`] (a [`PgConfig`] carries the connector with the settings).

pub mod admin;
mod conn;
pub(crate) mod conninfo;
mod error;
pub mod listen;
mod lsn;
mod pools;
mod row;
pub mod sql;
pub mod tls;
pub mod types;

pub use conn::{Canceller, Conn, ConnectError, Credentials, Login, Role, PING_AFTER};
pub use conninfo::{Connection, PgConfig, describe};
pub use error::{Error, PgError, error_chain};
pub use lsn::{Lsn, LsnParseError};
pub use conn::Upstream;
pub use admin::Purpose;
pub use row::get;
pub use pools::{Endpoint, Lease, PoolStats, Pools, PoolsStats, Setup, Shared, Target};
