-- /stats/indexes: the largest $1 indexes of this database. "unused": never scanned since the
-- statistics were reset, and not enforcing a constraint.
SELECT s.schemaname AS schema, s.relname AS "table", s.indexrelname AS name,
       s.idx_scan::int8 AS scans, s.idx_tup_read::int8 AS tuples_read, s.idx_tup_fetch::int8 AS tuples_fetched,
       pg_relation_size(s.indexrelid)::int8 AS size_bytes,
       i.indisunique AS "unique", i.indisprimary AS "primary", i.indisvalid AS valid,
       (s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary
        AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)) AS unused
  FROM pg_stat_user_indexes s
  JOIN pg_index i ON i.indexrelid = s.indexrelid
 ORDER BY pg_relation_size(s.indexrelid) DESC, s.schemaname, s.indexrelname
 LIMIT $1
