-- pg_stat_database, one row per database (postgres_exporter's stat_database collector).
SELECT datid::text AS datid, datname,
       numbackends::float8 AS numbackends, xact_commit::float8 AS xact_commit, xact_rollback::float8 AS xact_rollback,
       blks_read::float8 AS blks_read, blks_hit::float8 AS blks_hit, tup_returned::float8 AS tup_returned,
       tup_fetched::float8 AS tup_fetched, tup_inserted::float8 AS tup_inserted, tup_updated::float8 AS tup_updated,
       tup_deleted::float8 AS tup_deleted, conflicts::float8 AS conflicts, temp_files::float8 AS temp_files,
       temp_bytes::float8 AS temp_bytes, deadlocks::float8 AS deadlocks, blk_read_time::float8 AS blk_read_time,
       blk_write_time::float8 AS blk_write_time, extract(epoch FROM stats_reset)::float8 AS stats_reset,
       (datname = current_database()) AS current
  FROM pg_stat_database
 WHERE datname IS NOT NULL
