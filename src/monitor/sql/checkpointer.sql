-- PostgreSQL 17 moved checkpoints to pg_stat_checkpointer (postgres_exporter's stat_checkpointer).
SELECT c.num_timed::float8 AS num_timed, c.num_requested::float8 AS num_requested,
       c.write_time::float8 AS write_time, c.sync_time::float8 AS sync_time,
       c.buffers_written::float8 AS buffers_written, b.buffers_clean::float8 AS buffers_clean,
       b.maxwritten_clean::float8 AS maxwritten_clean, b.buffers_alloc::float8 AS buffers_alloc
  FROM pg_stat_checkpointer c, pg_stat_bgwriter b
