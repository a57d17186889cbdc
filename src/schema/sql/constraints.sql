-- Constraints of the relations $1 (oids), their columns in key order, with PostgreSQL's own definition text.
SELECT conrelid AS relid,
       conname::text AS name,
       CASE contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique' WHEN 'c' THEN 'check'
                    WHEN 'f' THEN 'foreign key' WHEN 'x' THEN 'exclusion' WHEN 't' THEN 'trigger'
                    WHEN 'n' THEN 'not null' ELSE contype::text END AS kind,
       pg_get_constraintdef(oid) AS definition,
       condeferrable AS deferrable,
       convalidated AS validated,
       ARRAY(SELECT a.attname::text FROM unnest(conkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = conrelid AND a.attnum = k.attnum ORDER BY k.ord) AS columns
  FROM pg_constraint
 WHERE conrelid = ANY($1::oid[])
 ORDER BY conrelid, conname
