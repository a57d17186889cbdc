//! The operating-system account the PostgreSQL server runs as, and what that account must be
//! able to reach.
//!
//! PostgreSQL refuses to run as root. When dbagent is root, every server program is run as the
//! `postgres` OS user and the files the server uses are handed to it; otherwise the server runs
//! as whoever runs dbagent and nothing changes hands.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::unistd::{Gid, Uid, User, chown, geteuid};

use super::Error;

/// The OS account used for the server when dbagent runs as root.
const SERVER_OS_USER: &str = "postgres";

/// Whom the server processes run as.
#[derive(Debug, Clone)]
pub(crate) enum ServerUser {
    /// dbagent is not root: the server runs as dbagent's own user.
    Current,
    /// dbagent is root: switch to this account for every server program.
    Switch {
        name: String,
        uid: Uid,
        gid: Gid,
        home: PathBuf,
    },
}

impl ServerUser {
    /// Decides whom the server runs as, looking the `postgres` account up when we are root.
    pub(crate) fn resolve() -> Result<Self, Error> {
        if !geteuid().is_root() {
            return Ok(ServerUser::Current);
        }
        let found = User::from_name(SERVER_OS_USER).map_err(|source| Error::ServerUserLookup {
            user: SERVER_OS_USER.to_owned(),
            source,
        })?;
        let user = found.ok_or_else(|| Error::ServerUserMissing {
            user: SERVER_OS_USER.to_owned(),
        })?;
        Ok(ServerUser::Switch {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
            home: user.dir,
        })
    }

    /// Makes `cmd` run as this user. std drops root's supplementary groups when it switches
    /// uid, so the child has exactly the account's primary group. The child starts in `/`
    /// because our own working directory (say a 0700 home) may be closed to that user, and
    /// every path we pass is absolute.
    pub(crate) fn apply(&self, cmd: &mut Command) {
        if let ServerUser::Switch {
            name,
            uid,
            gid,
            home,
        } = self
        {
            cmd.uid(uid.as_raw())
                .gid(gid.as_raw())
                .env("HOME", home)
                .env("USER", name)
                .env("LOGNAME", name)
                .current_dir("/");
        }
    }

    /// Hands `path` to this user (no-op unless we switch users).
    pub(crate) fn give(&self, path: &Path) -> Result<(), Error> {
        if let ServerUser::Switch { name, uid, gid, .. } = self {
            chown(path, Some(*uid), Some(*gid)).map_err(|source| Error::Chown {
                path: path.to_path_buf(),
                user: name.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Fails with [`Error::DirectoryNotAccessible`] naming the first ancestor of `dir` (from
    /// `/` down, `dir` included) that this user cannot enter. PostgreSQL needs the whole path
    /// to its data directory, and would otherwise fail later with a less helpful message.
    pub(crate) fn check_traversable(&self, dir: &Path) -> Result<(), Error> {
        let ServerUser::Switch { name, uid, gid, .. } = self else {
            return Ok(());
        };
        let mut chain: Vec<&Path> = dir.ancestors().collect();
        chain.reverse();
        for path in chain {
            let meta = std::fs::metadata(path).map_err(Error::io("inspect", path))?;
            if !can_enter(&meta, *uid, *gid) {
                return Err(Error::DirectoryNotAccessible {
                    path: path.to_path_buf(),
                    user: name.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Whether a process with exactly `uid`/`gid` may search the directory described by `meta`
/// (ACLs are not consulted).
fn can_enter(meta: &Metadata, uid: Uid, gid: Gid) -> bool {
    let mode = meta.mode();
    let bit = if meta.uid() == uid.as_raw() {
        0o100
    } else if meta.gid() == gid.as_raw() {
        0o010
    } else {
        0o001
    };
    mode & bit != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_directory_owned_by_someone_else_cannot_be_entered() {
        let dir = std::env::temp_dir().join(format!("dbagent-user-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        let stranger = (Uid::from_raw(54_321), Gid::from_raw(54_321));
        let cases = [(0o700, false), (0o701, true), (0o755, true), (0o750, false)];
        for (mode, expected) in cases {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let meta = std::fs::metadata(&dir).expect("stat");
            assert_eq!(
                can_enter(&meta, stranger.0, stranger.1),
                expected,
                "mode {mode:o}"
            );
        }
        std::fs::remove_dir(&dir).expect("remove temp dir");
    }
}
