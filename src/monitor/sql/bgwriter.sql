-- The background writer and checkpoints up to PostgreSQL 16 (postgres_exporter's stat_bgwriter).
SELECT checkpoints_timed::float8 AS checkpoints_timed, checkpoints_req::float8 AS checkpoints_req,
       checkpoint_write_time::float8 AS checkpoint_write_time, checkpoint_sync_time::float8 AS checkpoint_sync_time,
       buffers_checkpoint::float8 AS buffers_checkpoint, buffers_clean::float8 AS buffers_clean,
       maxwritten_clean::float8 AS maxwritten_clean, buffers_backend::float8 AS buffers_backend,
       buffers_backend_fsync::float8 AS buffers_backend_fsync, buffers_alloc::float8 AS buffers_alloc
  FROM pg_stat_bgwriter
