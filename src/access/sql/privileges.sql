-- Privileges on schemas, tables and sequences of this database (the owner's implicit ones
-- included through acldefault), grouped per grantee and object. $1: one grantee or NULL
-- ('PUBLIC' for grants to everyone); $2: one schema or NULL; $3: one object name or NULL.
WITH objects AS (
    SELECT 'schema'::text AS kind, n.nspname::text AS schema, NULL::text AS name,
           coalesce(n.nspacl, acldefault('n', n.nspowner)) AS acl
    FROM pg_namespace n
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
    UNION ALL
    SELECT CASE WHEN c.relkind = 'S' THEN 'sequence' ELSE 'table' END, n.nspname::text, c.relname::text,
           coalesce(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'
), exploded AS (
    SELECT o.kind, o.schema, o.name, a.privilege_type, a.is_grantable,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END AS grantee
    FROM objects o, aclexplode(o.acl) a
)
SELECT grantee, kind, schema, name,
       array_agg(privilege_type::text ORDER BY privilege_type) AS privileges,
       array_agg(privilege_type::text ORDER BY privilege_type) FILTER (WHERE is_grantable) AS grantable
FROM exploded
WHERE ($1::text IS NULL OR grantee = $1)
  AND ($2::text IS NULL OR schema = $2)
  AND ($3::text IS NULL OR name = $3)
GROUP BY grantee, kind, schema, name
ORDER BY grantee, schema, kind, name NULLS FIRST
