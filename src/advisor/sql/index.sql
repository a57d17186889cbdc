-- An index by name ($1, to_regclass text): its table, whether it backs a constraint, its size.
SELECT i.indexrelid::regclass::text AS index, i.indrelid::regclass::text AS "table",
  EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid) AS "constraint",
  pg_relation_size(i.indexrelid) AS bytes
FROM pg_index i WHERE i.indexrelid = to_regclass($1)
