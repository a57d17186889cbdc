//! Connections outside the pools: one-off administrative statements (re-configuring a replica
//! during failover, say) and dedicated sessions (the migration lock), each named in
//! `application_name` by what it does, so `pg_stat_activity` tells dbagent's sessions apart.

use std::time::Duration;

use tokio_postgres::SimpleQueryMessage;

use super::{Error, Pools};

/// What a session outside the pools is for; it shows as its `application_name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Migration runs and the migration lock.
    Migrate,
    /// Scratch databases for `migrate autogenerate`.
    Autogenerate,
    /// Catalog lookups of the migration linter.
    Lint,
    /// Dumps, base backups and the backup catalog.
    Backup,
    /// Trial restores of `verify --level 2`.
    Verify,
    /// Restores (creating, filling and swapping databases).
    Restore,
    /// The backup schedule's leadership lock.
    Schedule,
    /// Point-in-time recovery checks on the recovered cluster.
    Pitr,
    /// HypoPG index suggestions.
    Advisor,
    /// Index builds and upkeep (`CREATE INDEX CONCURRENTLY`, `REINDEX`, `ANALYZE`).
    Indexes,
    /// The result cache's watch triggers and LISTEN connection.
    Cache,
    /// Re-configuring servers for replication and failover.
    Replication,
    /// Health, LSN and lag checks.
    Monitor,
    /// API keys: their table, reloads and the LISTEN for changes.
    Security,
    /// The audit log's writer and retention.
    Audit,
    /// Generated seed data (`seed generate`): one transaction of COPYs.
    Generate,
    /// The alert engine's evaluations and leadership lock, and the alerts' tables.
    Alerts,
    /// VACUUM and ANALYZE (on demand and scheduled), the maintenance jobs' leadership and
    /// history, ALTER SYSTEM.
    Maintenance,
    /// Roles and grants (`/roles`, `/grants`) and the compliance report's catalog reads.
    Access,
}

impl Purpose {
    /// `dbagent <what>`.
    pub fn application_name(self) -> &'static str {
        match self {
            Purpose::Migrate => "dbagent migrate",
            Purpose::Autogenerate => "dbagent autogenerate",
            Purpose::Lint => "dbagent lint",
            Purpose::Backup => "dbagent backup",
            Purpose::Verify => "dbagent verify",
            Purpose::Restore => "dbagent restore",
            Purpose::Schedule => "dbagent schedule",
            Purpose::Pitr => "dbagent pitr",
            Purpose::Advisor => "dbagent advisor",
            Purpose::Indexes => "dbagent indexes",
            Purpose::Cache => "dbagent cache",
            Purpose::Replication => "dbagent replication",
            Purpose::Monitor => "dbagent monitor",
            Purpose::Security => "dbagent security",
            Purpose::Audit => "dbagent audit",
            Purpose::Generate => "dbagent seed generate",
            Purpose::Alerts => "dbagent alerts",
            Purpose::Maintenance => "dbagent maintenance",
            Purpose::Access => "dbagent access",
        }
    }
}

impl Pools {
    /// Settings for a dedicated session on the current primary: without the API's
    /// `statement_timeout` and idle-transaction limit (a migration or an index build takes what
    /// it takes; their own limits come from their settings) and read-write.
    pub fn admin_config(&self) -> crate::db::PgConfig {
        let mut config = self.primary().current_config();
        let options = format!(
            "{} -c statement_timeout=0 -c idle_in_transaction_session_timeout=0 -c default_transaction_read_only=off",
            config.get_options().unwrap_or_default()
        );
        config.options(options.trim());
        config
    }
}

/// Used when the caller's config sets no connect timeout, so an unreachable server fails the
/// operation instead of hanging it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a connection outside the pools for work that needs its own session (the migration
/// lock, a migration run), named by `purpose`; its driver task ends when the returned client is
/// dropped.
pub async fn connect(config: &crate::db::PgConfig, purpose: Purpose) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = config.clone();
    config.application_name(purpose.application_name());
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let (client, connection) = config.connect().await?;
    let major = server_major(connection.parameter("server_version"));
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "a dedicated connection ended with an error");
        }
    });
    end_with_its_client(&client, major).await?;
    Ok(client)
}

/// The major version in a `server_version` parameter (`15.4`, `16beta1`, `9.6.1` → 9).
fn server_major(version: Option<&str>) -> u32 {
    version.map_or(0, |v| v.chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap_or(0))
}

/// Milliseconds between the server's checks that a dedicated session's client is still there.
const CLIENT_CHECK_MS: u32 = 1000;

/// On PostgreSQL 14 and later, has the server check while a statement runs that this session's
/// client is still connected (`client_connection_check_interval`): a dedicated session of an
/// agent that died (SIGKILL, a crash) then ends within a second instead of running its
/// statement to the end orphaned, still holding the migration lock or building an index.
async fn end_with_its_client(client: &tokio_postgres::Client, major: u32) -> Result<(), tokio_postgres::Error> {
    if major >= 14 {
        client.batch_execute(&format!("SET client_connection_check_interval = {CLIENT_CHECK_MS}")).await?;
    }
    Ok(())
}

/// The server's notices on a dedicated session (`VACUUM VERBOSE`'s report), as
/// `SEVERITY: message` lines in the order they came.
pub type Notices = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// [`connect`], keeping the notices the server sends on the session.
pub async fn connect_noting(config: &crate::db::PgConfig, purpose: Purpose) -> Result<(tokio_postgres::Client, Notices), tokio_postgres::Error> {
    use futures_util::StreamExt;
    let mut config = config.clone();
    config.application_name(purpose.application_name());
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let (client, mut connection) = config.connect().await?;
    let major = server_major(connection.parameter("server_version"));
    let notices = Notices::default();
    let sink = notices.clone();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notice(notice)) => {
                    sink.lock().unwrap_or_else(|p| p.into_inner()).push(format!("{}: {}", notice.severity(), notice.message()));
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::debug!(error = %err, "a dedicated connection ended with an error");
                    break;
                }
            }
        }
    });
    end_with_its_client(&client, major).await?;
    Ok((client, notices))
}

/// Longest a one-off statement (connect included) may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs each of `statements` in turn (simple protocol, autocommit) on a fresh connection to
/// `config`, named by `purpose`, and returns the rows of the last one, as text.
pub async fn execute(config: &crate::db::PgConfig, purpose: Purpose, statements: &[&str]) -> Result<Vec<Vec<Option<String>>>, Error> {
    let mut config = config.clone();
    config.application_name(purpose.application_name());
    let work = async {
        let (client, connection) = config.connect().await.map_err(|e| Error::Unavailable { reason: super::error_chain(&e) })?;
        let driver = tokio::spawn(connection);
        let mut rows = Vec::new();
        for sql in statements {
            let messages = client.simple_query(sql).await.map_err(|e| Error::from_driver(e, false))?;
            rows = messages
                .iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(row) => Some((0..row.len()).map(|i| row.get(i).map(str::to_owned)).collect()),
                    _ => None,
                })
                .collect();
        }
        drop(client);
        let _ = driver.await;
        Ok(rows)
    };
    tokio::time::timeout(ADMIN_TIMEOUT, work)
        .await
        .unwrap_or_else(|_| Err(Error::Unavailable { reason: format!("no answer within {} s", ADMIN_TIMEOUT.as_secs()) }))
}
