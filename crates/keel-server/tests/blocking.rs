//! Blocking pops through the `redis` crate: wake-ups, FIFO fairness, timeouts, MULTI,
//! disconnects and pipelining. Every wait is bounded (WAIT).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::JoinHandle;

use common::{connect, wait_blocked, InProc, WAIT};
use keel_server::Config;
use redis::{Commands, Value};

/// Runs `args` on a new connection in a thread.
fn spawn_cmd(srv: &InProc, args: &[&str]) -> JoinHandle<Value> {
    let addr = srv.addr;
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    std::thread::spawn(move || {
        let mut con = connect(addr);
        let mut c = redis::cmd(&args[0]);
        for a in &args[1..] {
            c.arg(a);
        }
        c.query(&mut con).expect("blocking command")
    })
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// Reads from `raw` until `got` holds `want`'s length, then compares.
fn read_exactly(raw: &mut TcpStream, want: &[u8]) {
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got.len() < want.len() {
        let n = raw.read(&mut buf).expect("read");
        assert!(n > 0, "closed");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
}

#[test]
fn blpop_is_woken_by_a_push_from_another_client() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let waiter = spawn_cmd(&srv, &["BLPOP", "l", "10"]);
    wait_blocked(&mut con, 1);
    let _: i64 = con.lpush("l", "a").expect("lpush");
    let got = waiter.join().expect("waiter");
    assert_eq!(got, Value::Array(vec![bulk("l"), bulk("a")]));
    wait_blocked(&mut con, 0);
    let len: i64 = con.llen("l").expect("llen");
    assert_eq!(len, 0);
}

#[test]
fn waiters_are_served_in_the_order_they_blocked() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let mut waiters = Vec::new();
    for i in 0..3 {
        waiters.push(spawn_cmd(&srv, &["BRPOP", "q", "10"]));
        wait_blocked(&mut con, i + 1);
    }
    // One push for all three: each serves the next in line.
    let _: i64 = con.lpush("q", &["x", "y", "z"]).expect("lpush");
    let got: Vec<Value> = waiters
        .into_iter()
        .map(|w| w.join().expect("waiter"))
        .collect();
    // LPUSH x y z leaves [z, y, x]: BRPOP takes x first.
    let want: Vec<Value> = ["x", "y", "z"]
        .iter()
        .map(|v| Value::Array(vec![bulk("q"), bulk(v)]))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_timeout_replies_nil() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let v: Value = redis::cmd("BLPOP")
        .arg("none")
        .arg("0.05")
        .query(&mut con)
        .expect("blpop");
    assert_eq!(v, Value::Nil);
    let v: Value = redis::cmd("BLMOVE")
        .arg("none")
        .arg("dst")
        .arg("LEFT")
        .arg("RIGHT")
        .arg("0.05")
        .query(&mut con)
        .expect("blmove");
    assert_eq!(v, Value::Nil);
    let v: Value = redis::cmd("BZPOPMIN")
        .arg("none")
        .arg("0.05")
        .query(&mut con)
        .expect("bzpopmin");
    assert_eq!(v, Value::Nil);
    wait_blocked(&mut con, 0);
    // Bad timeouts are refused without blocking.
    let e = redis::cmd("BLPOP")
        .arg("l")
        .arg("-1")
        .query::<Value>(&mut con)
        .expect_err("negative");
    assert!(e.to_string().contains("timeout is negative"), "{e}");
}

#[test]
fn blmove_and_brpoplpush_are_woken() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let waiter = spawn_cmd(&srv, &["BLMOVE", "src", "dst", "LEFT", "RIGHT", "10"]);
    wait_blocked(&mut con, 1);
    let _: i64 = con.rpush("src", "m").expect("rpush");
    assert_eq!(waiter.join().expect("waiter"), bulk("m"));
    let waiter = spawn_cmd(&srv, &["BRPOPLPUSH", "src", "dst", "10"]);
    wait_blocked(&mut con, 1);
    let _: i64 = con.rpush("src", "n").expect("rpush");
    assert_eq!(waiter.join().expect("waiter"), bulk("n"));
    let dst: Vec<String> = con.lrange("dst", 0, -1).expect("lrange");
    assert_eq!(dst, vec!["n", "m"]);
}

#[test]
fn bzpopmin_and_bzmpop_are_woken_by_zadd() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let waiter = spawn_cmd(&srv, &["BZPOPMIN", "z", "10"]);
    wait_blocked(&mut con, 1);
    let _: i64 = con.zadd_multiple("z", &[(2, "b"), (1, "a")]).expect("zadd");
    let got = waiter.join().expect("waiter");
    let Value::Array(items) = got else {
        panic!("not an array: {got:?}")
    };
    assert_eq!(items[..2], [bulk("z"), bulk("a")]);
    let waiter = spawn_cmd(&srv, &["BZMPOP", "10", "2", "y", "z2", "MAX"]);
    wait_blocked(&mut con, 1);
    let _: i64 = con.zadd("z2", "m", 5).expect("zadd");
    let got = waiter.join().expect("waiter");
    let Value::Array(items) = got else {
        panic!("not an array: {got:?}")
    };
    assert_eq!(items[0], bulk("z2"));
}

#[test]
fn blmpop_waits_on_every_key_and_the_first_key_with_data_wins() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let _: i64 = con.rpush("b", "b1").expect("rpush");
    let _: i64 = con.rpush("c", "c1").expect("rpush");
    let v: Value = redis::cmd("BLPOP")
        .arg(&["a", "b", "c", "1"])
        .query(&mut con)
        .expect("blpop");
    assert_eq!(v, Value::Array(vec![bulk("b"), bulk("b1")]));
    let waiter = spawn_cmd(&srv, &["BLMPOP", "10", "2", "x", "y", "LEFT"]);
    wait_blocked(&mut con, 1);
    let _: i64 = con.rpush("y", "y1").expect("rpush");
    let got = waiter.join().expect("waiter");
    assert_eq!(
        got,
        Value::Array(vec![bulk("y"), Value::Array(vec![bulk("y1")])])
    );
}

#[test]
fn blocking_commands_inside_multi_do_not_block() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let _: () = redis::cmd("MULTI").query(&mut con).expect("multi");
    let _: Value = redis::cmd("BLPOP")
        .arg("empty")
        .arg("0")
        .query(&mut con)
        .expect("queued");
    let _: Value = redis::cmd("BZPOPMAX")
        .arg("emptyz")
        .arg("0")
        .query(&mut con)
        .expect("queued");
    let v: Value = redis::cmd("EXEC").query(&mut con).expect("exec");
    assert_eq!(v, Value::Array(vec![Value::Nil, Value::Nil]));
}

#[test]
fn a_disconnected_waiter_does_not_swallow_later_pushes() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    {
        let mut raw = TcpStream::connect(srv.addr).expect("connect");
        raw.write_all(b"BLPOP l 0\r\n").expect("write");
        wait_blocked(&mut con, 1);
    }
    // The server saw the close and dropped the waiter.
    wait_blocked(&mut con, 0);
    let waiter = spawn_cmd(&srv, &["BLPOP", "l", "10"]);
    wait_blocked(&mut con, 1);
    let _: i64 = con.lpush("l", "v").expect("lpush");
    assert_eq!(
        waiter.join().expect("waiter"),
        Value::Array(vec![bulk("l"), bulk("v")])
    );
}

#[test]
fn a_pipeline_blocks_at_the_blocking_command() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let mut raw = TcpStream::connect(srv.addr).expect("connect");
    raw.set_read_timeout(Some(WAIT)).expect("timeout");
    raw.write_all(b"SET x 1\r\nBLPOP l 10\r\nGET x\r\n")
        .expect("write");
    // The reply before the blocking command is sent before it blocks.
    read_exactly(&mut raw, b"+OK\r\n");
    wait_blocked(&mut con, 1);
    let _: i64 = con.lpush("l", "v").expect("lpush");
    read_exactly(&mut raw, b"*2\r\n$1\r\nl\r\n$1\r\nv\r\n$1\r\n1\r\n");
}

/// Reads of one input batch share a clock reading, but not across a blocking wait: a
/// key that expired while the pipeline waited reads as gone.
#[test]
fn a_read_after_a_blocking_wait_sees_the_time_after_it() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    // Only the read's own clock can find the key expired, not the background cycle.
    let _: () = redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query(&mut con)
        .expect("debug set-active-expire");
    let mut raw = TcpStream::connect(srv.addr).expect("connect");
    raw.set_read_timeout(Some(WAIT)).expect("timeout");
    raw.write_all(b"SET e 1 PX 400\r\nGET e\r\nBLPOP nothing 1\r\nGET e\r\n")
        .expect("write");
    read_exactly(&mut raw, b"+OK\r\n$1\r\n1\r\n*-1\r\n$-1\r\n");
}

#[test]
fn async_blpop_is_woken() {
    let srv = InProc::start(Config::default());
    let url = srv.url();
    let mut con = srv.client();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pusher = std::thread::spawn(move || {
        wait_blocked(&mut con, 1);
        let _: i64 = con.rpush("al", "v").expect("rpush");
    });
    rt.block_on(async move {
        let client = redis::Client::open(url).expect("client");
        let mut a = tokio::time::timeout(WAIT, client.get_multiplexed_async_connection())
            .await
            .expect("connect in time")
            .expect("connect");
        let got: (String, String) = tokio::time::timeout(
            WAIT,
            redis::cmd("BLPOP").arg("al").arg("10").query_async(&mut a),
        )
        .await
        .expect("in time")
        .expect("blpop");
        assert_eq!(got, ("al".to_string(), "v".to_string()));
    });
    pusher.join().expect("pusher");
}

#[test]
fn a_key_that_turns_into_another_type_does_not_wake_the_waiter() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let waiter = spawn_cmd(&srv, &["BLPOP", "k", "10"]);
    wait_blocked(&mut con, 1);
    // The push is undone inside one MULTI and the key ends up a string: the waiter is
    // woken, finds the wrong type and keeps waiting (Redis's behaviour).
    let _: () = redis::pipe()
        .atomic()
        .cmd("LPUSH")
        .arg("k")
        .arg("x")
        .ignore()
        .cmd("DEL")
        .arg("k")
        .ignore()
        .cmd("SET")
        .arg("k")
        .arg("foo")
        .ignore()
        .query(&mut con)
        .expect("multi");
    wait_blocked(&mut con, 1);
    let _: i64 = con.del("k").expect("del");
    let _: i64 = con.lpush("k", "b").expect("lpush");
    let got = waiter.join().expect("waiter");
    assert_eq!(got, Value::Array(vec![bulk("k"), bulk("b")]));
}

#[test]
fn a_wrong_typed_destination_is_the_woken_clients_error() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let _: () = con.set("target", "nolist").expect("set");
    let waiter = std::thread::spawn({
        let addr = srv.addr;
        move || {
            let mut c = connect(addr);
            redis::cmd("BRPOPLPUSH")
                .arg("blist")
                .arg("target")
                .arg(10)
                .query::<Value>(&mut c)
        }
    });
    wait_blocked(&mut con, 1);
    let _: i64 = con.rpush("blist", "foo").expect("rpush");
    let got = waiter.join().expect("waiter");
    let err = got.expect_err("WRONGTYPE for the destination");
    assert!(format!("{err}").contains("WRONGTYPE"), "{err}");
    let left: Vec<String> = con.lrange("blist", 0, -1).expect("lrange");
    assert_eq!(left, vec!["foo".to_string()], "nothing was moved");
}

#[test]
fn client_unblock_ends_a_wait_as_a_timeout_or_an_error() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let addr = srv.addr;
    let (tx, rx) = std::sync::mpsc::channel();
    // One connection blocks three times: unblocked by timeout, by error, then served.
    // It reports each reply before it blocks again.
    let waiter = std::thread::spawn(move || {
        let mut w = connect(addr);
        let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut w).expect("id");
        tx.send(Ok(Value::Int(id))).expect("send id");
        for _ in 0..3 {
            let r: redis::RedisResult<Value> = redis::cmd("BLPOP").arg("l").arg("0").query(&mut w);
            tx.send(r).expect("send reply");
        }
    });
    let next = || rx.recv_timeout(WAIT).expect("the waiter's next reply");
    let Ok(Value::Int(id)) = next() else {
        panic!("no client id")
    };
    let unblock = |con: &mut redis::Connection, id: i64, how: Option<&str>| {
        let mut c = redis::cmd("CLIENT");
        c.arg("UNBLOCK").arg(id);
        if let Some(h) = how {
            c.arg(h);
        }
        c.query::<i64>(con)
    };
    wait_blocked(&mut con, 1);
    assert_eq!(unblock(&mut con, id, None).expect("unblock"), 1);
    assert_eq!(next().expect("timeout reply"), Value::Nil);
    wait_blocked(&mut con, 1);
    assert_eq!(unblock(&mut con, id, Some("error")).expect("unblock"), 1);
    let e = next().expect_err("unblocked with an error");
    assert_eq!(e.code(), Some("UNBLOCKED"), "{e}");
    assert_eq!(
        e.detail(),
        Some("client unblocked via CLIENT UNBLOCK"),
        "{e}"
    );
    wait_blocked(&mut con, 1);
    // A client that is not blocked, or does not exist: 0.
    let own: i64 = redis::cmd("CLIENT").arg("ID").query(&mut con).expect("id");
    assert_eq!(unblock(&mut con, own, Some("TIMEOUT")).expect("self"), 0);
    assert_eq!(unblock(&mut con, 1 << 40, None).expect("nobody"), 0);
    let bad_id = redis::cmd("CLIENT")
        .arg("UNBLOCK")
        .arg("asd")
        .query::<Value>(&mut con)
        .expect_err("not an id");
    assert!(bad_id
        .to_string()
        .contains("value is not an integer or out of range"));
    let bad_reason = unblock(&mut con, id, Some("later")).expect_err("bad reason");
    assert!(bad_reason
        .to_string()
        .contains("CLIENT UNBLOCK reason should be TIMEOUT or ERROR"));
    // Still blocked after the refused UNBLOCK, and served by a push.
    let _: i64 = con.lpush("l", "x").expect("lpush");
    assert_eq!(
        next().expect("served"),
        Value::Array(vec![bulk("l"), bulk("x")])
    );
    waiter.join().expect("waiter");
}

/// A push pipelined with a blocking pop serves the client that blocked first, as in
/// Redis, not the pop right behind the push.
#[test]
fn a_pipelined_push_and_pop_serve_the_earlier_waiter_first() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    for round in 0..20 {
        let first = spawn_cmd(&srv, &["BLPOP", "fair", "10"]);
        wait_blocked(&mut con, 1);
        let mut raw = TcpStream::connect(srv.addr).expect("connect");
        raw.set_read_timeout(Some(WAIT)).expect("timeout");
        raw.write_all(b"LPUSH fair a\r\nBLPOP fair 10\r\n")
            .expect("write");
        assert_eq!(
            first.join().expect("first waiter"),
            Value::Array(vec![bulk("fair"), bulk("a")]),
            "round {round}"
        );
        read_exactly(&mut raw, b":1\r\n");
        // The pipelined pop now waits for the next push.
        wait_blocked(&mut con, 1);
        let _: i64 = con.lpush("fair", "b").expect("lpush");
        read_exactly(&mut raw, b"*2\r\n$4\r\nfair\r\n$1\r\nb\r\n");
        wait_blocked(&mut con, 0);
    }
}

/// SORT ... STORE creating the list a client waits on serves it (Redis's "BLPOP when
/// result key is created by SORT..STORE").
#[test]
fn sort_store_wakes_a_waiter_on_its_destination() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let _: i64 = con.rpush("src", &["3", "1", "2"]).expect("rpush");
    let waiter = spawn_cmd(&srv, &["BLPOP", "sorted", "10"]);
    wait_blocked(&mut con, 1);
    let n: i64 = redis::cmd("SORT")
        .arg("src")
        .arg("STORE")
        .arg("sorted")
        .query(&mut con)
        .expect("sort store");
    assert_eq!(n, 3);
    assert_eq!(
        waiter.join().expect("waiter"),
        Value::Array(vec![bulk("sorted"), bulk("1")])
    );
    let rest: Vec<String> = con.lrange("sorted", 0, -1).expect("lrange");
    assert_eq!(rest, ["2", "3"]);
}

fn changes_since_save(con: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(con)
        .expect("info");
    info.lines()
        .find_map(|l| l.strip_prefix("rdb_changes_since_last_save:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("rdb_changes_since_last_save")
}

/// A pop that found nothing changes nothing: a push served to a waiting BLPOP or
/// BLMOVE counts two changes, the push and the pop, as in Redis.
#[test]
fn a_served_blocking_pop_counts_one_change_and_its_empty_attempt_none() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    for pop in [
        &["BLPOP", "lst", "10"][..],
        &["BLMOVE", "lst", "lst1", "LEFT", "LEFT", "10"],
    ] {
        let before = changes_since_save(&mut con);
        let waiter = spawn_cmd(&srv, pop);
        wait_blocked(&mut con, 1);
        let _: i64 = con.lpush("lst", "a").expect("lpush");
        waiter.join().expect("waiter");
        assert_eq!(changes_since_save(&mut con), before + 2, "{pop:?}");
    }
}

#[test]
fn xread_block_is_woken_by_an_entry_after_the_last_one_it_saw() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let _: String = redis::cmd("XADD")
        .arg("s")
        .arg("1-1")
        .arg("a")
        .arg("b")
        .query(&mut con)
        .expect("xadd");
    let waiter = spawn_cmd(
        &srv,
        &["XREAD", "BLOCK", "10000", "STREAMS", "s", "other", "$", "$"],
    );
    wait_blocked(&mut con, 1);
    // A write to the stream that adds nothing after `$` wakes the waiter, which finds
    // nothing and waits on.
    let _: i64 = redis::cmd("XDEL")
        .arg("s")
        .arg("1-1")
        .query(&mut con)
        .expect("xdel");
    wait_blocked(&mut con, 1);
    // `$` was the last entry when the command came, not when it retries: this entry is
    // the one it returns.
    let _: String = redis::cmd("XADD")
        .arg("s")
        .arg("2-1")
        .arg("c")
        .arg("d")
        .query(&mut con)
        .expect("xadd");
    let got = waiter.join().expect("waiter");
    let entry = Value::Array(vec![bulk("2-1"), Value::Array(vec![bulk("c"), bulk("d")])]);
    assert_eq!(
        got,
        Value::Array(vec![Value::Array(vec![
            bulk("s"),
            Value::Array(vec![entry])
        ])])
    );
    wait_blocked(&mut con, 0);
    // A timeout answers the null array; without BLOCK XREAD never waits.
    let got: Value = redis::cmd("XREAD")
        .arg("BLOCK")
        .arg("50")
        .arg("STREAMS")
        .arg("s")
        .arg("$")
        .query(&mut con)
        .expect("xread");
    assert_eq!(got, Value::Nil);
    let got: Value = redis::cmd("XREAD")
        .arg("STREAMS")
        .arg("s")
        .arg("9-9")
        .query(&mut con)
        .expect("xread");
    assert_eq!(got, Value::Nil);
}

#[test]
fn xreadgroup_block_serves_each_group_in_order_and_xread_always() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    // A popper waits on the key first and keeps waiting once it is a stream: the
    // stream readers behind it must still be woken.
    let popper = spawn_cmd(&srv, &["BLPOP", "s", "10"]);
    wait_blocked(&mut con, 1);
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("s")
        .arg("g")
        .arg("$")
        .arg("MKSTREAM")
        .query(&mut con)
        .expect("xgroup");
    wait_blocked(&mut con, 1);
    let first = spawn_cmd(
        &srv,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "alice",
            "BLOCK",
            "10000",
            "STREAMS",
            "s",
            ">",
        ],
    );
    wait_blocked(&mut con, 2);
    let second = spawn_cmd(
        &srv,
        &[
            "XREADGROUP",
            "GROUP",
            "g",
            "bob",
            "BLOCK",
            "300",
            "STREAMS",
            "s",
            ">",
        ],
    );
    wait_blocked(&mut con, 3);
    let reader = spawn_cmd(&srv, &["XREAD", "BLOCK", "10000", "STREAMS", "s", "0"]);
    wait_blocked(&mut con, 4);
    let info: String = redis::cmd("INFO")
        .arg("clients")
        .query(&mut con)
        .expect("info");
    assert!(info.contains("total_blocking_keys:1\r"), "{info}");
    assert!(info.contains("total_blocking_keys_on_nokey:1\r"), "{info}");
    let _: String = redis::cmd("XADD")
        .arg("s")
        .arg("1-1")
        .arg("f")
        .arg("v")
        .query(&mut con)
        .expect("xadd");
    let entry = Value::Array(vec![bulk("1-1"), Value::Array(vec![bulk("f"), bulk("v")])]);
    let served = Value::Array(vec![Value::Array(vec![
        bulk("s"),
        Value::Array(vec![entry]),
    ])]);
    // The group's first waiter gets the entry, the second times out; XREAD sees it too.
    assert_eq!(first.join().expect("first"), served);
    assert_eq!(reader.join().expect("reader"), served);
    assert_eq!(second.join().expect("second"), Value::Nil);
    let pending: Value = redis::cmd("XPENDING")
        .arg("s")
        .arg("g")
        .query(&mut con)
        .expect("xpending");
    assert_eq!(
        pending,
        Value::Array(vec![
            Value::Int(1),
            bulk("1-1"),
            bulk("1-1"),
            Value::Array(vec![Value::Array(vec![bulk("alice"), bulk("1")])]),
        ])
    );
    // The popper still waits (the key is a stream) until the key is a list.
    let _: i64 = con.del("s").expect("del");
    let _: i64 = con.rpush("s", "x").expect("rpush");
    assert_eq!(
        popper.join().expect("popper"),
        Value::Array(vec![bulk("s"), bulk("x")])
    );
}

#[test]
fn xgroup_destroy_ends_a_blocked_xreadgroup_with_nogroup() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("s")
        .arg("g")
        .arg("$")
        .arg("MKSTREAM")
        .query(&mut con)
        .expect("xgroup");
    let addr = srv.addr;
    let waiter = std::thread::spawn(move || {
        let mut c = connect(addr);
        redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("alice")
            .arg("BLOCK")
            .arg("0")
            .arg("STREAMS")
            .arg("s")
            .arg(">")
            .query::<Value>(&mut c)
            .map_err(|e| e.to_string())
    });
    wait_blocked(&mut con, 1);
    let _: i64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg("s")
        .arg("g")
        .query(&mut con)
        .expect("destroy");
    let got = waiter.join().expect("waiter");
    assert!(
        got.as_ref().is_err_and(|e| e.contains("NOGROUP")),
        "{got:?}"
    );
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .expect("info");
    assert!(
        stats.contains("cmdstat_xreadgroup:calls=1,") && stats.contains("failed_calls=1"),
        "{stats}"
    );
}

/// `cmdstat_<name>` of INFO commandstats, or None.
fn cmdstat(con: &mut redis::Connection, name: &str) -> Option<String> {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(con)
        .expect("info");
    let prefix = format!("cmdstat_{name}:");
    stats
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

#[test]
fn a_blocked_command_is_counted_when_its_wait_ends() {
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    // Served by a push, and timed out: one call each, once the wait is over.
    let waiter = spawn_cmd(&srv, &["BLPOP", "q", "0"]);
    wait_blocked(&mut con, 1);
    assert_eq!(cmdstat(&mut con, "blpop"), None, "counted while blocked");
    let _: i64 = con.rpush("q", "x").expect("rpush");
    assert_eq!(
        waiter.join().expect("waiter"),
        Value::Array(vec![bulk("q"), bulk("x")])
    );
    let _: Value = redis::cmd("BLPOP")
        .arg(&["q", "0.01"])
        .query(&mut con)
        .expect("timeout");
    let stat = cmdstat(&mut con, "blpop").expect("blpop counted");
    assert!(
        stat.starts_with("calls=2,") && stat.ends_with(",rejected_calls=0,failed_calls=0"),
        "{stat}"
    );
    // A client that goes away while blocked is not counted.
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query(&mut con)
        .expect("resetstat");
    let mut raw = TcpStream::connect(srv.addr).expect("connect");
    raw.write_all(b"*3\r\n$5\r\nBLPOP\r\n$1\r\nz\r\n$1\r\n0\r\n")
        .expect("send");
    wait_blocked(&mut con, 1);
    drop(raw);
    wait_blocked(&mut con, 0);
    assert_eq!(cmdstat(&mut con, "blpop"), None);
    // A user whose keys were taken away while it waited: rejected, not called.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "ps", "on", "nopass", "+@all", "allkeys"])
        .query(&mut con)
        .expect("setuser");
    let addr = srv.addr;
    let waiter = std::thread::spawn(move || {
        let mut c = connect(addr);
        let _: () = redis::cmd("AUTH")
            .arg(&["ps", "x"])
            .query(&mut c)
            .expect("auth");
        redis::cmd("BLPOP")
            .arg(&["list1", "0"])
            .query::<Value>(&mut c)
            .map_err(|e| e.to_string())
    });
    wait_blocked(&mut con, 1);
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "ps", "resetkeys"])
        .query(&mut con)
        .expect("setuser");
    let _: i64 = con.lpush("list1", "foo").expect("lpush");
    let got = waiter.join().expect("waiter");
    assert!(got.as_ref().is_err_and(|e| e.contains("NOPERM")), "{got:?}");
    let stat = cmdstat(&mut con, "blpop").expect("blpop counted");
    assert!(
        stat.starts_with("calls=0,usec=0,") && stat.ends_with(",rejected_calls=1,failed_calls=0"),
        "{stat}"
    );
}
