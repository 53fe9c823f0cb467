#!/usr/bin/env bash
# A flame graph of a server under one redis-benchmark test: starts keel (or
# redis-server) on a free port, preloads it, runs the test in a loop, samples the server
# with `perf record -g` (DWARF unwinding, so frames inlined into their callers show too)
# and draws the samples with keel-flame. Where a profile comes from before a change.
#
# usage: bench/flame.sh [options] TEST PIPELINE [-- server args...]
#   --server keel|redis   which server (default keel)
#   --keel-bin PATH       keel-server binary (default: target/dist/keel-server, built)
#   --seconds S           how long perf samples (default 5)
#   --freq HZ             samples per second per thread (default 499)
#   --clients N           redis-benchmark clients (default 50)
#   --preload N           SETs (-P 16) run first, so writes overwrite keys (default 300000)
#   --preload-test T      the test the preload runs instead of SET (lpush before rpop)
#   --keyspace N          redis-benchmark -r: keys drawn from N (default 100000)
#   --out DIR             where flame.svg, folded.txt and top.txt go (default
#                         target/flame/<server>-<test>-P<pipeline>)
#   --no-install          never call apt-get (fail when perf or redis-tools is missing)
# Example: bench/flame.sh set 1 -- --appendonly no
# Prints the functions with the most samples of their own (the innermost frame, inlined
# frames included) and the SVG's path. Sampling needs perf_event_paranoid <= 1 or root.
set -euo pipefail

server=keel
keel_bin=""
seconds=5
freq=499
clients=50
preload=300000
preload_test=set
keyspace=100000
out=""
install=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --server) server="${2:?--server needs keel or redis}"; shift 2 ;;
    --keel-bin) keel_bin="${2:?--keel-bin needs PATH}"; shift 2 ;;
    --seconds) seconds="${2:?--seconds needs S}"; shift 2 ;;
    --freq) freq="${2:?--freq needs HZ}"; shift 2 ;;
    --clients) clients="${2:?--clients needs N}"; shift 2 ;;
    --preload) preload="${2:?--preload needs N}"; shift 2 ;;
    --preload-test) preload_test="${2:?--preload-test needs a test}"; shift 2 ;;
    --keyspace) keyspace="${2:?--keyspace needs N}"; shift 2 ;;
    --out) out="${2:?--out needs DIR}"; shift 2 ;;
    --no-install) install=0; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
[[ $# -ge 2 ]] || { sed -n '2,21p' "$0" >&2; exit 2; }
test_name="$1" pipeline="$2"
shift 2
[[ "${1:-}" == "--" ]] && shift
[[ "$server" == keel || "$server" == redis ]] || { echo "--server: keel or redis" >&2; exit 2; }
for n in "$pipeline" "$seconds" "$freq" "$clients" "$preload" "$keyspace"; do
  [[ "$n" =~ ^[0-9]+$ ]] || { echo "not a number: $n" >&2; exit 2; }
done
[[ "$seconds" -gt 0 && "$freq" -gt 0 ]] || { echo "--seconds and --freq must be above 0" >&2; exit 2; }

root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=scripts/lib-apt.sh
source "$root/scripts/lib-apt.sh"
# shellcheck source=bench/lib-net.sh
source "$root/bench/lib-net.sh"
need=()
command -v perf >/dev/null 2>&1 || need+=(linux-perf)
command -v redis-benchmark >/dev/null 2>&1 || need+=(redis-tools)
[[ "$server" == keel ]] || command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [[ ${#need[@]} -gt 0 ]]; then
  [[ $install -eq 1 ]] || { echo "missing packages: ${need[*]} (and --no-install given)" >&2; exit 1; }
  apt_install "${need[@]}" >&2
fi

(cd "$root" && cargo build --release -q -p keel-bench --bin keel-flame) >&2
if [[ "$server" == keel && -z "$keel_bin" ]]; then
  (cd "$root" && cargo build --profile dist -q -p keel-server) >&2
fi
target_dir="$(cargo_target_dir "$root")"
keel_bin="${keel_bin:-$target_dir/dist/keel-server}"
flame_bin="$target_dir/release/keel-flame"
out="${out:-$target_dir/flame/$server-$test_name-P$pipeline}"
mkdir -p "$out"

work="$(mktemp -d "${TMPDIR:-/tmp}/keel-flame.XXXXXX")"
port="$(free_port)" || { echo "no free port found" >&2; exit 1; }
spid="" bpid=""
cleanup() {
  [[ -z "$bpid" ]] || kill "$bpid" 2>/dev/null || true
  [[ -z "$spid" ]] || stop_pids "$spid"
  rm -rf "$work"
}
trap cleanup EXIT

if [[ "$server" == keel ]]; then
  [[ -x "$keel_bin" ]] || { echo "no keel-server at $keel_bin" >&2; exit 1; }
  "$keel_bin" --bind 127.0.0.1 --port "$port" --dir "$work/data" \
    --appendfsync everysec --grpc-enabled false "$@" >"$work/log" 2>&1 &
else
  redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
    --dir "$work" "$@" >"$work/log" 2>&1 &
fi
spid=$!
wait_for_server "$port" "$spid" "$work/log" || exit 1

bench=(redis-benchmark -p "$port" -c "$clients" -d 64 -r "$keyspace" -q)
if [[ "$preload" -gt 0 ]]; then "${bench[@]}" -n "$preload" -P 16 -t "$preload_test" >/dev/null 2>&1; fi
# -l repeats the test until killed (its own pid, not a subshell's, so the kill reaches
# it); a second in, the server is past its warm-up.
"${bench[@]}" -l -n 100000 -P "$pipeline" -t "$test_name" >/dev/null 2>&1 &
bpid=$!
sleep 1
echo "sampling $server ($test_name -P $pipeline) for ${seconds}s at ${freq} Hz" >&2
perf record -q -F "$freq" --call-graph dwarf,16384 -p "$spid" -o "$work/perf.data" \
  -- sleep "$seconds" >/dev/null 2>&1 \
  || { echo "perf record failed (perf_event_paranoid: $(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null))" >&2; exit 1; }
kill "$bpid" 2>/dev/null || true
wait "$bpid" 2>/dev/null || true
bpid=""
perf script -i "$work/perf.data" 2>/dev/null \
  | "$flame_bin" --title "$server: $test_name -P $pipeline, $clients clients" \
      --out "$out/flame.svg" --folded "$out/folded.txt" | tee "$out/top.txt"
echo "flame graph: $out/flame.svg"
