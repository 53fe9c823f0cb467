#!/usr/bin/env bash
# Builds keel-storage's storage benchmark (release/bench profile) and runs it with the
# full default figures. The markdown report goes to stdout, progress to stderr.
#
# usage: bench/storage.sh [REPORT.md] [-- bench options]
#   bench/storage.sh                      full run, report on stdout
#   bench/storage.sh results.md           also write the report to results.md
#   bench/storage.sh -- --quick           pass options through (see `-- --help`)
set -euo pipefail

out=""
if [[ $# -gt 0 && "$1" != "--" && "$1" != -* ]]; then
    # Absolute, because cargo runs the bench from the package directory.
    out="$(realpath -m -- "$1")"
    shift
fi
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--" ]]; then
    shift
fi

cargo bench -p keel-storage --bench storage --no-run
if [[ -n "$out" ]]; then
    cargo bench -p keel-storage --bench storage -- --out "$out" "$@"
else
    cargo bench -p keel-storage --bench storage -- "$@"
fi
