//! Sorted-set commands: a model-based property test (model: member → score, ranks from
//! sorting (score, member)) over random op sequences with random range bounds, and
//! targeted checks of edge cases and Redis's error texts.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{b, T};
use keel_engine::args::format_f64;
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

fn arr(items: Vec<Reply>) -> Reply {
    Reply::Array(items)
}

fn bulks(items: &[&str]) -> Reply {
    arr(items.iter().map(|s| bulk(s)).collect())
}

fn pairs(items: &[(&str, f64)]) -> Reply {
    Reply::Pairs(
        items
            .iter()
            .map(|(m, s)| (bulk(m), Reply::Double(*s)))
            .collect(),
    )
}

fn text(r: &Reply) -> String {
    match r {
        Reply::Bulk(b) => String::from_utf8(b.to_vec()).expect("utf8"),
        other => panic!("expected bulk, got {other:?}"),
    }
}

/// Runs ZSCAN to completion (bounded); returns (member, score text) in reply order.
fn zscan_all(t: &T, key: &str, count: &str, pattern: Option<&str>) -> Vec<(String, String)> {
    let mut cursor = "0".to_string();
    let mut out = Vec::new();
    for _ in 0..1000 {
        let mut cmd = vec!["ZSCAN", key, cursor.as_str(), "COUNT", count];
        if let Some(p) = pattern {
            cmd.extend(["MATCH", p]);
        }
        let r = t.r(&cmd);
        let Reply::Array(parts) = r else {
            panic!("ZSCAN reply {r:?}")
        };
        let [next, Reply::Array(page)] = parts.as_slice() else {
            panic!("ZSCAN reply shape {parts:?}")
        };
        for pair in page.chunks(2) {
            out.push((text(&pair[0]), text(&pair[1])));
        }
        cursor = text(next);
        if cursor == "0" {
            return out;
        }
    }
    panic!("ZSCAN did not finish in 1000 calls");
}

// ---------------------------------------------------------------------------------------
// Targeted tests.
// ---------------------------------------------------------------------------------------

fn zadd_options_and_errors(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(
        t.w(&["ZADD", "z", "1", "a", "2", "b", "3", "c"]),
        Reply::Int(3)
    );
    assert_eq!(t.r(&["TYPE", "z"]), Reply::Simple("zset".into()));
    assert_eq!(
        t.w(&["ZADD", "z", "NX", "10", "a", "4", "d"]),
        Reply::Int(1)
    );
    assert_eq!(t.r(&["ZSCORE", "z", "a"]), Reply::Double(1.0));
    assert_eq!(
        t.w(&["ZADD", "z", "XX", "10", "a", "5", "e"]),
        Reply::Int(0)
    );
    assert_eq!(t.r(&["ZSCORE", "z", "a"]), Reply::Double(10.0));
    assert_eq!(t.r(&["ZSCORE", "z", "e"]), Reply::Nil);
    assert_eq!(
        t.w(&["ZADD", "z", "CH", "10", "a", "20", "b", "1", "f"]),
        Reply::Int(2)
    );
    assert_eq!(
        t.w(&["ZADD", "z", "GT", "CH", "5", "a", "30", "b"]),
        Reply::Int(1)
    );
    assert_eq!(t.r(&["ZSCORE", "z", "a"]), Reply::Double(10.0));
    assert_eq!(t.r(&["ZSCORE", "z", "b"]), Reply::Double(30.0));
    assert_eq!(
        t.w(&["ZADD", "z", "LT", "CH", "5", "a", "40", "b"]),
        Reply::Int(1)
    );
    assert_eq!(t.r(&["ZSCORE", "z", "a"]), Reply::Double(5.0));
    // GT/LT never stop new members.
    assert_eq!(t.w(&["ZADD", "z", "GT", "-1", "g"]), Reply::Int(1));
    assert_eq!(t.w(&["ZADD", "z", "INCR", "2.5", "a"]), Reply::Double(7.5));
    assert_eq!(t.w(&["ZADD", "z", "INCR", "NX", "1", "a"]), Reply::Nil);
    assert_eq!(t.w(&["ZADD", "z", "INCR", "GT", "-1", "a"]), Reply::Nil);
    assert_eq!(t.w(&["ZADD", "z", "INCR", "XX", "1", "zz"]), Reply::Nil);
    assert_eq!(t.w(&["ZADD", "nokey", "XX", "1", "a"]), Reply::Int(0));
    assert_eq!(t.w(&["ZADD", "nokey", "XX", "INCR", "1", "a"]), Reply::Nil);
    assert_eq!(t.r(&["EXISTS", "nokey"]), Reply::Int(0));
    assert_eq!(t.w(&["ZINCRBY", "z", "1", "new"]), Reply::Double(1.0));
    assert_eq!(t.w(&["ZINCRBY", "z", "-0.5", "new"]), Reply::Double(0.5));
    // Duplicates inside one ZADD: the last score wins, counted once.
    assert_eq!(t.w(&["ZADD", "dup", "1", "x", "2", "x"]), Reply::Int(1));
    assert_eq!(t.r(&["ZSCORE", "dup", "x"]), Reply::Double(2.0));
    assert_eq!(t.r(&["ZCARD", "dup"]), Reply::Int(1));
    // The same on sets the command creates, with every flag: each later pair sees the
    // score an earlier one gave, and the score index keeps only the last.
    assert_eq!(
        t.w(&["ZADD", "dup2", "CH", "1", "x", "2", "x", "1", "x"]),
        Reply::Int(3)
    );
    assert_eq!(
        t.r(&["ZRANGE", "dup2", "0", "-1", "WITHSCORES"]),
        pairs(&[("x", 1.0)])
    );
    assert_eq!(
        t.w(&["ZADD", "dup3", "NX", "1", "x", "2", "x"]),
        Reply::Int(1)
    );
    assert_eq!(t.r(&["ZSCORE", "dup3", "x"]), Reply::Double(1.0));
    assert_eq!(
        t.w(&["ZADD", "dup4", "GT", "CH", "2", "x", "1", "x", "3", "x"]),
        Reply::Int(2)
    );
    assert_eq!(
        t.r(&["ZRANGE", "dup4", "0", "-1", "WITHSCORES"]),
        pairs(&[("x", 3.0)])
    );
    assert_eq!(
        t.w(&["ZADD", "dup5", "LT", "2", "x", "3", "x", "5", "y"]),
        Reply::Int(2)
    );
    assert_eq!(
        t.r(&["ZRANGE", "dup5", "0", "-1", "WITHSCORES"]),
        pairs(&[("x", 2.0), ("y", 5.0)])
    );

    assert_eq!(
        t.w(&["ZADD", "z", "NX", "XX", "1", "a"]),
        err("ERR XX and NX options at the same time are not compatible")
    );
    for opts in [["GT", "LT"], ["GT", "NX"], ["NX", "LT"]] {
        assert_eq!(
            t.w(&["ZADD", "z", opts[0], opts[1], "1", "a"]),
            err("ERR GT, LT, and/or NX options at the same time are not compatible")
        );
    }
    assert_eq!(
        t.w(&["ZADD", "z", "INCR", "1", "a", "2", "b"]),
        err("ERR INCR option supports a single increment-element pair")
    );
    assert_eq!(t.w(&["ZADD", "z", "1", "a", "2"]), err("ERR syntax error"));
    assert_eq!(t.w(&["ZADD", "z", "NX", "CH"]), err("ERR syntax error"));
    assert_eq!(
        t.w(&["ZADD", "z", "x", "a"]),
        err("ERR value is not a valid float")
    );
    assert_eq!(
        t.w(&["ZADD", "z", "nan", "a"]),
        err("ERR value is not a valid float")
    );
    assert_eq!(
        t.w(&["ZINCRBY", "z", "abc", "a"]),
        err("ERR value is not a valid float")
    );
    t.w(&["ZADD", "inf", "+inf", "m"]);
    assert_eq!(
        t.w(&["ZINCRBY", "inf", "-inf", "m"]),
        err("ERR resulting score is not a number (NaN)")
    );
    assert_eq!(
        t.w(&["ZADD", "inf", "INCR", "-inf", "m"]),
        err("ERR resulting score is not a number (NaN)")
    );
    assert_eq!(t.r(&["ZSCORE", "inf", "m"]), Reply::Double(f64::INFINITY));
    // GT/LT compare the new score strictly: an unchanged score is not "processed".
    assert_eq!(t.w(&["ZADD", "z", "LT", "INCR", "0", "a"]), Reply::Nil);
    assert_eq!(t.w(&["ZADD", "z", "GT", "INCR", "0", "a"]), Reply::Nil);
    assert_eq!(t.w(&["ZADD", "z", "INCR", "0", "a"]), Reply::Double(7.5));
    // -0 and 0 are one score.
    assert_eq!(t.w(&["ZADD", "zero", "-0", "m"]), Reply::Int(1));
    assert_eq!(t.w(&["ZADD", "zero", "CH", "0", "m"]), Reply::Int(0));
    assert_eq!(t.r(&["ZCOUNT", "zero", "0", "0"]), Reply::Int(1));
}

fn wrong_type_everywhere(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["SET", "str", "v"]);
    for cmd in [
        vec!["ZADD", "str", "1", "a"],
        vec!["ZINCRBY", "str", "1", "a"],
        vec!["ZREM", "str", "a"],
        vec!["ZREMRANGEBYRANK", "str", "0", "1"],
        vec!["ZREMRANGEBYSCORE", "str", "0", "1"],
        vec!["ZREMRANGEBYLEX", "str", "-", "+"],
        vec!["ZPOPMIN", "str"],
        vec!["ZPOPMAX", "str", "2"],
        vec!["ZMPOP", "1", "str", "MIN"],
        vec!["BZPOPMIN", "str", "0"],
        vec!["BZMPOP", "0", "1", "str", "MAX"],
        vec!["ZRANGESTORE", "d", "str", "0", "-1"],
        vec!["ZUNIONSTORE", "d", "1", "str"],
        vec!["ZINTERSTORE", "d", "2", "nokey", "str"],
        vec!["ZDIFFSTORE", "d", "1", "str"],
    ] {
        assert_eq!(t.w(&cmd), err(WRONGTYPE), "{cmd:?}");
    }
    for cmd in [
        vec!["ZCARD", "str"],
        vec!["ZSCORE", "str", "a"],
        vec!["ZMSCORE", "str", "a"],
        vec!["ZRANK", "str", "a"],
        vec!["ZREVRANK", "str", "a", "WITHSCORE"],
        vec!["ZCOUNT", "str", "0", "1"],
        vec!["ZLEXCOUNT", "str", "-", "+"],
        vec!["ZRANGE", "str", "0", "-1"],
        vec!["ZRANGEBYSCORE", "str", "0", "1"],
        vec!["ZRANGEBYLEX", "str", "-", "+"],
        vec!["ZRANDMEMBER", "str"],
        vec!["ZRANDMEMBER", "str", "2", "WITHSCORES"],
        vec!["ZUNION", "1", "str"],
        vec!["ZINTER", "2", "nokey", "str"],
        vec!["ZDIFF", "1", "str"],
        vec!["ZINTERCARD", "1", "str"],
        vec!["ZSCAN", "str", "0"],
    ] {
        assert_eq!(t.r(&cmd), err(WRONGTYPE), "{cmd:?}");
    }
    assert_eq!(t.r(&["TYPE", "d"]), Reply::Simple("none".into()));
}

fn ranges_by_rank_score_and_lex(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&[
        "ZADD", "z", "1", "a", "2", "b", "2", "c", "3", "d", "+inf", "e", "-inf", "f",
    ]);
    assert_eq!(
        t.r(&["ZRANGE", "z", "0", "-1"]),
        bulks(&["f", "a", "b", "c", "d", "e"])
    );
    assert_eq!(t.r(&["ZRANGE", "z", "1", "2"]), bulks(&["a", "b"]));
    assert_eq!(t.r(&["ZRANGE", "z", "-2", "100"]), bulks(&["d", "e"]));
    assert_eq!(t.r(&["ZRANGE", "z", "4", "2"]), bulks(&[]));
    assert_eq!(t.r(&["ZRANGE", "z", "0", "0", "REV"]), bulks(&["e"]));
    assert_eq!(t.r(&["ZREVRANGE", "z", "0", "1"]), bulks(&["e", "d"]));
    assert_eq!(
        t.r(&["ZRANGE", "z", "1", "2", "WITHSCORES"]),
        pairs(&[("a", 1.0), ("b", 2.0)])
    );
    assert_eq!(
        t.r(&["ZRANGE", "z", "(1", "+inf", "BYSCORE"]),
        bulks(&["b", "c", "d", "e"])
    );
    assert_eq!(
        t.r(&["ZRANGE", "z", "(2", "(+inf", "BYSCORE", "WITHSCORES"]),
        pairs(&[("d", 3.0)])
    );
    assert_eq!(
        t.r(&["ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", "1", "2"]),
        bulks(&["d", "c"])
    );
    assert_eq!(t.r(&["ZRANGEBYSCORE", "z", "2", "2"]), bulks(&["b", "c"]));
    assert_eq!(t.r(&["ZRANGEBYSCORE", "z", "(2", "2"]), bulks(&[]));
    assert_eq!(t.r(&["ZRANGEBYSCORE", "z", "3", "1"]), bulks(&[]));
    assert_eq!(
        t.r(&["ZRANGEBYSCORE", "z", "-inf", "2", "LIMIT", "1", "-1"]),
        bulks(&["a", "b", "c"])
    );
    assert_eq!(
        t.r(&["ZRANGEBYSCORE", "z", "-inf", "2", "LIMIT", "-1", "5"]),
        bulks(&[])
    );
    assert_eq!(
        t.r(&["ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "0", "0"]),
        bulks(&[])
    );
    assert_eq!(
        t.r(&["ZREVRANGEBYSCORE", "z", "2", "1", "WITHSCORES"]),
        pairs(&[("c", 2.0), ("b", 2.0), ("a", 1.0)])
    );
    // strtod quirks: leading spaces pass, an empty bound is 0.
    assert_eq!(t.r(&["ZRANGEBYSCORE", "z", " 1", "1"]), bulks(&["a"]));
    assert_eq!(t.r(&["ZCOUNT", "z", "", "(1"]), Reply::Int(0));

    t.w(&[
        "ZADD", "lex", "0", "a", "0", "b", "0", "bb", "0", "c", "0", "d",
    ]);
    assert_eq!(
        t.r(&["ZRANGEBYLEX", "lex", "-", "+"]),
        bulks(&["a", "b", "bb", "c", "d"])
    );
    assert_eq!(
        t.r(&["ZRANGEBYLEX", "lex", "[b", "(c"]),
        bulks(&["b", "bb"])
    );
    assert_eq!(
        t.r(&["ZRANGEBYLEX", "lex", "(b", "[c"]),
        bulks(&["bb", "c"])
    );
    assert_eq!(t.r(&["ZRANGEBYLEX", "lex", "+", "-"]), bulks(&[]));
    assert_eq!(t.r(&["ZRANGEBYLEX", "lex", "[c", "[b"]), bulks(&[]));
    assert_eq!(
        t.r(&["ZRANGE", "lex", "[c", "-", "BYLEX", "REV", "LIMIT", "1", "2"]),
        bulks(&["bb", "b"])
    );
    assert_eq!(t.r(&["ZREVRANGEBYLEX", "lex", "+", "(c"]), bulks(&["d"]));
    assert_eq!(t.r(&["ZLEXCOUNT", "lex", "(a", "[bb"]), Reply::Int(2));
    assert_eq!(t.r(&["ZLEXCOUNT", "lex", "-", "+"]), Reply::Int(5));
    assert_eq!(t.r(&["ZCOUNT", "z", "-inf", "+inf"]), Reply::Int(6));
    assert_eq!(t.r(&["ZCOUNT", "z", "(-inf", "(+inf"]), Reply::Int(4));
    assert_eq!(t.r(&["ZCOUNT", "z", "(2", "(2"]), Reply::Int(0));

    // Ranks.
    assert_eq!(t.r(&["ZRANK", "z", "f"]), Reply::Int(0));
    assert_eq!(t.r(&["ZRANK", "z", "c"]), Reply::Int(3));
    assert_eq!(t.r(&["ZREVRANK", "z", "c"]), Reply::Int(2));
    assert_eq!(
        t.r(&["ZRANK", "z", "d", "WITHSCORE"]),
        arr(vec![Reply::Int(4), Reply::Double(3.0)])
    );
    assert_eq!(t.r(&["ZRANK", "z", "zz"]), Reply::Nil);
    assert_eq!(t.r(&["ZRANK", "z", "zz", "withscore"]), Reply::NilArray);
    assert_eq!(t.r(&["ZRANK", "nokey", "a", "WITHSCORE"]), Reply::NilArray);
    assert_eq!(t.r(&["ZRANK", "nokey", "a"]), Reply::Nil);

    // Missing key.
    assert_eq!(t.r(&["ZRANGE", "nokey", "0", "-1"]), bulks(&[]));
    assert_eq!(t.r(&["ZCOUNT", "nokey", "0", "1"]), Reply::Int(0));
    assert_eq!(
        t.r(&["ZMSCORE", "nokey", "a", "b"]),
        arr(vec![Reply::Nil, Reply::Nil])
    );
    assert_eq!(
        t.r(&["ZMSCORE", "z", "a", "zz", "e"]),
        arr(vec![
            Reply::Double(1.0),
            Reply::Nil,
            Reply::Double(f64::INFINITY)
        ])
    );
}

fn range_errors(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["ZADD", "z", "1", "a"]);
    let limit_err = err(
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
    );
    assert_eq!(
        t.r(&["ZRANGE", "z", "0", "1", "LIMIT", "0", "1"]),
        limit_err
    );
    assert_eq!(
        t.r(&["ZREVRANGE", "z", "0", "1", "LIMIT", "0", "1"]),
        limit_err
    );
    // Redis tests the count against its -1 sentinel.
    assert_eq!(
        t.r(&["ZRANGE", "z", "0", "1", "LIMIT", "5", "-1"]),
        bulks(&["a"])
    );
    let ws_err = err("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    assert_eq!(
        t.r(&["ZRANGE", "z", "-", "+", "BYLEX", "WITHSCORES"]),
        ws_err
    );
    assert_eq!(t.r(&["ZRANGEBYLEX", "z", "-", "+", "WITHSCORES"]), ws_err);
    let float_err = err("ERR min or max is not a float");
    for (lo, hi) in [
        ("x", "1"),
        ("1", "(x"),
        ("nan", "1"),
        ("1 ", "2"),
        ("((1", "2"),
    ] {
        assert_eq!(t.r(&["ZRANGEBYSCORE", "z", lo, hi]), float_err, "{lo} {hi}");
        assert_eq!(t.r(&["ZCOUNT", "z", lo, hi]), float_err);
        assert_eq!(t.w(&["ZREMRANGEBYSCORE", "z", lo, hi]), float_err);
    }
    let lex_err = err("ERR min or max not valid string range item");
    for (lo, hi) in [("a", "+"), ("-", "b"), ("", "+"), ("--", "+"), ("[a", "++")] {
        assert_eq!(t.r(&["ZRANGEBYLEX", "z", lo, hi]), lex_err, "{lo} {hi}");
        assert_eq!(t.r(&["ZLEXCOUNT", "z", lo, hi]), lex_err);
        assert_eq!(t.w(&["ZREMRANGEBYLEX", "z", lo, hi]), lex_err);
    }
    // Range errors come before the key lookup.
    assert_eq!(t.r(&["ZCOUNT", "nokey", "x", "1"]), float_err);
    let int_err = err("ERR value is not an integer or out of range");
    assert_eq!(t.r(&["ZRANGE", "z", "a", "1"]), int_err);
    assert_eq!(t.w(&["ZREMRANGEBYRANK", "z", "0", "1.5"]), int_err);
    assert_eq!(
        t.r(&["ZRANGE", "z", "0", "1", "BYSCORE", "LIMIT", "x", "1"]),
        int_err
    );
    for bad in [
        vec!["ZRANGE", "z", "0", "1", "BYSCORE", "BYLEX"],
        vec!["ZRANGE", "z", "0", "1", "REV", "REV"],
        vec!["ZRANGE", "z", "0", "1", "LIMIT", "1"],
        vec!["ZRANGEBYSCORE", "z", "0", "1", "REV"],
        vec!["ZRANGEBYSCORE", "z", "0", "1", "BYLEX"],
        vec!["ZREVRANGE", "z", "0", "1", "BYSCORE"],
        vec!["ZRANGE", "z", "0", "1", "FOO"],
    ] {
        assert_eq!(t.r(&bad), err("ERR syntax error"), "{bad:?}");
    }
    assert_eq!(
        t.w(&["ZRANGESTORE", "d", "z", "0", "1", "WITHSCORES"]),
        err("ERR syntax error")
    );
    assert_eq!(
        t.r(&["ZRANK", "z", "a", "WITHSCORE", "x"]),
        err("ERR wrong number of arguments for 'zrank' command")
    );
    assert_eq!(
        t.r(&["ZREVRANK", "z", "a", "WITHSCORES"]),
        err("ERR syntax error")
    );
}

fn removals_and_pops(kind: EngineKind) {
    let mut t = T::new(kind);
    let add = |t: &mut T| {
        t.w(&[
            "ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d", "5", "e",
        ]);
    };
    add(&mut t);
    assert_eq!(t.w(&["ZREM", "z", "a", "a", "zz"]), Reply::Int(1));
    assert_eq!(t.w(&["ZREMRANGEBYRANK", "z", "-2", "-1"]), Reply::Int(2));
    assert_eq!(t.r(&["ZRANGE", "z", "0", "-1"]), bulks(&["b", "c"]));
    assert_eq!(t.w(&["ZREMRANGEBYRANK", "z", "5", "10"]), Reply::Int(0));
    assert_eq!(t.w(&["ZREMRANGEBYRANK", "z", "0", "-1"]), Reply::Int(2));
    assert_eq!(t.r(&["EXISTS", "z"]), Reply::Int(0));
    add(&mut t);
    assert_eq!(t.w(&["ZREMRANGEBYSCORE", "z", "(1", "3"]), Reply::Int(2));
    assert_eq!(t.w(&["ZREMRANGEBYLEX", "z", "[d", "+"]), Reply::Int(2));
    assert_eq!(
        t.r(&["ZRANGE", "z", "0", "-1", "WITHSCORES"]),
        pairs(&[("a", 1.0)])
    );
    assert_eq!(
        t.w(&["ZREMRANGEBYSCORE", "z", "-inf", "+inf"]),
        Reply::Int(1)
    );
    assert_eq!(t.r(&["EXISTS", "z"]), Reply::Int(0));
    assert_eq!(
        t.w(&["ZREMRANGEBYSCORE", "z", "-inf", "+inf"]),
        Reply::Int(0)
    );

    add(&mut t);
    assert_eq!(
        t.w(&["ZPOPMIN", "z"]),
        arr(vec![bulk("a"), Reply::Double(1.0)])
    );
    assert_eq!(
        t.w(&["ZPOPMAX", "z", "2"]),
        pairs(&[("e", 5.0), ("d", 4.0)])
    );
    assert_eq!(t.w(&["ZPOPMIN", "z", "0"]), pairs(&[]));
    assert_eq!(
        t.w(&["ZPOPMIN", "z", "10"]),
        pairs(&[("b", 2.0), ("c", 3.0)])
    );
    assert_eq!(t.r(&["EXISTS", "z"]), Reply::Int(0));
    assert_eq!(t.w(&["ZPOPMIN", "z"]), arr(vec![]));
    assert_eq!(t.w(&["ZPOPMIN", "z", "1", "2"]), err("ERR syntax error"));
    assert_eq!(
        t.w(&["ZPOPMAX", "z", "-1"]),
        err("ERR value is out of range, must be positive")
    );

    // ZMPOP / BZMPOP / BZPOPMIN: first non-empty key.
    t.w(&["ZADD", "z2", "1", "x", "2", "y", "3", "w"]);
    assert_eq!(
        t.w(&["ZMPOP", "2", "z", "z2", "MAX", "COUNT", "2"]),
        arr(vec![
            bulk("z2"),
            arr(vec![
                arr(vec![bulk("w"), Reply::Double(3.0)]),
                arr(vec![bulk("y"), Reply::Double(2.0)]),
            ])
        ])
    );
    assert_eq!(t.w(&["ZMPOP", "1", "z", "MIN"]), Reply::NilArray);
    assert_eq!(
        t.w(&["BZPOPMIN", "z", "z2", "0"]),
        arr(vec![bulk("z2"), bulk("x"), Reply::Double(1.0)])
    );
    assert_eq!(t.r(&["EXISTS", "z2"]), Reply::Int(0));
    assert_eq!(t.w(&["BZPOPMAX", "z", "z2", "0.5"]), Reply::NilArray);
    assert_eq!(t.w(&["BZMPOP", "1", "1", "z2", "MIN"]), Reply::NilArray);
    t.w(&["ZADD", "z3", "7", "q"]);
    assert_eq!(
        t.w(&["BZMPOP", "0", "2", "z", "z3", "MIN", "COUNT", "5"]),
        arr(vec![
            bulk("z3"),
            arr(vec![arr(vec![bulk("q"), Reply::Double(7.0)])])
        ])
    );

    for (cmd, want) in [
        (
            vec!["ZMPOP", "0", "z", "MIN"],
            "ERR numkeys should be greater than 0",
        ),
        (
            vec!["ZMPOP", "x", "z", "MIN"],
            "ERR numkeys should be greater than 0",
        ),
        (vec!["ZMPOP", "3", "z", "MIN"], "ERR syntax error"),
        (vec!["ZMPOP", "1", "z", "MID"], "ERR syntax error"),
        (
            vec!["ZMPOP", "1", "z", "MIN", "COUNT", "0"],
            "ERR count should be greater than 0",
        ),
        (
            vec!["ZMPOP", "1", "z", "MIN", "COUNT", "1", "COUNT", "1"],
            "ERR syntax error",
        ),
        (vec!["ZMPOP", "1", "z", "MIN", "COUNT"], "ERR syntax error"),
        (
            vec!["BZPOPMIN", "z", "x"],
            "ERR timeout is not a float or out of range",
        ),
        (vec!["BZPOPMIN", "z", "-1"], "ERR timeout is negative"),
        (vec!["BZPOPMAX", "z", "inf"], "ERR timeout is out of range"),
        (
            vec!["BZMPOP", "-0.5", "1", "z", "MIN"],
            "ERR timeout is negative",
        ),
        (
            vec!["BZMPOP", "nan", "1", "z", "MIN"],
            "ERR timeout is not a float or out of range",
        ),
        // numkeys is checked before the timeout, as Redis does.
        (
            vec!["BZMPOP", "x", "0", "z", "MIN"],
            "ERR numkeys should be greater than 0",
        ),
    ] {
        assert_eq!(t.w(&cmd), err(want), "{cmd:?}");
    }
    // A tiny negative timeout rounds up to 0 (block forever), as in Redis.
    assert_eq!(t.w(&["BZPOPMIN", "z", "-0.0001"]), Reply::NilArray);
}

fn rangestore_and_algebra(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["ZADD", "a", "1", "x", "2", "y", "3", "z"]);
    t.w(&["ZADD", "b", "10", "y", "20", "z", "30", "w"]);
    t.w(&["SADD", "s", "z", "w", "v"]);
    t.w(&["SET", "dst", "string", "PX", "100"]);
    assert_eq!(
        t.w(&["ZRANGESTORE", "dst", "a", "(1", "+inf", "BYSCORE"]),
        Reply::Int(2)
    );
    t.now += 1000;
    assert_eq!(
        t.r(&["ZRANGE", "dst", "0", "-1", "WITHSCORES"]),
        pairs(&[("y", 2.0), ("z", 3.0)])
    );
    assert_eq!(t.w(&["ZRANGESTORE", "dst", "a", "5", "9"]), Reply::Int(0));
    assert_eq!(t.r(&["EXISTS", "dst"]), Reply::Int(0));
    assert_eq!(
        t.w(&[
            "ZRANGESTORE",
            "dst",
            "a",
            "[y",
            "-",
            "BYLEX",
            "REV",
            "LIMIT",
            "0",
            "1"
        ]),
        Reply::Int(1)
    );
    assert_eq!(t.r(&["ZRANGE", "dst", "0", "-1"]), bulks(&["y"]));
    // Reverse lex ranges are written max first: "+" as the minimum selects nothing.
    assert_eq!(
        t.w(&["ZRANGESTORE", "d2", "a", "[y", "+", "BYLEX", "REV"]),
        Reply::Int(0)
    );
    assert_eq!(
        t.r(&["ZRANGE", "dst", "0", "-1", "WITHSCORES"]),
        pairs(&[("y", 2.0)])
    );

    assert_eq!(
        t.r(&["ZUNION", "3", "a", "b", "s", "WITHSCORES"]),
        pairs(&[
            ("v", 1.0),
            ("x", 1.0),
            ("y", 12.0),
            ("z", 24.0),
            ("w", 31.0)
        ])
    );
    assert_eq!(
        t.r(&["ZINTER", "2", "a", "b", "WEIGHTS", "2", "0.5", "WITHSCORES"]),
        pairs(&[("y", 9.0), ("z", 16.0)])
    );
    assert_eq!(
        t.r(&[
            "ZINTER",
            "3",
            "a",
            "b",
            "s",
            "AGGREGATE",
            "MAX",
            "WITHSCORES"
        ]),
        pairs(&[("z", 20.0)])
    );
    assert_eq!(
        t.r(&["ZUNION", "2", "a", "b", "AGGREGATE", "MIN"]),
        bulks(&["x", "y", "z", "w"])
    );
    assert_eq!(
        t.r(&["ZDIFF", "2", "a", "b", "WITHSCORES"]),
        pairs(&[("x", 1.0)])
    );
    assert_eq!(t.r(&["ZDIFF", "2", "a", "a"]), bulks(&[]));
    assert_eq!(t.r(&["ZDIFF", "2", "a", "nokey"]), bulks(&["x", "y", "z"]));
    assert_eq!(t.r(&["ZINTER", "2", "a", "nokey"]), bulks(&[]));
    assert_eq!(t.r(&["ZINTERCARD", "2", "a", "b"]), Reply::Int(2));
    assert_eq!(
        t.r(&["ZINTERCARD", "2", "a", "b", "LIMIT", "1"]),
        Reply::Int(1)
    );
    // inf * 0 is NaN, which Redis turns into 0.
    t.w(&["ZADD", "inf", "+inf", "x"]);
    assert_eq!(
        t.r(&["ZUNION", "1", "inf", "WEIGHTS", "0", "WITHSCORES"]),
        pairs(&[("x", 0.0)])
    );
    // Redis corrects NaN (inf * 0) only for the first input's product: MIN keeps the
    // score when the other product is NaN, SUM turns NaN into 0.
    t.w(&["ZADD", "one", "1", "x"]);
    assert_eq!(
        t.r(&[
            "ZINTER",
            "2",
            "one",
            "inf",
            "WEIGHTS",
            "1",
            "0",
            "AGGREGATE",
            "MIN",
            "WITHSCORES"
        ]),
        pairs(&[("x", 1.0)])
    );
    assert_eq!(
        t.r(&[
            "ZINTER",
            "2",
            "one",
            "inf",
            "WEIGHTS",
            "1",
            "0",
            "WITHSCORES"
        ]),
        pairs(&[("x", 0.0)])
    );
    // Inputs are combined smallest first, which decides sums with infinities.
    t.w(&["ZADD", "ninf", "-inf", "x", "1", "y"]);
    t.w(&["ZADD", "ones", "1", "x", "1", "y", "1", "z"]);
    assert_eq!(
        t.r(&["ZUNION", "3", "ones", "ninf", "inf", "WITHSCORES"]),
        pairs(&[("x", 1.0), ("z", 1.0), ("y", 2.0)])
    );
    assert_eq!(t.w(&["ZUNIONSTORE", "u", "2", "a", "s"]), Reply::Int(5));
    assert_eq!(
        t.r(&["ZRANGE", "u", "0", "-1", "WITHSCORES"]),
        pairs(&[("v", 1.0), ("w", 1.0), ("x", 1.0), ("y", 2.0), ("z", 4.0)])
    );
    assert_eq!(t.w(&["ZINTERSTORE", "u", "2", "a", "nokey"]), Reply::Int(0));
    assert_eq!(t.r(&["EXISTS", "u"]), Reply::Int(0));
    assert_eq!(t.w(&["ZDIFFSTORE", "a", "2", "a", "s"]), Reply::Int(2));
    assert_eq!(t.r(&["ZRANGE", "a", "0", "-1"]), bulks(&["x", "y"]));

    for (cmd, want) in [
        (
            vec!["ZUNION", "0", "a"],
            "ERR at least 1 input key is needed for 'zunion' command",
        ),
        (
            vec!["ZINTERSTORE", "d", "-1", "a"],
            "ERR at least 1 input key is needed for 'zinterstore' command",
        ),
        (
            vec!["ZINTERCARD", "0", "a"],
            "ERR at least 1 input key is needed for 'zintercard' command",
        ),
        (
            vec!["ZUNION", "x", "a"],
            "ERR value is not an integer or out of range",
        ),
        (vec!["ZUNION", "3", "a", "b"], "ERR syntax error"),
        (
            vec!["ZUNION", "2", "a", "b", "WEIGHTS", "1"],
            "ERR syntax error",
        ),
        (
            vec!["ZUNION", "2", "a", "b", "WEIGHTS", "1", "x"],
            "ERR weight value is not a float",
        ),
        (
            vec!["ZUNION", "1", "a", "AGGREGATE", "AVG"],
            "ERR syntax error",
        ),
        (vec!["ZDIFF", "1", "a", "WEIGHTS", "1"], "ERR syntax error"),
        (
            vec!["ZDIFF", "1", "a", "AGGREGATE", "SUM"],
            "ERR syntax error",
        ),
        (
            vec!["ZINTERCARD", "1", "a", "WITHSCORES"],
            "ERR syntax error",
        ),
        (
            vec!["ZINTERCARD", "1", "a", "LIMIT", "-1"],
            "ERR LIMIT can't be negative",
        ),
    ] {
        // Through the log: some of these are writes, and reads work there too.
        assert_eq!(t.w(&cmd), err(want), "{cmd:?}");
    }
    assert_eq!(
        t.w(&["ZUNIONSTORE", "d", "1", "a", "WITHSCORES"]),
        err("ERR syntax error")
    );
}

fn zrandmember_properties(kind: EngineKind) {
    let mut t = T::new(kind);
    let mut add = vec!["ZADD".to_string(), "z".to_string()];
    for i in 0..15 {
        add.push(i.to_string());
        add.push(format!("m{i:02}"));
    }
    let add: Vec<&str> = add.iter().map(String::as_str).collect();
    t.w(&add);
    assert_eq!(t.r(&["ZRANDMEMBER", "nokey"]), Reply::Nil);
    assert_eq!(t.r(&["ZRANDMEMBER", "nokey", "2"]), bulks(&[]));
    assert_eq!(t.r(&["ZRANDMEMBER", "z", "0"]), bulks(&[]));
    let Reply::Pairs(ps) = t.r(&["ZRANDMEMBER", "z", "5", "WITHSCORES"]) else {
        panic!("pairs expected")
    };
    assert_eq!(ps.len(), 5);
    let mut seen = BTreeSet::new();
    for (m, s) in &ps {
        let m = text(m);
        let i: usize = m[1..].parse().expect("index");
        assert_eq!(*s, Reply::Double(i as f64), "score of {m}");
        assert!(seen.insert(m));
    }
    let Reply::Pairs(ps) = t.r(&["ZRANDMEMBER", "z", "-40", "WITHSCORES"]) else {
        panic!("pairs expected")
    };
    assert_eq!(ps.len(), 40);
    let Reply::Array(all) = t.r(&["ZRANDMEMBER", "z", "100"]) else {
        panic!("array expected")
    };
    assert_eq!(all.len(), 15);
    assert_eq!(
        t.r(&["ZRANDMEMBER", "z", "1", "WITHSCORE"]),
        err("ERR syntax error")
    );
    assert_eq!(
        t.r(&["ZRANDMEMBER", "z", "5000000000000000000", "WITHSCORES"]),
        err("ERR value is out of range")
    );
    assert_eq!(
        t.r(&["ZRANDMEMBER", "z", "-9223372036854775808"]),
        err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
    );
}

fn zscan_walks_everything(kind: EngineKind) {
    let mut t = T::new(kind);
    let mut add = vec!["ZADD".to_string(), "z".to_string()];
    for i in 0..33 {
        add.push(format!("{}.5", 40 - i));
        add.push(format!("m{i:02}"));
    }
    let add: Vec<&str> = add.iter().map(String::as_str).collect();
    t.w(&add);
    let want: Vec<(String, String)> = (0..33)
        .map(|i| (format!("m{i:02}"), format!("{}.5", 40 - i)))
        .collect();
    for count in ["1", "5", "100"] {
        assert_eq!(zscan_all(&t, "z", count, None), want, "COUNT {count}");
    }
    let ones: Vec<_> = want
        .iter()
        .filter(|(m, _)| m.ends_with('1'))
        .cloned()
        .collect();
    assert_eq!(zscan_all(&t, "z", "3", Some("*1")), ones);
    assert_eq!(
        t.r(&["ZSCAN", "nokey", "0"]),
        arr(vec![bulk("0"), arr(vec![])])
    );
    assert_eq!(t.r(&["ZSCAN", "z", "-1"]), err("ERR invalid cursor"));
    assert_eq!(
        t.r(&["ZSCAN", "z", "0", "COUNT", "0"]),
        err("ERR syntax error")
    );
}

fn large_zset_ranges_stay_correct(kind: EngineKind) {
    // Enough members that ranges cross many storage chunks.
    let mut t = T::new(kind);
    let n = 3000;
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut add = vec!["ZADD".to_string(), "big".to_string()];
        for i in chunk {
            add.push(((i * 7919) % n).to_string());
            add.push(format!("m{i:05}"));
        }
        let add: Vec<&str> = add.iter().map(String::as_str).collect();
        t.w(&add);
    }
    assert_eq!(t.r(&["ZCARD", "big"]), Reply::Int(n as i64));
    // Score s belongs to exactly one member because 7919 is coprime with n.
    let member_of_score = |s: usize| {
        (0..n)
            .find(|i| (i * 7919) % n == s)
            .map(|i| format!("m{i:05}"))
    };
    let m = member_of_score(1234).expect("member");
    assert_eq!(t.r(&["ZRANK", "big", &m]), Reply::Int(1234));
    assert_eq!(
        t.r(&["ZREVRANK", "big", &m]),
        Reply::Int((n - 1 - 1234) as i64)
    );
    let want: Vec<String> = (2000..2005).filter_map(member_of_score).collect();
    let want: Vec<&str> = want.iter().map(String::as_str).collect();
    assert_eq!(t.r(&["ZRANGE", "big", "2000", "2004"]), bulks(&want));
    assert_eq!(
        t.r(&["ZRANGEBYSCORE", "big", "2000", "(2005"]),
        bulks(&want)
    );
    assert_eq!(t.r(&["ZCOUNT", "big", "(100", "200"]), Reply::Int(100));
    assert_eq!(
        t.w(&["ZREMRANGEBYSCORE", "big", "0", "(1000"]),
        Reply::Int(1000)
    );
    assert_eq!(t.r(&["ZCARD", "big"]), Reply::Int((n - 1000) as i64));
    assert_eq!(t.r(&["ZRANK", "big", &m]), Reply::Int(234));
}

fn empty_member_and_expired_keys(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["ZADD", "z", "0", "", "0", "a", "0", "\u{0}"]);
    assert_eq!(
        t.r(&["ZRANGEBYLEX", "z", "[", "+"]),
        bulks(&["", "\u{0}", "a"])
    );
    assert_eq!(t.r(&["ZRANGEBYLEX", "z", "(", "+"]), bulks(&["\u{0}", "a"]));
    assert_eq!(t.r(&["ZRANK", "z", ""]), Reply::Int(0));
    assert_eq!(t.r(&["ZSCORE", "z", ""]), Reply::Double(0.0));
    assert_eq!(t.w(&["ZREM", "z", ""]), Reply::Int(1));
    assert_eq!(t.r(&["ZCARD", "z"]), Reply::Int(2));
    // An expired string is gone for ZADD: no WRONGTYPE, a fresh sorted set.
    t.w(&["SET", "k", "v", "PX", "10"]);
    assert_eq!(t.w(&["ZADD", "k", "1", "a"]), err(WRONGTYPE));
    t.now += 20;
    assert_eq!(t.w(&["ZADD", "k", "1", "a"]), Reply::Int(1));
    assert_eq!(
        t.r(&["ZRANGE", "k", "0", "-1", "WITHSCORES"]),
        pairs(&[("a", 1.0)])
    );
}

all_engines!(
    empty_member_and_expired_keys,
    zadd_options_and_errors,
    wrong_type_everywhere,
    ranges_by_rank_score_and_lex,
    range_errors,
    removals_and_pops,
    rangestore_and_algebra,
    zrandmember_properties,
    zscan_walks_everything,
    large_zset_ranges_stay_correct,
    zset_model,
    zset_choices_are_deterministic,
);

// ---------------------------------------------------------------------------------------
// Model-based property test.
// ---------------------------------------------------------------------------------------

const KEYS: [&str; 5] = ["z1", "z2", "z3", "s", "str"];
const MEMBERS: [&str; 6] = ["a", "b", "bb", "c", "d", "e"];
/// Lex bounds use the members plus strings between and around them.
const LEX: [&str; 8] = ["a", "b", "ba", "bb", "c", "cz", "e", "f"];
const SCORES: [(&str, f64); 9] = [
    ("-inf", f64::NEG_INFINITY),
    ("-2.5", -2.5),
    ("-1", -1.0),
    ("0", 0.0),
    ("1", 1.0),
    ("1.5", 1.5),
    ("2", 2.0),
    ("3", 3.0),
    ("+inf", f64::INFINITY),
];
const WEIGHTS: [(&str, f64); 5] = [
    ("1", 1.0),
    ("2", 2.0),
    ("0", 0.0),
    ("-1", -1.0),
    ("0.5", 0.5),
];

#[derive(Debug, Clone, Copy)]
struct SBound {
    ix: usize,
    excl: bool,
}

impl SBound {
    fn render(self) -> String {
        format!("{}{}", if self.excl { "(" } else { "" }, SCORES[self.ix].0)
    }
    fn v(self) -> f64 {
        SCORES[self.ix].1
    }
}

#[derive(Debug, Clone, Copy)]
enum LBound {
    Min,
    Max,
    Incl(usize),
    Excl(usize),
}

impl LBound {
    fn render(self) -> String {
        match self {
            LBound::Min => "-".into(),
            LBound::Max => "+".into(),
            LBound::Incl(i) => format!("[{}", LEX[i]),
            LBound::Excl(i) => format!("({}", LEX[i]),
        }
    }
    fn above_min(self, m: &str) -> bool {
        match self {
            LBound::Min => true,
            LBound::Max => false,
            LBound::Incl(i) => m >= LEX[i],
            LBound::Excl(i) => m > LEX[i],
        }
    }
    fn below_max(self, m: &str) -> bool {
        match self {
            LBound::Max => true,
            LBound::Min => false,
            LBound::Incl(i) => m <= LEX[i],
            LBound::Excl(i) => m < LEX[i],
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum RKind {
    Rank(i8, i8),
    Score(SBound, SBound),
    Lex(LBound, LBound),
}

#[derive(Debug, Clone)]
struct RangeOp {
    kind: RKind,
    rev: bool,
    limit: Option<(i8, i8)>,
    withscores: bool,
    /// Use the legacy command name (ZREVRANGE, ZRANGEBYSCORE, …) instead of ZRANGE.
    legacy: bool,
}

#[derive(Debug, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Agg {
    Sum,
    Min,
    Max,
}

#[derive(Debug, Clone)]
enum Op {
    Zadd(usize, AddFlags, Vec<(usize, usize)>),
    Zincrby(usize, usize, usize),
    Zrem(usize, Vec<usize>),
    Zcard(usize),
    Zscore(usize, usize),
    Zmscore(usize, Vec<usize>),
    Zrank(usize, usize, bool, bool),
    Zcount(usize, SBound, SBound),
    Zlexcount(usize, LBound, LBound),
    Zrange(usize, RangeOp),
    Zrangestore(usize, usize, RangeOp),
    Zremrange(usize, RKind),
    Zpop(usize, bool, Option<u8>),
    Zmpop(Vec<usize>, bool, Option<u8>),
    Bzpop(Vec<usize>, bool),
    Algebra {
        op: u8,
        dst: Option<usize>,
        keys: Vec<usize>,
        weights: Option<Vec<usize>>,
        agg: Option<Agg>,
        withscores: bool,
    },
    Zintercard(Vec<usize>, u8),
    Zrandmember(usize, Option<i8>, bool),
    Zscan(usize, u8),
    Sadd(Vec<usize>),
    SetString(usize),
    Del(usize),
}

fn zkey() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0..3usize, 1 => Just(3usize), 1 => Just(4usize)]
}

fn mem() -> impl Strategy<Value = usize> {
    0..MEMBERS.len()
}

fn score_ix() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(0usize), 8 => 1..8usize, 1 => Just(8usize)]
}

fn sbound() -> impl Strategy<Value = SBound> {
    (score_ix(), any::<bool>()).prop_map(|(ix, excl)| SBound { ix, excl })
}

fn lbound() -> impl Strategy<Value = LBound> {
    prop_oneof![
        1 => Just(LBound::Min),
        1 => Just(LBound::Max),
        3 => (0..LEX.len()).prop_map(LBound::Incl),
        3 => (0..LEX.len()).prop_map(LBound::Excl),
    ]
}

fn rkind() -> impl Strategy<Value = RKind> {
    prop_oneof![
        (-7..7i8, -7..7i8).prop_map(|(a, b)| RKind::Rank(a, b)),
        (sbound(), sbound()).prop_map(|(a, b)| RKind::Score(a, b)),
        (lbound(), lbound()).prop_map(|(a, b)| RKind::Lex(a, b)),
    ]
}

fn range_op() -> impl Strategy<Value = RangeOp> {
    (
        rkind(),
        any::<bool>(),
        prop::option::weighted(0.4, (-1..4i8, -2..4i8)),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(kind, rev, limit, withscores, legacy)| RangeOp {
            kind,
            rev,
            limit,
            withscores,
            legacy,
        })
}

fn flags() -> impl Strategy<Value = AddFlags> {
    // Mostly plain adds; options sometimes, combinations (including invalid ones) rarely.
    prop_oneof![
        6 => Just([false; 6]),
        4 => (0..6usize).prop_map(|i| {
            let mut f = [false; 6];
            f[i] = true;
            f
        }),
        1 => prop::array::uniform6(any::<bool>()),
    ]
    .prop_map(|f| AddFlags {
        nx: f[0],
        xx: f[1],
        gt: f[2],
        lt: f[3],
        ch: f[4],
        incr: f[5],
    })
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let keys = || prop::collection::vec(zkey(), 1..4);
    prop_oneof![
        8 => (zkey(), flags(), prop::collection::vec((score_ix(), mem()), 1..4))
            .prop_map(|(k, f, p)| Op::Zadd(k, f, p)),
        2 => (zkey(), score_ix(), mem()).prop_map(|(k, s, m)| Op::Zincrby(k, s, m)),
        2 => (zkey(), prop::collection::vec(mem(), 1..3)).prop_map(|(k, m)| Op::Zrem(k, m)),
        1 => zkey().prop_map(Op::Zcard),
        1 => (zkey(), mem()).prop_map(|(k, m)| Op::Zscore(k, m)),
        1 => (zkey(), prop::collection::vec(mem(), 1..4)).prop_map(|(k, m)| Op::Zmscore(k, m)),
        2 => (zkey(), mem(), any::<bool>(), any::<bool>()).prop_map(|(k, m, r, w)| Op::Zrank(k, m, r, w)),
        2 => (zkey(), sbound(), sbound()).prop_map(|(k, a, b)| Op::Zcount(k, a, b)),
        2 => (zkey(), lbound(), lbound()).prop_map(|(k, a, b)| Op::Zlexcount(k, a, b)),
        8 => (zkey(), range_op()).prop_map(|(k, r)| Op::Zrange(k, r)),
        2 => (zkey(), zkey(), range_op()).prop_map(|(d, s, r)| Op::Zrangestore(d, s, r)),
        2 => (zkey(), rkind()).prop_map(|(k, r)| Op::Zremrange(k, r)),
        2 => (zkey(), any::<bool>(), prop::option::of(0..4u8)).prop_map(|(k, x, c)| Op::Zpop(k, x, c)),
        1 => (keys(), any::<bool>(), prop::option::of(1..4u8)).prop_map(|(k, x, c)| Op::Zmpop(k, x, c)),
        1 => (keys(), any::<bool>()).prop_map(|(k, x)| Op::Bzpop(k, x)),
        4 => (
            0..3u8,
            prop::option::weighted(0.3, zkey()),
            keys(),
            prop::option::weighted(0.4, prop::collection::vec(0..WEIGHTS.len(), 3)),
            prop::option::weighted(0.5, prop_oneof![Just(Agg::Sum), Just(Agg::Min), Just(Agg::Max)]),
            any::<bool>(),
        )
            .prop_map(|(op, dst, keys, w, agg, withscores)| {
                let weights = w.map(|w| w[..keys.len()].to_vec());
                Op::Algebra { op, dst, keys, weights, agg, withscores }
            }),
        1 => (keys(), 0..3u8).prop_map(|(k, l)| Op::Zintercard(k, l)),
        2 => (zkey(), prop::option::of(-5..5i8), any::<bool>()).prop_map(|(k, c, w)| Op::Zrandmember(k, c, w)),
        1 => (zkey(), 1..4u8).prop_map(|(k, c)| Op::Zscan(k, c)),
        1 => prop::collection::vec(mem(), 1..4).prop_map(Op::Sadd),
        1 => zkey().prop_map(Op::SetString),
        1 => zkey().prop_map(Op::Del),
    ]
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str,
    Set(BTreeSet<String>),
    Z(BTreeMap<String, f64>),
}

type Model = BTreeMap<&'static str, Val>;

fn norm(s: f64) -> f64 {
    if s == 0.0 {
        0.0
    } else {
        s
    }
}

fn zget<'a>(m: &'a Model, k: &str) -> Result<Option<&'a BTreeMap<String, f64>>, Reply> {
    match m.get(k) {
        None => Ok(None),
        Some(Val::Z(z)) => Ok(Some(z)),
        Some(_) => Err(err(WRONGTYPE)),
    }
}

fn put_z(m: &mut Model, k: &'static str, z: BTreeMap<String, f64>) {
    if z.is_empty() {
        m.remove(k);
    } else {
        m.insert(k, Val::Z(z));
    }
}

/// Members ordered by (score, member), as Redis ranks them.
fn ranked(z: &BTreeMap<String, f64>) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = z.iter().map(|(m, s)| (m.clone(), *s)).collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    v
}

fn items_reply(items: &[(String, f64)], withscores: bool) -> Reply {
    if withscores {
        Reply::Pairs(
            items
                .iter()
                .map(|(m, s)| (Reply::Bulk(b(m)), Reply::Double(*s)))
                .collect(),
        )
    } else {
        Reply::Array(items.iter().map(|(m, _)| Reply::Bulk(b(m))).collect())
    }
}

fn in_score(s: f64, lo: SBound, hi: SBound) -> bool {
    let above = if lo.excl { s > lo.v() } else { s >= lo.v() };
    let below = if hi.excl { s < hi.v() } else { s <= hi.v() };
    above && below
}

fn clamp(start: i64, end: i64, len: i64) -> Option<(usize, usize)> {
    let mut start = if start < 0 { start + len } else { start };
    let mut end = if end < 0 { end + len } else { end };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        return None;
    }
    if end >= len {
        end = len - 1;
    }
    Some((start as usize, end as usize))
}

/// The model's answer to a range selection (offset/limit already validated).
fn model_range(
    z: &BTreeMap<String, f64>,
    kind: RKind,
    rev: bool,
    offset: i64,
    limit: i64,
) -> Vec<(String, f64)> {
    let mut all = ranked(z);
    match kind {
        RKind::Rank(a, b) => {
            if rev {
                all.reverse();
            }
            match clamp(a.into(), b.into(), all.len() as i64) {
                Some((s, e)) => all[s..=e].to_vec(),
                None => Vec::new(),
            }
        }
        RKind::Score(..) | RKind::Lex(..) => {
            let mut sel: Vec<(String, f64)> = match kind {
                RKind::Score(lo, hi) => all
                    .into_iter()
                    .filter(|(_, s)| in_score(*s, lo, hi))
                    .collect(),
                RKind::Lex(lo, hi) => {
                    // BYLEX walks members in bytewise order.
                    let mut v: Vec<(String, f64)> = z
                        .iter()
                        .filter(|(m, _)| lo.above_min(m) && hi.below_max(m))
                        .map(|(m, s)| (m.clone(), *s))
                        .collect();
                    v.sort_by(|a, b| a.0.cmp(&b.0));
                    v
                }
                RKind::Rank(..) => Vec::new(),
            };
            if rev {
                sel.reverse();
            }
            if offset < 0 {
                return Vec::new();
            }
            let it = sel.into_iter().skip(offset as usize);
            if limit < 0 {
                it.collect()
            } else {
                it.take(limit as usize).collect()
            }
        }
    }
}

/// Renders a range op as a command; returns args and the parse error Redis would give.
fn render_range(
    name_modern: &str,
    prefix: &[&str],
    r: &RangeOp,
    store: bool,
) -> (Vec<String>, Option<Reply>) {
    let mut args: Vec<String> = Vec::new();
    let (lo, hi) = match r.kind {
        RKind::Rank(a, b) => (a.to_string(), b.to_string()),
        RKind::Score(a, b) => (a.render(), b.render()),
        RKind::Lex(a, b) => (a.render(), b.render()),
    };
    let is_rank = matches!(r.kind, RKind::Rank(..));
    let is_lex = matches!(r.kind, RKind::Lex(..));
    // Reverse score/lex ranges are written max first.
    let (first, second) = if r.rev && !is_rank {
        (hi, lo)
    } else {
        (lo, hi)
    };
    // Forward index ranges have no legacy name (ZRANGE is the legacy form).
    let legacy = r.legacy && !store && (r.rev || !is_rank);
    if legacy {
        let name = match (r.kind, r.rev) {
            (RKind::Rank(..), _) => "ZREVRANGE",
            (RKind::Score(..), false) => "ZRANGEBYSCORE",
            (RKind::Score(..), true) => "ZREVRANGEBYSCORE",
            (RKind::Lex(..), false) => "ZRANGEBYLEX",
            (RKind::Lex(..), true) => "ZREVRANGEBYLEX",
        };
        args.push(name.into());
        args.extend(prefix.iter().map(|s| s.to_string()));
        args.extend([first, second]);
    } else {
        args.push(name_modern.into());
        args.extend(prefix.iter().map(|s| s.to_string()));
        args.extend([first, second]);
        match r.kind {
            RKind::Score(..) => args.push("BYSCORE".into()),
            RKind::Lex(..) => args.push("BYLEX".into()),
            RKind::Rank(..) => {}
        }
        if r.rev {
            args.push("REV".into());
        }
    }
    if let Some((o, c)) = r.limit {
        args.extend(["LIMIT".into(), o.to_string(), c.to_string()]);
    }
    if r.withscores && !store {
        args.push("WITHSCORES".into());
    }
    let limit_given = r.limit.is_some_and(|(_, c)| c != -1);
    let error = if limit_given && is_rank {
        Some(err(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ))
    } else if r.withscores && !store && is_lex {
        Some(err(
            "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
        ))
    } else {
        None
    };
    (args, error)
}

/// Applies ZADD semantics to the model; returns the reply.
fn model_zadd(m: &mut Model, key: &'static str, f: AddFlags, pairs: &[(f64, &str)]) -> Reply {
    if f.nx && f.xx {
        return err("ERR XX and NX options at the same time are not compatible");
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return err("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && pairs.len() > 1 {
        return err("ERR INCR option supports a single increment-element pair");
    }
    let cur = match zget(m, key) {
        Err(e) => return e,
        Ok(c) => c.cloned(),
    };
    if cur.is_none() && f.xx {
        return if f.incr { Reply::Nil } else { Reply::Int(0) };
    }
    let mut z = cur.unwrap_or_default();
    let (mut added, mut updated, mut processed, mut last) = (0, 0, 0, 0.0);
    for (score, member) in pairs {
        match z.get(*member).copied() {
            Some(c) => {
                if f.nx {
                    continue;
                }
                let mut s = *score;
                if f.incr {
                    s += c;
                    if s.is_nan() {
                        return err("ERR resulting score is not a number (NaN)");
                    }
                }
                if (f.lt && s >= c) || (f.gt && s <= c) {
                    continue;
                }
                let s = norm(s);
                processed += 1;
                last = s;
                if s != c {
                    z.insert(member.to_string(), s);
                    updated += 1;
                }
            }
            None => {
                if f.xx {
                    continue;
                }
                z.insert(member.to_string(), norm(*score));
                added += 1;
                processed += 1;
                last = norm(*score);
            }
        }
    }
    put_z(m, key, z);
    if f.incr {
        if processed > 0 {
            Reply::Double(last)
        } else {
            Reply::Nil
        }
    } else {
        Reply::Int(if f.ch { added + updated } else { added })
    }
}

/// An algebra input as the model sees it.
#[derive(Clone)]
struct MSrc {
    key: &'static str,
    z: Option<BTreeMap<String, f64>>,
    weight: f64,
}

fn aggregate(t: &mut f64, v: f64, agg: Agg) {
    match agg {
        Agg::Sum => {
            *t += v;
            if t.is_nan() {
                *t = 0.0;
            }
        }
        Agg::Min => {
            if v < *t {
                *t = v
            }
        }
        Agg::Max => {
            if v > *t {
                *t = v
            }
        }
    }
}

fn fix(v: f64) -> f64 {
    if v.is_nan() {
        0.0
    } else {
        v
    }
}

/// Redis's zunionInterDiffGenericCommand on the model.
fn model_algebra(op: u8, srcs: &[MSrc], agg: Agg) -> Vec<(String, f64)> {
    let mut srcs = srcs.to_vec();
    if op != 2 {
        srcs.sort_by_key(|s| s.z.as_ref().map_or(0, BTreeMap::len));
    }
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    match op {
        0 => {
            for s in &srcs {
                for (m, v) in s.z.iter().flatten() {
                    let sc = fix(v * s.weight);
                    match out.get_mut(m) {
                        Some(t) => aggregate(t, sc, agg),
                        None => {
                            out.insert(m.clone(), sc);
                        }
                    }
                }
            }
        }
        1 => {
            if let Some((first, rest)) = srcs.split_first() {
                'm: for (m, v) in first.z.iter().flatten() {
                    let mut sc = fix(v * first.weight);
                    for o in rest {
                        let val = if o.key == first.key {
                            Some(*v)
                        } else {
                            o.z.as_ref().and_then(|z| z.get(m).copied())
                        };
                        match val {
                            Some(x) => aggregate(&mut sc, x * o.weight, agg),
                            None => continue 'm,
                        }
                    }
                    out.insert(m.clone(), sc);
                }
            }
        }
        _ => {
            if let Some((first, rest)) = srcs.split_first() {
                if !rest.iter().any(|o| o.z.is_some() && o.key == first.key) {
                    for (m, v) in first.z.iter().flatten() {
                        if !rest
                            .iter()
                            .any(|o| o.z.as_ref().is_some_and(|z| z.contains_key(m)))
                        {
                            out.insert(m.clone(), *v);
                        }
                    }
                }
            }
        }
    }
    let mut v: Vec<(String, f64)> = out.into_iter().map(|(m, s)| (m, norm(s))).collect();
    v.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    v
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn pop_model(z: &mut BTreeMap<String, f64>, n: usize, max: bool) -> Vec<(String, f64)> {
    let mut r = ranked(z);
    if max {
        r.reverse();
    }
    r.truncate(n);
    for (m, _) in &r {
        z.remove(m);
    }
    r
}

/// ZMPOP / BZPOPMIN / BZPOPMAX against the model.
fn mpop_step(
    t: &mut T,
    m: &mut Model,
    ks: &[usize],
    max: bool,
    count: Option<u8>,
    blocking: bool,
) -> Result<(), TestCaseError> {
    let n = ks.len().to_string();
    let c = count.map(|c| c.to_string());
    let mut args: Vec<&str> = Vec::new();
    if blocking {
        args.push(if max { "BZPOPMAX" } else { "BZPOPMIN" });
        args.extend(ks.iter().map(|&k| KEYS[k]));
        args.push("0");
    } else {
        args.extend(["ZMPOP", n.as_str()]);
        args.extend(ks.iter().map(|&k| KEYS[k]));
        args.push(if max { "MAX" } else { "MIN" });
        if let Some(c) = &c {
            args.extend(["COUNT", c.as_str()]);
        }
    }
    let got = t.w(&args);
    let mut want = Reply::NilArray;
    for &k in ks {
        match zget(m, KEYS[k]) {
            Err(e) => {
                want = e;
                break;
            }
            Ok(None) => continue,
            Ok(Some(z)) => {
                let mut z = z.clone();
                let popped = pop_model(&mut z, count.map_or(1, usize::from), max);
                put_z(m, KEYS[k], z);
                want = if blocking {
                    let (x, s) = &popped[0];
                    arr(vec![bulk(KEYS[k]), Reply::Bulk(b(x)), Reply::Double(*s)])
                } else {
                    arr(vec![
                        bulk(KEYS[k]),
                        arr(popped
                            .iter()
                            .map(|(x, s)| arr(vec![Reply::Bulk(b(x)), Reply::Double(*s)]))
                            .collect()),
                    ])
                };
                break;
            }
        }
    }
    prop_assert_eq!(got, want, "{:?}", args);
    Ok(())
}

fn step(t: &mut T, m: &mut Model, op: &Op, via_log: bool) -> Result<(), TestCaseError> {
    let read = |t: &mut T, args: &[&str]| if via_log { t.w(args) } else { t.r(args) };
    match op {
        Op::Zadd(k, f, ps) => {
            let key = KEYS[*k];
            let mut args = vec!["ZADD", key];
            for (on, w) in [
                (f.nx, "NX"),
                (f.xx, "XX"),
                (f.gt, "GT"),
                (f.lt, "LT"),
                (f.ch, "CH"),
                (f.incr, "INCR"),
            ] {
                if on {
                    args.push(w);
                }
            }
            for (s, mm) in ps {
                args.extend([SCORES[*s].0, MEMBERS[*mm]]);
            }
            let got = t.w(&args);
            let pairs: Vec<(f64, &str)> = ps
                .iter()
                .map(|(s, mm)| (SCORES[*s].1, MEMBERS[*mm]))
                .collect();
            let want = model_zadd(m, key, *f, &pairs);
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Zincrby(k, s, mm) => {
            let key = KEYS[*k];
            let got = t.w(&["ZINCRBY", key, SCORES[*s].0, MEMBERS[*mm]]);
            let f = AddFlags {
                nx: false,
                xx: false,
                gt: false,
                lt: false,
                ch: false,
                incr: true,
            };
            let want = model_zadd(m, key, f, &[(SCORES[*s].1, MEMBERS[*mm])]);
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Zrem(k, ms) => {
            let key = KEYS[*k];
            let mut args = vec!["ZREM", key];
            args.extend(ms.iter().map(|&i| MEMBERS[i]));
            let got = t.w(&args);
            let want = match zget(m, key) {
                Err(e) => e,
                Ok(None) => Reply::Int(0),
                Ok(Some(z)) => {
                    let mut z = z.clone();
                    let n = ms
                        .iter()
                        .filter(|&&i| z.remove(MEMBERS[i]).is_some())
                        .count();
                    put_z(m, key, z);
                    Reply::Int(n as i64)
                }
            };
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Zcard(k) => {
            let got = read(t, &["ZCARD", KEYS[*k]]);
            let want = zget(m, KEYS[*k])
                .map_or_else(|e| e, |z| Reply::Int(z.map_or(0, |z| z.len() as i64)));
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Zscore(k, mm) => {
            let got = read(t, &["ZSCORE", KEYS[*k], MEMBERS[*mm]]);
            let want = zget(m, KEYS[*k]).map_or_else(
                |e| e,
                |z| {
                    z.and_then(|z| z.get(MEMBERS[*mm]))
                        .map_or(Reply::Nil, |s| Reply::Double(*s))
                },
            );
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Zmscore(k, ms) => {
            let mut args = vec!["ZMSCORE", KEYS[*k]];
            args.extend(ms.iter().map(|&i| MEMBERS[i]));
            let got = read(t, &args);
            let want = zget(m, KEYS[*k]).map_or_else(
                |e| e,
                |z| {
                    arr(ms
                        .iter()
                        .map(|&i| {
                            z.and_then(|z| z.get(MEMBERS[i]))
                                .map_or(Reply::Nil, |s| Reply::Double(*s))
                        })
                        .collect())
                },
            );
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Zrank(k, mm, rev, ws) => {
            let mut args = vec![
                if *rev { "ZREVRANK" } else { "ZRANK" },
                KEYS[*k],
                MEMBERS[*mm],
            ];
            if *ws {
                args.push("WITHSCORE");
            }
            let got = read(t, &args);
            let none = if *ws { Reply::NilArray } else { Reply::Nil };
            let want = match zget(m, KEYS[*k]) {
                Err(e) => e,
                Ok(None) => none,
                Ok(Some(z)) => {
                    let mut r = ranked(z);
                    if *rev {
                        r.reverse();
                    }
                    match r.iter().position(|(x, _)| x == MEMBERS[*mm]) {
                        None => none,
                        Some(i) if *ws => arr(vec![Reply::Int(i as i64), Reply::Double(r[i].1)]),
                        Some(i) => Reply::Int(i as i64),
                    }
                }
            };
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Zcount(k, lo, hi) => {
            let got = read(t, &["ZCOUNT", KEYS[*k], &lo.render(), &hi.render()]);
            let want = zget(m, KEYS[*k]).map_or_else(
                |e| e,
                |z| {
                    Reply::Int(z.map_or(0, |z| {
                        z.values().filter(|s| in_score(**s, *lo, *hi)).count() as i64
                    }))
                },
            );
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Zlexcount(k, lo, hi) => {
            let got = read(t, &["ZLEXCOUNT", KEYS[*k], &lo.render(), &hi.render()]);
            let want = zget(m, KEYS[*k]).map_or_else(
                |e| e,
                |z| {
                    Reply::Int(z.map_or(0, |z| {
                        z.keys()
                            .filter(|x| lo.above_min(x) && hi.below_max(x))
                            .count() as i64
                    }))
                },
            );
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Zrange(k, r) => {
            let (args, error) = render_range("ZRANGE", &[KEYS[*k]], r, false);
            let got = read(t, &as_strs(&args));
            let want = match error {
                Some(e) => e,
                None => match zget(m, KEYS[*k]) {
                    Err(e) => e,
                    Ok(z) => {
                        let (o, c) = r.limit.map_or((0, -1), |(o, c)| (o.into(), c.into()));
                        let items =
                            z.map_or_else(Vec::new, |z| model_range(z, r.kind, r.rev, o, c));
                        items_reply(&items, r.withscores)
                    }
                },
            };
            prop_assert_eq!(got, want, "{:?}", args);
        }
        Op::Zrangestore(d, s, r) => {
            let (args, error) = render_range("ZRANGESTORE", &[KEYS[*d], KEYS[*s]], r, true);
            let got = t.w(&as_strs(&args));
            let want = match error {
                Some(e) => e,
                None => match zget(m, KEYS[*s]) {
                    Err(e) => e,
                    Ok(z) => {
                        let (o, c) = r.limit.map_or((0, -1), |(o, c)| (o.into(), c.into()));
                        let items =
                            z.map_or_else(Vec::new, |z| model_range(z, r.kind, r.rev, o, c));
                        let n = items.len();
                        put_z(m, KEYS[*d], items.into_iter().collect());
                        Reply::Int(n as i64)
                    }
                },
            };
            prop_assert_eq!(got, want, "{:?}", args);
        }
        Op::Zremrange(k, kind) => {
            let key = KEYS[*k];
            let (name, lo, hi) = match kind {
                RKind::Rank(a, b) => ("ZREMRANGEBYRANK", a.to_string(), b.to_string()),
                RKind::Score(a, b) => ("ZREMRANGEBYSCORE", a.render(), b.render()),
                RKind::Lex(a, b) => ("ZREMRANGEBYLEX", a.render(), b.render()),
            };
            let got = t.w(&[name, key, &lo, &hi]);
            let want = match zget(m, key) {
                Err(e) => e,
                Ok(None) => Reply::Int(0),
                Ok(Some(z)) => {
                    let gone = model_range(z, *kind, false, 0, -1);
                    let mut z = z.clone();
                    for (x, _) in &gone {
                        z.remove(x);
                    }
                    put_z(m, key, z);
                    Reply::Int(gone.len() as i64)
                }
            };
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Zpop(k, max, count) => {
            let key = KEYS[*k];
            let c = count.map(|c| c.to_string());
            let mut args = vec![if *max { "ZPOPMAX" } else { "ZPOPMIN" }, key];
            if let Some(c) = &c {
                args.push(c);
            }
            let got = t.w(&args);
            let want = match zget(m, key) {
                Err(e) => e,
                Ok(None) => items_reply(&[], count.is_some()),
                Ok(Some(z)) => {
                    let mut z = z.clone();
                    let popped = pop_model(&mut z, count.map_or(1, usize::from), *max);
                    put_z(m, key, z);
                    match count {
                        None => arr(popped
                            .iter()
                            .flat_map(|(x, s)| [Reply::Bulk(b(x)), Reply::Double(*s)])
                            .collect()),
                        Some(_) => items_reply(&popped, true),
                    }
                }
            };
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::Zmpop(ks, max, count) => mpop_step(t, m, ks, *max, *count, false)?,
        Op::Bzpop(ks, max) => mpop_step(t, m, ks, *max, None, true)?,
        Op::Algebra {
            op: which,
            dst,
            keys,
            weights,
            agg,
            withscores,
        } => {
            let names = ["ZUNION", "ZINTER", "ZDIFF"];
            let n = keys.len().to_string();
            let mut args: Vec<&str> = Vec::new();
            let store = dst.is_some();
            match dst {
                Some(d) => args.extend([
                    ["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"][*which as usize],
                    KEYS[*d],
                ]),
                None => args.push(names[*which as usize]),
            }
            args.push(&n);
            args.extend(keys.iter().map(|&k| KEYS[k]));
            if let Some(w) = weights {
                args.push("WEIGHTS");
                args.extend(w.iter().map(|&i| WEIGHTS[i].0));
            }
            if let Some(a) = agg {
                args.extend([
                    "AGGREGATE",
                    match a {
                        Agg::Sum => "SUM",
                        Agg::Min => "MIN",
                        Agg::Max => "MAX",
                    },
                ]);
            }
            if *withscores {
                args.push("WITHSCORES");
            }
            let got = if store { t.w(&args) } else { read(t, &args) };
            // Types are checked before options, as in Redis.
            let mut srcs = Vec::new();
            let mut want = None;
            for (i, &k) in keys.iter().enumerate() {
                let z = match m.get(KEYS[k]) {
                    None => None,
                    Some(Val::Z(z)) => Some(z.clone()),
                    Some(Val::Set(s)) => Some(s.iter().map(|x| (x.clone(), 1.0)).collect()),
                    Some(Val::Str) => {
                        want = Some(err(WRONGTYPE));
                        break;
                    }
                };
                let weight = weights.as_ref().map_or(1.0, |w| WEIGHTS[w[i]].1);
                srcs.push(MSrc {
                    key: KEYS[k],
                    z,
                    weight,
                });
            }
            let syntax =
                (*which == 2 && (weights.is_some() || agg.is_some())) || (store && *withscores);
            let want = match want {
                Some(e) => e,
                None if syntax => err("ERR syntax error"),
                None => {
                    let items = model_algebra(*which, &srcs, agg.unwrap_or(Agg::Sum));
                    match dst {
                        Some(d) => {
                            let n = items.len();
                            put_z(m, KEYS[*d], items.into_iter().collect());
                            Reply::Int(n as i64)
                        }
                        None => items_reply(&items, *withscores),
                    }
                }
            };
            prop_assert_eq!(got, want, "{:?}", args);
        }
        Op::Zintercard(ks, limit) => {
            let n = ks.len().to_string();
            let l = limit.to_string();
            let mut args = vec!["ZINTERCARD", n.as_str()];
            args.extend(ks.iter().map(|&k| KEYS[k]));
            args.extend(["LIMIT", l.as_str()]);
            let got = read(t, &args);
            let mut srcs = Vec::new();
            let mut want = None;
            for &k in ks {
                let z = match m.get(KEYS[k]) {
                    None => None,
                    Some(Val::Z(z)) => Some(z.clone()),
                    Some(Val::Set(s)) => Some(s.iter().map(|x| (x.clone(), 1.0)).collect()),
                    Some(Val::Str) => {
                        want = Some(err(WRONGTYPE));
                        break;
                    }
                };
                srcs.push(MSrc {
                    key: KEYS[k],
                    z,
                    weight: 1.0,
                });
            }
            let want = want.unwrap_or_else(|| {
                let c = model_algebra(1, &srcs, Agg::Sum).len();
                Reply::Int(if *limit == 0 {
                    c
                } else {
                    c.min(*limit as usize)
                } as i64)
            });
            prop_assert_eq!(got, want, "{:?}", args);
        }
        Op::Zrandmember(k, count, ws) => {
            let key = KEYS[*k];
            let c = count.map(|c| c.to_string());
            let mut args = vec!["ZRANDMEMBER", key];
            if let Some(c) = &c {
                args.push(c);
                if *ws {
                    args.push("WITHSCORES");
                }
            }
            let got = read(t, &args);
            let ws = *ws && count.is_some();
            match zget(m, key) {
                Err(e) => prop_assert_eq!(got, e),
                Ok(None) => prop_assert_eq!(
                    got,
                    if count.is_some() {
                        items_reply(&[], ws)
                    } else {
                        Reply::Nil
                    }
                ),
                Ok(Some(z)) => match count {
                    None => {
                        let Reply::Bulk(x) = &got else {
                            return Err(TestCaseError::fail(format!("{op:?} gave {got:?}")));
                        };
                        prop_assert!(z.contains_key(&String::from_utf8(x.to_vec()).expect("utf8")));
                    }
                    Some(c) => {
                        let picked: Vec<(String, Option<Reply>)> = match &got {
                            Reply::Pairs(ps) if ws => {
                                ps.iter().map(|(a, s)| (text(a), Some(s.clone()))).collect()
                            }
                            Reply::Array(v) if !ws => v.iter().map(|a| (text(a), None)).collect(),
                            other => {
                                return Err(TestCaseError::fail(format!("{op:?} gave {other:?}")))
                            }
                        };
                        for (x, s) in &picked {
                            let Some(score) = z.get(x) else {
                                return Err(TestCaseError::fail(format!("{x} not in the zset")));
                            };
                            if let Some(s) = s {
                                prop_assert_eq!(s, &Reply::Double(*score));
                            }
                        }
                        if *c >= 0 {
                            prop_assert_eq!(picked.len(), (*c as usize).min(z.len()));
                            let d: BTreeSet<_> = picked.iter().map(|p| &p.0).collect();
                            prop_assert_eq!(d.len(), picked.len());
                        } else {
                            prop_assert_eq!(picked.len(), c.unsigned_abs() as usize);
                        }
                    }
                },
            }
        }
        Op::Zscan(k, count) => {
            let key = KEYS[*k];
            match zget(m, key) {
                Err(e) => prop_assert_eq!(t.r(&["ZSCAN", key, "0"]), e),
                Ok(z) => {
                    let got = zscan_all(t, key, &count.to_string(), None);
                    let want: Vec<(String, String)> = z
                        .map(|z| z.iter().map(|(x, s)| (x.clone(), format_f64(*s))).collect())
                        .unwrap_or_default();
                    prop_assert_eq!(got, want, "{:?}", op);
                }
            }
        }
        Op::Sadd(ms) => {
            let mut args = vec!["SADD", "s"];
            args.extend(ms.iter().map(|&i| MEMBERS[i]));
            let got = t.w(&args);
            let want = match m.get("s") {
                Some(Val::Set(s)) => {
                    let mut s = s.clone();
                    let before = s.len();
                    s.extend(ms.iter().map(|&i| MEMBERS[i].to_string()));
                    let n = s.len() - before;
                    m.insert("s", Val::Set(s));
                    Reply::Int(n as i64)
                }
                None => {
                    let s: BTreeSet<String> = ms.iter().map(|&i| MEMBERS[i].to_string()).collect();
                    let n = s.len();
                    m.insert("s", Val::Set(s));
                    Reply::Int(n as i64)
                }
                Some(_) => err(WRONGTYPE),
            };
            prop_assert_eq!(got, want, "{:?}", op);
        }
        Op::SetString(k) => {
            prop_assert_eq!(t.w(&["SET", KEYS[*k], "v"]), Reply::Ok);
            m.insert(KEYS[*k], Val::Str);
        }
        Op::Del(k) => {
            let got = t.w(&["DEL", KEYS[*k]]);
            prop_assert_eq!(
                got,
                Reply::Int(i64::from(m.remove(KEYS[*k]).is_some())),
                "{:?}",
                op
            );
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

fn zset_model(kind: EngineKind) {
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
        // The final state agrees key by key, including the whole ranking.
        for key in KEYS {
            let ty = match model.get(key) {
                None => "none",
                Some(Val::Str) => "string",
                Some(Val::Set(_)) => "set",
                Some(Val::Z(z)) => {
                    prop_assert_eq!(
                        t.r(&["ZRANGE", key, "0", "-1", "WITHSCORES"]),
                        items_reply(&ranked(z), true)
                    );
                    prop_assert_eq!(t.r(&["ZCARD", key]), Reply::Int(z.len() as i64));
                    "zset"
                }
            };
            prop_assert_eq!(t.r(&["TYPE", key]), Reply::Simple(ty.into()));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn zset_choices_are_deterministic(kind: EngineKind) {
    let run = || {
        let mut t = T::new(kind);
        let mut add = vec!["ZADD".to_string(), "z".to_string()];
        for i in 0..40 {
            add.push((i % 7).to_string());
            add.push(format!("m{i}"));
        }
        t.w(&as_strs(&add));
        (0..10)
            .flat_map(|_| {
                [
                    t.w(&["ZRANDMEMBER", "z", "-3", "WITHSCORES"]),
                    t.w(&["ZRANDMEMBER", "z", "3"]),
                    t.w(&["ZRANDMEMBER", "z"]),
                ]
            })
            .collect::<Vec<_>>()
    };
    let first = run();
    assert_eq!(first, run());
    let singles: BTreeSet<String> = first
        .iter()
        .skip(2)
        .step_by(3)
        .map(|r| format!("{r:?}"))
        .collect();
    assert!(singles.len() > 3, "random picks should vary: {singles:?}");
}
