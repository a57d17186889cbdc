-- Transaction id and multixact freeze ages of every database, and the settings that bound them.
SELECT d.datname AS database,
       age(d.datfrozenxid)::int8 AS xid_age,
       mxid_age(d.datminmxid)::int8 AS mxid_age,
       current_setting('autovacuum_freeze_max_age')::int8 AS autovacuum_freeze_max_age,
       current_setting('autovacuum_multixact_freeze_max_age')::int8 AS autovacuum_multixact_freeze_max_age,
       d.datname = current_database() AS current
FROM pg_database d
WHERE d.datallowconn
ORDER BY age(d.datfrozenxid) DESC
