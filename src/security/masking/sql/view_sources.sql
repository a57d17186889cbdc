-- The relations each user view or materialized view reads (its _RETURN rule's dependencies).
SELECT DISTINCT r.ev_class::int8 AS view, d.refobjid::int8 AS relid
FROM pg_rewrite r
JOIN pg_class v ON v.oid = r.ev_class AND v.relkind IN ('v', 'm')
JOIN pg_namespace n ON n.oid = v.relnamespace
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid AND d.refclassid = 'pg_class'::regclass
WHERE d.refobjid <> r.ev_class
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
