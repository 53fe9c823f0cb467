//! MULTI/EXEC/DISCARD/WATCH/UNWATCH through the `redis` crate (sync and async).

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{InProc, WAIT};
use keel_server::Config;
use redis::{Commands, Value};

fn q(con: &mut redis::Connection, args: &[&str]) -> redis::RedisResult<Value> {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
}

fn ok(con: &mut redis::Connection, args: &[&str]) -> Value {
    q(con, args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn queued(con: &mut redis::Connection, args: &[&str]) {
    let v = ok(con, args);
    assert_eq!(v, Value::SimpleString("QUEUED".into()), "{args:?}");
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[test]
fn queued_commands_run_at_exec_in_order() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    assert_eq!(ok(&mut con, &["MULTI"]), Value::Okay);
    queued(&mut con, &["SET", "a", "1"]);
    queued(&mut con, &["INCR", "a"]);
    queued(&mut con, &["GET", "a"]);
    queued(&mut con, &["PING"]);
    queued(&mut con, &["ECHO", "e"]);
    // Nothing ran yet.
    let mut other = srv.client();
    let v: Option<String> = other.get("a").expect("get");
    assert_eq!(v, None);
    let res = ok(&mut con, &["EXEC"]);
    assert_eq!(
        res,
        Value::Array(vec![
            Value::Okay,
            Value::Int(2),
            bulk("2"),
            Value::SimpleString("PONG".into()),
            bulk("e"),
        ])
    );
    // An empty transaction answers an empty array.
    ok(&mut con, &["MULTI"]);
    assert_eq!(ok(&mut con, &["EXEC"]), Value::Array(vec![]));
}

#[test]
fn state_errors_use_redis_texts() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let e = q(&mut con, &["EXEC"]).expect_err("exec");
    assert!(e.to_string().contains("EXEC without MULTI"), "{e}");
    let e = q(&mut con, &["DISCARD"]).expect_err("discard");
    assert!(e.to_string().contains("DISCARD without MULTI"), "{e}");
    ok(&mut con, &["MULTI"]);
    let e = q(&mut con, &["MULTI"]).expect_err("nested");
    assert!(
        e.to_string().contains("MULTI calls can not be nested"),
        "{e}"
    );
    let e = q(&mut con, &["WATCH", "x"]).expect_err("watch in multi");
    assert!(
        e.to_string().contains("WATCH inside MULTI is not allowed"),
        "{e}"
    );
    queued(&mut con, &["SET", "x", "1"]);
    // Neither of those errors aborts the transaction.
    assert_eq!(ok(&mut con, &["EXEC"]), Value::Array(vec![Value::Okay]));
    assert_eq!(ok(&mut con, &["GET", "x"]), bulk("1"));
}

#[test]
fn a_queue_time_error_aborts_the_whole_transaction() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["SET", "a", "1"]);
    let e = q(&mut con, &["NOSUCHCMD", "x"]).expect_err("unknown");
    assert!(e.to_string().contains("unknown command"), "{e}");
    let e = q(&mut con, &["GET"]).expect_err("arity");
    assert!(e.to_string().contains("wrong number of arguments"), "{e}");
    queued(&mut con, &["SET", "b", "1"]);
    let e = q(&mut con, &["EXEC"]).expect_err("execabort");
    assert_eq!(e.code(), Some("EXECABORT"), "{e}");
    assert!(e.to_string().contains("previous errors"), "{e}");
    assert_eq!(ok(&mut con, &["EXISTS", "a", "b"]), Value::Int(0));
    // The connection left MULTI.
    let e = q(&mut con, &["EXEC"]).expect_err("exec");
    assert!(e.to_string().contains("EXEC without MULTI"), "{e}");
}

#[test]
fn a_runtime_error_fails_only_its_command() {
    // Raw socket: the client library turns an EXEC array holding errors into an error.
    let srv = InProc::start(Config::default());
    let mut sock = std::net::TcpStream::connect(srv.addr).expect("connect");
    sock.set_read_timeout(Some(WAIT)).expect("timeout");
    sock.write_all(b"MULTI\r\nSET s x\r\nLPUSH s y\r\nINCR s\r\nSET t 1\r\nEXEC\r\n")
        .expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while got.iter().filter(|b| **b == b'\n').count() < 10 {
        let n = sock.read(&mut buf).expect("read");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    let lines: Vec<&str> = text.split("\r\n").collect();
    assert_eq!(
        lines[..6],
        ["+OK", "+QUEUED", "+QUEUED", "+QUEUED", "+QUEUED", "*4"]
    );
    assert_eq!(lines[6], "+OK");
    assert!(lines[7].starts_with("-WRONGTYPE"), "{text}");
    assert!(lines[8].starts_with("-ERR"), "{text}");
    assert_eq!(lines[9], "+OK");
    let mut con = srv.client();
    assert_eq!(ok(&mut con, &["GET", "s"]), bulk("x"));
    assert_eq!(ok(&mut con, &["GET", "t"]), bulk("1"));
}

#[test]
fn discard_drops_the_queue() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["SET", "a", "1"]);
    assert_eq!(ok(&mut con, &["DISCARD"]), Value::Okay);
    assert_eq!(ok(&mut con, &["EXISTS", "a"]), Value::Int(0));
    let e = q(&mut con, &["EXEC"]).expect_err("exec");
    assert!(e.to_string().contains("EXEC without MULTI"), "{e}");
}

#[test]
fn select_inside_multi_moves_the_following_commands() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["SET", "k", "db0"]);
    queued(&mut con, &["SELECT", "1"]);
    queued(&mut con, &["SET", "k", "db1"]);
    let res = ok(&mut con, &["EXEC"]);
    assert_eq!(
        res,
        Value::Array(vec![Value::Okay, Value::Okay, Value::Okay])
    );
    // The connection is in db 1 now.
    assert_eq!(ok(&mut con, &["GET", "k"]), bulk("db1"));
    ok(&mut con, &["SELECT", "0"]);
    assert_eq!(ok(&mut con, &["GET", "k"]), bulk("db0"));
}

/// WATCH k, let `disturb` run on another connection, then a transaction setting `k2`:
/// returns EXEC's reply.
fn watched_exec(
    srv: &InProc,
    setup: &[&[&str]],
    disturb: &dyn Fn(&mut redis::Connection),
) -> Value {
    let mut con = srv.client();
    for cmd in setup {
        ok(&mut con, cmd);
    }
    assert_eq!(ok(&mut con, &["WATCH", "k"]), Value::Okay);
    let mut other = srv.client();
    disturb(&mut other);
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["SET", "k2", "done"]);
    ok(&mut con, &["EXEC"])
}

#[test]
fn watch_aborts_exec_when_another_client_writes() {
    let srv = InProc::start(Config::default());
    let res = watched_exec(&srv, &[&["SET", "k", "1"]], &|o| {
        ok(o, &["SET", "k", "2"]);
    });
    assert_eq!(res, Value::Nil);
    let mut con = srv.client();
    assert_eq!(ok(&mut con, &["EXISTS", "k2"]), Value::Int(0));
    // Untouched: it runs.
    let res = watched_exec(&srv, &[], &|o| {
        ok(o, &["SET", "unrelated", "2"]);
    });
    assert_eq!(res, Value::Array(vec![Value::Okay]));
    assert_eq!(ok(&mut con, &["GET", "k2"]), bulk("done"));
}

#[test]
fn watch_aborts_on_a_delete_and_on_flushall() {
    let srv = InProc::start(Config::default());
    let res = watched_exec(&srv, &[&["SET", "k", "1"]], &|o| {
        ok(o, &["DEL", "k"]);
    });
    assert_eq!(res, Value::Nil);
    let res = watched_exec(&srv, &[&["SET", "k", "1"]], &|o| {
        ok(o, &["FLUSHALL"]);
    });
    assert_eq!(res, Value::Nil);
    let res = watched_exec(&srv, &[&["SET", "k", "1"]], &|o| {
        ok(o, &["RENAME", "k", "k3"]);
    });
    assert_eq!(res, Value::Nil);
    // SWAPDB replaces the watched key with db 1's, which does not even have it.
    let res = watched_exec(&srv, &[&["SET", "k", "1"]], &|o| {
        ok(o, &["SWAPDB", "0", "1"]);
    });
    assert_eq!(res, Value::Nil);
    let res = watched_exec(&srv, &[&["SET", "k", "1"]], &|o| {
        ok(o, &["EXPIRE", "k", "100"]);
    });
    assert_eq!(res, Value::Nil);
    // SORT ... STORE over the watched key, even with nothing to store (Redis's "EXEC
    // fail on WATCHed key modified by SORT with STORE even if the result is empty").
    let res = watched_exec(&srv, &[&["DEL", "k"], &["LPUSH", "k", "bar"]], &|o| {
        ok(o, &["SORT", "emptylist", "STORE", "k"]);
    });
    assert_eq!(res, Value::Nil);
}

#[test]
fn watch_is_per_database() {
    let srv = InProc::start(Config::default());
    let res = watched_exec(&srv, &[&["SET", "k", "1"]], &|o| {
        ok(o, &["SELECT", "1"]);
        ok(o, &["SET", "k", "other-db"]);
    });
    assert_eq!(res, Value::Array(vec![Value::Okay]));
}

#[test]
fn watch_aborts_when_the_key_expires_after_watch() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    ok(&mut con, &["SET", "k", "v", "PX", "100"]);
    ok(&mut con, &["WATCH", "k"]);
    // Nobody touches it: it only expires.
    let deadline = Instant::now() + WAIT;
    let mut other = srv.client();
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let pttl: i64 = redis::cmd("PTTL").arg("k").query(&mut other).expect("pttl");
        if pttl == -2 {
            break;
        }
        assert!(Instant::now() < deadline, "key never expired");
    }
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["SET", "k2", "x"]);
    assert_eq!(ok(&mut con, &["EXEC"]), Value::Nil);
}

#[test]
fn watching_an_already_expired_key_does_not_fail_exec() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    ok(&mut con, &["SET", "k", "v", "PX", "1"]);
    std::thread::sleep(Duration::from_millis(20));
    ok(&mut con, &["WATCH", "k"]);
    // Let lazy and active expiry delete it meanwhile.
    std::thread::sleep(Duration::from_millis(250));
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["SET", "k2", "x"]);
    assert_eq!(ok(&mut con, &["EXEC"]), Value::Array(vec![Value::Okay]));
}

#[test]
fn unwatch_discard_and_exec_forget_the_watches() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let mut other = srv.client();
    for end in ["UNWATCH", "DISCARD", "EXEC"] {
        ok(&mut con, &["WATCH", "k"]);
        if end == "UNWATCH" {
            ok(&mut con, &["UNWATCH"]);
        } else {
            ok(&mut con, &["MULTI"]);
            ok(&mut con, &[end]);
        }
        ok(&mut other, &["SET", "k", end]);
        ok(&mut con, &["MULTI"]);
        queued(&mut con, &["SET", "k2", end]);
        assert_eq!(
            ok(&mut con, &["EXEC"]),
            Value::Array(vec![Value::Okay]),
            "after {end}"
        );
    }
}

#[test]
fn the_clients_own_write_after_watch_also_aborts() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    ok(&mut con, &["WATCH", "k"]);
    ok(&mut con, &["SET", "k", "mine"]);
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["SET", "k2", "x"]);
    assert_eq!(ok(&mut con, &["EXEC"]), Value::Nil);
}

#[test]
fn readers_never_see_half_a_transaction() {
    const KEYS: usize = 100;
    const ROUNDS: usize = 30;
    let srv = InProc::start(Config::default());
    let names: Vec<String> = (0..KEYS).map(|i| format!("c{i}")).collect();
    let writer_names = names.clone();
    let addr = srv.addr;
    let writer = std::thread::spawn(move || {
        let mut con = common::connect(addr);
        for _ in 0..ROUNDS {
            let mut p = redis::pipe();
            p.atomic();
            for n in &writer_names {
                p.incr(n, 1);
            }
            let _: Vec<i64> = p.query(&mut con).expect("exec");
        }
    });
    let mut reader = srv.client();
    let mut polls = 0usize;
    let deadline = Instant::now() + WAIT;
    loop {
        let vals: Vec<Option<i64>> = reader.mget(&names).expect("mget");
        let vals: Vec<i64> = vals.into_iter().map(|v| v.unwrap_or(0)).collect();
        let first = vals[0];
        assert!(
            vals.iter().all(|v| *v == first),
            "a reader saw a partial transaction: {vals:?}"
        );
        polls += 1;
        if first == ROUNDS as i64 || Instant::now() > deadline {
            break;
        }
    }
    writer.join().expect("writer");
    assert!(polls > 0);
    let vals: Vec<i64> = reader.mget(&names).expect("mget");
    assert_eq!(vals.iter().sum::<i64>(), (KEYS * ROUNDS) as i64);
}

#[test]
fn async_atomic_pipeline_and_watch_conflict() {
    let srv = InProc::start(Config::default());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let url = srv.url();
    rt.block_on(async move {
        let client = redis::Client::open(url).expect("client");
        let mut con = tokio::time::timeout(WAIT, client.get_multiplexed_async_connection())
            .await
            .expect("connect in time")
            .expect("connect");
        let (a, b): (i64, i64) = redis::pipe()
            .atomic()
            .incr("x", 1)
            .incr("x", 2)
            .query_async(&mut con)
            .await
            .expect("exec");
        assert_eq!((a, b), (1, 3));
        // A dedicated connection for WATCH (state is per connection).
        let mut w = tokio::time::timeout(WAIT, client.get_multiplexed_async_connection())
            .await
            .expect("connect in time")
            .expect("connect");
        let _: () = redis::cmd("WATCH")
            .arg("x")
            .query_async(&mut w)
            .await
            .expect("watch");
        let _: () = redis::cmd("SET")
            .arg("x")
            .arg("100")
            .query_async(&mut con)
            .await
            .expect("set");
        let res: Option<(i64,)> = redis::pipe()
            .atomic()
            .incr("x", 1)
            .query_async(&mut w)
            .await
            .expect("exec");
        assert_eq!(res, None);
        let x: i64 = redis::cmd("GET")
            .arg("x")
            .query_async(&mut con)
            .await
            .expect("get");
        assert_eq!(x, 100);
    });
}

#[test]
fn dirty_exec_is_null_in_resp3() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    ok(&mut con, &["HELLO", "3"]);
    ok(&mut con, &["WATCH", "k"]);
    let mut other = srv.client();
    ok(&mut other, &["SET", "k", "1"]);
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["SET", "k2", "x"]);
    assert_eq!(ok(&mut con, &["EXEC"]), Value::Nil);
}

#[test]
fn a_write_refused_by_maxmemory_at_queue_time_aborts_exec() {
    let srv = InProc::start(Config {
        maxmemory: 4096,
        ..Config::default()
    });
    let mut con = srv.client();
    let big = "x".repeat(1024);
    let mut full = false;
    for i in 0..64 {
        if q(&mut con, &["SET", &format!("k{i}"), &big]).is_err() {
            full = true;
            break;
        }
    }
    assert!(full, "maxmemory never reached");
    ok(&mut con, &["MULTI"]);
    queued(&mut con, &["DEL", "k0"]);
    let e = q(&mut con, &["SET", "more", "x"]).expect_err("oom");
    assert!(e.to_string().contains("used memory"), "{e}");
    let e = q(&mut con, &["EXEC"]).expect_err("execabort");
    assert_eq!(e.code(), Some("EXECABORT"), "{e}");
    // DEL did not run either.
    assert_eq!(ok(&mut con, &["EXISTS", "k0"]), Value::Int(1));
}

/// SAVE and SHUTDOWN cannot be queued: Redis's refusal, and EXEC aborts.
#[test]
fn save_and_shutdown_are_refused_inside_multi() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    for cmd in ["SAVE", "SHUTDOWN"] {
        ok(&mut con, &["MULTI"]);
        queued(&mut con, &["SET", "s", "1"]);
        let e = q(&mut con, &[cmd]).expect_err("refused");
        assert_eq!(e.code(), Some("ERR"), "{e}");
        assert_eq!(
            e.detail(),
            Some("Command not allowed inside a transaction"),
            "{cmd}"
        );
        let e = q(&mut con, &["EXEC"]).expect_err("execabort");
        assert_eq!(e.code(), Some("EXECABORT"), "{e}");
        assert_eq!(ok(&mut con, &["EXISTS", "s"]), Value::Int(0));
    }
}
