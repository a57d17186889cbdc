-- Every user table's upkeep: dead rows, the bloat estimate, last (auto)vacuum and analyze,
-- changes since the last analyze, freeze ages, persistence.
--
-- The bloat estimate is ioguix's table bloat query (github.com/ioguix/pgsql-bloat-estimation,
-- table/table_bloat.sql, BSD licence), itself from the check_postgres / pgexperts estimate:
-- the expected pages from the row count and the average row width in pg_stats (header,
-- null bitmap and alignment included) at the table's fillfactor, against the pages the table
-- has. An estimate: `bloat_estimable` is false when pg_stats lacks a column (never analysed)
-- or a `name` column (whose stats width is wrong) makes it unreliable.
WITH settings AS (
    SELECT current_setting('block_size')::numeric AS bs,
           CASE WHEN version() ~ 'mingw32|64-bit|x86_64|ppc64|ia64|amd64|aarch64' THEN 8 ELSE 4 END AS ma,
           24 AS page_hdr
), widths AS (
    SELECT tbl.oid AS relid,
           tbl.reltuples,
           tbl.relpages AS heappages,
           coalesce(toast.relpages, 0) AS toastpages,
           coalesce(toast.reltuples, 0) AS toasttuples,
           coalesce(substring(array_to_string(tbl.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::smallint, 100) AS fillfactor,
           23 + CASE WHEN max(coalesce(s.null_frac, 0)) > 0 THEN (7 + count(s.attname)) / 8 ELSE 0 END AS tpl_hdr_size,
           sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS tpl_data_size,
           bool_or(att.atttypid = 'pg_catalog.name'::regtype)
             OR sum(CASE WHEN att.attnum > 0 THEN 1 ELSE 0 END) <> count(s.attname) AS not_estimable
    FROM pg_attribute att
    JOIN pg_class tbl ON att.attrelid = tbl.oid
    JOIN pg_namespace ns ON ns.oid = tbl.relnamespace
    LEFT JOIN pg_stats s ON s.schemaname = ns.nspname AND s.tablename = tbl.relname
                        AND s.inherited = false AND s.attname = att.attname
    LEFT JOIN pg_class toast ON tbl.reltoastrelid = toast.oid
    WHERE NOT att.attisdropped AND att.attnum > 0
      AND tbl.relkind IN ('r', 'm')
      AND ns.nspname NOT IN ('pg_catalog', 'information_schema') AND ns.nspname !~ '^pg_toast'
    GROUP BY tbl.oid, tbl.reltuples, tbl.relpages, toast.relpages, toast.reltuples, tbl.reloptions
), tuples AS (
    SELECT w.*, st.bs, st.page_hdr,
           (4 + tpl_hdr_size + tpl_data_size + (2 * st.ma)
             - CASE WHEN tpl_hdr_size % st.ma = 0 THEN st.ma ELSE tpl_hdr_size % st.ma END
             - CASE WHEN ceil(tpl_data_size)::int % st.ma = 0 THEN st.ma ELSE ceil(tpl_data_size)::int % st.ma END
           ) AS tpl_size
    FROM widths w CROSS JOIN settings st
), estimate AS (
    SELECT relid, not_estimable, bs, heappages + toastpages AS tblpages,
           CASE WHEN reltuples <= 0 OR tpl_size <= 0 THEN NULL
                ELSE ceil(reltuples / ((bs - page_hdr) * fillfactor / (tpl_size * 100))) + ceil(toasttuples / 4)
           END AS est_tblpages_ff
    FROM tuples
)
SELECT n.nspname AS schema,
       c.relname AS name,
       c.relpersistence = 'u' AS unlogged,
       pg_table_size(c.oid)::int8 AS bytes,
       coalesce(s.n_live_tup, 0)::int8 AS live_tuples,
       coalesce(s.n_dead_tup, 0)::int8 AS dead_tuples,
       coalesce(s.n_mod_since_analyze, 0)::int8 AS modified_since_analyze,
       greatest(c.reltuples, 0)::float8 AS estimated_rows,
       extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum))::float8 AS vacuumed_seconds_ago,
       extract(epoch FROM now() - greatest(s.last_analyze, s.last_autoanalyze))::float8 AS analyzed_seconds_ago,
       age(c.relfrozenxid)::int8 AS xid_age,
       mxid_age(c.relminmxid)::int8 AS mxid_age,
       coalesce(NOT e.not_estimable AND e.est_tblpages_ff IS NOT NULL, false) AS bloat_estimable,
       CASE WHEN e.tblpages > e.est_tblpages_ff THEN ((e.tblpages - e.est_tblpages_ff) * e.bs)::int8 ELSE 0 END AS bloat_bytes,
       CASE WHEN e.tblpages > 0 AND e.tblpages > e.est_tblpages_ff
            THEN (100 * (e.tblpages - e.est_tblpages_ff) / e.tblpages)::float8 ELSE 0 END AS bloat_pct
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
LEFT JOIN estimate e ON e.relid = c.oid
WHERE c.relkind IN ('r', 'm')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
ORDER BY coalesce(s.n_dead_tup, 0) DESC, n.nspname, c.relname
