//! Set commands: a model-based property test against a BTreeSet model, and targeted
//! checks of each command's edge cases and Redis's error texts.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{b, T};
use keel_engine::Reply;
use keel_storage::EngineKind;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

fn err(s: &str) -> Reply {
    Reply::err(s)
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(b(s))
}

fn set_of(items: &[&str]) -> Reply {
    Reply::Set(items.iter().map(|s| bulk(s)).collect())
}

fn arr(items: Vec<Reply>) -> Reply {
    Reply::Array(items)
}

/// Members of a bulk array / set reply, as strings (panics on any other shape).
fn members(r: &Reply) -> Vec<String> {
    let items = match r {
        Reply::Array(v) | Reply::Set(v) => v,
        other => panic!("expected an array or set reply, got {other:?}"),
    };
    items
        .iter()
        .map(|i| match i {
            Reply::Bulk(b) => String::from_utf8(b.to_vec()).expect("utf8 member"),
            other => panic!("expected bulk, got {other:?}"),
        })
        .collect()
}

/// Runs SSCAN to completion (bounded) and returns every member returned.
fn sscan_all(t: &T, key: &str, count: &str, pattern: Option<&str>) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut out = Vec::new();
    for _ in 0..1000 {
        let mut cmd = vec!["SSCAN", key, cursor.as_str(), "COUNT", count];
        if let Some(p) = pattern {
            cmd.extend(["MATCH", p]);
        }
        let r = t.r(&cmd);
        let Reply::Array(parts) = r else {
            panic!("SSCAN reply {r:?}")
        };
        let [Reply::Bulk(next), page] = parts.as_slice() else {
            panic!("SSCAN reply shape {parts:?}")
        };
        out.extend(members(page));
        cursor = String::from_utf8(next.to_vec()).expect("cursor");
        if cursor == "0" {
            return out;
        }
    }
    panic!("SSCAN did not finish in 1000 calls");
}

// ---------------------------------------------------------------------------------------
// Targeted tests.
// ---------------------------------------------------------------------------------------

fn sadd_srem_card_members(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.w(&["SADD", "s", "b", "a", "b", "c"]), Reply::Int(3));
    assert_eq!(t.w(&["SADD", "s", "a", "d"]), Reply::Int(1));
    assert_eq!(t.r(&["SCARD", "s"]), Reply::Int(4));
    assert_eq!(t.r(&["TYPE", "s"]), Reply::Simple("set".into()));
    assert_eq!(t.r(&["SMEMBERS", "s"]), set_of(&["a", "b", "c", "d"]));
    assert_eq!(t.r(&["SISMEMBER", "s", "a"]), Reply::Int(1));
    assert_eq!(t.r(&["SISMEMBER", "s", "z"]), Reply::Int(0));
    assert_eq!(t.r(&["SISMEMBER", "nokey", "z"]), Reply::Int(0));
    assert_eq!(
        t.r(&["SMISMEMBER", "s", "a", "z", "d"]),
        arr(vec![Reply::Int(1), Reply::Int(0), Reply::Int(1)])
    );
    assert_eq!(t.r(&["SMISMEMBER", "nokey", "a"]), arr(vec![Reply::Int(0)]));
    assert_eq!(t.w(&["SREM", "s", "a", "a", "zz"]), Reply::Int(1));
    assert_eq!(t.w(&["SREM", "nokey", "a"]), Reply::Int(0));
    assert_eq!(t.w(&["SREM", "s", "b", "c", "d", "e"]), Reply::Int(3));
    // The last member gone: the key is gone.
    assert_eq!(t.r(&["EXISTS", "s"]), Reply::Int(0));
    assert_eq!(t.r(&["SCARD", "s"]), Reply::Int(0));
    assert_eq!(t.r(&["SMEMBERS", "s"]), Reply::Set(vec![]));
    // An expired key of another type is absent for SADD.
    t.w(&["SET", "k", "v", "PX", "10"]);
    assert_eq!(t.w(&["SADD", "k", "a"]), err(WRONGTYPE));
    t.now += 20;
    assert_eq!(t.w(&["SADD", "k", "a"]), Reply::Int(1));
    assert_eq!(t.r(&["SMEMBERS", "k"]), set_of(&["a"]));
    // Binary-safe members, including the empty string.
    assert_eq!(t.w(&["SADD", "s", "", "\u{0}x"]), Reply::Int(2));
    assert_eq!(t.r(&["SISMEMBER", "s", ""]), Reply::Int(1));
    assert_eq!(t.r(&["SMEMBERS", "s"]), set_of(&["", "\u{0}x"]));
}

fn wrong_type_everywhere(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "str", "v"]);
    t.w(&["SADD", "s", "a"]);
    for cmd in [
        vec!["SADD", "str", "a"],
        vec!["SREM", "str", "a"],
        vec!["SPOP", "str"],
        vec!["SPOP", "str", "2"],
        vec!["SMOVE", "str", "s", "a"],
        vec!["SMOVE", "s", "str", "a"],
        vec!["SINTERSTORE", "d", "s", "str"],
        vec!["SUNIONSTORE", "d", "str"],
        vec!["SDIFFSTORE", "d", "s", "str"],
    ] {
        assert_eq!(t.w(&cmd), err(WRONGTYPE), "{cmd:?}");
    }
    for cmd in [
        vec!["SCARD", "str"],
        vec!["SISMEMBER", "str", "a"],
        vec!["SMISMEMBER", "str", "a"],
        vec!["SMEMBERS", "str"],
        vec!["SRANDMEMBER", "str"],
        vec!["SRANDMEMBER", "str", "-3"],
        vec!["SINTER", "nokey", "str"],
        vec!["SUNION", "s", "str"],
        vec!["SDIFF", "nokey", "str"],
        vec!["SINTERCARD", "2", "s", "str"],
        vec!["SSCAN", "str", "0"],
    ] {
        assert_eq!(t.r(&cmd), err(WRONGTYPE), "{cmd:?}");
    }
    // A failed store leaves the destination untouched.
    assert_eq!(t.r(&["TYPE", "d"]), Reply::Simple("none".into()));
    // SMOVE from a missing source answers 0 before looking at the destination's type.
    assert_eq!(t.w(&["SMOVE", "nokey", "str", "a"]), Reply::Int(0));
}

fn argument_errors(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SADD", "s", "a", "b"]);
    assert_eq!(
        t.w(&["SADD", "s"]),
        err("ERR wrong number of arguments for 'sadd' command")
    );
    assert_eq!(t.w(&["SPOP", "s", "1", "2"]), err("ERR syntax error"));
    assert_eq!(
        t.w(&["SPOP", "s", "-1"]),
        err("ERR value is out of range, must be positive")
    );
    assert_eq!(
        t.w(&["SPOP", "s", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        t.r(&["SRANDMEMBER", "s", "1", "2"]),
        err("ERR syntax error")
    );
    assert_eq!(
        t.r(&["SRANDMEMBER", "s", "-9223372036854775808"]),
        err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
    );
    assert_eq!(
        t.r(&["SRANDMEMBER", "s", "1.5"]),
        err("ERR value is not an integer or out of range")
    );
    for bad in ["0", "-1", "x"] {
        assert_eq!(
            t.r(&["SINTERCARD", bad, "s"]),
            err("ERR numkeys should be greater than 0"),
            "numkeys {bad}"
        );
    }
    assert_eq!(
        t.r(&["SINTERCARD", "3", "s", "s"]),
        err("ERR Number of keys can't be greater than number of args")
    );
    for bad in ["-1", "x"] {
        assert_eq!(
            t.r(&["SINTERCARD", "1", "s", "LIMIT", bad]),
            err("ERR LIMIT can't be negative"),
            "limit {bad}"
        );
    }
    assert_eq!(
        t.r(&["SINTERCARD", "1", "s", "LIMIT"]),
        err("ERR syntax error")
    );
    assert_eq!(
        t.r(&["SINTERCARD", "1", "s", "FOO", "1"]),
        err("ERR syntax error")
    );
    assert_eq!(t.r(&["SSCAN", "s", "x"]), err("ERR invalid cursor"));
    assert_eq!(
        t.r(&["SSCAN", "s", "0", "COUNT", "0"]),
        err("ERR syntax error")
    );
    assert_eq!(
        t.r(&["SSCAN", "s", "0", "COUNT", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        t.r(&["SSCAN", "s", "0", "TYPE", "set"]),
        err("ERR syntax error")
    );
    assert_eq!(t.r(&["SSCAN", "s", "0", "MATCH"]), err("ERR syntax error"));
    // A missing key answers the empty scan before options are looked at (as Redis).
    assert_eq!(
        t.r(&["SSCAN", "nokey", "0", "BOGUS"]),
        arr(vec![bulk("0"), arr(vec![])])
    );
}

fn algebra_and_stores(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SADD", "a", "1", "2", "3", "4"]);
    t.w(&["SADD", "b", "3", "4", "5"]);
    t.w(&["SADD", "c", "4", "6"]);
    assert_eq!(t.r(&["SINTER", "a", "b", "c"]), set_of(&["4"]));
    assert_eq!(t.r(&["SINTER", "a", "b"]), set_of(&["3", "4"]));
    assert_eq!(t.r(&["SINTER", "a", "a"]), set_of(&["1", "2", "3", "4"]));
    assert_eq!(t.r(&["SINTER", "a", "nokey"]), Reply::Set(vec![]));
    assert_eq!(
        t.r(&["SUNION", "a", "nokey", "c"]),
        set_of(&["1", "2", "3", "4", "6"])
    );
    assert_eq!(t.r(&["SDIFF", "a", "b"]), set_of(&["1", "2"]));
    assert_eq!(t.r(&["SDIFF", "a", "nokey", "c"]), set_of(&["1", "2", "3"]));
    assert_eq!(t.r(&["SDIFF", "a", "a"]), Reply::Set(vec![]));
    assert_eq!(t.r(&["SDIFF", "nokey", "a"]), Reply::Set(vec![]));
    assert_eq!(t.r(&["SINTERCARD", "2", "a", "b"]), Reply::Int(2));
    assert_eq!(t.r(&["SINTERCARD", "1", "a", "LIMIT", "3"]), Reply::Int(3));
    assert_eq!(t.r(&["SINTERCARD", "1", "a", "LIMIT", "0"]), Reply::Int(4));
    assert_eq!(t.r(&["SINTERCARD", "2", "a", "nokey"]), Reply::Int(0));

    // Stores overwrite a destination of any type and drop its TTL.
    t.w(&["SET", "dst", "x", "PX", "1000"]);
    assert_eq!(t.w(&["SINTERSTORE", "dst", "a", "b"]), Reply::Int(2));
    assert_eq!(t.r(&["SMEMBERS", "dst"]), set_of(&["3", "4"]));
    t.now += 5000;
    assert_eq!(t.r(&["SCARD", "dst"]), Reply::Int(2), "TTL must be gone");
    // A destination that is also a source.
    assert_eq!(t.w(&["SUNIONSTORE", "a", "a", "c"]), Reply::Int(5));
    assert_eq!(t.r(&["SMEMBERS", "a"]), set_of(&["1", "2", "3", "4", "6"]));
    assert_eq!(t.w(&["SDIFFSTORE", "dst", "a", "b"]), Reply::Int(3));
    assert_eq!(t.r(&["SMEMBERS", "dst"]), set_of(&["1", "2", "6"]));
    // An empty result deletes the destination.
    assert_eq!(t.w(&["SINTERSTORE", "dst", "a", "nokey"]), Reply::Int(0));
    assert_eq!(t.r(&["EXISTS", "dst"]), Reply::Int(0));
    t.w(&["SET", "dst", "x"]);
    assert_eq!(t.w(&["SDIFFSTORE", "dst", "b", "b"]), Reply::Int(0));
    assert_eq!(t.r(&["EXISTS", "dst"]), Reply::Int(0));
}

fn smove_cases(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SADD", "src", "a", "b"]);
    t.w(&["SADD", "dst", "b"]);
    assert_eq!(t.w(&["SMOVE", "src", "dst", "zz"]), Reply::Int(0));
    assert_eq!(t.w(&["SMOVE", "src", "src", "a"]), Reply::Int(1));
    assert_eq!(t.w(&["SMOVE", "src", "src", "zz"]), Reply::Int(0));
    assert_eq!(t.r(&["SCARD", "src"]), Reply::Int(2));
    // Already in the destination: removed from the source only.
    assert_eq!(t.w(&["SMOVE", "src", "dst", "b"]), Reply::Int(1));
    assert_eq!(t.r(&["SMEMBERS", "src"]), set_of(&["a"]));
    assert_eq!(t.r(&["SMEMBERS", "dst"]), set_of(&["b"]));
    // The last member leaves: the source is deleted, a new destination is created.
    assert_eq!(t.w(&["SMOVE", "src", "new", "a"]), Reply::Int(1));
    assert_eq!(t.r(&["EXISTS", "src"]), Reply::Int(0));
    assert_eq!(t.r(&["SMEMBERS", "new"]), set_of(&["a"]));
}

fn spop_and_srandmember(kind: EngineKind) {
    let mut t = T::new(kind);
    let all: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    let mut add = vec!["SADD", "s"];
    add.extend(all.iter().map(String::as_str));
    t.w(&add);
    let universe: BTreeSet<String> = all.iter().cloned().collect();

    // No count: one member or nil.
    let Reply::Bulk(m) = t.r(&["SRANDMEMBER", "s"]) else {
        panic!("bulk expected")
    };
    assert!(universe.contains(&String::from_utf8(m.to_vec()).expect("utf8")));
    assert_eq!(t.r(&["SRANDMEMBER", "nokey"]), Reply::Nil);
    assert_eq!(t.r(&["SRANDMEMBER", "nokey", "3"]), arr(vec![]));
    assert_eq!(t.r(&["SRANDMEMBER", "s", "0"]), arr(vec![]));

    // Positive count: distinct members; at least the set size gives the whole set.
    let r = members(&t.r(&["SRANDMEMBER", "s", "7"]));
    assert_eq!(r.len(), 7);
    assert_eq!(r.iter().collect::<BTreeSet<_>>().len(), 7);
    assert!(r.iter().all(|m| universe.contains(m)));
    let r = members(&t.r(&["SRANDMEMBER", "s", "100"]));
    assert_eq!(r, all);
    // Negative count: exactly -count members, repeats allowed.
    let r = members(&t.r(&["SRANDMEMBER", "s", "-50"]));
    assert_eq!(r.len(), 50);
    assert!(r.iter().all(|m| universe.contains(m)));
    assert!(
        r.iter().collect::<BTreeSet<_>>().len() < 50,
        "50 draws from 20 members must repeat"
    );
    let r = members(&t.r(&["SRANDMEMBER", "s", "-5"]));
    assert_eq!(r.len(), 5);

    // Every member is reachable: uniform picks over enough draws hit all 20.
    let mut seen = BTreeSet::new();
    for i in 0..400 {
        t.now += 1;
        if let Reply::Bulk(m) = t.r(&["SRANDMEMBER", "s"]) {
            seen.insert(m);
        }
        if seen.len() == 20 {
            break;
        }
        assert!(i < 399, "only {} of 20 members ever picked", seen.len());
    }

    // SPOP: removes what it returns.
    let mut left = universe.clone();
    let Reply::Bulk(m) = t.w(&["SPOP", "s"]) else {
        panic!("bulk expected")
    };
    let m = String::from_utf8(m.to_vec()).expect("utf8");
    assert!(left.remove(&m));
    assert_eq!(t.r(&["SISMEMBER", "s", &m]), Reply::Int(0));
    let r = t.w(&["SPOP", "s", "5"]);
    assert!(matches!(r, Reply::Set(_)));
    let popped = members(&r);
    assert_eq!(popped.len(), 5);
    for m in &popped {
        assert!(left.remove(m), "{m} popped twice or never present");
    }
    assert_eq!(t.r(&["SCARD", "s"]), Reply::Int(left.len() as i64));
    assert_eq!(t.w(&["SPOP", "s", "0"]), Reply::Set(vec![]));
    let rest = members(&t.w(&["SPOP", "s", "100"]));
    assert_eq!(rest, left.iter().cloned().collect::<Vec<_>>());
    assert_eq!(t.r(&["EXISTS", "s"]), Reply::Int(0));
    assert_eq!(t.w(&["SPOP", "s"]), Reply::Nil);
    assert_eq!(t.w(&["SPOP", "s", "3"]), Reply::Set(vec![]));
}

fn random_choices_are_deterministic(kind: EngineKind) {
    let run = || {
        let mut t = T::new(kind);
        let mut add = vec!["SADD".to_string(), "s".to_string()];
        add.extend((0..50).map(|i| format!("m{i}")));
        let add: Vec<&str> = add.iter().map(String::as_str).collect();
        t.w(&add);
        let mut replies = Vec::new();
        for _ in 0..10 {
            replies.push(t.w(&["SPOP", "s"]));
            replies.push(t.w(&["SPOP", "s", "3"]));
            replies.push(t.w(&["SRANDMEMBER", "s", "-4"]));
            replies.push(t.w(&["SRANDMEMBER", "s", "4"]));
        }
        replies
    };
    let first = run();
    assert_eq!(first, run(), "same log entries, same choices");
    // And the choices are not all the same member.
    let popped: BTreeSet<String> = first.iter().step_by(4).map(|r| format!("{r:?}")).collect();
    assert!(popped.len() > 5);
}

fn sscan_walks_everything(kind: EngineKind) {
    let mut t = T::new(kind);
    let all: Vec<String> = (0..57).map(|i| format!("k{i:03}")).collect();
    for chunk in all.chunks(10) {
        let mut add = vec!["SADD", "s"];
        add.extend(chunk.iter().map(String::as_str));
        t.w(&add);
    }
    for count in ["1", "7", "10", "1000"] {
        assert_eq!(sscan_all(&t, "s", count, None), all, "COUNT {count}");
    }
    let matching: Vec<String> = all.iter().filter(|m| m.ends_with('5')).cloned().collect();
    assert_eq!(sscan_all(&t, "s", "4", Some("*5")), matching);

    // Members present for the whole scan are returned even when others change meanwhile.
    let first = t.r(&["SSCAN", "s", "0", "COUNT", "20"]);
    let Reply::Array(parts) = first else {
        panic!("reply")
    };
    let Reply::Bulk(cursor) = &parts[0] else {
        panic!("cursor")
    };
    let mut got: BTreeSet<String> = members(&parts[1]).into_iter().collect();
    t.w(&["SREM", "s", "k000", "k050"]);
    t.w(&["SADD", "s", "k0005", "zzz"]);
    let mut cursor = String::from_utf8(cursor.to_vec()).expect("cursor");
    for _ in 0..100 {
        let r = t.r(&["SSCAN", "s", &cursor, "COUNT", "20"]);
        let Reply::Array(parts) = r else {
            panic!("reply")
        };
        let Reply::Bulk(c) = &parts[0] else {
            panic!("cursor")
        };
        got.extend(members(&parts[1]));
        cursor = String::from_utf8(c.to_vec()).expect("cursor");
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(cursor, "0");
    for m in &all {
        if m != "k050" && m != "k000" {
            assert!(got.contains(m), "{m} missed");
        }
    }
}

fn empty_collections_never_linger(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SADD", "s", "a", "b", "c"]);
    t.w(&["SPOP", "s", "2"]);
    t.w(&["SPOP", "s"]);
    assert_eq!(t.r(&["EXISTS", "s"]), Reply::Int(0));
    t.w(&["SADD", "s", "a"]);
    t.w(&["SMOVE", "s", "t", "a"]);
    assert_eq!(t.r(&["EXISTS", "s"]), Reply::Int(0));
    assert_eq!(t.r(&["SMEMBERS", "t"]), set_of(&["a"]));
    // A re-created key must not see members of its earlier life.
    t.w(&["SADD", "s", "x", "y"]);
    t.w(&["DEL", "s"]);
    t.w(&["SADD", "s", "z"]);
    assert_eq!(t.r(&["SMEMBERS", "s"]), set_of(&["z"]));
    assert_eq!(t.r(&["SCARD", "s"]), Reply::Int(1));
}

/// Reads are not replicated, so repeated random picks in the same millisecond must
/// vary; Redis's own suite calls SRANDMEMBER in tight loops and checks the spread.
fn random_reads_vary_within_one_millisecond(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SADD", "s", "a", "b", "c"]);
    let mut seen = BTreeSet::new();
    for _ in 0..300 {
        if let Reply::Bulk(m) = t.r(&["SRANDMEMBER", "s"]) {
            seen.insert(m);
        }
    }
    assert_eq!(seen.len(), 3, "all members show up: {seen:?}");
}

all_engines!(
    random_reads_vary_within_one_millisecond,
    sadd_srem_card_members,
    wrong_type_everywhere,
    argument_errors,
    algebra_and_stores,
    smove_cases,
    spop_and_srandmember,
    random_choices_are_deterministic,
    sscan_walks_everything,
    empty_collections_never_linger,
    set_model,
);

// ---------------------------------------------------------------------------------------
// Model-based property test.
// ---------------------------------------------------------------------------------------

const KEYS: [&str; 4] = ["s1", "s2", "s3", "str"];
const MEMBERS: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "hh"];

#[derive(Debug, Clone)]
enum Op {
    Sadd(usize, Vec<usize>),
    Srem(usize, Vec<usize>),
    Scard(usize),
    Sismember(usize, usize),
    Smismember(usize, Vec<usize>),
    Smembers(usize),
    Smove(usize, usize, usize),
    Sinter(Vec<usize>),
    Sunion(Vec<usize>),
    Sdiff(Vec<usize>),
    Store(u8, usize, Vec<usize>),
    Sintercard(Vec<usize>, u8),
    Spop(usize, Option<u8>),
    Srandmember(usize, Option<i8>),
    Sscan(usize, u8),
    SetString(usize),
    Del(usize),
}

fn key_ix() -> impl Strategy<Value = usize> {
    prop_oneof![4 => 0..3usize, 1 => Just(3usize)]
}

fn member_ix() -> impl Strategy<Value = usize> {
    0..MEMBERS.len()
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let keys = || prop::collection::vec(key_ix(), 1..4);
    let mems = || prop::collection::vec(member_ix(), 1..5);
    prop_oneof![
        6 => (key_ix(), mems()).prop_map(|(k, m)| Op::Sadd(k, m)),
        3 => (key_ix(), mems()).prop_map(|(k, m)| Op::Srem(k, m)),
        1 => key_ix().prop_map(Op::Scard),
        1 => (key_ix(), member_ix()).prop_map(|(k, m)| Op::Sismember(k, m)),
        1 => (key_ix(), mems()).prop_map(|(k, m)| Op::Smismember(k, m)),
        1 => key_ix().prop_map(Op::Smembers),
        2 => (key_ix(), key_ix(), member_ix()).prop_map(|(a, b, m)| Op::Smove(a, b, m)),
        1 => keys().prop_map(Op::Sinter),
        1 => keys().prop_map(Op::Sunion),
        1 => keys().prop_map(Op::Sdiff),
        2 => (0..3u8, key_ix(), keys()).prop_map(|(w, d, k)| Op::Store(w, d, k)),
        1 => (keys(), 0..4u8).prop_map(|(k, l)| Op::Sintercard(k, l)),
        2 => (key_ix(), prop::option::of(0..5u8)).prop_map(|(k, c)| Op::Spop(k, c)),
        2 => (key_ix(), prop::option::of(-6..6i8)).prop_map(|(k, c)| Op::Srandmember(k, c)),
        1 => (key_ix(), 1..5u8).prop_map(|(k, c)| Op::Sscan(k, c)),
        1 => key_ix().prop_map(Op::SetString),
        1 => key_ix().prop_map(Op::Del),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str,
    Set(BTreeSet<String>),
}

type Model = BTreeMap<&'static str, Val>;

fn model_set<'a>(m: &'a Model, k: &str) -> Result<Option<&'a BTreeSet<String>>, Reply> {
    match m.get(k) {
        None => Ok(None),
        Some(Val::Set(s)) => Ok(Some(s)),
        Some(Val::Str) => Err(err(WRONGTYPE)),
    }
}

fn model_sets(m: &Model, ks: &[usize]) -> Result<Vec<Option<BTreeSet<String>>>, Reply> {
    ks.iter()
        .map(|&k| model_set(m, KEYS[k]).map(|o| o.cloned()))
        .collect()
}

fn set_reply(s: &BTreeSet<String>) -> Reply {
    Reply::Set(s.iter().map(|m| Reply::Bulk(b(m))).collect())
}

fn inter(sets: &[Option<BTreeSet<String>>]) -> BTreeSet<String> {
    if sets.iter().any(Option::is_none) {
        return BTreeSet::new();
    }
    let mut it = sets.iter().flatten();
    let mut acc = it.next().cloned().unwrap_or_default();
    for s in it {
        acc = acc.intersection(s).cloned().collect();
    }
    acc
}

fn union(sets: &[Option<BTreeSet<String>>]) -> BTreeSet<String> {
    sets.iter().flatten().flatten().cloned().collect()
}

fn diff(sets: &[Option<BTreeSet<String>>]) -> BTreeSet<String> {
    let Some((Some(first), rest)) = sets.split_first() else {
        return BTreeSet::new();
    };
    first
        .iter()
        .filter(|m| !rest.iter().flatten().any(|s| s.contains(*m)))
        .cloned()
        .collect()
}

fn put_set(m: &mut Model, k: &'static str, s: BTreeSet<String>) {
    if s.is_empty() {
        m.remove(k);
    } else {
        m.insert(k, Val::Set(s));
    }
}

/// Applies `op` to the engine and the model; returns (engine reply, expected reply) or
/// an error text when a randomised reply breaks its property.
fn step(t: &mut T, m: &mut Model, op: &Op, via_log: bool) -> Result<(), TestCaseError> {
    let read = |t: &mut T, args: &[&str]| if via_log { t.w(args) } else { t.r(args) };
    let names = |ks: &[usize]| ks.iter().map(|&k| KEYS[k]).collect::<Vec<_>>();
    match op {
        Op::Sadd(k, ms) => {
            let key = KEYS[*k];
            let mut args = vec!["SADD", key];
            args.extend(ms.iter().map(|&i| MEMBERS[i]));
            let got = t.w(&args);
            let want = match model_set(m, key) {
                Err(e) => e,
                Ok(cur) => {
                    let mut s = cur.cloned().unwrap_or_default();
                    let before = s.len();
                    s.extend(ms.iter().map(|&i| MEMBERS[i].to_string()));
                    let n = s.len() - before;
                    put_set(m, key, s);
                    Reply::Int(n as i64)
                }
            };
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Srem(k, ms) => {
            let key = KEYS[*k];
            let mut args = vec!["SREM", key];
            args.extend(ms.iter().map(|&i| MEMBERS[i]));
            let got = t.w(&args);
            let want = match model_set(m, key) {
                Err(e) => e,
                Ok(None) => Reply::Int(0),
                Ok(Some(cur)) => {
                    let mut s = cur.clone();
                    let before = s.len();
                    for &i in ms {
                        s.remove(MEMBERS[i]);
                    }
                    let n = before - s.len();
                    put_set(m, key, s);
                    Reply::Int(n as i64)
                }
            };
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Scard(k) => {
            let got = read(t, &["SCARD", KEYS[*k]]);
            let want = match model_set(m, KEYS[*k]) {
                Err(e) => e,
                Ok(s) => Reply::Int(s.map_or(0, |s| s.len() as i64)),
            };
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Sismember(k, i) => {
            let got = read(t, &["SISMEMBER", KEYS[*k], MEMBERS[*i]]);
            let want = match model_set(m, KEYS[*k]) {
                Err(e) => e,
                Ok(s) => Reply::Int(i64::from(s.is_some_and(|s| s.contains(MEMBERS[*i])))),
            };
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Smismember(k, ms) => {
            let mut args = vec!["SMISMEMBER", KEYS[*k]];
            args.extend(ms.iter().map(|&i| MEMBERS[i]));
            let got = read(t, &args);
            let want = match model_set(m, KEYS[*k]) {
                Err(e) => e,
                Ok(s) => arr(ms
                    .iter()
                    .map(|&i| Reply::Int(i64::from(s.is_some_and(|s| s.contains(MEMBERS[i])))))
                    .collect()),
            };
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Smembers(k) => {
            let got = read(t, &["SMEMBERS", KEYS[*k]]);
            let want = match model_set(m, KEYS[*k]) {
                Err(e) => e,
                Ok(s) => set_reply(&s.cloned().unwrap_or_default()),
            };
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Smove(a, bk, i) => {
            let (src, dst, mem) = (KEYS[*a], KEYS[*bk], MEMBERS[*i]);
            let got = t.w(&["SMOVE", src, dst, mem]);
            let want = match m.get(src) {
                None => Reply::Int(0),
                Some(Val::Str) => err(WRONGTYPE),
                Some(Val::Set(s)) => match model_set(m, dst) {
                    Err(e) => e,
                    Ok(_) if src == dst => Reply::Int(i64::from(s.contains(mem))),
                    Ok(_) if !s.contains(mem) => Reply::Int(0),
                    Ok(d) => {
                        let mut d = d.cloned().unwrap_or_default();
                        let mut s = s.clone();
                        s.remove(mem);
                        d.insert(mem.to_string());
                        put_set(m, src, s);
                        put_set(m, dst, d);
                        Reply::Int(1)
                    }
                },
            };
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Sinter(ks) | Op::Sunion(ks) | Op::Sdiff(ks) => {
            let name = match op {
                Op::Sinter(_) => "SINTER",
                Op::Sunion(_) => "SUNION",
                _ => "SDIFF",
            };
            let mut args = vec![name];
            args.extend(names(ks));
            let got = read(t, &args);
            let want = match model_sets(m, ks) {
                Err(e) => e,
                Ok(sets) => set_reply(&match op {
                    Op::Sinter(_) => inter(&sets),
                    Op::Sunion(_) => union(&sets),
                    _ => diff(&sets),
                }),
            };
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Store(which, d, ks) => {
            let name = ["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"][*which as usize];
            let dst = KEYS[*d];
            let mut args = vec![name, dst];
            args.extend(names(ks));
            let got = t.w(&args);
            let want = match model_sets(m, ks) {
                Err(e) => e,
                Ok(sets) => {
                    let r = match which {
                        0 => inter(&sets),
                        1 => union(&sets),
                        _ => diff(&sets),
                    };
                    let n = r.len();
                    put_set(m, dst, r);
                    Reply::Int(n as i64)
                }
            };
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Sintercard(ks, limit) => {
            let n = ks.len().to_string();
            let l = limit.to_string();
            let mut args = vec!["SINTERCARD", n.as_str()];
            args.extend(names(ks));
            args.extend(["LIMIT", l.as_str()]);
            let got = read(t, &args);
            let want = match model_sets(m, ks) {
                Err(e) => e,
                Ok(sets) => {
                    let c = inter(&sets).len();
                    let c = if *limit == 0 {
                        c
                    } else {
                        c.min(*limit as usize)
                    };
                    Reply::Int(c as i64)
                }
            };
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Spop(k, count) => {
            let key = KEYS[*k];
            let c = count.map(|c| c.to_string());
            let mut args = vec!["SPOP", key];
            if let Some(c) = &c {
                args.push(c);
            }
            let got = t.w(&args);
            match model_set(m, key) {
                Err(e) => prop_assert_eq!(got, e),
                Ok(None) => prop_assert_eq!(
                    got,
                    if count.is_some() {
                        Reply::Set(vec![])
                    } else {
                        Reply::Nil
                    }
                ),
                Ok(Some(s)) => {
                    let mut s = s.clone();
                    let popped: Vec<String> = match (count, &got) {
                        (None, Reply::Bulk(x)) => {
                            vec![String::from_utf8(x.to_vec()).expect("utf8")]
                        }
                        (Some(_), Reply::Set(_)) => members(&got),
                        _ => return Err(TestCaseError::fail(format!("{op:?} gave {got:?}"))),
                    };
                    let want_n = count.map_or(1, |c| (c as usize).min(s.len()));
                    prop_assert_eq!(popped.len(), want_n, "{:?}", op);
                    let distinct: BTreeSet<_> = popped.iter().collect();
                    prop_assert_eq!(distinct.len(), popped.len(), "{:?} repeated", op);
                    for p in &popped {
                        prop_assert!(s.remove(p), "{:?} popped {} not in the set", op, p);
                    }
                    put_set(m, key, s);
                }
            }
        }
        Op::Srandmember(k, count) => {
            let key = KEYS[*k];
            let c = count.map(|c| c.to_string());
            let mut args = vec!["SRANDMEMBER", key];
            if let Some(c) = &c {
                args.push(c);
            }
            let got = read(t, &args);
            match model_set(m, key) {
                Err(e) => prop_assert_eq!(got, e),
                Ok(None) => prop_assert_eq!(
                    got,
                    if count.is_some() {
                        arr(vec![])
                    } else {
                        Reply::Nil
                    }
                ),
                Ok(Some(s)) => match count {
                    None => {
                        let Reply::Bulk(x) = &got else {
                            return Err(TestCaseError::fail(format!("{op:?} gave {got:?}")));
                        };
                        prop_assert!(s.contains(&String::from_utf8(x.to_vec()).expect("utf8")));
                    }
                    Some(c) => {
                        prop_assert!(matches!(got, Reply::Array(_)), "{:?}", got);
                        let picked = members(&got);
                        prop_assert!(picked.iter().all(|p| s.contains(p)), "{:?}", got);
                        if *c >= 0 {
                            prop_assert_eq!(picked.len(), (*c as usize).min(s.len()));
                            let d: BTreeSet<_> = picked.iter().collect();
                            prop_assert_eq!(d.len(), picked.len());
                        } else {
                            prop_assert_eq!(picked.len(), c.unsigned_abs() as usize);
                        }
                    }
                },
            }
        }
        Op::Sscan(k, count) => {
            let key = KEYS[*k];
            match model_set(m, key) {
                Err(e) => prop_assert_eq!(t.r(&["SSCAN", key, "0"]), e),
                Ok(s) => {
                    let got = sscan_all(t, key, &count.to_string(), None);
                    let want: Vec<String> = s.cloned().unwrap_or_default().into_iter().collect();
                    prop_assert_eq!(got, want, "{:?}", op);
                }
            }
        }
        Op::SetString(k) => {
            prop_assert_eq!(t.w(&["SET", KEYS[*k], "v"]), Reply::Ok);
            m.insert(KEYS[*k], Val::Str);
        }
        Op::Del(k) => {
            let got = t.w(&["DEL", KEYS[*k]]);
            let want = Reply::Int(i64::from(m.remove(KEYS[*k]).is_some()));
            prop_assert_eq!(got, want, "{:?}", op);
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn set_model(kind: EngineKind) {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = prop::collection::vec((op_strategy(), any::<bool>()), 1..50);
    let result = runner.run(&strategy, |ops| {
        let mut t = T::new(kind);
        let mut model = Model::new();
        for (op, via_log) in &ops {
            step(&mut t, &mut model, op, *via_log)?;
        }
        // The final state agrees key by key.
        for key in KEYS {
            let want = match model.get(key) {
                None => Reply::Simple("none".into()),
                Some(Val::Str) => Reply::Simple("string".into()),
                Some(Val::Set(s)) => {
                    prop_assert_eq!(t.r(&["SMEMBERS", key]), set_reply(s));
                    Reply::Simple("set".into())
                }
            };
            prop_assert_eq!(t.r(&["TYPE", key]), want);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
