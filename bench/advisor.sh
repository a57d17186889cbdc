#!/usr/bin/env bash
# Index advice against Postgres MCP Pro (not run in CI).
#
# Builds a synthetic shop (customers 100k, orders 600k, products 10k, order_items 600k) on a
# throw-away PostgreSQL cluster with pg_stat_statements preloaded, records a workload of 20
# query shapes (typed-literal and cast intervals, IN lists, ANY, BETWEEN, LIMIT, joins,
# GROUP BY, function predicates), and asks each advisor for indexes — in workload mode (from
# pg_stat_statements) and with the queries given. Each advisor's indexes are built on its own
# copy of the database (CREATE DATABASE ... TEMPLATE), and the workload is timed on each.
#
# usage: bash bench/advisor.sh            (needs: cargo build; target/tools/mcp-venv with
#                                          postgres-mcp, see below; hypopg for PostgreSQL 15)
# The MCP venv (Python 3.12 from pyenv; postgres-mcp pins pglast==7.2.0, which the registry here
# does not have, so it is installed without dependencies and they are added by hand):
#   ~/.pyenv/versions/3.12.*/bin/python -m venv target/tools/mcp-venv
#   target/tools/mcp-venv/bin/pip install --no-deps postgres-mcp==0.3.0
#   target/tools/mcp-venv/bin/pip install "attrs>=25.3.0" "humanize>=4.8.0" "instructor>=1.7.9" \
#       "mcp[cli]>=1.5.0,<2" "pglast>=7,<8" "psycopg-pool>=3.2.6" "psycopg[binary]>=3.2.6"
# The script does this itself when the venv is missing and a Python 3.12 or 3.13 is there; without
# one the MCP rows say "not installed" and dbagent's are measured alone.
set -euo pipefail
cd "$(dirname "$0")/.."
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PORT=${BENCH_PORT:-5499}
DIR=target/bench-advisor
DBAGENT=${DBAGENT:-target/debug/dbagent}
MCP_PY=target/tools/mcp-venv/bin/python
ROUNDS=${ROUNDS:-3}
URL_BASE="postgresql://postgres@127.0.0.1:$PORT"

# Postgres MCP Pro from PyPI, when missing (as described above).
if [ ! -x "$MCP_PY" ]; then
  py=$(ls -d "$HOME"/.pyenv/versions/3.1[23].*/bin/python 2>/dev/null | head -1 || true)
  if [ -n "$py" ]; then
    echo "installing Postgres MCP Pro into target/tools/mcp-venv" >&2
    "$py" -m venv target/tools/mcp-venv
    target/tools/mcp-venv/bin/pip install -q --disable-pip-version-check --no-deps postgres-mcp==0.3.0
    target/tools/mcp-venv/bin/pip install -q --disable-pip-version-check "attrs>=25.3.0" "humanize>=4.8.0" "instructor>=1.7.9" \
      "mcp[cli]>=1.5.0,<2" "pglast>=7,<8" "psycopg-pool>=3.2.6" "psycopg[binary]>=3.2.6" 2>&1 | grep -v "pglast==7.2.0" >&2 || true
  fi
fi

# PostgreSQL refuses to run as root: as root, its programs run as the postgres user.
as_pg=()
rm -rf "$DIR"; mkdir -p "$DIR"
if [ "$(id -u)" = 0 ]; then as_pg=(runuser -u postgres --); chown postgres "$DIR"; fi
"${as_pg[@]}" "$PG_BIN/initdb" -D "$DIR/data" -U postgres -A trust >/dev/null
"${as_pg[@]}" tee -a "$DIR/data/postgresql.conf" >/dev/null <<CONF
port = $PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PWD/$DIR'
shared_preload_libraries = 'pg_stat_statements'
shared_buffers = '256MB'
CONF
"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w start >/dev/null
trap '"${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true' EXIT
psql_() { psql -X -q -v ON_ERROR_STOP=1 "$URL_BASE/$1" "${@:2}"; }

psql_ postgres -c "CREATE DATABASE shop"
psql_ shop <<'SQL'
CREATE EXTENSION pg_stat_statements; CREATE EXTENSION hypopg;
CREATE TABLE customers (id int PRIMARY KEY, email text NOT NULL, region int NOT NULL, created_at timestamptz NOT NULL);
INSERT INTO customers SELECT i, 'User' || i || '@Example.com', i % 40, now() - (i % 700) * interval '1 day' FROM generate_series(1, 100000) i;
CREATE TABLE products (id int PRIMARY KEY, category int NOT NULL, price numeric(10,2) NOT NULL, name text NOT NULL);
INSERT INTO products SELECT i, i % 200, (i * 37 % 10000) / 100.0, 'product ' || i FROM generate_series(1, 10000) i;
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, region int NOT NULL, status text NOT NULL,
                     total bigint NOT NULL, created_at timestamptz NOT NULL, note text);
INSERT INTO orders SELECT i, 1 + (i * 7919) % 100000, i % 40, 's' || (i % 6), (i * 104729) % 100000,
                          now() - ((i * 13) % 525600) * interval '1 minute', repeat('n', 60)
  FROM generate_series(1, 600000::bigint) i;
CREATE TABLE order_items (order_id int NOT NULL, product_id int NOT NULL, qty int NOT NULL);
INSERT INTO order_items SELECT 1 + i % 600000, 1 + (i * 31) % 10000, 1 + i % 5 FROM generate_series(1, 600000) i;
VACUUM ANALYZE;
SQL

# The workload: 20 shapes, each with several literal values (pg_stat_statements normalises them).
workload() {
  for k in 1 2 3; do
    echo "SELECT id, total FROM orders WHERE created_at > now() - interval '$k hours';"
    echo "SELECT count(*) FROM orders WHERE status = 's$k' AND created_at > now() - '$((k * 2)) hours'::interval;"
    echo "SELECT id FROM orders WHERE customer_id IN ($((k * 11)), $((k * 13)), $((k * 17)), $((k * 19)));"
    echo "SELECT id, status FROM orders WHERE customer_id = ANY('{$((k * 23)),$((k * 29)),$((k * 31))}');"
    echo "SELECT id, total FROM orders WHERE region = $k ORDER BY total DESC LIMIT 10;"
    echo "SELECT count(*) FROM orders WHERE region = $((k + 3)) AND total > 99900;"
    echo "SELECT o.id, o.total FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.email = 'User$((k * 101))@Example.com';"
    echo "SELECT id FROM customers WHERE lower(email) = 'user$((k * 211))@example.com';"
    echo "SELECT sum(qty) FROM order_items WHERE product_id = $((k * 41));"
    echo "SELECT id, price FROM products WHERE category = $k ORDER BY price LIMIT 20;"
    echo "SELECT oi.product_id, oi.qty FROM order_items oi JOIN orders o ON o.id = oi.order_id WHERE o.customer_id = $((k * 37));"
    echo "SELECT status, count(*) FROM orders WHERE created_at > now() - interval '$((k * 30)) minutes' GROUP BY status;"
    echo "SELECT id, email FROM customers WHERE region = $k AND created_at > now() - interval '$((k * 5)) days';"
    echo "SELECT id FROM orders WHERE status IN ('s$k', 's$((k + 1))') AND region = $((k + 10));"
    echo "SELECT count(*) FROM order_items WHERE order_id BETWEEN $((k * 1000)) AND $((k * 1000 + 50));"
    echo "SELECT p.name, oi.qty FROM products p JOIN order_items oi ON oi.product_id = p.id WHERE oi.order_id = $((k * 997));"
    echo "SELECT id, email FROM customers ORDER BY created_at DESC LIMIT $((k * 5));"
    echo "SELECT max(total) FROM orders WHERE customer_id = $((k * 43));"
    echo "SELECT id, name FROM products WHERE price BETWEEN $k.00 AND $k.50;"
    echo "SELECT date_trunc('hour', created_at), count(*) FROM orders WHERE region = $((k + 20)) AND created_at > now() - interval '$k days' GROUP BY 1;"
  done
}
workload > "$DIR/workload.sql"
# One query of each of the first 10 shapes, for the explicit-queries mode (Postgres MCP Pro's
# analyze_query_indexes takes at most 10 queries; both advisors get the same 10).
workload | head -10 > "$DIR/queries.sql"
psql_ shop -c "SELECT pg_stat_statements_reset()" >/dev/null
for _ in 1 2 3; do psql_ shop -f "$DIR/workload.sql" >/dev/null; done

ms() { date +%s%3N; }
# advise NAME MODE -> $DIR/NAME.sql (one CREATE INDEX a line); records analysis ms and failure.
advise() {
  local name=$1 mode=$2 out="$DIR/$1.sql" start end
  start=$(ms)
  case "$name" in
    dbagent-*)
      local args=(indexes suggest)
      if [ "$mode" = queries ]; then while read -r q; do args+=(--query "${q%;}"); done < "$DIR/queries.sql"; fi
      if DATABASE_URL="$URL_BASE/shop" "$DBAGENT" --json "${args[@]}" > "$DIR/$name.json" 2> "$DIR/$name.err"; then
        python3 -c 'import json,sys; [print(s["sql"]) for s in json.load(open(sys.argv[1]))["suggestions"]]' "$DIR/$name.json" > "$out"
        echo ok > "$DIR/$name.status"
      else : > "$out"; echo "failed: $(tail -1 "$DIR/$name.err")" > "$DIR/$name.status"; fi ;;
    mcp-*)
      if [ ! -x "$MCP_PY" ]; then : > "$out"; echo "not installed" > "$DIR/$name.status"
      elif "$MCP_PY" bench/mcp_advise.py "$URL_BASE/shop" "$mode" "$DIR/queries.sql" > "$out" 2> "$DIR/$name.err"; then echo ok > "$DIR/$name.status"
      else : > "$out"; echo "failed: $(grep -m1 -io 'error[^\"]*' "$DIR/$name.err" | head -c 160)" > "$DIR/$name.status"; fi ;;
  esac
  end=$(ms); echo $((end - start)) > "$DIR/$name.ms"
}
for name in dbagent-workload mcp-workload dbagent-queries mcp-queries; do advise "$name" "${name#*-}"; done

# time_workload DB -> ms for ROUNDS runs of the workload (best round).
time_workload() {
  local best=999999999 start end
  psql_ "$1" -f "$DIR/workload.sql" >/dev/null   # warm the cache
  for _ in $(seq "$ROUNDS"); do
    start=$(ms); psql_ "$1" -f "$DIR/workload.sql" >/dev/null; end=$(ms)
    [ $((end - start)) -lt "$best" ] && best=$((end - start))
  done
  echo "$best"
}
printf '\n%-18s %8s %12s %10s %9s %11s  %s\n' advisor indexes "index bytes" "workload" speedup "analysis" status
base_ms=$(time_workload shop)
printf '%-18s %8s %12s %8sms %9s %11s  %s\n' "no new index" 0 0 "$base_ms" 1.00 - -
for name in dbagent-workload mcp-workload dbagent-queries mcp-queries; do
  db="copy_${name//-/_}"
  psql_ postgres -c "CREATE DATABASE $db TEMPLATE shop" >/dev/null
  built=0
  while read -r stmt; do
    [ -z "$stmt" ] && continue
    psql_ "$db" -c "${stmt%;}" >/dev/null 2>&1 && built=$((built + 1))
  done < "$DIR/$name.sql"
  bytes=$(psql_ "$db" -Atc "SELECT coalesce(sum(pg_relation_size(indexrelid)), 0) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = 'public'::regnamespace AND c.relname NOT LIKE '%pkey'")
  psql_ "$db" -c "ANALYZE" >/dev/null
  t=$(time_workload "$db")
  printf '%-18s %8s %12s %8sms %9s %9sms  %s\n' "$name" "$built" "$bytes" "$t" "$(python3 -c "print(f'{$base_ms/max($t,1):.2f}')")" "$(cat "$DIR/$name.ms")" "$(cat "$DIR/$name.status")"
done
echo; for name in dbagent-workload mcp-workload dbagent-queries mcp-queries; do echo "== $name"; cat "$DIR/$name.sql"; done
