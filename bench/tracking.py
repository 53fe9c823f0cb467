#!/usr/bin/env python3
"""What client-side caching costs a read: server CPU per pipelined GET with CLIENT
TRACKING off and on, keel and redis-server side by side, rounds interleaved.

usage: bench/tracking.py [--keel-bin PATH] [--rounds N] [--keys N] [--gets N]

Each round and mode opens a RESP3 connection (tracking on: CLIENT TRACKING on, so
every GET remembers its key), loads --keys keys of 64 bytes, then sends --gets GETs
over them in pipelines of 1000 and reads the server's user+system CPU time from
/proc/PID/stat before and after (10 ms ticks: use enough GETs). Prints one line per
server, mode and round, then the medians. Needs redis-server on the PATH
(bench/compare.sh installs it).
"""
import socket
import statistics
import time

from servercpu import (PIPELINE, cmd, cpu_ticks, load_keys, parse_args, per_request_us,
                       read_exactly, start_pair, stop_pair)


def run(port, pid, tracking, keys, gets):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(30)
    s.sendall(cmd("HELLO", "3"))
    time.sleep(0.05)
    s.recv(1 << 16)
    if tracking:
        s.sendall(cmd("CLIENT", "TRACKING", "on"))
        read_exactly(s, len(b"+OK\r\n"))
    value = b"x" * 64
    load_keys(s, keys, value)
    reply = len(b"$64\r\n") + 64 + 2
    t0 = cpu_ticks(pid)
    for start in range(0, gets, PIPELINE):
        s.sendall(b"".join(cmd("GET", f"key:{(start + i) % keys}") for i in range(PIPELINE)))
        read_exactly(s, reply * PIPELINE)
    us = per_request_us(pid, t0, gets)
    s.close()
    return us


def main():
    a = parse_args("--gets")
    procs, ports, tmp = start_pair(a.keel_bin, 24211, 24212, "keel-tracking-")
    try:
        results = {}
        for r in range(a.rounds):
            for server in ("redis", "keel"):
                for tracking in (False, True):
                    us = run(ports[server], procs[server].pid, tracking, a.keys, a.gets)
                    results.setdefault((server, tracking), []).append(us)
                    mode = "on " if tracking else "off"
                    print(f"round {r + 1} {server:5} tracking {mode} {us:.3f} us/GET", flush=True)
        print("medians (server CPU per GET, µs):")
        for server in ("redis", "keel"):
            off = statistics.median(results[(server, False)])
            on = statistics.median(results[(server, True)])
            print(f"  {server:5} off {off:.3f}  on {on:.3f}  on/off {on / off:.2f}")
    finally:
        stop_pair(procs, tmp)


if __name__ == "__main__":
    main()
