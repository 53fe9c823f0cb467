#!/usr/bin/env bash
# Server instructions per request under callgrind, for comparing two builds of keel (or
# keel with redis-server) on one redis-benchmark test. Steadier than throughput on a
# shared machine: run two builds alternately, A B A B, and compare the figures. The
# figures in commit messages and docs/benchmarks-history.md ("What changed since ...")
# come from this script.
#
# usage: bench/instr.sh [options] TEST PIPELINE REQUESTS [-- server args...]
#   --server keel|redis   which server (default keel)
#   --keel-bin PATH       keel-server binary (default: target/dist/keel-server)
#   --preload N           SETs (-P 16) run before the warm-up, so writes overwrite
#                         existing keys (default 300000; 0 = none)
#   --preload-test T      the test the preload runs instead of SET (lpush before rpop,
#                         which otherwise pops an empty list)
#   --prepare "CMD ..."   also send this command --prepare-requests times (-P 16, after
#                         the preload, uncounted) to fill what --command reads, e.g.
#                         --prepare "XADD s * f v" --command "XRANGE s - + COUNT 10"
#   --prepare-requests N  (default 10000)
#   --keep DIR            keep the callgrind output in DIR
#   --clients N           redis-benchmark clients (default 50; 1 gives every write a
#                         funnel round of its own, as P1 writes nearly have at native
#                         speed, where callgrind's slowdown lets 50 clients' writes pile up)
#   --command "CMD ..."   run this command (redis-benchmark's trailing command, with
#                         __rand_int__ as usual) instead of TEST's -t; TEST then only
#                         names the line printed
#   --sim                 also simulate the caches and branch predictor and print their
#                         misses per request (I1/D1 = first level, LL = last level, Bcm/Bim
#                         = mispredicted conditional/indirect branches): where two servers
#                         run alike instruction counts at unlike speeds. Simulated (no
#                         kernel, one cache for all threads), so compare, don't quote.
# TEST may be two tests joined by "+", run at once with half the requests each (a
# queue: lpush+rpop, both on one list).
# Example: bench/instr.sh set 16 200000 -- --save ""
# Prints one line: "<server> <test> P<pipeline>: <n> instr/req (n=<requests>)"; with
# --sim a second: "  per request: <event> <n> ...".
# Needs valgrind and redis-tools (bench/compare.sh installs them).
set -euo pipefail

server=keel
keel_bin=""
preload=300000
preload_test=set
keep=""
clients=50
sim=0
command=""
prepare=""
prepare_requests=10000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --server) server="${2:?--server needs keel or redis}"; shift 2 ;;
    --keel-bin) keel_bin="${2:?--keel-bin needs PATH}"; shift 2 ;;
    --preload) preload="${2:?--preload needs N}"; shift 2 ;;
    --preload-test) preload_test="${2:?--preload-test needs a test}"; shift 2 ;;
    --keep) keep="${2:?--keep needs DIR}"; shift 2 ;;
    --clients) clients="${2:?--clients needs N}"; shift 2 ;;
    --command) command="${2:?--command needs a command}"; shift 2 ;;
    --prepare) prepare="${2:?--prepare needs a command}"; shift 2 ;;
    --prepare-requests) prepare_requests="${2:?--prepare-requests needs N}"; shift 2 ;;
    --sim) sim=1; shift ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[[ $# -ge 3 ]] || { sed -n '2,36p' "$0" >&2; exit 2; }
test_name="$1" pipeline="$2" requests="$3"
shift 3
[[ "${1:-}" == "--" ]] && shift
for n in "$pipeline" "$requests" "$preload" "$clients" "$prepare_requests"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "not a number: $n" >&2; exit 2; }
done
for tool in valgrind callgrind_control redis-benchmark redis-cli; do
  command -v "$tool" >/dev/null || { echo "missing $tool (see bench/compare.sh)" >&2; exit 1; }
done

root="$(cd "$(dirname "$0")/.." && pwd)"
keel_bin="${keel_bin:-$root/target/dist/keel-server}"
work="$(mktemp -d "${TMPDIR:-/tmp}/keel-instr.XXXXXX")"
# shellcheck source=bench/lib-net.sh
source "$root/bench/lib-net.sh"
port="$(free_port)" || { echo "no free port found" >&2; exit 1; }
vpid=""
cleanup() {
  if [[ -n "$vpid" ]]; then
    kill "$vpid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$vpid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$vpid" 2>/dev/null || true
  fi
  if [[ -n "$keep" ]]; then
    mkdir -p "$keep" && cp "$work"/cg.* "$keep"/ 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

vg=(valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" --dump-instr=no
  --compress-strings=no)
[[ $sim -eq 1 ]] && vg+=(--cache-sim=yes --branch-sim=yes)
if [[ "$server" == keel ]]; then
  [[ -x "$keel_bin" ]] || { echo "no keel-server at $keel_bin" >&2; exit 1; }
  "${vg[@]}" "$keel_bin" --bind 127.0.0.1 --port "$port" --dir "$work/data" \
    --appendfsync everysec --grpc-enabled false "$@" >"$work/log" 2>&1 &
else
  "${vg[@]}" redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --dir "$work" "$@" >"$work/log" 2>&1 &
fi
vpid=$!
# Under valgrind a start takes seconds; bounded at 60 s.
wait_for_server "$port" "$vpid" "$work/log" 0.2 300 || exit 1

# The commands split on spaces, without globbing (XADD's "*" stays a star).
read -r -a command_args <<<"$command"
read -r -a prepare_args <<<"$prepare"
bench() { redis-benchmark -p "$port" -c "$clients" -d 64 -r 100000 -q "$@" >/dev/null 2>&1; }
# The test, or two tests at once sharing the requests.
run() {
  local n="$1" first="${test_name%%+*}" second="${test_name#*+}"
  if [[ -n "$command" ]]; then
    bench -n "$n" -P "$pipeline" "${command_args[@]}"
  elif [[ "$first" == "$test_name" ]]; then
    bench -n "$n" -P "$pipeline" -t "$test_name"
  else
    bench -n $((n / 2)) -P "$pipeline" -t "$first" &
    local other=$!
    bench -n $((n / 2)) -P "$pipeline" -t "$second"
    wait "$other"
  fi
}
if [[ "$preload" -gt 0 ]]; then bench -n "$preload" -P 16 -t "$preload_test"; fi
if [[ -n "$prepare" ]]; then bench -n "$prepare_requests" -P 16 "${prepare_args[@]}"; fi
run $((requests / 2))   # warm-up, not counted
callgrind_control -z "$vpid" >/dev/null 2>&1
run "$requests"
callgrind_control -d "$vpid" >/dev/null 2>&1
# The dump of the counted interval is the file with a part suffix (cg.PID.1).
total=0
for _ in $(seq 1 50); do
  total=0
  for f in "$work"/cg.*.*; do
    [[ -e "$f" ]] || continue
    x="$(awk '/^(summary|totals):/ {v = $2} END {printf "%.0f\n", v + 0}' "$f")"
    total=$((total + x))
  done
  [[ "$total" -gt 0 ]] && break
  sleep 0.1
done
[[ "$total" -gt 0 ]] || { echo "no callgrind dump found" >&2; exit 1; }
echo "$server $test_name P$pipeline: $((total / requests)) instr/req (n=$requests)"
if [[ $sim -eq 1 ]]; then
  # Every event of the counted dump, per request, in the order of its "events:" line.
  awk -v n="$requests" '
    /^events:/ { for (i = 2; i <= NF; i++) name[i] = $i; k = NF }
    /^(summary|totals):/ { for (i = 2; i <= NF; i++) v[i] = $i }
    END { line = ""; for (i = 3; i <= k; i++) line = line sprintf(" %s %.1f", name[i], v[i] / n)
          print "  per request:" line }' "$work"/cg.*.*
fi
