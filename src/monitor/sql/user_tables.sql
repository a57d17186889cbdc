-- The largest $1 tables of this database (postgres_exporter's stat_user_tables, bounded).
SELECT current_database() AS datname, t.schemaname, t.relname,
       t.seq_scan::float8 AS seq_scan, t.seq_tup_read::float8 AS seq_tup_read,
       t.idx_scan::float8 AS idx_scan, t.idx_tup_fetch::float8 AS idx_tup_fetch,
       t.n_tup_ins::float8 AS n_tup_ins, t.n_tup_upd::float8 AS n_tup_upd, t.n_tup_del::float8 AS n_tup_del,
       t.n_tup_hot_upd::float8 AS n_tup_hot_upd, t.n_live_tup::float8 AS n_live_tup,
       t.n_dead_tup::float8 AS n_dead_tup, t.n_mod_since_analyze::float8 AS n_mod_since_analyze,
       coalesce(extract(epoch FROM t.last_vacuum), 0)::float8 AS last_vacuum,
       coalesce(extract(epoch FROM t.last_autovacuum), 0)::float8 AS last_autovacuum,
       coalesce(extract(epoch FROM t.last_analyze), 0)::float8 AS last_analyze,
       coalesce(extract(epoch FROM t.last_autoanalyze), 0)::float8 AS last_autoanalyze,
       t.vacuum_count::float8 AS vacuum_count, t.autovacuum_count::float8 AS autovacuum_count,
       t.analyze_count::float8 AS analyze_count, t.autoanalyze_count::float8 AS autoanalyze_count,
       pg_indexes_size(t.relid)::float8 AS index_size_bytes, pg_table_size(t.relid)::float8 AS table_size_bytes
  FROM pg_stat_user_tables t
 ORDER BY pg_total_relation_size(t.relid) DESC, t.schemaname, t.relname
 LIMIT $1
