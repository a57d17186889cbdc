-- The settings the checks read (every role may read these).
SELECT name, setting FROM pg_settings
WHERE name IN ('password_encryption', 'ssl', 'ssl_min_protocol_version', 'listen_addresses', 'log_connections',
               'log_disconnections', 'log_statement', 'log_min_duration_statement', 'log_line_prefix',
               'logging_collector', 'log_destination', 'shared_preload_libraries', 'server_version_num',
               'data_checksums', 'log_replication_commands')
