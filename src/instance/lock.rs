//! A lock per cluster, so that operations on one data directory (create, start, stop, promote,
//! copy into a replica) never run at the same time, whether they come from two tasks of one
//! dbagent (tests starting a shared instance in parallel) or from two dbagents.
//!
//! It is an advisory `flock` on `<parent>/<data dir name>.lock`: the kernel releases it when
//! the holder exits, so a crash never leaves it held.

use std::fs::{File, OpenOptions};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::Error;
use super::layout::Layout;

/// Poll interval while another holder has the lock.
const RETRY: Duration = Duration::from_millis(50);

/// Held for the duration of one operation; released on drop.
#[derive(Debug)]
pub(crate) struct ClusterLock {
    _lock: Flock<File>,
}

/// Takes the cluster's lock, waiting at most `limit` for another holder. The parent directory
/// must exist.
pub(crate) async fn acquire(layout: &Layout, limit: Duration) -> Result<ClusterLock, Error> {
    let path = layout.lock_file();
    let deadline = Instant::now() + limit;
    loop {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(ClusterLock { _lock: lock }),
            Err((_, Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                tokio::time::sleep(RETRY).await;
            }
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(Error::Busy {
                    data_dir: layout.data_dir.clone(),
                    seconds: limit.as_secs(),
                });
            }
            Err((_, errno)) => {
                return Err(Error::io("lock", &path)(std::io::Error::from(errno)));
            }
        }
    }
}
