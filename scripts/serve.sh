#!/usr/bin/env bash
# Runs `dbagent serve`. With no DATABASE_URL / dbagent.yaml it creates and runs its own
# PostgreSQL in ./.dbagent/pgdata and stops it again on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec cargo run --release --quiet -- serve "$@"
