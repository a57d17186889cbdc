-- The columns of table $1 (oid) as the generator needs them: the type behind a domain and,
-- for an array, its element type; the type modifier; enum labels; the domain's checks; and
-- whether the server fills the column itself (default, identity, generated).
SELECT a.attname::text AS name,
       (a.attnotnull OR COALESCE(t.typnotnull, false)) AS not_null,
       format_type(a.atttypid, a.atttypmod) AS formatted_type,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod,
       (b.typcategory = 'A') AS is_array,
       e.typname::text AS base_type,
       (e.typtype = 'e') AS is_enum,
       ARRAY(SELECT enumlabel::text FROM pg_enum WHERE enumtypid = e.oid ORDER BY enumsortorder) AS enum_labels,
       ARRAY(SELECT pg_get_constraintdef(dc.oid) FROM pg_constraint dc
              WHERE dc.contypid = a.atttypid AND dc.contype = 'c' ORDER BY dc.conname) AS domain_checks,
       pg_get_expr(d.adbin, d.adrelid) AS default_expr,
       a.attidentity::text AS identity,
       a.attgenerated::text AS generated
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
  JOIN pg_type e ON e.oid = CASE WHEN b.typcategory = 'A' THEN b.typelem ELSE b.oid END
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
