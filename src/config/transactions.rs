//! `transactions:` — defaults for `/transaction`.

use serde::{Deserialize, Serialize};

use super::{Error, invalid};

/// Defaults for `/transaction`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Transactions {
    /// Default isolation level. Default `read_committed`.
    pub isolation_level: IsolationLevel,
    /// Re-runs after a serialization failure or deadlock. Default 3.
    pub max_retries: u32,
    /// Seconds before the first re-run. Default 1 (the seed's value); backoff doubles it.
    pub retry_delay: f64,
    /// `exponential` (with jitter) or `constant`. Default exponential.
    pub backoff: Backoff,
}

impl Default for Transactions {
    fn default() -> Self {
        Transactions {
            isolation_level: IsolationLevel::ReadCommitted,
            max_retries: 3,
            retry_delay: 1.0,
            backoff: Backoff::Exponential,
        }
    }
}

impl Transactions {
    pub(super) fn validate(&self) -> Result<(), Error> {
        if !(self.retry_delay >= 0.0 && self.retry_delay.is_finite()) {
            return invalid("transactions.retry_delay", "must be zero or a positive number of seconds");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IsolationLevel {
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl IsolationLevel {
    pub fn sql(self) -> &'static str {
        match self {
            IsolationLevel::ReadCommitted => "READ COMMITTED",
            IsolationLevel::RepeatableRead => "REPEATABLE READ",
            IsolationLevel::Serializable => "SERIALIZABLE",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    Exponential,
    Constant,
}
