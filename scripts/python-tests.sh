#!/usr/bin/env bash
# Runs the redis-py client tests against the release keel-server (built when missing).
# scripts/test.sh runs this after cargo test; scripts/ci-deps.sh installs redis-py.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${KEEL_BIN:-target/release/keel-server}
if [[ ! -x $BIN ]]; then
  cargo build --release -p keel-server
fi
python3 tests/python/test_redis_py.py "$BIN"
