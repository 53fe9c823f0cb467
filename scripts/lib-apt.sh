#!/usr/bin/env bash
# Shared helpers for scripts that install system packages when they are missing: source it,
# then call `apt_install PKG...`. Needs root (or passwordless sudo).

# Runs a command as root: directly when we are root, else through sudo without a prompt.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else
    echo "lib-apt: need root to run: $*" >&2; return 1
  fi
}

# Installs Debian packages, refreshing the package index only when needed.
apt_install() {
  echo "lib-apt: installing $*" >&2
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
