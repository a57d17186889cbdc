-- The alert engine's one read per evaluation: gauges now, and the counters whose change
-- since the last evaluation gives deadlocks per minute and the cache hit ratio.
SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::float8 * 100
           / current_setting('max_connections')::float8 AS connections_used_pct,
       (SELECT count(*) FROM pg_stat_activity
         WHERE state IN ('idle in transaction', 'idle in transaction (aborted)')
           AND state_change < clock_timestamp() - interval '60 seconds')::float8 AS idle_in_transaction_sessions,
       coalesce((SELECT extract(epoch FROM clock_timestamp() - min(xact_start)) FROM pg_stat_activity
                  WHERE xact_start IS NOT NULL AND backend_type = 'client backend' AND pid <> pg_backend_pid()), 0)::float8
           AS oldest_transaction_seconds,
       (SELECT max(age(datfrozenxid)) FROM pg_database)::float8 AS xid_age,
       (SELECT count(*) FROM pg_index WHERE NOT indisvalid)::float8 AS invalid_indexes,
       CASE WHEN current_setting('archive_mode') = 'off' THEN NULL
            ELSE (SELECT coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false)::int FROM pg_stat_archiver)
       END::float8 AS wal_archive_failing,
       d.deadlocks::float8 AS deadlocks,
       d.blks_hit::float8 AS blks_hit,
       d.blks_read::float8 AS blks_read
  FROM pg_stat_database d
 WHERE d.datname = current_database()
