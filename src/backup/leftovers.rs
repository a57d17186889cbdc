//! What an agent killed mid-job leaves behind, cleaned when the next agent starts: backup
//! directories without a manifest (and work directories) whose creator is gone, and the
//! scratch databases of restores that never swapped theirs in (`<db>_restoring_<stamp>`).

use crate::db::PgConfig;

use super::database::Admin;
use super::{Error, Settings, catalog};

/// Removes both; best effort, each failure logged. Returns the scratch databases dropped.
pub async fn clean_up_after_crashes(db: &PgConfig, settings: &Settings) -> Vec<String> {
    // Listing removes the incomplete backups nobody holds the lock of.
    if let Err(err) = catalog::list(settings) {
        tracing::warn!(error = %err, "could not look for incomplete backups");
    }
    match drop_abandoned_restores(db).await {
        Ok(dropped) => dropped,
        Err(err) => {
            tracing::warn!(error = %err, "could not look for the scratch databases of interrupted restores");
            Vec::new()
        }
    }
}

/// Drops every `<db>_restoring_<YYYYMMDDHHMMSS>` database that no session is connected to: a
/// restore in progress has its `pg_restore` connected to it, and `DROP DATABASE` without
/// `FORCE` refuses a database in use, so only a dead restore's copy goes.
async fn drop_abandoned_restores(db: &PgConfig) -> Result<Vec<String>, Error> {
    let admin = Admin::connect(db, &[]).await?;
    let mut dropped = Vec::new();
    for name in admin.abandoned_restores().await? {
        match admin.drop_unused(&name).await {
            Ok(()) => {
                tracing::warn!(database = %name, "dropped the scratch database of an interrupted restore");
                dropped.push(name);
            }
            Err(err) => tracing::warn!(database = %name, error = %err, "kept the scratch database of a restore: it is in use"),
        }
    }
    Ok(dropped)
}
