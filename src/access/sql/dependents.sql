-- What a role owns or holds privileges on (pg_shdepend): described in this database and the
-- shared catalogs; only counted, by database, elsewhere. $1: the role.
SELECT d.dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database())) AS here,
       coalesce(db.datname, '')::text AS database,
       CASE d.deptype WHEN 'o' THEN 'owner' WHEN 'a' THEN 'privileges' WHEN 'r' THEN 'policy' ELSE 'other' END AS dependency,
       CASE WHEN d.dbid IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
            THEN pg_describe_object(d.classid, d.objid, d.objsubid) ELSE '' END AS object
FROM pg_shdepend d
JOIN pg_roles r ON r.oid = d.refobjid
LEFT JOIN pg_database db ON db.oid = d.dbid
WHERE d.refclassid = 'pg_authid'::regclass AND r.rolname = $1 AND d.deptype IN ('o', 'a', 'r', 'i')
ORDER BY 1 DESC, 2, 4
