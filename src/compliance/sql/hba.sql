-- pg_hba.conf as the server reads it (superusers only).
SELECT line_number, type, coalesce(array_to_string(database, ','), '') AS database,
       coalesce(array_to_string(user_name, ','), '') AS user_name, coalesce(address, '') AS address,
       coalesce(auth_method, '') AS auth_method, coalesce(error, '') AS error
FROM pg_hba_file_rules ORDER BY line_number
