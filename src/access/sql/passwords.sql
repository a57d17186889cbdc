-- Which roles have a password (superusers only may read pg_authid; never the hash itself).
SELECT rolname AS name, rolpassword IS NOT NULL AS password_set FROM pg_authid
