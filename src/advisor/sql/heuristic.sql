-- Index candidates from the catalog alone (no workload to validate against): foreign-key
-- columns no index starts with, and columns whose statistics (pg_stats, after ANALYZE) say an
-- equality filter keeps few rows. $1: a table (to_regclass text) or NULL for every user table.
WITH t AS (
  SELECT c.oid, n.nspname AS schema, c.relname AS name, greatest(c.reltuples, 0)::float8 AS rows,
         coalesce(s.seq_scan, 0)::int8 AS seq_scan, coalesce(s.idx_scan, 0)::int8 AS idx_scan
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
  WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dbagent')
    AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
    AND ($1::text IS NULL OR c.oid = to_regclass($1))
),
fk AS (
  SELECT t.oid, a.attnum, con.conname::text AS fk_name, con.confrelid::regclass::text AS refers
  FROM t JOIN pg_constraint con ON con.conrelid = t.oid AND con.contype = 'f'
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = con.conkey[1]
  WHERE NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = t.oid AND i.indkey[0] = con.conkey[1])
),
col AS (
  SELECT t.*, a.attnum, a.attname::text AS "column", format_type(a.atttypid, a.atttypmod) AS type,
         st.n_distinct::float8 AS n_distinct, st.correlation::float8 AS correlation,
         ty.typcategory IN ('N', 'S', 'D', 'E', 'I') OR a.atttypid = 'uuid'::regtype AS btree_type
  FROM t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_type ty ON ty.oid = a.atttypid
  LEFT JOIN pg_stats st ON st.schemaname = t.schema AND st.tablename = t.name AND st.attname = a.attname
  WHERE NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = t.oid AND i.indkey[0] = a.attnum)
)
SELECT col.schema, col.name AS "table", col."column", col.type, col.rows, col.seq_scan, col.idx_scan,
       CASE WHEN col.n_distinct < 0 THEN -col.n_distinct * col.rows ELSE col.n_distinct END AS distinct_values,
       col.correlation, col.btree_type, fk.fk_name, fk.refers
FROM col LEFT JOIN fk ON fk.oid = col.oid AND fk.attnum = col.attnum
WHERE fk.fk_name IS NOT NULL OR (col.btree_type AND col.n_distinct IS NOT NULL)
ORDER BY col.schema, col.name, col.attnum
