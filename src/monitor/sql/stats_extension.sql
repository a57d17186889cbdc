-- Whether pg_stat_statements is loaded by the server and created in this database.
SELECT coalesce(current_setting('shared_preload_libraries', true), '') ~ '(^|[ ,])pg_stat_statements($|[ ,])' AS loaded,
       EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') AS created,
       EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements') AS available,
       current_database() AS database
