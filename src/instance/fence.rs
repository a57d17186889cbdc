//! Fencing: after a failover the old primary must never take writes again, or two primaries
//! would accept diverging writes (split brain). A fenced cluster has a `dbagent.fenced` file
//! naming its successor; dbagent stops it and refuses to start it until an operator re-joins it
//! (re-creates it as a replica of the new primary) or removes the file deliberately.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::layout::Layout;
use super::pidfile::{self, Postmaster};
use super::{Error, Settings, StopMode};

pub(crate) const FENCE_FILE: &str = "dbagent.fenced";

/// Why and to whom a cluster lost its primary role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    pub fenced_at: String,
    /// Data directory of the replica promoted in its place.
    pub successor: PathBuf,
    /// Set when the cluster was made a streaming replica of its successor (a switchover, or a
    /// rejoin): it may then start, as a standby only (`standby.signal` present).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejoined_at: Option<String>,
}

impl Fence {
    /// The fenced cluster may start: it was rejoined as a replica and still is one.
    pub fn allows_standby(&self, data_dir: &Path) -> bool {
        self.rejoined_at.is_some() && data_dir.join("standby.signal").is_file()
    }
}

/// Marks `settings.data_dir` fenced in favour of `successor`, then stops its server at once if
/// one still runs. The mark is written first, so nothing can start it in between.
pub async fn fence(settings: &Settings, successor: &Path) -> Result<(), Error> {
    let layout = Layout::new(&settings.data_dir)?;
    let fence = Fence { fenced_at: chrono::Utc::now().to_rfc3339(), successor: successor.to_path_buf(), rejoined_at: None };
    let path = layout.data_dir.join(FENCE_FILE);
    let text = serde_json::to_string_pretty(&fence).unwrap_or_default();
    fs::write(&path, text).map_err(Error::io("write", &path))?;
    if pidfile::probe(&layout.data_dir)? != Postmaster::Absent {
        // The mark already keeps dbagent from using or starting it; a server we cannot stop
        // (hung, or on a host we cannot reach) is reported, not waited for.
        if let Err(err) = super::stop(settings, StopMode::Immediate).await {
            tracing::error!(data_dir = %layout.data_dir.display(), error = %crate::db::error_chain(&err), "cannot stop the fenced old primary");
        }
    }
    tracing::warn!(data_dir = %layout.data_dir.display(), successor = %successor.display(), "fenced the old primary");
    Ok(())
}

/// The fence on `data_dir`, if there is one.
pub fn fenced(data_dir: &Path) -> Result<Option<Fence>, Error> {
    let path = data_dir.join(FENCE_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(serde_json::from_str(&text).ok().or_else(|| {
            // Unreadable content still fences: better refuse a start than risk two primaries.
            Some(Fence { fenced_at: String::new(), successor: PathBuf::new(), rejoined_at: None })
        })),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::Io { action: "read", path, source: err }),
    }
}

/// Marks the stopped former primary at `data_dir` as a streaming replica of `successor`:
/// `standby.signal`, `primary_conninfo` (in `postgresql.auto.conf`, read after every other
/// file), and its fence (written first) saying it was rejoined. It starts as a standby from
/// then on, never as a primary.
pub fn make_standby(settings: &Settings, successor: &Path, primary_conninfo: &str) -> Result<(), Error> {
    let layout = Layout::new(&settings.data_dir)?;
    let dir = &layout.data_dir;
    if pidfile::probe(dir)? != Postmaster::Absent {
        return Err(Error::StillRunning { data_dir: dir.clone() });
    }
    let now = chrono::Utc::now().to_rfc3339();
    let fence = Fence { fenced_at: now.clone(), successor: successor.to_path_buf(), rejoined_at: Some(now) };
    let path = dir.join(FENCE_FILE);
    fs::write(&path, serde_json::to_string_pretty(&fence).unwrap_or_default()).map_err(Error::io("write", &path))?;
    let auto = dir.join("postgresql.auto.conf");
    let mut text = fs::read_to_string(&auto).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("primary_conninfo = {}\n", crate::db::sql::conf_string(primary_conninfo)));
    fs::write(&auto, text).map_err(Error::io("write", &auto))?;
    let signal = dir.join("standby.signal");
    fs::write(&signal, "").map_err(Error::io("write", &signal))?;
    let user = super::user::ServerUser::resolve()?;
    user.give(&signal)?;
    user.give(&path)?;
    Ok(())
}

/// Removes the fence of a rejoined replica that was just promoted (a switchover back).
pub fn unfence(data_dir: &Path) -> Result<(), Error> {
    let path = data_dir.join(FENCE_FILE);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(Error::Io { action: "remove", path, source: err }),
    }
}
