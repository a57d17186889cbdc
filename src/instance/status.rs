//! Reporting on a cluster without changing it: its status and the tail of its log.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::layout::Layout;
use super::pidfile::{self, Postmaster};
use super::{Error, Settings, conf};

/// Read the log backwards in blocks of this size until enough lines are in.
const TAIL_BLOCK: u64 = 16 * 1024;

/// A snapshot of a managed cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct Status {
    /// `initdb` has run on the data directory.
    pub initialized: bool,
    /// A live postmaster owns the data directory.
    pub running: bool,
    /// The postmaster's process id, when running.
    pub pid: Option<u32>,
    /// The port it listens on when running; otherwise the configured or last used port.
    pub port: Option<u16>,
    /// Major version of the data directory (`PG_VERSION`).
    pub version: Option<u32>,
    /// The data directory (absolute).
    pub data_dir: PathBuf,
    /// The server log.
    pub log_file: PathBuf,
}

/// Reports on the cluster of `settings` (no process is started).
pub fn status(settings: &Settings) -> Result<Status, Error> {
    let layout = Layout::new(&settings.data_dir)?;
    let running = match pidfile::probe(&layout.data_dir)? {
        Postmaster::Running(file) => Some(file),
        Postmaster::Absent | Postmaster::Stale(_) => None,
    };
    let port = running
        .as_ref()
        .and_then(|file| file.port)
        .or(settings.port)
        .or_else(|| conf::remembered_port(&layout));
    Ok(Status {
        initialized: layout.is_initialized(),
        running: running.is_some(),
        pid: running.as_ref().map(|file| file.pid),
        port,
        version: layout.data_version()?,
        data_dir: layout.data_dir,
        log_file: layout.log_file,
    })
}

/// The last `lines` lines of the server log (empty when the server never ran).
pub fn logs(settings: &Settings, lines: usize) -> Result<String, Error> {
    let layout = Layout::new(&settings.data_dir)?;
    tail(&layout.log_file, lines)
}

/// The last `lines` lines of the file at `path`, reading only the end of a large file.
pub(crate) fn tail(path: &Path, lines: usize) -> Result<String, Error> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(Error::io("open", path)(e)),
    };
    let len = file.metadata().map_err(Error::io("inspect", path))?.len();
    let mut start = len;
    let mut buf: Vec<u8> = Vec::new();
    // One more newline than lines wanted, because the file normally ends with one.
    while start > 0 && newlines(&buf) <= lines {
        let step = start.min(TAIL_BLOCK);
        start -= step;
        let mut block = vec![0; usize::try_from(step).unwrap_or(usize::MAX)];
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.read_exact(&mut block))
            .map_err(Error::io("read", path))?;
        block.extend_from_slice(&buf);
        buf = block;
    }
    Ok(last_lines(&String::from_utf8_lossy(&buf), lines))
}

fn newlines(buf: &[u8]) -> usize {
    buf.iter().filter(|&&b| b == b'\n').count()
}

fn last_lines(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim_end_matches('\n').lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_lines_keeps_only_the_end() {
        let cases = [
            ("a\nb\nc\n", 2, "b\nc"),
            ("a\nb\nc", 5, "a\nb\nc"),
            ("a\nb\n", 0, ""),
            ("", 3, ""),
        ];
        for (text, n, expected) in cases {
            assert_eq!(last_lines(text, n), expected, "{text:?} {n}");
        }
    }

    #[test]
    fn tail_reads_across_block_boundaries_and_tolerates_a_missing_file() {
        let path = std::env::temp_dir().join(format!("dbagent-tail-{}.log", std::process::id()));
        let text: String = (0..5000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).expect("write log");
        let got = tail(&path, 3000).expect("tail");
        std::fs::remove_file(&path).expect("remove log");
        assert_eq!(got.lines().count(), 3000);
        assert!(got.starts_with("line 2000\n") && got.ends_with("line 4999"));
        assert_eq!(tail(&path, 10).expect("missing file"), "");
    }
}
