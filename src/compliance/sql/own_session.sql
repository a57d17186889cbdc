-- The session running this report: TLS or not, superuser or not, and where it connected.
SELECT coalesce((SELECT s.ssl FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()), false) AS ssl,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       current_user::text AS login,
       current_database()::text AS database,
       current_setting('server_version') AS server_version,
       inet_client_addr() IS NULL OR host(inet_client_addr()) IN ('127.0.0.1', '::1') AS local
