-- Every role but PostgreSQL's predefined ones, with what the checks ask of it.
SELECT r.rolname::text AS name, r.oid = 10 AS bootstrap, r.rolsuper AS superuser, r.rolcanlogin AS login,
       r.rolcreaterole AS createrole, r.rolreplication AS replication, r.rolbypassrls AS bypassrls,
       r.rolconnlimit AS connection_limit, (r.rolvaliduntil IS NOT NULL AND isfinite(r.rolvaliduntil)) AS expires,
       ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
             WHERE m.member = r.oid AND g.rolname IN ('pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files')
             ORDER BY 1) AS server_access
FROM pg_roles r
WHERE r.rolname !~ '^pg_'
ORDER BY 1
