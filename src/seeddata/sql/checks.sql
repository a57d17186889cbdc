-- CHECK constraints of table $1 (oid) with PostgreSQL's text of them.
SELECT conname::text AS name, pg_get_constraintdef(oid) AS definition
  FROM pg_constraint
 WHERE conrelid = $1::oid AND contype = 'c'
 ORDER BY conname
