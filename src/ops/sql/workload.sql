-- What the server has been doing, from the statistics views all versions have.
SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND state = 'active')::int8 AS active_sessions,
       (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int8 AS client_sessions,
       (SELECT count(DISTINCT client_addr::text || ':' || coalesce(client_hostname, '')) FROM pg_stat_activity
         WHERE application_name = 'dbagent')::int8 AS agents,
       coalesce(sum(d.temp_files), 0)::int8 AS temp_files,
       coalesce(sum(d.temp_bytes), 0)::int8 AS temp_bytes,
       (sum(d.blks_hit)::float8 / nullif(sum(d.blks_hit) + sum(d.blks_read), 0))::float8 AS cache_hit_ratio,
       current_setting('superuser_reserved_connections')::int8 AS superuser_reserved
FROM pg_stat_database d
WHERE d.datname IS NOT NULL
