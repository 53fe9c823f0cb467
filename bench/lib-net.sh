# Shared by the bench scripts (sourced, not run).

# Prints a TCP port on 127.0.0.1 that nothing listens on, or fails. The range stays below
# Linux's ephemeral ports (32768 and up), where redis-benchmark's own client sockets could
# hold the port between the probe and the server's bind.
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

# Stops server processes: SIGTERM to all, then SIGKILL to any still up after 10 s each
# (bounded, so a server that ignores SIGTERM cannot hang a script's exit).
stop_pids() {
  local pid
  for pid in "$@"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "$@"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}

# Sets the arrays server_pin and client_pin to the commands put in front of the servers
# and of redis-benchmark for a --pin S:C option (taskset -c S, taskset -c C; S and C are
# CPU lists), or empties them when $1 is empty. Fails (2: malformed, 1: no taskset)
# with a message on stderr.
pin_commands() {
  server_pin=()
  client_pin=()
  [[ -n "$1" ]] || return 0
  [[ "$1" =~ ^[0-9,-]+:[0-9,-]+$ ]] || { echo "--pin wants S:C, CPU lists: $1" >&2; return 2; }
  command -v taskset >/dev/null || { echo "--pin needs taskset (util-linux)" >&2; return 1; }
  server_pin=(taskset -c "${1%%:*}")
  client_pin=(taskset -c "${1##*:}")
}

# Waits until a server answers PING on 127.0.0.1:$1, polling every $4 seconds (default
# 0.1) at most $5 times (default 100). Fails, with the last lines of the log file $3 on
# stderr, when it does not answer by then or when its process $2 exits first. The process
# is checked before each PING, so another server on a reused port cannot answer for it.
wait_for_server() {
  local port="$1" pid="$2" log="$3" every="${4:-0.1}" tries="${5:-100}"
  for _ in $(seq 1 "$tries"); do
    kill -0 "$pid" 2>/dev/null || break
    [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]] && return 0
    sleep "$every"
  done
  echo "server on port $port did not start:" >&2
  tail -n 20 "$log" >&2
  return 1
}

# Prints the workspace's cargo target directory (cargo metadata's answer, else $1/target)
# for the workspace at $1.
cargo_target_dir() {
  local dir
  dir="$(cd "$1" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
  echo "${dir:-$1/target}"
}
