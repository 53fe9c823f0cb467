#!/usr/bin/env bash
# keel vs redis-server, side by side on this machine: the same redis-benchmark runs against
# both (interleaved redis, keel, redis, keel so drift hits both), server CPU time and
# instruction counts per request, persistence variants, and RSS for 1M keys. Installs
# redis-server/redis-tools/valgrind when missing, builds keel-server (dist profile, the
# one users run) and keel-benchplot (release), and writes raw CSVs, a summary (CSV, JSON,
# markdown) and a PNG to --out.
# Progress goes to stderr; the markdown report is also printed on stdout at the end.
#
# usage: bench/compare.sh [options]        (--help for the list)
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/compare.sh [options]

  --quick            1 round, fewer requests, 200k keys for RSS, small instruction runs
  --rounds N         rounds of the interleaved matrix (default 3)
  --only TESTS       redis-benchmark tests, comma separated (default
                     set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100,mset);
                     also accepted: the rest of redis-benchmark's default suite,
                     ping_inline, ping_mbulk, rpush, lpop, spop, zpopmin and
                     lrange_N for any N (LRANGE mylist 0 N-1)
  --sections LIST    parts to run, comma separated (default
                     main,persist,engines,instr,mem):
                       main     the test matrix, redis vs keel memory engine, both
                                without persistence (keel --appendonly no --save '')
                       persist  SET/GET under AOF/WAL everysec and always, keel bitcask/lsm
                       engines  SET/GET, keel bitcask vs keel memory, interleaved, both
                                with the WAL everysec (the bitcask figure is a ratio
                                of the two, so they run side by side, not a section apart)
                       instr    user-space instructions per request under callgrind
                       mem      RSS after loading --mem-keys keys of 64-byte values
  --requests N       requests per run at pipeline 1 (default 50000; pipeline 16 runs
                     4x as many; lrange_N and mset a fifth)
  --persist-tests T  tests of the persist and engines sections (default set,get)
  --instr-requests N requests per callgrind run at pipeline 1 (default 20000; 2x at P16)
  --mem-keys N       keys loaded for the RSS figure (default 1000000)
  --clients N        redis-benchmark clients (default 50)
  --out DIR          results directory (default target/compare/<UTC timestamp>)
  --keel-bin PATH    use this keel-server instead of building one
  --keel-label TEXT  what that binary is (e.g. its commit), for the report
  --keel-args "ARGS" extra keel-server arguments for every keel run (split on spaces),
                     e.g. --keel-args "--io-threads 2"
  --pin S:C          run the servers on CPU list S and redis-benchmark on CPU list C
                     (taskset), e.g. --pin 1:0: the scheduler then moves neither and
                     rounds differ far less (unpinned, the client and the server
                     under test share the cores by turns); default: unpinned
  --no-install       never call apt-get (fail when a tool is missing)
  --help             this text
EOF
}

log() { echo "[compare $(date -u +%H:%M:%S)] $*" >&2; }
die() { log "error: $*"; exit 1; }

root="$(cd "$(dirname "$0")/.." && pwd)"
given_args="$(printf "%q " "$@")"
given_args="${given_args% }"

rounds=3
tests="set,get,incr,lpush,rpop,sadd,hset,zadd,lrange_100,mset"
sections="main,persist,engines,instr,mem"
requests=50000
persist_tests="set,get"
instr_requests=20000
mem_keys=1000000
clients=50
out=""
keel_bin=""
keel_label=""
keel_args=()
install=1
pin=""

while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) rounds=1; requests=20000; instr_requests=10000; mem_keys=200000 ;;
    --rounds) rounds="${2:?--rounds needs N}"; shift ;;
    --only) tests="${2:?--only needs TESTS}"; shift ;;
    --sections) sections="${2:?--sections needs LIST}"; shift ;;
    --requests) requests="${2:?--requests needs N}"; shift ;;
    --persist-tests) persist_tests="${2:?--persist-tests needs TESTS}"; shift ;;
    --instr-requests) instr_requests="${2:?--instr-requests needs N}"; shift ;;
    --mem-keys) mem_keys="${2:?--mem-keys needs N}"; shift ;;
    --clients) clients="${2:?--clients needs N}"; shift ;;
    --out) out="${2:?--out needs DIR}"; shift ;;
    --keel-bin) keel_bin="${2:?--keel-bin needs PATH}"; shift ;;
    --keel-label) keel_label="${2:?--keel-label needs TEXT}"; shift ;;
    --keel-args) read -r -a keel_args <<<"${2?--keel-args needs ARGS}"; shift ;;
    --pin) pin="${2:?--pin needs S:C}"; shift ;;
    --no-install) install=0 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
  shift
done
for n in "$rounds" "$requests" "$instr_requests" "$mem_keys" "$clients"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "not a positive number: $n"
done

has_section() { [[ ",$sections," == *",$1,"* ]]; }

# ---------------------------------------------------------------- tools

# shellcheck source=scripts/lib-apt.sh
source "$root/scripts/lib-apt.sh"
# shellcheck source=bench/lib-net.sh
source "$root/bench/lib-net.sh"
need_pkgs=()
command -v redis-server >/dev/null 2>&1 || need_pkgs+=(redis-server)
{ command -v redis-benchmark >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; } \
  || need_pkgs+=(redis-tools)
if has_section instr && ! command -v callgrind_control >/dev/null 2>&1; then
  need_pkgs+=(valgrind)
fi
if [[ ${#need_pkgs[@]} -gt 0 ]]; then
  [[ $install -eq 1 ]] || die "missing packages: ${need_pkgs[*]} (and --no-install given)"
  apt_install "${need_pkgs[@]}" >&2
fi
# perf is optional: without it (or without hardware counters) callgrind counts instead.
if has_section instr && [[ $install -eq 1 ]] && ! command -v perf >/dev/null 2>&1; then
  apt_install linux-perf >&2 || log "linux-perf not installed; instruction counts will use callgrind"
fi

log "building keel-server (dist profile) and keel-benchplot (release)"
(cd "$root" && cargo build --release -q -p keel-bench) >&2
if [[ -z "$keel_bin" ]]; then
  (cd "$root" && cargo build --profile dist -q -p keel-server) >&2
fi
target_dir="$(cargo_target_dir "$root")"
keel_bin="${keel_bin:-$target_dir/dist/keel-server}"
plot_bin="$target_dir/release/keel-benchplot"
[[ -x "$keel_bin" ]] || die "no keel-server binary at $keel_bin"
[[ -x "$plot_bin" ]] || die "no keel-benchplot binary at $plot_bin"

out="${out:-$root/target/compare/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/keel-compare.XXXXXX")"

# ---------------------------------------------------------------- servers

# Commands put in front of the servers and of redis-benchmark (empty unless --pin).
pin_commands "$pin" || die "bad --pin"
declare -a server_pids=()

cleanup() {
  stop_pids "${server_pids[@]}"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# Waits (bounded by $2 seconds) until the server on port $1 answers PING while process
# $3 is alive (wait_for_server, bench/lib-net.sh; $4 is its log, shown when it fails).
# Returns 1 when the process exited (the caller tries another port); dies on a timeout.
wait_ready() {
  local port="$1" secs="$2" pid="$3" logf="$4"
  wait_for_server "$port" "$pid" "$logf" 0.1 $((secs * 10)) && return 0
  kill -0 "$pid" 2>/dev/null || return 1
  die "server on port $port did not answer PING within ${secs}s"
}

# Starts a server. Usage: start_server NAME KIND MODE [WRAPPER...]; sets $srv_pid, $srv_port.
#   KIND redis: MODE none | everysec | always
#   KIND keel:  MODE <engine>:<appendfsync>, e.g. memory:no, bitcask:everysec; or
#               <engine>:off, no WAL and no snapshots (--appendonly no --save '')
start_server() {
  local name="$1" kind="$2" mode="$3"
  shift 3
  local dir="$work/$name" port
  # A start can fail when another process takes the port between the probe and the bind:
  # try again on another port (bounded).
  for _ in 1 2 3; do
    port="$(free_port)" || die "no free port found"
    rm -rf "$dir"
    mkdir -p "$dir"
    local cmd
    if [[ "$kind" == redis ]]; then
      cmd=(redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save ''
        --daemonize no --protected-mode no --logfile "$dir/redis.log")
      case "$mode" in
        none) cmd+=(--appendonly no) ;;
        everysec|always) cmd+=(--appendonly yes --appendfsync "$mode") ;;
        *) die "unknown redis mode $mode" ;;
      esac
    else
      local engine="${mode%%:*}" fsync="${mode#*:}"
      cmd=("$keel_bin" --bind 127.0.0.1 --port "$port" --dir "$dir/data" --engine "$engine"
        --loglevel warning)
      # "off" is Redis's --save '' --appendonly no. With fsync "no" the WAL is written
      # but never synced, and keel's WAL-size snapshots are off, as Redis's RDB saves are.
      # Otherwise both keep their log compaction defaults.
      case "$fsync" in
        off) cmd+=(--appendonly no --save '') ;;
        no) cmd+=(--appendfsync no --save '') ;;
        *) cmd+=(--appendfsync "$fsync") ;;
      esac
      cmd+=("${keel_args[@]}")
    fi
    "${server_pin[@]}" "$@" "${cmd[@]}" >"$dir/stdout.log" 2>&1 &
    srv_pid=$!
    srv_port="$port"
    server_pids+=("$srv_pid")
    echo "$srv_pid" >"$dir/pid"
    log "started $name ($kind $mode) pid $srv_pid port $port"
    # Under valgrind a start takes seconds.
    if wait_ready "$port" 120 "$srv_pid" "$dir/stdout.log"; then
      return 0
    fi
    wait "$srv_pid" 2>/dev/null || true
  done
  die "$name did not start (3 attempts)"
}

stop_server() {
  local pid="$1"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  # Forget it, so the exit trap cannot signal a later process that reuses the pid.
  local kept=() p
  for p in "${server_pids[@]}"; do [[ "$p" == "$pid" ]] || kept+=("$p"); done
  server_pids=("${kept[@]}")
}

# utime+stime of a process in clock ticks, as "user sys".
cpu_ticks() {
  # Fields after the ")" that ends comm: state is the 1st, utime the 12th, stime the 13th.
  sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12, $13}'
}
clk_tck="$(getconf CLK_TCK)"

vm_rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# ---------------------------------------------------------------- benchmark runs

raw="$out/raw.csv"
echo "section,variant,server,test,pipeline,round,requests,rps,avg_ms,p50_ms,p95_ms,p99_ms,max_ms,cpu_user_s,cpu_sys_s,instructions,method" >"$raw"

# The redis-benchmark arguments for test $1: `-t name`, or the explicit command where
# -t would add unmeasured work (-t lrange_100 runs an LPUSH fill of the same size first).
bench_args() {
  case "$1" in
    lrange_[1-9]*)
      [[ "${1#lrange_}" =~ ^[0-9]+$ ]] || die "unknown test $1"
      echo "LRANGE mylist 0 $((${1#lrange_} - 1))" ;;
    set|get|incr|lpush|rpop|sadd|hset|zadd|mset) echo "-t $1" ;;
    ping_inline|ping_mbulk|rpush|lpop|spop|zpopmin) echo "-t $1" ;;
    *) die "unknown test $1" ;;
  esac
}

# The unmeasured fill a test reads or pops from, as redis-benchmark arguments (none when
# the test needs none): LRANGE's list at least as long as the range, and as many members
# as the run pops for SPOP and ZPOPMIN.
fill_args() {
  local test="$1" n="$2"
  case "$test" in
    lrange_*) echo "-c 10 -n ${test#lrange_} -t lpush" ;;
    spop) echo "-c 50 -n $n -t sadd" ;;
    zpopmin) echo "-c 50 -n $n -t zadd" ;;
  esac
}

requests_for() {
  local test="$1" pipeline="$2" n="$3"
  if [[ "$pipeline" -gt 1 ]]; then n=$((n * 4)); fi
  case "$test" in lrange_*|mset) n=$((n / 5)) ;; esac
  echo $((n > 100 ? n : 100))
}

# One redis-benchmark run with CPU accounting. Appends a row to the raw CSV.
# usage: run_bench SECTION VARIANT SERVER PID PORT TEST PIPELINE ROUND REQUESTS
run_bench() {
  local section="$1" variant="$2" server="$3" pid="$4" port="$5" test="$6" pipeline="$7"
  local round="$8" n="$9"
  local args fill before after csv line
  # shellcheck disable=SC2207
  args=($(bench_args "$test"))
  # shellcheck disable=SC2207
  fill=($(fill_args "$test" "$n"))
  if [[ ${#fill[@]} -gt 0 ]]; then
    "${client_pin[@]}" redis-benchmark -h 127.0.0.1 -p "$port" -d 64 -r 100000 -q "${fill[@]}" \
      >/dev/null 2>&1
  fi
  before="$(cpu_ticks "$pid")"
  csv="$("${client_pin[@]}" redis-benchmark -h 127.0.0.1 -p "$port" -c "$clients" -n "$n" -P "$pipeline" -d 64 \
    -r 100000 --csv "${args[@]}" 2>/dev/null)" || die "redis-benchmark failed: $server $test"
  after="$(cpu_ticks "$pid")"
  # The last data line: the measured test (header first).
  line="$(printf '%s\n' "$csv" | grep -v '^"test"' | tail -n 1 | tr -d '"')"
  [[ -n "$line" ]] || die "no CSV output from redis-benchmark for $server $test"
  local rps avg min p50 p95 p99 max
  IFS=, read -r _ rps avg min p50 p95 p99 max <<<"$line"
  local cu cs
  read -r cu cs < <(awk -v b="$before" -v a="$after" -v t="$clk_tck" \
    'BEGIN {split(b, x, " "); split(a, y, " "); printf "%.2f %.2f\n", (y[1]-x[1])/t, (y[2]-x[2])/t}')
  echo "$section,$variant,$server,$test,$pipeline,$round,$n,$rps,$avg,$p50,$p95,$p99,$max,$cu,$cs,,proc-stat" >>"$raw"
  log "  $section/$variant $server $test P$pipeline round $round: $rps rps p99 ${p99} ms cpu ${cu}u+${cs}s"
}

IFS=, read -r -a test_list <<<"$tests"
IFS=, read -r -a persist_list <<<"$persist_tests"
pipelines=(1 16)

# Interleaved matrix between two running servers, the baseline A (redis, or keel's memory
# engine in the engines section) and B: per round, per test, per pipeline, A then B.
# usage: run_pair SECTION VARIANT NAME_A PID_A PORT_A NAME_B PID_B PORT_B TESTS...
run_pair() {
  local section="$1" variant="$2" aname="$3" apid="$4" aport="$5" bname="$6" bpid="$7"
  local bport="$8"
  shift 8
  local tl=("$@") round test p n
  for round in $(seq 1 "$rounds"); do
    for test in "${tl[@]}"; do
      for p in "${pipelines[@]}"; do
        n="$(requests_for "$test" "$p" "$requests")"
        run_bench "$section" "$variant" "$aname" "$apid" "$aport" "$test" "$p" "$round" "$n"
        run_bench "$section" "$variant" "$bname" "$bpid" "$bport" "$test" "$p" "$round" "$n"
      done
    done
  done
}

machine_md="$out/machine.md"
{
  echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), nproc $(nproc)"
  echo "- kernel: $(uname -sr)"
  echo "- redis-server: $(redis-server --version | head -n 1)"
  echo "- redis-benchmark: $(redis-benchmark --version 2>/dev/null | head -n 1)"
  if [[ -n "$keel_label" ]]; then
    echo "- keel: $keel_label ($keel_bin)"
  else
    echo "- keel: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' (dirty)')"
  fi
  echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- started: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- command: \`bench/compare.sh $given_args\`"
  [[ ${#keel_args[@]} -eq 0 ]] || echo "- keel arguments: ${keel_args[*]}"
  [[ -z "$pin" ]] || echo "- pinned: servers on CPUs ${pin%%:*}, redis-benchmark on CPUs ${pin##*:}"
  echo "- settings: rounds $rounds, clients $clients, -d 64, -r 100000, requests $requests (P1)"
} >"$machine_md"

if has_section main; then
  log "section main: redis vs keel memory, both without persistence, $rounds round(s)"
  start_server redis-main redis none; rpid=$srv_pid; rport=$srv_port
  start_server keel-main keel memory:off; kpid=$srv_pid; kport=$srv_port
  run_pair main none redis "$rpid" "$rport" keel "$kpid" "$kport" "${test_list[@]}"
  stop_server "$rpid"; stop_server "$kpid"
fi

if has_section persist; then
  # variant: redis mode / keel engine:fsync
  for variant in everysec:everysec:memory:everysec always:always:memory:always \
    bitcask:everysec:bitcask:everysec lsm:everysec:lsm:everysec; do
    IFS=: read -r vname rmode kengine kfsync <<<"$variant"
    log "section persist/$vname: redis AOF $rmode vs keel $kengine WAL $kfsync"
    start_server "redis-$vname" redis "$rmode"; rpid=$srv_pid; rport=$srv_port
    start_server "keel-$vname" keel "$kengine:$kfsync"; kpid=$srv_pid; kport=$srv_port
    run_pair persist "$vname" redis "$rpid" "$rport" keel "$kpid" "$kport" "${persist_list[@]}"
    stop_server "$rpid"; stop_server "$kpid"
  done
fi

if has_section engines; then
  # The issue's bitcask figure is GET against the memory engine. In the persist section
  # each engine runs beside its own redis a minute apart, and the machine's drift between
  # them moved that ratio by a fifth; here the two run in turns.
  log "section engines: keel bitcask vs keel memory, both WAL everysec, $rounds round(s)"
  start_server keel-engines-memory keel memory:everysec; mpid=$srv_pid; mport=$srv_port
  start_server keel-engines-bitcask keel bitcask:everysec; bpid=$srv_pid; bport=$srv_port
  run_pair engines bitcask keel-memory "$mpid" "$mport" keel-bitcask "$bpid" "$bport" \
    "${persist_list[@]}"
  stop_server "$mpid"; stop_server "$bpid"
fi

if has_section instr; then
  method=""
  # Captured first: grep -q on a pipe would end perf with SIGPIPE, which pipefail turns
  # into a failed test (and a wrong choice).
  perf_probe="$(perf stat -x, -e instructions:u true 2>&1 || true)"
  if ! command -v perf >/dev/null 2>&1 \
    || ! grep -q '^[0-9][0-9]*,.*instructions' <<<"$perf_probe"; then
    log "section instr: perf has no instruction counter here; using callgrind (user space only)"
    method=callgrind
  else
    method=perf
    log "section instr: perf stat -e instructions:u,instructions:k"
  fi
  for server in redis keel; do
    if [[ $method == callgrind ]]; then
      if [[ $server == redis ]]; then
        start_server "$server-instr" redis none valgrind --tool=callgrind \
          --callgrind-out-file="$work/cg-$server.%p"
      else
        start_server "$server-instr" keel memory:off valgrind --tool=callgrind \
          --callgrind-out-file="$work/cg-$server.%p"
      fi
    else
      if [[ $server == redis ]]; then start_server "$server-instr" redis none
      else start_server "$server-instr" keel memory:off; fi
    fi
    ipid=$srv_pid; iport=$srv_port
    dump=0
    for test in set get; do
      for p in 1 16; do
        n="$instr_requests"
        if [[ $p -gt 1 ]]; then n=$((n * 2)); fi
        if [[ $method == callgrind ]]; then
          callgrind_control -z "$ipid" >/dev/null 2>&1 || die "callgrind_control -z $ipid failed"
          csv="$("${client_pin[@]}" redis-benchmark -h 127.0.0.1 -p "$iport" -c "$clients" -n "$n" -P "$p" -d 64 \
            -r 100000 --csv -t "$test" 2>/dev/null)"
          callgrind_control -d "$ipid" >/dev/null 2>&1 || die "callgrind_control -d $ipid failed"
          dump=$((dump + 1))
          f="$work/cg-$server.$ipid.$dump"
          for _ in $(seq 1 100); do [[ -s "$f" ]] && grep -q '^totals:' "$f" && break; sleep 0.1; done
          instr="$(awk '/^totals:/ {print $2}' "$f")"
          [[ -n "$instr" ]] || die "no totals in callgrind dump $f"
          # Keep the profile: where the instructions go is the next question. Paths
          # shortened in it and its summary: dependency sources and the toolchain by a
          # placeholder (the numbers and names callgrind_annotate reads are unchanged).
          shorten='s#[^ ]*/\.cargo/registry/src/[^/]+/#<cargo-src>/#g; s#/rustc/[0-9a-f]{40}/#<rustc>/#g'
          mkdir -p "$out/callgrind"
          sed -E "$shorten" "$f" >"$out/callgrind/$server-$test-P$p.callgrind"
          if command -v callgrind_annotate >/dev/null 2>&1; then
            callgrind_annotate --threshold=100 "$f" 2>/dev/null | head -n 80 \
              | sed -E "$shorten" >"$out/callgrind/$server-$test-P$p.top.txt" || true
          fi
        else
          perf stat -x, -e instructions:u,instructions:k -p "$ipid" -o "$work/perf.txt" &
          perf_pid=$!
          sleep 0.2
          csv="$("${client_pin[@]}" redis-benchmark -h 127.0.0.1 -p "$iport" -c "$clients" -n "$n" -P "$p" -d 64 \
            -r 100000 --csv -t "$test" 2>/dev/null)"
          kill -INT "$perf_pid"; wait "$perf_pid" || true
          instr="$(awk -F, '/instructions/ && $1 ~ /^[0-9]+$/ {s += $1} END {print s + 0}' "$work/perf.txt")"
          [[ "$instr" != 0 ]] || die "perf counted no instructions: $(cat "$work/perf.txt")"
        fi
        line="$(printf '%s\n' "$csv" | grep -v '^"test"' | tail -n 1 | tr -d '"')"
        IFS=, read -r _ rps avg min p50 p95 p99 max <<<"$line"
        echo "instr,none,$server,$test,$p,1,$n,$rps,$avg,$p50,$p95,$p99,$max,,,$instr,$method" >>"$raw"
        log "  instr $server $test P$p: $instr instructions / $n requests ($method)"
      done
    done
    stop_server "$ipid"
  done
fi

mem="$out/mem.csv"
echo "server,engine,keys,rss_empty_kb,rss_loaded_kb,bytes_per_key" >"$mem"
if has_section mem; then
  resp="$work/load.resp"
  log "section mem: writing $mem_keys SET commands (64-byte values)"
  # Distinct keys key:<n>, values 64 bytes: the number zero-padded to 64 digits.
  awk -v n="$mem_keys" 'BEGIN {
    for (i = 0; i < n; i++) {
      k = "key:" i; v = sprintf("%064d", i);
      printf "*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$64\r\n%s\r\n", length(k), k, v
    }
  }' >"$resp"
  for cfg in redis:none keel:memory:off keel:bitcask:everysec keel:lsm:everysec; do
    kind="${cfg%%:*}"; mode="${cfg#*:}"
    name="mem-$kind-${mode%%:*}"
    start_server "$name" "$kind" "$mode"; mpid=$srv_pid; mport=$srv_port
    sleep 1
    empty="$(vm_rss_kb "$mpid")"
    redis-cli -h 127.0.0.1 -p "$mport" --pipe <"$resp" >"$work/$name.pipe.log" 2>&1 \
      || die "redis-cli --pipe failed for $name: $(tail -n 3 "$work/$name.pipe.log")"
    keys="$(redis-cli -h 127.0.0.1 -p "$mport" dbsize)"
    [[ "$keys" == "$mem_keys" ]] || die "$name holds $keys keys after loading $mem_keys"
    sleep 2
    loaded="$(vm_rss_kb "$mpid")"
    engine=$([[ $kind == redis ]] && echo "none" || echo "${mode%%:*}")
    bpk="$(awk -v a="$empty" -v b="$loaded" -v n="$mem_keys" 'BEGIN {printf "%.1f", (b - a) * 1024 / n}')"
    echo "$kind,$engine,$mem_keys,$empty,$loaded,$bpk" >>"$mem"
    log "  $name: RSS ${empty} kB empty, ${loaded} kB loaded, $bpk bytes/key"
    stop_server "$mpid"
  done
fi

echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$machine_md"
echo "- finished: $(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$machine_md"

log "summarising into $out"
"$plot_bin" --raw "$raw" --mem "$mem" --machine "$machine_md" --out "$out"
log "done: $out/report.md, $out/keel-vs-redis.png"
cat "$out/report.md"
