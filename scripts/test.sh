#!/usr/bin/env bash
# keel's test command: formatting, lints, then every test of the workspace.
# .ci/run and the README both run exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR=never
export RUST_BACKTRACE=1
# Bounded property-test effort; raise locally with PROPTEST_CASES=1000 scripts/test.sh.
export PROPTEST_CASES="${PROPTEST_CASES:-64}"

echo "== bash -n (the scripts parse)"
for f in scripts/*.sh bench/*.sh .ci/run; do bash -n "$f"; done
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --release -- -D warnings
scripts/ci-deps.sh
echo "== cargo test"
cargo test --workspace --release --no-fail-fast 2>&1 | tee target/test-output.txt
scripts/python-tests.sh
scripts/grpc-python-smoke.sh
