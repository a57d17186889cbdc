#!/usr/bin/env bash
# Where the one-client tail comes from (issue 22): workload A (a prepared point read) at one
# client, five ways, in rounds whose order rotates, so that every side sees the same machine:
#
#   pgbench   pgbench -M prepared -c 1 (the ceiling)
#   dbagent   wrk -c 1 POST /query against a release dbagent serve (pool 4)
#   spawned   examples/roundtrip.rs: tokio-postgres alone, connection in its own task, multi-thread
#             runtime (how dbagent drives a connection)
#   current   the same on a current-thread runtime (task hops, no thread hops)
#   inline    one task polls the connection and the query together (no hop)
#   serve     wrk -c 1 POST /query against examples/roundtrip.rs serve: the smallest axum server
#             running the statement on a spawned connection (everything dbagent adds, removed)
#   ping      wrk -c 1 GET /ping of that server: the HTTP hop alone, no database
#   live      wrk -c 1 GET /health/live of dbagent: dbagent's HTTP hop alone
#   pingstd   wrk -c 1 against examples/roundtrip.rs serve-std, a blocking thread-per-connection
#             server with the same answer: the HTTP hop without tokio or hyper
#   dbagent1, serve1   (not by default) the same two on one thread (TOKIO_WORKER_THREADS=1,
#             a current-thread runtime)
#
#   bash bench/roundtrip.sh               # 5 rounds of 8 s per side, about 6 minutes
#   ROUNDS=3 SECS=5 bash bench/roundtrip.sh
#
# Prints each round's p50 / p99 / p99.9 (µs) per side, then per side the median over rounds of
# p99 and of p99 ÷ pgbench's p99 in the same round. Needs what bench/run.sh needs (a local
# PostgreSQL reachable as postgres without a password, pgbench, psql, wrk, cargo).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
SECS=${SECS:-8}
PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
DB=${BENCH_DB:-dbagent_roundtrip}
SIDES=${SIDES:-pgbench dbagent serve ping pingstd live spawned current inline}
export PGHOST PGPORT PGUSER
URL="postgresql://$PGUSER@$PGHOST:$PGPORT/$DB"
OUT=$(mktemp -d /tmp/dbagent-roundtrip.XXXXXX)
SERVERS=()

cleanup() {
    set +e # a server already gone must not stop the others' cleanup
    local pid
    for pid in "${SERVERS[@]}"; do pkill -P "$pid" 2>/dev/null; kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
    "$PG_BINDIR/psql" -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v wrk >/dev/null || { apt-get install -y -q wrk >/dev/null; }
echo "building (release): dbagent and examples/roundtrip" >&2
cargo build --release -q --bin dbagent --example roundtrip
cp target/release/dbagent target/release/examples/roundtrip "$OUT/"

"$PG_BINDIR/psql" -q -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
"$PG_BINDIR/pgbench" -i -s 10 -q "$DB" >"$OUT/init.log" 2>&1
"$PG_BINDIR/psql" -q -d "$DB" -c "VACUUM ANALYZE pgbench_accounts" -c CHECKPOINT >/dev/null

# The HTTP sides' servers start once, before the rounds (pools warm, as in production), and
# each gets its port in PORTS[server].
declare -A PORTS=()
server_of() { case $1 in live) echo dbagent ;; ping) echo serve ;; *) echo "$1" ;; esac; }
dbagent_serve() { # extra NAME=value...
    env -i PATH="$PATH" HOME="${HOME:-/root}" DATABASE_URL="$URL?sslmode=disable" \
        DBAGENT_SERVER__PORT=0 DB_POOL_SIZE=4 DB_MAX_OVERFLOW=0 DBAGENT_LOGGING__LEVEL=warn \
        DBAGENT_SECURITY__AUDIT__ENABLED=false DBAGENT_MONITORING__ENABLE=false "$@" ./dbagent serve
}
start_server() { # server command... (run in $OUT; prints its port on stderr)
    local server=$1 port=""
    shift
    (cd "$OUT" && "$@") >"$OUT/$server.stdout" 2>"$OUT/$server.stderr" &
    SERVERS+=("$!")
    for _ in $(seq 1 300); do
        port=$(sed -n -e 's|.*dbagent listening on http://[^:]*:\([0-9]*\).*|\1|p' -e 's/^listening on //p' "$OUT/$server.stderr" | head -1)
        [[ -n $port ]] && break
        sleep 0.1
    done
    [[ -n $port ]] || { cat "$OUT/$server.stderr" >&2; exit 1; }
    PORTS[$server]=$port
    if [[ $server == dbagent* ]]; then
        until curl -sf -o /dev/null "http://127.0.0.1:$port/health/ready"; do sleep 0.1; done
    fi
}
for side in $SIDES; do
    server=$(server_of "$side")
    [[ -z ${PORTS[$server]:-} ]] || continue
    case $server in
    dbagent) start_server dbagent dbagent_serve ;;
    dbagent1) start_server dbagent1 dbagent_serve TOKIO_WORKER_THREADS=1 ;;
    pingstd) start_server pingstd ./roundtrip serve-std 0 - ;;
    serve | serve1) start_server "$server" ./roundtrip "$server" 0 "$URL" ;;
    esac
done

cat >"$OUT/get.lua" <<'EOF'
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format("GET_RESULT p50_us=%d p99_us=%d p999_us=%d errors=%d\n",
      latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
      e.connect + e.read + e.write + e.timeout + e.status))
end
EOF

percentiles() { # numbers on stdin (µs) → "p50 p99 p999"
    sort -n | awk '{ v[NR] = $1 }
        function pct(p,   i) { i = int(NR * p); if (i < NR * p) i++; if (i < 1) i = 1; return v[i] }
        END { print pct(0.50), pct(0.99), pct(0.999) }'
}

side() { # name → "p50 p99 p999"
    case $1 in
    pgbench)
        rm -f "$OUT"/pgbench.log*
        "$PG_BINDIR/pgbench" -n -M prepared -s 10 -c 1 -T 1 -f bench/pgbench/A.sql "$DB" >/dev/null 2>&1
        "$PG_BINDIR/pgbench" -n -M prepared -s 10 -c 1 -T "$SECS" -l --log-prefix="$OUT/pgbench.log" \
            -f bench/pgbench/A.sql "$DB" >"$OUT/pgbench.out" 2>&1
        cat "$OUT"/pgbench.log.* | awk '{ print $3 }' | percentiles ;;
    dbagent | dbagent1 | serve | serve1)
        local port=${PORTS[$1]}
        # Bodies are checked in the warm-up only (as bench/run.sh does: checking costs wrk CPU).
        wrk -t1 -c1 -d1s -s bench/query.lua "http://127.0.0.1:$port" -- A 1000000 1 >"$OUT/wrk.out"
        grep -q 'non2xx=0 bad_body=0' "$OUT/wrk.out" || { echo "$1 errors: $(cat "$OUT/wrk.out")" >&2; exit 1; }
        wrk -t1 -c1 -d"${SECS}s" --timeout 10s -s bench/query.lua "http://127.0.0.1:$port" -- A 1000000 0 >"$OUT/wrk.out"
        local line
        line=$(grep '^WRK_RESULT ' "$OUT/wrk.out")
        grep -q 'non2xx=0 bad_body=0' <<<"$line" || { echo "$1 errors: $line" >&2; exit 1; }
        sed -E 's/.*p50_us=([0-9]+).*p99_us=([0-9]+) p999_us=([0-9]+).*/\1 \2 \3/' <<<"$line" ;;
    ping | pingstd | live)
        local path=/ping
        [[ $1 == live ]] && path=/health/live
        local url="http://127.0.0.1:${PORTS[$(server_of "$1")]}$path"
        wrk -t1 -c1 -d1s "$url" >/dev/null
        wrk -t1 -c1 -d"${SECS}s" --timeout 10s -s "$OUT/get.lua" "$url" >"$OUT/wrk.out"
        sed -n -E 's/^GET_RESULT p50_us=([0-9]+) p99_us=([0-9]+) p999_us=([0-9]+) errors=0$/\1 \2 \3/p' "$OUT/wrk.out" | grep . ||
            { echo "$1: $(cat "$OUT/wrk.out")" >&2; exit 1; } ;;
    *)
        "$OUT/roundtrip" "$1" "$SECS" "$URL" 10 | sed -E 's/.*p50_us=([0-9]+) p99_us=([0-9]+) p999_us=([0-9]+).*/\1 \2 \3/' ;;
    esac
}

read -r -a sides <<<"$SIDES"
n=${#sides[@]}
printf '%-6s %-8s %8s %8s %8s\n' round side p50 p99 p99.9
for ((r = 0; r < ROUNDS; r++)); do
    for ((i = 0; i < n; i++)); do
        s=${sides[$(((i + r) % n))]}
        read -r p50 p99 p999 < <(side "$s")
        printf '%-6s %-8s %8s %8s %8s\n' "$r" "$s" "$p50" "$p99" "$p999"
        echo "$r $s $p50 $p99" >>"$OUT/cells"
    done
done

echo
echo "median over $ROUNDS rounds (p99 ratio: the side's p99 ÷ pgbench's p99 in the same round)"
printf '%-8s %10s %10s %14s\n' side 'p50 µs' 'p99 µs' 'p99 / pgbench'
for s in "${sides[@]}"; do
    p50=$(awk -v s="$s" '$2 == s { print $3 }' "$OUT/cells" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    p99=$(awk -v s="$s" '$2 == s { print $4 }' "$OUT/cells" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
    ratio=$(awk -v s="$s" '$2 == "pgbench" { pg[$1] = $4 } $2 == s { me[$1] = $4 }
        END { for (r in me) if (pg[r] > 0) print me[r] / pg[r] }' "$OUT/cells" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR) printf "%.2f", v[int((NR + 1) / 2)]; else print "-" }')
    printf '%-8s %10s %10s %14s\n' "$s" "$p50" "$p99" "$ratio"
done
echo "raw cells: $OUT/cells" >&2
