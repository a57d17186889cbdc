SELECT datname, pg_database_size(oid)::float8 AS size_bytes FROM pg_database WHERE datallowconn
