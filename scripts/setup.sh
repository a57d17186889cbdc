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
# Schemathesis runs two worker threads, and CPython before 3.11.8 / 3.12.2 shares the AST
# constructor's recursion counter between threads (cpython gh-106905): Hypothesis's ast.parse
# then fails at random with "AST constructor recursion depth mismatch". So the venv takes the
# first Python that has the fix (pyenv's 3.13 here; the default python3 is 3.11.7), and a venv
# made earlier from an affected Python is made again.
venv=target/tools/venv
fixed_python() { "$1" -c 'import sys; v = sys.version_info[:3]; sys.exit(0 if v >= (3, 12, 2) or (3, 11, 8) <= v < (3, 12) else 1)' 2>/dev/null; }
if [ -x "$venv/bin/python" ] && ! fixed_python "$venv/bin/python"; then
  echo "removing $venv: its Python has cpython gh-106905" >&2
  rm -rf "$venv"
fi
if [ ! -x "$venv/bin/openapi-spec-validator" ] || [ ! -x "$venv/bin/schemathesis" ]; then
  echo "installing: openapi-spec-validator and schemathesis (PyPI) into $venv" >&2
  if [ ! -x "$venv/bin/pip" ]; then
    py=python3
    for candidate in python3.13 "$HOME"/.pyenv/versions/3.13.*/bin/python "$HOME"/.pyenv/versions/3.12.*/bin/python python3; do
      if command -v "$candidate" >/dev/null 2>&1 && fixed_python "$candidate"; then py=$candidate; break; fi
    done
    fixed_python "$py" || echo "warning: no Python >= 3.11.8 found; Schemathesis may fail at random (cpython gh-106905)" >&2
    "$py" -m venv "$venv"
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check "openapi-spec-validator==0.9.0" "schemathesis==4.32.5"
fi
# moto's server mode: a real S3 endpoint, run locally, that the off-site copy tests
# (backup.remote) upload to and download from.
if [ ! -x "$venv/bin/moto_server" ]; then
  echo "installing: moto[server] (PyPI) into $venv" >&2
  "$venv/bin/pip" install -q --disable-pip-version-check "moto[server]==5.2.5"
fi
