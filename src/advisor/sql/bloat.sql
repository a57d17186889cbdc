-- B-tree indexes larger than their contents need (estimated from row count and key widths at a
-- 90 % fill); at least $2 percent and 1 MB of waste (the advisor: 30; the maintenance jobs:
-- their `bloat_pct`). $1: a table (to_regclass text) or NULL for all.
WITH est AS (
  SELECT i.indexrelid, i.indrelid, n.nspname AS schema, c.relname AS name, pg_relation_size(i.indexrelid) AS actual,
    ceil(greatest(ct.reltuples, 0) * (12 + coalesce((SELECT sum(coalesce(s.avg_width, 8)) FROM unnest(i.indkey::int2[]) k(attnum)
        JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
        LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = ct.relname AND s.attname = a.attname), 8))
      / (current_setting('block_size')::int * 0.9)) * current_setting('block_size')::int + 2 * current_setting('block_size')::int AS expected
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class ct ON ct.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_am am ON am.oid = c.relam
  WHERE am.amname = 'btree' AND i.indisvalid AND i.indexprs IS NULL
    AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dbagent') AND n.nspname NOT LIKE 'pg_toast%'
    AND ($1::text IS NULL OR i.indrelid = to_regclass($1)))
SELECT indexrelid::regclass::text AS index, indrelid::regclass::text AS "table", schema, name, actual AS bytes,
  format('about %s of %s is waste (estimated from row count and key widths)', pg_size_pretty((actual - expected)::bigint), pg_size_pretty(actual)) AS reason,
  format('REINDEX INDEX CONCURRENTLY %s;', indexrelid::regclass) AS fix
FROM est WHERE actual - expected >= greatest(actual * $2::float8 / 100.0, 1024 * 1024) ORDER BY actual - expected DESC
