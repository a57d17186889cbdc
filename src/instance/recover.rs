//! A new cluster made from a base backup and archived WAL: point-in-time recovery.
//!
//! The caller (the backup module, which owns the stored backup) unpacks the base backup into
//! the directory [`prepare_recovery`] made; [`recover`] then hands every file to the server's
//! OS user, writes the recovery settings and `recovery.signal`, and starts the server on its
//! own port. PostgreSQL replays archived WAL through `restore_command` (`dbagent wal fetch`)
//! up to the target, then promotes itself (`recovery_target_action = 'promote'`): the result
//! is an ordinary primary on a new timeline, beside the original, never in place of it.

use std::fs;
use std::path::{Path, PathBuf};

use super::cluster::Cluster;
use super::layout::Layout;
use super::user::ServerUser;
use super::{Error, Running, Settings};
use crate::db::sql;

/// Where recovery takes its WAL from, and where it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The dbagent executable the server runs as
    /// `restore_command = '<program> wal fetch --archive <dir> %f %p'`.
    pub program: PathBuf,
    /// The WAL archive.
    pub archive_dir: PathBuf,
    /// `recovery_target_time`, in a form PostgreSQL parses (`2026-11-29 16:40:00.123456+00`).
    /// `None` replays every archived segment.
    pub target_time: Option<String>,
}

/// Makes the empty data directory a recovery unpacks into; refuses one with contents.
pub fn prepare_recovery(settings: &Settings) -> Result<PathBuf, Error> {
    let layout = Layout::new(&settings.data_dir)?;
    if layout.data_dir_has_contents()? {
        return Err(Error::DataDirNotEmpty { path: layout.data_dir });
    }
    let user = ServerUser::resolve()?;
    layout.prepare_parent(&user)?;
    layout.prepare(&user)?;
    Ok(layout.data_dir)
}

/// Starts the cluster unpacked into `settings.data_dir` in archive recovery as `recovery`
/// says, and returns once it accepts connections (PostgreSQL may still be replaying; the
/// caller waits for `pg_is_in_recovery()` to turn false). Without `recovery` the copy starts
/// on its own: crash recovery from its `backup_label` with the WAL it holds (a base backup
/// taken with `-X fetch`), which is what a trial start of a base backup checks.
pub async fn recover(settings: &Settings, recovery: Option<&Recovery>) -> Result<Running, Error> {
    let cluster = Cluster::load(settings)?;
    let _lock = cluster.lock().await?;
    let dir = &cluster.layout.data_dir;
    // What the original server left that must not survive into a new cluster.
    for stale in ["postmaster.pid", "postmaster.opts", "standby.signal", "recovery.signal", super::fence::FENCE_FILE] {
        let _ = fs::remove_file(dir.join(stale));
    }
    // Replication slots belong to the original's replicas (pg_basebackup leaves the
    // directory empty; a copy made otherwise would hold WAL for nobody).
    clear_dir(&dir.join("pg_replslot"))?;
    write_missing_config(dir)?;
    append_settings(dir, recovery)?;
    if recovery.is_some() {
        fs::write(dir.join("recovery.signal"), "").map_err(Error::io("write", &dir.join("recovery.signal")))?;
    }
    give_all(&cluster.user, dir)?;
    cluster.start().await
}

/// A server whose configuration files live outside its data directory (Debian's
/// `/etc/postgresql/<version>/<cluster>/`) leaves none in its base backup: the copy gets
/// PostgreSQL's defaults and trusts local connections, as the managed instance does.
fn write_missing_config(dir: &Path) -> Result<(), Error> {
    let files = [
        ("postgresql.conf", "# Written by dbagent: the original server's configuration lived outside its data directory.\n"),
        (
            "pg_hba.conf",
            "# Written by dbagent: the original server's pg_hba.conf lived outside its data directory.\n\
             local   all             all                                     trust\n\
             host    all             all             127.0.0.1/32            trust\n\
             host    all             all             ::1/128                 trust\n\
             local   replication     all                                     trust\n\
             host    replication     all             127.0.0.1/32            trust\n",
        ),
        ("pg_ident.conf", ""),
    ];
    for (name, text) in files {
        let path = dir.join(name);
        if !path.exists() {
            fs::write(&path, text).map_err(Error::io("write", &path))?;
        }
    }
    Ok(())
}

fn append_settings(dir: &Path, recovery: Option<&Recovery>) -> Result<(), Error> {
    // synchronous_standby_names: the original may have waited for its replicas (dbagent sets
    // it with ALTER SYSTEM, so it is in the copied postgresql.auto.conf); the new cluster has
    // none, and would wait for ever on its first commit.
    // archive_mode: a copy must never archive into the original's archive (a different
    // history under the same segment names), whatever postgresql.conf says.
    let mut text = "\n# Set by dbagent for a cluster made from a base backup.\nsynchronous_standby_names = ''\narchive_mode = 'off'\n".to_owned();
    if let Some(recovery) = recovery {
        text.push_str(&recovery_lines(recovery)?);
    }
    let path = dir.join("postgresql.auto.conf");
    let mut current = fs::read_to_string(&path).unwrap_or_default();
    current.push_str(&text);
    fs::write(&path, current).map_err(Error::io("write", &path))
}

/// `restore_command` (one single-quoted shell word per path) and the target.
fn recovery_lines(recovery: &Recovery) -> Result<String, Error> {
    let word = |path: &Path| -> Result<String, Error> {
        let text = path.to_str().filter(|t| !t.contains(['\n', '\r'])).ok_or_else(|| Error::PathNotConfigurable {
            path: path.to_path_buf(),
            reason: "it is not UTF-8 without line breaks",
        })?;
        Ok(super::conf::shell_word(text))
    };
    let command = format!("{} wal fetch --archive {} %f %p", word(&recovery.program)?, word(&recovery.archive_dir)?);
    let mut text = format!("restore_command = {}\nrecovery_target_action = 'promote'\n", sql::conf_string(&command));
    match &recovery.target_time {
        Some(time) => text.push_str(&format!("recovery_target_time = {}\n", sql::conf_string(time))),
        None => text.push_str("recovery_target_timeline = 'latest'\n"),
    }
    Ok(text)
}

fn clear_dir(dir: &Path) -> Result<(), Error> {
    let Ok(entries) = fs::read_dir(dir) else { return Ok(()) };
    for entry in entries.flatten() {
        let path = entry.path();
        let removed = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
        removed.map_err(Error::io("remove", &path))?;
    }
    Ok(())
}

/// Hands `dir` and everything below it to the server's OS user.
fn give_all(user: &ServerUser, dir: &Path) -> Result<(), Error> {
    user.give(dir)?;
    let entries = fs::read_dir(dir).map_err(Error::io("list", dir))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("list", dir))?;
        let path = entry.path();
        if entry.file_type().map_err(Error::io("inspect", &path))?.is_dir() {
            give_all(user, &path)?;
        } else {
            user.give(&path)?;
        }
    }
    Ok(())
}
