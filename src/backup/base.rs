//! Base backups: a physical copy of the whole cluster with `pg_basebackup`, the starting
//! point of point-in-time recovery (`pitr.rs`).
//!
//! `pg_basebackup -D - -F tar -X fetch` writes one tar stream to its stdout: the data
//! directory, the WAL needed to make the copy consistent (so a base backup restores on its
//! own, even without the archive) and its `backup_manifest`. The stream goes through the same
//! pipeline as a dump (zstd, AES-256-GCM when a key is configured, SHA-256) into
//! `<location>/<id>/base.tar[.zst][.enc]`, never touching the disk in plaintext. The start
//! and end WAL positions pg_basebackup reports (`-v`) go into the manifest: they tell which
//! archived segments recovery needs and from when the backup can be recovered.

use std::ffi::OsString;
use std::time::Instant;

use chrono::{DateTime, Utc};
use crate::db::PgConfig;

use super::create::{BackupKind, CreateRequest, Format, Progress, seal_output, stored_name};
use super::database;
use super::location::{self, NewBackup};
use super::manifest::{BaseInfo, Manifest};
use super::threads;
use super::tools::{self, Pipes, Target, Tool};
use super::wal;
use super::{Error, Settings, catalog, pipeline};

/// One base backup to take.
pub(crate) struct NewBase<'a> {
    pub req: &'a CreateRequest,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub id: String,
    pub created_at: DateTime<Utc>,
}

/// Takes a base backup of the cluster `db` points at.
pub(crate) async fn take(
    db: &PgConfig,
    settings: &Settings,
    new: NewBase<'_>,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<Manifest, Error> {
    let Some(pitr) = &settings.pitr else {
        return Err(Error::invalid(
            "base backups are for point-in-time recovery, which needs backup.pitr: true (WAL archived \
             by the managed instance, or streamed from a configured server)",
        ));
    };
    let started = Instant::now();
    let root = location::root(settings)?;
    let client = database::connect(db, crate::db::Purpose::Backup).await?;
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int4,
                    current_database()::text, pg_encoding_to_char(d.encoding)::text, d.datcollate::text, d.datctype::text,
                    (SELECT setting::int8 * CASE unit WHEN '8kB' THEN 8192 WHEN 'MB' THEN 1048576 ELSE 1 END
                       FROM pg_settings WHERE name = 'wal_segment_size'),
                    current_setting('archive_mode')
               FROM pg_database d WHERE d.datname = current_database()",
            &[],
        )
        .await
        .map_err(Error::db("read the server's settings"))?;
    drop(client);
    let version_num = row.get::<_, i32>(1).max(0) as u32;
    let segment_size = row.get::<_, Option<i64>>(6).filter(|s| *s > 0).map_or(wal::DEFAULT_SEGMENT_SIZE, |s| s as u64);
    // A streamed server needs no archive_mode: pg_receivewal takes its WAL through the slot.
    if pitr.source == super::WalSource::ArchiveCommand && row.get::<_, String>(7) == "off" {
        return Err(Error::invalid(
            "the server does not archive WAL (archive_mode = off): restart the managed instance \
             with backup.pitr: true before taking base backups",
        ));
    }
    let tools = tools::find(settings.bin_dir.as_deref(), tools::server_major(version_num)).await?;
    let backup = NewBackup::create(&root, &new.id)?;
    let (key, encryption) = match settings.encryption.clone() {
        Some(key) => {
            let (data, info) = threads::blocking(move || key.for_new_backup()).await?;
            (Some(data), Some(info))
        }
        None => (None, None),
    };
    let database = row.get::<_, String>(2);
    let stored = stored_name("base.tar", settings.compression, key.is_some());
    let args: Vec<OsString> = ["--pgdata=-", "--format=tar", "--wal-method=fetch", "--checkpoint=fast", "--verbose"]
        .map(OsString::from)
        .to_vec();
    let copy = async {
        let mut child = tools::spawn(&tools, Tool::PgBasebackup, &args, &Target::new(db, &database), Pipes { stdin: false, stdout: true })?;
        let aad = pipeline::associated_data(&new.id, "base.tar");
        let report = |bytes| progress(Progress { phase: "dump", bytes, elapsed: started.elapsed() });
        let sealed = seal_output(&mut child, backup.dir.join(&stored), settings.packing(), key.clone(), aad, &report).await?;
        let stderr = child.wait_with_stderr().await?;
        Ok::<_, Error>((sealed, stderr))
    };
    let (sealed, stderr) = tools::bounded(Tool::PgBasebackup, settings.tool_timeout, copy).await?;
    let finished_at = Utc::now();
    let (start_lsn, timeline, end_lsn) = positions(&stderr).ok_or_else(|| Error::ToolFailed {
        tool: "pg_basebackup",
        stderr: format!("its output did not name the start and end WAL positions: {stderr}"),
    })?;
    let start = wal::parse_lsn(&start_lsn).unwrap_or(0);
    let file = sealed.entry("base.tar", &stored);
    let manifest = Manifest {
        format_version: Manifest::FORMAT_VERSION,
        id: new.id.clone(),
        name: new.req.name.clone(),
        kind: BackupKind::Base,
        format: Format::Custom,
        database,
        encoding: row.get(3),
        lc_collate: row.get(4),
        lc_ctype: row.get(5),
        server_version: row.get(0),
        server_version_num: version_num,
        pg_dump_version: tools.version.replace("pg_dump", "pg_basebackup"),
        pg_dump_major: tools.major,
        created_at: new.created_at,
        duration_ms: started.elapsed().as_millis() as u64,
        raw_bytes: file.raw_bytes,
        stored_bytes: file.stored_bytes,
        compression: settings.compression,
        encryption,
        files: vec![file],
        tables: Vec::new(),
        tables_filter: None,
        wal_lsn: Some(start_lsn.clone()),
        keep: new.req.keep,
        pinned_by: new.req.pinned_by.clone(),
        scheduled_for: new.scheduled_for,
        verification: None,
        base: Some(BaseInfo {
            timeline,
            start_segment: wal::segment_name(timeline, start, segment_size),
            start_lsn,
            end_lsn,
            wal_segment_size: segment_size,
            finished_at,
        }),
    };
    manifest.write(&backup.dir)?;
    backup.commit();
    if let Some(remote) = &settings.remote {
        remote.kick();
    }
    tracing::info!(raw_bytes = manifest.raw_bytes, stored_bytes = manifest.stored_bytes, duration_ms = manifest.duration_ms, "base backup complete");
    catalog::mirror(db, &manifest).await;
    Ok(manifest)
}

/// `(start LSN, timeline, end LSN)` from pg_basebackup's `--verbose` messages
/// ("write-ahead log start point: 0/2000028 on timeline 1", "write-ahead log end point:
/// 0/2000100").
fn positions(stderr: &str) -> Option<(String, u32, String)> {
    let after = |marker: &str| stderr.lines().find_map(|line| line.split_once(marker).map(|(_, rest)| rest.trim().to_owned()));
    let start = after("write-ahead log start point:")?;
    let (start_lsn, timeline) = start.split_once(" on timeline ")?;
    let end = after("write-ahead log end point:")?;
    wal::parse_lsn(start_lsn)?;
    wal::parse_lsn(&end)?;
    Some((start_lsn.to_owned(), timeline.trim().parse().ok()?, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_come_from_the_verbose_output() {
        let stderr = "pg_basebackup: initiating base backup, waiting for checkpoint to complete\n\
                      pg_basebackup: checkpoint completed\n\
                      pg_basebackup: write-ahead log start point: 0/5000028 on timeline 2\n\
                      pg_basebackup: write-ahead log end point: 0/5000138\n\
                      pg_basebackup: base backup completed";
        assert_eq!(positions(stderr), Some(("0/5000028".into(), 2, "0/5000138".into())));
        assert_eq!(positions("pg_basebackup: base backup completed"), None);
    }
}
