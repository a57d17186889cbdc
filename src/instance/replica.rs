//! Streaming replicas of a managed cluster: copied from the running primary with
//! `pg_basebackup`, then started as a hot standby on their own port and socket directory.

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use super::binaries::{self, Binaries};
use super::layout::Layout;
use super::user::ServerUser;
use super::{Error, Running, Settings, cluster, process};

/// A base backup copies the whole cluster; generous, but still a bound.
const BASEBACKUP_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Copies `primary` into `replica.data_dir` (which must be empty or missing) as a standby that
/// streams from it, then starts it like [`cluster::start`] does, on its own port.
///
/// The copy is made with `pg_basebackup -R -X stream -c fast`, so `standby.signal` and
/// `primary_conninfo` are written for us. No replication slot is used: a replica that falls
/// further behind than the primary keeps WAL must be re-created.
pub async fn create_replica(primary: &Running, replica: &Settings) -> Result<Running, Error> {
    let layout = Layout::new(&replica.data_dir)?;
    if layout.data_dir_has_contents()? {
        return Err(Error::DataDirNotEmpty {
            path: layout.data_dir,
        });
    }
    let primary_layout = Layout::new(&primary.data_dir)?;
    let version = primary_layout.data_version()?;
    let wanted = version.map(|v| (primary_layout.data_dir.as_path(), v));
    let bins = binaries::find(replica.bin_dir.as_deref(), wanted)?;
    let user = ServerUser::resolve()?;
    layout.prepare(&user)?;
    let started = Instant::now();
    basebackup(&bins, &user, primary, &layout).await?;
    tracing::info!(
        primary_port = primary.port,
        data_dir = %layout.data_dir.display(),
        elapsed_ms = started.elapsed().as_millis(),
        "copied primary for a replica"
    );
    cluster::start(replica).await
}

async fn basebackup(
    bins: &Binaries,
    user: &ServerUser,
    primary: &Running,
    layout: &Layout,
) -> Result<(), Error> {
    let port = primary.port.to_string();
    let args = ["-h", "127.0.0.1", "-p", &port, "-U", &primary.superuser].map(OsStr::new);
    let mut cmd = process::command(&bins.dir, "pg_basebackup", &args, user);
    cmd.arg("-D").arg(&layout.data_dir);
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
