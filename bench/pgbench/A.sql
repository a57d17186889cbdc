-- A: point read by primary key (pgbench -M prepared; :scale comes from pgbench -s)
\set aid random(1, 100000 * :scale)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
