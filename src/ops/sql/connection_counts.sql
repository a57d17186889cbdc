-- Client sessions by state, against the server's limits.
SELECT coalesce(a.state, 'unknown') AS state, count(*)::int8 AS sessions
FROM pg_stat_activity a
WHERE a.backend_type = 'client backend'
GROUP BY 1
ORDER BY 2 DESC, 1
