//! Operations: the routine work of a DBA, built for the moment something is on fire.
//!
//! * [`sessions`]: who is connected and what they do;
//! * [`signal`]: cancel, terminate, close idle sessions — never dbagent's own sessions nor a
//!   superuser's unless forced, every answer naming exactly which pids were signalled and
//!   which were skipped and why;
//! * [`locks`]: the blocking tree, head blockers first;
//! * [`maintenance`]: VACUUM and ANALYZE on demand, on a session of their own (never in a
//!   transaction block, never a pool connection), and the progress views;
//! * [`report`]: the maintenance health report, pure findings over five catalog reads;
//! * [`jobs`]: scheduled maintenance, one agent per tick (advisory lock + the history row's
//!   unique key), inside `maintenance.window`, recorded in `dbagent.maintenance_runs`;
//! * [`tune`] (pure rules, their sources in its documentation) and [`settings`] (their inputs,
//!   and `ALTER SYSTEM` + reload for the settings an operator chooses).
//!
//! Catalog queries live in `sql/*.sql`; user-given names reach them as `to_regclass($1)` bind
//! parameters, and statements that need a name in their text quote it through `db::sql`.

mod error;
pub mod jobs;
pub mod locks;
pub mod maintenance;
pub mod report;
pub mod sessions;
pub mod settings;
pub mod signal;
pub mod tune;

pub use error::Error;
