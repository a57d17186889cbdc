#!/usr/bin/env bash
# Restore time from the remote store (backup.remote) against the local copy, for the pgbench
# database at scale 50. Not part of CI.
#
# Starts moto's S3 server (target/tools/venv, from scripts/setup.sh) and one dbagent serving
# against a database of the local server, takes one backup (custom format, zstd, encrypted),
# waits until it is uploaded, then restores it ROUNDS times each way, alternating:
#   local   the backup directory is in the location
#   remote  the backup directory was deleted first: the restore downloads it, then restores
# and prints each restore's wall time, the medians and remote/local.
#
#   bash bench/remote.sh
#   SCALE=10 ROUNDS=3 bash bench/remote.sh
#
# Knobs (environment):
#   SCALE=50        pgbench scale
#   ROUNDS=2        restores each way
#   NOISE_MB=0      also load a table of this many MB of random text: pgbench's rows are mostly
#                   blank padding and compress to almost nothing, so the download is tiny;
#                   random text makes the backup, and the download, large
#   PGURL           the server (default postgresql://postgres@127.0.0.1:5432)
#   DBAGENT_BIN     the binary (default: target/release/dbagent, else target/debug/dbagent)

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
SCALE=${SCALE:-50}
ROUNDS=${ROUNDS:-2}
NOISE_MB=${NOISE_MB:-0}
PGURL=${PGURL:-postgresql://postgres@127.0.0.1:5432}
BIN=${DBAGENT_BIN:-}
if [ -z "$BIN" ]; then
  BIN="$REPO/target/release/dbagent"
  [ -x "$BIN" ] || BIN="$REPO/target/debug/dbagent"
fi
[ -x "$BIN" ] || { echo "no dbagent binary: cargo build --release" >&2; exit 2; }
MOTO="$REPO/target/tools/venv/bin/moto_server"
[ -x "$MOTO" ] || { echo "moto is missing: bash scripts/setup.sh" >&2; exit 2; }
command -v pgbench >/dev/null || { echo "pgbench is missing (postgresql-client)" >&2; exit 2; }

WORK=$(mktemp -d /tmp/dbagent-remote.XXXXXX)
DB=dbagent_bench_remote
AGENT_PID="" MOTO_PID=""
cleanup() {
  [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null || true
  [ -n "$MOTO_PID" ] && kill "$MOTO_PID" 2>/dev/null && wait "$MOTO_PID" 2>/dev/null || true
  for d in $(psql "$PGURL/postgres" -qAtc "SELECT datname FROM pg_database WHERE datname LIKE '${DB}%'"); do
    psql "$PGURL/postgres" -qAtc "DROP DATABASE \"$d\" WITH (FORCE)" >/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

MOTO_PORT=$((20000 + RANDOM % 20000))
"$MOTO" -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
MOTO_PID=$!
for _ in $(seq 1 100); do
  curl -fs -X PUT "http://127.0.0.1:$MOTO_PORT/bench" >/dev/null 2>&1 && break
  sleep 0.2
done

echo "loading pgbench scale $SCALE into $DB"
psql "$PGURL/postgres" -qAtc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
pgbench -q -i -s "$SCALE" "$PGURL/$DB" >/dev/null 2>&1
if [ "$NOISE_MB" -gt 0 ]; then
  # ~100 bytes of random base64 per row (incompressible beyond base64's 3/4).
  psql "$PGURL/$DB" -qAtc "CREATE TABLE noise AS SELECT g AS id, encode(decode(md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text), 'hex'), 'base64') AS v FROM generate_series(1, $NOISE_MB * 1024 * 1024 / 300) g" >/dev/null
fi

API=$((20000 + RANDOM % 20000))
cat >"$WORK/dbagent.yaml" <<EOF
server: {port: $API}
postgresql: {url: "$PGURL/$DB"}
monitoring: {enable: false}
logging: {level: warn}
backup:
  schedule: null
  location: $WORK/backups
  encryption_key: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  remote:
    url: s3://bench/dbagent
    endpoint: http://127.0.0.1:$MOTO_PORT
    region: us-east-1
    access_key_id: bench
    secret_access_key: bench
    interval: 1s
EOF
CONFIG_PATH="$WORK/dbagent.yaml" DBAGENT_INSTANCE__DATA_DIR="$WORK/pgdata" "$BIN" serve >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!
URL="http://127.0.0.1:$API"
for _ in $(seq 1 100); do curl -fs "$URL/health/live" >/dev/null 2>&1 && break; sleep 0.2; done

ms() { date +%s%3N; }
t0=$(ms)
ID=$(curl -fs -X POST "$URL/backup" -H 'content-type: application/json' -d '{"backup_name": "bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["backup_id"])')
t1=$(ms)
STORED=$(curl -fs "$URL/backups/$ID" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])')
until curl -fs "$URL/health" | python3 -c 'import json,sys; r=json.load(sys.stdin)["backup_remote"]; sys.exit(0 if r["state"]=="ok" and r["pending_files"]==0 and r["remote_backups"]>=1 else 1)'; do
  sleep 0.2
done
t2=$(ms)
SIZE=$(psql "$PGURL/$DB" -qAtc "SELECT pg_size_pretty(pg_database_size(current_database()))")
echo "database $SIZE; backup $ID: $((STORED / 1048576)) MiB stored, taken in $((t1 - t0)) ms, uploaded $((t2 - t1)) ms later"

restore() { # $1: way, $2: round
  local target="${DB}_$1_$2" start end
  start=$(ms)
  curl -fs -X POST "$URL/restore" -H 'content-type: application/json' \
    -d "{\"backup_id\": \"$ID\", \"target_database\": \"$target\"}" >/dev/null
  end=$(ms)
  psql "$PGURL/postgres" -qAtc "DROP DATABASE \"$target\" WITH (FORCE)" >/dev/null
  echo "$1 $((end - start))" | tee -a "$WORK/times.txt"
}

for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then
    restore local "$round"
    rm -rf "${WORK:?}/backups/$ID"
    restore remote "$round"
  else
    rm -rf "${WORK:?}/backups/$ID"
    restore remote "$round"
    restore local "$round"
  fi
done
python3 - "$WORK/times.txt" <<'EOF'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    way, ms = line.split()
    times.setdefault(way, []).append(int(ms))
local, remote = statistics.median(times["local"]), statistics.median(times["remote"])
print(f"median restore: local {local / 1000:.1f} s, from the remote store {remote / 1000:.1f} s, remote/local {remote / local:.2f}x")
EOF
