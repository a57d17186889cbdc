-- /stats/activity: the $1 oldest open transactions in this database and who blocks them.
SELECT pid, coalesce(datname, '') AS database, coalesce(usename, '') AS "user",
       coalesce(application_name, '') AS application_name, host(client_addr) AS client_addr,
       coalesce(state, '') AS state, wait_event_type, wait_event,
       extract(epoch FROM clock_timestamp() - xact_start)::float8 AS transaction_seconds,
       extract(epoch FROM clock_timestamp() - query_start)::float8 AS query_seconds,
       left(query, 1000) AS query,
       pg_blocking_pids(pid) AS blocked_by
  FROM pg_stat_activity
 WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid()
   AND backend_type = 'client backend'
 ORDER BY xact_start
 LIMIT $1
