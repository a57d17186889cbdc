#!/usr/bin/env bash
# Installs what building, running and testing dbagent needs and a fresh Debian/Ubuntu machine
# may lack: libclang for pg_query's bindgen step, the PostgreSQL server binaries for the managed
# instance, HypoPG for validated index suggestions, redis-server for the cache tests, promtool
# (Debian `prometheus`) for the /metrics test.
# Idempotent; prints nothing when everything is there.
set -euo pipefail

sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
updated=0
install() {
  [ $# -gt 0 ] || return 0
  echo "installing: $*" >&2
  if [ $updated = 0 ]; then
    $sudo apt-get update -qq >/dev/null
    updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need=()
# libclang itself (libclang.so / libclang-14.so), not libclang-cpp, which pg_query cannot use.
compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null || compgen -G '/usr/lib/llvm-*/lib/libclang-[0-9]*.so*' >/dev/null \
  || need+=(libclang1-14)
ls -d /usr/lib/llvm-*/lib/clang/*/include >/dev/null 2>&1 || need+=(libclang-common-14-dev)
if ! command -v postgres >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && [ -z "${PG_BIN:-}" ]; then
  need+=(postgresql)
fi
# The tests start private redis-server processes (the cache's Redis backend).
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# `promtool check metrics` checks /metrics in the tests (Debian's prometheus package ships it).
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
install "${need[@]}"

# HypoPG, one package per installed server version (known only once the server is installed).
need=()
for bin in /usr/lib/postgresql/*/bin/postgres; do
  [ -x "$bin" ] || continue
  v=$(basename "$(dirname "$(dirname "$bin")")")
  [ -e "/usr/share/postgresql/$v/extension/hypopg.control" ] || need+=("postgresql-$v-hypopg")
done
install "${need[@]}"

# openapi-spec-validator checks /openapi.json in the tests and Schemathesis tests the API
# from it (both from PyPI); they live in a virtual environment of the project's own, under
# target/.
venv=target/tools/venv
if [ ! -x "$venv/bin/openapi-spec-validator" ] || [ ! -x "$venv/bin/schemathesis" ]; then
  echo "installing: openapi-spec-validator and schemathesis (PyPI) into $venv" >&2
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "openapi-spec-validator==0.9.0" "schemathesis==4.32.5"
fi
