//! Migration files on disk: `<version>_<name>.up.sql` with an optional `<version>_<name>.down.sql`
//! (reversible), or a lone `<version>_<name>.sql` (irreversible). Other files are ignored.
//!
//! A file whose leading comment lines include `-- dbagent:no-transaction` runs statement by
//! statement outside a transaction (needed for `CREATE INDEX CONCURRENTLY`); its statements are
//! split here, with PostgreSQL's own parser, so a file that cannot be split fails at load time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::Error;

/// The comment that makes a file run outside a transaction.
const NO_TRANSACTION_MARKER: &str = "dbagent:no-transaction";

/// One migration: its up script and, when reversible, its down script.
#[derive(Debug, Clone)]
pub struct Migration {
    pub version: i64,
    pub name: String,
    pub up: Script,
    pub down: Option<Script>,
    /// SHA-256 of the up file's bytes, lowercase hex.
    pub checksum: String,
}

/// The SQL of one file.
#[derive(Debug, Clone)]
pub struct Script {
    pub path: PathBuf,
    pub sql: String,
    /// The file carries the `-- dbagent:no-transaction` marker.
    pub no_transaction: bool,
    /// Byte ranges of the statements in `sql` (only for no-transaction files).
    statements: Vec<Range<usize>>,
}

impl Script {
    fn read(path: PathBuf) -> Result<(Script, Vec<u8>), Error> {
        let bytes = fs::read(&path).map_err(Error::io("read", &path))?;
        let Ok(sql) = String::from_utf8(bytes.clone()) else {
            return Err(Error::InvalidFile {
                path,
                reason: "it is not valid UTF-8".into(),
            });
        };
        let no_transaction = has_no_transaction_marker(&sql);
        let statements = if no_transaction {
            split(&sql, &path)?
        } else {
            Vec::new()
        };
        Ok((
            Script {
                path,
                sql,
                no_transaction,
                statements,
            },
            bytes,
        ))
    }

    /// A script that never was a file, for unit tests of pure logic.
    #[cfg(test)]
    pub(crate) fn inline(path: &str, sql: &str) -> Script {
        Script {
            path: path.into(),
            sql: sql.into(),
            no_transaction: false,
            statements: Vec::new(),
        }
    }

    /// For a no-transaction file: each statement with its byte offset in the file.
    pub fn statements(&self) -> impl Iterator<Item = (usize, &str)> {
        self.statements.iter().map(|r| (r.start, &self.sql[r.clone()]))
    }
}

/// What a file name says about the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Up,
    Down,
    Irreversible,
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FileName<'a> {
    pub version: i64,
    pub name: &'a str,
    pub kind: FileKind,
}

/// Parses a migration file name. `Ok(None)`: not a migration file (no `.sql` suffix, hidden);
/// `Err(reason)`: a `.sql` file whose name does not follow the pattern.
pub(crate) fn parse_file_name(file_name: &str) -> Result<Option<FileName<'_>>, String> {
    if file_name.starts_with('.') {
        return Ok(None);
    }
    let Some(stem) = file_name.strip_suffix(".sql") else {
        return Ok(None);
    };
    let (stem, kind) = if let Some(s) = stem.strip_suffix(".up") {
        (s, FileKind::Up)
    } else if let Some(s) = stem.strip_suffix(".down") {
        (s, FileKind::Down)
    } else {
        (stem, FileKind::Irreversible)
    };
    let expected = "expected <version>_<name>.up.sql, .down.sql or .sql";
    let Some((digits, name)) = stem.split_once('_') else {
        return Err(format!("no `_` between version and name ({expected})"));
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("the version {digits:?} is not a number ({expected})"));
    }
    let version = digits
        .parse()
        .map_err(|_| format!("the version {digits} is too large"))?;
    if name.is_empty() {
        return Err(format!("the name after the version is empty ({expected})"));
    }
    Ok(Some(FileName { version, name, kind }))
}

/// The up (or irreversible) file and the down file found for one version.
#[derive(Default)]
struct Pair {
    up: Option<(PathBuf, String, FileKind)>,
    down: Option<(PathBuf, String)>,
}

/// Reads every migration in `dir`, ordered by version.
pub(crate) fn load_dir(dir: &Path) -> Result<Vec<Migration>, Error> {
    let mut pairs: BTreeMap<i64, Pair> = BTreeMap::new();
    for path in sql_files(dir)? {
        let file_name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let parsed = match parse_file_name(&file_name) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => continue,
            Err(reason) => return Err(Error::InvalidFile { path, reason }),
        };
        let pair = pairs.entry(parsed.version).or_default();
        let slot_taken = match parsed.kind {
            FileKind::Down => pair.down.as_ref().map(|(p, _)| p.clone()),
            _ => pair.up.as_ref().map(|(p, _, _)| p.clone()),
        };
        if let Some(first) = slot_taken {
            return Err(Error::DuplicateVersion {
                version: parsed.version,
                first,
                second: path,
            });
        }
        let name = parsed.name.to_string();
        match parsed.kind {
            FileKind::Down => pair.down = Some((path, name)),
            kind => pair.up = Some((path, name, kind)),
        }
    }
    pairs
        .into_iter()
        .map(|(version, pair)| load_pair(version, pair))
        .collect()
}

/// The paths of the regular files in `dir` that may be migrations, sorted by name.
fn sql_files(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        // A fresh project has no migrations yet (seed 000's `POST /migrate` on a first start
        // succeeds with nothing applied, as `alembic upgrade head` does); `migrate new`
        // creates the directory.
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            tracing::debug!(dir = %dir.display(), "no migrations directory: no migrations");
            return Ok(Vec::new());
        }
        Err(err) => return Err(Error::io("read the migrations directory", dir)(err)),
    };
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry.map_err(Error::io("read the migrations directory", dir))?.path();
        if path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

fn load_pair(version: i64, pair: Pair) -> Result<Migration, Error> {
    let Some((up_path, name, kind)) = pair.up else {
        let (path, name) = pair.down.expect("a version has at least one file");
        let reason = format!("there is no matching up file {version}_{name}.up.sql");
        return Err(Error::InvalidFile { path, reason });
    };
    if let Some((down_path, down_name)) = &pair.down {
        let reason = if kind == FileKind::Irreversible {
            format!(
                "its up file {} must be named {version}_{name}.up.sql",
                up_path.display()
            )
        } else if *down_name != name {
            format!("its name differs from the up file {}", up_path.display())
        } else {
            String::new()
        };
        if !reason.is_empty() {
            return Err(Error::InvalidFile {
                path: down_path.clone(),
                reason,
            });
        }
    }
    let (up, bytes) = Script::read(up_path)?;
    let down = match pair.down {
        Some((path, _)) => Some(Script::read(path)?.0),
        None => None,
    };
    Ok(Migration {
        version,
        name,
        up,
        down,
        checksum: sha256_hex(&bytes),
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(bytes) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// True when the comment lines before the first statement include the marker.
pub(crate) fn has_no_transaction_marker(sql: &str) -> bool {
    for line in sql.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        let Some(comment) = line.strip_prefix("--") else {
            return false;
        };
        if comment.trim() == NO_TRANSACTION_MARKER {
            return true;
        }
    }
    false
}

fn split(sql: &str, path: &Path) -> Result<Vec<Range<usize>>, Error> {
    let statements = pg_query::split_with_parser(sql).map_err(|err| Error::InvalidFile {
        path: path.to_path_buf(),
        reason: format!("it cannot be split into statements: {err}"),
    })?;
    let base = sql.as_ptr() as usize;
    Ok(statements
        .into_iter()
        .map(|s| {
            let start = s.as_ptr() as usize - base;
            start..start + s.len()
        })
        .filter(|r| !sql[r.clone()].trim().is_empty())
        .collect())
}

/// Creates the files of a new migration in `dir` (created if missing): `.up.sql` and
/// `.down.sql` when `reversible`, else one `.sql`. The version is `now` as `YYYYMMDDHHMMSS`,
/// or one more than the newest version in `dir` if that is not older, so the new migration
/// always sorts last. `name` is reduced to lowercase letters, digits and `_`.
pub fn new_migration(dir: &Path, name: &str, reversible: bool, now: DateTime<Utc>) -> Result<Vec<PathBuf>, Error> {
    let slug = slugify(name);
    if slug.is_empty() {
        let reason = "it needs at least one letter or digit";
        return Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        });
    }
    fs::create_dir_all(dir).map_err(Error::io("create the migrations directory", dir))?;
    let stamp: i64 = now.format("%Y%m%d%H%M%S").to_string().parse().expect("digits");
    let version = match newest_version(dir)? {
        Some(newest) if newest >= stamp => newest + 1,
        _ => stamp,
    };
    let files: Vec<(String, &str)> = if reversible {
        vec![
            (format!("{version}_{slug}.up.sql"), "-- Write the change here.\n"),
            (format!("{version}_{slug}.down.sql"), "-- Undo what the up file does.\n"),
        ]
    } else {
        vec![(
            format!("{version}_{slug}.sql"),
            "-- Write the change here (irreversible).\n",
        )]
    };
    let mut created = Vec::new();
    for (file_name, text) in files {
        let path = dir.join(file_name);
        write_new(&path, text)?;
        created.push(path);
    }
    Ok(created)
}

fn write_new(path: &Path, text: &str) -> Result<(), Error> {
    use std::io::Write;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(Error::io("create", path))?;
    file.write_all(text.as_bytes()).map_err(Error::io("write", path))
}

fn newest_version(dir: &Path) -> Result<Option<i64>, Error> {
    let files = sql_files(dir)?;
    let names = files.iter().filter_map(|p| p.file_name()?.to_str());
    Ok(names
        .filter_map(|n| parse_file_name(n).ok().flatten().map(|f| f.version))
        .max())
}

fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('_') {
            slug.push('_');
        }
    }
    slug.trim_end_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Version, name and kind, or `None` for a file that is not a migration.
    type Expected = Option<(i64, &'static str, FileKind)>;

    #[test]
    fn file_names_are_parsed_or_refused_with_a_reason() {
        use FileKind::*;
        let ok: &[(&str, Expected)] = &[
            ("1_init.up.sql", Some((1, "init", Up))),
            ("1_init.down.sql", Some((1, "init", Down))),
            (
                "20240101000000_add_users.sql",
                Some((20240101000000, "add_users", Irreversible)),
            ),
            ("007_with_leading_zeros.up.sql", Some((7, "with_leading_zeros", Up))),
            ("3_dots.in.name.sql", Some((3, "dots.in.name", Irreversible))),
            ("README.md", None),
            ("notes.txt", None),
            (".1_hidden.up.sql", None),
            ("1_init.up.sql.orig", None),
        ];
        for (input, expected) in ok {
            let parsed = parse_file_name(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            let got = parsed.map(|f| (f.version, f.name, f.kind));
            assert_eq!(got, *expected, "{input}");
        }
        let refused = [
            "init.up.sql",
            "_init.up.sql",
            "1_.up.sql",
            "v1_init.sql",
            "1a_init.sql",
            "-1_init.sql",
            "99999999999999999999_big.sql",
            "schema.sql",
        ];
        for input in refused {
            assert!(parse_file_name(input).is_err(), "{input} should be refused");
        }
    }

    #[test]
    fn the_no_transaction_marker_counts_only_before_the_first_statement() {
        let cases = [
            ("-- dbagent:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);", true),
            ("\n  --dbagent:no-transaction  \nSELECT 1;", true),
            ("-- adds an index\n-- dbagent:no-transaction\nSELECT 1;", true),
            ("SELECT 1;\n-- dbagent:no-transaction\n", false),
            ("-- dbagent:no-transactions\nSELECT 1;", false),
            ("", false),
        ];
        for (sql, expected) in cases {
            assert_eq!(has_no_transaction_marker(sql), expected, "{sql:?}");
        }
    }

    #[test]
    fn names_for_new_migrations_are_reduced_to_a_slug() {
        let cases = [
            ("Add users", "add_users"),
            ("add-users table!", "add_users_table"),
            ("  __x__ ", "x"),
            ("!!!", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(slugify(input), expected, "{input:?}");
        }
    }

    #[test]
    fn the_checksum_is_the_sha256_of_the_bytes_in_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
