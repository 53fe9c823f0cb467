//! Hash commands: a model-based property test against a BTreeMap model comparing every
//! reply, targeted edge cases and error texts, HRANDFIELD shapes and HSCAN guarantees.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{b, T};
use keel_engine::Reply;
use keel_storage::EngineKind;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const KEYS: [&str; 3] = ["h1", "h2", "s"];
/// Index of the key that holds a string.
const STR: usize = 2;
const FIELDS: [&str; 5] = ["f0", "f1", "f2", "f3", "f4"];
const VALUES: [&str; 6] = ["1", "-3", "x", "2.5", "", "10"];

fn err(s: &str) -> Reply {
    Reply::err(s)
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(b(s))
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

#[derive(Debug, Clone)]
enum Op {
    Set(usize, Vec<(usize, usize)>, bool),
    SetNx(usize, usize, usize),
    Get(usize, usize),
    MGet(usize, Vec<usize>),
    Del(usize, Vec<usize>),
    Len(usize),
    StrLen(usize, usize),
    Exists(usize, usize),
    Keys(usize),
    Vals(usize),
    GetAll(usize),
    IncrBy(usize, usize, i64),
    /// Increment in halves, so every result is exact in binary.
    IncrByFloat(usize, usize, i64),
    DelKey(usize),
}

fn key() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0..2usize, 1 => Just(STR)]
}

fn field() -> impl Strategy<Value = usize> {
    0..FIELDS.len()
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (key(), prop::collection::vec((field(), 0..VALUES.len()), 1..4), any::<bool>())
            .prop_map(|(k, pairs, hmset)| Op::Set(k, pairs, hmset)),
        2 => (key(), field(), 0..VALUES.len()).prop_map(|(k, f, v)| Op::SetNx(k, f, v)),
        2 => (key(), field()).prop_map(|(k, f)| Op::Get(k, f)),
        1 => (key(), prop::collection::vec(field(), 1..4)).prop_map(|(k, f)| Op::MGet(k, f)),
        3 => (key(), prop::collection::vec(field(), 1..4)).prop_map(|(k, f)| Op::Del(k, f)),
        1 => key().prop_map(Op::Len),
        1 => (key(), field()).prop_map(|(k, f)| Op::StrLen(k, f)),
        1 => (key(), field()).prop_map(|(k, f)| Op::Exists(k, f)),
        1 => key().prop_map(Op::Keys),
        1 => key().prop_map(Op::Vals),
        1 => key().prop_map(Op::GetAll),
        3 => (key(), field(), -5i64..6).prop_map(|(k, f, n)| Op::IncrBy(k, f, n)),
        2 => (key(), field(), -7i64..8).prop_map(|(k, f, n)| Op::IncrByFloat(k, f, n)),
        1 => (0..2usize).prop_map(Op::DelKey),
    ]
}

fn half_text(halves: i64) -> String {
    if halves % 2 == 0 {
        (halves / 2).to_string()
    } else {
        format!("{}", halves as f64 / 2.0)
    }
}

impl Op {
    fn args(&self) -> Vec<String> {
        let s = |x: &str| x.to_string();
        match self {
            Op::Set(k, pairs, hmset) => {
                let mut a = vec![s(if *hmset { "HMSET" } else { "HSET" }), s(KEYS[*k])];
                for (f, v) in pairs {
                    a.extend([s(FIELDS[*f]), s(VALUES[*v])]);
                }
                a
            }
            Op::SetNx(k, f, v) => vec![s("HSETNX"), s(KEYS[*k]), s(FIELDS[*f]), s(VALUES[*v])],
            Op::Get(k, f) => vec![s("HGET"), s(KEYS[*k]), s(FIELDS[*f])],
            Op::MGet(k, fs) => {
                let mut a = vec![s("HMGET"), s(KEYS[*k])];
                a.extend(fs.iter().map(|f| s(FIELDS[*f])));
                a
            }
            Op::Del(k, fs) => {
                let mut a = vec![s("HDEL"), s(KEYS[*k])];
                a.extend(fs.iter().map(|f| s(FIELDS[*f])));
                a
            }
            Op::Len(k) => vec![s("HLEN"), s(KEYS[*k])],
            Op::StrLen(k, f) => vec![s("HSTRLEN"), s(KEYS[*k]), s(FIELDS[*f])],
            Op::Exists(k, f) => vec![s("HEXISTS"), s(KEYS[*k]), s(FIELDS[*f])],
            Op::Keys(k) => vec![s("HKEYS"), s(KEYS[*k])],
            Op::Vals(k) => vec![s("HVALS"), s(KEYS[*k])],
            Op::GetAll(k) => vec![s("HGETALL"), s(KEYS[*k])],
            Op::IncrBy(k, f, n) => vec![s("HINCRBY"), s(KEYS[*k]), s(FIELDS[*f]), n.to_string()],
            Op::IncrByFloat(k, f, h) => {
                vec![s("HINCRBYFLOAT"), s(KEYS[*k]), s(FIELDS[*f]), half_text(*h)]
            }
            Op::DelKey(k) => vec![s("DEL"), s(KEYS[*k])],
        }
    }

    fn read_only(&self) -> bool {
        matches!(
            self,
            Op::Get(..)
                | Op::MGet(..)
                | Op::Len(_)
                | Op::StrLen(..)
                | Op::Exists(..)
                | Op::Keys(_)
                | Op::Vals(_)
                | Op::GetAll(_)
        )
    }
}

/// Reference model: hashes by key index (key STR holds a string).
#[derive(Default)]
struct Model {
    hashes: BTreeMap<usize, BTreeMap<String, String>>,
}

/// Exact decimal text of a float that is a multiple of 0.5.
fn model_float_text(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Model {
    fn get(&self, k: usize) -> Option<&BTreeMap<String, String>> {
        self.hashes.get(&k)
    }

    fn apply(&mut self, op: &Op) -> Reply {
        let key = match op {
            Op::Set(k, ..)
            | Op::SetNx(k, ..)
            | Op::Get(k, _)
            | Op::MGet(k, _)
            | Op::Del(k, _)
            | Op::Len(k)
            | Op::StrLen(k, _)
            | Op::Exists(k, _)
            | Op::Keys(k)
            | Op::Vals(k)
            | Op::GetAll(k)
            | Op::IncrBy(k, ..)
            | Op::IncrByFloat(k, ..)
            | Op::DelKey(k) => *k,
        };
        if key == STR {
            return err(WRONGTYPE);
        }
        match op {
            Op::Set(k, pairs, hmset) => {
                let h = self.hashes.entry(*k).or_default();
                let mut added = 0;
                for (f, v) in pairs {
                    if h.insert(FIELDS[*f].into(), VALUES[*v].into()).is_none() {
                        added += 1;
                    }
                }
                if *hmset {
                    Reply::Ok
                } else {
                    Reply::Int(added)
                }
            }
            Op::SetNx(k, f, v) => {
                let h = self.hashes.entry(*k).or_default();
                if h.contains_key(FIELDS[*f]) {
                    Reply::Int(0)
                } else {
                    h.insert(FIELDS[*f].into(), VALUES[*v].into());
                    Reply::Int(1)
                }
            }
            Op::Get(k, f) => self
                .get(*k)
                .and_then(|h| h.get(FIELDS[*f]))
                .map_or(Reply::Nil, |v| bulk(v)),
            Op::MGet(k, fs) => Reply::Array(
                fs.iter()
                    .map(|f| {
                        self.get(*k)
                            .and_then(|h| h.get(FIELDS[*f]))
                            .map_or(Reply::Nil, |v| bulk(v))
                    })
                    .collect(),
            ),
            Op::Del(k, fs) => {
                let Some(h) = self.hashes.get_mut(k) else {
                    return Reply::Int(0);
                };
                let n = fs
                    .iter()
                    .filter(|f| h.remove(FIELDS[**f]).is_some())
                    .count();
                if h.is_empty() {
                    self.hashes.remove(k);
                }
                Reply::Int(n as i64)
            }
            Op::Len(k) => Reply::Int(self.get(*k).map_or(0, |h| h.len()) as i64),
            Op::StrLen(k, f) => Reply::Int(
                self.get(*k)
                    .and_then(|h| h.get(FIELDS[*f]))
                    .map_or(0, |v| v.len()) as i64,
            ),
            Op::Exists(k, f) => Reply::Int(i64::from(
                self.get(*k).is_some_and(|h| h.contains_key(FIELDS[*f])),
            )),
            Op::Keys(k) => Reply::Array(
                self.get(*k)
                    .map(|h| h.keys().map(|f| bulk(f)).collect())
                    .unwrap_or_default(),
            ),
            Op::Vals(k) => Reply::Array(
                self.get(*k)
                    .map(|h| h.values().map(|v| bulk(v)).collect())
                    .unwrap_or_default(),
            ),
            Op::GetAll(k) => Reply::Map(
                self.get(*k)
                    .map(|h| h.iter().map(|(f, v)| (bulk(f), bulk(v))).collect())
                    .unwrap_or_default(),
            ),
            Op::IncrBy(k, f, n) => {
                let cur = match self.get(*k).and_then(|h| h.get(FIELDS[*f])) {
                    Some(v) => match v.parse::<i64>() {
                        Ok(x) if !v.starts_with('+') => x,
                        _ => return err("ERR hash value is not an integer"),
                    },
                    None => 0,
                };
                let new = cur + n;
                self.hashes
                    .entry(*k)
                    .or_default()
                    .insert(FIELDS[*f].into(), new.to_string());
                Reply::Int(new)
            }
            Op::IncrByFloat(k, f, h) => {
                let cur = match self.get(*k).and_then(|m| m.get(FIELDS[*f])) {
                    Some(v) => match v.parse::<f64>() {
                        Ok(x) => x,
                        Err(_) => return err("ERR hash value is not a float"),
                    },
                    None => 0.0,
                };
                let text = model_float_text(cur + *h as f64 / 2.0);
                self.hashes
                    .entry(*k)
                    .or_default()
                    .insert(FIELDS[*f].into(), text.clone());
                bulk(&text)
            }
            Op::DelKey(k) => Reply::Int(i64::from(self.hashes.remove(k).is_some())),
        }
    }
}

fn run_ops(kind: EngineKind, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut t = T::new(kind);
    let mut m = Model::default();
    prop_assert_eq!(t.w(&["SET", "s", "str"]), Reply::Ok);
    for op in ops {
        let args = op.args();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let want = m.apply(op);
        prop_assert_eq!(&t.w(&refs), &want, "write path: {:?}", args);
        if op.read_only() {
            prop_assert_eq!(&t.r(&refs), &want, "read path: {:?}", args);
        }
        for (k, name) in KEYS.iter().enumerate().take(STR) {
            let want = m.apply(&Op::GetAll(k));
            prop_assert_eq!(t.r(&["HGETALL", name]), want, "after {:?}", args);
            let ty = if m.get(k).is_some() { "hash" } else { "none" };
            prop_assert_eq!(t.r(&["TYPE", name]), Reply::Simple(ty.into()));
            prop_assert_eq!(
                t.r(&["HLEN", name]),
                Reply::Int(m.get(k).map_or(0, |h| h.len()) as i64)
            );
        }
    }
    Ok(())
}

fn model_based(kind: EngineKind) {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(op(), 1..50), |ops| {
        run_ops(kind, &ops)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn set_get_and_errors(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(
        t.w(&["HSET", "h", "a", "1", "b", "2", "a", "3"]),
        Reply::Int(2)
    );
    assert_eq!(t.r(&["HGET", "h", "a"]), bulk("3"));
    assert_eq!(
        t.w(&["HSET", "h", "a", "1", "b"]),
        err("ERR wrong number of arguments for 'hset' command")
    );
    assert_eq!(
        t.w(&["HSET", "h", "a"]),
        err("ERR wrong number of arguments for 'hset' command")
    );
    assert_eq!(
        t.w(&["HMSET", "h", "a", "1", "b"]),
        err("ERR wrong number of arguments for 'hmset' command")
    );
    assert_eq!(
        t.r(&["HGET", "h", "a"]),
        bulk("3"),
        "failed HSET wrote nothing"
    );
    assert_eq!(t.w(&["HSETNX", "h", "a", "9"]), Reply::Int(0));
    assert_eq!(t.w(&["HSETNX", "h", "c", "9"]), Reply::Int(1));
    assert_eq!(t.r(&["HLEN", "h"]), Reply::Int(3));
    assert_eq!(
        t.r(&["HMGET", "h", "a", "nope", "c"]),
        Reply::Array(vec![bulk("3"), Reply::Nil, bulk("9")])
    );
    assert_eq!(
        t.r(&["HMGET", "nope", "a", "b"]),
        Reply::Array(vec![Reply::Nil, Reply::Nil])
    );
    assert_eq!(t.r(&["HSTRLEN", "h", "c"]), Reply::Int(1));
    assert_eq!(t.r(&["HSTRLEN", "h", "zz"]), Reply::Int(0));
    assert_eq!(t.r(&["HEXISTS", "h", "c"]), Reply::Int(1));
    assert_eq!(t.r(&["HEXISTS", "nope", "c"]), Reply::Int(0));
    assert_eq!(
        t.r(&["HGETALL", "h"]),
        Reply::Map(vec![
            (bulk("a"), bulk("3")),
            (bulk("b"), bulk("2")),
            (bulk("c"), bulk("9"))
        ])
    );
    assert_eq!(t.r(&["HGETALL", "nope"]), Reply::Map(vec![]));
    assert_eq!(t.w(&["HDEL", "h", "a", "a", "zz"]), Reply::Int(1));
    assert_eq!(t.w(&["HDEL", "h", "b", "c"]), Reply::Int(2));
    assert_eq!(t.r(&["EXISTS", "h"]), Reply::Int(0), "empty hash deleted");
    t.w(&["SET", "s", "v"]);
    for cmd in [
        vec!["HSET", "s", "a", "1"],
        vec!["HGET", "s", "a"],
        vec!["HMGET", "s", "a"],
        vec!["HGETALL", "s"],
        vec!["HDEL", "s", "a"],
        vec!["HINCRBY", "s", "a", "1"],
        vec!["HRANDFIELD", "s"],
        vec!["HSCAN", "s", "0"],
    ] {
        let r = if cmd[0].starts_with("HSET") || cmd[0] == "HDEL" || cmd[0] == "HINCRBY" {
            t.w(&cmd)
        } else {
            t.r(&cmd)
        };
        assert_eq!(r, err(WRONGTYPE), "{cmd:?}");
    }
}

fn incr_family(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.w(&["HINCRBY", "h", "n", "5"]), Reply::Int(5));
    assert_eq!(t.w(&["HINCRBY", "h", "n", "-7"]), Reply::Int(-2));
    assert_eq!(
        t.w(&["HINCRBY", "h", "n", "x"]),
        err("ERR value is not an integer or out of range")
    );
    t.w(&[
        "HSET",
        "h",
        "s",
        "abc",
        "big",
        "9223372036854775807",
        "f",
        "1.5",
    ]);
    assert_eq!(
        t.w(&["HINCRBY", "h", "s", "1"]),
        err("ERR hash value is not an integer")
    );
    assert_eq!(
        t.w(&["HINCRBY", "h", "f", "1"]),
        err("ERR hash value is not an integer")
    );
    assert_eq!(
        t.w(&["HINCRBY", "h", "big", "1"]),
        err("ERR increment or decrement would overflow")
    );
    assert_eq!(t.r(&["HGET", "h", "big"]), bulk("9223372036854775807"));
    assert_eq!(t.w(&["HINCRBYFLOAT", "h", "f", "10.5"]), bulk("12"));
    assert_eq!(t.w(&["HINCRBYFLOAT", "h", "g", "2.5"]), bulk("2.5"));
    assert_eq!(t.w(&["HINCRBYFLOAT", "h", "g", "5.0e3"]), bulk("5002.5"));
    assert_eq!(t.w(&["HINCRBYFLOAT", "h", "n", "-0.25"]), bulk("-2.25"));
    assert_eq!(
        t.w(&["HINCRBYFLOAT", "h", "s", "1"]),
        err("ERR hash value is not a float")
    );
    assert_eq!(
        t.w(&["HINCRBYFLOAT", "h", "g", "x"]),
        err("ERR value is not a valid float")
    );
    assert_eq!(
        t.w(&["HINCRBYFLOAT", "h", "g", "inf"]),
        err("ERR value is NaN or Infinity")
    );
    assert_eq!(
        t.w(&["HINCRBYFLOAT", "h", "g", "nan"]),
        err("ERR value is not a valid float")
    );
    t.w(&["HSET", "h", "huge", "1.7e308"]);
    assert_eq!(
        t.w(&["HINCRBYFLOAT", "h", "huge", "1.7e308"]),
        err("ERR increment would produce NaN or Infinity")
    );
    assert_eq!(t.r(&["HGET", "h", "huge"]), bulk("1.7e308"));
    assert_eq!(t.r(&["HGET", "h", "g"]), bulk("5002.5"));
}

fn randfield_shapes(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.r(&["HRANDFIELD", "nope"]), Reply::Nil);
    assert_eq!(t.r(&["HRANDFIELD", "nope", "3"]), Reply::Array(vec![]));
    let mut args = vec!["HSET".to_string(), "h".to_string()];
    let mut model = BTreeMap::new();
    for i in 0..20 {
        args.extend([format!("f{i:02}"), format!("v{i}")]);
        model.insert(format!("f{i:02}"), format!("v{i}"));
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    t.w(&refs);
    let text = |i: Reply| match i {
        Reply::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("not a bulk: {other:?}"),
    };
    // Fields come as an array; WITHVALUES as pairs (flat in RESP2, nested in RESP3).
    let texts = |r: Reply| -> Vec<String> {
        match r {
            Reply::Array(items) => items.into_iter().map(text).collect(),
            Reply::Pairs(pairs) => pairs
                .into_iter()
                .flat_map(|(f, v)| [text(f), text(v)])
                .collect(),
            other => panic!("not an array: {other:?}"),
        }
    };
    match t.w(&["HRANDFIELD", "h"]) {
        Reply::Bulk(f) => assert!(model.contains_key(&*String::from_utf8_lossy(&f))),
        other => panic!("{other:?}"),
    }
    // Positive count: distinct fields, min(count, size) of them.
    for count in [1usize, 5, 19, 20, 50] {
        let got = texts(t.w(&["HRANDFIELD", "h", &count.to_string()]));
        assert_eq!(got.len(), count.min(20));
        let set: BTreeSet<_> = got.iter().collect();
        assert_eq!(set.len(), got.len(), "distinct");
        assert!(got.iter().all(|f| model.contains_key(f)));
    }
    // Negative count: exactly |count| picks, repeats allowed.
    let got = texts(t.w(&["HRANDFIELD", "h", "-100"]));
    assert_eq!(got.len(), 100);
    assert!(got.iter().all(|f| model.contains_key(f)));
    assert!(got.iter().collect::<BTreeSet<_>>().len() > 1, "draws vary");
    // WITHVALUES: field, value pairs that belong together.
    for count in ["7", "-7", "30"] {
        let reply = t.w(&["HRANDFIELD", "h", count, "WITHVALUES"]);
        assert!(matches!(reply, Reply::Pairs(_)), "{reply:?}");
        let got = texts(reply);
        assert_eq!(got.len() % 2, 0);
        for pair in got.chunks(2) {
            assert_eq!(model.get(&pair[0]), Some(&pair[1]));
        }
    }
    assert_eq!(t.r(&["HRANDFIELD", "h", "0"]), Reply::Array(vec![]));
    // Reads are not replicated: repeated picks within the same millisecond must still
    // vary (seeding by the clock alone once returned the same field every time).
    let picks: BTreeSet<String> = (0..600)
        .flat_map(|_| texts(t.r(&["HRANDFIELD", "h", "1"])))
        .collect();
    assert_eq!(picks.len(), 20, "every field shows up in 600 single picks");
    assert_eq!(
        t.r(&["HRANDFIELD", "h", "1", "WITHVALUE"]),
        err("ERR syntax error")
    );
    assert_eq!(
        t.r(&["HRANDFIELD", "h", "1", "WITHVALUES", "x"]),
        err("ERR syntax error")
    );
    assert_eq!(
        t.r(&["HRANDFIELD", "h", "x"]),
        err("ERR value is not an integer or out of range")
    );
    for bad in [
        &["HRANDFIELD", "h", "-9223372036854770000", "WITHVALUES"][..],
        &["HRANDFIELD", "h", "-9223372036854775808", "WITHVALUES"],
        &["HRANDFIELD", "h", "-9223372036854775808"],
        &["HRANDFIELD", "h", "-9223372036854770000"],
    ] {
        match t.r(bad) {
            Reply::Error(e) => assert!(e.contains("value is out of range"), "{e}"),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

fn scan_fields(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(
        t.r(&["HSCAN", "nope", "0"]),
        Reply::Array(vec![bulk("0"), Reply::Array(vec![])])
    );
    assert_eq!(t.r(&["HSCAN", "nope", "x"]), err("ERR invalid cursor"));
    let mut args = vec!["HSET".to_string(), "h".to_string()];
    for i in 0..50 {
        args.extend([format!("k{i:02}"), format!("v{i}")]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(t.w(&refs), Reply::Int(50));
    assert_eq!(
        t.r(&["HSCAN", "h", "0", "COUNT", "0"]),
        err("ERR syntax error")
    );
    assert_eq!(t.r(&["HSCAN", "h", "0", "COUNT"]), err("ERR syntax error"));
    assert_eq!(
        t.r(&["HSCAN", "h", "0", "TYPE", "hash"]),
        err("ERR syntax error")
    );
    assert_eq!(
        t.r(&["HSCAN", "h", "0", "COUNT", "x"]),
        err("ERR value is not an integer or out of range")
    );

    // A full iteration with small pages, with writes between pages: every field present
    // throughout is returned, values go with their fields.
    let mut seen = BTreeMap::new();
    let mut cursor = "0".to_string();
    for round in 0..100 {
        let r = t.r(&["HSCAN", "h", &cursor, "COUNT", "7"]);
        let Reply::Array(parts) = r else {
            panic!("{r:?}")
        };
        let (Reply::Bulk(c), Reply::Array(items)) = (&parts[0], &parts[1]) else {
            panic!("{parts:?}")
        };
        assert!(items.len() <= 14);
        for pair in items.chunks(2) {
            let (Reply::Bulk(f), Reply::Bulk(v)) = (&pair[0], &pair[1]) else {
                panic!("{pair:?}")
            };
            seen.insert(f.clone(), v.clone());
        }
        if round == 2 {
            t.w(&["HSET", "h", "zz-new", "n"]);
            t.w(&["HDEL", "h", "k00"]);
        }
        cursor = String::from_utf8_lossy(c).into_owned();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(cursor, "0", "scan finished");
    for i in 1..50 {
        let f = b(&format!("k{i:02}"));
        assert_eq!(seen.get(&f), Some(&b(&format!("v{i}"))), "field k{i:02}");
    }

    // MATCH filters, NOVALUES drops the values.
    let r = t.r(&[
        "HSCAN", "h", "0", "MATCH", "k1*", "COUNT", "1000", "NOVALUES",
    ]);
    let expect: Vec<Reply> = (10..20).map(|i| bulk(&format!("k{i}"))).collect();
    assert_eq!(r, Reply::Array(vec![bulk("0"), Reply::Array(expect)]));
}

/// Empty field names and values are ordinary members, also for HSCAN's resume point.
fn empty_field_and_value(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.w(&["HSET", "h", "", "", "a", "1"]), Reply::Int(2));
    assert_eq!(t.r(&["HGET", "h", ""]), bulk(""));
    assert_eq!(t.r(&["HEXISTS", "h", ""]), Reply::Int(1));
    assert_eq!(
        t.r(&["HKEYS", "h"]),
        Reply::Array(vec![bulk(""), bulk("a")])
    );
    let Reply::Array(page) = t.r(&["HSCAN", "h", "0", "COUNT", "1"]) else {
        panic!("not an array")
    };
    assert_eq!(page[1], Reply::Array(vec![bulk(""), bulk("")]));
    let Reply::Bulk(cursor) = &page[0] else {
        panic!("no cursor")
    };
    let cursor = String::from_utf8_lossy(cursor).into_owned();
    assert_ne!(cursor, "0");
    assert_eq!(
        t.r(&["HSCAN", "h", &cursor, "COUNT", "1"]),
        Reply::Array(vec![bulk("0"), Reply::Array(vec![bulk("a"), bulk("1")])])
    );
    assert_eq!(t.w(&["HDEL", "h", ""]), Reply::Int(1));
    assert_eq!(t.r(&["HLEN", "h"]), Reply::Int(1));
}

all_engines!(
    model_based,
    set_get_and_errors,
    empty_field_and_value,
    incr_family,
    randfield_shapes,
    scan_fields,
);
