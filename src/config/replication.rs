//! `replication:` — managed replicas and failover.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Error, invalid};

/// Replicas the managed instance runs, and what happens when the primary stops answering.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Replication {
    /// Managed instance only: streaming replicas dbagent creates (`pg_basebackup`) and starts
    /// beside the primary, in `<data_dir>-replica-<n>`. Default 0.
    pub replicas: u32,
    /// Managed replicas: stop routing reads to one whose replay lag exceeds this. Default 10.
    pub max_lag_seconds: f64,
    /// `manual` (default) or `auto`. With `auto`, once the primary has not answered for
    /// `failover_after` seconds: a managed instance's most caught-up replica is promoted and
    /// the old primary fenced; with configured servers, dbagent re-points to whichever
    /// configured host has become a primary (it never promotes a server it does not manage).
    pub failover: FailoverMode,
    /// Seconds the primary must stay unreachable before failing over. Default 3.
    pub failover_after: f64,
    /// Managed instance with replicas: a commit waits until one replica has it
    /// (`synchronous_standby_names = 'ANY 1 (*)'`), so no acknowledged write is lost when a
    /// replica is promoted. Relaxed to asynchronous while no replica is connected (and
    /// automatic failover is then withheld). Default true.
    pub synchronous: bool,
    /// Managed instance: after a failover, rewind the fenced old primary with `pg_rewind` and
    /// start it as a replica of the new primary (what `dbagent instance rejoin` and `POST
    /// /replication/rejoin` do on request). Default false: a human decides.
    pub auto_rejoin: bool,
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            replicas: 0,
            max_lag_seconds: 10.0,
            failover: FailoverMode::Manual,
            failover_after: 3.0,
            synchronous: true,
            auto_rejoin: false,
        }
    }
}

impl Replication {
    pub fn failover_after(&self) -> Duration {
        Duration::from_secs_f64(self.failover_after)
    }

    pub(super) fn validate(&self) -> Result<(), Error> {
        if !(self.max_lag_seconds >= 0.0 && self.max_lag_seconds.is_finite()) {
            return invalid("replication.max_lag_seconds", "must be zero or positive");
        }
        if !(self.failover_after > 0.0 && self.failover_after.is_finite()) {
            return invalid("replication.failover_after", "must be a positive number of seconds");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailoverMode {
    Manual,
    Auto,
}
