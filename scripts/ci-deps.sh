#!/usr/bin/env bash
# Installs the real clients the tests drive (redis-cli, redis-benchmark, redis-py) when they
# are missing. Idempotent and quick when everything is present; scripts/test.sh runs it.
# Needs root (or sudo) for the system packages; never installs a Redis server.
set -euo pipefail

REDIS_PY_VERSION=5.0.8

# shellcheck source=scripts/lib-apt.sh
source "$(dirname "$0")/lib-apt.sh"

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

redis-cli --version
redis-benchmark --version 2>/dev/null | head -n 1 || true
python3 -c "import redis; print('redis-py', redis.__version__)"
