#!/usr/bin/env bash
# Runs the whole test suite against real PostgreSQL. With TEST_DATABASE_URL (or DATABASE_URL)
# unset, the suite starts a managed instance of its own in target/tmp/test-pgdata; it is
# stopped again when the run ends.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
stop_test_instance() {
  if [ -x target/debug/dbagent ] && [ -d target/tmp/test-pgdata ]; then
    DBAGENT_INSTANCE__DATA_DIR=target/tmp/test-pgdata target/debug/dbagent instance stop >/dev/null 2>&1 || true
  fi
}
trap stop_test_instance EXIT
# failpoints: tests that make a COMMIT answer go missing (src/failpoints.rs).
cargo test --features failpoints "$@"
