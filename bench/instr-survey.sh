#!/usr/bin/env bash
# Server instructions per request of keel and redis-server, command by command, for
# the commands redis-benchmark's default tests leave out (ranks, positions, counts,
# random members, hash and list reads): bench/instr.sh on each, keel then Redis, and a
# markdown table with the ratio. Where keel's cost per command stands against Redis's
# beyond the issue's ten tests; the table in docs/benchmarks.md ("Commands beyond
# redis-benchmark's tests") comes from this script.
#
# usage: bench/instr-survey.sh [--keel-bin PATH] [--requests N] [--only NAME,...]
#   --keel-bin PATH   keel-server binary (default: target/dist/keel-server)
#   --requests N      counted requests per command (default 20000; half as many more
#                     run first, uncounted, as bench/instr.sh does)
#   --only NAMES      run only these rows (comma-separated names from the list below)
# Every row fills its key with 100,000 pipelined writes over a 100k keyspace (about
# 63,000 distinct members), then runs its command at -P 1 with 50 clients. Each
# instr.sh run starts its own server under callgrind, so a row takes ~20-40 s.
# Needs valgrind and redis-tools (bench/compare.sh installs them).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
keel_bin="$root/target/dist/keel-server"
requests=20000
only=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keel-bin) keel_bin="${2:?--keel-bin needs a path}"; shift 2 ;;
    --requests) requests="${2:?--requests needs N}"; shift 2 ;;
    --only) only="${2:?--only needs names}"; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown option: $1" >&2; exit 2 ;;
  esac
done
[[ "$requests" =~ ^[0-9]+$ ]] || { echo "not a number: $requests" >&2; exit 2; }

# name | command that fills the key | command measured
rows=(
  "zscore|zadd z __rand_int__ m:__rand_int__|zscore z m:__rand_int__"
  "zrank|zadd z __rand_int__ m:__rand_int__|zrank z m:__rand_int__"
  "zrevrank|zadd z __rand_int__ m:__rand_int__|zrevrank z m:__rand_int__"
  "zcount|zadd z __rand_int__ m:__rand_int__|zcount z 1000 50000"
  "zrange_top|zadd z __rand_int__ m:__rand_int__|zrevrange z 0 9"
  "zrange_withscores|zadd z __rand_int__ m:__rand_int__|zrange z 0 9 withscores"
  "zrange_offset|zadd z __rand_int__ m:__rand_int__|zrange z 30000 30009"
  "zrangebyscore_limit|zadd z __rand_int__ m:__rand_int__|zrangebyscore z 40000 +inf limit 5000 10"
  "sismember|sadd s m:__rand_int__|sismember s m:__rand_int__"
  "srandmember|sadd s m:__rand_int__|srandmember s"
  "srandmember_5|sadd s m:__rand_int__|srandmember s 5"
  "hget|hset h f:__rand_int__ v|hget h f:__rand_int__"
  "hgetall_5|hset h:__rand_int__ a 1 b 2 c 3 d 4 e 5|hgetall h:__rand_int__"
  "llen|rpush l v:__rand_int__|llen l"
  "lindex_mid|rpush l v:__rand_int__|lindex l 50000"
  "lrange_mid|rpush l v:__rand_int__|lrange l 50000 50009"
  "exists|set k:__rand_int__ v|exists k:__rand_int__"
  "ttl|set k:__rand_int__ v|ttl k:__rand_int__"
)

# The figure of one instr.sh run: its line ends "<n> instr/req (n=...)".
measure() {
  local server="$1" prepare="$2" command="$3" line
  line="$(bash "$root/bench/instr.sh" --server "$server" --keel-bin "$keel_bin" \
    --preload 0 --prepare "$prepare" --prepare-requests 100000 --command "$command" \
    x 1 "$requests" -- --appendonly no 2>&1 | tail -1)" || true
  # A failed run's last line (its error) is reported here, not lost to `set -e`.
  [[ "$line" =~ :\ ([0-9]+)\ instr/req ]] || { echo "instr.sh failed: $line" >&2; return 1; }
  echo "${BASH_REMATCH[1]}"
}

echo "| command | measured | redis instr/req | keel instr/req | keel/redis |"
echo "|---|---|--:|--:|--:|"
for row in "${rows[@]}"; do
  IFS='|' read -r name prepare command <<<"$row"
  if [[ -n "$only" && ",$only," != *",$name,"* ]]; then continue; fi
  keel="$(measure keel "$prepare" "$command")"
  redis="$(measure redis "$prepare" "$command")"
  ratio="$(awk -v k="$keel" -v r="$redis" 'BEGIN { printf "%.2f", k / r }')"
  echo "| $name | \`$command\` | $redis | $keel | **$ratio** |"
done
