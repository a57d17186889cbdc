#!/usr/bin/env bash
# RPO under a steady write load, with WAL streamed from a server dbagent does not run
# (backup.pitr with postgresql.url: pg_receivewal through a replication slot). Not part of CI.
#
# Starts a PostgreSQL cluster of its own (the "external" server, archive_mode off) and one
# dbagent serving against it with backup.pitr: true, loads pgbench's tables, then runs a
# steady rate of pgbench TPC-B transactions three ways, in turn:
#   async       backup.wal_stream.synchronous: false
#   sync-flush  synchronous: true (pg_receivewal flushes every write)
#   sync-commit synchronous: true and the server's synchronous_standby_names = 'dbagent_wal'
#               (a commit waits until dbagent has flushed it: RPO zero by construction)
# Each way it samples `rpo_seconds` from GET /backups/status every 0.25 s and prints its
# p50 / p99 / max, pgbench's TPS and latency, and the WAL written.
#
#   bash bench/rpo.sh
#   DURATION=30 RATE=200 bash bench/rpo.sh
#
# Knobs (environment):
#   DURATION=60   seconds of load per way
#   RATE=500      pgbench transactions per second (-R), over CLIENTS connections
#   CLIENTS=4
#   SCALE=10      pgbench scale
#   DBAGENT_BIN   the binary (default: target/release/dbagent, else target/debug/dbagent)

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
DURATION=${DURATION:-60}
RATE=${RATE:-500}
CLIENTS=${CLIENTS:-4}
SCALE=${SCALE:-10}
BIN=${DBAGENT_BIN:-}
if [ -z "$BIN" ]; then
  BIN="$REPO/target/release/dbagent"
  [ -x "$BIN" ] || BIN="$REPO/target/debug/dbagent"
fi
[ -x "$BIN" ] || { echo "no dbagent binary: cargo build --release" >&2; exit 2; }
command -v pgbench >/dev/null || { echo "pgbench is missing (postgresql-client)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/dbagent-rpo.XXXXXX)
chmod 755 "$WORK"
EXT="$WORK/external"
AGENT_PID=""
cleanup() {
  [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null || true
  DBAGENT_INSTANCE__DATA_DIR="$EXT" "$BIN" instance stop --mode immediate >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "starting the external server in $EXT"
DBAGENT_INSTANCE__DATA_DIR="$EXT" "$BIN" --json instance start > "$WORK/instance.json"
PORT=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["port"])' "$WORK/instance.json")
export PGHOST=127.0.0.1 PGPORT=$PORT PGUSER=postgres PGDATABASE=postgres
pgbench -q -i -s "$SCALE" >/dev/null 2>&1
psql -qAtc "ALTER SYSTEM SET max_slot_wal_keep_size = '2GB'" -c "SELECT pg_reload_conf()" >/dev/null

start_agent() { # $1: synchronous true|false
  local api=$((20000 + RANDOM % 20000))
  DATABASE_URL="postgresql://postgres@127.0.0.1:$PORT/postgres" \
  DBAGENT_SERVER__PORT=$api DBAGENT_BACKUP__PITR=true DBAGENT_BACKUP__SCHEDULE="" \
  DBAGENT_BACKUP__LOCATION="$WORK/backups" DBAGENT_BACKUP__WAL_STREAM__SYNCHRONOUS="$1" \
  DBAGENT_INSTANCE__DATA_DIR="$WORK/pgdata" DBAGENT_MONITORING__ENABLE=false DBAGENT_LOGGING__LEVEL=warn \
    "$BIN" serve >"$WORK/agent.log" 2>&1 &
  AGENT_PID=$!
  URL="http://127.0.0.1:$api"
  for _ in $(seq 1 100); do
    if curl -fs "$URL/health" 2>/dev/null | python3 -c 'import json,sys; sys.exit(0 if json.load(sys.stdin)["wal"]["stream"]["running"] else 1)' 2>/dev/null; then
      return 0
    fi
    sleep 0.2
  done
  echo "the stream did not start:" >&2; cat "$WORK/agent.log" >&2; exit 1
}

stop_agent() {
  kill "$AGENT_PID" 2>/dev/null; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=""
}

run_way() { # $1 name, $2 synchronous, $3 synchronous_standby_names
  start_agent "$2"
  psql -qAtc "ALTER SYSTEM SET synchronous_standby_names = '$3'" -c "SELECT pg_reload_conf()" >/dev/null
  local wal_before; wal_before=$(psql -qAtc "SELECT pg_current_wal_lsn()")
  : > "$WORK/rpo.txt"
  ( while true; do
      curl -fs "$URL/backups/status" | python3 -c 'import json,sys; v=json.load(sys.stdin)["wal"]["rpo_seconds"]; print(v if v is not None else "")' >> "$WORK/rpo.txt" 2>/dev/null || true
      sleep 0.25
    done ) &
  local sampler=$!
  pgbench -n -c "$CLIENTS" -j 2 -R "$RATE" -T "$DURATION" > "$WORK/pgbench.txt" 2>&1 || true
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
  local wal; wal=$(psql -qAtc "SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), '$wal_before'))")
  psql -qAtc "ALTER SYSTEM RESET synchronous_standby_names" -c "SELECT pg_reload_conf()" >/dev/null
  stop_agent
  local tps lat
  tps=$(awk '/^tps = /{printf "%.0f", $3}' "$WORK/pgbench.txt")
  lat=$(awk '/^latency average/{print $4}' "$WORK/pgbench.txt")
  sort -n "$WORK/rpo.txt" | awk -v name="$1" -v tps="$tps" -v lat="$lat" -v wal="$wal" '
    NF { v[n++] = $1 }
    END {
      if (n == 0) { printf "%-12s no samples\n", name; exit }
      p50 = v[int(n * 0.50)]; p99 = v[int(n * 0.99) < n ? int(n * 0.99) : n - 1]; max = v[n - 1]
      printf "%-12s %8d %8.2f %8.2f %8.2f %8s %10s %10s\n", name, n, p50, p99, max, tps, lat, wal
    }'
}

printf "%-12s %8s %8s %8s %8s %8s %10s %10s\n" way samples "p50 s" "p99 s" "max s" tps "lat ms" "wal"
run_way async false ""
run_way sync-flush true ""
run_way sync-commit true "dbagent_wal"
