-- Indexes whose key columns are a prefix of another's on the same table (same method, expressions
-- and predicate); an identical pair once. $1: a table (to_regclass text) or NULL for all.
SELECT a.indexrelid::regclass::text AS index, a.indrelid::regclass::text AS "table", pg_relation_size(a.indexrelid) AS bytes,
  format('its columns are a prefix of %s (%s), which serves the same lookups', b.indexrelid::regclass, pg_get_indexdef(b.indexrelid)) AS reason,
  format('DROP INDEX CONCURRENTLY %s;', a.indexrelid::regclass) AS fix
FROM pg_index a JOIN pg_index b ON a.indrelid = b.indrelid AND a.indexrelid <> b.indexrelid
JOIN pg_class ca ON ca.oid = a.indexrelid JOIN pg_class cb ON cb.oid = b.indexrelid
JOIN pg_namespace n ON n.oid = ca.relnamespace
WHERE ca.relam = cb.relam AND a.indnkeyatts <= b.indnkeyatts AND a.indisvalid AND b.indisvalid
  AND (a.indkey::int2[])[0:a.indnkeyatts - 1] = (b.indkey::int2[])[0:a.indnkeyatts - 1]
  AND (a.indclass::oid[])[0:a.indnkeyatts - 1] = (b.indclass::oid[])[0:a.indnkeyatts - 1]
  AND coalesce(pg_get_expr(a.indpred, a.indrelid), '') = coalesce(pg_get_expr(b.indpred, b.indrelid), '')
  AND coalesce(pg_get_expr(a.indexprs, a.indrelid), '') = coalesce(pg_get_expr(b.indexprs, b.indrelid), '')
  AND NOT a.indisunique AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = a.indexrelid)
  AND (a.indnkeyatts < b.indnkeyatts OR b.indisunique OR a.indexrelid > b.indexrelid)
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dbagent') AND n.nspname NOT LIKE 'pg_toast%'
  AND ($1::text IS NULL OR a.indrelid = to_regclass($1))
ORDER BY 1
