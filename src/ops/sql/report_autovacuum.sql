-- Autovacuum: on or off, its workers, and those waiting for a lock (with who blocks them).
SELECT current_setting('autovacuum') = 'on' AS enabled,
       current_setting('autovacuum_max_workers')::int8 AS max_workers,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker')::int8 AS running,
       coalesce((SELECT array_agg(a.pid ORDER BY a.pid) FROM pg_stat_activity a
                 WHERE a.backend_type = 'autovacuum worker' AND a.wait_event_type = 'Lock'), '{}') AS blocked_pids,
       coalesce((SELECT array_agg(DISTINCT b ORDER BY b) FROM pg_stat_activity a, unnest(pg_blocking_pids(a.pid)) b
                 WHERE a.backend_type = 'autovacuum worker'), '{}') AS blocker_pids,
       coalesce((SELECT array_agg(left(a.query, 200) ORDER BY a.pid) FROM pg_stat_activity a
                 WHERE a.backend_type = 'autovacuum worker'), '{}') AS working_on
