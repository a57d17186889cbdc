//! `pg_rewind`: a former primary that diverged from its successor (stopped abruptly by a
//! failover's fence, with WAL the successor never received) is rewound to the point where
//! their histories split, so it can follow the successor as a replica (`replication::rejoin`).
//!
//! It runs as the server's OS user against the stopped data directory, with the successor as
//! the source (`--source-server`), and `--write-recovery-conf`: from the moment it finishes
//! the directory holds `standby.signal`, so it can only start as a standby even if dbagent
//! stops before marking it rejoined. `wal_log_hints = on` (in every managed cluster's
//! `dbagent.conf`) is what pg_rewind needs on a cluster without data checksums; PostgreSQL 13+
//! runs crash recovery on a target that was not shut down cleanly before rewinding.

use std::ffi::OsStr;
use std::time::Duration;

use super::cluster::Cluster;
use super::pidfile::Postmaster;
use super::{Error, Running, Settings};

/// Rewinding copies what changed since the split: bounded generously.
const REWIND_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Rewinds the stopped cluster of `settings` onto `source`'s history.
pub async fn rewind(settings: &Settings, source: &Running, primary_conninfo: &str) -> Result<(), Error> {
    let cluster = Cluster::load(settings)?;
    let _lock = cluster.lock().await?;
    if !matches!(cluster.probe()?, Postmaster::Absent) {
        return Err(Error::StillRunning { data_dir: cluster.layout.data_dir.clone() });
    }
    let target = format!("--target-pgdata={}", cluster.layout.data_dir.display());
    let server = format!("--source-server={primary_conninfo} dbname=postgres");
    let args: [&OsStr; 4] = [OsStr::new(&target), OsStr::new(&server), OsStr::new("--write-recovery-conf"), OsStr::new("--progress")];
    let mut cmd = cluster.command("pg_rewind", &args);
    cmd.env("LC_ALL", "C").env_remove("LANGUAGE");
    let output = super::process::run(cmd, REWIND_TIMEOUT).await?;
    if !output.status.success() {
        return Err(Error::RewindFailed { port: source.port, stderr: super::process::failure_text(&output) });
    }
    tracing::info!(data_dir = %cluster.layout.data_dir.display(), source_port = source.port, "rewound the former primary with pg_rewind");
    Ok(())
}
