-- Settings the community alert rules divide by, replication role and lag, start time.
SELECT current_setting('max_connections')::float8 AS max_connections,
       current_setting('superuser_reserved_connections')::float8 AS superuser_reserved_connections,
       current_setting('max_locks_per_transaction')::float8 AS max_locks_per_transaction,
       current_setting('max_prepared_transactions')::float8 AS max_prepared_transactions,
       current_setting('max_wal_senders')::float8 AS max_wal_senders,
       pg_is_in_recovery()::int::float8 AS is_replica,
       CASE WHEN NOT pg_is_in_recovery() THEN 0
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE greatest(0, extract(epoch FROM now() - pg_last_xact_replay_timestamp())) END::float8 AS lag_seconds,
       extract(epoch FROM pg_postmaster_start_time())::float8 AS start_time_seconds,
       coalesce(extract(epoch FROM clock_timestamp() - (SELECT min(xact_start) FROM pg_stat_activity
                                                          WHERE xact_start IS NOT NULL AND backend_type = 'client backend')), 0)::float8 AS oldest_xact_seconds,
       (SELECT max(age(datfrozenxid)) FROM pg_database)::float8 AS max_xid_age
