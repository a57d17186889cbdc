-- Untrusted procedural languages (beyond C and internal), with the non-superusers that may
-- use them ('PUBLIC' for everyone).
SELECT l.lanname::text AS name,
       ARRAY(SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END
             FROM aclexplode(l.lanacl) a LEFT JOIN pg_roles g ON g.oid = a.grantee
             WHERE a.privilege_type = 'USAGE' AND (a.grantee = 0 OR NOT g.rolsuper)
             ORDER BY 1) AS users
FROM pg_language l
WHERE NOT l.lanpltrusted AND l.lanname NOT IN ('c', 'internal')
ORDER BY 1
