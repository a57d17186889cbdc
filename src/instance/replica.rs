//! Streaming replicas of a managed cluster: copied from the running primary with
//! `pg_basebackup`, then started as a hot standby on their own port and socket directory.

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use super::binaries;
use super::cluster::Cluster;
use super::layout::Layout;
use super::{Error, Running, Settings, process};

/// A base backup copies the whole cluster; generous, but still a bound.
const BASEBACKUP_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Copies `primary` into `replica.data_dir` (which must be empty or missing) as a standby that
/// streams from it, then starts it like [`super::start`] does, on its own port.
///
/// The copy is made with `pg_basebackup -R -X stream -c fast`, so `standby.signal` and
/// `primary_conninfo` are written for us. No replication slot is used: a replica that falls
/// further behind than the primary keeps WAL must be re-created.
pub async fn create_replica(primary: &Running, replica: &Settings) -> Result<Running, Error> {
    let layout = Layout::new(&replica.data_dir)?;
    refuse_existing(&layout)?;
    let primary_layout = Layout::new(&primary.data_dir)?;
    let version = primary_layout.data_version()?;
    let wanted = version.map(|v| (primary_layout.data_dir.as_path(), v));
    let bins = binaries::find(replica.bin_dir.as_deref(), wanted)?;
    let cluster = Cluster::with_binaries(replica, layout, bins)?;
    let _lock = cluster.lock().await?;
    refuse_existing(&cluster.layout)?; // again: someone may have filled it while we waited
    cluster.layout.prepare(&cluster.user)?;
    let started = Instant::now();
    basebackup(&cluster, primary).await?;
    tracing::info!(
        primary_port = primary.port,
        data_dir = %cluster.layout.data_dir.display(),
        elapsed_ms = started.elapsed().as_millis(),
        "copied primary for a replica"
    );
    cluster.start().await
}

fn refuse_existing(layout: &Layout) -> Result<(), Error> {
    if layout.data_dir_has_contents()? {
        return Err(Error::DataDirNotEmpty {
            path: layout.data_dir.clone(),
        });
    }
    Ok(())
}

async fn basebackup(cluster: &Cluster, primary: &Running) -> Result<(), Error> {
    let port = primary.port.to_string();
    let args = ["-h", "127.0.0.1", "-p", &port, "-U", &primary.superuser].map(OsStr::new);
    let mut cmd = cluster.command("pg_basebackup", &args);
    cmd.arg("-D").arg(cluster.data_dir());
    // -w: never prompt for a password (there is no terminal to answer it).
    cmd.args(["-R", "-X", "stream", "-c", "fast", "-w"]);
    let output = process::run(cmd, BASEBACKUP_TIMEOUT).await?;
    if !output.status.success() {
        return Err(Error::BasebackupFailed {
            port: primary.port,
            stderr: process::failure_text(&output),
        });
    }
    Ok(())
}
