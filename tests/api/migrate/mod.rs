//! Migrations through the library (`dbagent::migrate`): each test has its own database and
//! migrations directory, removed when it passes.

mod support;

mod files;
mod safety;
mod states;
mod transactions;
mod up_down;
mod api;
