-- Maintenance running on the server now, from the progress views: VACUUM, VACUUM FULL and
-- CLUSTER, ANALYZE, CREATE INDEX and REINDEX. `done` and `total` are blocks; `application`
-- tells dbagent's own (`dbagent maintenance`, `dbagent indexes`) from others'.
SELECT 'VACUUM' AS command, p.pid, p.datname AS database, p.relid::regclass::text AS relation, p.phase,
       p.heap_blks_scanned::int8 AS done, p.heap_blks_total::int8 AS total,
       extract(epoch FROM now() - a.query_start)::float8 AS seconds, a.application_name AS application
FROM pg_stat_progress_vacuum p LEFT JOIN pg_stat_activity a ON a.pid = p.pid
UNION ALL
SELECT p.command, p.pid, p.datname, p.relid::regclass::text, p.phase,
       p.heap_blks_scanned::int8, p.heap_blks_total::int8,
       extract(epoch FROM now() - a.query_start)::float8, a.application_name
FROM pg_stat_progress_cluster p LEFT JOIN pg_stat_activity a ON a.pid = p.pid
UNION ALL
SELECT 'ANALYZE', p.pid, p.datname, p.relid::regclass::text, p.phase,
       p.sample_blks_scanned::int8, p.sample_blks_total::int8,
       extract(epoch FROM now() - a.query_start)::float8, a.application_name
FROM pg_stat_progress_analyze p LEFT JOIN pg_stat_activity a ON a.pid = p.pid
UNION ALL
SELECT p.command, p.pid, p.datname, coalesce(p.index_relid::regclass::text, p.relid::regclass::text), p.phase,
       p.blocks_done::int8, p.blocks_total::int8,
       extract(epoch FROM now() - a.query_start)::float8, a.application_name
FROM pg_stat_progress_create_index p LEFT JOIN pg_stat_activity a ON a.pid = p.pid
ORDER BY 2
