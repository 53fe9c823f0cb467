//! The threads that serve connections: `threads N`, the shared runtime's workers, and
//! `io-threads N`, connections dealt to N threads with their own event loops. One test
//! function runs in-process servers, so that no other server of this binary runs
//! keel-io threads while the threads' CPU time is read; the `threads` test runs the
//! binary, as its runtime is built by `main`. Every wait is bounded (WAIT).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{connect, spawn_binary, wait_blocked, InProc, WAIT};
use keel_server::Config;
use redis::{Commands, Value};

/// CPU time (ns, from schedstat) of each thread of this process named `keel-io-*`.
fn io_thread_cpu() -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let tasks = std::fs::read_dir("/proc/self/task").expect("read /proc/self/task");
    for task in tasks.flatten() {
        let path = task.path();
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue; // the thread ended meanwhile
        };
        let name = name.trim().to_string();
        if !name.starts_with("keel-io-") {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("schedstat")) else {
            continue;
        };
        let ns: u64 = stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .expect("schedstat's first field");
        *out.entry(name).or_default() += ns;
    }
    out
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[test]
fn connections_on_io_threads_share_the_keyspace_wakeups_and_shutdown() {
    assert!(
        io_thread_cpu().is_empty(),
        "no keel-io thread before the server starts"
    );
    let srv = InProc::start(Config {
        io_threads: 2,
        ..Config::default()
    });
    // A thread names itself once it runs, which on a busy machine can be a moment
    // after the server is up.
    let deadline = Instant::now() + WAIT;
    let mut before = io_thread_cpu();
    while before.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        before = io_thread_cpu();
    }
    assert_eq!(
        before.keys().cloned().collect::<Vec<_>>(),
        ["keel-io-0", "keel-io-1"],
        "io-threads 2 starts two threads"
    );

    // Four connections, dealt two to each thread; each one's writes are seen by all.
    let mut cons: Vec<redis::Connection> = (0..4).map(|_| srv.client()).collect();
    for round in 0..200 {
        for (i, con) in cons.iter_mut().enumerate() {
            let _: i64 = con.incr("shared", 1).expect("incr");
            let _: () = con.set(format!("k{i}"), round).expect("set");
        }
    }
    for con in cons.iter_mut() {
        let total: i64 = con.get("shared").expect("get");
        assert_eq!(total, 800, "every connection's INCR counted once");
        for i in 0..4 {
            let v: i64 = con.get(format!("k{i}")).expect("get");
            assert_eq!(v, 199, "k{i} as its connection left it");
        }
    }
    let after = io_thread_cpu();
    for (name, ns) in &after {
        assert!(
            *ns > before[name],
            "{name} served none of the traffic: {before:?} then {after:?}"
        );
    }

    // A blocking pop on one thread is woken by a push on the other.
    let addr = srv.addr;
    let waiter = std::thread::spawn(move || {
        let mut con = connect(addr); // the 5th connection: thread 0
        redis::cmd("BLPOP")
            .arg("queue")
            .arg(10)
            .query::<Value>(&mut con)
            .expect("blpop")
    });
    wait_blocked(&mut cons[1], 1);
    let mut pusher = srv.client(); // the 6th: thread 1
    let _: i64 = pusher.rpush("queue", "job").expect("rpush");
    let got = waiter.join().expect("waiter");
    assert_eq!(got, Value::Array(vec![bulk("queue"), bulk("job")]));

    // A message published on one thread reaches a subscriber on the other.
    let mut sub_con = srv.client(); // the 7th: thread 0
    let mut sub = sub_con.as_pubsub();
    sub.subscribe("news").expect("subscribe");
    sub.set_read_timeout(Some(WAIT)).expect("timeout");
    let mut publisher = srv.client(); // the 8th: thread 1
    let receivers: i64 = publisher.publish("news", "hello").expect("publish");
    assert_eq!(receivers, 1);
    let msg = sub.get_message().expect("message");
    assert_eq!(msg.get_channel_name(), "news");
    assert_eq!(msg.get_payload::<String>().expect("payload"), "hello");

    // The setting is reported and fixed at start.
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("io-threads")
        .query(&mut cons[0])
        .expect("config get");
    assert_eq!(got, ["io-threads", "2"]);
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("io-threads")
        .arg("4")
        .query::<()>(&mut cons[0])
        .expect_err("io-threads is fixed at start");
    assert!(
        err.to_string().contains("can't set immutable config"),
        "{err}"
    );

    // Shutdown with connections (a subscriber among them) still open on both threads
    // stops the threads.
    srv.stop().expect("clean shutdown");
    let deadline = Instant::now() + WAIT;
    while !io_thread_cpu().is_empty() {
        assert!(
            Instant::now() < deadline,
            "keel-io threads outlived the server"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(cons
        .iter_mut()
        .all(|c| redis::cmd("PING").query::<String>(c).is_err()));
}

/// The `runtime_workers` line of INFO server.
fn runtime_workers(con: &mut redis::Connection) -> usize {
    let info: String = redis::cmd("INFO").arg("server").query(con).expect("info");
    info.lines()
        .find_map(|l| l.strip_prefix("runtime_workers:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("runtime_workers in INFO server")
}

#[test]
fn threads_sets_the_runtime_workers_and_defaults_by_engine() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let srv = spawn_binary(&tmp.path().join("three"), &["--threads", "3"]);
    let mut con = connect(srv.addr);
    assert_eq!(runtime_workers(&mut con), 3);
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("threads")
        .query(&mut con)
        .expect("config get");
    assert_eq!(got, ["threads", "3"]);
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("threads")
        .arg("2")
        .query::<()>(&mut con)
        .expect_err("threads is fixed at start");
    assert!(
        err.to_string().contains("can't set immutable config"),
        "{err}"
    );
    drop(srv);

    let srv = spawn_binary(&tmp.path().join("default"), &[]);
    let mut con = connect(srv.addr);
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert_eq!(runtime_workers(&mut con), cores.saturating_sub(1).max(1));
    let _: () = con.set("k", "v").expect("set");
    let v: String = con.get("k").expect("get");
    assert_eq!(v, "v");
    drop(srv);

    let srv = spawn_binary(&tmp.path().join("bitcask"), &["--engine", "bitcask"]);
    let mut con = connect(srv.addr);
    assert_eq!(
        runtime_workers(&mut con),
        cores.saturating_sub(1).max(1),
        "bitcask leaves a core, as the memory engine does"
    );
    drop(srv);

    let srv = spawn_binary(&tmp.path().join("lsm"), &["--engine", "lsm"]);
    let mut con = connect(srv.addr);
    assert_eq!(runtime_workers(&mut con), cores, "lsm takes every core");
}
