-- Indexes left invalid (a failed CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY).
SELECT n.nspname AS schema, c.relname AS name, t.relname AS table_name, pg_relation_size(c.oid)::int8 AS bytes
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE NOT i.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2
