//! Autogenerate: compare a desired schema (SQL text) with a live database and write the up and
//! down migrations between them.
//!
//! The desired SQL is loaded into a scratch database on the live server, both catalogs are read
//! into the same model, and a pure [`diff`] orders the changes so dependencies hold.
//!
//! Code map:
//! - `model.rs`: the [`Catalog`] model (what is compared).
//! - `catalog.rs`: [`snapshot`], reading a database into the model.
//! - `diff.rs` (and `diff/`): [`diff`], the ordered changes with their undo, and the notes.
//! - `sql.rs`: rendering DDL and quoting identifiers and literals.
//! - `scratch.rs`: the scratch database (create, load, drop on every path).
//! - `error.rs`: [`Error`].
//!
//! Covered: schemas (created), extensions (created), enums (created, dropped, values added),
//! ordinary tables, columns (type with typmod and collation, default, NOT NULL, identity,
//! serial, generated), primary key, unique, check, exclusion and foreign-key constraints,
//! indexes, views. Everything else the catalogs hold (functions, triggers, policies, standalone
//! sequences, materialized views, partitioned and inheriting tables, domains, composite types)
//! is compared by name and definition only, and a difference becomes a note.
//!
//! Invariants:
//! - the scratch database is dropped on every path, cancellation included;
//! - applying `up` to the live database makes a new [`diff`] empty, and applying `down` after it
//!   brings the catalog back (except enum values, which PostgreSQL cannot remove: noted);
//! - renames are never guessed; the `dbagent` schema and extension-owned objects are never read.

mod catalog;
mod diff;
mod error;
mod model;
mod scratch;
mod sql;

use serde::Serialize;
use crate::db::PgConfig;
use tracing::Instrument;

pub use catalog::snapshot;
pub use diff::diff;
pub use error::{Error, Location, PgError};
pub use model::{
    Catalog, Column, Constraint, ConstraintKind, Enum, Extension, Generation, Identity, Index, Name, Reference, Table,
    Unmanaged, View,
};
pub use scratch::PREFIX as SCRATCH_DATABASE_PREFIX;

/// A generated migration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Generated {
    /// Brings the live database to the desired schema. Empty when nothing differs.
    pub up: String,
    /// Undoes `up`, in reverse order.
    pub down: String,
    /// What was not handled or needs a human look, e.g. "renames are not guessed: dropped x,
    /// added y".
    pub notes: Vec<String>,
    /// How many changes `up` makes (a re-created view counts as a drop and a create).
    pub changes: usize,
}

impl Generated {
    pub fn is_empty(&self) -> bool {
        self.changes == 0
    }
}

/// Compares the live database (`live`) with `desired_schema_sql` over `schemas` (empty means
/// `["public"]`) and returns the migration between them.
///
/// The desired SQL runs in a scratch database `dbagent_scratch_<uuid>` created on the live
/// server (the role needs `CREATEDB`) and dropped before this returns, or in the background if
/// the future is dropped first.
pub async fn autogenerate(live: &PgConfig, desired_schema_sql: &str, schemas: &[String]) -> Result<Generated, Error> {
    let schemas: Vec<String> = if schemas.is_empty() {
        vec!["public".to_string()]
    } else {
        schemas.to_vec()
    };
    let client = scratch::connect(live).await?;
    let scratch = scratch::ScratchDatabase::create(&client, live).await?;
    let span = tracing::info_span!("autogenerate", scratch = scratch.name());
    let outcome = async {
        let desired = {
            let scratch_client = scratch::connect(&scratch.config()).await?;
            scratch::load(&scratch_client, desired_schema_sql).await?;
            snapshot(&scratch_client, &schemas).await?
        };
        let current = snapshot(&client, &schemas).await?;
        let generated = diff(&current, &desired);
        tracing::info!(
            changes = generated.changes,
            notes = generated.notes.len(),
            "schemas compared"
        );
        Ok(generated)
    }
    .instrument(span)
    .await;
    scratch.drop_now().await;
    outcome
}
