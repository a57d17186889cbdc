-- Every session of the server but the one asking, with what it waits on and who blocks it.
-- $1 text cut, $2 state, $3 database, $4 user, $5 seconds in the current state at least,
-- $6 application_name prefix (each NULL for no filter).
SELECT a.pid,
       a.datname AS database,
       a.usename AS "user",
       a.application_name AS application,
       a.client_addr::text AS client_addr,
       a.backend_type,
       a.state,
       a.wait_event_type,
       a.wait_event,
       extract(epoch FROM now() - a.backend_start)::float8 AS connected_seconds,
       extract(epoch FROM now() - a.xact_start)::float8 AS transaction_seconds,
       extract(epoch FROM now() - a.query_start)::float8 AS query_seconds,
       extract(epoch FROM now() - a.state_change)::float8 AS state_seconds,
       left(a.query, $1) AS query,
       length(a.query) > $1 AS query_truncated,
       pg_blocking_pids(a.pid) AS blocked_by,
       coalesce(r.rolsuper, false) AS superuser,
       a.pid = pg_backend_pid() AS this_session
FROM pg_stat_activity a
LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.pid <> pg_backend_pid()
  AND ($2::text IS NULL OR a.state = $2)
  AND ($3::text IS NULL OR a.datname = $3)
  AND ($4::text IS NULL OR a.usename = $4)
  AND ($5::float8 IS NULL OR extract(epoch FROM now() - a.state_change)::float8 >= $5::float8)
  AND ($6::text IS NULL OR a.application_name = $6)
ORDER BY a.state_change NULLS LAST, a.pid
