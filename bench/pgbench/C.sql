-- C: single-row update (pgbench -M prepared; :scale comes from pgbench -s)
\set aid random(1, 100000 * :scale)
\set delta random(-5000, 5000)
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
