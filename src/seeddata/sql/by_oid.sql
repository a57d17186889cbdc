-- One relation by oid: its schema and name.
SELECT c.oid AS oid,
       n.nspname::text AS schema,
       c.relname::text AS name,
       c.relkind::text AS relkind
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = $1::oid
