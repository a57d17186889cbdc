-- /stats/slow-queries: this database's statements from pg_stat_statements whose mean time is
-- at least $1 ms, the $2 first by the chosen order (ORDER_BY is replaced by a fixed column).
SELECT s.queryid::text AS queryid, r.rolname AS "user", s.query,
       s.calls::int8 AS calls,
       s.total_exec_time::float8 AS total_time_ms, s.mean_exec_time::float8 AS mean_time_ms,
       s.stddev_exec_time::float8 AS stddev_time_ms, s.min_exec_time::float8 AS min_time_ms,
       s.max_exec_time::float8 AS max_time_ms, s.rows::int8 AS "rows",
       s.shared_blks_hit::int8 AS shared_blks_hit, s.shared_blks_read::int8 AS shared_blks_read,
       s.temp_blks_read::int8 AS temp_blks_read, s.temp_blks_written::int8 AS temp_blks_written,
       CASE WHEN s.shared_blks_hit + s.shared_blks_read > 0
            THEN s.shared_blks_hit::float8 / (s.shared_blks_hit + s.shared_blks_read) END AS cache_hit_ratio
  FROM pg_stat_statements s
  JOIN pg_roles r ON r.oid = s.userid
 WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND s.mean_exec_time >= $1
 ORDER BY ORDER_BY DESC
 LIMIT $2
