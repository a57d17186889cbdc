#!/usr/bin/env bash
# Installs what building and running dbagent needs and a fresh machine may lack:
# libclang for pg_query's bindgen step, and the PostgreSQL server binaries for the managed
# instance. Idempotent; prints nothing when everything is there.
set -euo pipefail

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
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
