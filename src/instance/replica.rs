//! Streaming replicas of a managed cluster: copied from the running primary with
//! `pg_basebackup`, then started as a hot standby on their own port and socket directory.
//! Replica `n` of a primary in `D` lives in `D-replica-<n>` ([`replica_settings`],
//! [`replicas`]).

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use super::binaries;
use super::cluster::Cluster;
use super::layout::Layout;
use super::{Error, Running, Settings, process};

/// A base backup copies the whole cluster; generous, but still a bound.
const BASEBACKUP_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Between a primary's directory name and a replica's number.
const REPLICA_INFIX: &str = "-replica-";

/// Where managed replica `n` (1-based) of `primary` lives: `<data_dir>-replica-<n>`, on a
/// port of its own.
pub fn replica_settings(primary: &Settings, n: u32) -> Settings {
    let mut name = primary.data_dir.file_name().map(|s| s.to_os_string()).unwrap_or_default();
    name.push(format!("{REPLICA_INFIX}{n}"));
    let mut settings = primary.clone();
    settings.data_dir = primary.data_dir.with_file_name(name);
    settings.port = None;
    settings
}

/// The replica directories of `primary` that exist, by number (ascending), whether or not
/// they are initialised, running or fenced.
pub fn replicas(primary: &Settings) -> Result<Vec<(u32, Settings)>, Error> {
    let (Some(parent), Some(name)) = (primary.data_dir.parent(), primary.data_dir.file_name()) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}{REPLICA_INFIX}", name.to_string_lossy());
    let entries = match std::fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(Error::io("list", parent)(err)),
    };
    let mut numbers: Vec<u32> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .filter_map(|entry| entry.file_name().to_str()?.strip_prefix(&prefix)?.parse::<u32>().ok())
        .filter(|n| *n > 0)
        .collect();
    numbers.sort_unstable();
    Ok(numbers.into_iter().map(|n| (n, replica_settings(primary, n))).collect())
}

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
    // The primary's TLS, its generated CA trusted (libpq reads these; -R keeps them in
    // primary_conninfo for the replica's WAL receiver).
    cmd.envs(super::certs::client_tls(&primary.data_dir).libpq_env());
    let output = process::run(cmd, BASEBACKUP_TIMEOUT).await?;
    if !output.status.success() {
        return Err(Error::BasebackupFailed {
            port: primary.port,
            stderr: process::failure_text(&output),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn replicas_are_the_numbered_directories_beside_the_primary() {
        let root = std::env::temp_dir().join(format!("dbagent-replicas-{}", uuid::Uuid::new_v4().simple()));
        for name in ["pgdata", "pgdata-replica-1", "pgdata-replica-3", "pgdata-replica-x", "pgdata-replica-0", "other-replica-2"] {
            std::fs::create_dir_all(root.join(name)).expect("create dir");
        }
        std::fs::write(root.join("pgdata-replica-4"), "a file, not a cluster").expect("write file");
        let primary = Settings::new(root.join("pgdata"));
        let found: Vec<(u32, PathBuf)> = replicas(&primary).expect("list").into_iter().map(|(n, s)| (n, s.data_dir)).collect();
        std::fs::remove_dir_all(&root).expect("remove temp dir");
        assert_eq!(found, vec![(1, root.join("pgdata-replica-1")), (3, root.join("pgdata-replica-3"))]);
        assert_eq!(replicas(&Settings::new(root.join("gone/pgdata"))).expect("missing parent").len(), 0);
    }
}
