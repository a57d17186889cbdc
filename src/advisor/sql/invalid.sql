-- Indexes left invalid by a failed CREATE INDEX CONCURRENTLY; $1: a table (to_regclass text) or NULL for all.
SELECT i.indexrelid::regclass::text AS index, i.indrelid::regclass::text AS "table", pg_relation_size(i.indexrelid) AS bytes,
  'invalid (a failed concurrent build): maintained on every write, used by no query' AS reason,
  format('REINDEX INDEX CONCURRENTLY %s;  -- or DROP INDEX CONCURRENTLY %s;', i.indexrelid::regclass, i.indexrelid::regclass) AS fix
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dbagent') AND n.nspname NOT LIKE 'pg_toast%'
  AND ($1::text IS NULL OR i.indrelid = to_regclass($1))
ORDER BY 1
