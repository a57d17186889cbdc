-- Checkpoints and buffer writes, PostgreSQL 16 and before (pg_stat_bgwriter has them all).
SELECT checkpoints_timed::int8 AS timed, checkpoints_req::int8 AS requested,
       buffers_checkpoint::int8 AS buffers_checkpoint, buffers_clean::int8 AS buffers_clean,
       buffers_backend::int8 AS buffers_backend,
       (SELECT wal_bytes::float8 FROM pg_stat_wal) AS wal_bytes,
       (SELECT extract(epoch FROM now() - stats_reset)::float8 FROM pg_stat_wal) AS wal_seconds
FROM pg_stat_bgwriter
