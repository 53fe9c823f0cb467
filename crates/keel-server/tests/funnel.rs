//! The write funnel under concurrency: writes from many connections, run by whichever
//! thread holds the funnel (a connection's, under everysec/no) or by the apply thread
//! (always), are each applied exactly once and answered; writes racing a SHUTDOWN are
//! either acknowledged and kept, or refused, and none hangs.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::raw::resp;
use common::{connect, persistence_field, spawn_binary, InProc, WAIT};
use keel_server::Config;
use keel_storage::SyncPolicy;

const WRITERS: usize = 8;
const ROUNDS: i64 = 150;
const PIPELINE: i64 = 5;

/// Starts [`WRITERS`] threads, each running `f` with its own connection to `addr` and
/// its number.
fn spawn_writers<T: Send + 'static>(
    addr: std::net::SocketAddr,
    f: fn(redis::Connection, usize) -> T,
) -> Vec<std::thread::JoinHandle<T>> {
    (0..WRITERS)
        .map(|w| std::thread::spawn(move || f(connect(addr), w)))
        .collect()
}

/// Each writer pipelines INCRs of one shared key and one INCR of its own, ROUNDS times.
fn hammer(policy: SyncPolicy) {
    let srv = InProc::start(Config {
        appendfsync: policy,
        ..Config::default()
    });
    let writers = spawn_writers(srv.addr, |mut con, w| {
        let own = format!("own:{w}");
        for round in 1..=ROUNDS {
            let mut p = redis::pipe();
            for _ in 0..PIPELINE {
                p.cmd("INCR").arg("shared");
            }
            p.cmd("INCR").arg(&own);
            let replies: Vec<i64> = p.query(&mut con).expect("pipeline");
            assert_eq!(replies.len(), PIPELINE as usize + 1);
            // One connection's writes apply in order: its shared counts rise.
            assert!(replies[..PIPELINE as usize].windows(2).all(|w| w[0] < w[1]));
            assert_eq!(replies[PIPELINE as usize], round, "{own} after {round}");
        }
    });
    for w in writers {
        w.join().expect("writer thread");
    }
    let mut con = srv.client();
    let shared: i64 = redis::cmd("GET")
        .arg("shared")
        .query(&mut con)
        .expect("GET");
    assert_eq!(shared, WRITERS as i64 * ROUNDS * PIPELINE, "{policy:?}");
    for w in 0..WRITERS {
        let own: i64 = redis::cmd("GET")
            .arg(format!("own:{w}"))
            .query(&mut con)
            .expect("GET own");
        assert_eq!(own, ROUNDS, "own:{w} under {policy:?}");
    }
    // INFO counts every write once, in rounds that each took at least one.
    let writes = persistence_figure(&mut con, "keel_funnel_writes");
    let rounds = persistence_figure(&mut con, "keel_funnel_rounds");
    let total = (WRITERS as i64 * ROUNDS * (PIPELINE + 1)) as u64;
    assert_eq!(writes, total, "keel_funnel_writes under {policy:?}");
    assert!(
        (1..=writes).contains(&rounds),
        "{rounds} rounds for {writes} writes under {policy:?}"
    );
    srv.stop().expect("clean stop");
}

/// A numeric field of INFO persistence.
fn persistence_figure(con: &mut redis::Connection, field: &str) -> u64 {
    let v = persistence_field(con, field);
    v.parse()
        .unwrap_or_else(|_| panic!("INFO persistence {field} is not a number: {v}"))
}

#[test]
fn concurrent_writers_each_apply_once_under_everysec() {
    hammer(SyncPolicy::EverySec);
}

#[test]
fn concurrent_writers_each_apply_once_under_always() {
    hammer(SyncPolicy::Always);
}

/// Pipelines of wide MSETs from several connections make rounds of many prefetch chunks
/// (one pipeline alone is 4,600 arguments; a chunk is about 64), so their keys are
/// prefetched in chunks while earlier chunks are applied: every write still applies
/// once and in its connection's order.
#[test]
fn rounds_of_wide_writes_apply_every_write_once_and_in_order() {
    const KEYS: usize = 10;
    const PAIRS: usize = 200;
    const BATCHES: usize = 6;
    let srv = InProc::start(Config {
        appendfsync: SyncPolicy::Always,
        ..Config::default()
    });
    let writers = spawn_writers(srv.addr, |mut con, w| {
        let seq = format!("seq:{w}");
        for batch in 0..BATCHES {
            let mut p = redis::pipe();
            for i in 0..PAIRS {
                let mut mset = redis::cmd("MSET");
                for k in 0..KEYS {
                    mset.arg(format!("w{w}:k{k}"))
                        .arg(format!("{batch}-{i}-{k}"));
                }
                p.add_command(mset).ignore();
                p.cmd("INCR").arg(&seq);
            }
            let counts: Vec<usize> = p.query(&mut con).expect("pipeline");
            let first = batch * PAIRS + 1;
            assert_eq!(counts, (first..first + PAIRS).collect::<Vec<_>>(), "{seq}");
        }
    });
    for w in writers {
        w.join().expect("writer thread");
    }
    let mut con = srv.client();
    for w in 0..WRITERS {
        let keys: Vec<String> = (0..KEYS).map(|k| format!("w{w}:k{k}")).collect();
        let got: Vec<String> = redis::cmd("MGET").arg(&keys).query(&mut con).expect("MGET");
        let want: Vec<String> = (0..KEYS)
            .map(|k| format!("{}-{}-{k}", BATCHES - 1, PAIRS - 1))
            .collect();
        assert_eq!(got, want, "writer {w}");
    }
    srv.stop().expect("clean stop");
}

/// Pipelined pops between adds to the same collection: the funnel writes its group out
/// before each command that finds members by position (INFO keel_funnel_batches counts
/// at least one batch per pop), and every member is still popped once, in score order
/// for ZPOPMIN.
#[test]
fn pipelined_pops_between_adds_pop_each_member_once() {
    const START: usize = 300;
    const PAIRS: usize = 200;
    let srv = InProc::start(Config::default());
    let mut con = srv.client();
    let first: Vec<String> = (0..START).map(|i| format!("m{i}")).collect();
    let _: i64 = redis::cmd("SADD")
        .arg("s")
        .arg(&first)
        .query(&mut con)
        .expect("SADD");
    let mut zadd = redis::cmd("ZADD");
    zadd.arg("z");
    for i in 0..START {
        zadd.arg(i).arg(format!("m{i}"));
    }
    let _: i64 = zadd.query(&mut con).expect("ZADD");
    let batches_before = persistence_figure(&mut con, "keel_funnel_batches");

    // Each pop follows an add in the same pipeline: SPOP and ZPOPMIN alternate with SADD
    // and ZADD of a member scored above every other.
    let mut p = redis::pipe();
    for i in 0..PAIRS {
        p.cmd("SADD").arg("s").arg(format!("n{i}")).ignore();
        p.cmd("SPOP").arg("s");
        p.cmd("ZADD")
            .arg("z")
            .arg(START + i)
            .arg(format!("n{i}"))
            .ignore();
        p.cmd("ZPOPMIN").arg("z");
    }
    let replies: Vec<redis::Value> = p.query(&mut con).expect("pipeline");
    assert_eq!(replies.len(), 2 * PAIRS);
    let batches = persistence_figure(&mut con, "keel_funnel_batches") - batches_before;
    assert!(
        batches >= 2 * PAIRS as u64,
        "{batches} storage batches for {} pops after adds",
        2 * PAIRS
    );

    let mut spopped: Vec<String> = Vec::new();
    let mut zpopped: Vec<(String, f64)> = Vec::new();
    for pair in replies.chunks(2) {
        spopped.push(redis::from_redis_value(&pair[0]).expect("SPOP member"));
        let popped: Vec<(String, f64)> = redis::from_redis_value(&pair[1]).expect("ZPOPMIN");
        zpopped.extend(popped);
    }
    // Whatever is left, popped at once.
    let rest: Vec<String> = redis::cmd("SPOP")
        .arg("s")
        .arg(START + PAIRS)
        .query(&mut con)
        .expect("SPOP rest");
    spopped.extend(rest);
    let mut all: Vec<String> = first.clone();
    all.extend((0..PAIRS).map(|i| format!("n{i}")));
    all.sort();
    spopped.sort();
    assert_eq!(spopped, all, "every set member popped once");
    let scard: i64 = redis::cmd("SCARD").arg("s").query(&mut con).expect("SCARD");
    assert_eq!(scard, 0);

    // ZPOPMIN took the lowest scores in order: m0, m1, ... (the added ones score higher).
    let want: Vec<(String, f64)> = (0..PAIRS).map(|i| (format!("m{i}"), i as f64)).collect();
    assert_eq!(zpopped, want);
    let zcard: i64 = redis::cmd("ZCARD").arg("z").query(&mut con).expect("ZCARD");
    assert_eq!(zcard, START as i64);
    srv.stop().expect("clean stop");
}

#[test]
fn writes_racing_a_shutdown_are_kept_or_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("data");
    let mut srv = spawn_binary(&dir, &["--appendfsync", "everysec"]);
    let addr = srv.addr;
    let writers = spawn_writers(addr, |mut con, w| {
        let key = format!("n:{w}");
        let mut acked = 0i64;
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match redis::cmd("INCR").arg(&key).query::<i64>(&mut con) {
                Ok(n) => {
                    acked += 1;
                    assert_eq!(n, acked, "{key}: each INCR applies once");
                }
                Err(e) if e.is_timeout() => panic!("{key}: a write hung: {e}"),
                // Refused ("shutting down") or the connection closed.
                Err(_) => return acked,
            }
        }
        panic!("{key}: writes still succeeding {WAIT:?} later, SHUTDOWN did not stop them");
    });
    std::thread::sleep(Duration::from_millis(200));
    let mut admin = connect(addr);
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut admin);
    let acked: Vec<i64> = writers
        .into_iter()
        .map(|w| w.join().expect("writer thread"))
        .collect();
    let st = srv.wait_exit();
    assert!(st.success(), "exit status {st:?}");
    assert!(
        acked.iter().all(|&n| n > 0),
        "every writer got going: {acked:?}"
    );

    let srv = spawn_binary(&dir, &["--appendfsync", "everysec"]);
    let mut con = connect(srv.addr);
    for (w, &n) in acked.iter().enumerate() {
        let kept: i64 = redis::cmd("GET")
            .arg(format!("n:{w}"))
            .query::<Option<i64>>(&mut con)
            .expect("GET")
            .unwrap_or(0);
        // The write in flight at the shutdown may have applied without its reply.
        assert!(
            kept == n || kept == n + 1,
            "n:{w}: {n} acknowledged, {kept} after restart"
        );
    }
}

/// A bug that panics inside a round (here an apply hook) fails the node: the writes of
/// that round are not acknowledged, later writes get MISCONF naming the panic, reads of
/// what was committed before keep working, and shutdown still completes.
#[test]
fn a_panic_inside_the_funnel_fails_the_node_and_keeps_reads() {
    use bytes::Bytes;
    use keel_engine::{Op, Reply};
    use keel_server::coordinator::Coordinator;

    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = Config {
        dir: tmp.path().join("data"),
        ..Config::default()
    };
    let (coord, _) =
        Coordinator::start(Arc::new(parking_lot::RwLock::new(cfg))).expect("coordinator");
    coord.add_apply_hook(Arc::new(
        |op: &Op, _: &keel_engine::Applied, _origin: u64| {
            if let Op::Command { args, .. } = op {
                if args.get(1).is_some_and(|k| k.as_ref() == b"boom") {
                    panic!("hook exploded on purpose");
                }
            }
        },
    ));
    let set = |k: &str| Op::Command {
        db: 0,
        args: vec![
            Bytes::from("SET"),
            Bytes::from(k.to_string()),
            Bytes::from("v"),
        ],
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        assert!(coord.write(set("before"), true).await.is_ok());
        assert!(
            coord.write(set("boom"), true).await.is_err(),
            "the panicked write was acknowledged"
        );
        match coord.write(set("after"), true).await {
            Err(Reply::Error(e)) => assert!(
                e.starts_with("MISCONF") && e.contains("hook exploded on purpose"),
                "{e}"
            ),
            other => panic!("a write after the panic got {other:?}"),
        }
    });
    let get = |k: &str| {
        coord
            .engine()
            .read(0, 0, &[Bytes::from("GET"), Bytes::from(k.to_string())])
            .expect("read")
            .reply
    };
    assert_eq!(get("before"), Reply::Bulk(Bytes::from("v")));
    assert_eq!(get("after"), Reply::Nil);
    let _ = coord.shutdown(false);
}

/// The writes that end an input are answered by the round that applies them, after the
/// connection has gone back to reading (see the server's `unawaited`). A client that
/// sends a write and then closes its sending side still gets the reply, and the write
/// stands.
#[test]
fn a_write_followed_by_the_end_of_input_is_answered_and_kept() {
    use std::io::{Read, Write};
    let srv = InProc::start(Config::default());
    for i in 0..50 {
        let mut s = std::net::TcpStream::connect(srv.addr).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        let key = format!("eof:{i}");
        s.write_all(&resp(&["SET", &key, "v"])).expect("write");
        s.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read to the end");
        assert_eq!(got, b"+OK\r\n", "write {i} before the end of input");
    }
    let mut con = srv.client();
    for i in 0..50 {
        let v: Option<String> = redis::cmd("GET")
            .arg(format!("eof:{i}"))
            .query(&mut con)
            .expect("GET");
        assert_eq!(v.as_deref(), Some("v"), "eof:{i}");
    }
}

/// A read in the input after a write sees that write, and its reply comes after the
/// write's. The first input ends with the write: 64 SETs that fill the connection's
/// first read (16 KiB) exactly, so the GET behind them is read and run after the SETs
/// were handed to the funnel (when the whole pipeline has arrived before that read;
/// otherwise the GET shares an input with the last SET, which must pass as well).
#[test]
fn a_read_in_the_input_after_a_write_sees_it() {
    use std::io::Write;
    const FIRST_READ: usize = 16 * 1024;
    let srv = InProc::start(Config::default());
    for round in 0..20 {
        let mut first: Vec<u8> = (0..63)
            .flat_map(|j| resp(&["SET", &format!("pad:{j}"), &"p".repeat(200)]))
            .collect();
        let value = (1..FIRST_READ)
            .map(|n| format!("v{round}:{}", "x".repeat(n)))
            .find(|v| first.len() + resp(&["SET", "rw", v]).len() == FIRST_READ)
            .expect("a value that fills the first read");
        first.extend_from_slice(&resp(&["SET", "rw", &value]));
        first.extend_from_slice(&resp(&["GET", "rw"]));
        let mut raw = common::raw::Raw::connect(&srv);
        raw.wr.write_all(&first).expect("pipeline");
        for j in 0..64 {
            assert_eq!(raw.read(), common::raw::V::Simple("OK".into()), "SET {j}");
        }
        let got = raw.read();
        assert!(
            got == common::raw::b(&value),
            "round {round}: the GET behind the SETs did not see the last one"
        );
    }
}

/// Replies answered by the round keep the client's protocol, and their errors count
/// in commandstats and errorstats as a waited-for write's do.
#[test]
fn round_answered_replies_keep_the_protocol_and_count_errors() {
    use common::raw::{b, Raw, V};
    let srv = InProc::start(Config::default());
    let mut raw = Raw::connect(&srv);
    raw.send(&["HELLO", "3"]);
    assert!(matches!(raw.read(), V::Map(_)), "HELLO 3");
    raw.send(&["SET", "p3", "v", "GET"]);
    assert_eq!(raw.line(), "_", "RESP3's null for a missing old value");
    raw.send(&["SET", "p3", "w", "GET"]);
    assert_eq!(raw.read(), b("v"));
    raw.send(&["INCR", "p3"]);
    assert_eq!(
        raw.read(),
        V::Err("ERR value is not an integer or out of range".into())
    );
    let mut con = srv.client();
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut con)
        .expect("INFO");
    let incr = stats
        .lines()
        .find(|l| l.starts_with("cmdstat_incr:"))
        .unwrap_or_else(|| panic!("no INCR stats in {stats}"));
    assert!(incr.contains("failed_calls=1"), "{incr}");
    let errors: String = redis::cmd("INFO")
        .arg("errorstats")
        .query(&mut con)
        .expect("INFO");
    assert!(errors.contains("errorstat_ERR:count=1"), "{errors}");
}
