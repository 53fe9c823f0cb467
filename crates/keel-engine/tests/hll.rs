//! HyperLogLog commands on every storage engine: the value's bytes, counts, merges,
//! the sparse to dense switch, expiry kept, events, and Redis's error texts for values
//! that are not HyperLogLogs or are corrupt.

mod common;

use common::{cmd, T};
use keel_engine::{Op, Reply};
use keel_storage::EngineKind;

fn int(r: Reply) -> i64 {
    match r {
        Reply::Int(n) => n,
        other => panic!("not an integer: {other:?}"),
    }
}

fn bytes(r: Reply) -> Vec<u8> {
    match r {
        Reply::Bulk(b) => b.to_vec(),
        other => panic!("not a bulk string: {other:?}"),
    }
}

/// Adds `n` distinct elements named `prefix-i` in batches of 100.
fn fill(t: &mut T, key: &str, prefix: &str, n: usize) {
    let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    for chunk in names.chunks(100) {
        let mut args = vec!["PFADD", key];
        args.extend(chunk.iter().map(String::as_str));
        t.w(&args);
    }
}

fn within(got: i64, want: i64, pct: f64) -> bool {
    ((got - want).abs() as f64) <= want as f64 * pct / 100.0
}

fn add_and_count(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.w(&["PFADD", "h"]), Reply::Int(1), "creates the key");
    assert_eq!(
        bytes(t.r(&["GET", "h"])),
        b"HYLL\x01\0\0\0\0\0\0\0\0\0\0\x80\x7f\xff",
        "Redis's empty sparse value, cache marked stale"
    );
    assert_eq!(t.r(&["PFCOUNT", "h"]), Reply::Int(0));
    assert_eq!(t.w(&["PFADD", "h", "a", "b", "c"]), Reply::Int(1));
    assert_eq!(t.w(&["PFADD", "h", "a", "b", "c"]), Reply::Int(0));
    assert_eq!(t.r(&["PFCOUNT", "h"]), Reply::Int(3));
    assert_eq!(
        t.w(&["PFADD", "h", "1", "2", "3", "4", "5", "6", "7"]),
        Reply::Int(1)
    );
    assert_eq!(t.r(&["PFCOUNT", "h"]), Reply::Int(10));
    assert_eq!(t.r(&["PFCOUNT", "missing"]), Reply::Int(0));
    assert_eq!(t.r(&["TYPE", "h"]), Reply::Simple("string".into()));
    // Thousands of elements: the value turns dense past 3,000 bytes, and the count
    // stays within HyperLogLog's error (0.81% standard; 3% bounds it here).
    fill(&mut t, "big", "e", 20_000);
    assert_eq!(int(t.r(&["STRLEN", "big"])), 12_304);
    let n = int(t.r(&["PFCOUNT", "big"]));
    assert!(within(n, 20_000, 3.0), "{n}");
}

fn merges(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["PFADD", "a", "x", "y", "z"]);
    t.w(&["PFADD", "b", "y", "z", "w"]);
    t.w(&["PFADD", "c", "z", "w", "v"]);
    assert_eq!(t.r(&["PFCOUNT", "a", "b", "c", "missing"]), Reply::Int(5));
    assert_eq!(t.w(&["PFMERGE", "d", "a", "b", "c"]), Reply::Ok);
    assert_eq!(t.r(&["PFCOUNT", "d"]), Reply::Int(5));
    // The destination's own registers count too.
    assert_eq!(t.w(&["PFMERGE", "a", "b"]), Reply::Ok);
    assert_eq!(t.r(&["PFCOUNT", "a"]), Reply::Int(4));
    assert_eq!(t.w(&["PFMERGE", "empty", "missing"]), Reply::Ok);
    assert_eq!(t.r(&["EXISTS", "empty"]), Reply::Int(1));
    assert_eq!(t.r(&["PFCOUNT", "empty"]), Reply::Int(0));
    // A dense source makes the destination dense.
    fill(&mut t, "big1", "p", 6_000);
    fill(&mut t, "big2", "q", 6_000);
    t.w(&["PFMERGE", "small", "a", "big1"]);
    assert_eq!(int(t.r(&["STRLEN", "small"])), 12_304);
    let n = int(t.r(&["PFCOUNT", "big1", "big2"]));
    assert!(within(n, 12_000, 3.0), "{n}");
    t.w(&["PFMERGE", "both", "big1", "big2"]);
    assert_eq!(int(t.r(&["PFCOUNT", "both"])), n);
}

fn keeps_expiry_and_raises_events(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["PFADD", "h", "a"]);
    t.w(&["EXPIRE", "h", "100"]);
    let applied = t.apply(Op::Command {
        db: 0,
        args: cmd(&["PFADD", "h", "b", "c"]),
    });
    assert_eq!(applied.replies[0], Reply::Int(1));
    let events: Vec<&str> = applied.events.iter().map(|e| e.event).collect();
    assert_eq!(events, vec!["pfadd"]);
    assert_eq!(t.r(&["TTL", "h"]), Reply::Int(100));
    // Nothing changed: no event, nothing written.
    let applied = t.apply(Op::Command {
        db: 0,
        args: cmd(&["PFADD", "h", "b"]),
    });
    assert!(applied.events.is_empty());
    let applied = t.apply(Op::Command {
        db: 0,
        args: cmd(&["PFMERGE", "h", "h"]),
    });
    assert_eq!(applied.events[0].event, "pfadd");
    assert_eq!(t.r(&["TTL", "h"]), Reply::Int(100));
}

fn refuses_what_is_not_one(kind: EngineKind) {
    let mut t = T::new(kind);
    let not_hll = Reply::err("WRONGTYPE Key is not a valid HyperLogLog string value.");
    let corrupt = Reply::err("INVALIDOBJ Corrupted HLL object detected");
    t.w(&["SET", "s", "bar"]);
    t.w(&["LPUSH", "l", "x"]);
    assert_eq!(t.w(&["PFADD", "s", "1"]), not_hll);
    assert_eq!(t.r(&["PFCOUNT", "s"]), not_hll);
    assert_eq!(t.w(&["PFMERGE", "x", "s"]), not_hll);
    assert_eq!(t.w(&["PFMERGE", "s", "x"]), not_hll);
    assert_eq!(
        t.w(&["PFADD", "l", "1"]),
        Reply::err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    // A broken magic or encoding, or a dense value of the wrong length.
    t.w(&["PFADD", "h", "a", "b", "c"]);
    t.w(&["SETRANGE", "h", "4", "\u{0}"]);
    assert_eq!(t.r(&["PFCOUNT", "h"]), not_hll);
    t.w(&["SETRANGE", "h", "4", "x"]);
    assert_eq!(t.r(&["PFCOUNT", "h"]), not_hll);
    // Extra bytes after the registers: corrupt, and a PFADD changes nothing.
    t.w(&["DEL", "h"]);
    t.w(&["PFADD", "h", "a", "b", "c"]);
    t.w(&["APPEND", "h", "hello"]);
    let before = bytes(t.r(&["GET", "h"]));
    assert_eq!(t.r(&["PFCOUNT", "h"]), corrupt);
    assert_eq!(t.r(&["PFCOUNT", "h", "s2"]), corrupt);
    assert_eq!(t.w(&["PFMERGE", "d", "h"]), corrupt);
    assert_eq!(t.r(&["EXISTS", "d"]), Reply::Int(0));
    assert_eq!(bytes(t.r(&["GET", "h"])), before);
}

all_engines!(
    add_and_count,
    merges,
    keeps_expiry_and_raises_events,
    refuses_what_is_not_one
);
