//! The database series: each view is a query whose text columns are labels and whose
//! `float8` columns are samples, under postgres_exporter's metric names and labels so its
//! dashboards and the community alert rules work unchanged.

use tokio_postgres::Row;

use crate::db;
use crate::monitor::render::{Kind, Text};

/// One column of a view, exported as one metric family.
pub struct Family {
    pub column: &'static str,
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

/// A query and how its rows become samples.
pub struct View {
    pub sql: &'static str,
    pub labels: &'static [&'static str],
    pub families: &'static [Family],
}

const fn f(column: &'static str, name: &'static str, kind: Kind, help: &'static str) -> Family {
    Family { column, name, kind, help }
}

// postgres_exporter's counters here carry no `_total`: kept as `untyped` (see `Kind::Untyped`).
const U: Kind = Kind::Untyped;
const G: Kind = Kind::Gauge;
const C: Kind = Kind::Counter;

pub const STAT_DATABASE: View = View {
    sql: include_str!("../sql/stat_database.sql"),
    labels: &["datid", "datname"],
    families: &[
        f("numbackends", "pg_stat_database_numbackends", G, "Backends connected to this database."),
        f("xact_commit", "pg_stat_database_xact_commit", U, "Transactions committed (counter)."),
        f("xact_rollback", "pg_stat_database_xact_rollback", U, "Transactions rolled back (counter)."),
        f("blks_read", "pg_stat_database_blks_read", U, "Disk blocks read (counter)."),
        f("blks_hit", "pg_stat_database_blks_hit", U, "Buffer cache hits (counter)."),
        f("tup_returned", "pg_stat_database_tup_returned", U, "Rows returned by queries (counter)."),
        f("tup_fetched", "pg_stat_database_tup_fetched", U, "Rows fetched by queries (counter)."),
        f("tup_inserted", "pg_stat_database_tup_inserted", U, "Rows inserted (counter)."),
        f("tup_updated", "pg_stat_database_tup_updated", U, "Rows updated (counter)."),
        f("tup_deleted", "pg_stat_database_tup_deleted", U, "Rows deleted (counter)."),
        f("conflicts", "pg_stat_database_conflicts", U, "Queries cancelled by recovery conflicts (counter)."),
        f("temp_files", "pg_stat_database_temp_files", U, "Temporary files created (counter)."),
        f("temp_bytes", "pg_stat_database_temp_bytes", U, "Bytes written to temporary files (counter)."),
        f("deadlocks", "pg_stat_database_deadlocks", U, "Deadlocks detected (counter)."),
        f("blk_read_time", "pg_stat_database_blk_read_time", U, "Milliseconds spent reading blocks (counter)."),
        f("blk_write_time", "pg_stat_database_blk_write_time", U, "Milliseconds spent writing blocks (counter)."),
        f("stats_reset", "pg_stat_database_stats_reset", G, "When these statistics were last reset (Unix seconds)."),
    ],
};

pub const ACTIVITY: View = View {
    sql: include_str!("../sql/activity.sql"),
    labels: &["datname", "state"],
    families: &[
        f("count", "pg_stat_activity_count", U, "Sessions by database and state (gauge)."),
        f("max_tx_duration", "pg_stat_activity_max_tx_duration", G, "Longest open transaction by database and state, in seconds."),
    ],
};

pub const LOCKS: View = View {
    sql: include_str!("../sql/locks.sql"),
    labels: &["datname", "mode"],
    families: &[f("count", "pg_locks_count", U, "Locks held or awaited by database and mode (gauge).")],
};

pub const SERVER: View = View {
    sql: include_str!("../sql/server.sql"),
    labels: &[],
    families: &[
        f("max_connections", "pg_settings_max_connections", G, "Setting max_connections."),
        f("superuser_reserved_connections", "pg_settings_superuser_reserved_connections", G, "Setting superuser_reserved_connections."),
        f("max_locks_per_transaction", "pg_settings_max_locks_per_transaction", G, "Setting max_locks_per_transaction."),
        f("max_prepared_transactions", "pg_settings_max_prepared_transactions", G, "Setting max_prepared_transactions."),
        f("max_wal_senders", "pg_settings_max_wal_senders", G, "Setting max_wal_senders."),
        f("is_replica", "pg_replication_is_replica", G, "1 when the server is a standby."),
        f("lag_seconds", "pg_replication_lag_seconds", G, "Replay lag of a standby in seconds (0 on a primary)."),
        f("start_time_seconds", "pg_postmaster_start_time_seconds", G, "When the server started (Unix seconds)."),
        f("oldest_xact_seconds", "pg_long_running_transactions_oldest_timestamp_seconds", G, "Age of the oldest open client transaction in seconds."),
        f("max_xid_age", "pg_database_wraparound_age_datfrozenxid", G, "Largest age(datfrozenxid) of any database (transactions)."),
    ],
};

pub const REPLICATION: View = View {
    sql: include_str!("../sql/replication.sql"),
    labels: &["application_name", "client_addr", "state", "sync_state"],
    families: &[
        f("pg_wal_lsn_diff", "pg_stat_replication_pg_wal_lsn_diff", G, "Bytes of WAL a standby has not replayed yet."),
        f("replay_lag_seconds", "pg_stat_replication_replay_lag_seconds", G, "A standby's replay lag as the primary sees it, in seconds."),
    ],
};

pub const ARCHIVER: View = View {
    sql: include_str!("../sql/archiver.sql"),
    labels: &[],
    families: &[
        f("archived_count", "pg_stat_archiver_archived_count", U, "WAL files archived (counter)."),
        f("failed_count", "pg_stat_archiver_failed_count", U, "Failed WAL archive attempts (counter)."),
        f("last_archive_age", "pg_stat_archiver_last_archive_age", G, "Seconds since the last WAL file was archived."),
    ],
};

pub const BGWRITER: View = View {
    sql: include_str!("../sql/bgwriter.sql"),
    labels: &[],
    families: &[
        f("checkpoints_timed", "pg_stat_bgwriter_checkpoints_timed_total", C, "Scheduled checkpoints."),
        f("checkpoints_req", "pg_stat_bgwriter_checkpoints_req_total", C, "Requested checkpoints."),
        f("checkpoint_write_time", "pg_stat_bgwriter_checkpoint_write_time_total", C, "Milliseconds spent writing checkpoint files."),
        f("checkpoint_sync_time", "pg_stat_bgwriter_checkpoint_sync_time_total", C, "Milliseconds spent syncing checkpoint files."),
        f("buffers_checkpoint", "pg_stat_bgwriter_buffers_checkpoint_total", C, "Buffers written during checkpoints."),
        f("buffers_clean", "pg_stat_bgwriter_buffers_clean_total", C, "Buffers written by the background writer."),
        f("maxwritten_clean", "pg_stat_bgwriter_maxwritten_clean_total", C, "Background writer stops for writing too many buffers."),
        f("buffers_backend", "pg_stat_bgwriter_buffers_backend_total", C, "Buffers written directly by backends."),
        f("buffers_backend_fsync", "pg_stat_bgwriter_buffers_backend_fsync_total", C, "Backends' own fsync calls."),
        f("buffers_alloc", "pg_stat_bgwriter_buffers_alloc_total", C, "Buffers allocated."),
    ],
};

pub const CHECKPOINTER: View = View {
    sql: include_str!("../sql/checkpointer.sql"),
    labels: &[],
    families: &[
        f("num_timed", "pg_stat_checkpointer_num_timed_total", C, "Scheduled checkpoints."),
        f("num_requested", "pg_stat_checkpointer_num_requested_total", C, "Requested checkpoints."),
        f("write_time", "pg_stat_checkpointer_write_time_total", C, "Milliseconds spent writing checkpoint files."),
        f("sync_time", "pg_stat_checkpointer_sync_time_total", C, "Milliseconds spent syncing checkpoint files."),
        f("buffers_written", "pg_stat_checkpointer_buffers_written_total", C, "Buffers written during checkpoints."),
        f("buffers_clean", "pg_stat_bgwriter_buffers_clean_total", C, "Buffers written by the background writer."),
        f("maxwritten_clean", "pg_stat_bgwriter_maxwritten_clean_total", C, "Background writer stops for writing too many buffers."),
        f("buffers_alloc", "pg_stat_bgwriter_buffers_alloc_total", C, "Buffers allocated."),
    ],
};

pub const DATABASE_SIZE: View = View {
    sql: include_str!("../sql/database_size.sql"),
    labels: &["datname"],
    families: &[f("size_bytes", "pg_database_size_bytes", G, "Disk space used by the database.")],
};

pub const USER_TABLES: View = View {
    sql: include_str!("../sql/user_tables.sql"),
    labels: &["datname", "schemaname", "relname"],
    families: &[
        f("seq_scan", "pg_stat_user_tables_seq_scan", U, "Sequential scans (counter)."),
        f("seq_tup_read", "pg_stat_user_tables_seq_tup_read", U, "Rows read by sequential scans (counter)."),
        f("idx_scan", "pg_stat_user_tables_idx_scan", U, "Index scans (counter)."),
        f("idx_tup_fetch", "pg_stat_user_tables_idx_tup_fetch", U, "Rows fetched by index scans (counter)."),
        f("n_tup_ins", "pg_stat_user_tables_n_tup_ins", U, "Rows inserted (counter)."),
        f("n_tup_upd", "pg_stat_user_tables_n_tup_upd", U, "Rows updated (counter)."),
        f("n_tup_del", "pg_stat_user_tables_n_tup_del", U, "Rows deleted (counter)."),
        f("n_tup_hot_upd", "pg_stat_user_tables_n_tup_hot_upd", U, "Rows HOT updated (counter)."),
        f("n_live_tup", "pg_stat_user_tables_n_live_tup", G, "Estimated live rows."),
        f("n_dead_tup", "pg_stat_user_tables_n_dead_tup", G, "Estimated dead rows."),
        f("n_mod_since_analyze", "pg_stat_user_tables_n_mod_since_analyze", G, "Rows changed since the last analyze."),
        f("last_vacuum", "pg_stat_user_tables_last_vacuum", G, "Last manual vacuum (Unix seconds, 0 never)."),
        f("last_autovacuum", "pg_stat_user_tables_last_autovacuum", G, "Last autovacuum (Unix seconds, 0 never)."),
        f("last_analyze", "pg_stat_user_tables_last_analyze", G, "Last manual analyze (Unix seconds, 0 never)."),
        f("last_autoanalyze", "pg_stat_user_tables_last_autoanalyze", G, "Last autoanalyze (Unix seconds, 0 never)."),
        f("vacuum_count", "pg_stat_user_tables_vacuum_count", U, "Manual vacuums (counter)."),
        f("autovacuum_count", "pg_stat_user_tables_autovacuum_count", U, "Autovacuums (counter)."),
        f("analyze_count", "pg_stat_user_tables_analyze_count", U, "Manual analyzes (counter)."),
        f("autoanalyze_count", "pg_stat_user_tables_autoanalyze_count", U, "Autoanalyzes (counter)."),
        f("index_size_bytes", "pg_stat_user_tables_index_size_bytes", G, "Size of the table's indexes."),
        f("table_size_bytes", "pg_stat_user_tables_table_size_bytes", G, "Size of the table (with TOAST)."),
    ],
};

pub const STATEMENTS: View = View {
    sql: include_str!("../sql/statements.sql"),
    labels: &["user", "datname", "queryid"],
    families: &[
        f("calls_total", "pg_stat_statements_calls_total", C, "Times the statement ran."),
        f("seconds_total", "pg_stat_statements_seconds_total", C, "Time spent executing the statement, in seconds."),
        f("rows_total", "pg_stat_statements_rows_total", C, "Rows retrieved or affected."),
        f("block_read_seconds_total", "pg_stat_statements_block_read_seconds_total", C, "Time spent reading blocks, in seconds."),
        f("block_write_seconds_total", "pg_stat_statements_block_write_seconds_total", C, "Time spent writing blocks, in seconds."),
    ],
};

/// Writes `rows` of `view` as its families (each announced once, even with no rows).
pub fn render(text: &mut Text, view: &View, rows: &[Row]) -> Result<(), db::Error> {
    let labels: Vec<Vec<String>> = rows
        .iter()
        .map(|row| view.labels.iter().map(|l| db::get::<Option<String>>(row, l).map(Option::unwrap_or_default)).collect())
        .collect::<Result<_, _>>()?;
    for family in view.families {
        text.family(family.name, family.kind, family.help);
        for (row, values) in rows.iter().zip(&labels) {
            let Some(value) = db::get::<Option<f64>>(row, family.column)? else { continue };
            let pairs: Vec<(&str, &str)> = view.labels.iter().copied().zip(values.iter().map(String::as_str)).collect();
            text.sample(family.name, &pairs, value);
        }
    }
    Ok(())
}

/// A `float8` column of `row`, `None` when NULL or missing.
pub fn number(row: &Row, column: &str) -> Option<f64> {
    row.try_get::<_, Option<f64>>(column).ok().flatten()
}
