-- One table's statistics as a JSON object (TableStats); $1 is the name as text for to_regclass.
SELECT json_build_object(
  'oid', c.oid::int8, 'schema', n.nspname, 'name', c.relname, 'rows', greatest(c.reltuples, 0),
  'bytes', pg_total_relation_size(c.oid), 'mod_since_analyze', s.n_mod_since_analyze,
  'last_analyze', greatest(s.last_analyze, s.last_autoanalyze)::text,
  'columns', (SELECT coalesce(json_agg(attname ORDER BY attnum), '[]') FROM pg_attribute
              WHERE attrelid = c.oid AND attnum > 0 AND NOT attisdropped),
  'indexes', (SELECT coalesce(json_agg(json_build_object(
      'name', ic.relname,
      'columns', (SELECT json_agg(pg_get_indexdef(i.indexrelid, k, true) ORDER BY k) FROM generate_series(1, i.indnkeyatts) k),
      'unique', i.indisunique, 'primary', i.indisprimary, 'valid', i.indisvalid,
      'constraint', EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid AND co.conrelid = c.oid),
      'predicate', pg_get_expr(i.indpred, i.indrelid), 'definition', pg_get_indexdef(i.indexrelid),
      'bytes', pg_relation_size(i.indexrelid), 'scans', coalesce(us.idx_scan, 0)) ORDER BY ic.relname), '[]')
    FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
    LEFT JOIN pg_stat_all_indexes us ON us.indexrelid = i.indexrelid WHERE i.indrelid = c.oid),
  'foreign_keys', (SELECT coalesce(json_agg(json_build_object('name', co.conname,
      'columns', (SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(co.conkey) WITH ORDINALITY k(attnum, ord)
                  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum),
      'references', co.confrelid::regclass::text)), '[]')
    FROM pg_constraint co WHERE co.conrelid = c.oid AND co.contype = 'f')
  )::text AS stats
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid WHERE c.oid = to_regclass($1)
  -- Only what can have an index of the user's: not views, not the catalogs.
  AND c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
