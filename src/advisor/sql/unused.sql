-- Indexes never scanned since statistics were reset, that enforce nothing; $1: a table (to_regclass text) or NULL for all.
SELECT i.indexrelid::regclass::text AS index, i.indrelid::regclass::text AS "table", pg_relation_size(i.indexrelid) AS bytes,
  format('never used for a scan since statistics were reset (%s)',
         coalesce((SELECT stats_reset::text FROM pg_stat_database WHERE datname = current_database()), 'never reset')) AS reason,
  format('DROP INDEX CONCURRENTLY %s;', i.indexrelid::regclass) AS fix
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_stat_all_indexes s ON s.indexrelid = i.indexrelid
WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid
  AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dbagent') AND n.nspname NOT LIKE 'pg_toast%'
  AND ($1::text IS NULL OR i.indrelid = to_regclass($1))
ORDER BY pg_relation_size(i.indexrelid) DESC
