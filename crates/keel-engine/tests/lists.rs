//! List commands: a model-based property test against a VecDeque model comparing every
//! reply, targeted edge cases and error texts, and a large list worked in the middle.

mod common;

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use common::{b, T};
use keel_engine::keys;
use keel_engine::meta::{Body, Meta};
use keel_engine::types::list_chunk;
use keel_engine::Reply;
use keel_storage::{Direction, EngineKind};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const KEYS: [&str; 4] = ["a", "b", "c", "s"];
/// Index of the key that holds a string (for WRONGTYPE paths).
const STR: usize = 3;
const VALS: [&str; 3] = ["x", "y", "z"];

fn err(s: &str) -> Reply {
    Reply::err(s)
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(b(s))
}

fn bulks(items: &[String]) -> Reply {
    Reply::Array(items.iter().map(|s| bulk(s)).collect())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

#[derive(Debug, Clone)]
enum Op {
    Push {
        left: bool,
        only_existing: bool,
        key: usize,
        vals: Vec<usize>,
    },
    Pop {
        left: bool,
        key: usize,
        count: Option<i64>,
    },
    Len(usize),
    Index(usize, i64),
    Set(usize, i64, usize),
    Range(usize, i64, i64),
    Trim(usize, i64, i64),
    Rem(usize, i64, usize),
    Insert(usize, bool, usize, usize),
    Pos {
        key: usize,
        val: usize,
        rank: Option<i64>,
        count: Option<i64>,
        maxlen: Option<i64>,
    },
    Move {
        src: usize,
        dst: usize,
        from_left: bool,
        to_left: bool,
        blocking: bool,
    },
    MPop {
        keys: Vec<usize>,
        left: bool,
        count: Option<i64>,
        blocking: bool,
    },
    BPop {
        left: bool,
        keys: Vec<usize>,
    },
    Del(usize),
}

fn key() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0..3usize, 1 => Just(STR)]
}

fn val() -> impl Strategy<Value = usize> {
    0..VALS.len()
}

fn op() -> impl Strategy<Value = Op> {
    let idx = -7i64..7;
    prop_oneof![
        6 => (any::<bool>(), prop::bool::weighted(0.2), key(), prop::collection::vec(val(), 1..5))
            .prop_map(|(left, only_existing, key, vals)| Op::Push { left, only_existing, key, vals }),
        3 => (any::<bool>(), key(), prop::option::of(-1i64..5))
            .prop_map(|(left, key, count)| Op::Pop { left, key, count }),
        1 => key().prop_map(Op::Len),
        2 => (key(), idx.clone()).prop_map(|(k, i)| Op::Index(k, i)),
        2 => (key(), idx.clone(), val()).prop_map(|(k, i, v)| Op::Set(k, i, v)),
        2 => (key(), idx.clone(), idx.clone()).prop_map(|(k, s, e)| Op::Range(k, s, e)),
        1 => (key(), idx.clone(), idx.clone()).prop_map(|(k, s, e)| Op::Trim(k, s, e)),
        2 => (key(), -3i64..4, val()).prop_map(|(k, c, v)| Op::Rem(k, c, v)),
        2 => (key(), any::<bool>(), val(), val()).prop_map(|(k, bf, p, v)| Op::Insert(k, bf, p, v)),
        2 => (key(), val(), prop::option::of(-3i64..4), prop::option::of(-1i64..4), prop::option::of(-1i64..5))
            .prop_map(|(key, val, rank, count, maxlen)| Op::Pos { key, val, rank, count, maxlen }),
        2 => (key(), key(), any::<bool>(), any::<bool>(), prop::bool::weighted(0.3))
            .prop_map(|(src, dst, from_left, to_left, blocking)| Op::Move { src, dst, from_left, to_left, blocking }),
        2 => (prop::collection::vec(key(), 1..4), any::<bool>(), prop::option::of(0i64..4), any::<bool>())
            .prop_map(|(keys, left, count, blocking)| Op::MPop { keys, left, count, blocking }),
        1 => (any::<bool>(), prop::collection::vec(key(), 1..4)).prop_map(|(left, keys)| Op::BPop { left, keys }),
        1 => (0..3usize).prop_map(Op::Del),
    ]
}

fn end_word(left: bool) -> &'static str {
    if left {
        "LEFT"
    } else {
        "RIGHT"
    }
}

impl Op {
    /// The command line of this op.
    fn args(&self) -> Vec<String> {
        let s = |x: &str| x.to_string();
        match self {
            Op::Push {
                left,
                only_existing,
                key,
                vals,
            } => {
                let name = match (left, only_existing) {
                    (true, false) => "LPUSH",
                    (false, false) => "RPUSH",
                    (true, true) => "LPUSHX",
                    (false, true) => "RPUSHX",
                };
                let mut a = vec![s(name), s(KEYS[*key])];
                a.extend(vals.iter().map(|v| s(VALS[*v])));
                a
            }
            Op::Pop { left, key, count } => {
                let mut a = vec![s(if *left { "LPOP" } else { "RPOP" }), s(KEYS[*key])];
                if let Some(c) = count {
                    a.push(c.to_string());
                }
                a
            }
            Op::Len(k) => vec![s("LLEN"), s(KEYS[*k])],
            Op::Index(k, i) => vec![s("LINDEX"), s(KEYS[*k]), i.to_string()],
            Op::Set(k, i, v) => vec![s("LSET"), s(KEYS[*k]), i.to_string(), s(VALS[*v])],
            Op::Range(k, st, e) => vec![s("LRANGE"), s(KEYS[*k]), st.to_string(), e.to_string()],
            Op::Trim(k, st, e) => vec![s("LTRIM"), s(KEYS[*k]), st.to_string(), e.to_string()],
            Op::Rem(k, c, v) => vec![s("LREM"), s(KEYS[*k]), c.to_string(), s(VALS[*v])],
            Op::Insert(k, before, p, v) => vec![
                s("LINSERT"),
                s(KEYS[*k]),
                s(if *before { "BEFORE" } else { "AFTER" }),
                s(VALS[*p]),
                s(VALS[*v]),
            ],
            Op::Pos {
                key,
                val,
                rank,
                count,
                maxlen,
            } => {
                let mut a = vec![s("LPOS"), s(KEYS[*key]), s(VALS[*val])];
                if let Some(r) = rank {
                    a.extend([s("RANK"), r.to_string()]);
                }
                if let Some(c) = count {
                    a.extend([s("COUNT"), c.to_string()]);
                }
                if let Some(m) = maxlen {
                    a.extend([s("MAXLEN"), m.to_string()]);
                }
                a
            }
            Op::Move {
                src,
                dst,
                from_left,
                to_left,
                blocking,
            } => {
                if !*from_left && *to_left && !*blocking {
                    // RPOPLPUSH is LMOVE RIGHT LEFT.
                    return vec![s("RPOPLPUSH"), s(KEYS[*src]), s(KEYS[*dst])];
                }
                let mut a = vec![
                    s(if *blocking { "BLMOVE" } else { "LMOVE" }),
                    s(KEYS[*src]),
                    s(KEYS[*dst]),
                    s(end_word(*from_left)),
                    s(end_word(*to_left)),
                ];
                if *blocking {
                    a.push(s("0.5"));
                }
                a
            }
            Op::MPop {
                keys,
                left,
                count,
                blocking,
            } => {
                let mut a = if *blocking {
                    vec![s("BLMPOP"), s("1")]
                } else {
                    vec![s("LMPOP")]
                };
                a.push(keys.len().to_string());
                a.extend(keys.iter().map(|k| s(KEYS[*k])));
                a.push(s(end_word(*left)));
                if let Some(c) = count {
                    a.extend([s("COUNT"), c.to_string()]);
                }
                a
            }
            Op::BPop { left, keys } => {
                let mut a = vec![s(if *left { "BLPOP" } else { "BRPOP" })];
                a.extend(keys.iter().map(|k| s(KEYS[*k])));
                a.push(s("0"));
                a
            }
            Op::Del(k) => vec![s("DEL"), s(KEYS[*k])],
        }
    }

    fn read_only(&self) -> bool {
        matches!(
            self,
            Op::Len(_) | Op::Index(..) | Op::Range(..) | Op::Pos { .. }
        )
    }
}

/// The reference model: lists by key index; key STR holds a string.
#[derive(Default)]
struct Model {
    lists: BTreeMap<usize, VecDeque<String>>,
}

fn norm_range(start: i64, end: i64, len: i64) -> Option<(usize, usize)> {
    let s = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let e = if end < 0 { len + end } else { end.min(len - 1) };
    (s <= e && s < len).then_some((s as usize, e as usize))
}

fn norm_index(i: i64, len: i64) -> Option<usize> {
    let i = if i < 0 { len + i } else { i };
    (i >= 0 && i < len).then_some(i as usize)
}

impl Model {
    fn list(&self, k: usize) -> Option<&VecDeque<String>> {
        self.lists.get(&k)
    }

    fn cleanup(&mut self, k: usize) {
        if self.lists.get(&k).is_some_and(|l| l.is_empty()) {
            self.lists.remove(&k);
        }
    }

    fn pop(&mut self, k: usize, left: bool) -> Option<String> {
        let l = self.lists.get_mut(&k)?;
        let v = if left { l.pop_front() } else { l.pop_back() };
        self.cleanup(k);
        v
    }

    fn push(&mut self, k: usize, left: bool, v: String) {
        let l = self.lists.entry(k).or_default();
        if left {
            l.push_front(v);
        } else {
            l.push_back(v);
        }
    }

    fn apply(&mut self, op: &Op) -> Reply {
        match op {
            Op::Push {
                left,
                only_existing,
                key,
                vals,
            } => {
                if *key == STR {
                    return err(WRONGTYPE);
                }
                if *only_existing && self.list(*key).is_none() {
                    return Reply::Int(0);
                }
                for v in vals {
                    self.push(*key, *left, VALS[*v].to_string());
                }
                Reply::Int(self.list(*key).map_or(0, |l| l.len()) as i64)
            }
            Op::Pop { left, key, count } => {
                if count.is_some_and(|c| c < 0) {
                    return err("ERR value is out of range, must be positive");
                }
                if *key == STR {
                    return err(WRONGTYPE);
                }
                let Some(len) = self.list(*key).map(|l| l.len()) else {
                    return if count.is_some() {
                        Reply::NilArray
                    } else {
                        Reply::Nil
                    };
                };
                match count {
                    None => bulk(&self.pop(*key, *left).unwrap_or_default()),
                    Some(c) => {
                        let n = (*c as usize).min(len);
                        let items: Vec<String> =
                            (0..n).filter_map(|_| self.pop(*key, *left)).collect();
                        bulks(&items)
                    }
                }
            }
            Op::Len(k) => {
                if *k == STR {
                    return err(WRONGTYPE);
                }
                Reply::Int(self.list(*k).map_or(0, |l| l.len()) as i64)
            }
            Op::Index(k, i) => {
                if *k == STR {
                    return err(WRONGTYPE);
                }
                let Some(l) = self.list(*k) else {
                    return Reply::Nil;
                };
                match norm_index(*i, l.len() as i64) {
                    Some(p) => bulk(&l[p]),
                    None => Reply::Nil,
                }
            }
            Op::Set(k, i, v) => {
                if *k == STR {
                    return err(WRONGTYPE);
                }
                let Some(l) = self.lists.get_mut(k) else {
                    return err("ERR no such key");
                };
                match norm_index(*i, l.len() as i64) {
                    Some(p) => {
                        l[p] = VALS[*v].to_string();
                        Reply::Ok
                    }
                    None => err("ERR index out of range"),
                }
            }
            Op::Range(k, s, e) => {
                if *k == STR {
                    return err(WRONGTYPE);
                }
                let Some(l) = self.list(*k) else {
                    return Reply::Array(vec![]);
                };
                match norm_range(*s, *e, l.len() as i64) {
                    Some((s, e)) => {
                        let items: Vec<String> = l.range(s..=e).cloned().collect();
                        bulks(&items)
                    }
                    None => Reply::Array(vec![]),
                }
            }
            Op::Trim(k, s, e) => {
                if *k == STR {
                    return err(WRONGTYPE);
                }
                let Some(l) = self.lists.get_mut(k) else {
                    return Reply::Ok;
                };
                match norm_range(*s, *e, l.len() as i64) {
                    Some((s, e)) => {
                        *l = l.range(s..=e).cloned().collect();
                    }
                    None => l.clear(),
                }
                self.cleanup(*k);
                Reply::Ok
            }
            Op::Rem(k, c, v) => {
                if *k == STR {
                    return err(WRONGTYPE);
                }
                let Some(l) = self.lists.get_mut(k) else {
                    return Reply::Int(0);
                };
                let target = VALS[*v];
                let limit = c.unsigned_abs() as usize;
                let mut removed = 0;
                let mut out: Vec<String> = Vec::new();
                let items: Vec<String> = if *c < 0 {
                    l.iter().rev().cloned().collect()
                } else {
                    l.iter().cloned().collect()
                };
                for it in items {
                    if it == target && (limit == 0 || removed < limit) {
                        removed += 1;
                    } else {
                        out.push(it);
                    }
                }
                if *c < 0 {
                    out.reverse();
                }
                *l = out.into();
                self.cleanup(*k);
                Reply::Int(removed as i64)
            }
            Op::Insert(k, before, p, v) => {
                if *k == STR {
                    return err(WRONGTYPE);
                }
                let Some(l) = self.lists.get_mut(k) else {
                    return Reply::Int(0);
                };
                let Some(pos) = l.iter().position(|x| x == VALS[*p]) else {
                    return Reply::Int(-1);
                };
                let at = if *before { pos } else { pos + 1 };
                l.insert(at, VALS[*v].to_string());
                Reply::Int(l.len() as i64)
            }
            Op::Pos {
                key,
                val,
                rank,
                count,
                maxlen,
            } => {
                if *rank == Some(0) {
                    return err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list");
                }
                if count.is_some_and(|c| c < 0) {
                    return err("ERR COUNT can't be negative");
                }
                if maxlen.is_some_and(|m| m < 0) {
                    return err("ERR MAXLEN can't be negative");
                }
                if *key == STR {
                    return err(WRONGTYPE);
                }
                let Some(l) = self.list(*key) else {
                    return if count.is_some() {
                        Reply::Array(vec![])
                    } else {
                        Reply::Nil
                    };
                };
                let rank = rank.unwrap_or(1);
                let maxlen = maxlen.unwrap_or(0) as usize;
                let n = l.len();
                let order: Vec<usize> = if rank < 0 {
                    (0..n).rev().collect()
                } else {
                    (0..n).collect()
                };
                let scanned = if maxlen == 0 { n } else { maxlen.min(n) };
                let mut found: Vec<i64> = order[..scanned]
                    .iter()
                    .filter(|&&i| l[i] == VALS[*val])
                    .map(|&i| i as i64)
                    .skip(rank.unsigned_abs() as usize - 1)
                    .collect();
                match count {
                    None => found.first().map_or(Reply::Nil, |i| Reply::Int(*i)),
                    Some(c) => {
                        if *c > 0 {
                            found.truncate(*c as usize);
                        }
                        Reply::Array(found.into_iter().map(Reply::Int).collect())
                    }
                }
            }
            Op::Move {
                src,
                dst,
                from_left,
                to_left,
                ..
            } => {
                if *src == STR {
                    return err(WRONGTYPE);
                }
                if self.list(*src).is_none() {
                    return Reply::Nil;
                }
                if *dst == STR {
                    return err(WRONGTYPE);
                }
                let v = self.pop(*src, *from_left).unwrap_or_default();
                self.push(*dst, *to_left, v.clone());
                bulk(&v)
            }
            Op::MPop {
                keys, left, count, ..
            } => {
                if count.is_some_and(|c| c < 1) {
                    return err("ERR count should be greater than 0");
                }
                let count = count.unwrap_or(1) as usize;
                for k in keys {
                    if *k == STR {
                        return err(WRONGTYPE);
                    }
                    let Some(len) = self.list(*k).map(|l| l.len()) else {
                        continue;
                    };
                    let items: Vec<String> = (0..count.min(len))
                        .filter_map(|_| self.pop(*k, *left))
                        .collect();
                    return Reply::Array(vec![bulk(KEYS[*k]), bulks(&items)]);
                }
                Reply::NilArray
            }
            Op::BPop { left, keys } => {
                for k in keys {
                    if *k == STR {
                        return err(WRONGTYPE);
                    }
                    if self.list(*k).is_none() {
                        continue;
                    }
                    let v = self.pop(*k, *left).unwrap_or_default();
                    return Reply::Array(vec![bulk(KEYS[*k]), bulk(&v)]);
                }
                Reply::NilArray
            }
            Op::Del(k) => Reply::Int(i64::from(self.lists.remove(k).is_some())),
        }
    }
}

/// The number of sub-keys stored under the current version of list `key`.
fn stored_elements(t: &T, key: &str) -> usize {
    let mk = keys::meta_key(0, key.as_bytes());
    let Some(raw) = t.engine.storage().get(&mk).expect("get meta") else {
        return 0;
    };
    let meta = Meta::decode(&mk, raw).expect("decode meta");
    let version = meta.version().expect("collection");
    let Body::Collection {
        list: Some(shape), ..
    } = meta.body
    else {
        panic!("{key} is not a list");
    };
    // Elements in the records, however many each packs; every record holds one at least.
    t.engine
        .storage()
        .scan(
            keys::sub_range(0, key.as_bytes(), version),
            Direction::Forward,
        )
        .map(|item| {
            let (k, v) = item.expect("scan");
            let held = list_chunk::decode(shape.chunk_shift, &k, v)
                .expect("a well-formed record")
                .iter()
                .flatten()
                .count();
            assert!(held > 0, "an empty record left behind");
            held
        })
        .sum()
}

fn run_ops(kind: EngineKind, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut t = T::new(kind);
    let mut m = Model::default();
    prop_assert_eq!(t.w(&["SET", "s", "str"]), Reply::Ok);
    for op in ops {
        let args = op.args();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let want = m.apply(op);
        let got = t.w(&refs);
        prop_assert_eq!(&got, &want, "write path: {:?}", args);
        if op.read_only() {
            let got = t.r(&refs);
            prop_assert_eq!(&got, &want, "read path: {:?}", args);
        }
        for (k, name) in KEYS.iter().enumerate().take(STR) {
            let model: Vec<String> = m
                .list(k)
                .map(|l| l.iter().cloned().collect())
                .unwrap_or_default();
            prop_assert_eq!(
                t.r(&["LRANGE", name, "0", "-1"]),
                bulks(&model),
                "after {:?}",
                args
            );
            let ty = if model.is_empty() { "none" } else { "list" };
            prop_assert_eq!(t.r(&["TYPE", name]), Reply::Simple(ty.into()));
            prop_assert_eq!(
                stored_elements(&t, name),
                model.len(),
                "stray or missing sub-keys after {:?}",
                args
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

fn push_pop_basics_and_reply_shapes(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.w(&["RPUSH", "l", "a", "b", "c"]), Reply::Int(3));
    assert_eq!(t.w(&["LPUSH", "l", "z"]), Reply::Int(4));
    assert_eq!(
        t.r(&["LRANGE", "l", "0", "-1"]),
        bulks(&["z".into(), "a".into(), "b".into(), "c".into()])
    );
    assert_eq!(t.w(&["LPUSHX", "nope", "a"]), Reply::Int(0));
    assert_eq!(t.r(&["EXISTS", "nope"]), Reply::Int(0));
    // Count reply shapes: nil vs null array vs empty array.
    assert_eq!(t.w(&["LPOP", "nope"]), Reply::Nil);
    assert_eq!(t.w(&["LPOP", "nope", "2"]), Reply::NilArray);
    assert_eq!(t.w(&["LPOP", "nope", "0"]), Reply::NilArray);
    assert_eq!(t.w(&["LPOP", "l", "0"]), Reply::Array(vec![]));
    assert_eq!(t.w(&["RPOP", "l", "2"]), bulks(&["c".into(), "b".into()]));
    assert_eq!(t.w(&["LPOP", "l"]), bulk("z"));
    assert_eq!(t.w(&["LPOP", "l", "10"]), bulks(&["a".into()]));
    assert_eq!(t.r(&["EXISTS", "l"]), Reply::Int(0), "empty list deleted");
    assert_eq!(
        t.w(&["LPOP", "l", "-1"]),
        err("ERR value is out of range, must be positive")
    );
    assert_eq!(
        t.w(&["LPOP", "l", "x"]),
        err("ERR value is out of range, must be positive")
    );
    assert_eq!(
        t.w(&["LPOP", "l", "1", "2"]),
        err("ERR wrong number of arguments for 'lpop' command")
    );
    assert_eq!(
        t.w(&["RPUSH", "l"]),
        err("ERR wrong number of arguments for 'rpush' command")
    );
    t.w(&["SET", "s", "v"]);
    assert_eq!(t.w(&["LPUSH", "s", "a"]), err(WRONGTYPE));
    assert_eq!(t.w(&["LPOP", "s", "0"]), err(WRONGTYPE));
    assert_eq!(t.r(&["LLEN", "s"]), err(WRONGTYPE));
    assert_eq!(t.r(&["LRANGE", "s", "0", "1"]), err(WRONGTYPE));
    assert_eq!(t.r(&["LINDEX", "s", "0"]), err(WRONGTYPE));
}

fn index_set_range_trim_errors(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.w(&["LSET", "l", "0", "x"]), err("ERR no such key"));
    t.w(&["RPUSH", "l", "a", "b", "c"]);
    assert_eq!(t.w(&["LSET", "l", "3", "x"]), err("ERR index out of range"));
    assert_eq!(
        t.w(&["LSET", "l", "-4", "x"]),
        err("ERR index out of range")
    );
    assert_eq!(t.w(&["LSET", "l", "-1", "C"]), Reply::Ok);
    assert_eq!(
        t.w(&["LSET", "l", "one", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(t.r(&["LINDEX", "l", "-1"]), bulk("C"));
    assert_eq!(t.r(&["LINDEX", "l", "3"]), Reply::Nil);
    // The key is looked up before the index is parsed, as Redis does.
    assert_eq!(t.r(&["LINDEX", "nope", "x"]), Reply::Nil);
    assert_eq!(
        t.r(&["LINDEX", "l", "x"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        t.r(&["LRANGE", "nope", "a", "1"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        t.r(&["LRANGE", "l", "-9223372036854775808", "9223372036854775807"]),
        bulks(&["a".into(), "b".into(), "C".into()])
    );
    assert_eq!(t.r(&["LRANGE", "l", "2", "1"]), Reply::Array(vec![]));
    assert_eq!(t.w(&["LTRIM", "nope", "0", "1"]), Reply::Ok);
    assert_eq!(t.w(&["LTRIM", "l", "1", "-1"]), Reply::Ok);
    assert_eq!(
        t.r(&["LRANGE", "l", "0", "-1"]),
        bulks(&["b".into(), "C".into()])
    );
    assert_eq!(t.w(&["LTRIM", "l", "5", "10"]), Reply::Ok);
    assert_eq!(t.r(&["EXISTS", "l"]), Reply::Int(0));
}

fn insert_rem_pos(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.w(&["LINSERT", "l", "BEFORE", "a", "x"]), Reply::Int(0));
    assert_eq!(
        t.w(&["LINSERT", "l", "MIDDLE", "a", "x"]),
        err("ERR syntax error")
    );
    t.w(&["RPUSH", "l", "a", "b", "c", "b", "a"]);
    assert_eq!(t.w(&["LINSERT", "l", "before", "zz", "x"]), Reply::Int(-1));
    assert_eq!(t.w(&["LINSERT", "l", "AFTER", "b", "x"]), Reply::Int(6));
    assert_eq!(t.w(&["LINSERT", "l", "BEFORE", "a", "y"]), Reply::Int(7));
    assert_eq!(
        t.r(&["LRANGE", "l", "0", "-1"]),
        bulks(&["y", "a", "b", "x", "c", "b", "a"].map(String::from))
    );
    assert_eq!(t.w(&["LREM", "l", "-1", "a"]), Reply::Int(1));
    assert_eq!(t.w(&["LREM", "l", "0", "b"]), Reply::Int(2));
    assert_eq!(
        t.r(&["LRANGE", "l", "0", "-1"]),
        bulks(&["y", "a", "x", "c"].map(String::from))
    );
    assert_eq!(
        t.w(&["LREM", "l", "x", "a"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        t.w(&["LREM", "l", "-9223372036854775808", "a"]),
        Reply::Int(1)
    );

    t.w(&["DEL", "m"]);
    t.w(&["RPUSH", "m", "a", "b", "c", "1", "2", "3", "c", "c"]);
    assert_eq!(t.r(&["LPOS", "m", "a"]), Reply::Int(0));
    assert_eq!(t.r(&["LPOS", "m", "c"]), Reply::Int(2));
    assert_eq!(t.r(&["LPOS", "m", "c", "RANK", "2"]), Reply::Int(6));
    assert_eq!(t.r(&["LPOS", "m", "c", "RANK", "4"]), Reply::Nil);
    assert_eq!(t.r(&["LPOS", "m", "c", "RANK", "-1"]), Reply::Int(7));
    assert_eq!(t.r(&["LPOS", "m", "c", "RANK", "-2"]), Reply::Int(6));
    let ints = |v: &[i64]| Reply::Array(v.iter().map(|i| Reply::Int(*i)).collect());
    assert_eq!(t.r(&["LPOS", "m", "c", "COUNT", "0"]), ints(&[2, 6, 7]));
    assert_eq!(
        t.r(&["LPOS", "m", "c", "COUNT", "2", "RANK", "-1"]),
        ints(&[7, 6])
    );
    assert_eq!(
        t.r(&["LPOS", "m", "c", "COUNT", "0", "MAXLEN", "1"]),
        ints(&[])
    );
    assert_eq!(
        t.r(&["LPOS", "m", "a", "COUNT", "0", "MAXLEN", "1"]),
        ints(&[0])
    );
    assert_eq!(t.r(&["LPOS", "nope", "c", "COUNT", "0"]), ints(&[]));
    assert_eq!(t.r(&["LPOS", "nope", "c"]), Reply::Nil);
    assert_eq!(
        t.r(&["LPOS", "m", "c", "RANK", "0"]),
        err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list")
    );
    assert_eq!(
        t.r(&["LPOS", "m", "c", "RANK", "-9223372036854775808"]),
        err("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807")
    );
    assert_eq!(
        t.r(&["LPOS", "m", "c", "COUNT", "-1"]),
        err("ERR COUNT can't be negative")
    );
    assert_eq!(
        t.r(&["LPOS", "m", "c", "MAXLEN", "-1"]),
        err("ERR MAXLEN can't be negative")
    );
    assert_eq!(t.r(&["LPOS", "m", "c", "RANK"]), err("ERR syntax error"));
    assert_eq!(
        t.r(&["LPOS", "m", "c", "BOGUS", "1"]),
        err("ERR syntax error")
    );
}

fn move_mpop_and_blocking_variants(kind: EngineKind) {
    let mut t = T::new(kind);
    t.w(&["RPUSH", "l", "a", "b", "c"]);
    // Same-key rotation.
    assert_eq!(t.w(&["LMOVE", "l", "l", "LEFT", "RIGHT"]), bulk("a"));
    assert_eq!(
        t.r(&["LRANGE", "l", "0", "-1"]),
        bulks(&["b", "c", "a"].map(String::from))
    );
    assert_eq!(t.w(&["RPOPLPUSH", "l", "l"]), bulk("a"));
    assert_eq!(
        t.r(&["LRANGE", "l", "0", "-1"]),
        bulks(&["a", "b", "c"].map(String::from))
    );
    assert_eq!(t.w(&["LMOVE", "l", "d", "RIGHT", "LEFT"]), bulk("c"));
    assert_eq!(t.w(&["LMOVE", "nope", "d", "RIGHT", "LEFT"]), Reply::Nil);
    assert_eq!(
        t.w(&["LMOVE", "l", "d", "UP", "LEFT"]),
        err("ERR syntax error")
    );
    t.w(&["SET", "s", "v"]);
    assert_eq!(t.w(&["LMOVE", "l", "s", "LEFT", "LEFT"]), err(WRONGTYPE));
    assert_eq!(
        t.r(&["LLEN", "l"]),
        Reply::Int(2),
        "nothing popped on WRONGTYPE"
    );
    assert_eq!(t.w(&["LMOVE", "nope", "s", "LEFT", "LEFT"]), Reply::Nil);
    // A one-element rotation keeps the list.
    t.w(&["RPUSH", "one", "x"]);
    assert_eq!(t.w(&["LMOVE", "one", "one", "LEFT", "LEFT"]), bulk("x"));
    assert_eq!(t.r(&["LRANGE", "one", "0", "-1"]), bulks(&["x".into()]));

    // LMPOP.
    assert_eq!(
        t.w(&["LMPOP", "2", "nope", "l", "LEFT"]),
        Reply::Array(vec![bulk("l"), bulks(&["a".into()])])
    );
    assert_eq!(
        t.w(&["LMPOP", "2", "nope", "l", "RIGHT", "COUNT", "10"]),
        Reply::Array(vec![bulk("l"), bulks(&["b".into()])])
    );
    assert_eq!(t.r(&["EXISTS", "l"]), Reply::Int(0));
    assert_eq!(t.w(&["LMPOP", "1", "nope", "LEFT"]), Reply::NilArray);
    assert_eq!(t.w(&["LMPOP", "2", "s", "d", "LEFT"]), err(WRONGTYPE));
    assert_eq!(
        t.w(&["LMPOP", "0", "d", "LEFT"]),
        err("ERR numkeys should be greater than 0")
    );
    assert_eq!(
        t.w(&["LMPOP", "x", "d", "LEFT"]),
        err("ERR numkeys should be greater than 0")
    );
    assert_eq!(t.w(&["LMPOP", "5", "d", "LEFT"]), err("ERR syntax error"));
    assert_eq!(t.w(&["LMPOP", "1", "d", "UP"]), err("ERR syntax error"));
    assert_eq!(
        t.w(&["LMPOP", "1", "d", "LEFT", "COUNT", "0"]),
        err("ERR count should be greater than 0")
    );
    assert_eq!(
        t.w(&["LMPOP", "1", "d", "LEFT", "COUNT", "1", "COUNT", "1"]),
        err("ERR syntax error")
    );
    assert_eq!(
        t.w(&["LMPOP", "1", "d", "LEFT", "COUNT"]),
        err("ERR syntax error")
    );

    // Blocking variants make one attempt.
    t.w(&["RPUSH", "q", "1", "2"]);
    assert_eq!(
        t.w(&["BLPOP", "nope", "q", "0"]),
        Reply::Array(vec![bulk("q"), bulk("1")])
    );
    assert_eq!(t.w(&["BRPOP", "nope", "0.5"]), Reply::NilArray);
    assert_eq!(t.w(&["BLPOP", "q", "-1"]), err("ERR timeout is negative"));
    assert_eq!(
        t.w(&["BLPOP", "q", "abc"]),
        err("ERR timeout is not a float or out of range")
    );
    assert_eq!(t.w(&["BLPOP", "s", "0"]), err(WRONGTYPE));
    assert_eq!(t.w(&["BRPOPLPUSH", "nope", "q", "1"]), Reply::Nil);
    assert_eq!(
        t.w(&["BRPOPLPUSH", "q", "q2", "x"]),
        err("ERR timeout is not a float or out of range")
    );
    assert_eq!(t.w(&["BLMOVE", "q", "q2", "LEFT", "RIGHT", "0"]), bulk("2"));
    assert_eq!(
        t.w(&["BLMOVE", "q", "q2", "LEFT", "UP", "0"]),
        err("ERR syntax error")
    );
    assert_eq!(
        t.w(&["BLMOVE", "q", "q2", "LEFT", "RIGHT", "-2"]),
        err("ERR timeout is negative")
    );
    assert_eq!(
        t.w(&["BLMPOP", "0", "2", "nope", "q2", "LEFT", "COUNT", "5"]),
        Reply::Array(vec![bulk("q2"), bulks(&["2".into()])])
    );
    assert_eq!(t.w(&["BLMPOP", "0", "1", "q2", "LEFT"]), Reply::NilArray);
    assert_eq!(
        t.w(&["BLMPOP", "-1", "1", "q2", "LEFT"]),
        err("ERR timeout is negative")
    );
    // numkeys is checked before the timeout, as Redis does.
    assert_eq!(
        t.w(&["BLMPOP", "-1", "0", "q2", "LEFT"]),
        err("ERR numkeys should be greater than 0")
    );
    let spec = keel_engine::command::lookup(b"blpop").expect("blpop");
    assert!(spec.flags & keel_engine::command::flags::BLOCKING != 0);
    assert!(spec.is_write());
    assert_eq!(spec.key_positions(4).collect::<Vec<_>>(), vec![1, 2]);
}

/// A 10k-element list worked in the middle: LINDEX/LSET/LRANGE/LINSERT/LREM/LTRIM
/// against a Vec.
fn large_list_middle(kind: EngineKind) {
    let mut t = T::new(kind);
    let mut model: Vec<String> = Vec::new();
    for chunk in 0..20 {
        let vals: Vec<String> = (0..500).map(|i| format!("v{}", chunk * 500 + i)).collect();
        let mut args = vec!["RPUSH".to_string(), "big".to_string()];
        args.extend(vals.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        model.extend(vals);
        assert_eq!(t.w(&refs), Reply::Int(model.len() as i64));
    }
    // Some elements on the left too, so indices go negative in storage.
    for i in 0..10 {
        let v = format!("l{i}");
        t.w(&["LPUSH", "big", &v]);
        model.insert(0, v);
    }
    for i in [0usize, 1, 4_999, 5_000, 5_001, 9_999, 10_009] {
        assert_eq!(t.r(&["LINDEX", "big", &i.to_string()]), bulk(&model[i]));
    }
    assert_eq!(
        t.r(&["LINDEX", "big", "-5000"]),
        bulk(&model[model.len() - 5000])
    );
    assert_eq!(t.w(&["LSET", "big", "5000", "mid"]), Reply::Ok);
    model[5000] = "mid".into();
    assert_eq!(
        t.r(&["LRANGE", "big", "4990", "5010"]),
        bulks(&model[4990..=5010])
    );
    // Insert in the left half and in the right half (shifts opposite sides).
    assert_eq!(
        t.w(&["LINSERT", "big", "BEFORE", "v2000", "ins-left"]),
        Reply::Int(10_011)
    );
    let p = model.iter().position(|v| v == "v2000").expect("v2000");
    model.insert(p, "ins-left".into());
    assert_eq!(
        t.w(&["LINSERT", "big", "AFTER", "v8000", "ins-right"]),
        Reply::Int(10_012)
    );
    let p = model.iter().position(|v| v == "v8000").expect("v8000");
    model.insert(p + 1, "ins-right".into());
    assert_eq!(t.w(&["LREM", "big", "0", "mid"]), Reply::Int(1));
    model.retain(|v| v != "mid");
    assert_eq!(
        t.r(&["LRANGE", "big", "1990", "2020"]),
        bulks(&model[1990..=2020])
    );
    assert_eq!(
        t.r(&["LPOS", "big", "ins-right"]),
        Reply::Int(model.iter().position(|v| v == "ins-right").expect("ins") as i64)
    );
    assert_eq!(t.r(&["LRANGE", "big", "0", "-1"]), bulks(&model));
    assert_eq!(stored_elements(&t, "big"), model.len());
    // A trim keeping a small middle copies it under a new version.
    assert_eq!(t.w(&["LTRIM", "big", "3000", "3099"]), Reply::Ok);
    model = model[3000..=3099].to_vec();
    assert_eq!(t.r(&["LRANGE", "big", "0", "-1"]), bulks(&model));
    assert_eq!(t.r(&["LLEN", "big"]), Reply::Int(100));
    assert_eq!(stored_elements(&t, "big"), 100);
}

/// Writes inside MULTI see each other; a failing command rolls back only itself.
fn multi_sees_list_writes(kind: EngineKind) {
    let mut t = T::new(kind);
    let c = |p: &[&str]| -> Vec<Bytes> { p.iter().map(|s| b(s)).collect() };
    let applied = t.apply(keel_engine::Op::Multi {
        cmds: vec![
            (0, c(&["RPUSH", "l", "a", "b"])),
            (0, c(&["LSET", "l", "5", "x"])),
            (0, c(&["LMOVE", "l", "m", "LEFT", "LEFT"])),
            (0, c(&["LRANGE", "m", "0", "-1"])),
        ],
    });
    assert_eq!(applied.replies[0], Reply::Int(2));
    assert_eq!(applied.replies[1], err("ERR index out of range"));
    assert_eq!(applied.replies[2], bulk("a"));
    assert_eq!(applied.replies[3], bulks(&["a".into()]));
    assert_eq!(t.r(&["LRANGE", "l", "0", "-1"]), bulks(&["b".into()]));
}

/// Empty elements are ordinary elements.
fn empty_elements(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.w(&["RPUSH", "l", "", "a", ""]), Reply::Int(3));
    assert_eq!(
        t.r(&["LPOS", "l", "", "COUNT", "0"]),
        Reply::Array(vec![Reply::Int(0), Reply::Int(2)])
    );
    assert_eq!(t.w(&["LREM", "l", "0", ""]), Reply::Int(2));
    assert_eq!(t.r(&["LRANGE", "l", "0", "-1"]), bulks(&["a".into()]));
    assert_eq!(t.w(&["LINSERT", "l", "BEFORE", "a", ""]), Reply::Int(2));
    assert_eq!(t.w(&["LPOP", "l"]), bulk(""));
}

/// The chunk shift a list's metadata records.
fn chunk_shift(t: &T, key: &str) -> u8 {
    let mk = keys::meta_key(0, key.as_bytes());
    let raw = t
        .engine
        .storage()
        .get(&mk)
        .expect("get")
        .expect("the key exists");
    match Meta::decode(&mk, raw).expect("decode").body {
        Body::Collection { list: Some(l), .. } => l.chunk_shift,
        other => panic!("{key} is not a list: {other:?}"),
    }
}

/// A list written before elements were packed (one record per element, no chunk shift
/// in its metadata) reads and changes as before and keeps its layout; lists made now
/// pack theirs, and DUMP/RESTORE and the digest see the same elements either way.
fn lists_of_one_element_per_record_still_work(kind: EngineKind) {
    let mut t = T::new(kind);
    let version = 1u64 << 60;
    let n = 40i64;
    let mut meta = Meta::collection(keel_engine::meta::KeyType::List, version);
    meta.body = Body::Collection {
        version,
        len: n as u64,
        list: Some(keel_engine::meta::ListShape {
            head: -5,
            tail: n - 5,
            chunk_shift: 0,
        }),
    };
    let mut wb = keel_storage::WriteBatch::new();
    wb.put(keys::meta_key(0, b"old"), meta.encode());
    let mut model: VecDeque<String> = VecDeque::new();
    for i in -5..n - 5 {
        let v = format!("e{i}");
        let idx = ((i as u64) ^ (1 << 63)).to_be_bytes();
        wb.put(
            keys::sub_key(0, b"old", version, &idx),
            Bytes::from(v.clone()),
        );
        model.push_back(v);
    }
    t.engine
        .storage()
        .write(wb, keel_storage::WriteOptions::DEFAULT)
        .expect("plant the list");
    let all = |m: &VecDeque<String>| m.iter().cloned().collect::<Vec<_>>();
    assert_eq!(t.r(&["LRANGE", "old", "0", "-1"]), bulks(&all(&model)));
    assert_eq!(t.r(&["LINDEX", "old", "7"]), bulk("e2"));
    assert_eq!(t.w(&["LPUSH", "old", "l1", "l2"]), Reply::Int(n + 2));
    model.push_front("l1".into());
    model.push_front("l2".into());
    assert_eq!(
        t.w(&["RPOP", "old", "3"]),
        bulks(&["e34".into(), "e33".into(), "e32".into()])
    );
    model.truncate(model.len() - 3);
    assert_eq!(
        t.w(&["LINSERT", "old", "AFTER", "e10", "mid"]),
        Reply::Int(n)
    );
    let p = model.iter().position(|v| v == "e10").expect("e10");
    model.insert(p + 1, "mid".into());
    assert_eq!(t.w(&["LSET", "old", "0", "first"]), Reply::Ok);
    model[0] = "first".into();
    assert_eq!(t.w(&["LTRIM", "old", "1", "-2"]), Reply::Ok);
    model.pop_front();
    model.pop_back();
    assert_eq!(t.r(&["LRANGE", "old", "0", "-1"]), bulks(&all(&model)));
    assert_eq!(stored_elements(&t, "old"), model.len());
    assert_eq!(chunk_shift(&t, "old"), 0, "an old list keeps its layout");

    // The same elements in a list made now: packed, equal in every reply.
    let mut args = vec!["RPUSH".to_string(), "new".into()];
    args.extend(model.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(t.w(&refs), Reply::Int(model.len() as i64));
    assert_eq!(chunk_shift(&t, "new"), list_chunk::NEW_LIST_SHIFT);
    assert_eq!(stored_elements(&t, "new"), model.len());
    assert_eq!(t.r(&["LRANGE", "new", "0", "-1"]), bulks(&all(&model)));
    for key in ["old", "new"] {
        let Reply::Bulk(payload) = t.w(&["DUMP", key]) else {
            panic!("DUMP {key}");
        };
        let copy = format!("{key}-copy");
        let restore = keel_engine::Op::Command {
            db: 0,
            args: vec![b("RESTORE"), b(&copy), b("0"), payload],
        };
        assert_eq!(t.apply(restore).replies.to_vec(), vec![Reply::Ok]);
        assert_eq!(t.r(&["LRANGE", &copy, "0", "-1"]), bulks(&all(&model)));
        assert_eq!(
            t.w(&["RPOP", &copy]),
            bulk(model.back().expect("non-empty"))
        );
    }
    // Equal lists, equal digests, whatever their layout.
    t.w(&["DEL", "old-copy", "new-copy"]);
    let d = |t: &T| t.engine.digest(t.now).expect("digest");
    t.w(&["DEL", "new"]);
    let with_old = d(&t);
    t.w(&["RENAME", "old", "kept"]);
    t.w(&refs);
    t.w(&["RENAME", "new", "old"]);
    t.w(&["DEL", "kept"]);
    assert_eq!(chunk_shift(&t, "old"), list_chunk::NEW_LIST_SHIFT);
    assert_eq!(d(&t), with_old);
}

all_engines!(
    lists_of_one_element_per_record_still_work,
    model_based,
    empty_elements,
    push_pop_basics_and_reply_shapes,
    index_set_range_trim_errors,
    insert_rem_pos,
    move_mpop_and_blocking_variants,
    large_list_middle,
    multi_sees_list_writes,
);
