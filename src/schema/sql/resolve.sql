-- One relation by a user-written name; PostgreSQL parses the name (quotes, schema).
SELECT c.oid AS oid,
       n.nspname::text AS schema,
       c.relname::text AS name,
       CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view'
                      WHEN 'm' THEN 'materialized view' WHEN 'f' THEN 'foreign table' END AS kind,
       CASE WHEN c.relkind = 'p' THEN
              (SELECT sum(GREATEST(p.reltuples, 0))::bigint FROM pg_partition_tree(c.oid) t JOIN pg_class p ON p.oid = t.relid WHERE t.isleaf)
            WHEN c.reltuples < 0 OR c.relkind = 'v' THEN NULL
            ELSE c.reltuples::bigint END AS row_estimate,
       CASE WHEN c.relkind = 'p' THEN
              (SELECT COALESCE(sum(pg_total_relation_size(t.relid)), 0)::bigint FROM pg_partition_tree(c.oid) t)
            ELSE pg_total_relation_size(c.oid) END AS total_bytes,
       pg_relation_size(c.oid) AS table_bytes,
       pg_indexes_size(c.oid) AS index_bytes,
       c.relispartition AS is_partition,
       obj_description(c.oid, 'pg_class') AS comment
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass($1::text)
   AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
