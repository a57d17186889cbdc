#!/usr/bin/env bash
# Query cache benchmark (issue: cache): workloads A (point read) and B (100-row range read) at
# 64 clients through POST /query, with "use_cache": true against the same requests uncached,
# in the same run and on the same dbagent, alternating so both see the same machine. Keys come
# from a hot set (BENCH_HOT rows) so that cached requests are hits after the first pass.
# Done for the in-process cache, then for Redis (a private redis-server on a free port).
#
#   bash bench/cache.sh
#
# Knobs: BENCH_DURATION=8 (seconds per measured run), BENCH_ROUNDS=2 (uncached/cached pairs per
# cell), BENCH_CLIENTS=64, BENCH_HOT=2000, BENCH_DB=dbagent_cache_bench, DBAGENT_BIN,
# PGHOST/PGPORT/PGUSER (default 127.0.0.1/5432/postgres), PG_BINDIR.
# Prints the requests/s of each run, the ratio cached/uncached per workload and backend, and
# the targets (>= 3x for B in process, >= 1.5x with Redis).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
DURATION=${BENCH_DURATION:-8}
ROUNDS=${BENCH_ROUNDS:-2}
CLIENTS=${BENCH_CLIENTS:-64}
HOT=${BENCH_HOT:-2000}
DB=${BENCH_DB:-dbagent_cache_bench}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
if [[ -z ${PG_BINDIR:-} && -x /usr/lib/postgresql/15/bin/pgbench ]]; then PG_BINDIR=/usr/lib/postgresql/15/bin; fi
PGBENCH=${PG_BINDIR:+$PG_BINDIR/}pgbench
PSQL=${PG_BINDIR:+$PG_BINDIR/}psql
OUT=$(mktemp -d "${TMPDIR:-/tmp}/dbagent-cache-bench.XXXXXX")
AGENT_PID="" REDIS_PID=""
log() { printf '[cache-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
cleanup() {
    [[ -n $AGENT_PID ]] && kill -TERM "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null || true
    [[ -n $REDIS_PID ]] && kill "$REDIS_PID" 2>/dev/null || true
    "$PSQL" -XAtq -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    log "raw logs: $OUT"
}
trap cleanup EXIT
if ! command -v wrk >/dev/null; then log "installing wrk"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; fi
command -v redis-server >/dev/null || { log "redis-server is needed (bash scripts/setup.sh installs it)"; exit 1; }

if [[ -z ${DBAGENT_BIN:-} ]]; then
    (cd "$REPO" && cargo build --release --bin dbagent) >"$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
    DBAGENT_BIN=$REPO/target/release/dbagent
fi
"$PSQL" -XAtq -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
"$PGBENCH" -i -s 1 -q "$DB" >"$OUT/init.log" 2>&1
ROWS=$HOT

start_dbagent() { # extra env...
    (cd "$OUT" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" DATABASE_URL="postgresql://$PGUSER@$PGHOST:$PGPORT/$DB" \
        DBAGENT_SERVER__PORT=0 DB_POOL_SIZE=64 DB_MAX_OVERFLOW=0 DBAGENT_LOGGING__LEVEL=warn "$@" \
        "$DBAGENT_BIN" serve) >"$OUT/dbagent.out" 2>"$OUT/dbagent.err" &
    AGENT_PID=$!
    PORT=""
    for _ in $(seq 1 300); do
        PORT=$(sed -n 's|.*dbagent listening on http://[^:]*:\([0-9]*\).*|\1|p' "$OUT/dbagent.err" | head -1)
        [[ -n $PORT ]] && break
        sleep 0.1
    done
    [[ -n $PORT ]] || { cat "$OUT/dbagent.err"; exit 1; }
}
stop_dbagent() { kill -TERM "$AGENT_PID" 2>/dev/null || true; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=""; }

run() { # label workload use_cache seconds → prints rps
    local out="$OUT/wrk-$1.out"
    wrk -t2 -c"$CLIENTS" -d"$4s" --timeout 10s -s "$BENCH_DIR/query.lua" "http://127.0.0.1:$PORT" -- "$2" "$ROWS" 1 "$3" >"$out" 2>&1
    local line bad
    line=$(grep -m1 '^WRK_RESULT ' "$out")
    bad=$(echo "$line" | tr ' ' '\n' | grep -E '^(non2xx|bad_body|connect|read|write|timeout|status_gt399)=' | grep -v '=0$' || true)
    [[ -z $bad ]] || { log "errors in $1: $bad"; exit 1; }
    echo "$line" | tr ' ' '\n' | sed -n 's/^rps=//p'
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A RATIO
for backend in memory redis; do
    extra=()
    if [[ $backend == redis ]]; then
        RPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no >"$OUT/redis.log" 2>&1 &
        REDIS_PID=$!
        sleep 0.5
        extra=(REDIS_URL="redis://127.0.0.1:$RPORT/0")
    fi
    start_dbagent "${extra[@]}"
    for w in A B; do
        run "$backend-$w-fill" "$w" 1 2 >/dev/null # warm: fill the cache, open the pool
        uncached=() cached=()
        for r in $(seq 1 "$ROUNDS"); do
            uncached+=("$(run "$backend-$w-plain-$r" "$w" 0 "$DURATION")")
            cached+=("$(run "$backend-$w-cached-$r" "$w" 1 "$DURATION")")
        done
        u=$(printf '%s\n' "${uncached[@]}" | median)
        c=$(printf '%s\n' "${cached[@]}" | median)
        RATIO[$backend,$w]=$(awk "BEGIN { printf \"%.2f\", $c / $u }")
        log "$backend $w c=$CLIENTS: uncached ${uncached[*]} req/s, cached ${cached[*]} req/s → ${RATIO[$backend,$w]}x"
    done
    curl -s "http://127.0.0.1:$PORT/health" | python3 -c 'import json,sys; c=json.load(sys.stdin)["cache"]; print("  cache stats:", {k: c[k] for k in ("backend","hits","misses","bypassed","entries","bytes","redis_errors")})' >&2
    stop_dbagent
    [[ -n $REDIS_PID ]] && { kill "$REDIS_PID"; wait "$REDIS_PID" 2>/dev/null || true; REDIS_PID=""; }
done

echo "query cache, $CLIENTS clients, hot set of $HOT keys, median of $ROUNDS runs of ${DURATION}s (cached / uncached requests/s):"
for backend in memory redis; do
    need=$([[ $backend == memory ]] && echo 3 || echo 1.5)
    for w in A B; do
        verdict=""
        [[ $w == B ]] && verdict=$(awk "BEGIN { print (${RATIO[$backend,$w]} >= $need) ? \"(target >= ${need}x: ok)\" : \"(target >= ${need}x: MISS)\" }")
        echo "  $backend $w: ${RATIO[$backend,$w]}x $verdict"
    done
done
