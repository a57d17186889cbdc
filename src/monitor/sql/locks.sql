-- Locks by database and mode, zero-filled (postgres_exporter's locks collector).
WITH modes(mode) AS (
  VALUES ('accesssharelock'), ('rowsharelock'), ('rowexclusivelock'), ('shareupdateexclusivelock'),
         ('sharelock'), ('sharerowexclusivelock'), ('exclusivelock'), ('accessexclusivelock'), ('sireadlock'))
SELECT d.datname, m.mode, count(l.locktype)::float8 AS count
  FROM pg_database d
 CROSS JOIN modes m
  LEFT JOIN pg_locks l ON l.database = d.oid AND lower(l.mode) = m.mode
 WHERE d.datallowconn
 GROUP BY d.datname, m.mode
