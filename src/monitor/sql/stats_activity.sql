-- /stats/activity: client sessions of this database by state and wait event.
SELECT coalesce(datname, '') AS database, coalesce(state, '') AS state,
       coalesce(wait_event_type, '') AS wait_event_type, coalesce(wait_event, '') AS wait_event,
       count(*)::int8 AS sessions
  FROM pg_stat_activity
 WHERE datname = current_database() AND backend_type = 'client backend' AND pid <> pg_backend_pid()
 GROUP BY 1, 2, 3, 4
 ORDER BY sessions DESC, 1, 2, 3, 4
