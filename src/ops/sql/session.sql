-- One session, as the signalling checks need it.
SELECT a.pid,
       a.usename AS "user",
       a.application_name AS application,
       a.backend_type,
       a.state,
       extract(epoch FROM now() - a.state_change)::float8 AS state_seconds,
       coalesce(r.rolsuper, false) AS superuser,
       a.pid = pg_backend_pid() AS this_session
FROM pg_stat_activity a
LEFT JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.pid = $1
