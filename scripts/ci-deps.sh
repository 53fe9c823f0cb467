#!/usr/bin/env bash
# Installs the real clients the tests drive (redis-cli, redis-benchmark, redis-py, grpcio) when they
# are missing. Idempotent and quick when everything is present; scripts/test.sh runs it.
# Needs root (or sudo) for the system packages; never installs a Redis server.
set -euo pipefail

REDIS_PY_VERSION=5.0.8
GRPCIO_VERSION=1.85.1

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else
    echo "ci-deps: need root to run: $*" >&2; return 1
  fi
}

apt_install() {
  echo "ci-deps: installing $*"
  export DEBIAN_FRONTEND=noninteractive
  # The package index is refreshed only when a package is not known yet (fresh images ship
  # without lists).
  if ! apt-cache show "$@" >/dev/null 2>&1; then
    as_root apt-get update -q
  fi
  # A stale index can name files the mirror no longer has: refresh once and retry.
  as_root apt-get install -y -q --no-install-recommends "$@" \
    || { as_root apt-get update -q && as_root apt-get install -y -q --no-install-recommends "$@"; }
}

if ! command -v redis-cli >/dev/null 2>&1 || ! command -v redis-benchmark >/dev/null 2>&1; then
  apt_install redis-tools
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  apt_install python3-pip
fi

if ! python3 -c "import redis, sys; sys.exit(0 if redis.__version__ == '$REDIS_PY_VERSION' else 1)" >/dev/null 2>&1; then
  echo "ci-deps: installing redis-py $REDIS_PY_VERSION"
  pip=(python3 -m pip install -q --disable-pip-version-check "redis==$REDIS_PY_VERSION")
  # Distributions that mark the system interpreter as externally managed need the override.
  "${pip[@]}" 2>/dev/null || "${pip[@]}" --break-system-packages
fi

if ! python3 -c "import grpc, grpc_tools, sys; sys.exit(0 if grpc.__version__ == '$GRPCIO_VERSION' else 1)" >/dev/null 2>&1; then
  echo "ci-deps: installing grpcio and grpcio-tools $GRPCIO_VERSION"
  pip=(python3 -m pip install -q --disable-pip-version-check "grpcio==$GRPCIO_VERSION" "grpcio-tools==$GRPCIO_VERSION")
  "${pip[@]}" 2>/dev/null || "${pip[@]}" --break-system-packages
fi

redis-cli --version
redis-benchmark --version 2>/dev/null | head -n 1 || true
python3 -c "import redis; print('redis-py', redis.__version__)"
python3 -c "import grpc; print('grpcio', grpc.__version__)"
