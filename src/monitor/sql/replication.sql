-- Standbys as the primary sees them (postgres_exporter's stat_replication collector).
SELECT application_name, coalesce(host(client_addr), 'local') AS client_addr, state, sync_state,
       (CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) END)::float8 AS pg_wal_lsn_diff,
       extract(epoch FROM replay_lag)::float8 AS replay_lag_seconds
  FROM pg_stat_replication
