//! dbagent — a PostgreSQL management agent.
//!
//! One module per capability; `ARCHITECTURE.md` has the code map and the invariants.
//!
//! - [`access`]: the server's roles and their privileges (`/roles`, `/grants`).
//! - [`compliance`]: the security compliance report (CIS-style checks over SQL and config).
//! - [`advisor`]: EXPLAIN analysis with rules, index suggestions (HypoPG), index upkeep.
//! - [`config`]: the typed, validated configuration (file, environment, defaults).
//! - [`db`]: connections and pools (primary and read replicas), value conversion.
//! - [`backup`]: pg_dump backups (compressed, encrypted, checksummed, catalogued), verify,
//!   restore, retention, schedule.
//! - [`cache`]: the query result cache (in process or Redis), invalidated by table.
//! - [`query`]: running one statement: classification, routing, timeouts, results.
//! - [`txn`]: running a list of statements as one transaction, with retries.
//! - [`schema`]: catalog introspection (tables, columns, indexes, constraints).
//! - [`seeddata`]: generated rows for tables (`seed generate`), parents first, through COPY.
//! - [`migrate`]: versioned schema migrations (files, history, lock, up/down, repair).
//! - [`monitor`]: counters and the slow-query log.
//! - [`timing`]: a request's stages (`Server-Timing`, when `server.server_timing` is on).
//! - [`ops`]: operations: sessions and locks, maintenance (vacuum, analyze, the health report,
//!   scheduled jobs), configuration advice.
//! - [`instance`]: managed PostgreSQL clusters (initdb, start, stop, replicas).
//! - [`replication`]: replica lag, synchronous commits, failover, the replication report.
//! - [`error`]: what kind of failure an error is ([`ErrorKind`]), for the API and the CLI alike.
//! - [`api`]: the HTTP API.
//! - [`cli`]: the command line.
//! - [`app`]: wiring the pieces together for `serve` and the CLI.

pub mod access;
pub mod advisor;
pub mod alerts;
pub mod api;
pub mod app;
pub mod backup;
pub mod cache;
pub mod cli;
pub mod compliance;
pub mod config;
pub mod db;
pub mod error;
#[cfg(feature = "failpoints")]
pub mod failpoints;
pub mod instance;
pub mod migrate;
pub mod monitor;
pub mod ops;
pub mod query;
pub mod replication;
pub mod schema;
pub mod security;
pub mod seeddata;
pub mod timing;
pub mod txn;

pub use error::{Classify, ErrorKind};
