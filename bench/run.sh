#!/usr/bin/env bash
# dbagent benchmark: dbagent's POST /query (driven by wrk) against the same statements run
# directly by pgbench (the ceiling), plus dbagent's CPU per request, memory and round trips
# per request. See BENCHMARKS.md for what is measured and how.
#
#   bash bench/run.sh
#   bash bench/run.sh --compare REF    REF: a git commit (built with cargo build --release in a
#                                      temporary worktree, target in target/bench-base so the next
#                                      build is incremental) or a dbagent binary. Both dbagents and
#                                      pgbench run each cell back to back, in an order that rotates
#                                      from cell to cell, and a second table gives head/base ratios.
#
# Knobs (environment):
#   BENCH_DURATION=10        seconds per measured cell (one workload x one client count)
#   BENCH_WARMUP=1           seconds of warm-up before each cell (not measured; for dbagent
#                            every warm-up response is checked in full, see BENCH_CHECK_BODY)
#   BENCH_CLIENTS="1 16 64"  client counts
#   BENCH_WORKLOADS="A B C"  A point read, B 100-row range read, C single-row update
#   BENCH_SCALE=10           pgbench scale (100000 * scale rows in pgbench_accounts)
#   BENCH_DB=dbagent_bench   database created (and dropped at the end; BENCH_KEEP_DB=1 keeps it)
#   BENCH_POOL_SIZE=64       dbagent pool (DB_POOL_SIZE, with DB_MAX_OVERFLOW=0)
#   BENCH_MEM_SECONDS=2      seconds per cell of the memory run (one dbagent through all cells)
#   BENCH_RT_SECONDS=8       length of the long 1-client run used to count round trips (the
#                            short one is a quarter of it)
#   BENCH_CHECK_BODY=0       1: check every measured response's body in Lua as well
#   BENCH_OUT=<dir>          where raw logs go (default: a new /tmp/dbagent-bench.XXXXXX)
#   BENCH_STRICT=0           1: exit 2 when a target is missed
#   DBAGENT_BIN=<path>       use this binary instead of running `cargo build --release`
#   BENCH_FEATURES="audit monitoring"
#                            what the measured dbagent runs with, any of:
#                              audit       security.audit on (writes are audited)
#                              monitoring  monitoring.enable (collector, history sampler)
#                              keys        API keys required; every request carries a stored
#                                          admin key (created through POST /keys with a bootstrap
#                                          key): the key check, its rate bucket and in-flight cap
#                              tls         TLS to PostgreSQL (sslmode=require; the server must
#                                          have ssl = on); without it sslmode=disable
#                            The old switches still work when BENCH_FEATURES is unset:
#                            BENCH_MONITORING=false, BENCH_AUDIT=false, BENCH_KEY=1.
#   BENCH_BASE_FEATURES      the same for the --compare side (default: BENCH_FEATURES), so one
#                            binary against itself measures a feature's cost in one run:
#                            BENCH_FEATURES="audit monitoring tls" BENCH_BASE_FEATURES="audit monitoring"
#                            bash bench/run.sh --compare target/release/dbagent
#   BENCH_TIMING=0           1: the measured dbagent answers Server-Timing (server.server_timing)
#                            and the report gives each cell's server-side stages (read, classify,
#                            acquire, db, json, total: p50 / p99 / p99.9) beside wrk's latency,
#                            so a tail can be placed inside or outside dbagent's handler
#   BENCH_AGENT_ENV=""       extra NAME=value words for the measured dbagent's environment (an
#                            experiment: TOKIO_WORKER_THREADS=1, a DBAGENT_ setting ...);
#                            BENCH_BASE_AGENT_ENV the same for the --compare side
#   BENCH_PGBENCH=1          0: skip the pgbench ceiling cells (a compare run then has no p99 x)
#   PGHOST/PGPORT/PGUSER     the PostgreSQL server (default 127.0.0.1 / 5432 / postgres, trust)
#   PG_BINDIR                where pgbench and psql are (default /usr/lib/postgresql/15/bin
#                            when it exists, else PATH)
#
# Exit status: 0 when every request succeeded, 1 on any error (a non-2xx answer, a socket
# error, a failed pgbench transaction, dbagent dying, ...), 2 with BENCH_STRICT=1 and a
# missed target.

set -euo pipefail

COMPARE=""
while [[ $# -gt 0 ]]; do
    case $1 in
        --compare) [[ $# -ge 2 ]] || { echo "--compare needs a git commit or a dbagent binary" >&2; exit 1; }
            COMPARE=$2; shift 2 ;;
        --compare=*) COMPARE=${1#--compare=}; shift ;;
        -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 1 ;;
    esac
done

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)

DURATION=${BENCH_DURATION:-10}
WARMUP=${BENCH_WARMUP:-1}
CLIENTS=${BENCH_CLIENTS:-"1 16 64"}
WORKLOADS=${BENCH_WORKLOADS:-"A B C"}
SCALE=${BENCH_SCALE:-10}
DB=${BENCH_DB:-dbagent_bench}
KEEP_DB=${BENCH_KEEP_DB:-0}
POOL=${BENCH_POOL_SIZE:-64}
RT_SECONDS=${BENCH_RT_SECONDS:-8}
MEM_SECONDS=${BENCH_MEM_SECONDS:-2}
CHECK_BODY=${BENCH_CHECK_BODY:-0}
STRICT=${BENCH_STRICT:-0}
RUN_PGBENCH=${BENCH_PGBENCH:-1}
TIMING=${BENCH_TIMING:-0}
if [[ -z ${BENCH_FEATURES+set} ]]; then
    BENCH_FEATURES=""
    [[ ${BENCH_AUDIT:-true} == true ]] && BENCH_FEATURES+="audit "
    [[ ${BENCH_MONITORING:-true} == true ]] && BENCH_FEATURES+="monitoring "
    [[ ${BENCH_KEY:-0} == 1 ]] && BENCH_FEATURES+="keys "
fi
FEATURES=$(echo $BENCH_FEATURES)
BASE_FEATURES=$(echo ${BENCH_BASE_FEATURES-$BENCH_FEATURES})
for f in $FEATURES $BASE_FEATURES; do
    [[ $f =~ ^(audit|monitoring|keys|tls)$ ]] || { echo "unknown feature in BENCH_FEATURES / BENCH_BASE_FEATURES: $f" >&2; exit 1; }
done
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
if [[ -z ${PG_BINDIR:-} && -x /usr/lib/postgresql/15/bin/pgbench ]]; then
    PG_BINDIR=/usr/lib/postgresql/15/bin
fi
PGBENCH=${PG_BINDIR:+$PG_BINDIR/}pgbench
PSQL=${PG_BINDIR:+$PG_BINDIR/}psql
ROWS=$((100000 * SCALE))

[[ $DB =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "BENCH_DB must be a plain lower-case identifier" >&2; exit 1; }

OUT=${BENCH_OUT:-}
if [[ -z $OUT ]]; then
    OUT=$(mktemp -d "${TMPDIR:-/tmp}/dbagent-bench.XXXXXX")
else
    mkdir -p "$OUT"
fi

# ---------------------------------------------------------------------------------------------
# state, cleanup

AGENT_PID=""
CHILD_PID=""
DB_CREATED=0
ERRORS=0
ERROR_LINES=()

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

error() {
    ERRORS=$((ERRORS + 1))
    ERROR_LINES+=("$*")
    log "ERROR: $*"
}

die() {
    log "FATAL: $*"
    exit 1
}

stop_dbagent() {
    local pid=$AGENT_PID
    [[ -n $pid ]] || return 0
    AGENT_PID=""
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "dbagent (pid $pid) did not stop within 10 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $CHILD_PID ]] && kill -0 "$CHILD_PID" 2>/dev/null; then
        kill -TERM "$CHILD_PID" 2>/dev/null || true
        wait "$CHILD_PID" 2>/dev/null || true
    fi
    stop_dbagent
    rm -f "$OUT/dbagent" "$OUT/base/dbagent" "$OUT/.times"
    if [[ -n ${BASE_TREE:-} ]]; then
        git -C "$REPO" worktree remove --force "$BASE_TREE" >/dev/null 2>&1 || true
    fi
    if [[ $DB_CREATED == 1 && $KEEP_DB != 1 ]]; then
        "$PSQL" -XAtq -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 ||
            log "could not drop database $DB"
    fi
    log "raw logs: $OUT"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs a command in the background, its output to OUTFILE, and waits for it, so that a signal
# to this script is handled (and the command killed by cleanup) at once rather than when the
# command ends. The redirection is inside: a trap that runs during the wait must not inherit it.
run_child() { # outfile command...
    local out=$1
    shift
    "$@" >"$out" 2>&1 &
    CHILD_PID=$!
    local rc=0
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    return "$rc"
}

# ---------------------------------------------------------------------------------------------
# helpers

psql_admin() { "$PSQL" -XAtq -v ON_ERROR_STOP=1 -d postgres "$@"; }
psql_bench() { "$PSQL" -XAtq -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

ensure_tool() { # command, debian package
    command -v "$1" >/dev/null 2>&1 && return 0
    log "$1 not found; installing $2 with apt-get"
    if [[ $(id -u) == 0 ]]; then
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    else
        sudo apt-get update -qq >/dev/null && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    fi
    command -v "$1" >/dev/null 2>&1 || die "could not install $2"
}

# key=value lookup in a WRK_RESULT line
kv() { # file key
    grep -m1 '^WRK_RESULT ' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

calc() { awk "BEGIN { printf \"%.6f\", ($*) }"; }
# a / b, or 0 when b is 0. (Not `calc "b > 0 ? a / b : 0"`: gawk folds a constant division by
# zero when it parses, even in a branch that is never taken.)
quotient() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", (b > 0 ? a / b : 0) }'; }

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

cpu_ticks() { # utime + stime of a whole process (all threads), in clock ticks
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# utime + stime of the benchmarked server's processes (its postmaster and the postmaster's
# children: backends, background workers), in clock ticks; other PostgreSQL servers on the
# machine are not counted. Backends that exit during a cell are missed, but dbagent's pooled
# connections and pgbench's live through it. Empty when the server is not local.
server_ticks() {
    [[ -n $SERVER_PID ]] || { echo 0; return; }
    local total=0 pid t
    for pid in "$SERVER_PID" $(pgrep -P "$SERVER_PID"); do
        t=$(cpu_ticks "$pid" 2>/dev/null) || continue
        total=$((total + t))
    done
    echo "$total"
}

status_kb() { # pid field  (VmRSS, VmHWM)
    awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status"
}

# CPU seconds (user+sys) of this shell's reaped children so far. `times` must run in this
# shell, not in a $(...) subshell (whose children counters start at zero).
children_cpu() { # → CHILD_CPU
    times >"$OUT/.times"
    CHILD_CPU=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); printf "%.6f", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$OUT/.times")
}

agent_alive() {
    [[ -n $AGENT_PID ]] && kill -0 "$AGENT_PID" 2>/dev/null
}

# p50 and p99 (µs) of pgbench's per-transaction logs: field 3 is the latency in µs
pgbench_percentiles() { # log files...
    cat "$@" | awk '{ print $3 }' | sort -n | awk '
        { v[NR] = $1 }
        function pct(p,   i) { i = int(NR * p); if (i < NR * p) i++; if (i < 1) i = 1; return v[i] }
        END { if (NR == 0) print "0 0 0"; else print pct(0.50), pct(0.99), NR }'
}

# ---------------------------------------------------------------------------------------------
# preparation

ensure_tool wrk wrk
ensure_tool curl curl
command -v "$PSQL" >/dev/null 2>&1 || die "psql not found (set PG_BINDIR)"
command -v "$PGBENCH" >/dev/null 2>&1 || die "pgbench not found (set PG_BINDIR)"
psql_admin -c 'SELECT 1' >/dev/null || die "cannot connect to PostgreSQL at $PGHOST:$PGPORT as $PGUSER"
# The server's postmaster, when it runs on this machine (for its CPU per request).
SERVER_PID=$(head -1 "$(psql_admin -Atc 'SHOW data_directory')/postmaster.pid" 2>/dev/null || true)

NPROC_START=$(nproc)
LOAD_START=$(loadavg)
STARTED_AT=$(date -u +%Y-%m-%dT%H:%M:%SZ)
log "output directory $OUT; nproc $NPROC_START; load average $LOAD_START"

if [[ -n ${DBAGENT_BIN:-} ]]; then
    BIN=$DBAGENT_BIN
    log "using $BIN (DBAGENT_BIN)"
else
    log "cargo build --release (a no-op when up to date)"
    if ! (cd "$REPO" && cargo build --release --bin dbagent) >"$OUT/build.log" 2>&1; then
        tail -30 "$OUT/build.log" >&2
        die "cargo build --release failed (log: $OUT/build.log)"
    fi
    BIN=$REPO/target/release/dbagent
fi
[[ -x $BIN ]] || die "no dbagent binary at $BIN"
# Run a private copy: another `cargo build --release` during the run must not swap the binary
# between cells.
cp "$BIN" "$OUT/dbagent"
BIN_ORIG=$BIN
BIN=$OUT/dbagent
GIT_REV=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(git -C "$REPO" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | wc -l)

# The --compare side: a binary as given, or a commit built in a worktree of its own.
BASE_BIN=""
BASE_LABEL=""
BASE_TREE=""
if [[ -n $COMPARE ]]; then
    mkdir -p "$OUT/base" # the binary keeps its name: the script checks /proc/PID/comm
    if [[ -f $COMPARE && -x $COMPARE ]]; then
        cp "$COMPARE" "$OUT/base/dbagent"
        BASE_LABEL=$COMPARE
    else
        BASE_REV=$(git -C "$REPO" rev-parse --verify --quiet "$COMPARE^{commit}") ||
            die "--compare $COMPARE: neither an executable file nor a git commit"
        BASE_TREE=$OUT/base-src
        log "building $COMPARE ($BASE_REV) for the comparison (target: $REPO/target/bench-base)"
        git -C "$REPO" worktree add --detach "$BASE_TREE" "$BASE_REV" >"$OUT/base-build.log" 2>&1 ||
            die "git worktree add failed (log: $OUT/base-build.log)"
        if ! (cd "$BASE_TREE" && CARGO_TARGET_DIR="$REPO/target/bench-base" cargo build --release --bin dbagent) >>"$OUT/base-build.log" 2>&1; then
            tail -30 "$OUT/base-build.log" >&2
            die "building $COMPARE failed (log: $OUT/base-build.log)"
        fi
        cp "$REPO/target/bench-base/release/dbagent" "$OUT/base/dbagent"
        git -C "$REPO" worktree remove --force "$BASE_TREE" >/dev/null 2>&1 || true
        BASE_TREE=""
        BASE_LABEL="$(git -C "$REPO" rev-parse --short "$BASE_REV") ($COMPARE)"
    fi
    BASE_BIN=$OUT/base/dbagent
    log "comparing against $BASE_LABEL, features: head [$FEATURES], base [$BASE_FEATURES]"
fi

log "creating database $DB and running pgbench -i -s $SCALE"
psql_admin -c 'SET client_min_messages = warning' -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
psql_admin -c "CREATE DATABASE $DB" >/dev/null
DB_CREATED=1
"$PGBENCH" -i -s "$SCALE" -q "$DB" >"$OUT/pgbench-init.log" 2>&1 || {
    tail -20 "$OUT/pgbench-init.log" >&2
    die "pgbench -i failed"
}
PG_VERSION=$(psql_admin -c 'SHOW server_version')
PG_MAXCONN=$(psql_admin -c 'SHOW max_connections')
HAVE_PGSS=$(psql_admin -c "SELECT count(*) FROM pg_settings WHERE name = 'shared_preload_libraries' AND setting LIKE '%pg_stat_statements%'")

# VACUUM + CHECKPOINT before each side's block, and a CHECKPOINT before each update block, so
# that neither side inherits the other's dead tuples or dirty pages.
settle() {
    psql_bench -c 'VACUUM ANALYZE pgbench_accounts' -c 'CHECKPOINT' >/dev/null
}

# AG_*: keyed "w,c" for the measured dbagent, "base,w,c" for the --compare side.
declare -A PG_TPS PG_P50 PG_P99 PG_CLI AG_RPS AG_P50 AG_P99 AG_CPU AG_UTIL AG_WRK AG_SRV PG_LOAD AG_LOAD

# ---------------------------------------------------------------------------------------------
# ceiling: pgbench, same statements, prepared protocol

pgbench_cell() { # workload clients
    local w=$1 c=$2 j=$(($2 < 2 ? $2 : 2))
    local script="$BENCH_DIR/pgbench/$w.sql" prefix="$OUT/pgbench-$w-$c"
    local args=(-n -M prepared -s "$SCALE" -c "$c" -j "$j" -f "$script" "$DB")
    if [[ $WARMUP != 0 ]]; then
        run_child "$prefix.warmup.out" "$PGBENCH" "${args[@]}" -T "$WARMUP" ||
            error "pgbench warm-up $w/$c failed (see $prefix.warmup.out)"
    fi
    PG_LOAD[$w,$c]=$(loadavg | cut -d' ' -f1)
    local rc=0 cpu0
    children_cpu
    cpu0=$CHILD_CPU
    run_child "$prefix.out" "$PGBENCH" "${args[@]}" -T "$DURATION" -l --log-prefix="$prefix.log" || rc=$?
    children_cpu
    [[ $rc == 0 ]] || error "pgbench $w/$c exited $rc (see $prefix.out)"
    local failed
    failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$prefix.out")
    [[ -z $failed || $failed == 0 ]] || error "pgbench $w/$c: $failed failed transactions"
    PG_TPS[$w,$c]=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$prefix.out" | head -1)
    local txns
    txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$prefix.out")
    PG_CLI[$w,$c]=$(calc "($CHILD_CPU - $cpu0) * 1000000 / (${txns:-0} > 0 ? ${txns:-0} : 1)")
    [[ -n ${PG_TPS[$w,$c]} ]] || { error "pgbench $w/$c printed no tps"; PG_TPS[$w,$c]=0; }
    local p
    read -r -a p < <(pgbench_percentiles "$prefix".log.*)
    PG_P50[$w,$c]=${p[0]}
    PG_P99[$w,$c]=${p[1]}
    rm -f "$prefix".log.* # large; the percentiles are kept in the summary
    log "pgbench  $w c=$c: $(printf '%.0f' "${PG_TPS[$w,$c]}") tps, p50 ${p[0]} µs, p99 ${p[1]} µs (${p[2]} transactions logged)"
}

# ---------------------------------------------------------------------------------------------
# dbagent

PORT=""
TOKEN=""
BOOTSTRAP=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
has() { [[ " $1 " == *" $2 "* ]]; } # features feature
start_dbagent() { # [binary features]: the measured dbagent by default
    local bin=${1:-$BIN} features=${2-$FEATURES} extra=()
    local feature_env=() url="postgresql://$PGUSER@$PGHOST:$PGPORT/$DB"
    has "$features" audit && feature_env+=(DBAGENT_SECURITY__AUDIT__ENABLED=true) || feature_env+=(DBAGENT_SECURITY__AUDIT__ENABLED=false)
    has "$features" monitoring && feature_env+=(DBAGENT_MONITORING__ENABLE=true) || feature_env+=(DBAGENT_MONITORING__ENABLE=false)
    has "$features" keys && feature_env+=(DBAGENT_SECURITY__API_KEYS_REQUIRED=true DBAGENT_ADMIN_KEY="$BOOTSTRAP")
    # Without the feature TLS is off explicitly: libpq's default (prefer) would use it with a
    # server that offers it, as dbagent does since TLS came.
    has "$features" tls && url+="?sslmode=require" || url+="?sslmode=disable"
    if [[ $bin == "$BIN" ]]; then
        [[ $TIMING == 1 ]] && feature_env+=(DBAGENT_SERVER__SERVER_TIMING=true)
        read -r -a extra <<<"${BENCH_AGENT_ENV:-}"
    else
        read -r -a extra <<<"${BENCH_BASE_AGENT_ENV:-}"
    fi
    feature_env+=(${extra[@]+"${extra[@]}"})
    TOKEN=""
    log "starting $([[ $bin == "$BIN" ]] && echo dbagent || echo "the base dbagent") (pool $POOL, max overflow 0; $features)"
    # A clean environment and an empty working directory: no stray dbagent.yaml, CONFIG_PATH,
    # RUST_LOG or DBAGENT_* setting can change what is measured.
    (cd "$OUT" && exec env -i PATH="$PATH" HOME="${HOME:-/root}" \
        DATABASE_URL="$url" \
        DBAGENT_SERVER__PORT=0 DB_POOL_SIZE="$POOL" DB_MAX_OVERFLOW=0 \
        DBAGENT_LOGGING__LEVEL=warn "${feature_env[@]}" \
        "$bin" serve) >"$OUT/dbagent.stdout" 2>"$OUT/dbagent.stderr" &
    AGENT_PID=$!
    for _ in $(seq 1 300); do
        PORT=$(sed -n 's|.*dbagent listening on http://[^:]*:\([0-9]*\).*|\1|p' "$OUT/dbagent.stderr" | head -1)
        [[ -n $PORT ]] && break
        agent_alive || { cat "$OUT/dbagent.stderr" >&2; die "dbagent exited during start-up"; }
        sleep 0.1
    done
    [[ -n $PORT ]] || die "dbagent did not print its address within 30 s"
    [[ $(cat "/proc/$AGENT_PID/comm" 2>/dev/null) == dbagent ]] ||
        die "pid $AGENT_PID is not dbagent; CPU and memory would be read from the wrong process"
    local code=""
    for _ in $(seq 1 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health/ready" || true)
        [[ $code == 200 ]] && break
        sleep 0.1
    done
    [[ $code == 200 ]] || die "GET /health/ready answered $code"
    if has "$features" keys; then
        # A stored key, so the measured path is a real key's: found by id, digest compared.
        TOKEN=$(curl -s -H "Authorization: Bearer $BOOTSTRAP" "http://127.0.0.1:$PORT/keys" \
            -d '{"name": "bench", "scopes": ["admin"], "rate": "1000000/s", "max_concurrent": 100000}' |
            sed -n 's/.*"secret":"\([^"]*\)".*/\1/p')
        [[ -n $TOKEN ]] || die "could not create the benchmark's API key"
    fi
    # the pool opens its min_size connections in the background: wait for all of them
    local n=0
    for _ in $(seq 1 200); do
        n=$(psql_admin -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB' AND application_name = 'dbagent'")
        [[ $n -ge $POOL ]] && break
        sleep 0.1
    done
    log "dbagent pid $AGENT_PID on port $PORT, $n server connections"
}

# one wrk run; sets WRK_FILE. Errors (non-2xx, bad bodies, socket errors) are reported.
wrk_run() { # label workload clients seconds check(0|1) [timing(0|1)]
    local label=$1 w=$2 c=$3 secs=$4 check=$5 timing=${6:-0}
    local t=$(($3 < 2 ? $3 : 2))
    WRK_FILE="$OUT/wrk-$label.out"
    local rc=0
    run_child "$WRK_FILE" wrk -t"$t" -c"$c" -d"${secs}s" --timeout 10s -s "$BENCH_DIR/query.lua" \
        "http://127.0.0.1:$PORT" -- "$w" "$ROWS" "$check" 0 "$TOKEN" "$([[ $timing == 1 ]] && echo "$OUT/timing-$label" || echo 0)" || rc=$?
    [[ $rc == 0 ]] || error "wrk $label exited $rc (see $WRK_FILE)"
    if ! grep -q '^WRK_RESULT ' "$WRK_FILE"; then
        error "wrk $label printed no result (see $WRK_FILE)"
        echo "WRK_RESULT requests=0 duration_us=1 rps=0 p50_us=0 p90_us=0 p99_us=0 max_us=0 non2xx=0 bad_body=0 connect=0 read=0 write=0 timeout=0 status_gt399=0" >>"$WRK_FILE"
    fi
    local k bad=""
    for k in non2xx bad_body status_gt399 connect read write timeout; do
        local v
        v=$(kv "$WRK_FILE" "$k")
        [[ $v == 0 ]] || bad+=" $k=$v"
    done
    [[ -z $bad ]] || error "wrk $label:$bad (see $WRK_FILE; dbagent log $OUT/dbagent.stderr)"
    [[ $(kv "$WRK_FILE" requests) -gt 0 ]] || error "wrk $label completed no request"
    agent_alive || die "dbagent died during $label (see $OUT/dbagent.stderr)"
}

# Per stage of Server-Timing lines ("read;dur=0.012, ..., total;dur=0.3"): "stage n p50 p99
# p99.9" in µs.
timing_percentiles() { # files...
    cat "$@" 2>/dev/null | awk -F', ' '{ for (i = 1; i <= NF; i++) { split($i, kv, ";dur="); if (kv[2] != "") print kv[1], int(kv[2] * 1000) } }' |
        sort -k1,1 -k2,2n | awk '
        function flush(   i) {
            if (n == 0) return
            printf "%s %d %d %d %d\n", name, n, v[idx(0.50)], v[idx(0.99)], v[idx(0.999)]
        }
        function idx(p,   i) { i = int(n * p); if (i < n * p) i++; if (i < 1) i = 1; return i }
        $1 != name { flush(); name = $1; n = 0 }
        { v[++n] = $2 }
        END { flush() }'
}

dbagent_cell() { # workload clients [key prefix: "base," for the --compare side]
    local w=$1 c=$2 kp=${3:-}
    local k=$kp$w,$c label=${kp//,/-}$w-$c
    if [[ $WARMUP != 0 ]]; then
        wrk_run "$label-warmup" "$w" "$c" "$WARMUP" 1
    fi
    AG_LOAD[$k]=$(loadavg | cut -d' ' -f1)
    local before after cpu0 server0 server1
    children_cpu
    cpu0=$CHILD_CPU
    server0=$(server_ticks)
    before=$(cpu_ticks "$AGENT_PID")
    wrk_run "$label" "$w" "$c" "$DURATION" "$CHECK_BODY" "$([[ -z $kp ]] && echo "$TIMING" || echo 0)"
    after=$(cpu_ticks "$AGENT_PID")
    server1=$(server_ticks)
    children_cpu
    local req dur
    req=$(kv "$WRK_FILE" requests)
    dur=$(kv "$WRK_FILE" duration_us)
    AG_RPS[$k]=$(kv "$WRK_FILE" rps)
    AG_P50[$k]=$(kv "$WRK_FILE" p50_us)
    AG_P99[$k]=$(kv "$WRK_FILE" p99_us)
    AG_CPU[$k]=$(calc "($after - $before) * 1000000 / $CLK_TCK / ($req > 0 ? $req : 1)")
    AG_UTIL[$k]=$(calc "($after - $before) / $CLK_TCK / ($dur / 1000000)")
    AG_WRK[$k]=$(calc "($CHILD_CPU - $cpu0) * 1000000 / ($req > 0 ? $req : 1)")
    AG_SRV[$k]=$(calc "($server1 - $server0) * 1000000 / $CLK_TCK / ($req > 0 ? $req : 1)")
    if [[ $TIMING == 1 && -z $kp ]]; then
        timing_percentiles "$OUT/timing-$label".* | sed "s/^/$w $c /" >>"$OUT/timing.txt"
        grep -q "^$w $c total " "$OUT/timing.txt" || error "no Server-Timing in $label"
    fi
    log "${kp:+base }dbagent  $w c=$c: $(printf '%.0f' "${AG_RPS[$k]}") req/s, p50 ${AG_P50[$k]} µs, p99 ${AG_P99[$k]} µs, CPU $(printf '%.1f' "${AG_CPU[$k]}") µs/req ($(printf '%.2f' "${AG_UTIL[$k]}") cores), server CPU $(printf '%.1f' "${AG_SRV[$k]}") µs/req, wrk CPU $(printf '%.1f' "${AG_WRK[$k]}") µs/req"
}

CLK_TCK=$(getconf CLK_TCK)

# ---------------------------------------------------------------------------------------------
# throughput and latency: each cell runs pgbench and dbagent back to back, in an order that
# flips from cell to cell, so that both see the same machine. dbagent is started for its cell
# and stopped after it: a 64-connection pool left open while pgbench opens 64 more would
# exceed a default max_connections = 100.

log "cells: pgbench -M prepared and dbagent (wrk POST /query), ${DURATION}s each (+${WARMUP}s warm-up)"
settle
SIDES="dbagent"
[[ $RUN_PGBENCH == 1 ]] && SIDES="pgbench $SIDES"
[[ -n $BASE_BIN ]] && SIDES="$SIDES base"
rotate() { # n words... → the words rotated left by n
    local n=$1
    shift
    local words=("$@") i
    for ((i = 0; i < ${#words[@]}; i++)); do
        printf '%s ' "${words[$(((i + n) % ${#words[@]}))]}"
    done
}
LAST_C=$(echo "$CLIENTS" | awk '{ print $NF }')
CELL_PEAK=0
cell_index=0
for w in $WORKLOADS; do
    for c in $CLIENTS; do
        for side in $(rotate "$cell_index" $SIDES); do
            [[ $w == C ]] && psql_bench -c CHECKPOINT >/dev/null
            if [[ $side == pgbench ]]; then
                pgbench_cell "$w" "$c"
            elif [[ $side == base ]]; then
                start_dbagent "$BASE_BIN" "$BASE_FEATURES"
                dbagent_cell "$w" "$c" base,
                stop_dbagent
            else
                start_dbagent
                dbagent_cell "$w" "$c"
                if [[ $c == "$LAST_C" ]]; then
                    hwm=$(status_kb "$AGENT_PID" VmHWM)
                    if ((hwm > CELL_PEAK)); then CELL_PEAK=$hwm; fi
                fi
                stop_dbagent
            fi
        done
        cell_index=$((cell_index + 1))
    done
done

# ---------------------------------------------------------------------------------------------
# memory: one dbagent serves every workload at every client count in turn (BENCH_MEM_SECONDS
# each): RSS when idle (pool open, before any request) and its high-water mark afterwards.

# One dbagent ([binary features], the measured one by default) through every cell; sets
# MEM_IDLE, MEM_PEAK and MEM_AFTER (kB). LABEL names its wrk logs.
memory_run() { # label [binary features]
    local label=$1
    shift
    start_dbagent "$@"
    sleep 1
    MEM_IDLE=$(status_kb "$AGENT_PID" VmRSS)
    for w in $WORKLOADS; do
        for c in $CLIENTS; do wrk_run "mem-$label$w-$c" "$w" "$c" "$MEM_SECONDS" 1; done
    done
    MEM_PEAK=$(status_kb "$AGENT_PID" VmHWM)
    MEM_AFTER=$(status_kb "$AGENT_PID" VmRSS)
    stop_dbagent
}

log "memory: one dbagent through all cells, ${MEM_SECONDS}s each"
memory_run ""
RSS_IDLE=$MEM_IDLE RSS_PEAK=$MEM_PEAK RSS_AFTER=$MEM_AFTER
log "dbagent RSS idle ${RSS_IDLE} kB, peak (VmHWM) ${RSS_PEAK} kB, now ${RSS_AFTER} kB; peak of the per-cell instances after their $LAST_C-client cells ${CELL_PEAK} kB"
if [[ -n $BASE_BIN ]]; then
    memory_run base- "$BASE_BIN" "$BASE_FEATURES"
    BASE_RSS_IDLE=$MEM_IDLE BASE_RSS_PEAK=$MEM_PEAK
    log "base dbagent RSS idle ${BASE_RSS_IDLE} kB, peak (VmHWM) ${BASE_RSS_PEAK} kB"
fi

# ---------------------------------------------------------------------------------------------
# round trips per request
#
# pg_stat_database.xact_commit of the bench database counts every transaction its backends
# commit, including the implicit one around each Sync of the extended protocol and each
# simple Query message: a statement sent alone counts 1; a pre-ping (empty query), a reset or
# a SET sent with it count one more each.
#
# A backend publishes its counters lazily (PostgreSQL 15: at most once a second while busy;
# an empty query touches no table and is only published with the backend's next real
# statement), but always when it exits. So each count is taken with no backend left in the
# bench database: a fresh dbagent serves R 1-client point reads and is stopped, and the
# difference in xact_commit covers everything it did. Doing that twice, for a short and a
# long run, and taking the slope (commits2 - commits1) / (requests2 - requests1) cancels the
# per-instance fixed cost (connection start-up, PREPARE on each connection, first-use pings),
# leaving the per-request cost plus dbagent's health check (about 1 ping a second, so
# ~0.001 commits per request at these rates). idx_scan on pgbench_accounts_pkey is the
# cross-check: exactly one statement executed per request.

wait_db_empty() { # until no backend is connected to the bench database
    local n=1
    for _ in $(seq 1 150); do
        n=$(psql_admin -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$DB'")
        [[ $n == 0 ]] && break
        sleep 0.1
    done
    [[ $n == 0 ]] || error "backends still connected to $DB after 15 s"
    sleep 0.5 # a leaving backend flushes its statistics about when it leaves pg_stat_activity
}

read_counters() { # → "xact_commit xact_rollback idx_scan"
    local x i
    x=$(psql_admin -F' ' -c "SELECT xact_commit, xact_rollback FROM pg_stat_database WHERE datname = '$DB'")
    i=$(psql_bench -c "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = 'pgbench_accounts_pkey'")
    echo "$x $i"
}

rt_run() { # label seconds → RT=(requests commits rollbacks idx_scans)
    local c0 r0 i0 c1 r1 i1 n
    wait_db_empty
    read -r c0 r0 i0 < <(read_counters)
    start_dbagent
    wrk_run "$1" A 1 "$2" 1
    n=$(kv "$WRK_FILE" requests)
    stop_dbagent
    wait_db_empty
    read -r c1 r1 i1 < <(read_counters)
    RT=("$n" $((c1 - c0)) $((r1 - r0)) $((i1 - i0)))
}

RT_COMMITS=""
if [[ " $WORKLOADS " == *" A "* ]]; then
    RT_SHORT=$(((RT_SECONDS + 3) / 4))
    log "round trips: fresh dbagent, 1-client point reads for ${RT_SHORT}s and for ${RT_SECONDS}s"
    rt_run rt-short "$RT_SHORT"
    RT_N1=${RT[0]} RT_C1=${RT[1]} RT_R1=${RT[2]} RT_I1=${RT[3]}
    rt_run rt-long "$RT_SECONDS"
    RT_N2=${RT[0]} RT_C2=${RT[1]} RT_R2=${RT[2]} RT_I2=${RT[3]}
    RT_REQ=$((RT_N2 - RT_N1))
    if [[ $RT_REQ -gt 0 ]]; then
        RT_COMMITS=$(calc "($RT_C2 - $RT_C1) / $RT_REQ")
        RT_IDX=$(calc "($RT_I2 - $RT_I1) / $RT_REQ")
        RT_FIXED=$(calc "$RT_C1 - $RT_COMMITS * $RT_N1")
    else
        error "the round-trip runs completed no extra request"
    fi
    RT_ROLLBACKS=$((RT_R1 + RT_R2))
    {
        echo "short run: $RT_N1 requests, $RT_C1 commits, $RT_R1 rollbacks, $RT_I1 index scans"
        echo "long run:  $RT_N2 requests, $RT_C2 commits, $RT_R2 rollbacks, $RT_I2 index scans"
        echo "slope: commits/request $RT_COMMITS, index scans/request $RT_IDX; fixed per dbagent instance $RT_FIXED commits"
    } >"$OUT/round-trips.txt"
    log "$(tail -1 "$OUT/round-trips.txt")"
    [[ $RT_ROLLBACKS == 0 ]] || error "$RT_ROLLBACKS rolled-back transactions during the round-trip count"
fi

LOAD_END=$(loadavg)
NPROC_END=$(nproc)

# Cells not run (BENCH_PGBENCH=0) report zeros.
for w in $WORKLOADS; do
    for c in $CLIENTS; do
        for a in PG_TPS PG_P50 PG_P99 PG_CLI PG_LOAD; do
            declare -n cell=$a
            [[ -n ${cell[$w,$c]:-} ]] || cell[$w,$c]=0
            unset -n cell
        done
    done
done

# ---------------------------------------------------------------------------------------------
# report

verdict() { # ok-expression(awk) → "ok" / "MISS" (counted from the summary afterwards)
    if awk "BEGIN { exit !($1) }"; then echo ok; else echo MISS; fi
}
ms() { calc "$1 / 1000" | awk '{ printf "%.3f", $1 }'; }

report() {
    echo
    echo "dbagent benchmark — $STARTED_AT — features [$FEATURES] — dbagent $GIT_REV$([[ $GIT_DIRTY != 0 ]] && echo " (+$GIT_DIRTY uncommitted changes in src/)") — $BIN_ORIG"
    echo "PostgreSQL $PG_VERSION (max_connections $PG_MAXCONN), pgbench scale $SCALE, ${DURATION}s per cell (+${WARMUP}s warm-up), pool $POOL"
    echo
    printf '%-2s %3s | %9s %8s %8s | %9s %8s %8s | %5s %-9s | %6s %-4s | %6s | %s\n' \
        wl cl "dbagent/s" "p50 ms" "p99 ms" "pgbench/s" "p50 ms" "p99 ms" ratio target "p99 x" "<=3" "cpu us" "load ag/pg"
    printf -- '-%.0s' $(seq 1 116); echo
    local w c
    for w in $WORKLOADS; do
        local need=0.60
        [[ $w == B ]] && need=0.50
        for c in $CLIENTS; do
            local ratio p99x tgt p99v
            ratio=$(quotient "${AG_RPS[$w,$c]}" "${PG_TPS[$w,$c]}")
            p99x=$(quotient "${AG_P99[$w,$c]}" "${PG_P99[$w,$c]}")
            if [[ $c -ge 16 ]]; then
                tgt=">=$(awk "BEGIN { printf \"%.0f\", $need * 100 }")% $(verdict "$ratio >= $need")"
            else
                tgt="(info)"
            fi
            p99v=$(verdict "$p99x <= 3")
            printf '%-2s %3s | %9.0f %8s %8s | %9.0f %8s %8s | %4.0f%% %-9s | %5.2fx %-4s | %6.1f | %s/%s\n' \
                "$w" "$c" "${AG_RPS[$w,$c]}" "$(ms "${AG_P50[$w,$c]}")" "$(ms "${AG_P99[$w,$c]}")" \
                "${PG_TPS[$w,$c]}" "$(ms "${PG_P50[$w,$c]}")" "$(ms "${PG_P99[$w,$c]}")" \
                "$(calc "$ratio * 100")" "$tgt" "$p99x" "$p99v" "${AG_CPU[$w,$c]}" \
                "${AG_LOAD[$w,$c]}" "${PG_LOAD[$w,$c]}"
        done
    done
    echo "(ratio = dbagent req/s / pgbench tps, target at 16+ clients; p99 x = dbagent p99 / pgbench p99;"
    echo " cpu us = dbagent CPU time (user+sys) per request in that cell; load = 1-min load average when"
    echo " the dbagent / pgbench cell started; the cells' own load counts in it)"
    echo
    echo "efficiency"
    local first_c last_c
    first_c=$(echo "$CLIENTS" | awk '{ print $1 }')
    last_c=$(echo "$CLIENTS" | awk '{ print $NF }')
    for w in A B; do
        [[ " $WORKLOADS " == *" $w "* ]] || continue
        local max=50
        [[ $w == B ]] && max=150
        local line="" c
        for c in $CLIENTS; do
            line+=" $c cl: $(printf '%.1f' "${AG_CPU[$w,$c]}") µs $(verdict "${AG_CPU[$w,$c]} <= $max");"
        done
        echo "  CPU per request $w (target ≤ $max µs):${line%;}"
        line=""
        for c in $CLIENTS; do
            line+=" $c cl: pgbench $(printf '%.1f' "${PG_CLI[$w,$c]}") µs/txn, wrk $(printf '%.1f' "${AG_WRK[$w,$c]}") µs/req;"
        done
        echo "    for scale, the load generators' own CPU:${line%;}"
    done
    echo "  RSS idle $(calc "$RSS_IDLE / 1024" | awk '{ printf "%.1f", $1 }') MB (target < 20 MB) $(verdict "$RSS_IDLE < 20 * 1024")"
    echo "  RSS peak (VmHWM of one dbagent after every cell, up to $last_c clients) $(calc "$RSS_PEAK / 1024" | awk '{ printf "%.1f", $1 }') MB (target < 50 MB) $(verdict "$RSS_PEAK < 50 * 1024")"
    echo "    (largest VmHWM of the per-cell instances after their $last_c-client cell: $(calc "$CELL_PEAK / 1024" | awk '{ printf "%.1f", $1 }') MB)"
    if [[ -n ${AG_P50[A,$first_c]:-} && $first_c == 1 ]]; then
        echo "  p50 at 1 client, A: $(ms "${AG_P50[A,1]}") ms (target ≤ 0.35 ms) $(verdict "${AG_P50[A,1]} <= 350"); pgbench $(ms "${PG_P50[A,1]}") ms"
    fi
    if [[ -n $RT_COMMITS ]]; then
        echo "  round trips per request (xact_commit slope over $RT_REQ 1-client point reads): $(printf '%.3f' "$RT_COMMITS") (target 1.0) $(verdict "$RT_COMMITS < 1.02")"
        echo "    index scans per request $(printf '%.3f' "$RT_IDX"); fixed cost per dbagent start $(printf '%.0f' "$RT_FIXED") commits (pool of $POOL); rollbacks $RT_ROLLBACKS; pg_stat_statements loaded: $([[ $HAVE_PGSS == 1 ]] && echo yes || echo no)"
    fi
    if [[ -n $BASE_BIN ]]; then
        echo
        echo "compared with $BASE_LABEL (features: head [$FEATURES], base [$BASE_FEATURES]); each cell's sides ran back to back"
        printf '%-2s %3s | %9s %9s %7s | %8s %8s %7s | %8s %8s %7s | %7s %7s %7s\n' \
            wl cl "head/s" "base/s" "ratio" "p50 head" "p50 base" ratio "p99 head" "p99 base" ratio "cpu h" "cpu b" ratio
        printf -- '-%.0s' $(seq 1 124); echo
        for w in $WORKLOADS; do
            for c in $CLIENTS; do
                local b=base,$w,$c
                printf '%-2s %3s | %9.0f %9.0f %6.1f%% | %8s %8s %6.1f%% | %8s %8s %6.1f%% | %7.1f %7.1f %6.1f%%\n' "$w" "$c" \
                    "${AG_RPS[$w,$c]}" "${AG_RPS[$b]}" "$(calc "100 * $(quotient "${AG_RPS[$w,$c]}" "${AG_RPS[$b]}")")" \
                    "$(ms "${AG_P50[$w,$c]}")" "$(ms "${AG_P50[$b]}")" "$(calc "100 * $(quotient "${AG_P50[$w,$c]}" "${AG_P50[$b]}")")" \
                    "$(ms "${AG_P99[$w,$c]}")" "$(ms "${AG_P99[$b]}")" "$(calc "100 * $(quotient "${AG_P99[$w,$c]}" "${AG_P99[$b]}")")" \
                    "${AG_CPU[$w,$c]}" "${AG_CPU[$b]}" "$(calc "100 * $(quotient "${AG_CPU[$w,$c]}" "${AG_CPU[$b]}")")"
            done
        done
        echo "(ratio = head / base: above 100 % is more requests per second, or a longer latency, or more CPU per request)"
        echo "  RSS idle: head $(calc "$RSS_IDLE / 1024" | awk '{ printf "%.1f", $1 }') MB, base $(calc "$BASE_RSS_IDLE / 1024" | awk '{ printf "%.1f", $1 }') MB; peak: head $(calc "$RSS_PEAK / 1024" | awk '{ printf "%.1f", $1 }') MB, base $(calc "$BASE_RSS_PEAK / 1024" | awk '{ printf "%.1f", $1 }') MB"
    fi
    if [[ $TIMING == 1 && -s $OUT/timing.txt ]]; then
        echo
        echo "server-side stages (Server-Timing, µs) against wrk's latency of the same requests"
        printf '%-2s %3s %-9s %9s %8s %8s %8s\n' wl cl stage n p50 p99 p99.9
        local line
        while read -r w c stage n p50 p99 p999; do
            printf '%-2s %3s %-9s %9s %8s %8s %8s\n' "$w" "$c" "$stage" "$n" "$p50" "$p99" "$p999"
        done <"$OUT/timing.txt"
        for w in $WORKLOADS; do
            for c in $CLIENTS; do
                printf '%-2s %3s %-9s %9s %8s %8s\n' "$w" "$c" "wrk" "" "${AG_P50[$w,$c]}" "${AG_P99[$w,$c]}"
            done
        done
    fi
    echo
    echo "machine: nproc $NPROC_START at start, $NPROC_END at end; load average $LOAD_START at start, $LOAD_END at end"
    if [[ $ERRORS != 0 ]]; then
        echo
        echo "ERRORS ($ERRORS):"
        printf '  %s\n' "${ERROR_LINES[@]}"
    fi
}

{
    printf 'workload\tclients\tdbagent_rps\tdbagent_p50_us\tdbagent_p99_us\tdbagent_cpu_us_per_req\tdbagent_cores\twrk_cpu_us_per_req\tpgbench_tps\tpgbench_p50_us\tpgbench_p99_us\tpgbench_cpu_us_per_txn\tload_dbagent\tload_pgbench\n'
    for w in $WORKLOADS; do
        for c in $CLIENTS; do
            printf '%s\t' "$w" "$c" "${AG_RPS[$w,$c]}" "${AG_P50[$w,$c]}" "${AG_P99[$w,$c]}" "${AG_CPU[$w,$c]}" \
                "${AG_UTIL[$w,$c]}" "${AG_WRK[$w,$c]}" "${PG_TPS[$w,$c]}" "${PG_P50[$w,$c]}" "${PG_P99[$w,$c]}" \
                "${PG_CLI[$w,$c]}" "${AG_LOAD[$w,$c]}"
            printf '%s\n' "${PG_LOAD[$w,$c]}"
        done
    done
} >"$OUT/cells.tsv"
report >"$OUT/summary.txt"
cat "$OUT/summary.txt"
# (grep -c prints 0 and exits 1 when nothing is missed; that is not a failure.)
MISSED=$(grep -c 'MISS' "$OUT/summary.txt" || true)

if [[ $ERRORS != 0 ]]; then
    exit 1
fi
if [[ $STRICT == 1 && $MISSED != 0 ]]; then
    exit 2
fi
exit 0
