//! `GET /stats/replication`: what the primary says about its standbys (`pg_stat_replication`)
//! and what each replica pool saw at its last check, plus the failover settings and history.

use serde::Serialize;

use super::{FailoverEvent, Supervisor};
use crate::db::{Lsn, PoolStats};

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ReplicationReport {
    pub primary: PrimaryReport,
    /// One per replica pool (lag in seconds and bytes, LSNs, whether reads go there).
    pub replicas: Vec<PoolStats>,
    pub failover: FailoverReport,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct PrimaryReport {
    pub location: String,
    pub reachable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_lsn: Option<Lsn>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronous_standby_names: Option<String>,
    /// `pg_stat_replication`, as the primary reports it.
    pub standbys: Vec<StandbyReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One row of `pg_stat_replication`, lags in seconds and bytes.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct StandbyReport {
    pub application_name: Option<String>,
    pub client_addr: Option<String>,
    pub state: Option<String>,
    pub sync_state: Option<String>,
    pub sent_lsn: Option<Lsn>,
    pub flush_lsn: Option<Lsn>,
    pub replay_lsn: Option<Lsn>,
    pub write_lag_seconds: Option<f64>,
    pub flush_lag_seconds: Option<f64>,
    pub replay_lag_seconds: Option<f64>,
    pub replay_lag_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct FailoverReport {
    pub mode: crate::config::FailoverMode,
    pub after_seconds: f64,
    pub synchronous: bool,
    /// Commits were waiting for a replica at the last check (automatic promotion allowed).
    pub protected: bool,
    pub managed: bool,
    pub events: Vec<FailoverEvent>,
}

const STANDBYS_SQL: &str = "SELECT application_name, client_addr::text, state, sync_state, \
     sent_lsn::text, flush_lsn::text, replay_lsn::text, \
     EXTRACT(EPOCH FROM write_lag)::float8::text, EXTRACT(EPOCH FROM flush_lag)::float8::text, \
     EXTRACT(EPOCH FROM replay_lag)::float8::text, \
     pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint::text, \
     pg_current_wal_lsn()::text, current_setting('synchronous_standby_names') \
     FROM (SELECT 1) one LEFT JOIN pg_stat_replication ON true";

impl Supervisor {
    /// Asks the primary (bounded) and gathers what the checks saw.
    pub async fn report(&self) -> ReplicationReport {
        let primary = self.pools.primary();
        let asked = tokio::time::timeout(std::time::Duration::from_secs(3), primary.rows(STANDBYS_SQL)).await;
        let mut report = PrimaryReport {
            location: primary.location(),
            reachable: false,
            current_lsn: None,
            synchronous_standby_names: None,
            standbys: Vec::new(),
            error: None,
        };
        match asked {
            Ok(Ok(rows)) => {
                report.reachable = true;
                for row in rows {
                    let text = |i: usize| row.get(i).cloned().flatten();
                    let lsn = |i: usize| text(i).and_then(|t| t.parse().ok());
                    let num = |i: usize| text(i).and_then(|t| t.parse::<f64>().ok());
                    report.current_lsn = lsn(11);
                    report.synchronous_standby_names = text(12);
                    if text(2).is_none() {
                        continue; // the LEFT JOIN's empty row: no standby connected
                    }
                    report.standbys.push(StandbyReport {
                        application_name: text(0),
                        client_addr: text(1),
                        state: text(2),
                        sync_state: text(3),
                        sent_lsn: lsn(4),
                        flush_lsn: lsn(5),
                        replay_lsn: lsn(6),
                        write_lag_seconds: num(7),
                        flush_lag_seconds: num(8),
                        replay_lag_seconds: num(9),
                        replay_lag_bytes: text(10).and_then(|t| t.parse().ok()),
                    });
                }
            }
            Ok(Err(err)) => report.error = Some(err.to_string()),
            Err(_) => report.error = Some("no answer within 3 s".into()),
        }
        let state = self.lock_state();
        ReplicationReport {
            primary: report,
            replicas: self.pools.stats().replicas,
            failover: FailoverReport {
                mode: self.policy.failover,
                after_seconds: self.policy.failover_after,
                synchronous: self.policy.synchronous,
                protected: state.protected,
                managed: self.managed.lock().map(|m| m.is_some()).unwrap_or(false),
                events: state.events.clone(),
            },
        }
    }
}
