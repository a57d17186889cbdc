-- Sessions by database and state, zero-filled (postgres_exporter's stat_activity collector).
WITH states(state) AS (
  VALUES ('active'), ('idle'), ('idle in transaction'), ('idle in transaction (aborted)'),
         ('fastpath function call'), ('disabled'))
SELECT d.datname, s.state,
       count(a.pid)::float8 AS count,
       coalesce(max(extract(epoch FROM clock_timestamp() - a.xact_start)), 0)::float8 AS max_tx_duration
  FROM pg_database d
 CROSS JOIN states s
  LEFT JOIN pg_stat_activity a ON a.datname = d.datname AND a.state = s.state
 WHERE d.datallowconn
 GROUP BY d.datname, s.state
