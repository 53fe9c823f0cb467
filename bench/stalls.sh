#!/usr/bin/env bash
# Latency stalls of keel builds with persistence on. Each round starts every build (and,
# with --redis, redis-server as the peer) fresh on an empty data dir, fills the keyspace
# if asked, then runs one redis-benchmark SET test and reports throughput, avg / p99 /
# max latency, the server's CPU ticks (user + kernel, /proc/PID/stat) and what the run
# made it do: snapshots (rdb_saves), fdatasyncs and writebacks of the WAL. The runs are
# long (4M requests by default) so that the WAL seals segments and snapshots the store
# many times, which the harness's short runs do not; the rounds take the builds in turns
# (A B A B) so the machine's drift hits all of them. Medians per build at the end.
#
# usage: bench/stalls.sh [options] BIN... [-- server args...]
#   --rounds N      runs per build (default 3)
#   --requests N    -n of the timed run (default 4000000)
#   --pipeline N    -P (default 16)
#   --keyspace N    redis-benchmark -r (default 100000)
#   --load N        SETs (-P 16) over the keyspace first, untimed (default 0)
#   --redis         redis-server too, with appendonly yes, appendfsync everysec
#   --out FILE      a CSV of every run
# keel runs with its defaults (WAL on, appendfsync everysec) plus the server args, e.g.
#   bench/stalls.sh BIN_A BIN_B                       # WAL segment seals, snapshots
#   bench/stalls.sh BIN_A BIN_B -- --engine bitcask   # bitcask's segment seals
#   bench/stalls.sh --keyspace 3000000 --load 9000000 --requests 6000000 BIN_A BIN_B
#                                                     # a 310 MB checkpoint
set -euo pipefail

rounds=3
requests=4000000
pipeline=16
keyspace=100000
load=0
with_redis=0
out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds="${2:?--rounds needs N}"; shift 2 ;;
    --requests) requests="${2:?--requests needs N}"; shift 2 ;;
    --pipeline) pipeline="${2:?--pipeline needs N}"; shift 2 ;;
    --keyspace) keyspace="${2:?--keyspace needs N}"; shift 2 ;;
    --load) load="${2:?--load needs N}"; shift 2 ;;
    --redis) with_redis=1; shift ;;
    --out) out="${2:?--out needs FILE}"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
bins=()
while [[ $# -gt 0 && "$1" != "--" ]]; do
  bins+=("$1")
  shift
done
[[ "${1:-}" == "--" ]] && shift
[[ ${#bins[@]} -ge 1 || $with_redis -eq 1 ]] || { sed -n '2,24p' "$0" >&2; exit 2; }
for n in "$rounds" "$requests" "$pipeline" "$keyspace"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "not a positive number: $n" >&2; exit 2; }
done
[[ "$load" =~ ^[0-9]+$ ]] || { echo "not a number: $load" >&2; exit 2; }
for b in "${bins[@]}"; do
  [[ -x "$b" ]] || { echo "not an executable: $b" >&2; exit 2; }
done
tools=(redis-benchmark redis-cli python3)
[[ $with_redis -eq 1 ]] && tools+=(redis-server)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "missing $tool (see bench/compare.sh)" >&2; exit 1; }
done

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench/lib-net.sh
source "$root/bench/lib-net.sh"
work="$(mktemp -d "${TMPDIR:-/tmp}/keel-stalls.XXXXXX")"
pid=""
cleanup() {
  [[ -n "$pid" ]] && stop_pids "$pid"
  rm -rf "$work"
}
trap cleanup EXIT

# Each build's label: its position and file name (two builds may share a name).
labels=()
for i in "${!bins[@]}"; do
  labels+=("$((i + 1)):$(basename "${bins[$i]}")")
done
[[ $with_redis -eq 1 ]] && labels+=("redis")
csv="$work/runs.csv"
echo "server,round,rps,avg_ms,p50_ms,p95_ms,p99_ms,max_ms,cpu_ticks,snapshots,wal_fsyncs,wal_writebacks" >"$csv"

# A field of INFO persistence (0 when the server has none).
field() {
  local v
  v="$(redis-cli -h 127.0.0.1 -p "$port" info persistence | tr -d '\r' | sed -n "s/^$1://p")"
  echo "${v:-0}"
}
ticks() {
  awk '{print $14 + $15}' "/proc/$pid/stat"
}

for r in $(seq 1 "$rounds"); do
  for i in "${!labels[@]}"; do
    label="${labels[$i]}"
    dir="$work/run"
    rm -rf "$dir"
    mkdir -p "$dir"
    port="$(free_port)" || { echo "no free port found" >&2; exit 1; }
    if [[ "$label" == redis ]]; then
      redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' \
        --appendonly yes --appendfsync everysec >"$dir.log" 2>&1 &
    else
      "${bins[$i]}" --bind 127.0.0.1 --port "$port" --dir "$dir/data" \
        --grpc-enabled false --loglevel warning "$@" >"$dir.log" 2>&1 &
    fi
    pid=$!
    wait_for_server "$port" "$pid" "$dir.log" || { echo "($label)" >&2; exit 1; }
    if [[ "$load" -gt 0 ]]; then
      redis-benchmark -h 127.0.0.1 -p "$port" -t set -P 16 -c 50 -d 64 -r "$keyspace" \
        -n "$load" -q >/dev/null 2>&1 || { echo "the load failed ($label)" >&2; exit 1; }
    fi
    s0="$(field rdb_saves)" f0="$(field wal_fsyncs)" w0="$(field wal_writebacks)" t0="$(ticks)"
    line="$(redis-benchmark -h 127.0.0.1 -p "$port" -t set -P "$pipeline" -c 50 -d 64 \
      -r "$keyspace" -n "$requests" --csv 2>/dev/null | grep -v '^"test"' | tail -n 1 | tr -d '"')" \
      || { echo "redis-benchmark failed ($label)" >&2; exit 1; }
    t1="$(ticks)"
    s1="$(field rdb_saves)" f1="$(field wal_fsyncs)" w1="$(field wal_writebacks)"
    # test,rps,avg,min,p50,p95,p99,max
    IFS=, read -r _ rps avg _ p50 p95 p99 max <<<"$line"
    row="$label,$r,$rps,$avg,$p50,$p95,$p99,$max,$((t1 - t0)),$((s1 - s0)),$((f1 - f0)),$((w1 - w0))"
    echo "$row" >>"$csv"
    echo "$row"
    stop_pids "$pid"
    pid=""
  done
done

[[ -n "$out" ]] && cp "$csv" "$out"
python3 - "$csv" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
order = []
for r in rows:
    if r["server"] not in order:
        order.append(r["server"])
cols = ["rps", "avg_ms", "p99_ms", "max_ms", "cpu_ticks", "snapshots", "wal_fsyncs", "wal_writebacks"]
print("medians:", " ".join(cols))
for s in order:
    mine = [r for r in rows if r["server"] == s]
    med = [statistics.median(float(r[c]) for r in mine) for c in cols]
    worst = max(float(r["max_ms"]) for r in mine)
    shown = [f"{v:,.0f}" if c in ("rps", "cpu_ticks") or not c.endswith("_ms") else f"{v:.3f}"
             for c, v in zip(cols, med)]
    print(f"{s}: " + " ".join(shown) + f" (max of max {worst:.3f})")
PY
