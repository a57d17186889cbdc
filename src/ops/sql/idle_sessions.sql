-- Client sessions idle in one of $1 states for at least $2 seconds, optionally of user $3,
-- application $4, database $5; the oldest first.
SELECT a.pid,
       a.datname AS database,
       a.usename AS "user",
       a.application_name AS application,
       a.backend_type,
       a.state,
       extract(epoch FROM now() - a.state_change)::float8 AS state_seconds,
       coalesce(r.rolsuper, false) AS superuser,
       a.pid = pg_backend_pid() AS this_session
FROM pg_stat_activity a
LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.backend_type = 'client backend'
  AND a.state = ANY($1)
  AND extract(epoch FROM now() - a.state_change)::float8 >= $2::float8
  AND ($3::text IS NULL OR a.usename = $3)
  AND ($4::text IS NULL OR a.application_name = $4)
  AND ($5::text IS NULL OR a.datname = $5)
ORDER BY a.state_change, a.pid
