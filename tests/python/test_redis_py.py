#!/usr/bin/env python3
"""redis-py against a keel-server this script starts itself.

Usage: test_redis_py.py [path/to/keel-server]   (or KEEL_BIN in the environment)
Prints 'N passed, M failed, K skipped' and exits non-zero when anything failed.
Features keel does not offer yet (MULTI/EXEC, pub/sub) are skipped with a printed reason,
decided by asking the server's COMMAND INFO, never assumed.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

try:
    import redis
except ImportError:
    print("redis-py is not installed: run scripts/ci-deps.sh first", file=sys.stderr)
    sys.exit(2)

WAIT = 20.0  # bound of every wait, seconds


class Skip(Exception):
    """A test that cannot run against this server, with the reason."""


def start_server(binary, data_dir):
    proc = subprocess.Popen(
        [binary, "--port", "0", "--grpc-port", "0", "--dir", data_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + WAIT
    marker = "ready to accept connections on "
    lines = []
    # readline blocks, so the deadline is enforced by a watchdog that kills the process.
    timer = threading.Timer(WAIT, proc.kill)
    timer.start()
    try:
        for line in proc.stdout:
            lines.append(line)
            pos = line.find(marker)
            if pos >= 0:
                addr = line[pos + len(marker):].split()[0]
                host, port = addr.rsplit(":", 1)
                # Keep draining the log so the server never blocks on a full pipe.
                threading.Thread(target=lambda: proc.stdout.read(), daemon=True).start()
                return proc, host, int(port)
            if time.monotonic() > deadline:
                break
    finally:
        timer.cancel()
    proc.kill()
    raise RuntimeError("keel-server did not report its address:\n" + "".join(lines))


def has_command(r, name):
    # Raw reply: redis-py's COMMAND parser does not accept the nil of an unknown command.
    conn = r.connection_pool.get_connection("COMMAND")
    try:
        conn.send_command("COMMAND", "INFO", name)
        info = conn.read_response()
    finally:
        r.connection_pool.release(conn)
    return bool(info) and info[0] is not None


# ---------------------------------------------------------------- tests


def t_strings(r):
    assert r.set("s", "hello") is True
    assert r.get("s") == "hello"
    assert r.append("s", " world") == 11
    assert r.strlen("s") == 11
    assert r.getrange("s", 0, 4) == "hello"
    assert r.setrange("s", 6, "WORLD") == 11
    assert r.get("s") == "hello WORLD"
    assert r.set("s", "x", nx=True) is None
    assert r.set("n", 10) is True
    assert r.incr("n") == 11
    assert r.incrby("n", 5) == 16
    assert r.decr("n") == 15
    assert r.incrbyfloat("n", 0.5) == 15.5
    assert r.mset({"a": "1", "b": "2"}) is True
    assert r.mget("a", "b", "missing") == ["1", "2", None]
    assert r.getset("a", "9") == "1"
    assert r.getdel("a") == "9"
    assert r.exists("a") == 0
    assert r.set("e", "v", ex=100) is True
    ttl = r.ttl("e")
    assert 0 < ttl <= 100, ttl
    assert r.persist("e") is True
    assert r.ttl("e") == -1
    assert r.type("e") == "string"
    try:
        r.incr("s")
        raise AssertionError("INCR on a non-integer must fail")
    except redis.ResponseError as e:
        assert "not an integer" in str(e), str(e)
    # Binary-safe values round-trip.
    raw = bytes(range(256))
    rb = redis.Redis(connection_pool=r.connection_pool.__class__(**r.connection_pool.connection_kwargs | {"decode_responses": False}))
    rb.set(b"bin\x00key", raw)
    assert rb.get(b"bin\x00key") == raw
    rb.close()


def t_hashes(r):
    assert r.hset("h", mapping={"f1": "v1", "f2": "v2"}) == 2
    assert r.hget("h", "f1") == "v1"
    assert r.hgetall("h") == {"f1": "v1", "f2": "v2"}
    assert r.hincrby("h", "c", 3) == 3
    assert r.hincrbyfloat("h", "c", 1.5) == 4.5
    assert sorted(r.hkeys("h")) == ["c", "f1", "f2"]
    assert r.hlen("h") == 3
    assert r.hexists("h", "f2") is True
    assert r.hdel("h", "f2", "nope") == 1
    assert r.hmget("h", "f1", "f2") == ["v1", None]
    assert not r.hsetnx("h", "f1", "other")
    assert r.hget("h", "f1") == "v1"
    assert r.hstrlen("h", "f1") == 2
    cursor, seen = 0, {}
    for _ in range(1000):
        cursor, chunk = r.hscan("h", cursor)
        seen.update(chunk)
        if cursor == 0:
            break
    assert seen == {"f1": "v1", "c": "4.5"}, seen


def t_lists(r):
    assert r.rpush("l", "a", "b", "c") == 3
    assert r.lpush("l", "z") == 4
    assert r.lrange("l", 0, -1) == ["z", "a", "b", "c"]
    assert r.lpop("l") == "z"
    assert r.rpop("l") == "c"
    assert r.llen("l") == 2
    assert r.lindex("l", 1) == "b"
    assert r.lset("l", 0, "A") is True
    assert r.linsert("l", "after", "A", "mid") == 3
    assert r.lrem("l", 0, "mid") == 1
    assert r.rpush("l", "x", "y") == 4
    assert r.ltrim("l", 1, -1) is True
    assert r.lrange("l", 0, -1) == ["b", "x", "y"]
    assert r.lmove("l", "l2", "LEFT", "RIGHT") == "b"
    assert r.lrange("l2", 0, -1) == ["b"]
    assert r.lpos("l", "y") == 1
    assert r.lpop("l", 5) == ["x", "y"]
    assert r.exists("l") == 0


def t_sets(r):
    assert r.sadd("s1", "a", "b", "c") == 3
    assert r.sadd("s2", "b", "c", "d") == 3
    assert r.sismember("s1", "a") == 1
    assert r.sismember("s1", "zz") == 0
    assert [bool(x) for x in r.smismember("s1", ["a", "z"])] == [True, False]
    assert r.scard("s1") == 3
    assert r.sinter("s1", "s2") == {"b", "c"}
    assert r.sunion("s1", "s2") == {"a", "b", "c", "d"}
    assert r.sdiff("s1", "s2") == {"a"}
    assert r.sinterstore("s3", ["s1", "s2"]) == 2
    assert r.smembers("s3") == {"b", "c"}
    assert r.srem("s1", "a", "zz") == 1
    assert r.smove("s1", "s2", "b")
    assert r.smembers("s1") == {"c"}
    popped = r.spop("s2")
    assert popped in {"b", "c", "d"}
    assert r.scard("s2") == 2


def t_zsets(r):
    assert r.zadd("z", {"a": 1, "b": 2, "c": 3}) == 3
    assert r.zscore("z", "b") == 2.0
    assert r.zrange("z", 0, -1, withscores=True) == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert r.zrevrange("z", 0, 0) == ["c"]
    assert r.zrank("z", "c") == 2
    assert r.zincrby("z", 10, "a") == 11.0
    assert r.zrangebyscore("z", 2, "+inf") == ["b", "c", "a"]
    assert r.zcount("z", "(2", 11) == 2
    assert r.zrem("z", "b") == 1
    assert r.zcard("z") == 2
    assert r.zadd("z", {"c": 5}, xx=True, ch=True) == 1
    assert r.zpopmin("z") == [("c", 5.0)]
    assert r.zadd("lex", {"a": 0, "b": 0, "c": 0}) == 3
    assert r.zrangebylex("lex", "[b", "+") == ["b", "c"]
    # z is {a: 11} now; the union sums scores of common members.
    assert r.zunionstore("u", ["z", "lex"]) == 3
    assert r.zrange("u", 0, -1, withscores=True) == [("b", 0.0), ("c", 0.0), ("a", 11.0)]


def t_keys_and_scan(r):
    for i in range(50):
        r.set(f"scan:{i}", i)
    found = set(r.scan_iter(match="scan:*", count=7))
    assert found == {f"scan:{i}" for i in range(50)}, len(found)
    assert r.delete(*[f"scan:{i}" for i in range(10)]) == 10
    assert r.dbsize() == 40
    assert r.rename("scan:10", "renamed") is True
    assert r.exists("scan:10", "renamed") == 1
    assert r.expire("renamed", 100) is True
    assert r.pexpire("renamed", 100000) is True
    assert 0 < r.pttl("renamed") <= 100000
    assert r.unlink("renamed") == 1


def t_pipeline(r):
    p = r.pipeline(transaction=False)
    for i in range(200):
        p.set(f"p:{i}", i)
        p.incr("p:counter")
    p.get("p:199")
    p.lpush("p:list", *range(10))
    p.incr("p:199x")
    res = p.execute()
    assert res[:2] == [True, 1]
    assert res[-3] == "199"
    assert res[-2] == 10
    assert r.get("p:counter") == "200"
    # An error in the middle of a pipeline does not stop the rest.
    p = r.pipeline(transaction=False)
    p.set("p:s", "str")
    p.lpush("p:s", "x")
    p.get("p:s")
    res = p.execute(raise_on_error=False)
    assert res[0] is True
    assert isinstance(res[1], redis.ResponseError) and "WRONGTYPE" in str(res[1])
    assert res[2] == "str"


def t_transaction(r):
    if not has_command(r, "exec"):
        raise Skip("COMMAND INFO exec is empty: MULTI/EXEC not implemented in this build")
    p = r.pipeline(transaction=True)
    p.set("t:a", 1)
    p.incr("t:a")
    p.get("t:a")
    assert p.execute() == [True, 2, "2"]
    # WATCH: a concurrent change aborts the transaction.
    if has_command(r, "watch"):
        other = redis.Redis(connection_pool=redis.ConnectionPool(**r.connection_pool.connection_kwargs))
        with r.pipeline() as p:
            p.watch("t:a")
            other.set("t:a", 100)
            p.multi()
            p.incr("t:a")
            try:
                p.execute()
                raise AssertionError("EXEC after a WATCHed key changed must abort")
            except redis.WatchError:
                pass
        assert r.get("t:a") == "100"
        other.close()


def t_pubsub(r):
    if not has_command(r, "publish") or not has_command(r, "subscribe"):
        raise Skip("COMMAND INFO publish/subscribe is empty: pub/sub not implemented in this build")
    ps = r.pubsub()
    ps.subscribe("chan")
    msg = ps.get_message(timeout=WAIT)
    assert msg and msg["type"] == "subscribe", msg
    deadline = time.monotonic() + WAIT
    while r.publish("chan", "hi") != 1:
        assert time.monotonic() < deadline, "subscriber never counted"
        time.sleep(0.01)
    msg = ps.get_message(timeout=WAIT)
    assert msg and msg["type"] == "message" and msg["data"] == "hi", msg
    ps.psubscribe("ch*")
    msg = ps.get_message(timeout=WAIT)
    assert msg and msg["type"] == "psubscribe", msg
    assert r.publish("chx", "p") == 1
    msg = ps.get_message(timeout=WAIT)
    assert msg and msg["type"] == "pmessage" and msg["channel"] == "chx", msg
    ps.close()


def t_resp3(r, host, port):
    r3 = redis.Redis(host=host, port=port, protocol=3, decode_responses=True, socket_timeout=WAIT)
    try:
        hello = r3.execute_command("HELLO", 3)
        assert hello.get("proto") == 3, hello
        assert r3.set("r3", "v") is True
        assert r3.get("r3") == "v"
        r3.hset("r3h", mapping={"a": "1", "b": "2"})
        assert r3.hgetall("r3h") == {"a": "1", "b": "2"}
        r3.sadd("r3s", "x", "y")
        assert r3.smembers("r3s") == {"x", "y"}
        r3.zadd("r3z", {"m": 1.5})
        assert r3.zscore("r3z", "m") == 1.5
        assert r3.get("r3-missing") is None
        assert r3.ping() is True
    finally:
        r3.close()


def t_pool_threads(r, host, port):
    pool = redis.ConnectionPool(host=host, port=port, max_connections=8, decode_responses=True,
                                socket_timeout=WAIT)
    errors = []
    per_thread = 200

    def work(tid):
        try:
            c = redis.Redis(connection_pool=pool)
            for i in range(per_thread):
                c.set(f"th:{tid}:{i}", i)
                c.incr("th:counter")
                c.rpush(f"th:list:{tid}", i)
        except Exception as e:  # reported below
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT * 3)
        assert not t.is_alive(), "a worker thread hung"
    assert not errors, errors
    c = redis.Redis(connection_pool=pool)
    assert c.get("th:counter") == str(8 * per_thread)
    for tid in range(8):
        assert c.llen(f"th:list:{tid}") == per_thread
        assert c.get(f"th:{tid}:{per_thread - 1}") == str(per_thread - 1)
    pool.disconnect()


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("KEEL_BIN")
    if not binary:
        print("usage: test_redis_py.py <keel-server binary> (or set KEEL_BIN)", file=sys.stderr)
        return 2
    data = tempfile.mkdtemp(prefix="keel-pytest-")
    proc = None
    passed, failed, skipped = 0, 0, 0
    try:
        proc, host, port = start_server(binary, os.path.join(data, "data"))
        r = redis.Redis(host=host, port=port, decode_responses=True, socket_timeout=WAIT)
        tests = [
            ("strings", lambda: t_strings(r)),
            ("hashes", lambda: t_hashes(r)),
            ("lists", lambda: t_lists(r)),
            ("sets", lambda: t_sets(r)),
            ("zsets", lambda: t_zsets(r)),
            ("keys and scan", lambda: t_keys_and_scan(r)),
            ("pipeline", lambda: t_pipeline(r)),
            ("transaction", lambda: t_transaction(r)),
            ("pubsub", lambda: t_pubsub(r)),
            ("resp3", lambda: t_resp3(r, host, port)),
            ("pool with threads", lambda: t_pool_threads(r, host, port)),
        ]
        for name, fn in tests:
            r.flushall()
            try:
                fn()
                passed += 1
                print(f"ok      {name}")
            except Skip as s:
                skipped += 1
                print(f"skipped {name}: {s}")
            except Exception:
                failed += 1
                print(f"FAILED  {name}")
                traceback.print_exc()
        r.close()
    finally:
        if proc is not None:
            proc.kill()
            proc.wait(timeout=WAIT)
        shutil.rmtree(data, ignore_errors=True)
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
