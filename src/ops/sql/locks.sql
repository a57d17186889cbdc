-- Sessions waiting on a lock and the sessions they wait for, with the lock each waits on.
-- $1 text cut.
WITH waiting AS (
    SELECT a.pid, pg_blocking_pids(a.pid) AS blocked_by
    FROM pg_stat_activity a
    WHERE a.wait_event_type = 'Lock'
), involved AS (
    SELECT pid FROM waiting
    UNION
    SELECT unnest(blocked_by) FROM waiting
)
SELECT a.pid,
       a.datname AS database,
       a.usename AS "user",
       a.application_name AS application,
       a.state,
       a.wait_event_type,
       a.wait_event,
       extract(epoch FROM now() - a.xact_start)::float8 AS transaction_seconds,
       extract(epoch FROM now() - a.query_start)::float8 AS query_seconds,
       left(a.query, $1) AS query,
       coalesce(w.blocked_by, '{}'::int4[]) AS blocked_by,
       l.mode AS waiting_for_mode,
       l.locktype AS waiting_for_locktype,
       l.relation::regclass::text AS waiting_for_relation,
       extract(epoch FROM now() - l.waitstart)::float8 AS waiting_seconds
FROM involved i
JOIN pg_stat_activity a ON a.pid = i.pid
LEFT JOIN waiting w ON w.pid = a.pid
LEFT JOIN LATERAL (
    SELECT l.mode, l.locktype, l.relation, l.waitstart
    FROM pg_locks l
    WHERE l.pid = a.pid AND NOT l.granted
    LIMIT 1
) l ON true
ORDER BY a.pid
