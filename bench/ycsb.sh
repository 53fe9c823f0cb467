#!/usr/bin/env bash
# YCSB workloads A-F against redis-server and keel-server (memory, bitcask, lsm engines),
# all on this machine, with keel's own driver (crates/keel-ycsb). Installs redis-server
# when missing, builds keel-server (dist profile) and keel-ycsb (release), starts every
# server on a free 127.0.0.1 port with data in a temporary directory (removed, and the
# servers killed, on exit), loads each, runs every workload against each target (the
# target order rotates per workload so drift is shared), and prints markdown tables on
# stdout: throughput, server CPU time per operation (from /proc/<pid>/stat; steadier than
# throughput on a shared machine) and p50/p99/p99.9 latency per operation. Progress goes
# to stderr.
#
# usage: bench/ycsb.sh [--quick] [options]
#   --quick            10,000 records, 3 s per workload and target
#   --records N        records loaded into each target (default 100000)
#   --duration S       seconds per workload and target (default 30)
#   --threads N        concurrent clients, one connection each (default 50)
#   --workloads LIST   workload letters (default ABCDEF; run in this order)
#   --targets LIST     comma separated from redis,memory,bitcask,lsm (default all four)
#   --rounds N         repeat the workload loop N times; the table shows medians (default 1)
#   --csv FILE         keep the raw rows (one per target, workload and op) in FILE
# Environment: KEEL_EXTRA_ARGS is appended to every keel-server command line (e.g.
# "--appendfsync no"); keel otherwise runs with its defaults (WAL, fsync every second).
set -euo pipefail

records=100000
duration=30
threads=50
workloads=ABCDEF
targets=redis,memory,bitcask,lsm
rounds=1
csv_keep=""

while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) records=10000; duration=3; shift ;;
        --records) records="$2"; shift 2 ;;
        --duration) duration="$2"; shift 2 ;;
        --threads) threads="$2"; shift 2 ;;
        --workloads) workloads="$2"; shift 2 ;;
        --targets) targets="$2"; shift 2 ;;
        --rounds) rounds="$2"; shift 2 ;;
        --csv) csv_keep="$(realpath -m -- "$2")"; shift 2 ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "ycsb.sh: unknown option $1" >&2; exit 2 ;;
    esac
done

log() { echo "ycsb.sh [$(date -u +%H:%M:%S)] $*" >&2; }

as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else
        echo "ycsb.sh: need root to run: $*" >&2; return 1
    fi
}

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    log "installing redis-server"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache show redis-server >/dev/null 2>&1; then as_root apt-get update -q; fi
    as_root apt-get install -y -q --no-install-recommends redis-server redis-tools \
        || { as_root apt-get update -q && as_root apt-get install -y -q --no-install-recommends redis-server redis-tools; }
fi

cd "$(dirname "$0")/.."
log "building keel-server (dist profile) and keel-ycsb (release)"
cargo build --profile dist -q -p keel-server >&2
cargo build --release -q -p keel-ycsb >&2
target_dir="$(cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
target_dir="${target_dir:-target}"
keel="$target_dir/dist/keel-server"
ycsb="$target_dir/release/keel-ycsb"

work="$(mktemp -d -t keel-ycsb.XXXXXX)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf -- "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

declare -A port spid
IFS=, read -r -a target_list <<<"$targets"
for t in "${target_list[@]}"; do
    p="$(free_port)"
    port[$t]="$p"
    mkdir -p "$work/$t"
    case "$t" in
        redis)
            redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no \
                --dir "$work/$t" --logfile "$work/$t.log" --daemonize no &
            ;;
        memory|bitcask|lsm)
            # shellcheck disable=SC2086  # KEEL_EXTRA_ARGS is a list of flags
            "$keel" --port "$p" --bind 127.0.0.1 --dir "$work/$t" --engine "$t" \
                ${KEEL_EXTRA_ARGS:-} >"$work/$t.log" 2>&1 &
            ;;
        *) echo "ycsb.sh: unknown target $t (redis, memory, bitcask, lsm)" >&2; exit 2 ;;
    esac
    pids+=("$!")
    spid[$t]="$!"
done

label() { if [[ "$1" == redis ]]; then echo redis; else echo "keel-$1"; fi; }

for t in "${target_list[@]}"; do
    ready=""
    for _ in $(seq 1 300); do
        if redis-cli -h 127.0.0.1 -p "${port[$t]}" ping 2>/dev/null | grep -q PONG; then ready=1; break; fi
        sleep 0.1
    done
    if [[ -z "$ready" ]]; then
        echo "ycsb.sh: $t did not answer PING on port ${port[$t]} within 30 s; log:" >&2
        cat "$work/$t.log" >&2 || true
        exit 1
    fi
    log "$(label "$t") ready on 127.0.0.1:${port[$t]}"
done

csv="$work/results.csv"
for t in "${target_list[@]}"; do
    log "loading $records records into $(label "$t")"
    "$ycsb" load --port "${port[$t]}" --target "$(label "$t")" --records "$records" \
        --threads "$threads" --server-pid "${spid[$t]}" --csv "$work/load.csv" >&2
done

n=${#target_list[@]}
for round in $(seq 1 "$rounds"); do
    i=0
    for (( w = 0; w < ${#workloads}; w++ )); do
        wl="${workloads:$w:1}"
        for (( k = 0; k < n; k++ )); do
            t="${target_list[$(( (i + k) % n ))]}"
            log "round $round/$rounds: workload $wl against $(label "$t")"
            "$ycsb" run --port "${port[$t]}" --target "$(label "$t")" --workload "$wl" \
                --duration "$duration" --threads "$threads" --seed "$round" --progress 0 \
                --server-pid "${spid[$t]}" --csv "$csv" >&2
        done
        i=$(( i + 1 ))
    done
done

if [[ -n "$csv_keep" ]]; then
    cat "$work/load.csv" >"$csv_keep"
    tail -n +2 "$csv" >>"$csv_keep"
    log "raw rows in $csv_keep"
fi

echo "### YCSB: $records records of 10 × 100 B, $threads clients, ${duration} s per workload and target, $rounds round(s)"
echo
echo "$(nproc) cores, $(uname -sr), redis-server $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p'), keel $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(date -u +'%Y-%m-%d %H:%M UTC')"
echo
echo "Load (insert of every record):"
echo
"$ycsb" table "$work/load.csv"
echo
"$ycsb" table "$csv"
