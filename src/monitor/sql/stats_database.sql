-- /stats/database: this database's counters and gauges.
SELECT d.datname,
       s.numbackends::int8 AS backends,
       current_setting('max_connections')::int8 AS max_connections,
       current_setting('superuser_reserved_connections')::int8 AS reserved_connections,
       (s.xact_commit + s.xact_rollback)::float8 AS transactions,
       s.xact_rollback::float8 AS rollbacks,
       s.blks_hit::float8 AS blks_hit, s.blks_read::float8 AS blks_read,
       s.deadlocks::int8 AS deadlocks, s.temp_files::int8 AS temp_files, s.temp_bytes::int8 AS temp_bytes,
       s.conflicts::int8 AS conflicts,
       pg_database_size(d.oid)::int8 AS size_bytes,
       (SELECT extract(epoch FROM clock_timestamp() - min(a.xact_start))
          FROM pg_stat_activity a
         WHERE a.datname = d.datname AND a.xact_start IS NOT NULL AND a.pid <> pg_backend_pid())::float8 AS oldest_transaction_seconds,
       age(d.datfrozenxid)::int8 AS xid_age,
       to_char(s.stats_reset AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS stats_reset,
       pg_is_in_recovery() AS in_recovery
  FROM pg_database d
  JOIN pg_stat_database s ON s.datid = d.oid
 WHERE d.datname = current_database()
