-- Tables whose dead rows reach $1 of all rows and at least $2 rows, the most dead first.
SELECT n.nspname AS schema, c.relname AS name
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE s.n_dead_tup >= $2::int8
  AND s.n_dead_tup >= $1::float8 * (s.n_live_tup + s.n_dead_tup)
  AND n.nspname <> 'dbagent'
ORDER BY s.n_dead_tup DESC
