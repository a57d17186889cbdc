-- Indexes of the relations $1 (oids) with their key columns (expressions as written).
SELECT ix.indrelid AS relid,
       i.relname::text AS name,
       pg_get_indexdef(ix.indexrelid) AS definition,
       ARRAY(SELECT pg_get_indexdef(ix.indexrelid, k, true)
               FROM generate_series(1, ix.indnkeyatts::int) AS k ORDER BY k) AS columns,
       am.amname::text AS method,
       ix.indisunique AS is_unique,
       ix.indisprimary AS is_primary,
       ix.indisvalid AS is_valid,
       pg_relation_size(ix.indexrelid) AS size_bytes
  FROM pg_index ix
  JOIN pg_class i ON i.oid = ix.indexrelid
  JOIN pg_am am ON am.oid = i.relam
 WHERE ix.indrelid = ANY($1::oid[])
 ORDER BY ix.indrelid, i.relname
