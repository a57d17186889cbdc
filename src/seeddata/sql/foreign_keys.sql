-- Outgoing foreign keys of table $1 (oid): columns and referenced columns in key order.
SELECT con.conname::text AS name,
       con.confrelid AS parent,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord) AS columns,
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum ORDER BY k.ord) AS parent_columns
  FROM pg_constraint con
 WHERE con.conrelid = $1::oid AND con.contype = 'f'
 ORDER BY con.conname
