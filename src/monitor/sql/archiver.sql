-- WAL archiving (postgres_exporter's stat_archiver collector).
SELECT archived_count::float8 AS archived_count, failed_count::float8 AS failed_count,
       coalesce(extract(epoch FROM now() - last_archived_time), 0)::float8 AS last_archive_age
  FROM pg_stat_archiver
