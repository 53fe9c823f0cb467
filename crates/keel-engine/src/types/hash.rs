//! Hash commands (Redis's t_hash.c).
//!
//! # Layout
//!
//! The metadata record is `Body::Collection { version, len, list: None }` with `len` the
//! number of fields. Each field is one sub-key, its value the storage value:
//!
//! ```text
//! keys::sub_key(db, key, version, field)    value = the field's value
//! ```
//!
//! Fields are therefore kept in bytewise order, which is the order HKEYS, HVALS, HGETALL
//! and HSCAN return (Redis leaves it unspecified; a fixed order keeps replicas and
//! replies deterministic). HSET/HGET/HDEL/HEXISTS are point operations (O(log n) each);
//! HLEN reads the metadata; HKEYS/HVALS/HGETALL are one range scan. HSCAN resumes after
//! the last field it returned, so every field present for the whole scan is returned at
//! least once. HRANDFIELD draws positions with the entry's deterministic generator and
//! finds a few of them by position in storage (O(log n) each, where the engine keeps
//! order statistics: memory and bitcask), or collects them in one scan up to the
//! highest drawn position (O(n) in the worst case: many positions, or the lsm engine).

use std::collections::{BTreeSet, HashSet};
use std::ops::Bound;

use bytes::Bytes;
use keel_storage::{Direction, ScanRange};

use crate::args::{eq_ci, int_arg, parse_f64, parse_i64};
use crate::command::{flags::*, CommandSpec};
use crate::cursor::parse_cursor;
use crate::error::{fail, CmdError, CmdResult, EngineError};
use crate::exec::Exec;
use crate::glob::glob_match;
use crate::keys;
use crate::meta::{Body, KeyType, Meta};
use crate::reply::{errors, Reply};
use crate::types::set::{entries_at_ranks, key_suffixes, Visit};

/// HINCRBY on a value that is not an integer.
const HASH_NOT_INTEGER: &str = "ERR hash value is not an integer";
/// HINCRBYFLOAT on a value that is not a float.
const HASH_NOT_FLOAT: &str = "ERR hash value is not a float";
/// HINCRBYFLOAT with an infinite increment.
const NAN_OR_INF: &str = "ERR value is NaN or Infinity";
/// HINCRBYFLOAT whose result is not finite.
const WOULD_BE_NAN_OR_INF: &str = "ERR increment would produce NaN or Infinity";
/// HRANDFIELD count of i64::MIN.
const COUNT_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
/// HRANDFIELD count too large to answer.
const OUT_OF_RANGE: &str = "ERR value is out of range";

/// Largest number of picks HRANDFIELD answers with a negative (repeating) count. Redis
/// streams any count; keel builds the reply in memory, so it refuses counts whose reply
/// could not reasonably be built rather than exhausting memory.
pub const MAX_RANDOM_PICKS: u64 = 1_000_000;

/// Default HSCAN COUNT.
const SCAN_DEFAULT_COUNT: u64 = 10;

/// The hash commands.
pub static COMMANDS: &[CommandSpec] = &[
    spec("hset", -4, WRITE | DENYOOM | FAST | HOLDS_META, "Creates or modifies the value of a field in a hash.", hset),
    spec("hsetnx", 4, WRITE | DENYOOM | FAST | HOLDS_META, "Sets the value of a field in a hash only when the field doesn't exist.", hsetnx),
    spec("hmset", -4, WRITE | DENYOOM | FAST | HOLDS_META, "Sets the values of multiple fields.", hmset),
    spec("hget", 3, READONLY | FAST, "Returns the value of a field in a hash.", hget),
    spec("hmget", -3, READONLY | FAST, "Returns the values of all fields in a hash.", hmget),
    spec("hdel", -3, WRITE | FAST, "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.", hdel),
    spec("hlen", 2, READONLY | FAST, "Returns the number of fields in a hash.", hlen),
    spec("hstrlen", 3, READONLY | FAST, "Returns the length of the value of a field.", hstrlen),
    spec("hexists", 3, READONLY | FAST, "Determines whether a field exists in a hash.", hexists),
    spec("hkeys", 2, READONLY, "Returns all fields in a hash.", hkeys),
    spec("hvals", 2, READONLY, "Returns all values in a hash.", hvals),
    spec("hgetall", 2, READONLY, "Returns all fields and values in a hash.", hgetall),
    spec("hincrby", 4, WRITE | DENYOOM | FAST, "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.", hincrby),
    spec("hincrbyfloat", 4, WRITE | DENYOOM | FAST, "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.", hincrbyfloat),
    spec("hrandfield", -2, READONLY | RANDOM, "Returns one or more random fields from a hash.", hrandfield),
    spec("hscan", -3, READONLY, "Iterates over fields and values of a hash.", hscan),
];

/// A hash table entry (one key at position 1, group "hash").
const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    summary: &'static str,
    handler: crate::command::Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "hash",
        summary,
        handler,
    }
}

/// The hash at `key` (WRONGTYPE for other types) and its version.
fn load(ex: &mut Exec, key: &[u8]) -> CmdResult<Option<(Meta, u64)>> {
    match ex.typed_or_held(key, KeyType::Hash)? {
        Some(m) => match m.version() {
            Some(v) => Ok(Some((m, v))),
            None => Err(EngineError::corrupt("hash metadata", key, "no collection version").into()),
        },
        None => Ok(None),
    }
}

/// The metadata of a hash with `len` fields under `version`.
fn hash_meta(version: u64, len: u64, expire_at: Option<u64>) -> Meta {
    Meta {
        kind: KeyType::Hash,
        expire_at,
        body: Body::Collection {
            version,
            len,
            list: None,
        },
    }
}

/// A hash being written: its old record (if it existed) and its new shape.
struct Writing {
    old: Option<Meta>,
    version: u64,
    len: u64,
    /// For a hash this command creates, the fields it set so far: its version is new, so
    /// storage holds none of its fields and a field is new unless set here before. The
    /// lsm engine answered each of those reads with a seek through fjall (YCSB's load:
    /// ten per HSET).
    created: Option<HashSet<Bytes>>,
}

impl Writing {
    /// Opens `key` for writing, creating an empty hash shape if it does not exist.
    fn open(ex: &mut Exec, key: &[u8]) -> CmdResult<Writing> {
        Ok(match load(ex, key)? {
            Some((m, version)) => Writing {
                len: m.len(),
                old: Some(m),
                version,
                created: None,
            },
            None => Writing {
                old: None,
                version: ex.new_version(),
                len: 0,
                created: Some(HashSet::new()),
            },
        })
    }

    fn field_key(&self, ex: &Exec, key: &[u8], field: &[u8]) -> Bytes {
        keys::sub_key(ex.db, key, self.version, field)
    }

    /// Sets `field`; true if it was new.
    fn set(&mut self, ex: &mut Exec, key: &[u8], field: &Bytes, value: Bytes) -> CmdResult<bool> {
        let sk = self.field_key(ex, key, field);
        let new = match &mut self.created {
            Some(set) => set.insert(field.clone()),
            None => !ex.contains(&sk)?,
        };
        ex.put(sk, value)?;
        if new {
            self.len += 1;
        }
        Ok(new)
    }

    /// Writes the new metadata (or deletes the key if no field is left). A hash that was
    /// there before and has no expiry keeps its metadata held for the group's next
    /// command instead (`Exec::put_or_hold_meta`): a pipeline of HSETs on one hash
    /// rewrote and re-read its record per command, though only the length and the
    /// record's mod index change, and the length only when a field is new.
    fn finish(self, ex: &mut Exec, key: &[u8]) -> CmdResult<()> {
        let expire_at = self.old.as_ref().and_then(|m| m.expire_at);
        if self.len == 0 {
            if let Some(o) = &self.old {
                ex.delete_emptied(key, o)?;
            }
            return Ok(());
        }
        ex.put_or_hold_meta(
            key,
            hash_meta(self.version, self.len, expire_at),
            self.old.as_ref(),
        )
    }
}

/// Fields and values of (`key`, `version`) within `range`, in field order.
fn scan_fields<'a>(
    ex: &'a Exec,
    key: &[u8],
    range: ScanRange,
) -> impl Iterator<Item = CmdResult<(Bytes, Bytes)>> + 'a {
    let plen = keys::sub_prefix_len(key);
    ex.scan(range, Direction::Forward).map(move |r| {
        let (k, v) = r?;
        Ok((keys::sub_suffix(k, plen, "hash field")?, v))
    })
}

/// Every field and value of a hash, in field order.
fn all_fields(ex: &Exec, key: &[u8], version: u64) -> CmdResult<Vec<(Bytes, Bytes)>> {
    scan_fields(ex, key, keys::sub_range(ex.db, key, version)).collect()
}

fn hset(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let added = set_pairs(ex, args, "hset")?;
    Ok(Reply::Int(added))
}

fn hmset(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    set_pairs(ex, args, "hmset")?;
    Ok(Reply::Ok)
}

/// HSET/HMSET: sets every field/value pair; returns how many fields were new.
fn set_pairs(ex: &mut Exec, args: &[Bytes], name: &str) -> CmdResult<i64> {
    if !args.len().is_multiple_of(2) {
        return fail(errors::wrong_args(name));
    }
    let key = &args[1];
    let mut w = Writing::open(ex, key)?;
    let mut added = 0;
    for pair in args[2..].chunks_exact(2) {
        if w.set(ex, key, &pair[0], pair[1].clone())? {
            added += 1;
        }
    }
    w.finish(ex, key)?;
    ex.notify('h', "hset", key);
    Ok(added)
}

fn hsetnx(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let mut w = Writing::open(ex, key)?;
    let sk = w.field_key(ex, key, &args[2]);
    if ex.contains(&sk)? {
        return Ok(Reply::Int(0));
    }
    w.set(ex, key, &args[2], args[3].clone())?;
    w.finish(ex, key)?;
    ex.notify('h', "hset", key);
    Ok(Reply::Int(1))
}

/// The value of `field`, None if the hash or field does not exist.
fn field_value(ex: &mut Exec, key: &[u8], field: &[u8]) -> CmdResult<Option<Bytes>> {
    match load(ex, key)? {
        Some((_, version)) => Ok(ex.get(&keys::sub_key(ex.db, key, version, field))?),
        None => Ok(None),
    }
}

fn hget(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    Ok(Reply::opt_bulk(field_value(ex, &args[1], &args[2])?))
}

fn hmget(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let version = load(ex, key)?.map(|(_, v)| v);
    let mut out = Vec::with_capacity(args.len() - 2);
    for field in &args[2..] {
        let v = match version {
            Some(ver) => ex.get(&keys::sub_key(ex.db, key, ver, field))?,
            None => None,
        };
        out.push(Reply::opt_bulk(v));
    }
    Ok(Reply::Array(out))
}

fn hdel(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let Some((old, version)) = load(ex, key)? else {
        return Ok(Reply::Int(0));
    };
    let mut len = old.len();
    let mut removed = 0;
    for field in &args[2..] {
        let sk = keys::sub_key(ex.db, key, version, field);
        if ex.contains(&sk)? {
            ex.delete(sk)?;
            removed += 1;
            len = len.saturating_sub(1);
        }
    }
    if removed > 0 {
        if len == 0 {
            ex.delete_emptied(key, &old)?;
        } else {
            ex.put_meta(key, &hash_meta(version, len, old.expire_at), Some(&old))?;
        }
        ex.notify('h', "hdel", key);
    }
    Ok(Reply::Int(removed))
}

fn hlen(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let n = load(ex, &args[1])?.map_or(0, |(m, _)| m.len());
    Ok(Reply::Int(n as i64))
}

fn hstrlen(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let n = field_value(ex, &args[1], &args[2])?.map_or(0, |v| v.len());
    Ok(Reply::Int(n as i64))
}

fn hexists(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let found = field_value(ex, &args[1], &args[2])?.is_some();
    Ok(Reply::Int(i64::from(found)))
}

fn hkeys(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    getall_generic(ex, &args[1], true, false)
}

fn hvals(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    getall_generic(ex, &args[1], false, true)
}

fn hgetall(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    getall_generic(ex, &args[1], true, true)
}

fn getall_generic(ex: &mut Exec, key: &[u8], fields: bool, values: bool) -> CmdResult<Reply> {
    let Some((_, version)) = load(ex, key)? else {
        return Ok(if fields && values {
            Reply::Map(Vec::new())
        } else {
            Reply::Array(Vec::new())
        });
    };
    let range = keys::sub_range(ex.db, key, version);
    if !fields {
        // HVALS: values only, no field names copied out of storage.
        return Ok(Reply::Bulks(ex.scan_values(
            range,
            Direction::Forward,
            usize::MAX,
        )?));
    }
    let prefix = keys::sub_prefix_len(key);
    let all = Visit::all(prefix);
    Ok(if values {
        // HGETALL: field, value, field, value, each copied once into the reply's buffer.
        Reply::BulkMap(key_suffixes(
            ex,
            range,
            Visit {
                values: true,
                ..all
            },
        )?)
    } else {
        Reply::Bulks(key_suffixes(ex, range, all)?)
    })
}

fn hincrby(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let incr = int_arg(&args[3])?;
    let key = &args[1];
    let mut w = Writing::open(ex, key)?;
    let sk = w.field_key(ex, key, &args[2]);
    let cur = match ex.get(&sk)? {
        Some(v) => match parse_i64(&v) {
            Some(n) => n,
            None => return fail(HASH_NOT_INTEGER),
        },
        None => 0,
    };
    let Some(new) = cur.checked_add(incr) else {
        return fail(errors::OVERFLOW);
    };
    w.set(ex, key, &args[2], Bytes::from(new.to_string()))?;
    w.finish(ex, key)?;
    ex.notify('h', "hincrby", key);
    Ok(Reply::Int(new))
}

fn hincrbyfloat(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let Some(incr) = parse_f64(&args[3]) else {
        return fail(errors::NOT_FLOAT);
    };
    if !incr.is_finite() {
        return fail(NAN_OR_INF);
    }
    let key = &args[1];
    let mut w = Writing::open(ex, key)?;
    let sk = w.field_key(ex, key, &args[2]);
    let cur = match ex.get(&sk)? {
        Some(v) => match parse_f64(&v) {
            Some(n) => n,
            None => return fail(HASH_NOT_FLOAT),
        },
        None => 0.0,
    };
    let new = cur + incr;
    if !new.is_finite() {
        return fail(WOULD_BE_NAN_OR_INF);
    }
    let text = Bytes::from(format_human(new));
    w.set(ex, key, &args[2], text.clone())?;
    w.finish(ex, key)?;
    ex.notify('h', "hincrbyfloat", key);
    Ok(Reply::Bulk(text))
}

/// Formats a float result the way Redis's INCRBYFLOAT family stores it ("human" form:
/// fixed notation, at most 17 decimals, no trailing zeros). Redis computes in long
/// double; keel in f64, printing the shortest decimal that round-trips.
pub fn format_human(v: f64) -> String {
    let mut s = format!("{v}");
    if let Some(dot) = s.find('.') {
        if s.len() - dot - 1 > 17 {
            s = format!("{v:.17}");
            while s.ends_with('0') {
                s.pop();
            }
            if s.ends_with('.') {
                s.pop();
            }
        }
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

fn hrandfield(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    if args.len() == 2 {
        let Some((m, version)) = load(ex, key)? else {
            return Ok(Reply::Nil);
        };
        let pos = ex.rng.below(m.len());
        let picked = pick_positions(ex, key, version, m.len(), &BTreeSet::from([pos]))?;
        return Ok(picked
            .into_iter()
            .next()
            .map_or(Reply::Nil, |(f, _)| Reply::Bulk(f)));
    }
    let count = int_arg(&args[2])?;
    if count == i64::MIN {
        return fail(COUNT_RANGE);
    }
    let with_values = match args.get(3) {
        None => false,
        Some(a) if args.len() == 4 && eq_ci(a, "WITHVALUES") => true,
        Some(_) => return fail(errors::SYNTAX),
    };
    if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return fail(OUT_OF_RANGE);
    }
    let Some((m, version)) = load(ex, key)? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let size = m.len();
    if count == 0 || size == 0 {
        return Ok(Reply::Array(Vec::new()));
    }
    let emit = |out: &mut Vec<Reply>, f: Bytes, v: Bytes| {
        out.push(Reply::Bulk(f));
        if with_values {
            out.push(Reply::Bulk(v));
        }
    };
    let mut out = Vec::new();
    if count < 0 {
        // Repeats allowed: independent draws, returned in draw order.
        let n = count.unsigned_abs();
        if n > MAX_RANDOM_PICKS {
            return fail(OUT_OF_RANGE);
        }
        let draws: Vec<u64> = (0..n).map(|_| ex.rng.below(size)).collect();
        let wanted: BTreeSet<u64> = draws.iter().copied().collect();
        let picked = pick_positions(ex, key, version, size, &wanted)?;
        let by_pos: std::collections::BTreeMap<u64, (Bytes, Bytes)> =
            wanted.into_iter().zip(picked).collect();
        for d in draws {
            if let Some((f, v)) = by_pos.get(&d) {
                emit(&mut out, f.clone(), v.clone());
            }
        }
        return Ok(shape(out, with_values));
    }
    let n = count as u64;
    if n >= size {
        for (f, v) in all_fields(ex, key, version)? {
            emit(&mut out, f, v);
        }
        return Ok(shape(out, with_values));
    }
    // Distinct positions (Floyd's sampling: exactly n draws, no rejection loop).
    let mut wanted = BTreeSet::new();
    for j in size - n..size {
        let t = ex.rng.below(j + 1);
        if !wanted.insert(t) {
            wanted.insert(j);
        }
    }
    for (f, v) in pick_positions(ex, key, version, size, &wanted)? {
        emit(&mut out, f, v);
    }
    Ok(shape(out, with_values))
}

/// HRANDFIELD's reply: fields alone, or (field, value) pairs, which RESP3 nests.
fn shape(flat: Vec<Reply>, with_values: bool) -> Reply {
    if !with_values {
        return Reply::Array(flat);
    }
    let mut pairs = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(f), Some(v)) = (it.next(), it.next()) {
        pairs.push((f, v));
    }
    Reply::Pairs(pairs)
}

/// The fields at the 0-based positions `wanted` of a hash of `len` fields, in position
/// order ([`entries_at_ranks`]: by position in storage when few enough, else one scan).
fn pick_positions(
    ex: &Exec,
    key: &[u8],
    version: u64,
    len: u64,
    wanted: &BTreeSet<u64>,
) -> CmdResult<Vec<(Bytes, Bytes)>> {
    let range = keys::sub_range(ex.db, key, version);
    let plen = keys::sub_prefix_len(key);
    let ranks: Vec<u64> = wanted.iter().copied().collect();
    let out = entries_at_ranks(ex, range, len, &ranks)?
        .into_iter()
        .map(|(k, v)| Ok((keys::sub_suffix(k, plen, "hash field")?, v)))
        .collect::<CmdResult<Vec<_>>>()?;
    if out.len() != wanted.len() {
        return Err(fewer_fields(key));
    }
    Ok(out)
}

/// A hash whose metadata counts more fields than it holds.
fn fewer_fields(key: &[u8]) -> CmdError {
    EngineError::corrupt("hash metadata", key, "fewer fields than its length").into()
}

fn hscan(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let cursor = parse_cursor(&args[2]).map_err(CmdError::Reply)?;
    let key = &args[1];
    let empty = || Reply::Array(vec![Reply::bulk("0"), Reply::Array(Vec::new())]);
    let Some((_, version)) = load(ex, key)? else {
        return Ok(empty());
    };
    let mut count = SCAN_DEFAULT_COUNT;
    let mut pattern: Option<&[u8]> = None;
    let mut no_values = false;
    let mut i = 3;
    while i < args.len() {
        let more = i + 1 < args.len();
        if eq_ci(&args[i], "COUNT") && more {
            let c = int_arg(&args[i + 1])?;
            if c < 1 {
                return fail(errors::SYNTAX);
            }
            count = c as u64;
            i += 2;
        } else if eq_ci(&args[i], "MATCH") && more {
            let p = &args[i + 1];
            pattern = (p.as_ref() != b"*").then_some(p.as_ref());
            i += 2;
        } else if eq_ci(&args[i], "NOVALUES") {
            no_values = true;
            i += 1;
        } else {
            return fail(errors::SYNTAX);
        }
    }
    let mut range = keys::sub_range(ex.db, key, version);
    if let Some(after) = ex.cursors.resume(cursor) {
        range.start = Bound::Excluded(keys::sub_key(ex.db, key, version, &after));
    }
    let mut out = Vec::new();
    let mut last: Option<Bytes> = None;
    let mut more = false;
    for (examined, item) in scan_fields(ex, key, range).enumerate() {
        let (f, v) = item?;
        if examined as u64 == count {
            // One field past the page: the scan is not finished.
            more = true;
            break;
        }
        if pattern.is_none_or(|p| glob_match(p, &f)) {
            out.push(Reply::Bulk(f.clone()));
            if !no_values {
                out.push(Reply::Bulk(v));
            }
        }
        last = Some(f);
    }
    let next = match (more, last) {
        (true, Some(f)) => ex.cursors.save(f),
        _ => 0,
    };
    Ok(Reply::Array(vec![
        Reply::bulk(next.to_string()),
        Reply::Array(out),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_float_format() {
        assert_eq!(format_human(10.5), "10.5");
        assert_eq!(format_human(3.0), "3");
        assert_eq!(format_human(-0.0), "0");
        assert_eq!(format_human(-2.25), "-2.25");
        assert_eq!(format_human(1e20), "100000000000000000000");
        assert_eq!(format_human(1e-20), "0");
        assert_eq!(format_human(17179869185.0), "17179869185");
    }
}
