//! A dedicated LISTEN connection to the primary, kept open across restarts and failovers.

use std::sync::Weak;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::AsyncMessage;

use super::{Pools, Purpose};

/// What the listener reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A notification's payload.
    Payload(String),
    /// The connection was (re)established and LISTEN is active: notifications sent while it
    /// was down are lost, so whatever depends on them must assume the worst.
    Listening,
    /// The connection that was listening ended: until the next `Listening`, notifications are
    /// not received (a restart, a failover, a network fault).
    Lost,
}

/// Listens on `channel` on the current primary (a session named by `purpose`), reconnecting (every second at most) whenever
/// the connection ends, until the pools or the receiver are dropped.
pub fn listen(pools: Weak<Pools>, channel: &'static str, purpose: Purpose) -> mpsc::Receiver<Notice> {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            let Some(mut config) = pools.upgrade().map(|p| p.primary().current_config()) else { return };
            config.application_name(purpose.application_name());
            let mut listened = false;
            if let Err(err) = session(&config, channel, &tx, &mut listened).await {
                tracing::debug!(error = %err, "LISTEN connection ended");
            }
            if tx.is_closed() || (listened && tx.send(Notice::Lost).await.is_err()) {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    rx
}

/// One LISTEN session; `listened` is set once `Listening` was sent.
async fn session(config: &crate::db::PgConfig, channel: &str, tx: &mpsc::Sender<Notice>, listened: &mut bool) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect().await?;
    let (messages_tx, mut messages) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if messages_tx.send(n.payload().to_owned()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(err) => {
                    tracing::debug!(error = %err, "LISTEN connection failed");
                    return;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {channel}")).await?;
    if tx.send(Notice::Listening).await.is_err() {
        driver.abort();
        return Ok(());
    }
    *listened = true;
    while let Some(payload) = messages.recv().await {
        if tx.send(Notice::Payload(payload)).await.is_err() {
            break;
        }
    }
    driver.abort();
    Ok(())
}
