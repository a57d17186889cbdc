-- One relation by a user-written name (PostgreSQL parses quotes and the schema) and its kind.
SELECT c.oid AS oid,
       n.nspname::text AS schema,
       c.relname::text AS name,
       c.relkind::text AS relkind
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass($1::text)
