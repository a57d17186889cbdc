-- The column sets that must be unique in table $1 (oid): primary key, unique constraints and
-- valid unique indexes without expressions or predicates.
SELECT DISTINCT ARRAY(SELECT a.attname::text FROM unnest(ix.indkey[0:ix.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, ord)
                        JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum ORDER BY k.ord) AS columns
  FROM pg_index ix
 WHERE ix.indrelid = $1::oid AND ix.indisunique AND ix.indisvalid
   AND ix.indexprs IS NULL AND ix.indpred IS NULL
 ORDER BY 1
