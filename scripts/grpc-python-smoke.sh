#!/usr/bin/env bash
# Smoke test of the gRPC API from another language: generates Python stubs from
# crates/keel-proto/proto with grpc_tools.protoc into a temp dir, starts the release
# keel-server on free ports and drives Kv and Txn (tests/python/grpc_smoke.py).
# scripts/test.sh runs this after python-tests.sh; scripts/ci-deps.sh installs grpcio.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${KEEL_BIN:-target/release/keel-server}
if [[ ! -x $BIN ]]; then
  cargo build --release -p keel-server
fi
STUBS=$(mktemp -d)
trap 'rm -rf "$STUBS"' EXIT
python3 -m grpc_tools.protoc -I crates/keel-proto/proto \
  --python_out="$STUBS" --grpc_python_out="$STUBS" \
  keel/v1/common.proto keel/v1/kv.proto keel/v1/txn.proto
timeout 60 python3 tests/python/grpc_smoke.py "$BIN" "$STUBS"
