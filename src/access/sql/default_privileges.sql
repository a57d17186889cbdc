-- ALTER DEFAULT PRIVILEGES entries: what objects `creator` makes from now on grant to
-- `grantee`. $1: one grantee or NULL ('PUBLIC'); $2: one schema or NULL.
SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END AS grantee,
       pg_get_userbyid(d.defaclrole)::text AS creator,
       n.nspname::text AS schema,
       CASE d.defaclobjtype WHEN 'r' THEN 'tables' WHEN 'S' THEN 'sequences' WHEN 'f' THEN 'functions'
                            WHEN 'T' THEN 'types' ELSE 'schemas' END AS objects,
       array_agg(a.privilege_type::text ORDER BY a.privilege_type) AS privileges
FROM pg_default_acl d
LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace,
     aclexplode(d.defaclacl) a
WHERE ($1::text IS NULL OR CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END = $1)
  AND ($2::text IS NULL OR n.nspname = $2)
GROUP BY 1, 2, 3, 4
ORDER BY 1, 3 NULLS FIRST, 4, 2
