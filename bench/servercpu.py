"""Shared pieces of the per-request server CPU benchmarks (bench/tracking.py,
bench/acl.py): RESP encoding, reading a known number of reply bytes, a server's CPU
time from /proc, and starting keel and redis-server side by side."""
import os
import shutil
import socket
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


def load_keys(sock, keys, value=b"x" * 64):
    """SETs key:0 .. key:{keys-1} to `value` in pipelines."""
    for start in range(0, keys, PIPELINE):
        n = min(PIPELINE, keys - start)
        sock.sendall(b"".join(cmd("SET", f"key:{start + i}", value) for i in range(n)))
        read_exactly(sock, len(b"+OK\r\n") * n)


def parse_args(count_flag):
    """The benchmarks' options: --keel-bin, --rounds, --keys and `count_flag` (requests
    per run, a multiple of PIPELINE)."""
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("--keel-bin", default="target/release/keel-server")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument(count_flag, type=int, default=1_000_000)
    a = ap.parse_args()
    if getattr(a, count_flag.lstrip("-")) % PIPELINE:
        sys.exit(f"{count_flag} must be a multiple of {PIPELINE}")
    return a


def start_pair(keel_bin, keel_port, redis_port, prefix):
    """keel and redis-server with persistence off, waited for; returns (procs, ports,
    tmpdir)."""
    if not shutil.which("redis-server"):
        sys.exit("redis-server is not installed (bench/compare.sh installs it)")
    tmp = tempfile.mkdtemp(prefix=prefix)
    procs = {
        "keel": subprocess.Popen(
            [keel_bin, "--port", str(keel_port), "--dir", f"{tmp}/keel",
             "--appendonly", "no", "--save", "", "--grpc-enabled", "false"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "redis": subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no",
             "--dir", tmp],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    }
    ports = {"keel": keel_port, "redis": redis_port}
    for port in ports.values():
        wait_port(port)
    return procs, ports, tmp


def stop_pair(procs, tmp):
    """Stops what start_pair started."""
    for p in procs.values():
        p.terminate()
        p.wait(timeout=10)
    shutil.rmtree(tmp, ignore_errors=True)


def per_request_us(pid, ticks_before, requests):
    """Server CPU per request since `ticks_before`, in microseconds."""
    return (cpu_ticks(pid) - ticks_before) * 1e6 / os.sysconf("SC_CLK_TCK") / requests
