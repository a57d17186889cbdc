-- /stats/tables: the largest $1 tables of this database.
SELECT t.schemaname AS schema, t.relname AS name,
       pg_total_relation_size(t.relid)::int8 AS total_bytes,
       pg_table_size(t.relid)::int8 AS table_bytes,
       pg_indexes_size(t.relid)::int8 AS index_bytes,
       t.n_live_tup::int8 AS live_tuples, t.n_dead_tup::int8 AS dead_tuples,
       CASE WHEN t.n_live_tup + t.n_dead_tup > 0
            THEN round(100.0 * t.n_dead_tup / (t.n_live_tup + t.n_dead_tup), 2) END::float8 AS dead_pct,
       t.n_tup_ins::int8 AS inserted, t.n_tup_upd::int8 AS updated, t.n_tup_del::int8 AS deleted,
       t.n_tup_hot_upd::int8 AS hot_updated,
       t.seq_scan::int8 AS seq_scans, t.idx_scan::int8 AS index_scans,
       to_char(t.last_vacuum AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS last_vacuum,
       to_char(t.last_autovacuum AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS last_autovacuum,
       to_char(t.last_analyze AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS last_analyze,
       to_char(t.last_autoanalyze AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS last_autoanalyze
  FROM pg_stat_user_tables t
 ORDER BY pg_total_relation_size(t.relid) DESC, t.schemaname, t.relname
 LIMIT $1
