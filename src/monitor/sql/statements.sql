-- The $1 statements with the most execution time (postgres_exporter's stat_statements, by
-- queryid, never the text). Top-level and nested rows of one query are added up so each
-- (user, datname, queryid) is one series.
SELECT r.rolname AS "user", d.datname, s.queryid::text AS queryid,
       sum(s.calls)::float8 AS calls_total,
       (sum(s.total_exec_time) / 1000)::float8 AS seconds_total,
       sum(s.rows)::float8 AS rows_total,
       (sum(s.blk_read_time) / 1000)::float8 AS block_read_seconds_total,
       (sum(s.blk_write_time) / 1000)::float8 AS block_write_seconds_total
  FROM pg_stat_statements(false) s
  JOIN pg_roles r ON r.oid = s.userid
  JOIN pg_database d ON d.oid = s.dbid
 WHERE s.queryid IS NOT NULL
 GROUP BY r.rolname, d.datname, s.queryid
 ORDER BY sum(s.total_exec_time) DESC
 LIMIT $1
