//! Autogenerate and lint (`dbagent::migrate::{autogen, lint}`): each test has its own database,
//! dropped when it passes.

mod helpers;

mod errors;
mod lint;
mod round_trip;
