-- Checkpoints and buffer writes, PostgreSQL 17 on (checkpoints moved to pg_stat_checkpointer;
-- backends' own writes are in pg_stat_io, not summed here).
SELECT c.num_timed::int8 AS timed, c.num_requested::int8 AS requested,
       c.buffers_written::int8 AS buffers_checkpoint, b.buffers_clean::int8 AS buffers_clean,
       NULL::int8 AS buffers_backend,
       (SELECT wal_bytes::float8 FROM pg_stat_wal) AS wal_bytes,
       (SELECT extract(epoch FROM now() - stats_reset)::float8 FROM pg_stat_wal) AS wal_seconds
FROM pg_stat_checkpointer c, pg_stat_bgwriter b
