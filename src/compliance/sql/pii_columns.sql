-- Columns whose names look like personal data, in this database's own tables.
SELECT format('%I.%I.%I', n.nspname, c.relname, a.attname) AS name
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'dbagent') AND n.nspname !~ '^pg_'
  AND a.attname ~* '(e_?mail|phone|mobile|ssn|social_security|passport|birth|dob|credit_?card|card_?number|iban|tax_?id|national_id|first_?name|last_?name|full_?name|surname|address|postcode|zip_?code|ip_?address)'
ORDER BY 1 LIMIT 50
