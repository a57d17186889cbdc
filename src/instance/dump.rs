//! `pg_dump` of a database into one custom-format file: the backup taken before migrations
//! (the backup capability will build on it).

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use tokio_postgres::config::Host;

use super::{Error, binaries, process};

/// A whole database, so a generous bound; still a bound.
const DUMP_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Dumps the database `db` points at into `out` (`pg_dump --format=custom`), with the newest
/// `pg_dump` found (it reads servers of its own major version and older). The password goes
/// through the environment, never the command line.
pub async fn dump(bin_dir: Option<&Path>, db: &tokio_postgres::Config, out: &Path) -> Result<(), Error> {
    let bins = binaries::find(bin_dir, None)?;
    let host = match db.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = db.get_ports().first().copied().unwrap_or(5432).to_string();
    let user = db.get_user().unwrap_or("postgres");
    let dbname = db.get_dbname().unwrap_or(user);
    let args = ["--format=custom", "--no-password", "-h", &host, "-p", &port, "-U", user, "-d", dbname].map(OsStr::new);
    let mut cmd = process::command(&bins.dir, "pg_dump", &args, &super::user::ServerUser::Current);
    cmd.arg("-f").arg(out);
    if let Some(password) = db.get_password() {
        cmd.env("PGPASSWORD", String::from_utf8_lossy(password).into_owned());
    }
    let output = process::run(cmd, DUMP_TIMEOUT).await?;
    if !output.status.success() {
        let _ = std::fs::remove_file(out);
        return Err(Error::DumpFailed { stderr: process::failure_text(&output) });
    }
    Ok(())
}
