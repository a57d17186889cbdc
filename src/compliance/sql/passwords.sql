-- Which roles have a password, and which an MD5 hash (superusers only; never the hash).
SELECT rolname::text AS name, rolpassword IS NOT NULL AS password_set, coalesce(rolpassword LIKE 'md5%', false) AS md5
FROM pg_authid WHERE rolname !~ '^pg_'
