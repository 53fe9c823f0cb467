#!/usr/bin/env bash
# Two builds of keel side by side: the same redis-benchmark runs against both, A B B A,
# and the medians of throughput and of server CPU time per request (user + kernel, from
# /proc/PID/stat) with the ratio B/A. On a shared machine throughput moves by tens of
# percent from one minute to the next; interleaving puts that drift on both builds, and
# CPU per request moves much less than throughput. The before/after figures of
# performance commits come from this script (and bench/instr.sh for instructions).
#
# usage: bench/ab.sh [options] BIN_A BIN_B [-- server args...]
#   --tests "set lpush"   redis-benchmark tests (default "set get")
#   --pipeline N          -P (default 16)
#   --requests N          -n per run (default 1000000)
#   --rounds N            runs per build and test (default 5)
#   --args-a "ARGS"       server args for A only (split on spaces), likewise --args-b:
#                         one binary against itself with another engine, e.g.
#                         --args-b "--engine bitcask" BIN BIN -- --appendfsync everysec
#   --pin S:C             run both servers on CPU list S and redis-benchmark on C
#                         (taskset), e.g. --pin 1:0: the scheduler then moves neither,
#                         and two builds' rates differ by less from run to run (on the
#                         2-core machine of docs/benchmarks.md, unpinned rounds of one
#                         build swung 0.94M-1.36M; pinned, a few percent)
#   --command "CMD ..."   run this command instead of --tests (redis-benchmark replaces
#                         __rand_int__ in it with a number below --keyspace)
#   --prepare "CMD ..."   send this command --prepare-requests times to each server
#                         first, untimed, to fill what --command reads
#   --prepare-requests N  (default 200000)
#   --keyspace N          redis-benchmark -r (default 100000)
#   e.g. --keyspace 10000 --prepare "HSET h:__rand_int__ f0 V f1 V ..." \
#        --command "HGETALL h:__rand_int__"
# Both servers run with --appendfsync no --save '' unless the args set those (the WAL
# written, never synced; add "-- --appendonly no" for compare.sh's main pair) plus the
# server args; they stay up for all tests, in the order given, so a
# test sees what the earlier ones wrote (RPOP needs LPUSH before it).
# Prints one line per test:
#   "<test> P<p>: rps A <a> B <b> B/A <r> (pairwise median <r>, B ahead in <k> of <n>) |
#    cpu us/req A <a> B <b> B/A <r> | rounds ..."
set -euo pipefail

tests="set get"
pipeline=16
requests=1000000
rounds=5
args_a=""
args_b=""
pin=""
command=""
prepare=""
prepare_requests=200000
keyspace=100000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tests) tests="${2:?--tests needs a list}"; shift 2 ;;
    --pipeline) pipeline="${2:?--pipeline needs N}"; shift 2 ;;
    --requests) requests="${2:?--requests needs N}"; shift 2 ;;
    --rounds) rounds="${2:?--rounds needs N}"; shift 2 ;;
    --args-a) args_a="${2?--args-a needs ARGS}"; shift 2 ;;
    --args-b) args_b="${2?--args-b needs ARGS}"; shift 2 ;;
    --pin) pin="${2:?--pin needs S:C}"; shift 2 ;;
    --command) command="${2:?--command needs a command}"; shift 2 ;;
    --prepare) prepare="${2:?--prepare needs a command}"; shift 2 ;;
    --prepare-requests) prepare_requests="${2:?--prepare-requests needs N}"; shift 2 ;;
    --keyspace) keyspace="${2:?--keyspace needs N}"; shift 2 ;;
    -h|--help) sed -n '2,36p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[[ $# -ge 2 ]] || { sed -n '2,36p' "$0" >&2; exit 2; }
bin_a="$1" bin_b="$2"
shift 2
[[ "${1:-}" == "--" ]] && shift
for n in "$pipeline" "$requests" "$rounds" "$prepare_requests" "$keyspace"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "not a positive number: $n" >&2; exit 2; }
done
for b in "$bin_a" "$bin_b"; do
  [[ -x "$b" ]] || { echo "not an executable: $b" >&2; exit 2; }
done
for tool in redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (see bench/compare.sh)" >&2; exit 1; }
done

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=bench/lib-net.sh
source "$root/bench/lib-net.sh"
# Commands put in front of the servers and of redis-benchmark (empty unless --pin).
pin_commands "$pin" || exit $?
work="$(mktemp -d "${TMPDIR:-/tmp}/keel-ab.XXXXXX")"
pids=()
cleanup() {
  stop_pids "${pids[@]}"
  rm -rf "$work"
}
trap cleanup EXIT

# start NAME BIN ARGS... -> sets port and pid
start() {
  local name="$1" bin="$2"
  shift 2
  port="$(free_port)" || { echo "no free port found" >&2; exit 1; }
  mkdir -p "$work/$name"
  # keel refuses an option given twice: the defaults give way to the caller's.
  local defaults=()
  [[ " $* " == *" --appendfsync "* ]] || defaults+=(--appendfsync no)
  [[ " $* " == *" --save "* ]] || defaults+=(--save '')
  "${server_pin[@]}" "$bin" --bind 127.0.0.1 --port "$port" --dir "$work/$name/data" "${defaults[@]}" \
    --grpc-enabled false --loglevel warning "$@" >"$work/$name/log" 2>&1 &
  pid=$!
  pids+=("$pid")
  wait_for_server "$port" "$pid" "$work/$name/log" || { echo "($name)" >&2; exit 1; }
}
read -r -a extra_a <<<"$args_a"
read -r -a extra_b <<<"$args_b"
start a "$bin_a" "${extra_a[@]}" "$@"
port_a=$port pid_a=$pid
start b "$bin_b" "${extra_b[@]}" "$@"
port_b=$port pid_b=$pid

read -r -a command_words <<<"$command"
read -r -a prepare_words <<<"$prepare"
if [[ ${#command_words[@]} -gt 0 ]]; then
  # The command's name stands for it in the output.
  tests="$(tr '[:upper:]' '[:lower:]' <<<"${command_words[0]}")"
fi
if [[ ${#prepare_words[@]} -gt 0 ]]; then
  for p in "$port_a" "$port_b"; do
    "${client_pin[@]}" redis-benchmark -p "$p" -c 50 -n "$prepare_requests" -P 16 -r "$keyspace" \
      -q "${prepare_words[@]}" >/dev/null
  done
fi

ticks="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# run PORT PID TEST -> "rps cpu_us_per_req"
run() {
  local before after rps what=(-t "$3")
  [[ ${#command_words[@]} -eq 0 ]] || what=("${command_words[@]}")
  before="$(cpu_ticks "$2")"
  rps="$("${client_pin[@]}" redis-benchmark -p "$1" -c 50 -n "$requests" -P "$pipeline" -d 64 \
    -r "$keyspace" -q --csv "${what[@]}" | tail -n 1 | cut -d, -f2 | tr -d '"')"
  after="$(cpu_ticks "$2")"
  [[ -n "$rps" ]] || { echo "redis-benchmark gave no figure for $3" >&2; exit 1; }
  echo "$rps $(( (after - before) * 1000000 / ticks ))"
}
for t in $tests; do
  rows=""
  for i in $(seq 1 "$rounds"); do
    # A B, then B A: whichever runs second in a round is not always the same build.
    if ((i % 2)); then
      rows+="A $(run "$port_a" "$pid_a" "$t")"$'\n'
      rows+="B $(run "$port_b" "$pid_b" "$t")"$'\n'
    else
      rows+="B $(run "$port_b" "$pid_b" "$t")"$'\n'
      rows+="A $(run "$port_a" "$pid_a" "$t")"$'\n'
    fi
  done
  python3 - "$t" "$pipeline" "$requests" <<PY
import statistics, sys
test, p, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [l.split() for l in """$rows""".strip().splitlines()]
def med(who, i):
    return statistics.median(float(r[i]) for r in rows if r[0] == who)
rps_a, rps_b = med("A", 1), med("B", 1)
cpu_a, cpu_b = med("A", 2) / n, med("B", 2) / n
# Round i's A and B ran a few seconds apart: their ratio carries less of the machine's
# drift than the ratio of the two medians.
a_runs = [float(r[1]) for r in rows if r[0] == "A"]
b_runs = [float(r[1]) for r in rows if r[0] == "B"]
pairs = [b / a for a, b in zip(a_runs, b_runs) if a > 0]
ahead = sum(1 for x in pairs if x > 1)
runs = " ".join(f"{r[0]}={float(r[1]):.0f}" for r in rows)
print(f"{test} P{p}: rps A {rps_a:.0f} B {rps_b:.0f} B/A {rps_b / rps_a:.3f} "
      f"(pairwise median {statistics.median(pairs):.3f}, B ahead in {ahead} of {len(pairs)}) | "
      f"cpu us/req A {cpu_a:.3f} B {cpu_b:.3f} B/A {cpu_b / cpu_a:.3f} | rounds {runs}")
PY
done
