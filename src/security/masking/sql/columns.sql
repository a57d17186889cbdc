-- The columns of user relations (tables, views, materialized views, foreign tables) with
-- what the rules select by: names, type, comment and security labels.
SELECT c.oid::int8 AS relid,
       n.nspname::text AS schema,
       c.relname::text AS relation,
       c.relkind::text AS relkind,
       a.attnum::int4 AS attnum,
       a.attname::text AS column_name,
       format_type(a.atttypid, NULL) AS type_name,
       col_description(c.oid, a.attnum) AS comment,
       coalesce(l.providers, '{}') AS label_providers,
       coalesce(l.labels, '{}') AS labels
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN LATERAL (
    SELECT array_agg(s.provider ORDER BY s.provider) AS providers, array_agg(s.label ORDER BY s.provider) AS labels
    FROM pg_seclabel s
    WHERE s.classoid = 'pg_class'::regclass AND s.objoid = c.oid AND s.objsubid = a.attnum
) l ON true
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'
ORDER BY c.oid, a.attnum
