-- Tables (other than itself) with a foreign key to table $1 (oid): TRUNCATE refuses them.
SELECT DISTINCT n.nspname::text || '.' || c.relname::text AS child
  FROM pg_constraint con
  JOIN pg_class c ON c.oid = con.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE con.confrelid = $1::oid AND con.contype = 'f' AND con.conrelid <> $1::oid
 ORDER BY 1
