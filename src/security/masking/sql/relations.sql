-- Every relation a result column can come from, with its highest column number (relnatts
-- counts dropped columns too, so it is never below a live column's number).
SELECT c.oid::int8 AS relid, c.relnatts::int4 AS columns
FROM pg_class c
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
