-- B-tree indexes whose estimated waste is at least $1 percent and 1 MB. The estimate is the
-- advisor's (advisor/sql/bloat.sql): expected size from the row count and key widths at a
-- 90 % fill, against the actual size.
WITH est AS (
  SELECT i.indexrelid, n.nspname AS schema, c.relname AS name, pg_relation_size(i.indexrelid) AS actual,
    ceil(greatest(ct.reltuples, 0) * (12 + coalesce((SELECT sum(coalesce(s.avg_width, 8)) FROM unnest(i.indkey::int2[]) k(attnum)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = ct.relname AND s.attname = a.attname), 8))
      / (current_setting('block_size')::int * 0.9)) * current_setting('block_size')::int + 2 * current_setting('block_size')::int AS expected
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class ct ON ct.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = c.relam
  WHERE am.amname = 'btree' AND i.indisvalid AND i.indexprs IS NULL
    AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dbagent') AND n.nspname NOT LIKE 'pg_toast%')
SELECT schema, name
FROM est
WHERE actual - expected >= greatest(actual * $1::float8 / 100.0, 1024 * 1024)
ORDER BY actual - expected DESC
