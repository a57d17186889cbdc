//! Connections outside the pools: one-off administrative statements (re-configuring a replica
//! during failover, say) and dedicated sessions (the migration lock).

use std::time::Duration;

use tokio_postgres::{NoTls, SimpleQueryMessage};

use super::Error;

/// Used when the caller's config sets no connect timeout, so an unreachable server fails the
/// operation instead of hanging it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a connection outside the pools for work that needs its own session (the migration
/// lock, a migration run); its driver task ends when the returned client is dropped.
pub async fn connect(config: &tokio_postgres::Config, application_name: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let mut config = config.clone();
    if config.get_application_name().is_none() {
        config.application_name(application_name);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(error = %err, "a dedicated connection ended with an error");
        }
    });
    Ok(client)
}

/// Longest a one-off statement (connect included) may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs each of `statements` in turn (simple protocol, autocommit) on a fresh connection to
/// `config` and returns the rows of the last one, as text.
pub async fn execute(config: &tokio_postgres::Config, statements: &[&str]) -> Result<Vec<Vec<Option<String>>>, Error> {
    let work = async {
        let (client, connection) = config.connect(NoTls).await.map_err(|e| Error::Unavailable { reason: super::error_chain(&e) })?;
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
