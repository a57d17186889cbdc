-- Sequences and how much of their range is used (in the direction they move).
SELECT s.schemaname AS schema,
       s.sequencename AS name,
       s.data_type::text AS data_type,
       s.last_value::float8 AS last_value,
       CASE WHEN s.last_value IS NULL THEN 0
            WHEN s.increment_by > 0 THEN 100 * (s.last_value::float8 - s.min_value::float8) / nullif(s.max_value::float8 - s.min_value::float8, 0)
            ELSE 100 * (s.max_value::float8 - s.last_value::float8) / nullif(s.max_value::float8 - s.min_value::float8, 0)
       END::float8 AS used_pct,
       s.cycle
FROM pg_sequences s
WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema')
ORDER BY used_pct DESC NULLS LAST
