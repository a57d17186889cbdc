//! One-off administrative statements on a server outside the pools (re-configuring a replica
//! during failover, say), over a connection opened for the purpose and closed right after.

use std::time::Duration;

use tokio_postgres::{NoTls, SimpleQueryMessage};

use super::Error;

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
