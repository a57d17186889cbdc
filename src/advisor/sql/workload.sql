-- The most expensive reads recorded for this database (pg_stat_statements is cluster-wide:
-- dbid keeps other databases' statements out). $1: how many.
SELECT queryid, query, calls, total_exec_time::float8 AS total_ms
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query ~* '^\s*(select|with)\M'
  AND calls > 0
ORDER BY total_exec_time DESC
LIMIT $1
