-- Tables changed by at least $1 of their rows since their last analyze, or never analysed.
SELECT n.nspname AS schema, c.relname AS name
FROM pg_stat_user_tables s
JOIN pg_class c ON c.oid = s.relid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname <> 'dbagent'
  AND ((s.last_analyze IS NULL AND s.last_autoanalyze IS NULL AND s.n_live_tup > 0)
       OR s.n_mod_since_analyze > greatest($1::float8 * greatest(c.reltuples, 0), 50))
ORDER BY s.n_mod_since_analyze DESC
