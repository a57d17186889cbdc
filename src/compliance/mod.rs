//! The compliance report (`GET /security/compliance`, `dbagent security check`): checks
//! modelled on the CIS PostgreSQL Benchmark and pgdsat that SQL and dbagent's configuration can
//! decide, each with its evidence, its fix and the framework controls it supports, and a
//! summary per framework. An aid for an audit, not a certification: the report says so.
//!
//! * [`facts`]: everything the checks read, in one pass (server settings and catalogs on a
//!   `dbagent access` session; the agent's configuration, backup catalogue and keys);
//! * [`server`] and [`agent`]: the checks, pure functions of the facts (table-driven tests);
//! * [`frameworks`]: which check supports which control, and the per-framework summary;
//! * [`markdown`]: the report as a document to hand over.
//!
//! Invariants: reading never changes anything; what the login may not read (`pg_authid`,
//! `pg_hba_file_rules` without superuser; a backup location that cannot be listed) makes its
//! checks `not_applicable` with the reason, never an error of the whole report.

pub mod agent;
pub mod facts;
pub mod frameworks;
pub mod markdown;
pub mod server;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::db;
use crate::error::{Classify, ErrorKind};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    NotApplicable,
    Warn,
    Fail,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::NotApplicable => "not_applicable",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One check's finding.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Check {
    /// Stable: `pg.password_encryption`, `agent.audit` ...
    pub id: &'static str,
    pub title: &'static str,
    pub status: Status,
    /// What was found (settings, role names, rule lines).
    pub evidence: String,
    /// What to do about it (empty when it passes).
    pub fix: String,
    /// The CIS PostgreSQL Benchmark section it follows, when there is one.
    pub cis: Option<&'static str>,
    /// The controls it supports (`SOC 2 CC6.1`, `PCI-DSS 8.3`, `HIPAA 164.312(b)`, `GDPR Art. 32`).
    pub frameworks: Vec<&'static str>,
}

/// Checks by status.
#[derive(Debug, Clone, Default, Serialize, schemars::JsonSchema)]
pub struct Counts {
    pub pass: usize,
    pub fail: usize,
    pub warn: usize,
    pub not_applicable: usize,
}

impl Counts {
    pub fn of<'a>(checks: impl IntoIterator<Item = &'a Check>) -> Counts {
        let mut counts = Counts::default();
        for check in checks {
            match check.status {
                Status::Pass => counts.pass += 1,
                Status::Fail => counts.fail += 1,
                Status::Warn => counts.warn += 1,
                Status::NotApplicable => counts.not_applicable += 1,
            }
        }
        counts
    }
}

/// The whole report.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct Report {
    pub generated_at: DateTime<Utc>,
    pub database: String,
    pub server_version: String,
    /// The report is an aid for an audit, not a certification.
    pub disclaimer: &'static str,
    pub counts: Counts,
    pub checks: Vec<Check>,
    pub frameworks: Vec<frameworks::FrameworkSummary>,
}

/// Said at the top of every report.
pub const DISCLAIMER: &str = "This report is an aid for an audit, not a certification: it covers what SQL and dbagent's \
configuration can show (not the host, its files, network or processes), and a control is met only when everything it asks \
for is, which takes more than these checks.";

/// What can stop the report (a check that cannot read its facts is `not_applicable` instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] db::Error),
}

impl Error {
    pub fn driver(err: tokio_postgres::Error) -> Error {
        Error::Db(db::Error::from_driver(err, false))
    }
}

impl Classify for Error {
    fn kind(&self) -> ErrorKind {
        match self {
            Error::Db(err) => err.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Error::Db(err) => err.code(),
        }
    }

    fn server(&self) -> Option<&db::PgError> {
        match self {
            Error::Db(err) => err.server(),
        }
    }
}

/// The report from its facts (pure).
pub fn evaluate(facts: &facts::Facts) -> Report {
    let mut checks = server::checks(facts);
    checks.extend(agent::checks(facts));
    Report {
        generated_at: facts.now,
        database: facts.database.clone(),
        server_version: facts.server_version.clone(),
        disclaimer: DISCLAIMER,
        counts: Counts::of(&checks),
        frameworks: frameworks::summarise(&checks),
        checks,
    }
}

/// Reads the facts on a session of its own and evaluates them.
pub async fn report(pools: &db::Pools, config: &crate::config::Config, backup: &crate::backup::Settings, keys_required: bool) -> Result<Report, Error> {
    let client = db::admin::connect(&pools.admin_config(), db::Purpose::Access).await.map_err(Error::driver)?;
    let facts = facts::read(&client, config, backup, keys_required).await?;
    Ok(evaluate(&facts))
}

/// A check: the constructor every rule uses.
pub(crate) fn check(id: &'static str, title: &'static str, status: Status, evidence: impl Into<String>, fix: &str, cis: Option<&'static str>, frameworks: &[&'static str]) -> Check {
    Check {
        id,
        title,
        status,
        evidence: evidence.into(),
        fix: if status == Status::Pass { String::new() } else { fix.to_owned() },
        cis,
        frameworks: frameworks.to_vec(),
    }
}

/// `a, b, c` (at most 10 named, then "and N more").
pub(crate) fn listing(names: &[String]) -> String {
    let mut text = names.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 10 {
        text.push_str(&format!(" and {} more", names.len() - 10));
    }
    text
}
