#!/usr/bin/env python3
"""What an ACL check costs a request: server CPU per pipelined GET and SET as the
default user (allowed everything: the check is skipped) and as a limited user (every
command but one, keys `key:*`: every request is checked, its key matched against the
pattern), keel and redis-server side by side, rounds interleaved.

usage: bench/acl.py [--keel-bin PATH] [--rounds N] [--keys N] [--requests N]

Each round, server and user opens a connection (the limited user AUTHs), SETs --keys
keys of 64 bytes, then sends --requests GETs and as many SETs over them in pipelines
of 1000, reading the server's user+system CPU time from /proc/PID/stat around each
(10 ms ticks: use enough requests). Prints one line per server, user, command and
round, then the medians. Needs redis-server on the PATH (bench/compare.sh installs it).
"""
import socket
import statistics

from servercpu import (PIPELINE, cmd, cpu_ticks, load_keys, parse_args, per_request_us,
                       read_exactly, start_pair, stop_pair)

LIMITED = ["on", ">pw", "+@all", "-flushall", "~key:*"]


def setup(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(cmd("ACL", "SETUSER", "limited", *LIMITED))
    read_exactly(s, len(b"+OK\r\n"))
    s.close()


def run(port, pid, limited, keys, requests):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(30)
    if limited:
        s.sendall(cmd("AUTH", "limited", "pw"))
        read_exactly(s, len(b"+OK\r\n"))
    value = b"x" * 64
    load_keys(s, keys, value)
    out = {}
    for name, reply in (("GET", len(b"$64\r\n") + 64 + 2), ("SET", len(b"+OK\r\n"))):
        t0 = cpu_ticks(pid)
        for start in range(0, requests, PIPELINE):
            args = [(name, f"key:{(start + i) % keys}") for i in range(PIPELINE)]
            if name == "SET":
                args = [a + (value,) for a in args]
            s.sendall(b"".join(cmd(*a) for a in args))
            read_exactly(s, reply * PIPELINE)
        out[name] = per_request_us(pid, t0, requests)
    s.close()
    return out


def main():
    a = parse_args("--requests")
    procs, ports, tmp = start_pair(a.keel_bin, 24221, 24222, "keel-acl-")
    try:
        for port in ports.values():
            setup(port)
        results = {}
        for r in range(a.rounds):
            for server in ("redis", "keel"):
                for limited in (False, True):
                    got = run(ports[server], procs[server].pid, limited, a.keys, a.requests)
                    user = "limited" if limited else "default"
                    for name, us in got.items():
                        results.setdefault((server, limited, name), []).append(us)
                        print(f"round {r + 1} {server:5} {user:7} {name} {us:.3f} us", flush=True)
        print("medians (server CPU per request, µs):")
        for server in ("redis", "keel"):
            for name in ("GET", "SET"):
                d = statistics.median(results[(server, False, name)])
                l = statistics.median(results[(server, True, name)])
                print(f"  {server:5} {name} default {d:.3f}  limited {l:.3f}  limited/default {l / d:.2f}")
    finally:
        stop_pair(procs, tmp)


if __name__ == "__main__":
    main()
