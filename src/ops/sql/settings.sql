-- The settings the advice covers, as the server has them.
SELECT name, setting, unit, context, pending_restart
FROM pg_settings
WHERE name = ANY($1)
ORDER BY name
