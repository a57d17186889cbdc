-- B: 100-row range read (pgbench -M prepared; :scale comes from pgbench -s)
\set aid random(1, 100000 * :scale - 99)
SELECT aid, bid, abalance, filler FROM pgbench_accounts WHERE aid BETWEEN :aid AND :aid + 99;
