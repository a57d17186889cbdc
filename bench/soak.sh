#!/usr/bin/env bash
# Soak: DURATION seconds of mixed load (bench/soak.lua: cached and plain reads, writes,
# transactions, large and truncated results, answers over max_response_bytes, errors) from
# CLIENTS connections on one dbagent, watching its resident memory, open descriptors and
# database connections. Not part of CI.
#
#   bash bench/soak.sh                  # 10 minutes
#   DURATION=120 bash bench/soak.sh
#
# Knobs (environment):
#   DURATION=600     seconds of load (after WARMUP)
#   WARMUP=30        seconds of the same load before the first (baseline) sample
#   SAMPLE=30        seconds between samples
#   CLIENTS=64       wrk connections (2 threads)
#   POOL=32          dbagent's pool (min = max, so connections stay put)
#   MAX_GROWTH_KB=5120  allowed RSS growth from the baseline to the last sample
#   CACHE_TTL=20     caching.query_cache_ttl: entries expire (cache churn) within the warm-up
#   SOAK_DB=dbagent_soak  database created and dropped
#   DBAGENT_BIN      the binary (default: target/release/dbagent, else target/debug/dbagent)
#   PGHOST/PGPORT/PGUSER  the PostgreSQL server (default 127.0.0.1 / 5432 / postgres, trust)
#
# Prints a table (time, RSS, descriptors, connections) and exits 1 when RSS grew by more than
# MAX_GROWTH_KB, when descriptors or database connections grew, when dbagent answered any
# 5xx or wrk saw socket errors.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
DURATION=${DURATION:-600}
WARMUP=${WARMUP:-30}
SAMPLE=${SAMPLE:-30}
CLIENTS=${CLIENTS:-64}
POOL=${POOL:-32}
MAX_GROWTH_KB=${MAX_GROWTH_KB:-5120}
# Entries expire after CACHE_TTL seconds, so the cache reaches its steady size (and churns)
# within the warm-up; with the default 300 s its filling would read as growth.
CACHE_TTL=${CACHE_TTL:-20}
DB=${SOAK_DB:-dbagent_soak}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
[[ $DB =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "SOAK_DB must be a plain lower-case identifier" >&2; exit 1; }

BIN=${DBAGENT_BIN:-}
if [[ -z $BIN ]]; then
    for candidate in "$REPO/target/release/dbagent" "$REPO/target/debug/dbagent"; do
        [[ -x $candidate ]] && { BIN=$candidate; break; }
    done
fi
[[ -n $BIN && -x $BIN ]] || { echo "no dbagent binary: build one or set DBAGENT_BIN" >&2; exit 1; }

if ! command -v wrk >/dev/null; then
    echo "wrk not found; installing it with apt-get" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

OUT=$(mktemp -d "${TMPDIR:-/tmp}/dbagent-soak.XXXXXX")
AGENT_PID=""
WRK_PID=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -n $WRK_PID ]] && kill "$WRK_PID" 2>/dev/null || true
    if [[ -n $AGENT_PID ]] && kill -0 "$AGENT_PID" 2>/dev/null; then
        kill -TERM "$AGENT_PID" 2>/dev/null || true
        wait "$AGENT_PID" 2>/dev/null || true
    fi
    psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    echo "raw logs: $OUT" >&2
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

psql -XAtq -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
psql -XAtq -v ON_ERROR_STOP=1 -d "$DB" >/dev/null <<'SQL'
CREATE TABLE soak (id int PRIMARY KEY, v bigint NOT NULL, note text NOT NULL);
INSERT INTO soak SELECT g, 0, md5(g::text) FROM generate_series(1, 20000) g;
SQL

(cd "$OUT" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" \
    DATABASE_URL="postgresql://$PGUSER@$PGHOST:$PGPORT/$DB" \
    DBAGENT_SERVER__PORT=0 \
    DBAGENT_POSTGRESQL__CONNECTION_POOL__MIN_SIZE="$POOL" \
    DBAGENT_POSTGRESQL__CONNECTION_POOL__MAX_SIZE="$POOL" \
    DBAGENT_POSTGRESQL__MAX_RESPONSE_BYTES=1048576 \
    DBAGENT_CACHING__ENABLE=true \
    DBAGENT_CACHING__QUERY_CACHE_TTL="$CACHE_TTL" \
    DBAGENT_LOGGING__LEVEL=error \
    "$BIN" serve) >"$OUT/dbagent.stdout" 2>"$OUT/dbagent.stderr" &
AGENT_PID=$!
PORT=""
for _ in $(seq 1 300); do
    PORT=$(sed -n 's|.*dbagent listening on http://[^:]*:\([0-9]*\).*|\1|p' "$OUT/dbagent.stderr" | head -1)
    [[ -n $PORT ]] && break
    kill -0 "$AGENT_PID" 2>/dev/null || { cat "$OUT/dbagent.stderr" >&2; exit 1; }
    sleep 0.1
done
[[ -n $PORT ]] || { echo "dbagent did not start" >&2; exit 1; }

rss_kb() { awk '$1 == "VmRSS:" { print $2 }' "/proc/$AGENT_PID/status"; }
fds() { find "/proc/$AGENT_PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }
conns() { psql -XAtq -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB' AND application_name LIKE 'dbagent%'"; }

TOTAL=$((WARMUP + DURATION))
wrk -t2 -c"$CLIENTS" -d"${TOTAL}s" --timeout 30s -s "$BENCH_DIR/soak.lua" "http://127.0.0.1:$PORT" >"$OUT/wrk.out" 2>&1 &
WRK_PID=$!
started=$(date +%s)

printf '%8s %10s %6s %12s\n' "seconds" "RSS MB" "fds" "connections"
sample() { # label
    local r f c
    r=$(rss_kb); f=$(fds); c=$(conns)
    printf '%8s %10.1f %6d %12d\n' "$1" "$(awk "BEGIN { print $r / 1024 }")" "$f" "$c"
    LAST_RSS=$r LAST_FDS=$f LAST_CONNS=$c
}
sleep "$WARMUP"
sample "$WARMUP"
BASE_RSS=$LAST_RSS BASE_FDS=$LAST_FDS BASE_CONNS=$LAST_CONNS
# Samples every SAMPLE seconds, the last one just before the load ends.
while :; do
    now=$(($(date +%s) - started))
    left=$((TOTAL - 2 - now))
    ((left > 0)) || break
    sleep "$((left < SAMPLE ? left : SAMPLE))"
    sample "$(($(date +%s) - started))"
done
wait "$WRK_PID" || { echo "wrk failed:" >&2; cat "$OUT/wrk.out" >&2; exit 1; }
WRK_PID=""
kill -0 "$AGENT_PID" 2>/dev/null || { echo "dbagent died" >&2; exit 1; }
RESULT=$(grep -m1 '^SOAK_RESULT ' "$OUT/wrk.out" || true)
[[ -n $RESULT ]] || { echo "wrk printed no result" >&2; cat "$OUT/wrk.out" >&2; exit 1; }
kv() { tr ' ' '\n' <<<"$RESULT" | sed -n "s/^$1=//p"; }

growth=$((LAST_RSS - BASE_RSS))
echo
echo "load: $(kv requests) requests, $(kv rps) req/s, p50 $(kv p50_us) µs, p99 $(kv p99_us) µs; 2xx $(kv s2xx), 4xx $(kv s4xx), 5xx $(kv s5xx), socket errors $(kv socket_errors)"
echo "RSS growth after warm-up: $growth kB (limit $MAX_GROWTH_KB); fds $BASE_FDS -> $LAST_FDS; connections $BASE_CONNS -> $LAST_CONNS"
failed=0
((growth <= MAX_GROWTH_KB)) || { echo "FAIL: RSS grew by $growth kB" >&2; failed=1; }
((LAST_FDS <= BASE_FDS)) || { echo "FAIL: open descriptors grew" >&2; failed=1; }
((LAST_CONNS <= BASE_CONNS)) || { echo "FAIL: database connections grew" >&2; failed=1; }
(($(kv s5xx) == 0)) || { echo "FAIL: 5xx answers" >&2; failed=1; }
(($(kv socket_errors) == 0)) || { echo "FAIL: socket errors" >&2; failed=1; }
exit "$failed"
