//! Finding the PostgreSQL server binaries (`postgres`, `initdb`, `pg_ctl`, ...) and their major
//! version.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Error;
use super::process;
use super::user::ServerUser;

/// `postgres --version` answers at once; anything slower is broken.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);
/// The programs an installation must have to be used.
const REQUIRED: &[&str] = &["postgres", "initdb", "pg_ctl"];

/// A directory of PostgreSQL server programs of one major version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binaries {
    /// Directory holding `postgres`, `initdb`, `pg_ctl`, `pg_basebackup`, ...
    pub dir: PathBuf,
    /// Major version, e.g. `16`.
    pub version: u32,
}

impl Binaries {
    /// Full path of the program `name` in this directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// Finds the server binaries, newest version first.
///
/// Looks in `explicit` alone when it is given; otherwise in the directories on `PATH` holding
/// both `postgres` and `initdb`, then `/usr/lib/postgresql/<N>/bin`, `/usr/local/pgsql/bin`,
/// `/opt/homebrew/opt/postgresql@<N>/bin`, `/usr/local/opt/postgresql@<N>/bin` and
/// `/Applications/Postgres.app/Contents/Versions/<N>/bin`. A symlinked `postgres` is followed
/// to the directory it really lives in, and that directory must also hold `pg_ctl`. The
/// version comes from `postgres --version`.
pub fn find_binaries(explicit: Option<&Path>) -> Result<Binaries, Error> {
    find(explicit, None)
}

/// Like [`find_binaries`], but when `wanted` (an existing data directory and its major version)
/// is given, skips installations of other versions, so that installing a newer PostgreSQL does
/// not break an existing cluster.
pub(crate) fn find(
    explicit: Option<&Path>,
    wanted: Option<(&Path, u32)>,
) -> Result<Binaries, Error> {
    let searched = match explicit {
        // Absolute, because programs may be started in another working directory.
        Some(dir) => vec![std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())],
        None => search_dirs(),
    };
    let mut first_other: Option<Binaries> = None;
    for dir in searched.iter().filter_map(|dir| installation(dir)) {
        let found = Binaries {
            version: read_version(&dir)?,
            dir,
        };
        match wanted {
            Some((_, version)) if version != found.version => {
                first_other.get_or_insert(found);
            }
            _ => return Ok(found),
        }
    }
    match (first_other, wanted) {
        (Some(other), Some((data_dir, data_version))) => Err(Error::VersionMismatch {
            data_dir: data_dir.to_path_buf(),
            data_version,
            binaries: other.dir,
            binaries_version: other.version,
        }),
        _ => Err(Error::BinariesNotFound { searched }),
    }
}

/// Every directory worth looking in for PostgreSQL programs, in order of preference, without
/// duplicates: the absolute directories on `PATH`, then [`install_locations`]. The server
/// search and the backup tools' search (`backup::tools`) both use it; it is the only reader
/// of `PATH`.
pub(crate) fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = path_dirs();
    dirs.extend(install_locations());
    let mut unique: Vec<PathBuf> = Vec::with_capacity(dirs.len());
    for dir in dirs {
        if !unique.contains(&dir) {
            unique.push(dir);
        }
    }
    unique
}

/// The usual install locations of PostgreSQL's programs, newest version first within each:
/// Debian's `/usr/lib/postgresql/<N>/bin`, a source build, Homebrew, Postgres.app.
fn install_locations() -> Vec<PathBuf> {
    let mut dirs = versioned(Path::new("/usr/lib/postgresql"), "", "bin");
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    dirs.extend(versioned(Path::new("/opt/homebrew/opt"), "postgresql@", "bin"));
    dirs.extend(versioned(Path::new("/usr/local/opt"), "postgresql@", "bin"));
    let app = Path::new("/Applications/Postgres.app/Contents/Versions");
    dirs.extend(versioned(app, "", "bin"));
    dirs
}

/// The absolute directories on `PATH`, in order.
fn path_dirs() -> Vec<PathBuf> {
    let Some(path) = std::env::var_os("PATH") else {
        return Vec::new();
    };
    std::env::split_paths(&path).filter(|dir| dir.is_absolute()).collect()
}

/// `root/<prefix><N>/<suffix>` for every numeric `N` present, highest `N` first.
fn versioned(root: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name();
            let number = name.to_str()?.strip_prefix(prefix)?.parse::<u32>().ok()?;
            Some((number, entry.path().join(suffix)))
        })
        .collect();
    found.sort_by_key(|(number, _)| std::cmp::Reverse(*number));
    found.into_iter().map(|(_, dir)| dir).collect()
}

fn has_server(dir: &Path) -> bool {
    dir.join("postgres").is_file() && dir.join("initdb").is_file()
}

/// The real installation behind `dir`, if `dir` holds a server. A `postgres` that is a
/// symlink (a `/usr/local/bin` link farm, Homebrew's `opt/` links) is followed to its target
/// directory, where the companion programs (`pg_ctl`, `pg_basebackup`, `pg_isready`) live,
/// as pg_ctl itself does to find `postgres`.
fn installation(dir: &Path) -> Option<PathBuf> {
    if !has_server(dir) {
        return None;
    }
    let real = std::fs::canonicalize(dir.join("postgres")).ok()?;
    let real_dir = real.parent()?.to_path_buf();
    let complete = REQUIRED.iter().all(|name| real_dir.join(name).is_file());
    complete.then_some(real_dir)
}

/// Runs `postgres --version` in `dir` and returns the major version.
fn read_version(dir: &Path) -> Result<u32, Error> {
    // `--version` is answered before PostgreSQL's refusal to run as root, so no user switch.
    let arg = [OsStr::new("--version")];
    let cmd = process::command(dir, "postgres", &arg, &ServerUser::Current);
    let output = process::run_blocking(cmd, VERSION_TIMEOUT)?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    match parse_version(&text) {
        Some(version) if output.status.success() => Ok(version),
        _ => Err(Error::VersionUnreadable {
            binary: dir.join("postgres"),
            output: text,
        }),
    }
}

/// The major version in `postgres (PostgreSQL) 16.4 (Debian 16.4-1)` (or any PostgreSQL
/// program's `--version`): the number following the first `) `, up to the first non-digit (so
/// `17beta1` and `15.10` both work).
pub(crate) fn parse_version(text: &str) -> Option<u32> {
    let (_, rest) = text.split_once(") ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_version_reads_the_major_version_of_every_known_format() {
        let cases = [
            (
                "postgres (PostgreSQL) 15.10 (Debian 15.10-1.pgdg120+1)\n",
                Some(15),
            ),
            ("postgres (PostgreSQL) 16.4\n", Some(16)),
            ("postgres (PostgreSQL) 17beta1\n", Some(17)),
            ("postgres (PostgreSQL) 9.6.24\n", Some(9)),
            ("postgres\n", None),
            ("", None),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_version(text), expected, "{text:?}");
        }
    }

    #[test]
    fn versioned_lists_numeric_versions_newest_first() {
        let root = std::env::temp_dir().join(format!("dbagent-bin-test-{}", std::process::id()));
        for name in [
            "postgresql@9",
            "postgresql@16",
            "postgresql@14",
            "postgresql",
            "other",
        ] {
            std::fs::create_dir_all(root.join(name)).expect("create dir");
        }
        let found = versioned(&root, "postgresql@", "bin");
        let expected: Vec<PathBuf> = ["postgresql@16", "postgresql@14", "postgresql@9"]
            .iter()
            .map(|name| root.join(name).join("bin"))
            .collect();
        std::fs::remove_dir_all(&root).expect("remove temp dir");
        assert_eq!(found, expected);
    }
}
