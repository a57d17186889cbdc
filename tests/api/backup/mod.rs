//! Backups and restore against real pg_dump / pg_restore: one fresh database per test (dropped
//! when it passes) and one backup location per test under `target/tmp/`.

mod helpers;

mod api;
mod catalog;
mod damage;
mod everytype;
mod memory;
mod pitr;
mod restore;
mod roundtrip;
mod remote;
mod schedule;
mod stream;
