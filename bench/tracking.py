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
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PIPELINE = 1000


def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def read_exactly(sock, n):
    got = 0
    while got < n:
        chunk = sock.recv(1 << 20)
        if not chunk:
            sys.exit("server closed the connection")
        got += len(chunk)


def wait_port(port, deadline=10.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"no server on port {port}")


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
    for start in range(0, keys, PIPELINE):
        n = min(PIPELINE, keys - start)
        s.sendall(b"".join(cmd("SET", f"key:{start + i}", value) for i in range(n)))
        read_exactly(s, len(b"+OK\r\n") * n)
    reply = len(b"$64\r\n") + 64 + 2
    t0 = cpu_ticks(pid)
    for start in range(0, gets, PIPELINE):
        s.sendall(b"".join(cmd("GET", f"key:{(start + i) % keys}") for i in range(PIPELINE)))
        read_exactly(s, reply * PIPELINE)
    t1 = cpu_ticks(pid)
    s.close()
    return (t1 - t0) * 1e6 / os.sysconf("SC_CLK_TCK") / gets


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keel-bin", default="target/release/keel-server")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--gets", type=int, default=1_000_000)
    a = ap.parse_args()
    if a.gets % PIPELINE:
        sys.exit(f"--gets must be a multiple of {PIPELINE}")
    if not shutil.which("redis-server"):
        sys.exit("redis-server is not installed (bench/compare.sh installs it)")
    tmp = tempfile.mkdtemp(prefix="keel-tracking-")
    keel_port, redis_port = 24211, 24212
    procs = {
        "keel": subprocess.Popen(
            [a.keel_bin, "--port", str(keel_port), "--dir", f"{tmp}/keel",
             "--appendonly", "no", "--save", "", "--grpc-enabled", "false"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "redis": subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no",
             "--dir", tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    }
    ports = {"keel": keel_port, "redis": redis_port}
    try:
        for port in ports.values():
            wait_port(port)
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
        for p in procs.values():
            p.terminate()
            p.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
