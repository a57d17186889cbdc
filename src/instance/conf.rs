//! The server settings dbagent manages for its local clusters.
//!
//! They live in `dbagent.conf` in the data directory, included at the end of
//! `postgresql.conf`, and are rewritten on every start (the port may change, and a replica
//! arrives with a copy of its primary's file). `postgresql.auto.conf` is read after it, so
//! `ALTER SYSTEM` still wins.

use std::fs;
use std::path::Path;

use super::{Archive, Error};
use crate::db::sql;
use super::layout::Layout;
use super::user::ServerUser;

const CONF_FILE: &str = "dbagent.conf";
const INCLUDE_LINE: &str = "include_if_exists = 'dbagent.conf'";
/// initdb --auth=trust already writes this line; we make sure it is there because replicas are
/// created with pg_basebackup over TCP.
const REPLICATION_HBA: &str =
    "host    replication     all             127.0.0.1/32            trust";

/// Writes `dbagent.conf` for `layout`, with `port` when it is known.
pub(crate) fn write(layout: &Layout, port: Option<u16>, archive: Option<&Archive>, ssl: bool, user: &ServerUser) -> Result<(), Error> {
    let path = layout.data_dir.join(CONF_FILE);
    let mut text = render(layout, port, archive)?;
    if ssl {
        text.push_str(&super::certs::conf_lines());
    }
    fs::write(&path, text).map_err(Error::io("write", &path))?;
    // The server reads its configuration as its own user; a root-owned file would also break
    // pg_basebackup, which copies every file of the data directory.
    user.give(&path)
}

/// Appends the include of `dbagent.conf` to `postgresql.conf` unless it is already there.
pub(crate) fn ensure_included(layout: &Layout) -> Result<(), Error> {
    append_once(
        &layout.data_dir.join("postgresql.conf"),
        INCLUDE_LINE,
        |line| line == INCLUDE_LINE,
    )
}

/// Makes sure `pg_hba.conf` trusts replication connections from 127.0.0.1.
pub(crate) fn ensure_replication_hba(layout: &Layout) -> Result<(), Error> {
    append_once(
        &layout.data_dir.join("pg_hba.conf"),
        REPLICATION_HBA,
        |line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() >= 5
                && fields[0] == "host"
                && fields[1] == "replication"
                && fields[3] == "127.0.0.1/32"
        },
    )
}

/// The port written by the previous start, so a restart keeps its address when it can.
pub(crate) fn remembered_port(layout: &Layout) -> Option<u16> {
    let text = fs::read_to_string(layout.data_dir.join(CONF_FILE)).ok()?;
    text.lines()
        .filter_map(|line| line.strip_prefix("port = "))
        .find_map(|value| value.trim().parse().ok())
}

/// Creates the archive directory, private to the server's OS user, which writes into it.
pub(crate) fn prepare_archive(archive: &Archive, user: &ServerUser) -> Result<(), Error> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = &archive.dir;
    if !dir.is_dir() {
        // The backup location above it stays as the backup module makes it (enterable); only
        // the archive itself is private.
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(Error::io("create", parent))?;
        }
        fs::DirBuilder::new().mode(0o700).create(dir).map_err(Error::io("create", dir))?;
    }
    user.give(dir)?;
    user.check_traversable(dir)?;
    // The server runs the program for every segment: one it cannot reach would fail every
    // archive attempt while WAL piles up in pg_wal.
    match archive.program.parent() {
        Some(bin_dir) => user.check_traversable(bin_dir),
        None => Ok(()),
    }
}

/// The lines switching WAL archiving on.
fn archive_lines(archive: Option<&Archive>) -> Result<String, Error> {
    // Without PITR nothing is said: an archive_mode set in postgresql.conf by hand stays.
    let Some(archive) = archive else {
        return Ok(String::new());
    };
    // archive_command runs through `sh -c`: each path is one single-quoted shell word, and
    // the whole command one quoted postgresql.conf string.
    let word = |path: &Path| -> Result<String, Error> {
        Ok(shell_word(configurable(path)?))
    };
    let command = format!("{} wal push --archive {} %p %f", word(&archive.program)?, word(&archive.dir)?);
    Ok(format!(
        "# Continuous archiving for point-in-time recovery (backup.pitr).\n\
         archive_mode = on\n\
         archive_command = {}\n\
         archive_timeout = {}\n",
        sql::conf_string(&command),
        archive.timeout_seconds.max(1)
    ))
}

fn render(layout: &Layout, port: Option<u16>, archive: Option<&Archive>) -> Result<String, Error> {
    let socket_dir = quote(&layout.socket_dir)?;
    let port_line = port.map(|p| format!("port = {p}\n")).unwrap_or_default();
    let archive_lines = archive_lines(archive)?;
    Ok(format!(
        "# Managed by dbagent and rewritten on every start; use ALTER SYSTEM to override.\n\
         listen_addresses = '127.0.0.1'\n\
         {port_line}\
         unix_socket_directories = {socket_dir}\n\
         unix_socket_permissions = 0700\n\
         wal_level = replica\n\
         max_wal_senders = 10\n\
         hot_standby = on\n\
         # pg_rewind can rejoin a former primary as a replica after a failover: it needs hint\n\
         # bits logged, and the WAL back to the last checkpoint before the split.\n\
         wal_log_hints = on\n\
         wal_keep_size = '256MB'\n\
         shared_buffers = '128MB'\n\
         # Query statistics for the advisor (workload-based index suggestions).\n\
         shared_preload_libraries = 'pg_stat_statements'\n\
         # stderr goes to the log file given to pg_ctl -l, next to the data directory.\n\
         logging_collector = off\n\
         log_destination = 'stderr'\n\
         {archive_lines}"
    ))
}

/// `text` as one single-quoted `sh` word (a quote inside becomes `'\''`), for the commands
/// the server runs through `sh -c` (`archive_command`, `restore_command`).
pub(super) fn shell_word(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// `path` as a quoted postgresql.conf string: quotes doubled, backslashes escaped (the parser
/// treats `\` as an escape inside quoted values).
fn quote(path: &Path) -> Result<String, Error> {
    Ok(sql::conf_string(configurable(path)?))
}

/// `path` as text, refused when postgresql.conf cannot hold it.
fn configurable(path: &Path) -> Result<&str, Error> {
    let text = path.to_str().ok_or_else(|| Error::PathNotConfigurable {
        path: path.to_path_buf(),
        reason: "it is not valid UTF-8",
    })?;
    if text.contains(['\n', '\r']) {
        return Err(Error::PathNotConfigurable {
            path: path.to_path_buf(),
            reason: "it contains a line break",
        });
    }
    Ok(text)
}

/// Appends `line` to the file at `path` unless an uncommented line satisfies `present`.
fn append_once(path: &Path, line: &str, present: impl Fn(&str) -> bool) -> Result<(), Error> {
    let mut text = fs::read_to_string(path).map_err(Error::io("read", path))?;
    let found = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .any(present);
    if found {
        return Ok(());
    }
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    // Rewriting in place keeps the file's owner and mode.
    fs::write(path, text).map_err(Error::io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_what_the_config_parser_would_interpret() {
        let cases = [
            ("/tmp/run", "'/tmp/run'"),
            ("/tmp/it's", "'/tmp/it''s'"),
            ("/tmp/a\\b", "'/tmp/a\\\\b'"),
        ];
        for (path, expected) in cases {
            assert_eq!(quote(Path::new(path)).expect("quotable"), expected);
        }
        assert!(quote(Path::new("/tmp/a\nb")).is_err());
    }

    #[test]
    fn render_includes_the_port_only_when_known() {
        let layout = Layout::new(Path::new("/srv/.dbagent/pgdata")).expect("layout");
        let with = render(&layout, Some(6543), None).expect("render");
        assert!(with.contains("port = 6543\n"));
        assert!(with.contains("unix_socket_directories = '/srv/.dbagent/run'\n"));
        let without = render(&layout, None, None).expect("render");
        assert!(!without.contains("port ="));
        assert!(!without.contains("archive_"), "{without}");
    }

    #[test]
    fn the_archive_command_is_one_shell_word_per_path() {
        let layout = Layout::new(Path::new("/srv/.dbagent/pgdata")).expect("layout");
        let archive = Archive {
            dir: "/srv/it's backups/wal".into(),
            program: "/usr/bin/dbagent".into(),
            timeout_seconds: 60,
        };
        let text = render(&layout, None, Some(&archive)).expect("render");
        assert!(text.contains("archive_mode = on\n"), "{text}");
        assert!(text.contains("archive_timeout = 60\n"), "{text}");
        // shell: '/srv/it'\''s backups/wal'; postgresql.conf doubles each quote.
        let expected = "archive_command = '''/usr/bin/dbagent'' wal push --archive ''/srv/it''\\\\''''s backups/wal'' %p %f'\n";
        assert!(text.contains(expected), "{text}");
    }
}
