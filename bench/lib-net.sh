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
