-- The table (or materialized view) $1 names, as `to_regclass` reads it.
SELECT n.nspname AS schema,
       c.relname AS name,
       pg_table_size(c.oid)::int8 AS bytes,
       s.n_dead_tup::int8 AS dead_tuples
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
WHERE c.oid = to_regclass($1)
  AND c.relkind IN ('r', 'm', 'p')
