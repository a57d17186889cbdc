-- Constraints of one relation, with PostgreSQL's own definition text.
SELECT conname::text AS name,
       CASE contype WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique' WHEN 'c' THEN 'check'
                    WHEN 'f' THEN 'foreign key' WHEN 'x' THEN 'exclusion' WHEN 't' THEN 'trigger'
                    WHEN 'n' THEN 'not null' ELSE contype::text END AS kind,
       pg_get_constraintdef(oid) AS definition,
       condeferrable AS deferrable,
       convalidated AS validated
  FROM pg_constraint
 WHERE conrelid = $1::oid
 ORDER BY conname
