//! The what-if planner: one connection of its own, inside a transaction that is always rolled
//! back (so even `CREATE EXTENSION hypopg` leaves no trace), where hypothetical indexes are
//! created and dropped and each statement's cost is asked of the planner.
//!
//! Every statement planned runs under a savepoint: one that fails (a statement the recorded
//! text cannot express) is rolled back to it and the rest go on. Hypothetical indexes live in
//! the session's memory, not in the transaction, so a rollback to a savepoint keeps them. A
//! prepared statement is re-prepared for every plan: a cached generic plan would not see a
//! hypothetical index created after it.

use serde_json::Value;

use super::super::{Error, plan};
use super::intake::Statement;
use crate::db;

/// How long one plan may take (planning only; nothing is executed).
const PLAN_TIMEOUT_MS: u32 = 5_000;

/// A hypothetical index.
#[derive(Debug, Clone)]
pub struct Hypo {
    pub oid: i64,
    /// The name plans show (`<16420>btree_orders_region`).
    pub name: String,
    pub bytes: i64,
}

/// A statement's planned cost and the indexes its plan uses.
#[derive(Debug, Clone)]
pub struct Costed {
    pub cost: f64,
    pub indexes: Vec<String>,
}

/// A connection with HypoPG loaded in an open transaction.
pub struct Planner {
    client: tokio_postgres::Client,
    /// `EXPLAIN (GENERIC_PLAN)` is there (PostgreSQL 16+).
    generic_plan_option: bool,
    /// Plans asked for so far (the search's budget).
    pub explains: usize,
}

/// The message of a server error; `None` for a lost connection (which fails the analysis).
fn server_message(err: &tokio_postgres::Error) -> Option<String> {
    err.as_db_error().map(|d| d.message().to_owned())
}

fn lost(err: tokio_postgres::Error) -> Error {
    Error::from(db::Error::from_driver(err, false))
}

impl Planner {
    /// `None` when HypoPG cannot be loaded (not installed).
    pub async fn open(config: &crate::db::PgConfig) -> Result<Option<Planner>, Error> {
        let client = db::admin::connect(config, db::Purpose::Advisor).await.map_err(|e| db::Error::Unavailable { reason: db::error_chain(&e) })?;
        let version: i32 = client
            .query_one("SELECT current_setting('server_version_num')::int4", &[])
            .await
            .map_err(lost)?
            .get(0);
        client
            .batch_execute(&format!("BEGIN; SET LOCAL statement_timeout = {PLAN_TIMEOUT_MS}; SET LOCAL plan_cache_mode = force_generic_plan"))
            .await
            .map_err(lost)?;
        if let Err(err) = client.batch_execute("SAVEPOINT h; CREATE EXTENSION IF NOT EXISTS hypopg; RELEASE h").await {
            tracing::info!(error = %err, "HypoPG is not available; index suggestions fall back to statistics");
            return Ok(None);
        }
        Ok(Some(Planner { client, generic_plan_option: version >= 160_000, explains: 0 }))
    }

    /// Ends the transaction: HypoPG, its indexes and the prepared statements go with it.
    pub async fn close(self) {
        let _ = self.client.batch_execute("ROLLBACK; DEALLOCATE ALL").await;
    }

    /// The types to declare for `st`'s parameters so that it can be prepared: `unknown` (let
    /// PostgreSQL infer it) except where nothing determines one, which is declared `text`.
    /// `Err` is the server's reason the statement cannot be planned.
    pub async fn declare(&mut self, st: &Statement) -> Result<Result<Vec<String>, String>, Error> {
        let mut types = vec!["unknown".to_owned(); st.params];
        for _ in 0..=st.params {
            match self.prepare(&st.text, &types).await {
                Ok(()) => return Ok(Ok(types)),
                Err(err) => {
                    let Some(message) = server_message(&err) else { return Err(lost(err)) };
                    // 42P18: "could not determine data type of parameter $N".
                    let n = (err.code() == Some(&tokio_postgres::error::SqlState::INDETERMINATE_DATATYPE))
                        .then(|| message.rsplit('$').next().and_then(|n| n.trim().parse::<usize>().ok()))
                        .flatten();
                    match n.and_then(|n| types.get_mut(n.wrapping_sub(1))) {
                        Some(t) if t != "text" => *t = "text".into(),
                        _ => return Ok(Err(message)),
                    }
                }
            }
        }
        Ok(Err("the parameters' types could not be determined".into()))
    }

    async fn prepare(&self, text: &str, types: &[String]) -> Result<(), tokio_postgres::Error> {
        let declared = if types.is_empty() { String::new() } else { format!("({})", types.join(", ")) };
        let sql = format!("SAVEPOINT p; DEALLOCATE ALL; PREPARE dbagent_advice{declared} AS {text}");
        match self.client.batch_execute(&sql).await {
            Ok(()) => self.client.batch_execute("RELEASE p").await,
            Err(err) => {
                let _ = self.client.batch_execute("ROLLBACK TO SAVEPOINT p; RELEASE p").await;
                Err(err)
            }
        }
    }

    /// The planner's cost of `st` with the hypothetical indexes that exist now. `Ok(Err)` is
    /// the server's reason it cannot be planned.
    pub async fn cost(&mut self, st: &Statement, types: &[String]) -> Result<Result<Costed, String>, Error> {
        self.explains += 1;
        let explain = if st.params == 0 {
            format!("EXPLAIN (FORMAT JSON) {}", st.text)
        } else if self.generic_plan_option {
            format!("EXPLAIN (GENERIC_PLAN, FORMAT JSON) {}", st.text)
        } else {
            if let Err(err) = self.prepare(&st.text, types).await {
                return server_message(&err).map(Err).ok_or_else(|| lost(err));
            }
            format!("EXPLAIN (FORMAT JSON) EXECUTE dbagent_advice({})", vec!["NULL"; st.params].join(", "))
        };
        self.client.batch_execute("SAVEPOINT e").await.map_err(lost)?;
        let messages = match self.client.simple_query(&explain).await {
            Ok(messages) => {
                self.client.batch_execute("RELEASE e").await.map_err(lost)?;
                messages
            }
            Err(err) => {
                let _ = self.client.batch_execute("ROLLBACK TO SAVEPOINT e; RELEASE e").await;
                return server_message(&err).map(Err).ok_or_else(|| lost(err));
            }
        };
        let text = messages
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .ok_or_else(|| Error::Plan("EXPLAIN returned nothing".into()))?;
        let json: Value = serde_json::from_str(&text).map_err(|e| Error::Plan(e.to_string()))?;
        let explained = plan::parse(&json).map_err(Error::Plan)?;
        let indexes = explained.root.walk().into_iter().filter_map(|(_, n)| n.index.clone()).collect();
        Ok(Ok(Costed { cost: explained.root.total_cost, indexes }))
    }

    /// Creates a hypothetical index from `create` (a plain `CREATE INDEX ON ...`); `None` when
    /// HypoPG refuses it (an expression it cannot index).
    pub async fn hypo(&self, create: &str) -> Result<Option<Hypo>, Error> {
        self.client.batch_execute("SAVEPOINT x").await.map_err(lost)?;
        let sql = "SELECT indexrelid::int8, indexname::text, hypopg_relation_size(indexrelid)::int8 FROM hypopg_create_index($1)";
        match self.client.query_one(sql, &[&create]).await {
            Ok(row) => {
                self.client.batch_execute("RELEASE x").await.map_err(lost)?;
                Ok(Some(Hypo { oid: row.get(0), name: row.get(1), bytes: row.get(2) }))
            }
            Err(err) if err.as_db_error().is_some() => {
                tracing::debug!(error = %err, create, "HypoPG refused a candidate");
                self.client.batch_execute("ROLLBACK TO SAVEPOINT x; RELEASE x").await.map_err(lost)?;
                Ok(None)
            }
            Err(err) => Err(lost(err)),
        }
    }

    pub async fn drop_hypo(&self, hypo: &Hypo) -> Result<(), Error> {
        self.client.execute("SELECT hypopg_drop_index($1::int8::oid)", &[&hypo.oid]).await.map_err(lost)?;
        Ok(())
    }
}
