#!/usr/bin/env bash
# The monitor's idle cost: CPU seconds `dbagent serve` uses over a minute with nothing to do,
# with monitoring on (collector every 15 s, detail every 60 s, history every 15 s) and off,
# and the history's storage per row. Uses the debug binary unless DBAGENT is set; runs its
# own PostgreSQL in target/tmp/monitor-idle-pg. Not a test: prints figures for README.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${DBAGENT:-target/debug/dbagent}
seconds=${SECONDS_IDLE:-60}
export DBAGENT_INSTANCE__DATA_DIR=$PWD/target/tmp/monitor-idle-pg
port=$("$bin" --json instance start | sed -n 's/.*"port": *\([0-9]*\).*/\1/p')
trap '"$bin" instance stop >/dev/null 2>&1 || true' EXIT
url="postgresql://postgres@127.0.0.1:$port/postgres"
psql() { /usr/lib/postgresql/*/bin/psql "$url" -Atqc "$1"; }
psql "DROP SCHEMA IF EXISTS dbagent CASCADE" >/dev/null 2>&1 || true
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for enable in true false; do
  DATABASE_URL=$url DBAGENT_MONITORING__ENABLE=$enable DBAGENT_LOGGING__LEVEL=warn "$bin" serve --port 0 2>/dev/null &
  pid=$!
  sleep 20 # start-up and the first detail read
  t0=$(ticks $pid)
  sleep "$seconds"
  t1=$(ticks $pid)
  kill -TERM $pid; wait $pid || true
  # utime + stime are in clock ticks (100 per second).
  echo "monitoring.enable=$enable: $(( t1 - t0 )) ticks of CPU in ${seconds} s = $(awk "BEGIN {printf \"%.3f\", ($t1 - $t0) / $seconds}") % of one core"
done
psql "SELECT resolution, count(*), round(avg(pg_column_size(h.*))) AS row_bytes FROM dbagent.metrics_history h GROUP BY 1 ORDER BY 1"
# One day of one agent: 5760 raw rows (15 s), 1440 1-minute and 24 1-hour rollups, copied
# from real rows into a probe table with the same primary key.
psql "DROP TABLE IF EXISTS dbagent.history_size_probe;
      CREATE TABLE dbagent.history_size_probe (LIKE dbagent.metrics_history INCLUDING ALL);
      INSERT INTO dbagent.history_size_probe
      SELECT r.agent_id, r.resolution, r.at + make_interval(secs => g * greatest(r.resolution, 15)), r.samples, r.avg, r.max
        FROM (SELECT DISTINCT ON (resolution) * FROM dbagent.metrics_history ORDER BY resolution, at DESC) r,
             generate_series(1, CASE r.resolution WHEN 0 THEN 5760 WHEN 60 THEN 1440 ELSE 24 END) g"
psql "VACUUM ANALYZE dbagent.history_size_probe"
psql "SELECT 'one agent-day: ' || resolution || ': ' || count(*) || ' rows' FROM dbagent.history_size_probe GROUP BY resolution ORDER BY resolution"
psql "SELECT 'one agent-day (heap + primary key): ' || pg_size_pretty(pg_total_relation_size('dbagent.history_size_probe'))"
psql "DROP TABLE dbagent.history_size_probe"
