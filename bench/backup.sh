#!/usr/bin/env bash
# Backup benchmark (issue: backups): on a `pgbench -i -s 50` database, `dbagent backup create`
# (zstd + AES-256-GCM + SHA-256) against plain `pg_dump -Fc`, and `dbagent restore` against
# plain `pg_restore`, in the same run, in the order A B B A so both see the same machine;
# prints times, sizes and ratios against the targets (backup ≤ 1.15× pg_dump's time and smaller
# on disk; restore ≤ 1.15× pg_restore's time).
#
#   bash bench/backup.sh
#
# Knobs: BENCH_SCALE=50, BENCH_DB=dbagent_backup_bench, DBAGENT_BIN (default: cargo build
# --release), PGHOST/PGPORT/PGUSER (default 127.0.0.1/5432/postgres), PG_BINDIR.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
SCALE=${BENCH_SCALE:-50}
DB=${BENCH_DB:-dbagent_backup_bench}
export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
if [[ -z ${PG_BINDIR:-} && -x /usr/lib/postgresql/15/bin/pg_dump ]]; then PG_BINDIR=/usr/lib/postgresql/15/bin; fi
BIN=${PG_BINDIR:+$PG_BINDIR/}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/dbagent-backup-bench.XXXXXX")
log() { printf '[backup-bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
psql_admin() { "${BIN}psql" -XAtq -v ON_ERROR_STOP=1 -d postgres "$@"; }
cleanup() {
    for d in "$DB" "${DB}_r1" "${DB}_r2" "${DB}_r3" "${DB}_r4"; do psql_admin -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
    rm -rf "$OUT"
}
trap cleanup EXIT

if [[ -z ${DBAGENT_BIN:-} ]]; then
    log "cargo build --release"
    (cd "$REPO" && cargo build --release --bin dbagent) >"$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log"; exit 1; }
    DBAGENT_BIN=$REPO/target/release/dbagent
fi
log "pgbench -i -s $SCALE into $DB"
psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
"${BIN}pgbench" -i -s "$SCALE" -q "$DB" >"$OUT/init.log" 2>&1
psql_admin -d "$DB" -c "VACUUM ANALYZE" -c CHECKPOINT >/dev/null

KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
agent() { # dbagent with this run's settings, --json output
    env -i PATH="$PATH" HOME="${HOME:-/root}" DATABASE_URL="postgresql://$PGUSER@$PGHOST:$PGPORT/$DB" \
        DBAGENT_BACKUP__LOCATION="$OUT/backups" BACKUP_ENCRYPTION_KEY="$KEY" ${PG_BINDIR:+PG_BIN=$PG_BINDIR} \
        "$DBAGENT_BIN" --json "$@"
}
seconds() { local t0=$1; awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.3f", b - a }'; }

declare -a DUMP_T AGENT_T RESTORE_T AGENT_R_T
ID=""
plain_dump() { local t0; t0=$(date +%s.%N); "${BIN}pg_dump" -Fc -f "$OUT/plain.dump" "$DB"; DUMP_T+=("$(seconds "$t0")"); }
agent_dump() {
    local t0 out; t0=$(date +%s.%N)
    out=$(agent backup create 2>/dev/null)
    AGENT_T+=("$(seconds "$t0")")
    ID=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["backup_id"])')
    STORED=$(echo "$out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])')
}
# Each timed restore starts after a CHECKPOINT, so none pays for the dirty buffers and WAL
# the previous one left. Both sides create their database inside the timing: pg_restore needs
# `CREATE DATABASE` first, dbagent's restore does it itself.
plain_restore() { # target
    psql_admin -c CHECKPOINT >/dev/null
    local t0; t0=$(date +%s.%N)
    psql_admin -c "CREATE DATABASE $1" >/dev/null
    "${BIN}pg_restore" -d "$1" "$OUT/plain.dump"; RESTORE_T+=("$(seconds "$t0")")
}
agent_restore() { # target
    psql_admin -c CHECKPOINT >/dev/null
    local t0; t0=$(date +%s.%N); agent restore "$ID" --target-database "$1" >/dev/null 2>&1; AGENT_R_T+=("$(seconds "$t0")")
}

log "backups: pg_dump, dbagent, dbagent, pg_dump"
plain_dump; agent_dump; agent_dump; plain_dump
log "restores: pg_restore, dbagent, dbagent, pg_restore"
plain_restore "${DB}_r1"; agent_restore "${DB}_r2"; agent_restore "${DB}_r3"; plain_restore "${DB}_r4"
for d in r1 r2 r3 r4; do
    n=$(psql_admin -d "${DB}_$d" -c "SELECT count(*) FROM pgbench_accounts")
    [[ $n == $((100000 * SCALE)) ]] || { log "restored ${DB}_$d has $n accounts"; exit 1; }
done

mean() { awk '{ s += $1 } END { printf "%.3f", s / NR }'; }
dump_t=$(printf '%s\n' "${DUMP_T[@]}" | mean); agent_t=$(printf '%s\n' "${AGENT_T[@]}" | mean)
restore_t=$(printf '%s\n' "${RESTORE_T[@]}" | mean); agent_r_t=$(printf '%s\n' "${AGENT_R_T[@]}" | mean)
plain_size=$(stat -c %s "$OUT/plain.dump")
verdict() { awk "BEGIN { print ($1) ? \"ok\" : \"MISS\" }"; }
echo "backup benchmark, pgbench scale $SCALE, mean of 2 runs each (order A B B A):"
printf '  backup:  pg_dump -Fc %ss, %.1f MB | dbagent (zstd + AES-256-GCM + SHA-256) %ss, %.1f MB | time %.2fx (target <= 1.15x: %s), size %.2fx (target < 1: %s)\n' \
    "$dump_t" "$(awk "BEGIN { print $plain_size / 1e6 }")" "$agent_t" "$(awk "BEGIN { print $STORED / 1e6 }")" \
    "$(awk "BEGIN { print $agent_t / $dump_t }")" "$(verdict "$agent_t / $dump_t <= 1.15")" \
    "$(awk "BEGIN { print $STORED / $plain_size }")" "$(verdict "$STORED < $plain_size")"
printf '  restore: pg_restore %ss | dbagent restore %ss | time %.2fx (target <= 1.15x: %s)\n' \
    "$restore_t" "$agent_r_t" "$(awk "BEGIN { print $agent_r_t / $restore_t }")" "$(verdict "$agent_r_t / $restore_t <= 1.15")"
