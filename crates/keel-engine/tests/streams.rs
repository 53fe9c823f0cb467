//! Stream entries on every storage engine: XADD's IDs and options, XRANGE/XREVRANGE,
//! XDEL, XTRIM (exact, approximate, LIMIT), XSETID, XREAD, and a model of random
//! operations. Expected texts are redis-server's answers to the same commands.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::T;
use keel_engine::Reply;
use keel_storage::EngineKind;
use proptest::prelude::*;

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn err(s: &str) -> Reply {
    Reply::Error(s.to_owned())
}

/// `[id, [f, v, …]]`.
fn entry(id: &str, fields: &[&str]) -> Reply {
    Reply::Array(vec![
        bulk(id),
        Reply::Array(fields.iter().map(|f| bulk(f)).collect()),
    ])
}

/// The IDs of an XRANGE-style reply.
fn ids(r: &Reply) -> Vec<String> {
    let Reply::Array(items) = r else {
        panic!("not an array: {r:?}");
    };
    items
        .iter()
        .map(|e| match e {
            Reply::Array(parts) => match parts.first() {
                Some(Reply::Bulk(id)) => String::from_utf8_lossy(id).into_owned(),
                other => panic!("no id: {other:?}"),
            },
            other => panic!("not an entry: {other:?}"),
        })
        .collect()
}

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
const TOO_SMALL: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";

fn xadd_ids_and_errors(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.w(&["XADD", "s", "1-1", "a", "1"]), bulk("1-1"));
    assert_eq!(
        t.w(&["XADD", "s", "1-*", "b", "2"]),
        bulk("1-2"),
        "ms-* takes the next sequence"
    );
    assert_eq!(t.w(&["XADD", "s", "1-1", "c", "3"]), err(TOO_SMALL));
    assert_eq!(
        t.w(&["XADD", "s", "0-0", "c", "3"]),
        err("ERR The ID specified in XADD must be greater than 0-0")
    );
    assert_eq!(
        t.w(&["XADD", "s", "5", "c", "3", "d"]),
        err("ERR wrong number of arguments for 'xadd' command")
    );
    assert_eq!(
        t.w(&["XADD", "s", "5", "c", "3"]),
        bulk("5-0"),
        "a missing sequence is 0"
    );
    assert_eq!(t.w(&["XADD", "s", "x-1", "c", "3"]), err(INVALID_ID));
    assert_eq!(t.w(&["XADD", "s", "1-1-1", "c", "3"]), err(INVALID_ID));
    assert_eq!(t.w(&["XADD", "s", "+", "c", "3"]), err(INVALID_ID));
    // `*` takes the entry's time, and the last ID's next when the time is behind it.
    t.now = 4;
    assert_eq!(t.w(&["XADD", "s", "*", "c", "3"]), bulk("5-1"));
    t.now = 9;
    assert_eq!(t.w(&["XADD", "s", "*", "c", "3"]), bulk("9-0"));
    assert_eq!(t.w(&["XADD", "s", "*", "c", "3"]), bulk("9-1"));
    assert_eq!(t.r(&["XLEN", "s"]), Reply::Int(6));
    assert_eq!(t.r(&["TYPE", "s"]), Reply::Simple("stream".into()));
    assert_eq!(t.r(&["OBJECT", "ENCODING", "s"]), bulk("stream"));
    // NOMKSTREAM, and the last possible ID.
    assert_eq!(t.w(&["XADD", "t", "NOMKSTREAM", "*", "a", "b"]), Reply::Nil);
    assert_eq!(t.r(&["EXISTS", "t"]), Reply::Int(0));
    let max = "18446744073709551615-18446744073709551615";
    assert_eq!(t.w(&["XADD", "s", max, "a", "b"]), bulk(max));
    assert_eq!(
        t.w(&["XADD", "s", "*", "a", "b"]),
        err("ERR The stream has exhausted the last possible ID, unable to add more items")
    );
    assert_eq!(
        t.w(&["XADD", "s", "18446744073709551615-*", "a", "b"]),
        err("ERR The stream has exhausted the last possible ID, unable to add more items")
    );
    t.w(&["SET", "str", "x"]);
    assert_eq!(
        t.w(&["XADD", "str", "*", "a", "b"]),
        err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
    // Options: the trim strategies and their errors.
    let s = "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
    assert_eq!(
        t.w(&["XADD", "s", "MINID", "5", "MAXLEN", "3", "*", "a", "b"]),
        err(s)
    );
    assert_eq!(
        t.w(&["XADD", "s", "MAXLEN", "=", "-1", "*", "a", "b"]),
        err("ERR The MAXLEN argument must be >= 0.")
    );
    assert_eq!(
        t.w(&["XADD", "s", "MAXLEN", "5", "LIMIT", "5", "*", "a", "b"]),
        err("ERR syntax error, LIMIT cannot be used without the special ~ option")
    );
    assert_eq!(
        t.w(&["XADD", "s", "LIMIT", "5", "*", "a", "b"]),
        err("ERR syntax error, LIMIT cannot be used without specifying a trimming strategy")
    );
    assert_eq!(
        t.r(&["XLEN", "s"]),
        Reply::Int(7),
        "refused XADDs add nothing"
    );
}

fn ranges(kind: EngineKind) {
    let mut t = T::new(kind);
    for id in ["1-1", "1-2", "2-0", "3-5"] {
        t.w(&["XADD", "s", id, "f", id]);
    }
    assert_eq!(
        t.r(&["XRANGE", "s", "-", "+"]),
        Reply::Array(vec![
            entry("1-1", &["f", "1-1"]),
            entry("1-2", &["f", "1-2"]),
            entry("2-0", &["f", "2-0"]),
            entry("3-5", &["f", "3-5"]),
        ])
    );
    assert_eq!(
        ids(&t.r(&["XRANGE", "s", "1", "1"])),
        ["1-1", "1-2"],
        "ms alone spans its sequences"
    );
    assert_eq!(ids(&t.r(&["XRANGE", "s", "(1-1", "(3-5"])), ["1-2", "2-0"]);
    assert_eq!(
        ids(&t.r(&["XREVRANGE", "s", "+", "-", "COUNT", "2"])),
        ["3-5", "2-0"]
    );
    assert_eq!(ids(&t.r(&["XREVRANGE", "s", "2", "(1-1"])), ["2-0", "1-2"]);
    assert_eq!(
        t.r(&["XRANGE", "s", "-", "+", "COUNT", "0"]),
        Reply::NilArray
    );
    assert_eq!(
        t.r(&["XRANGE", "s", "-", "+", "COUNT", "-3"]),
        Reply::NilArray,
        "a negative count is 0"
    );
    assert_eq!(t.r(&["XRANGE", "s", "3", "2"]), Reply::Array(vec![]));
    assert_eq!(t.r(&["XRANGE", "nokey", "-", "+"]), Reply::Array(vec![]));
    assert_eq!(t.r(&["XRANGE", "s", "(-", "+"]), err(INVALID_ID));
    assert_eq!(
        t.r(&["XRANGE", "s", "0", "(0-0"]),
        err("ERR invalid end ID for the interval")
    );
    let max = "(18446744073709551615-18446744073709551615";
    assert_eq!(
        t.r(&["XRANGE", "s", max, "+"]),
        err("ERR invalid start ID for the interval")
    );
    assert_eq!(
        t.r(&["XRANGE", "s", "-", "+", "LIMIT", "1"]),
        err("ERR syntax error")
    );
}

fn xdel_xtrim_xsetid(kind: EngineKind) {
    let mut t = T::new(kind);
    for i in 1..=10 {
        t.w(&["XADD", "s", &format!("{i}-0"), "f", "v"]);
    }
    assert_eq!(t.w(&["XDEL", "s", "3-0", "99-0", "bad"]), err(INVALID_ID));
    assert_eq!(
        t.r(&["XLEN", "s"]),
        Reply::Int(10),
        "a bad ID deletes nothing"
    );
    assert_eq!(t.w(&["XDEL", "s", "3-0", "99-0", "3-0"]), Reply::Int(1));
    assert_eq!(t.w(&["XTRIM", "s", "MAXLEN", "7"]), Reply::Int(2));
    assert_eq!(ids(&t.r(&["XRANGE", "s", "-", "+", "COUNT", "1"])), ["4-0"]);
    assert_eq!(t.w(&["XTRIM", "s", "MINID", "6"]), Reply::Int(2));
    assert_eq!(t.r(&["XLEN", "s"]), Reply::Int(5));
    assert_eq!(
        t.w(&["XTRIM", "s", "MAXLEN", "~", "0"]),
        Reply::Int(0),
        "no whole node to remove"
    );
    assert_eq!(
        t.w(&["XTRIM", "s", "LIMIT", "0"]),
        err("ERR syntax error, XTRIM must be called with a trimming strategy")
    );
    assert_eq!(
        t.w(&["XTRIM", "s", "LIMIT", "3", "MAXLEN", "0"]),
        err("ERR syntax error, LIMIT cannot be used without the special ~ option")
    );
    assert_eq!(t.w(&["XTRIM", "nokey", "MAXLEN", "0"]), Reply::Int(0));
    // An empty stream stays, with its last ID.
    assert_eq!(t.w(&["XTRIM", "s", "MAXLEN", "0"]), Reply::Int(5));
    assert_eq!(t.r(&["EXISTS", "s"]), Reply::Int(1));
    assert_eq!(t.w(&["XADD", "s", "10-0", "f", "v"]), err(TOO_SMALL));
    assert_eq!(
        t.w(&["XSETID", "s", "2-0"]),
        err("ERR The ID specified in XSETID is smaller than current max_deleted_entry_id")
    );
    assert_eq!(
        t.w(&[
            "XSETID",
            "s",
            "20-0",
            "ENTRIESADDED",
            "12",
            "MAXDELETEDID",
            "15-0"
        ]),
        Reply::Ok
    );
    assert_eq!(t.w(&["XADD", "s", "20-*", "f", "v"]), bulk("20-1"));
    assert_eq!(
        t.w(&["XSETID", "s", "19-0"]),
        err("ERR The ID specified in XSETID is smaller than the target stream top item")
    );
    assert_eq!(
        t.w(&["XSETID", "s", "30-0", "ENTRIESADDED", "0"]),
        err("ERR The entries_added specified in XSETID is smaller than the target stream length")
    );
    assert_eq!(
        t.w(&["XSETID", "s", "30-0", "MAXDELETEDID", "31-0"]),
        err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id")
    );
    assert_eq!(t.w(&["XSETID", "nokey", "1-0"]), err("ERR no such key"));
}

/// `~` trims whole runs of 100 entries (Redis's nodes), at most LIMIT entries.
fn approximate_trims(kind: EngineKind) {
    let mut t = T::new(kind);
    for j in 0..1000 {
        t.w(&[
            "XADD",
            "s",
            "MAXLEN",
            "~",
            "555",
            "*",
            "item",
            &j.to_string(),
        ]);
    }
    assert_eq!(
        t.r(&["XLEN", "s"]),
        Reply::Int(600),
        "Redis's answer to the same XADDs"
    );
    assert_eq!(
        t.w(&["XTRIM", "s", "MAXLEN", "~", "0", "LIMIT", "250"]),
        Reply::Int(200)
    );
    assert_eq!(
        t.w(&["XTRIM", "s", "MAXLEN", "~", "0", "LIMIT", "99"]),
        Reply::Int(0)
    );
    let first = ids(&t.r(&["XRANGE", "s", "-", "+", "COUNT", "150"]));
    let minid = &first[149];
    assert_eq!(t.w(&["XTRIM", "s", "MINID", "~", minid]), Reply::Int(100));
    assert_eq!(t.w(&["XTRIM", "s", "MINID", "=", minid]), Reply::Int(49));
    assert_eq!(
        ids(&t.r(&["XRANGE", "s", "-", "+", "COUNT", "1"]))[0],
        *minid
    );
}

fn xread(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["XADD", "a", "1-1", "f", "1"]);
    t.w(&["XADD", "a", "2-1", "f", "2"]);
    t.w(&["XADD", "b", "5-0", "g", "5"]);
    assert_eq!(
        t.r(&["XREAD", "COUNT", "1", "STREAMS", "a", "b", "nokey", "1-1", "0", "0"]),
        Reply::PairMap(vec![
            (bulk("a"), Reply::Array(vec![entry("2-1", &["f", "2"])])),
            (bulk("b"), Reply::Array(vec![entry("5-0", &["g", "5"])])),
        ])
    );
    assert_eq!(
        t.r(&["XREAD", "STREAMS", "a", "b", "$", "$"]),
        Reply::NilArray
    );
    assert_eq!(
        t.r(&["XREAD", "BLOCK", "10", "STREAMS", "a", "9"]),
        Reply::NilArray,
        "the engine never waits"
    );
    assert_eq!(
        t.r(&["XREAD", "STREAMS", "a", "b", "0"]),
        err("ERR Unbalanced 'xread' list of streams: for each stream key an ID or '$' must be specified.")
    );
    assert_eq!(t.r(&["XREAD", "STREAMS", "a", ">"]), err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."));
    assert_eq!(
        t.r(&["XREAD", "GROUP", "g", "c", "STREAMS", "a", "0"]),
        err("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.")
    );
    assert_eq!(
        t.r(&["XREAD", "BLOCK", "-1", "STREAMS", "a", "0"]),
        err("ERR timeout is negative")
    );
    assert_eq!(
        t.r(&["XREAD", "COUNT", "1", "a", "0"]),
        err("ERR syntax error")
    );
    t.w(&["SET", "s", "x"]);
    assert_eq!(
        t.r(&["XREAD", "STREAMS", "a", "s", "0", "0"]),
        err("WRONGTYPE Operation against a key holding the wrong kind of value"),
        "a wrong type fails the whole read"
    );
}

/// DUMP/RESTORE, COPY and RENAME keep a stream's entries and state.
fn copies_keep_state(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["XADD", "s", "1-1", "f", "v"]);
    t.w(&["XADD", "s", "2-2", "f", "w"]);
    t.w(&["XDEL", "s", "2-2"]);
    // The payload is binary: RESTORE takes it as argument bytes.
    let Reply::Bulk(payload) = t.r(&["DUMP", "s"]) else {
        panic!("DUMP");
    };
    let args = vec![
        Bytes::from_static(b"RESTORE"),
        Bytes::from_static(b"r"),
        Bytes::from_static(b"0"),
        payload,
    ];
    t.seq += 1;
    let ctx = keel_engine::ApplyCtx {
        seq: t.seq,
        now_ms: t.now,
        seed: t.seq,
    };
    let applied = t
        .engine
        .apply(&ctx, &keel_engine::Op::Command { db: 0, args })
        .expect("apply");
    assert_eq!(applied.replies[0], Reply::Ok);
    assert_eq!(t.w(&["COPY", "s", "c"]), Reply::Int(1));
    assert_eq!(t.w(&["RENAME", "s", "n"]), Reply::Ok);
    for k in ["r", "c", "n"] {
        assert_eq!(
            t.r(&["XRANGE", k, "-", "+"]),
            Reply::Array(vec![entry("1-1", &["f", "v"])]),
            "{k}"
        );
        assert_eq!(
            t.w(&["XADD", k, "2-2", "f", "v"]),
            err(TOO_SMALL),
            "{k} keeps its last ID"
        );
        assert_eq!(
            t.w(&["XSETID", k, "2-3", "MAXDELETEDID", "0-0"]),
            Reply::Ok,
            "{k}"
        );
        assert_eq!(
            t.w(&["XSETID", k, "2-1"]),
            err("ERR The ID specified in XSETID is smaller than current max_deleted_entry_id"),
            "{k} keeps its max deleted ID"
        );
    }
    assert_eq!(t.w(&["DEL", "r", "c", "n"]), Reply::Int(3));
    assert_eq!(t.r(&["XLEN", "r"]), Reply::Int(0));
}

/// Storage keys under `prefix`.
fn count_prefix(t: &T, prefix: &[u8]) -> usize {
    t.engine
        .storage()
        .scan(
            keel_storage::ScanRange::prefix(prefix),
            keel_storage::Direction::Forward,
        )
        .count()
}

/// An emptied stream keeps sub-keys (its state, its groups): deleting it, by DEL, by a
/// SET over it or by expiry, leaves none behind once GC has run.
fn empty_streams_leave_nothing_behind(kind: EngineKind) {
    let mut t = T::new(kind);
    for k in ["a", "b", "c"] {
        t.w(&["XADD", k, "1-1", "f", "v"]);
        t.w(&["XGROUP", "CREATE", k, "g", "0"]);
        t.w(&["XREADGROUP", "GROUP", "g", "alice", "STREAMS", k, ">"]);
        t.w(&["XDEL", k, "1-1"]);
        assert_eq!(t.r(&["XLEN", k]), Reply::Int(0));
    }
    assert_eq!(t.w(&["DEL", "a"]), Reply::Int(1));
    assert_eq!(t.w(&["SET", "b", "x"]), Reply::Ok);
    assert_eq!(t.w(&["PEXPIRE", "c", "1"]), Reply::Int(1));
    t.now += 10;
    assert_eq!(t.w(&["DEL", "b", "c"]), Reply::Int(1), "c has expired");
    for _ in 0..100 {
        if !t.engine.gc_step(1000).expect("gc").more {
            break;
        }
    }
    assert_eq!(count_prefix(&t, &[keel_engine::keys::SUB]), 0);
    assert_eq!(count_prefix(&t, &[keel_engine::keys::META]), 0);
}

#[derive(Debug, Clone)]
enum Op {
    /// XADD with `*` (None) or an explicit ID.
    Add(Option<(u64, u64)>),
    Del(u64, u64),
    TrimLen(u64, bool),
    Range(u64, u64, usize, bool),
    Tick(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => proptest::option::of((0u64..20, 0u64..4)).prop_map(Op::Add),
        2 => (0u64..20, 0u64..4).prop_map(|(m, s)| Op::Del(m, s)),
        1 => (0u64..30, any::<bool>()).prop_map(|(n, a)| Op::TrimLen(n, a)),
        2 => (0u64..20, 0u64..20, 0usize..6, any::<bool>()).prop_map(|(a, b, c, r)| Op::Range(a, b, c, r)),
        1 => (0u64..3).prop_map(Op::Tick),
    ]
}

/// Random XADD/XDEL/XTRIM/XRANGE against a model: a map of IDs and the last ID.
fn run_model(kind: EngineKind, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut t = T::new(kind);
    t.now = 5;
    let mut model: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut last = (0u64, 0u64);
    let mut exists = false;
    for (n, op) in ops.iter().enumerate() {
        match op {
            Op::Add(id) => {
                let v = n.to_string();
                let got = match id {
                    None => t.w(&["XADD", "s", "*", "v", &v]),
                    Some((m, s)) => t.w(&["XADD", "s", &format!("{m}-{s}"), "v", &v]),
                };
                let want = match id {
                    None => {
                        let next = if t.now > last.0 {
                            (t.now, 0)
                        } else {
                            (last.0, last.1 + 1)
                        };
                        Some(next)
                    }
                    Some((m, s)) if (*m, *s) > last => Some((*m, *s)),
                    Some(_) => None,
                };
                match want {
                    Some(id) => {
                        prop_assert_eq!(got, bulk(&format!("{}-{}", id.0, id.1)));
                        model.insert(id, v);
                        last = id;
                        exists = true;
                    }
                    None => prop_assert!(got.is_error(), "{:?}", got),
                }
            }
            Op::Del(m, s) => {
                let got = t.w(&["XDEL", "s", &format!("{m}-{s}")]);
                let had = model.remove(&(*m, *s)).is_some();
                prop_assert_eq!(got, Reply::Int(i64::from(had)));
            }
            Op::TrimLen(max, approx) => {
                let how = if *approx { "~" } else { "=" };
                let got = t.w(&["XTRIM", "s", "MAXLEN", how, &max.to_string()]);
                let excess = (model.len() as u64).saturating_sub(*max);
                let n = if *approx {
                    excess - excess % 100
                } else {
                    excess
                };
                for _ in 0..n {
                    model.pop_first();
                }
                prop_assert_eq!(got, Reply::Int(n as i64));
            }
            Op::Range(a, b, count, rev) => {
                let (lo, hi) = (a.min(b), a.max(b));
                let (lo_s, hi_s) = (lo.to_string(), hi.to_string());
                let c = count.to_string();
                let got = if *rev {
                    t.r(&["XREVRANGE", "s", &hi_s, &lo_s, "COUNT", &c])
                } else {
                    t.r(&["XRANGE", "s", &lo_s, &hi_s, "COUNT", &c])
                };
                if *count == 0 && exists {
                    prop_assert_eq!(got, Reply::NilArray);
                    continue;
                }
                let mut want: Vec<String> = model
                    .range((*lo, 0)..=(*hi, u64::MAX))
                    .map(|(id, _)| format!("{}-{}", id.0, id.1))
                    .collect();
                if *rev {
                    want.reverse();
                }
                want.truncate(*count);
                prop_assert_eq!(ids(&got), want);
            }
            Op::Tick(d) => t.now += d,
        }
        prop_assert_eq!(t.r(&["XLEN", "s"]), Reply::Int(model.len() as i64));
    }
    Ok(())
}

fn model_based(kind: EngineKind) {
    let cases = if kind == EngineKind::Memory { 96 } else { 24 };
    proptest!(ProptestConfig::with_cases(cases), |(ops in proptest::collection::vec(op(), 1..60))| {
        run_model(kind, &ops)?;
    });
}

all_engines!(
    xadd_ids_and_errors,
    ranges,
    xdel_xtrim_xsetid,
    approximate_trims,
    xread,
    copies_keep_state,
    empty_streams_leave_nothing_behind,
    model_based,
);
