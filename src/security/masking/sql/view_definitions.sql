-- The definitions of the views given, as PostgreSQL prints them (column references qualified).
SELECT c.oid::int8 AS view, pg_get_viewdef(c.oid) AS definition
FROM pg_class c
WHERE c.oid::int8 = ANY($1::int8[])
