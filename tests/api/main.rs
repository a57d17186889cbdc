//! One integration-test binary (one link step) against real PostgreSQL; see `helpers`.

mod helpers;
mod hostile;

mod advisor;
mod advisor_workload;
mod alerts;
mod autogen;
mod backup;
mod cache;
mod cli_output;
mod destructive;
mod errors;
mod erd;
mod faults;
mod health;
mod metrics;
mod masking;
mod migrate;
mod multiplex;
mod openapi;
mod ops;
mod pool;
mod query;
mod replication;
mod resources;
mod schema;
mod schemathesis;
mod security;
mod seed_compat;
mod seed_data;
mod serve;
mod session_state;
mod stats;
mod transaction;
mod types;
