-- Roles with their attributes and memberships. $1: include pg_* roles; $2: one role or NULL.
SELECT r.rolname AS name,
       r.rolsuper AS superuser,
       r.rolcanlogin AS login,
       r.rolinherit AS inherit,
       r.rolcreatedb AS createdb,
       r.rolcreaterole AS createrole,
       r.rolreplication AS replication,
       r.rolbypassrls AS bypassrls,
       r.rolconnlimit AS connection_limit,
       CASE WHEN isfinite(r.rolvaliduntil) THEN r.rolvaliduntil END AS valid_until,
       ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid ORDER BY 1) AS member_of
FROM pg_roles r
WHERE ($1 OR r.rolname !~ '^pg_')
  AND ($2::text IS NULL OR r.rolname = $2)
ORDER BY r.rolname
