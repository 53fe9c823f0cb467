//! SORT and SORT_RO on every storage engine: orders, weights, projections, LIMIT,
//! STORE, and Redis's error texts; plus a property test against a sorted model.

mod common;

use common::{b, cmd, touched, T};
use keel_engine::{Op, Reply};
use keel_storage::EngineKind;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn bulks(items: &[&str]) -> Reply {
    Reply::Array(items.iter().map(|s| Reply::Bulk(b(s))).collect())
}

fn with_nils(items: &[Option<&str>]) -> Reply {
    Reply::Array(
        items
            .iter()
            .map(|s| s.map_or(Reply::Nil, |s| Reply::Bulk(b(s))))
            .collect(),
    )
}

fn orders(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["RPUSH", "l", "3", "1", "2", "10", "-1.5"]);
    assert_eq!(t.w(&["SORT", "l"]), bulks(&["-1.5", "1", "2", "3", "10"]));
    assert_eq!(
        t.w(&["SORT", "l", "DESC"]),
        bulks(&["10", "3", "2", "1", "-1.5"])
    );
    assert_eq!(
        t.w(&["SORT", "l", "ALPHA"]),
        bulks(&["-1.5", "1", "10", "2", "3"])
    );
    assert_eq!(
        t.r(&["SORT_RO", "l", "LIMIT", "1", "2"]),
        bulks(&["1", "2"])
    );
    assert_eq!(
        t.r(&["SORT_RO", "l", "LIMIT", "-5", "2", "DESC"]),
        bulks(&["10", "3"])
    );
    assert_eq!(
        t.r(&["SORT_RO", "l", "LIMIT", "3", "-1"]),
        bulks(&["3", "10"])
    );
    assert_eq!(t.r(&["SORT_RO", "l", "LIMIT", "9", "1"]), bulks(&[]));
    // Equal numbers fall back to the elements' bytes, reversed by DESC.
    t.w(&["RPUSH", "eq", "1.0", "1", "01"]);
    assert_eq!(t.r(&["SORT_RO", "eq"]), bulks(&["01", "1", "1.0"]));
    assert_eq!(t.r(&["SORT_RO", "eq", "DESC"]), bulks(&["1.0", "1", "01"]));
    // A set, and a sorted set in its own order without sorting (BY a constant).
    t.w(&["SADD", "s", "b", "c", "a"]);
    assert_eq!(
        t.r(&["SORT_RO", "s", "ALPHA", "DESC"]),
        bulks(&["c", "b", "a"])
    );
    t.w(&["ZADD", "z", "3", "x", "1", "y", "2", "w"]);
    assert_eq!(
        t.r(&["SORT_RO", "z", "BY", "nosort"]),
        bulks(&["y", "w", "x"])
    );
    assert_eq!(
        t.r(&["SORT_RO", "z", "BY", "nosort", "DESC"]),
        bulks(&["x", "w", "y"])
    );
    assert_eq!(
        t.r(&["SORT_RO", "l", "BY", "nosort"]),
        bulks(&["3", "1", "2", "10", "-1.5"])
    );
    assert_eq!(t.r(&["SORT_RO", "missing"]), bulks(&[]));
}

fn weights_and_projections(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["RPUSH", "ids", "1", "2", "3"]);
    t.w(&[
        "MSET", "w_1", "30", "w_2", "10", "name_1", "one", "name_3", "three",
    ]);
    t.w(&["HSET", "h_1", "age", "7", "n", "x1"]);
    t.w(&["HSET", "h_2", "age", "5"]);
    t.w(&["HSET", "h_3", "age", "6", "n", "x3"]);
    // w_3 is missing: weight 0.
    assert_eq!(
        t.r(&["SORT_RO", "ids", "BY", "w_*"]),
        bulks(&["3", "2", "1"])
    );
    assert_eq!(
        t.r(&["SORT_RO", "ids", "BY", "h_*->age"]),
        bulks(&["2", "3", "1"])
    );
    assert_eq!(
        t.r(&["SORT_RO", "ids", "BY", "h_*->age", "GET", "#", "GET", "name_*", "GET", "h_*->n"]),
        with_nils(&[
            Some("2"),
            None,
            None,
            Some("3"),
            Some("three"),
            Some("x3"),
            Some("1"),
            Some("one"),
            Some("x1"),
        ])
    );
    // A pattern naming a key of another type, or no `*`, reads nil.
    assert_eq!(
        t.r(&["SORT_RO", "ids", "GET", "h_*", "GET", "fixed"]),
        with_nils(&[None, None, None, None, None, None])
    );
    // ALPHA by weights: a missing weight sorts first.
    t.w(&["MSET", "a_1", "b", "a_2", "a"]);
    assert_eq!(
        t.r(&["SORT_RO", "ids", "BY", "a_*", "ALPHA"]),
        bulks(&["3", "2", "1"])
    );
    t.w(&["SET", "w_2", "ten"]);
    assert_eq!(
        t.r(&["SORT_RO", "ids", "BY", "w_*"]),
        Reply::err("ERR One or more scores can't be converted into double")
    );
}

fn store(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["RPUSH", "l", "2", "1"]);
    t.w(&["SET", "dst", "old", "EX", "100"]);
    let applied = t.apply(Op::Command {
        db: 0,
        args: cmd(&["SORT", "l", "GET", "#", "GET", "nope_*", "STORE", "dst"]),
    });
    assert_eq!(applied.replies[0], Reply::Int(4));
    let events: Vec<(&str, &[u8])> = applied
        .events
        .iter()
        .map(|e| (e.event, &e.key[..]))
        .collect();
    assert_eq!(events, vec![("sortstore", &b"dst"[..])]);
    assert!(touched(&applied).iter().any(|(_, k)| &k[..] == b"dst"));
    assert_eq!(
        t.r(&["LRANGE", "dst", "0", "-1"]),
        bulks(&["1", "", "2", ""])
    );
    assert_eq!(
        t.r(&["TTL", "dst"]),
        Reply::Int(-1),
        "STORE replaces the key and its TTL"
    );
    // An empty result deletes the destination.
    let applied = t.apply(Op::Command {
        db: 0,
        args: cmd(&["SORT", "missing", "STORE", "dst"]),
    });
    assert_eq!(applied.replies[0], Reply::Int(0));
    assert_eq!(t.r(&["EXISTS", "dst"]), Reply::Int(0));
    let events: Vec<&str> = applied.events.iter().map(|e| e.event).collect();
    assert_eq!(events, vec!["del"]);
    // ... and counts as a write of it even when it was not there (WATCH).
    let applied = t.apply(Op::Command {
        db: 0,
        args: cmd(&["SORT", "missing", "STORE", "dst"]),
    });
    assert!(touched(&applied).iter().any(|(_, k)| &k[..] == b"dst"));
}

fn errors(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "str", "x"]);
    t.w(&["RPUSH", "l", "1", "a"]);
    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    assert_eq!(t.w(&["SORT", "str"]), Reply::err(wrongtype));
    assert_eq!(
        t.w(&["SORT", "l"]),
        Reply::err("ERR One or more scores can't be converted into double")
    );
    assert_eq!(t.w(&["SORT", "l", "ALPHA"]), bulks(&["1", "a"]));
    // Read as strtod reads them: empty is 0, leading blanks skipped, a blank string and
    // trailing blanks refused (checked against redis-server).
    t.w(&["RPUSH", "blanks", "", " 2", "1"]);
    assert_eq!(t.w(&["SORT", "blanks"]), bulks(&["", "1", " 2"]));
    for odd in ["  ", "1 "] {
        t.w(&["DEL", "odd"]);
        t.w(&["RPUSH", "odd", odd]);
        assert_eq!(
            t.w(&["SORT", "odd"]),
            Reply::err("ERR One or more scores can't be converted into double"),
            "{odd:?}"
        );
    }
    assert_eq!(
        t.w(&["SORT", "l", "sideways"]),
        Reply::err("ERR syntax error")
    );
    assert_eq!(
        t.w(&["SORT", "l", "LIMIT", "1"]),
        Reply::err("ERR syntax error")
    );
    assert_eq!(
        t.w(&["SORT", "l", "LIMIT", "x", "1"]),
        Reply::err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        t.r(&["SORT_RO", "l", "STORE", "d"]),
        Reply::err("ERR syntax error")
    );
    assert_eq!(t.r(&["EXISTS", "d"]), Reply::Int(0));
}

/// Numeric SORT of a list of integers equals the model's sort; LIMIT its window.
fn matches_a_sorted_model(kind: EngineKind) {
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(-50i64..50, 0..40),
        0i64..45,
        -1i64..45,
        any::<bool>(),
    );
    runner
        .run(&strategy, |(items, offset, count, desc)| {
            let mut t = T::new(kind);
            let mut args = vec!["RPUSH".to_string(), "l".to_string()];
            args.extend(items.iter().map(i64::to_string));
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            if !items.is_empty() {
                t.w(&refs);
            }
            let (off, cnt) = (offset.to_string(), count.to_string());
            let mut sort = vec!["SORT_RO", "l", "LIMIT", off.as_str(), cnt.as_str()];
            if desc {
                sort.push("DESC");
            }
            let mut model = items.clone();
            model.sort_unstable();
            if desc {
                model.reverse();
            }
            let start = (offset as usize).min(model.len());
            let end = if count < 0 {
                model.len()
            } else {
                (start + count as usize).min(model.len())
            };
            let want: Vec<String> = model[start..end].iter().map(i64::to_string).collect();
            let want_refs: Vec<&str> = want.iter().map(String::as_str).collect();
            prop_assert_eq!(t.r(&sort), bulks(&want_refs));
            Ok(())
        })
        .expect("SORT matches the model");
}

all_engines!(
    orders,
    weights_and_projections,
    store,
    errors,
    matches_a_sorted_model
);
