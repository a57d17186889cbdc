-- Columns of the relations $1 (oids) in order, in information_schema's vocabulary (seed shape) plus the full type.
SELECT a.attrelid AS relid,
       a.attname::text AS column_name,
       COALESCE(ic.data_type, format_type(a.atttypid, a.atttypmod))::text AS data_type,
       CASE WHEN a.attnotnull THEN 'NO' ELSE 'YES' END AS is_nullable,
       pg_get_expr(d.adbin, d.adrelid) AS column_default,
       a.attnum::int AS ordinal_position,
       format_type(a.atttypid, a.atttypmod) AS type,
       ic.character_maximum_length::int AS character_maximum_length,
       (a.attidentity <> '') AS is_identity,
       (a.attgenerated <> '') AS is_generated,
       col_description(a.attrelid, a.attnum) AS comment
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  LEFT JOIN information_schema.columns ic
         ON ic.table_schema = n.nspname AND ic.table_name = c.relname AND ic.column_name = a.attname
 WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attrelid, a.attnum
