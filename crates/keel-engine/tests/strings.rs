//! String and bit commands: a model-based property test against a small reference model,
//! and targeted checks of every command's edge cases and error texts.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{b, T};
use keel_engine::keys;
use keel_engine::meta::{Body, KeyType, ListShape, Meta};
use keel_engine::Reply;
use keel_storage::{EngineKind, WriteBatch, WriteOptions};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Helpers

fn bulk(s: &str) -> Reply {
    Reply::Bulk(b(s))
}

fn err(s: &str) -> Reply {
    Reply::err(s)
}

fn ints(v: &[i64]) -> Reply {
    Reply::Array(v.iter().map(|&i| Reply::Int(i)).collect())
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
const NOT_FLOAT: &str = "ERR value is not a valid float";
const SYNTAX: &str = "ERR syntax error";

/// Plants a non-empty list at `key` by writing its metadata directly: this branch has no
/// list commands, and the string commands only look at the metadata.
fn plant_list(t: &T, key: &str) {
    let mut m = Meta::collection(KeyType::List, 7);
    m.body = Body::Collection {
        version: 7,
        len: 1,
        list: Some(ListShape {
            head: 0,
            tail: 1,
            chunk_shift: 0,
        }),
    };
    let mut batch = WriteBatch::new();
    batch.put(keys::meta_key(0, key.as_bytes()), m.encode());
    t.engine
        .storage()
        .write(batch, WriteOptions::DEFAULT)
        .expect("plant list");
}

/// The live metadata of `key` read straight from storage (None if absent or expired).
fn live_meta(t: &T, key: &str) -> Option<Meta> {
    let mk = keys::meta_key(0, key.as_bytes());
    let raw = t.engine.storage().get(&mk).expect("get")?;
    let m = Meta::decode(&mk, raw).expect("decode");
    (!m.is_expired(t.now)).then_some(m)
}

/// The expiry time of a live key.
fn expire_at(t: &T, key: &str) -> Option<u64> {
    live_meta(t, key).and_then(|m| m.expire_at)
}

/// True if a GC record was queued for `key`'s collection version 7 (the planted list).
fn gc_queued(t: &T, key: &str) -> bool {
    t.engine
        .storage()
        .get(&keys::gc_key(0, key.as_bytes(), 7))
        .expect("get")
        .is_some()
}

// ---------------------------------------------------------------------------------------
// Model-based property test

/// A key's value in the model.
#[derive(Debug, Clone, PartialEq)]
enum MVal {
    Str(Vec<u8>),
    /// A collection (the planted list): string reads see WRONGTYPE.
    Coll,
}

/// A live string in the model: (value, expiry ms).
type StrEntry = (Vec<u8>, Option<u64>);

/// The reference model: key → (value, expiry ms).
struct Model {
    now: u64,
    map: BTreeMap<String, (MVal, Option<u64>)>,
}

impl Model {
    fn live(&mut self, k: &str) -> Option<(MVal, Option<u64>)> {
        let now = self.now;
        if self
            .map
            .get(k)
            .is_some_and(|(_, e)| e.is_some_and(|e| e <= now))
        {
            self.map.remove(k);
        }
        self.map.get(k).cloned()
    }

    /// The string at `k`: Ok(None) if absent, Err(WRONGTYPE) for a collection.
    fn string(&mut self, k: &str) -> Result<Option<StrEntry>, Reply> {
        match self.live(k) {
            None => Ok(None),
            Some((MVal::Coll, _)) => Err(err(WRONGTYPE)),
            Some((MVal::Str(v), e)) => Ok(Some((v, e))),
        }
    }

    fn set(&mut self, k: &str, v: Vec<u8>, e: Option<u64>) {
        match e {
            Some(at) if at <= self.now => {
                self.map.remove(k);
            }
            _ => {
                self.map.insert(k.to_string(), (MVal::Str(v), e));
            }
        }
    }
}

/// Redis's integer syntax, written independently of the engine's parser.
fn model_int(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    let digits = s.strip_prefix('-').unwrap_or(s);
    let ok = !digits.is_empty()
        && digits.bytes().all(|c| c.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && s != "-0";
    if !ok {
        return None;
    }
    s.parse().ok()
}

/// The model's float parse: values and increments are chosen so f64 is exact for them.
fn model_float(v: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(v).ok()?;
    if s.is_empty() {
        return None;
    }
    if let Some(h) = model_hex_float(s) {
        return Some(h);
    }
    if !s
        .bytes()
        .all(|c| c.is_ascii_digit() || b"-.e+".contains(&c))
    {
        return None;
    }
    s.parse().ok()
}

/// A hexadecimal float as `strtold` reads it (Redis and keel accept them), in the
/// shapes SETRANGE can make here: optional sign, "0x", hex digits with at most one
/// point, at least one digit. SETRANGE turned "-0.75" into "-0x75" in a failing case.
fn model_hex_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let rest = body
        .strip_prefix("0x")
        .or_else(|| body.strip_prefix("0X"))?;
    let (int, frac) = rest.split_once('.').unwrap_or((rest, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + f64::from(c.to_digit(16)?);
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += f64::from(c.to_digit(16)?) * scale;
        scale /= 16.0;
    }
    Some(if neg { -v } else { v })
}

/// Exact dyadic values print the same under `%.17Lf`-and-trim and under Display.
fn model_float_fmt(f: f64) -> String {
    let s = format!("{f}");
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

#[derive(Debug, Clone)]
enum Op {
    Set(usize, usize),
    SetNx(usize, usize),
    SetEx(usize, i64, usize),
    PSetEx(usize, i64, usize),
    MGet(Vec<usize>),
    MSet(Vec<(usize, usize)>),
    MSetNx(Vec<(usize, usize)>),
    GetSet(usize, usize),
    GetDel(usize),
    GetEx(usize, u8, i64),
    Append(usize, usize),
    Strlen(usize),
    GetRange(usize, i64, i64),
    SetRange(usize, i64, usize),
    IncrBy(usize, i64),
    Incr(usize),
    Decr(usize),
    DecrBy(usize, i64),
    IncrByFloat(usize, usize),
    SetBit(usize, u64, u8),
    GetBit(usize, u64),
    BitCount(usize),
    Bitop(u8, usize, Vec<usize>),
    Advance(u64),
}

const KEYS: &[&str] = &["a", "b", "c", "L"];
const VALS: &[&str] = &[
    "",
    "x",
    "hello",
    "12",
    "-3",
    "007",
    "+1",
    "-0",
    "9223372036854775807",
    "-9223372036854775808",
    "1.5",
    "ab\u{7f}",
];
const FLOAT_INCRS: &[&str] = &["0.5", "-1.25", "3", "2.5e1", "abc", "-0.75"];

fn op_strategy() -> impl Strategy<Value = Op> {
    let k = 0..KEYS.len();
    let v = 0..VALS.len();
    let pairs = prop::collection::vec((0..KEYS.len(), 0..VALS.len()), 1..4);
    prop_oneof![
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::Set(k, v)),
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::SetNx(k, v)),
        (k.clone(), -1i64..3, v.clone()).prop_map(|(k, s, v)| Op::SetEx(k, s, v)),
        (
            k.clone(),
            prop::sample::select(vec![0i64, 1, 500, 1500]),
            v.clone()
        )
            .prop_map(|(k, s, v)| Op::PSetEx(k, s, v)),
        prop::collection::vec(k.clone(), 1..5).prop_map(Op::MGet),
        pairs.clone().prop_map(Op::MSet),
        pairs.prop_map(Op::MSetNx),
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::GetSet(k, v)),
        k.clone().prop_map(Op::GetDel),
        (k.clone(), 0u8..5, -1i64..3).prop_map(|(k, o, n)| Op::GetEx(k, o, n)),
        (k.clone(), v.clone()).prop_map(|(k, v)| Op::Append(k, v)),
        k.clone().prop_map(Op::Strlen),
        (k.clone(), -7i64..7, -7i64..7).prop_map(|(k, s, e)| Op::GetRange(k, s, e)),
        (k.clone(), -1i64..8, v.clone()).prop_map(|(k, o, v)| Op::SetRange(k, o, v)),
        (
            k.clone(),
            prop::sample::select(vec![1i64, -5, 100, i64::MAX, i64::MIN])
        )
            .prop_map(|(k, d)| Op::IncrBy(k, d)),
        k.clone().prop_map(Op::Incr),
        k.clone().prop_map(Op::Decr),
        (
            k.clone(),
            prop::sample::select(vec![2i64, -7, i64::MIN, i64::MAX])
        )
            .prop_map(|(k, d)| Op::DecrBy(k, d)),
        (k.clone(), 0..FLOAT_INCRS.len()).prop_map(|(k, i)| Op::IncrByFloat(k, i)),
        (k.clone(), 0u64..24, 0u8..3).prop_map(|(k, o, b)| Op::SetBit(k, o, b)),
        (k.clone(), 0u64..24).prop_map(|(k, o)| Op::GetBit(k, o)),
        k.clone().prop_map(Op::BitCount),
        (0u8..4, k.clone(), prop::collection::vec(k, 1..3))
            .prop_map(|(o, d, s)| Op::Bitop(o, d, s)),
        (0u64..2000).prop_map(Op::Advance),
    ]
}

/// What the engine must answer.
enum Expect {
    Exact(Reply),
    /// An INCRBYFLOAT result the f64 model cannot predict exactly (long double rounding
    /// of non-dyadic or huge values, checked by the targeted tests instead): any string,
    /// which the model then adopts as the key's value, keeping `expire_at`.
    AdoptFloat(String, Option<u64>),
}

/// Applies `op` to the model and returns (command, expected reply).
fn model_apply(m: &mut Model, op: &Op) -> (Vec<String>, Expect) {
    if let Op::IncrByFloat(k, i) = op {
        return model_incrbyfloat(m, KEYS[*k], FLOAT_INCRS[*i]);
    }
    let (cmd, r) = model_apply_exact(m, op);
    (cmd, Expect::Exact(r))
}

/// INCRBYFLOAT in the model: exact for small dyadic values, adopted otherwise.
fn model_incrbyfloat(m: &mut Model, k: &str, incr: &str) -> (Vec<String>, Expect) {
    let cmd = vec!["INCRBYFLOAT".to_string(), k.to_string(), incr.to_string()];
    let cur = match m.string(k) {
        Err(e) => return (cmd, Expect::Exact(e)),
        Ok(c) => c,
    };
    let (base, e, short) = match &cur {
        None => (Some(0.0), None, true),
        Some((v, e)) => (model_float(v), *e, v.len() <= 15),
    };
    let (Some(base), Some(d)) = (base, model_float(incr.as_bytes())) else {
        return (cmd, Expect::Exact(err(NOT_FLOAT)));
    };
    let exact = short && (base * 4.0).fract() == 0.0 && base.abs() < (1u64 << 50) as f64;
    if !exact {
        return (cmd, Expect::AdoptFloat(k.to_string(), e));
    }
    let text = model_float_fmt(base + d);
    m.set(k, text.clone().into_bytes(), e);
    (cmd, Expect::Exact(bulk(&text)))
}

/// The commands whose reply the model predicts exactly.
fn model_apply_exact(m: &mut Model, op: &Op) -> (Vec<String>, Reply) {
    let key = |i: &usize| KEYS[*i].to_string();
    let val = |i: &usize| VALS[*i].to_string();
    let s = |x: &str| x.to_string();
    match op {
        Op::Set(k, v) => {
            m.set(&key(k), val(v).into_bytes(), None);
            (vec![s("SET"), key(k), val(v)], Reply::Ok)
        }
        Op::SetNx(k, v) => {
            let cmd = vec![s("SETNX"), key(k), val(v)];
            if m.live(&key(k)).is_some() {
                return (cmd, Reply::Int(0));
            }
            m.set(&key(k), val(v).into_bytes(), None);
            (cmd, Reply::Int(1))
        }
        Op::SetEx(k, secs, v) | Op::PSetEx(k, secs, v) => {
            let (name, lower, ms) = match op {
                Op::SetEx(..) => ("SETEX", "setex", secs * 1000),
                _ => ("PSETEX", "psetex", *secs),
            };
            let cmd = vec![s(name), key(k), secs.to_string(), val(v)];
            if *secs <= 0 {
                let e = format!("ERR invalid expire time in '{lower}' command");
                return (cmd, err(&e));
            }
            let at = m.now + ms as u64;
            m.set(&key(k), val(v).into_bytes(), Some(at));
            (cmd, Reply::Ok)
        }
        Op::MGet(ks) => {
            let mut cmd = vec![s("MGET")];
            let mut out = Vec::new();
            for k in ks {
                cmd.push(key(k));
                out.push(match m.live(&key(k)) {
                    Some((MVal::Str(v), _)) => Reply::Bulk(Bytes::from(v)),
                    _ => Reply::Nil,
                });
            }
            (cmd, Reply::Array(out))
        }
        Op::MSet(pairs) | Op::MSetNx(pairs) => {
            let nx = matches!(op, Op::MSetNx(_));
            let mut cmd = vec![s(if nx { "MSETNX" } else { "MSET" })];
            for (k, v) in pairs {
                cmd.push(key(k));
                cmd.push(val(v));
            }
            if nx && pairs.iter().any(|(k, _)| m.live(&key(k)).is_some()) {
                return (cmd, Reply::Int(0));
            }
            for (k, v) in pairs {
                m.set(&key(k), val(v).into_bytes(), None);
            }
            (cmd, if nx { Reply::Int(1) } else { Reply::Ok })
        }
        Op::GetSet(k, v) => {
            let cmd = vec![s("GETSET"), key(k), val(v)];
            match m.string(&key(k)) {
                Err(e) => (cmd, e),
                Ok(old) => {
                    m.set(&key(k), val(v).into_bytes(), None);
                    (cmd, old.map_or(Reply::Nil, |(o, _)| Reply::Bulk(o.into())))
                }
            }
        }
        Op::GetDel(k) => {
            let cmd = vec![s("GETDEL"), key(k)];
            match m.string(&key(k)) {
                Err(e) => (cmd, e),
                Ok(None) => (cmd, Reply::Nil),
                Ok(Some((v, _))) => {
                    m.map.remove(&key(k));
                    (cmd, Reply::Bulk(v.into()))
                }
            }
        }
        Op::GetEx(k, o, n) => {
            let mut cmd = vec![s("GETEX"), key(k)];
            match o {
                1 => cmd.extend([s("EX"), n.to_string()]),
                2 => cmd.extend([s("PX"), (n * 700).to_string()]),
                3 => cmd.push(s("PERSIST")),
                4 => cmd.extend([s("PXAT"), (m.now as i64 + n * 700).to_string()]),
                _ => {}
            }
            let cur = match m.string(&key(k)) {
                Err(e) => return (cmd, e),
                Ok(None) => return (cmd, Reply::Nil),
                Ok(Some(c)) => c,
            };
            let new_exp = match o {
                0 => cur.1,
                3 => None,
                _ => {
                    let invalid = match o {
                        4 => m.now as i64 + n * 700 <= 0,
                        _ => *n <= 0,
                    };
                    if invalid {
                        return (cmd, err("ERR invalid expire time in 'getex' command"));
                    }
                    Some(match o {
                        1 => m.now + *n as u64 * 1000,
                        2 => m.now + *n as u64 * 700,
                        _ => (m.now as i64 + n * 700) as u64,
                    })
                }
            };
            m.set(&key(k), cur.0.clone(), new_exp);
            (cmd, Reply::Bulk(cur.0.into()))
        }
        Op::Append(k, v) => {
            let cmd = vec![s("APPEND"), key(k), val(v)];
            match m.string(&key(k)) {
                Err(e) => (cmd, e),
                Ok(cur) => {
                    let (mut bytes, e) = cur.unwrap_or_default();
                    bytes.extend_from_slice(val(v).as_bytes());
                    let n = bytes.len() as i64;
                    m.set(&key(k), bytes, e);
                    (cmd, Reply::Int(n))
                }
            }
        }
        Op::Strlen(k) => {
            let cmd = vec![s("STRLEN"), key(k)];
            match m.string(&key(k)) {
                Err(e) => (cmd, e),
                Ok(c) => (cmd, Reply::Int(c.map_or(0, |(v, _)| v.len() as i64))),
            }
        }
        Op::GetRange(k, st, en) => {
            let cmd = vec![s("GETRANGE"), key(k), st.to_string(), en.to_string()];
            match m.string(&key(k)) {
                Err(e) => (cmd, e),
                Ok(c) => {
                    let v = c.map(|(v, _)| v).unwrap_or_default();
                    (cmd, Reply::Bulk(model_getrange(&v, *st, *en).into()))
                }
            }
        }
        Op::SetRange(k, off, v) => {
            let cmd = vec![s("SETRANGE"), key(k), off.to_string(), val(v)];
            if *off < 0 {
                return (cmd, err("ERR offset is out of range"));
            }
            let cur = match m.string(&key(k)) {
                Err(e) => return (cmd, e),
                Ok(c) => c,
            };
            let patch = val(v).into_bytes();
            if patch.is_empty() {
                return (cmd, Reply::Int(cur.map_or(0, |(v, _)| v.len() as i64)));
            }
            let (mut bytes, e) = cur.unwrap_or_default();
            let off = *off as usize;
            if bytes.len() < off + patch.len() {
                bytes.resize(off + patch.len(), 0);
            }
            bytes[off..off + patch.len()].copy_from_slice(&patch);
            let n = bytes.len() as i64;
            m.set(&key(k), bytes, e);
            (cmd, Reply::Int(n))
        }
        Op::Incr(k) | Op::Decr(k) | Op::IncrBy(k, _) | Op::DecrBy(k, _) => {
            let (cmd, delta) = match op {
                Op::Incr(_) => (vec![s("INCR"), key(k)], Some(1)),
                Op::Decr(_) => (vec![s("DECR"), key(k)], Some(-1)),
                Op::IncrBy(_, d) => (vec![s("INCRBY"), key(k), d.to_string()], Some(*d)),
                Op::DecrBy(_, d) => (vec![s("DECRBY"), key(k), d.to_string()], d.checked_neg()),
                _ => unreachable!("matched above"),
            };
            let Some(delta) = delta else {
                return (cmd, err("ERR decrement would overflow"));
            };
            let cur = match m.string(&key(k)) {
                Err(e) => return (cmd, e),
                Ok(c) => c,
            };
            let (n, e) = match cur {
                None => (0, None),
                Some((v, e)) => match model_int(&v) {
                    Some(n) => (n, e),
                    None => return (cmd, err(NOT_INTEGER)),
                },
            };
            match n.checked_add(delta) {
                None => (cmd, err("ERR increment or decrement would overflow")),
                Some(r) => {
                    m.set(&key(k), r.to_string().into_bytes(), e);
                    (cmd, Reply::Int(r))
                }
            }
        }
        Op::IncrByFloat(..) => unreachable!("handled by model_incrbyfloat"),
        Op::SetBit(k, off, bit) => {
            let cmd = vec![s("SETBIT"), key(k), off.to_string(), bit.to_string()];
            if *bit > 1 {
                return (cmd, err("ERR bit is not an integer or out of range"));
            }
            let cur = match m.string(&key(k)) {
                Err(e) => return (cmd, e),
                Ok(c) => c,
            };
            let (mut bytes, e) = cur.unwrap_or_default();
            let byte = (*off / 8) as usize;
            if bytes.len() <= byte {
                bytes.resize(byte + 1, 0);
            }
            let mask = 0x80u8 >> (off % 8);
            let old = i64::from(bytes[byte] & mask != 0);
            if *bit == 1 {
                bytes[byte] |= mask;
            } else {
                bytes[byte] &= !mask;
            }
            m.set(&key(k), bytes, e);
            (cmd, Reply::Int(old))
        }
        Op::GetBit(k, off) => {
            let cmd = vec![s("GETBIT"), key(k), off.to_string()];
            match m.string(&key(k)) {
                Err(e) => (cmd, e),
                Ok(c) => {
                    let v = c.map(|(v, _)| v).unwrap_or_default();
                    let bit = v
                        .get((*off / 8) as usize)
                        .is_some_and(|b| b & (0x80 >> (off % 8)) != 0);
                    (cmd, Reply::Int(i64::from(bit)))
                }
            }
        }
        Op::BitCount(k) => {
            let cmd = vec![s("BITCOUNT"), key(k)];
            match m.string(&key(k)) {
                Err(e) => (cmd, e),
                Ok(c) => {
                    let v = c.map(|(v, _)| v).unwrap_or_default();
                    let n: u32 = v.iter().map(|b| b.count_ones()).sum();
                    (cmd, Reply::Int(i64::from(n)))
                }
            }
        }
        Op::Bitop(o, d, srcs) => {
            let name = ["AND", "OR", "XOR", "NOT"][*o as usize];
            let mut cmd = vec![s("BITOP"), s(name), key(d)];
            cmd.extend(srcs.iter().map(key));
            if name == "NOT" && srcs.len() != 1 {
                return (
                    cmd,
                    err("ERR BITOP NOT must be called with a single source key."),
                );
            }
            let mut vals = Vec::new();
            for sk in srcs {
                match m.string(&key(sk)) {
                    Err(e) => return (cmd, e),
                    Ok(c) => vals.push(c.map(|(v, _)| v).unwrap_or_default()),
                }
            }
            let max = vals.iter().map(Vec::len).max().unwrap_or(0);
            if max == 0 {
                m.live(&key(d));
                m.map.remove(&key(d));
                return (cmd, Reply::Int(0));
            }
            let at = |v: &Vec<u8>, i: usize| v.get(i).copied().unwrap_or(0);
            let out: Vec<u8> = (0..max)
                .map(|i| {
                    let first = at(&vals[0], i);
                    match name {
                        "NOT" => !first,
                        "AND" => vals[1..].iter().fold(first, |a, v| a & at(v, i)),
                        "OR" => vals[1..].iter().fold(first, |a, v| a | at(v, i)),
                        _ => vals[1..].iter().fold(first, |a, v| a ^ at(v, i)),
                    }
                })
                .collect();
            m.set(&key(d), out, None);
            (cmd, Reply::Int(max as i64))
        }
        Op::Advance(_) => (Vec::new(), Reply::Ok),
    }
}

/// GETRANGE by its documented meaning, computed on a list of positions.
fn model_getrange(v: &[u8], start: i64, end: i64) -> Vec<u8> {
    let n = v.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Vec::new();
    }
    let s = if start < 0 { (n + start).max(0) } else { start };
    let e = if end < 0 {
        (n + end).max(0)
    } else {
        end.min(n - 1)
    };
    (0..n)
        .filter(|i| *i >= s && *i <= e)
        .map(|i| v[i as usize])
        .collect()
}

fn run_model(kind: EngineKind, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut t = T::new(kind);
    plant_list(&t, "L");
    let mut m = Model {
        now: t.now,
        map: BTreeMap::new(),
    };
    m.map.insert("L".into(), (MVal::Coll, None));
    for (step, op) in ops.iter().enumerate() {
        if let Op::Advance(ms) = op {
            t.now += ms;
            m.now += ms;
            continue;
        }
        let (cmd, expect) = model_apply(&mut m, op);
        let parts: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let read_only = matches!(
            op,
            Op::MGet(_) | Op::Strlen(_) | Op::GetRange(..) | Op::GetBit(..) | Op::BitCount(_)
        );
        let got = if read_only { t.r(&parts) } else { t.w(&parts) };
        let want = match expect {
            Expect::Exact(r) => r,
            Expect::AdoptFloat(k, e) => {
                let Reply::Bulk(v) = &got else {
                    return Err(TestCaseError::fail(format!("{cmd:?} gave {got:?}")));
                };
                m.set(&k, v.to_vec(), e);
                got.clone()
            }
        };
        prop_assert_eq!(&got, &want, "step {} {:?}", step, cmd);
        if read_only {
            // The same command inside the apply path must agree.
            prop_assert_eq!(t.w(&parts), want, "apply path, step {}", step);
        }
        for k in KEYS {
            let expect = m.live(k);
            let actual = live_meta(&t, k).map(|meta| {
                let v = match meta.body {
                    Body::String(v) => MVal::Str(v.to_vec()),
                    Body::Collection { .. } => MVal::Coll,
                };
                (v, meta.expire_at)
            });
            prop_assert_eq!(actual, expect, "key {} after step {} {:?}", k, step, cmd);
        }
    }
    Ok(())
}

fn model_based(kind: EngineKind) {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(64);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strategy = prop::collection::vec(op_strategy(), 1..60);
    let result = runner.run(&strategy, |ops| run_model(kind, &ops));
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------
// Targeted tests

fn set_family(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.w(&["SETNX", "k", "v"]), Reply::Int(1));
    assert_eq!(t.w(&["SETNX", "k", "w"]), Reply::Int(0));
    assert_eq!(t.r(&["GET", "k"]), bulk("v"));
    assert_eq!(t.w(&["SETEX", "k", "10", "v2"]), Reply::Ok);
    assert_eq!(expire_at(&t, "k"), Some(t.now + 10_000));
    assert_eq!(t.w(&["PSETEX", "k", "1500", "v3"]), Reply::Ok);
    assert_eq!(expire_at(&t, "k"), Some(t.now + 1500));
    for bad in ["0", "-5"] {
        assert_eq!(
            t.w(&["SETEX", "k", bad, "x"]),
            err("ERR invalid expire time in 'setex' command")
        );
        assert_eq!(
            t.w(&["PSETEX", "k", bad, "x"]),
            err("ERR invalid expire time in 'psetex' command")
        );
    }
    assert_eq!(
        t.w(&["SETEX", "k", "9223372036854775", "x"]),
        err("ERR invalid expire time in 'setex' command")
    );
    assert_eq!(t.w(&["SETEX", "k", "1.5", "x"]), err(NOT_INTEGER));
    assert_eq!(
        t.r(&["GET", "k"]),
        bulk("v3"),
        "failed SETEX left the value"
    );
    t.now += 1500;
    assert_eq!(t.r(&["GET", "k"]), Reply::Nil);
    assert_eq!(t.w(&["SETNX", "k", "again"]), Reply::Int(1));
    assert_eq!(expire_at(&t, "k"), None);
    assert_eq!(
        t.w(&["SETEX", "k", "10"]),
        err("ERR wrong number of arguments for 'setex' command")
    );
}

/// SET's option grammar follows Redis's parser (the handler predates this branch).
fn set_options(kind: EngineKind) {
    let mut t = T::new(kind);
    assert_eq!(t.w(&["SET", "k", "v", "EX", "10", "EX", "20"]), Reply::Ok);
    assert_eq!(expire_at(&t, "k"), Some(t.now + 20_000));
    assert_eq!(t.w(&["SET", "k", "v", "EX", "10", "PX", "10"]), err(SYNTAX));
    assert_eq!(t.w(&["SET", "k", "v", "KEEPTTL", "EX", "10"]), err(SYNTAX));
    assert_eq!(t.w(&["SET", "k", "v", "EX", "10", "KEEPTTL"]), err(SYNTAX));
    assert_eq!(t.w(&["SET", "k", "w", "KEEPTTL", "KEEPTTL"]), Reply::Ok);
    assert_eq!(expire_at(&t, "k"), Some(t.now + 20_000));
    assert_eq!(t.w(&["SET", "k", "v", "PERSIST"]), err(SYNTAX));
    // The whole syntax is checked before the time.
    assert_eq!(t.w(&["SET", "k", "v", "EX", "0", "NX", "XX"]), err(SYNTAX));
    assert_eq!(
        t.w(&["SET", "k", "v", "EX", "0", "NX"]),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(t.r(&["GET", "k"]), bulk("w"));
    plant_list(&t, "list");
    assert_eq!(t.w(&["SETEX", "list", "10", "s"]), Reply::Ok);
    assert!(gc_queued(&t, "list"), "SETEX released the list");
    assert_eq!(t.r(&["GET", "list"]), bulk("s"));
}

fn mget_mset(kind: EngineKind) {
    let mut t = T::new(kind);
    plant_list(&t, "list");
    assert_eq!(t.w(&["MSET", "a", "1", "b", "2", "a", "3"]), Reply::Ok);
    assert_eq!(
        t.r(&["MGET", "a", "b", "nope", "list"]),
        Reply::Array(vec![bulk("3"), bulk("2"), Reply::Nil, Reply::Nil])
    );
    assert_eq!(
        t.w(&["MSET", "a", "1", "b"]),
        err("ERR wrong number of arguments for 'mset' command")
    );
    assert_eq!(
        t.w(&["MSETNX", "x", "1", "y"]),
        err("ERR wrong number of arguments for 'msetnx' command")
    );
    assert_eq!(
        t.w(&["MSET", "a"]),
        err("ERR wrong number of arguments for 'mset' command")
    );
    // MSETNX is all or nothing, and any type counts as existing.
    assert_eq!(t.w(&["MSETNX", "x", "1", "list", "2"]), Reply::Int(0));
    assert_eq!(t.r(&["GET", "x"]), Reply::Nil);
    assert_eq!(t.w(&["MSETNX", "x", "1", "y", "2"]), Reply::Int(1));
    assert_eq!(
        t.r(&["MGET", "x", "y"]),
        Reply::Array(vec![bulk("1"), bulk("2")])
    );
    // MSET clears TTLs and releases a collection it overwrites.
    assert_eq!(t.w(&["SETEX", "x", "100", "v"]), Reply::Ok);
    assert_eq!(t.w(&["MSET", "x", "w", "list", "s"]), Reply::Ok);
    assert_eq!(expire_at(&t, "x"), None);
    assert_eq!(t.r(&["GET", "list"]), bulk("s"));
    assert!(
        gc_queued(&t, "list"),
        "the list's members were queued for GC"
    );
}

fn getset_getdel_getex(kind: EngineKind) {
    let mut t = T::new(kind);
    plant_list(&t, "list");
    assert_eq!(t.w(&["GETSET", "k", "a"]), Reply::Nil);
    assert_eq!(t.w(&["SETEX", "k", "100", "b"]), Reply::Ok);
    assert_eq!(t.w(&["GETSET", "k", "c"]), bulk("b"));
    assert_eq!(expire_at(&t, "k"), None, "GETSET clears the TTL");
    assert_eq!(t.w(&["GETSET", "list", "x"]), err(WRONGTYPE));
    assert_eq!(t.w(&["GETDEL", "list"]), err(WRONGTYPE));
    assert_eq!(t.w(&["GETDEL", "k"]), bulk("c"));
    assert_eq!(t.w(&["GETDEL", "k"]), Reply::Nil);

    assert_eq!(t.w(&["SET", "k", "v"]), Reply::Ok);
    assert_eq!(t.w(&["GETEX", "k"]), bulk("v"));
    assert_eq!(t.w(&["GETEX", "k", "EX", "10"]), bulk("v"));
    assert_eq!(expire_at(&t, "k"), Some(t.now + 10_000));
    assert_eq!(t.w(&["GETEX", "k", "px", "500"]), bulk("v"));
    assert_eq!(expire_at(&t, "k"), Some(t.now + 500));
    let at_s = t.now / 1000 + 60;
    assert_eq!(t.w(&["GETEX", "k", "EXAT", &at_s.to_string()]), bulk("v"));
    assert_eq!(expire_at(&t, "k"), Some(at_s * 1000));
    let at_ms = t.now + 777;
    assert_eq!(t.w(&["GETEX", "k", "PXAT", &at_ms.to_string()]), bulk("v"));
    assert_eq!(expire_at(&t, "k"), Some(at_ms));
    assert_eq!(t.w(&["GETEX", "k", "PERSIST"]), bulk("v"));
    assert_eq!(expire_at(&t, "k"), None);
    for bad in [
        &["GETEX", "k", "EX"][..],
        &["GETEX", "k", "EX", "10", "PX", "10"],
        &["GETEX", "k", "PXAT", "10", "EXAT", "10"],
        &["GETEX", "k", "EX", "10", "PERSIST"],
        &["GETEX", "k", "PERSIST", "EX", "10"],
        &["GETEX", "k", "KEEPTTL"],
        &["GETEX", "k", "NX"],
    ] {
        assert_eq!(t.w(bad), err(SYNTAX), "{bad:?}");
    }
    assert_eq!(t.w(&["GETEX", "k", "PERSIST", "PERSIST"]), bulk("v"));
    // Repeating the same unit is accepted by Redis: the last amount wins.
    assert_eq!(t.w(&["GETEX", "k", "EX", "10", "ex", "20"]), bulk("v"));
    assert_eq!(expire_at(&t, "k"), Some(t.now + 20_000));
    assert_eq!(t.w(&["GETEX", "k", "PERSIST"]), bulk("v"));
    assert_eq!(
        t.w(&["GETEX", "k", "EX", "0"]),
        err("ERR invalid expire time in 'getex' command")
    );
    assert_eq!(t.w(&["GETEX", "k", "EX", "x"]), err(NOT_INTEGER));
    // A missing key is nil before the time is validated; a wrong type is an error.
    assert_eq!(t.w(&["GETEX", "nope", "EX", "0"]), Reply::Nil);
    assert_eq!(t.w(&["GETEX", "list", "EX", "10"]), err(WRONGTYPE));
    // A time already past returns the value and deletes the key.
    assert_eq!(t.w(&["GETEX", "k", "PXAT", "1"]), bulk("v"));
    assert_eq!(t.r(&["GET", "k"]), Reply::Nil);
    assert!(live_meta(&t, "k").is_none());
}

fn append_strlen_ranges(kind: EngineKind) {
    let mut t = T::new(kind);
    plant_list(&t, "list");
    assert_eq!(t.w(&["APPEND", "e", ""]), Reply::Int(0));
    assert_eq!(
        t.r(&["EXISTS", "e"]),
        Reply::Int(1),
        "APPEND creates an empty key"
    );
    assert_eq!(t.w(&["SETEX", "k", "100", "Hello"]), Reply::Ok);
    let ttl = expire_at(&t, "k");
    assert_eq!(t.w(&["APPEND", "k", " World"]), Reply::Int(11));
    assert_eq!(expire_at(&t, "k"), ttl, "APPEND keeps the TTL");
    assert_eq!(t.r(&["STRLEN", "k"]), Reply::Int(11));
    assert_eq!(t.r(&["STRLEN", "nope"]), Reply::Int(0));
    assert_eq!(t.r(&["STRLEN", "list"]), err(WRONGTYPE));
    assert_eq!(t.w(&["APPEND", "list", "x"]), err(WRONGTYPE));

    assert_eq!(t.w(&["SET", "s", "This is a string"]), Reply::Ok);
    for (a, z, want) in [
        ("0", "3", "This"),
        ("-3", "-1", "ing"),
        ("0", "-1", "This is a string"),
        ("10", "100", "string"),
        ("5", "3", ""),
        ("-1", "-5", ""),
        ("-100", "2", "Thi"),
        ("0", "-100", "T"), // Redis 7: a clamped end of 0 still yields the first byte
        ("16", "20", ""),
        (
            "-9223372036854775808",
            "9223372036854775807",
            "This is a string",
        ),
    ] {
        assert_eq!(t.r(&["GETRANGE", "s", a, z]), bulk(want), "{a} {z}");
    }
    assert_eq!(t.r(&["GETRANGE", "nope", "0", "-1"]), bulk(""));
    assert_eq!(t.r(&["GETRANGE", "e", "0", "-1"]), bulk(""));
    assert_eq!(t.r(&["GETRANGE", "s", "a", "1"]), err(NOT_INTEGER));
    assert_eq!(t.r(&["GETRANGE", "list", "0", "1"]), err(WRONGTYPE));

    assert_eq!(t.w(&["SET", "r", "Hello World"]), Reply::Ok);
    assert_eq!(t.w(&["SETRANGE", "r", "6", "Redis"]), Reply::Int(11));
    assert_eq!(t.r(&["GET", "r"]), bulk("Hello Redis"));
    assert_eq!(t.w(&["SETRANGE", "pad", "3", "ab"]), Reply::Int(5));
    assert_eq!(
        t.r(&["GET", "pad"]),
        Reply::Bulk(Bytes::from_static(b"\0\0\0ab"))
    );
    assert_eq!(t.w(&["SETRANGE", "none", "5", ""]), Reply::Int(0));
    assert_eq!(t.r(&["EXISTS", "none"]), Reply::Int(0));
    assert_eq!(t.w(&["SETRANGE", "r", "100", ""]), Reply::Int(11));
    assert_eq!(
        t.w(&["SETRANGE", "r", "-1", "x"]),
        err("ERR offset is out of range")
    );
    assert_eq!(
        t.w(&["SETRANGE", "r", "536870912", "x"]),
        err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    );
    assert_eq!(
        t.w(&["SETRANGE", "r", "9223372036854775807", "x"]),
        err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    );
    assert_eq!(t.w(&["SETRANGE", "r", "x", "x"]), err(NOT_INTEGER));
    assert_eq!(t.w(&["SETRANGE", "list", "0", "x"]), err(WRONGTYPE));
    assert_eq!(t.w(&["SETEX", "r", "100", "abc"]), Reply::Ok);
    let ttl = expire_at(&t, "r");
    assert_eq!(t.w(&["SETRANGE", "r", "1", "Z"]), Reply::Int(3));
    assert_eq!(expire_at(&t, "r"), ttl, "SETRANGE keeps the TTL");
}

fn incr_family(kind: EngineKind) {
    let mut t = T::new(kind);
    plant_list(&t, "list");
    assert_eq!(t.w(&["INCR", "n"]), Reply::Int(1));
    assert_eq!(t.w(&["INCRBY", "n", "41"]), Reply::Int(42));
    assert_eq!(t.w(&["DECR", "n"]), Reply::Int(41));
    assert_eq!(t.w(&["DECRBY", "n", "-9"]), Reply::Int(50));
    assert_eq!(t.r(&["GET", "n"]), bulk("50"));
    assert_eq!(t.w(&["SET", "n", "9223372036854775807"]), Reply::Ok);
    let overflow = err("ERR increment or decrement would overflow");
    assert_eq!(t.w(&["INCR", "n"]), overflow);
    assert_eq!(t.w(&["SET", "n", "-9223372036854775808"]), Reply::Ok);
    assert_eq!(t.w(&["DECR", "n"]), overflow);
    assert_eq!(t.w(&["INCRBY", "n", "-1"]), overflow);
    assert_eq!(
        t.w(&["DECRBY", "n", "-9223372036854775808"]),
        err("ERR decrement would overflow")
    );
    assert_eq!(t.r(&["GET", "n"]), bulk("-9223372036854775808"));
    for bad in [
        "abc",
        "",
        " 1",
        "1 ",
        "01",
        "+1",
        "-0",
        "1.0",
        "99999999999999999999",
    ] {
        assert_eq!(t.w(&["SET", "s", bad]), Reply::Ok);
        assert_eq!(t.w(&["INCR", "s"]), err(NOT_INTEGER), "{bad:?}");
    }
    assert_eq!(t.w(&["INCRBY", "n", "1.5"]), err(NOT_INTEGER));
    assert_eq!(t.w(&["INCR", "list"]), err(WRONGTYPE));
    // The increment is parsed before the key's type is checked.
    assert_eq!(t.w(&["INCRBY", "list", "x"]), err(NOT_INTEGER));
    assert_eq!(t.w(&["SETEX", "t", "100", "5"]), Reply::Ok);
    let ttl = expire_at(&t, "t");
    assert_eq!(t.w(&["INCR", "t"]), Reply::Int(6));
    assert_eq!(expire_at(&t, "t"), ttl, "INCR keeps the TTL");
}

fn incrbyfloat(kind: EngineKind) {
    let mut t = T::new(kind);
    plant_list(&t, "list");
    // The examples of Redis's documentation.
    assert_eq!(t.w(&["SET", "f", "10.50"]), Reply::Ok);
    assert_eq!(t.w(&["INCRBYFLOAT", "f", "0.1"]), bulk("10.6"));
    assert_eq!(t.w(&["INCRBYFLOAT", "f", "-5"]), bulk("5.6"));
    assert_eq!(t.w(&["SET", "f", "5.0e3"]), Reply::Ok);
    assert_eq!(t.w(&["INCRBYFLOAT", "f", "2.0e2"]), bulk("5200"));
    assert_eq!(t.r(&["GET", "f"]), bulk("5200"));
    for (start, incr, want) in [
        ("0.1", "0.2", "0.3"),
        ("1", "-1", "0"),
        ("-0", "0", "0"),
        ("3", "0.000000000000000001", "3"),
        ("0", "1e-17", "0.00000000000000001"),
        ("1e20", "0.1", "100000000000000000000"),
        ("1", "0x10", "17"),
        ("0", "123456789.123456789", "123456789.12345678899873747"),
        ("9223372036854775807", "1", "9223372036854775808"),
    ] {
        assert_eq!(t.w(&["SET", "g", start]), Reply::Ok);
        assert_eq!(
            t.w(&["INCRBYFLOAT", "g", incr]),
            bulk(want),
            "{start} + {incr}"
        );
    }
    assert_eq!(t.w(&["INCRBYFLOAT", "new", "2.5"]), bulk("2.5"));
    let nan = err("ERR increment would produce NaN or Infinity");
    assert_eq!(t.w(&["INCRBYFLOAT", "new", "inf"]), nan);
    assert_eq!(t.w(&["SET", "big", "1.1e4932"]), Reply::Ok);
    assert_eq!(t.w(&["INCRBYFLOAT", "big", "1.1e4932"]), nan);
    for bad in ["abc", "nan", "", " 1", "1e", "1e99999"] {
        assert_eq!(t.w(&["INCRBYFLOAT", "new", bad]), err(NOT_FLOAT), "{bad:?}");
    }
    assert_eq!(t.w(&["SET", "s", "1.5x"]), Reply::Ok);
    assert_eq!(t.w(&["INCRBYFLOAT", "s", "1"]), err(NOT_FLOAT));
    assert_eq!(t.w(&["INCRBYFLOAT", "list", "1"]), err(WRONGTYPE));
    assert_eq!(t.w(&["SETEX", "t", "100", "1.5"]), Reply::Ok);
    let ttl = expire_at(&t, "t");
    assert_eq!(t.w(&["INCRBYFLOAT", "t", "1"]), bulk("2.5"));
    assert_eq!(expire_at(&t, "t"), ttl, "INCRBYFLOAT keeps the TTL");
}

fn setbit_getbit(kind: EngineKind) {
    let mut t = T::new(kind);
    plant_list(&t, "list");
    assert_eq!(t.w(&["SETBIT", "b", "7", "1"]), Reply::Int(0));
    assert_eq!(t.r(&["GET", "b"]), bulk("\u{1}"));
    assert_eq!(t.w(&["SETBIT", "b", "7", "0"]), Reply::Int(1));
    assert_eq!(t.w(&["SETBIT", "b", "1", "1"]), Reply::Int(0));
    assert_eq!(t.r(&["GET", "b"]), bulk("@"));
    assert_eq!(t.r(&["GETBIT", "b", "1"]), Reply::Int(1));
    assert_eq!(t.r(&["GETBIT", "b", "2"]), Reply::Int(0));
    assert_eq!(t.r(&["GETBIT", "b", "100"]), Reply::Int(0));
    assert_eq!(t.r(&["GETBIT", "nope", "0"]), Reply::Int(0));
    // A clearing SETBIT on a missing key still creates it, zero-filled.
    assert_eq!(t.w(&["SETBIT", "z", "10", "0"]), Reply::Int(0));
    assert_eq!(t.r(&["STRLEN", "z"]), Reply::Int(2));
    let bad_offset = err("ERR bit offset is not an integer or out of range");
    for bad in ["-1", "4294967296", "abc", "1.5"] {
        assert_eq!(t.w(&["SETBIT", "b", bad, "1"]), bad_offset, "{bad}");
        assert_eq!(t.r(&["GETBIT", "b", bad]), bad_offset, "{bad}");
    }
    assert_eq!(t.r(&["GETBIT", "b", "4294967295"]), Reply::Int(0));
    let bad_bit = err("ERR bit is not an integer or out of range");
    for bad in ["2", "-1", "x"] {
        assert_eq!(t.w(&["SETBIT", "b", "0", bad]), bad_bit);
    }
    assert_eq!(t.w(&["SETBIT", "list", "0", "1"]), err(WRONGTYPE));
    assert_eq!(t.r(&["GETBIT", "list", "0"]), err(WRONGTYPE));
    assert_eq!(t.w(&["SETEX", "t", "100", "a"]), Reply::Ok);
    let ttl = expire_at(&t, "t");
    assert_eq!(t.w(&["SETBIT", "t", "20", "1"]), Reply::Int(0));
    assert_eq!(expire_at(&t, "t"), ttl, "SETBIT keeps the TTL");
}

fn bitcount_cases(kind: EngineKind) {
    let mut t = T::new(kind);
    plant_list(&t, "list");
    assert_eq!(t.w(&["SET", "k", "foobar"]), Reply::Ok);
    assert_eq!(t.r(&["BITCOUNT", "k"]), Reply::Int(26));
    assert_eq!(t.r(&["BITCOUNT", "k", "0", "0"]), Reply::Int(4));
    assert_eq!(t.r(&["BITCOUNT", "k", "1", "1"]), Reply::Int(6));
    assert_eq!(t.r(&["BITCOUNT", "k", "1", "1", "BYTE"]), Reply::Int(6));
    assert_eq!(t.r(&["BITCOUNT", "k", "5", "30", "BIT"]), Reply::Int(17));
    assert_eq!(t.r(&["BITCOUNT", "k", "-2", "-1"]), Reply::Int(7));
    assert_eq!(t.r(&["BITCOUNT", "k", "-1", "-2"]), Reply::Int(0));
    assert_eq!(t.r(&["BITCOUNT", "k", "3", "1"]), Reply::Int(0));
    assert_eq!(t.r(&["BITCOUNT", "k", "0", "1000"]), Reply::Int(26));
    assert_eq!(t.r(&["BITCOUNT", "nope"]), Reply::Int(0));
    assert_eq!(t.r(&["BITCOUNT", "k", "0"]), err(SYNTAX));
    assert_eq!(t.r(&["BITCOUNT", "k", "0", "1", "WORD"]), err(SYNTAX));
    assert_eq!(t.r(&["BITCOUNT", "k", "0", "1", "BIT", "x"]), err(SYNTAX));
    assert_eq!(t.r(&["BITCOUNT", "k", "a", "1"]), err(NOT_INTEGER));
    // Redis 7 looks the key up before the arguments (Redis 8 reversed this).
    assert_eq!(t.r(&["BITCOUNT", "nope", "a", "1"]), Reply::Int(0));
    assert_eq!(t.r(&["BITCOUNT", "nope", "0"]), Reply::Int(0));
    assert_eq!(t.r(&["BITCOUNT", "list"]), err(WRONGTYPE));
    assert_eq!(t.r(&["BITCOUNT", "list", "a", "1"]), err(WRONGTYPE));
}

fn bitpos_cases(kind: EngineKind) {
    let mut t = T::new(kind);
    plant_list(&t, "list");
    // The examples of Redis's documentation.
    assert_eq!(t.w(&["SET", "m", ""]), Reply::Ok);
    // "\xff\xf0\x00" cannot be written through &str; build it with SETBIT.
    for bit in 0..12 {
        assert_eq!(t.w(&["SETBIT", "m", &bit.to_string(), "1"]), Reply::Int(0));
    }
    assert_eq!(t.w(&["SETBIT", "m", "23", "0"]), Reply::Int(0));
    assert_eq!(t.r(&["BITPOS", "m", "0"]), Reply::Int(12));
    assert_eq!(t.w(&["SET", "m", ""]), Reply::Ok);
    assert_eq!(t.w(&["SETBIT", "m", "15", "1"]), Reply::Int(0));
    assert_eq!(t.w(&["SETBIT", "m", "16", "1"]), Reply::Int(0));
    // m = 00 00 00 00 | 00 00 00 01 | 10 00 00 00  (bytes 0x00 0x01 0x80)
    assert_eq!(t.r(&["BITPOS", "m", "1"]), Reply::Int(15));
    assert_eq!(t.r(&["BITPOS", "m", "1", "2"]), Reply::Int(16));
    assert_eq!(
        t.r(&["BITPOS", "m", "1", "2", "-1", "BYTE"]),
        Reply::Int(16)
    );
    assert_eq!(t.r(&["BITPOS", "m", "1", "7", "15", "BIT"]), Reply::Int(15));
    assert_eq!(t.r(&["BITPOS", "m", "1", "7", "14", "BIT"]), Reply::Int(-1));
    assert_eq!(
        t.r(&["BITPOS", "m", "0", "15", "16", "BIT"]),
        Reply::Int(-1)
    );
    assert_eq!(
        t.r(&["BITPOS", "m", "0", "15", "17", "BIT"]),
        Reply::Int(17)
    );
    // All ones: a clear bit is found past the end unless the end was given.
    assert_eq!(t.w(&["SET", "ones", "\u{7f}"]), Reply::Ok);
    assert_eq!(t.w(&["SETBIT", "ones", "0", "1"]), Reply::Int(0));
    assert_eq!(t.r(&["BITPOS", "ones", "0"]), Reply::Int(8));
    assert_eq!(t.r(&["BITPOS", "ones", "0", "0"]), Reply::Int(8));
    assert_eq!(t.r(&["BITPOS", "ones", "0", "0", "-1"]), Reply::Int(-1));
    assert_eq!(t.r(&["BITPOS", "ones", "1", "0", "-1"]), Reply::Int(0));
    assert_eq!(t.r(&["BITPOS", "ones", "0", "2"]), Reply::Int(-1));
    // Missing key: endless zeros; empty string: nothing at all.
    assert_eq!(t.r(&["BITPOS", "nope", "0"]), Reply::Int(0));
    assert_eq!(t.r(&["BITPOS", "nope", "1"]), Reply::Int(-1));
    assert_eq!(t.w(&["SET", "empty", ""]), Reply::Ok);
    assert_eq!(t.r(&["BITPOS", "empty", "0"]), Reply::Int(-1));
    assert_eq!(t.r(&["BITPOS", "empty", "1"]), Reply::Int(-1));
    assert_eq!(
        t.r(&["BITPOS", "m", "2"]),
        err("ERR The bit argument must be 1 or 0.")
    );
    assert_eq!(t.r(&["BITPOS", "m", "x"]), err(NOT_INTEGER));
    assert_eq!(t.r(&["BITPOS", "m", "1", "0", "1", "BITS"]), err(SYNTAX));
    assert_eq!(
        t.r(&["BITPOS", "m", "1", "0", "1", "BIT", "x"]),
        err(SYNTAX)
    );
    // Redis 7: the bit is checked first, then the key, then the range.
    assert_eq!(t.r(&["BITPOS", "nope", "1", "x"]), Reply::Int(-1));
    assert_eq!(
        t.r(&["BITPOS", "nope", "0", "0", "1", "WORD"]),
        Reply::Int(0)
    );
    assert_eq!(
        t.r(&["BITPOS", "nope", "3", "x"]),
        err("ERR The bit argument must be 1 or 0.")
    );
    assert_eq!(t.r(&["BITPOS", "list", "1"]), err(WRONGTYPE));
    assert_eq!(t.r(&["BITPOS", "list", "1", "x"]), err(WRONGTYPE));
}

fn bitop_cases(kind: EngineKind) {
    let mut t = T::new(kind);
    plant_list(&t, "list");
    assert_eq!(t.w(&["SET", "a", "foobar"]), Reply::Ok);
    assert_eq!(t.w(&["SET", "b", "abcdef"]), Reply::Ok);
    assert_eq!(t.w(&["BITOP", "AND", "d", "a", "b"]), Reply::Int(6));
    assert_eq!(t.r(&["GET", "d"]), bulk("`bc`ab"));
    assert_eq!(t.w(&["BITOP", "or", "d", "a", "b"]), Reply::Int(6));
    assert_eq!(t.r(&["GET", "d"]), bulk("goofev"));
    assert_eq!(t.w(&["SET", "c", "ab"]), Reply::Ok);
    assert_eq!(t.w(&["BITOP", "XOR", "d", "c", "nope"]), Reply::Int(2));
    assert_eq!(t.r(&["GET", "d"]), bulk("ab"));
    // Missing sources are zeros: AND with one is all zeros, as long as the longest.
    assert_eq!(t.w(&["BITOP", "AND", "d", "c", "nope"]), Reply::Int(2));
    assert_eq!(t.r(&["GET", "d"]), Reply::Bulk(Bytes::from_static(b"\0\0")));
    assert_eq!(t.w(&["BITOP", "NOT", "d", "c"]), Reply::Int(2));
    assert_eq!(
        t.r(&["GET", "d"]),
        Reply::Bulk(Bytes::from_static(&[!b'a', !b'b']))
    );
    assert_eq!(
        t.w(&["BITOP", "NOT", "d", "a", "b"]),
        err("ERR BITOP NOT must be called with a single source key.")
    );
    assert_eq!(t.w(&["BITOP", "NAND", "d", "a"]), err(SYNTAX));
    assert_eq!(t.w(&["BITOP", "AND", "d", "a", "list"]), err(WRONGTYPE));
    // An empty result deletes the destination.
    assert_eq!(t.w(&["SETEX", "d", "100", "x"]), Reply::Ok);
    assert_eq!(t.w(&["BITOP", "OR", "d", "nope", "nope2"]), Reply::Int(0));
    assert_eq!(t.r(&["EXISTS", "d"]), Reply::Int(0));
    // The destination may hold any type; it is replaced and loses its TTL.
    assert_eq!(t.w(&["BITOP", "OR", "list", "c"]), Reply::Int(2));
    assert_eq!(t.r(&["GET", "list"]), bulk("ab"));
    assert!(gc_queued(&t, "list"));
    assert_eq!(t.w(&["SETEX", "d", "100", "x"]), Reply::Ok);
    assert_eq!(t.w(&["BITOP", "OR", "d", "c"]), Reply::Int(2));
    assert_eq!(expire_at(&t, "d"), None);
}

fn lcs_cases(kind: EngineKind) {
    let mut t = T::new(kind);
    plant_list(&t, "list");
    assert_eq!(
        t.w(&["MSET", "key1", "ohmytext", "key2", "mynewtext"]),
        Reply::Ok
    );
    assert_eq!(t.r(&["LCS", "key1", "key2"]), bulk("mytext"));
    assert_eq!(t.r(&["LCS", "key1", "key2", "LEN"]), Reply::Int(6));
    let range = |a: i64, b: i64| ints(&[a, b]);
    let m = |a: (i64, i64), b: (i64, i64), len: Option<i64>| {
        let mut v = vec![range(a.0, a.1), range(b.0, b.1)];
        v.extend(len.map(Reply::Int));
        Reply::Array(v)
    };
    let idx = |matches: Vec<Reply>, len: i64| {
        Reply::Map(vec![
            (bulk("matches"), Reply::Array(matches)),
            (bulk("len"), Reply::Int(len)),
        ])
    };
    assert_eq!(
        t.r(&["LCS", "key1", "key2", "IDX"]),
        idx(vec![m((4, 7), (5, 8), None), m((2, 3), (0, 1), None)], 6)
    );
    assert_eq!(
        t.r(&["LCS", "key1", "key2", "IDX", "MINMATCHLEN", "4"]),
        idx(vec![m((4, 7), (5, 8), None)], 6)
    );
    assert_eq!(
        t.r(&[
            "LCS",
            "key1",
            "key2",
            "IDX",
            "MINMATCHLEN",
            "4",
            "WITHMATCHLEN"
        ]),
        idx(vec![m((4, 7), (5, 8), Some(4))], 6)
    );
    assert_eq!(
        t.r(&[
            "LCS",
            "key1",
            "key2",
            "idx",
            "withmatchlen",
            "minmatchlen",
            "-5"
        ]),
        idx(
            vec![m((4, 7), (5, 8), Some(4)), m((2, 3), (0, 1), Some(2))],
            6
        )
    );
    assert_eq!(t.r(&["LCS", "key1", "nope"]), bulk(""));
    assert_eq!(t.r(&["LCS", "nope", "nope", "LEN"]), Reply::Int(0));
    assert_eq!(t.r(&["LCS", "nope", "nope", "IDX"]), idx(Vec::new(), 0));
    assert_eq!(
        t.r(&["LCS", "key1", "key2", "LEN", "IDX"]),
        err("ERR If you want both the length and indexes, please just use IDX.")
    );
    assert_eq!(t.r(&["LCS", "key1", "key2", "FOO"]), err(SYNTAX));
    assert_eq!(t.r(&["LCS", "key1", "key2", "MINMATCHLEN"]), err(SYNTAX));
    assert_eq!(
        t.r(&["LCS", "key1", "key2", "MINMATCHLEN", "x"]),
        err(NOT_INTEGER)
    );
    assert_eq!(
        t.r(&["LCS", "key1", "list"]),
        err("ERR The specified keys must contain string values")
    );
    // Whole strings in common, and nothing in common.
    assert_eq!(
        t.w(&["MSET", "x", "abc", "y", "abc", "z", "xyz"]),
        Reply::Ok
    );
    assert_eq!(
        t.r(&["LCS", "x", "y", "IDX", "WITHMATCHLEN"]),
        idx(vec![m((0, 2), (0, 2), Some(3))], 3)
    );
    assert_eq!(t.r(&["LCS", "x", "z"]), bulk(""));
}

/// The LCS length by a plain recursion with memo, written independently of the handler.
fn lcs_len(a: &[u8], b: &[u8]) -> i64 {
    let mut memo = vec![vec![-1i64; b.len() + 1]; a.len() + 1];
    fn go(a: &[u8], b: &[u8], i: usize, j: usize, memo: &mut Vec<Vec<i64>>) -> i64 {
        if i == a.len() || j == b.len() {
            return 0;
        }
        if memo[i][j] >= 0 {
            return memo[i][j];
        }
        let r = if a[i] == b[j] {
            1 + go(a, b, i + 1, j + 1, memo)
        } else {
            go(a, b, i + 1, j, memo).max(go(a, b, i, j + 1, memo))
        };
        memo[i][j] = r;
        r
    }
    go(a, b, 0, 0, &mut memo)
}

/// True if `sub` is a subsequence of `s`.
fn is_subsequence(sub: &[u8], s: &[u8]) -> bool {
    let mut it = s.iter();
    sub.iter().all(|c| it.any(|x| x == c))
}

fn lcs_property(kind: EngineKind) {
    let cell = std::cell::RefCell::new(T::new(kind));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let strat = ("[abc]{0,12}", "[abc]{0,12}");
    let result = runner.run(&strat, |(a, c)| {
        let mut t = cell.borrow_mut();
        t.w(&["MSET", "p", &a, "q", &c]);
        let want = lcs_len(a.as_bytes(), c.as_bytes());
        prop_assert_eq!(t.r(&["LCS", "p", "q", "LEN"]), Reply::Int(want));
        let Reply::Bulk(s) = t.r(&["LCS", "p", "q"]) else {
            return Err(TestCaseError::fail("LCS did not reply with a string"));
        };
        prop_assert_eq!(s.len() as i64, want);
        prop_assert!(is_subsequence(&s, a.as_bytes()) && is_subsequence(&s, c.as_bytes()));
        // IDX ranges: equal lengths, equal bytes, lengths summing to the LCS length.
        let Reply::Map(pairs) = t.r(&["LCS", "p", "q", "IDX", "WITHMATCHLEN"]) else {
            return Err(TestCaseError::fail("LCS IDX did not reply with a map"));
        };
        let Reply::Array(matches) = &pairs[0].1 else {
            return Err(TestCaseError::fail("matches is not an array"));
        };
        let mut total = 0;
        for mm in matches {
            let Reply::Array(parts) = mm else {
                return Err(TestCaseError::fail("match is not an array"));
            };
            let get = |r: &Reply| match r {
                Reply::Array(v) => match (&v[0], &v[1]) {
                    (Reply::Int(x), Reply::Int(y)) => (*x as usize, *y as usize),
                    _ => (1, 0),
                },
                _ => (1, 0),
            };
            let (a0, a1) = get(&parts[0]);
            let (b0, b1) = get(&parts[1]);
            prop_assert_eq!(&a.as_bytes()[a0..=a1], &c.as_bytes()[b0..=b1]);
            prop_assert_eq!(&parts[2], &Reply::Int((a1 - a0 + 1) as i64));
            total += (a1 - a0 + 1) as i64;
        }
        prop_assert_eq!(total, want);
        prop_assert_eq!(&pairs[1].1, &Reply::Int(want));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// BITCOUNT/BITPOS ranges against a brute force over the bits (documented semantics:
/// indexes from the end when negative, clamped; BYTE ranges cover whole bytes).
fn bit_ranges_property(kind: EngineKind) {
    let cell = std::cell::RefCell::new(T::new(kind));
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    // Strings up to 40 bytes, mostly zeros or mostly ones, so word-at-a-time scans are
    // exercised in both directions.
    let strat = (
        0usize..40,
        any::<bool>(),
        prop::collection::vec(0usize..320, 0..6),
        (-45i64..45, -45i64..45),
        any::<bool>(),
        any::<bool>(),
    );
    let result = runner.run(&strat, |(n, ones, flips, (start, end), bit_unit, want)| {
        let mut t = cell.borrow_mut();
        let scale_arg = if bit_unit { 8 } else { 1 };
        let (start, end) = (start * scale_arg, end * scale_arg);
        t.w(&["DEL", "v", "z"]);
        let mut bits = vec![ones; n * 8];
        if n == 0 {
            t.w(&["SET", "v", ""]);
        } else {
            t.w(&["SETBIT", "z", &(n * 8 - 1).to_string(), "0"]);
            t.w(&["BITOP", if ones { "NOT" } else { "OR" }, "v", "z"]);
        }
        for &f in flips.iter().filter(|&&f| f < n * 8) {
            t.w(&["SETBIT", "v", &f.to_string(), if ones { "0" } else { "1" }]);
            bits[f] = !ones;
        }
        let set_bits: Vec<usize> = (0..bits.len()).filter(|&i| bits[i]).collect();
        let unit = if bit_unit { "BIT" } else { "BYTE" };
        let scale = if bit_unit { 1 } else { 8 };
        let total = bits.len() as i64 / scale;
        // The covered units, brute force.
        let norm = |i: i64| if i < 0 { total + i } else { i };
        let (s, e) = (norm(start).max(0), norm(end).max(0).min(total - 1));
        let covered: Vec<usize> = (0..bits.len())
            .filter(|&i| {
                let u = i as i64 / scale;
                u >= s && u <= e
            })
            .collect();
        // BITCOUNT (not BITPOS) answers 0 at once for two negative indexes out of order.
        let empty_neg = start < 0 && end < 0 && start > end;
        let count = if empty_neg {
            0
        } else {
            covered.iter().filter(|&&i| bits[i]).count() as i64
        };
        let (a, z) = (start.to_string(), end.to_string());
        prop_assert_eq!(
            t.r(&["BITCOUNT", "v", &a, &z, unit]),
            Reply::Int(count),
            "{:?} {} {} {}",
            set_bits,
            start,
            end,
            unit
        );
        let pos = covered
            .iter()
            .find(|&&i| bits[i] == want)
            .map_or(-1, |&i| i as i64);
        let w = if want { "1" } else { "0" };
        prop_assert_eq!(t.r(&["BITPOS", "v", w, &a, &z, unit]), Reply::Int(pos));
        // Without an end (BYTE units): a clear bit may be found just past the string.
        let bytes = n as i64;
        let s_byte = if start < 0 { bytes + start } else { start }.max(0);
        let open_pos = (s_byte * 8..bytes * 8)
            .find(|&i| bits[i as usize] == want)
            .unwrap_or(if want || s_byte >= bytes {
                -1
            } else {
                bytes * 8
            });
        prop_assert_eq!(t.r(&["BITPOS", "v", w, &a]), Reply::Int(open_pos));
        if start == 0 {
            prop_assert_eq!(t.r(&["BITPOS", "v", w]), Reply::Int(open_pos));
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn big_strings_stay_bounded(kind: EngineKind) {
    let mut t = T::new(kind);
    // The last valid offset builds a 512 MiB string only if asked; checking the bound
    // must not allocate. APPEND past the limit is refused before copying.
    assert_eq!(
        t.w(&["SETRANGE", "k", "536870911", "xy"]),
        err("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    );
    assert_eq!(t.r(&["EXISTS", "k"]), Reply::Int(0));
    assert_eq!(
        t.w(&["SETRANGE", "k", "1048575", "x"]),
        Reply::Int(1_048_576)
    );
    assert_eq!(t.r(&["STRLEN", "k"]), Reply::Int(1_048_576));
    assert_eq!(t.r(&["BITCOUNT", "k"]), Reply::Int(4)); // "x" is 0b0111_1000
    assert_eq!(t.r(&["BITPOS", "k", "1"]), Reply::Int(1_048_575 * 8 + 1));
}

all_engines!(
    model_based,
    set_family,
    set_options,
    mget_mset,
    getset_getdel_getex,
    append_strlen_ranges,
    incr_family,
    incrbyfloat,
    setbit_getbit,
    bitcount_cases,
    bitpos_cases,
    bitop_cases,
    lcs_cases,
    lcs_property,
    bit_ranges_property,
    big_strings_stay_bounded,
);
