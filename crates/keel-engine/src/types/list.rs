//! List commands (Redis's t_list.c): pushes, pops, indexing, ranges, LINSERT/LREM/LPOS,
//! LMOVE, LMPOP, and the data side of the blocking pops.
//!
//! # Layout
//!
//! The metadata record is `Body::Collection { version, len, list: Some(ListShape) }`.
//! Elements occupy the absolute indices `head..tail` (exclusive) with no holes, so
//! `len == tail - head` and the element at list position `i` (0 = leftmost) has index
//! `head + i`. Elements are packed `2^chunk_shift` indices to a storage record (a
//! chunk, see [`super::list_chunk`]) at
//!
//! ```text
//! keys::sub_key(db, key, version, enc((head + i) >> chunk_shift))
//! ```
//!
//! where `enc` flips the sign bit of the i64 and writes it big-endian, so ascending
//! storage order is list order (negative indices sort before positive ones). A new list
//! starts at `head == tail == 0`; LPUSH decrements `head`, RPUSH increments `tail`.
//! Everything lives under `keys::sub_range(db, key, version)`, so generic
//! DEL/RENAME/COPY/GC handle lists without knowing this layout.
//!
//! # Costs (n = list length, m = elements returned or moved, c = 2^chunk_shift)
//!
//! - LPUSH/RPUSH/LPUSHX/RPUSHX, LPOP/RPOP: O(c) per command (each end chunk touched is
//!   read and rewritten once, plus the metadata record); with a count, O(m + c).
//! - LINDEX/LSET: one point get (and put) of the chunk holding `head + i`, no walk from
//!   either end.
//! - LRANGE: one point read per chunk of exactly the requested indices: O(m + c).
//! - LTRIM: O(min(removed, kept)): the trimmed ends are deleted (whole chunks unread,
//!   the two partial ones rewritten), or, when the kept middle is the smaller part, it is
//!   copied under a fresh version and the old version is queued for background GC.
//! - LMOVE/RPOPLPUSH (and same-key rotation): O(1).
//! - LINSERT: O(n): a scan from the head for the pivot, then the shorter side of the
//!   insertion point is shifted by one index (`head - 1` or `tail + 1`), so at most n/2
//!   elements are rewritten.
//! - LREM: O(n): a scan from the chosen end for matches, then the survivors on the
//!   shorter side of the removed span are shifted to close the gaps.
//! - LPOS: O(n) scan from the chosen end, bounded by MAXLEN.
//! - Deleting a whole list (last pop, LTRIM to nothing, LREM of everything) is O(1) in
//!   writes: the metadata goes and the version's sub-keys are queued for GC.
//!
//! Blocking variants (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP) are table entries flagged
//! `WRITE | BLOCKING` whose handlers validate every argument (including the timeout, see
//! [`parse_timeout_ms`]) and make one non-blocking attempt: the result if an element is
//! available, else the null reply Redis gives a client that may not block. The waiting
//! itself belongs to the server.

use bytes::Bytes;
use keel_storage::Direction;

use crate::args::{eq_ci, int_arg, parse_f64, parse_i64};
use crate::command::{flags::*, CommandSpec};
use crate::error::{fail, CmdResult, EngineError};
use crate::exec::Exec;
use crate::meta::{Body, KeyType, ListShape, Meta};
use crate::reply::{errors, BulkList, Reply};
use crate::types::list_chunk::{Chunks, NEW_LIST_SHIFT};

/// Error of a negative or non-numeric LPOP/RPOP count (Redis's getPositiveLong…).
const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";
/// LPOS RANK 0.
const RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";
/// LPOS RANK outside ±LONG_MAX.
const RANK_RANGE: &str =
    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807";
/// LPOS COUNT negative or not a number.
const COUNT_NEGATIVE: &str = "ERR COUNT can't be negative";
/// LPOS MAXLEN negative or not a number.
const MAXLEN_NEGATIVE: &str = "ERR MAXLEN can't be negative";
/// LMPOP/BLMPOP numkeys < 1 or not a number.
const NUMKEYS: &str = "ERR numkeys should be greater than 0";
/// LMPOP/BLMPOP COUNT < 1 or not a number.
const MPOP_COUNT: &str = "ERR count should be greater than 0";
/// Blocking timeout not a number.
const TIMEOUT_NOT_FLOAT: &str = "ERR timeout is not a float or out of range";
/// Blocking timeout below zero.
const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
/// Blocking timeout too large to represent in ms.
const TIMEOUT_RANGE: &str = "ERR timeout is out of range";
/// The i64 index space of a list is exhausted (needs ~2^63 pushes at one end).
const INDEX_EXHAUSTED: &str = "ERR list index space exhausted";

/// Sign bit flipped by the index encoding.
const SIGN: u64 = 1 << 63;

/// The list commands.
pub static COMMANDS: &[CommandSpec] = &[
    spec("lpush", -3, WRITE | DENYOOM | FAST | HOLDS_META, 1, 1, "Prepends one or more elements to a list. Creates the key if it doesn't exist.", lpush),
    spec("rpush", -3, WRITE | DENYOOM | FAST | HOLDS_META, 1, 1, "Appends one or more elements to a list. Creates the key if it doesn't exist.", rpush),
    spec("lpushx", -3, WRITE | DENYOOM | FAST | HOLDS_META, 1, 1, "Prepends one or more elements to a list only when the list exists.", lpushx),
    spec("rpushx", -3, WRITE | DENYOOM | FAST | HOLDS_META, 1, 1, "Appends one or more elements to a list only when the list exists.", rpushx),
    spec("lpop", -2, WRITE | FAST | HOLDS_META, 1, 1, "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.", lpop),
    spec("rpop", -2, WRITE | FAST | HOLDS_META, 1, 1, "Returns and removes the last elements of a list. Deletes the list if the last element was popped.", rpop),
    spec("llen", 2, READONLY | FAST, 1, 1, "Returns the length of a list.", llen),
    spec("lindex", 3, READONLY, 1, 1, "Returns an element from a list by its index.", lindex),
    spec("lset", 4, WRITE | DENYOOM, 1, 1, "Sets the value of an element in a list by its index.", lset),
    spec("lrange", 4, READONLY, 1, 1, "Returns a range of elements from a list.", lrange),
    spec("ltrim", 4, WRITE, 1, 1, "Removes elements from both ends a list. Deletes the list if all elements were trimmed.", ltrim),
    spec("lrem", 4, WRITE, 1, 1, "Removes elements from a list. Deletes the list if the last element was removed.", lrem),
    spec("linsert", 5, WRITE | DENYOOM, 1, 1, "Inserts an element before or after another element in a list.", linsert),
    spec("lpos", -3, READONLY, 1, 1, "Returns the index of matching elements in a list.", lpos),
    spec("lmove", 5, WRITE | DENYOOM, 1, 2, "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.", lmove),
    spec("rpoplpush", 3, WRITE | DENYOOM, 1, 2, "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.", rpoplpush),
    // numkeys-style key lists cannot be described by first/last/step: Redis reports
    // 0,0,0 for these (movable keys); see `command::movable_key_positions`.
    spec("lmpop", -4, WRITE, 0, 0, "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.", lmpop),
    spec("blpop", -3, WRITE | BLOCKING, 1, -2, "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", blpop),
    spec("brpop", -3, WRITE | BLOCKING, 1, -2, "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", brpop),
    spec("blmove", 6, WRITE | DENYOOM | BLOCKING, 1, 2, "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.", blmove),
    spec("brpoplpush", 4, WRITE | DENYOOM | BLOCKING, 1, 2, "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.", brpoplpush),
    spec("blmpop", -5, WRITE | BLOCKING, 0, 0, "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", blmpop),
];

/// A list table entry (group "list", step 1).
const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    first_key: i32,
    last_key: i32,
    summary: &'static str,
    handler: crate::command::Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key,
        last_key,
        step: if first_key == 0 { 0 } else { 1 },
        group: "list",
        summary,
        handler,
    }
}

/// Parses a blocking command's timeout (seconds, fractions allowed) with Redis's checks
/// and texts; returns it in ms, 0 meaning "wait forever". The server uses it to wait.
pub fn parse_timeout_ms(arg: &[u8]) -> CmdResult<u64> {
    let Some(secs) = parse_f64(arg) else {
        return fail(TIMEOUT_NOT_FLOAT);
    };
    // Redis rounds a fractional millisecond up.
    let ms = (secs * 1000.0).ceil();
    if ms > i64::MAX as f64 {
        return fail(TIMEOUT_RANGE);
    }
    if ms < 0.0 {
        return fail(TIMEOUT_NEGATIVE);
    }
    Ok(ms as u64)
}

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Left,
    Right,
}

impl End {
    /// Keyspace event of a push at this end.
    fn push_event(self) -> &'static str {
        match self {
            End::Left => "lpush",
            End::Right => "rpush",
        }
    }

    /// Keyspace event of a pop at this end.
    fn pop_event(self) -> &'static str {
        match self {
            End::Left => "lpop",
            End::Right => "rpop",
        }
    }
}

fn parse_end(a: &[u8]) -> CmdResult<End> {
    if eq_ci(a, "LEFT") {
        Ok(End::Left)
    } else if eq_ci(a, "RIGHT") {
        Ok(End::Right)
    } else {
        fail(errors::SYNTAX)
    }
}

/// Order-preserving encoding of an element index.
pub(crate) fn enc_index(i: i64) -> [u8; 8] {
    ((i as u64) ^ SIGN).to_be_bytes()
}

/// The index [`enc_index`] encoded (None unless 8 bytes).
pub(crate) fn dec_index(s: &[u8]) -> Option<i64> {
    let a: [u8; 8] = s.try_into().ok()?;
    Some((u64::from_be_bytes(a) ^ SIGN) as i64)
}

fn exhausted() -> crate::error::CmdError {
    crate::error::CmdError::Reply(Reply::err(INDEX_EXHAUSTED))
}

/// A list's shape as its metadata records it, with the chunks this command changed.
#[derive(Debug)]
struct List {
    chunks: Chunks,
    head: i64,
    tail: i64,
    expire_at: Option<u64>,
}

impl List {
    #[inline(always)]
    fn from_meta(key: &[u8], m: &Meta) -> CmdResult<List> {
        if let Body::Collection {
            version,
            len,
            list: Some(shape),
        } = m.body
        {
            let (head, tail) = (shape.head, shape.tail);
            if tail.checked_sub(head).and_then(|d| u64::try_from(d).ok()) == Some(len) {
                return Ok(List {
                    chunks: Chunks::new(version, shape.chunk_shift),
                    head,
                    tail,
                    expire_at: m.expire_at,
                });
            }
        }
        Err(EngineError::corrupt(
            "list metadata",
            key,
            "missing or inconsistent head/tail/len",
        )
        .into())
    }

    fn fresh(ex: &mut Exec) -> List {
        List {
            chunks: Chunks::new(ex.new_version(), NEW_LIST_SHIFT),
            head: 0,
            tail: 0,
            expire_at: None,
        }
    }

    fn len(&self) -> i64 {
        self.tail - self.head
    }

    fn to_meta(&self) -> Meta {
        Meta {
            kind: KeyType::List,
            expire_at: self.expire_at,
            body: Body::Collection {
                version: self.chunks.version(),
                len: self.len() as u64,
                list: Some(ListShape {
                    head: self.head,
                    tail: self.tail,
                    chunk_shift: self.chunks.shift(),
                }),
            },
        }
    }
}

/// The list at `key` (WRONGTYPE for other types) with its metadata record, as held by
/// an earlier push or pop of this group if it was (see [`store_held`]).
#[inline(always)]
fn load(ex: &mut Exec, key: &[u8]) -> CmdResult<Option<(Meta, List)>> {
    match ex.typed_or_held(key, KeyType::List)? {
        Some(m) => {
            let l = List::from_meta(key, &m)?;
            Ok(Some((m, l)))
        }
        None => Ok(None),
    }
}

/// Writes the list's changed chunks and new shape, or deletes the key when no element is
/// left.
fn store(ex: &mut Exec, key: &[u8], l: &mut List, old: Option<&Meta>) -> CmdResult<()> {
    if l.len() == 0 {
        if let Some(o) = old {
            ex.delete_emptied(key, o)?;
        }
        Ok(())
    } else {
        l.chunks.flush(ex)?;
        ex.put_meta(key, &l.to_meta(), old)
    }
}

/// [`store`] for the commands flagged `HOLDS_META` (the pushes and pops without
/// blocking): a list that was there before and has no expiry keeps its metadata held
/// for the group's next command instead of writing it (`Exec::put_or_hold_meta`). A
/// push or pop keeps the loaded list's version and expiry, so `old` tells both.
fn store_held(ex: &mut Exec, key: &[u8], l: &mut List, old: Option<&Meta>) -> CmdResult<()> {
    if l.len() == 0 {
        return store(ex, key, l, old);
    }
    l.chunks.flush(ex)?;
    ex.put_or_hold_meta(key, l.to_meta(), old)
}

/// Elements at absolute indices `from..to` in `dir` order, with their indices.
fn elems<'a>(
    ex: &'a Exec,
    l: &'a List,
    from: i64,
    to: i64,
    dir: Direction,
) -> impl Iterator<Item = CmdResult<(i64, Bytes)>> + 'a {
    l.chunks
        .range(ex, from, to, dir)
        .map(|r| r.map_err(Into::into))
}

/// Collects `elems` into a vector (a hole is a corrupt-record error).
fn collect_range(
    ex: &Exec,
    l: &List,
    from: i64,
    to: i64,
    dir: Direction,
) -> CmdResult<Vec<(i64, Bytes)>> {
    elems(ex, l, from, to, dir).collect()
}

fn missing(key: &[u8], abs: i64) -> crate::error::CmdError {
    EngineError::corrupt(
        "list element",
        key,
        format!("no element at index {abs} inside head..tail"),
    )
    .into()
}

/// The element at absolute index `abs` (which must be inside head..tail).
fn get_at(ex: &Exec, key: &[u8], l: &List, abs: i64) -> CmdResult<Bytes> {
    l.chunks.get(ex, abs)?.ok_or_else(|| missing(key, abs))
}

fn push_one(ex: &mut Exec, l: &mut List, end: End, v: &Bytes) -> CmdResult<()> {
    let at = match end {
        End::Left => {
            l.head = l.head.checked_sub(1).ok_or_else(exhausted)?;
            l.head
        }
        End::Right => {
            let at = l.tail;
            l.tail = l.tail.checked_add(1).ok_or_else(exhausted)?;
            at
        }
    };
    Ok(l.chunks.set(ex, at, v)?)
}

/// Pops one element of a non-empty list.
fn pop_one(ex: &mut Exec, key: &[u8], l: &mut List, end: End) -> CmdResult<Bytes> {
    let at = match end {
        End::Left => l.head,
        End::Right => l.tail - 1,
    };
    let v = l.chunks.take(ex, at)?.ok_or_else(|| missing(key, at))?;
    match end {
        End::Left => l.head += 1,
        End::Right => l.tail -= 1,
    }
    Ok(v)
}

/// Pops `n` (1..=len) elements from `end`, in pop order. Popping everything leaves the
/// sub-keys to the GC that deleting the key queues.
fn pop_n(ex: &mut Exec, l: &mut List, end: End, n: i64) -> CmdResult<Vec<Bytes>> {
    let (from, to, dir) = match end {
        End::Left => (l.head, l.head + n, Direction::Forward),
        End::Right => (l.tail - n, l.tail, Direction::Reverse),
    };
    let items = collect_range(ex, l, from, to, dir)?;
    if n < l.len() {
        l.chunks.clear(ex, from, to)?;
    }
    match end {
        End::Left => l.head += n,
        End::Right => l.tail -= n,
    }
    Ok(items.into_iter().map(|(_, v)| v).collect())
}

/// Redis's range normalisation: Some((first, last)) list positions, inclusive, or None
/// when the range is empty.
fn norm_range(start: i64, end: i64, len: i64) -> Option<(i64, i64)> {
    let mut s = if start < 0 { len + start } else { start };
    let mut e = if end < 0 { len + end } else { end };
    if s < 0 {
        s = 0;
    }
    if s > e || s >= len {
        return None;
    }
    if e >= len {
        e = len - 1;
    }
    Some((s, e))
}

/// A position from an index that may count from the end; None if outside the list.
fn norm_index(idx: i64, len: i64) -> Option<i64> {
    let i = if idx < 0 { len + idx } else { idx };
    (0..len).contains(&i).then_some(i)
}

fn lpush(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    push_generic(ex, args, End::Left, false)
}

fn rpush(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    push_generic(ex, args, End::Right, false)
}

fn lpushx(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    push_generic(ex, args, End::Left, true)
}

fn rpushx(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    push_generic(ex, args, End::Right, true)
}

fn push_generic(ex: &mut Exec, args: &[Bytes], end: End, only_existing: bool) -> CmdResult<Reply> {
    let key = &args[1];
    let (old, mut l) = match load(ex, key)? {
        Some((m, l)) => (Some(m), l),
        None if only_existing => return Ok(Reply::Int(0)),
        None => (None, List::fresh(ex)),
    };
    for v in &args[2..] {
        push_one(ex, &mut l, end, v)?;
    }
    store_held(ex, key, &mut l, old.as_ref())?;
    ex.notify('l', end.push_event(), key);
    Ok(Reply::Int(l.len()))
}

fn lpop(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    pop_generic(ex, args, End::Left, "lpop")
}

fn rpop(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    pop_generic(ex, args, End::Right, "rpop")
}

fn pop_generic(ex: &mut Exec, args: &[Bytes], end: End, name: &str) -> CmdResult<Reply> {
    if args.len() > 3 {
        return fail(errors::wrong_args(name));
    }
    let count = match args.get(2) {
        Some(a) => match parse_i64(a) {
            Some(c) if c >= 0 => Some(c),
            _ => return fail(MUST_BE_POSITIVE),
        },
        None => None,
    };
    let key = &args[1];
    let Some((old, mut l)) = load(ex, key)? else {
        return Ok(if count.is_some() {
            Reply::NilArray
        } else {
            Reply::Nil
        });
    };
    match count {
        None => {
            let v = pop_one(ex, key, &mut l, end)?;
            store_held(ex, key, &mut l, Some(&old))?;
            ex.notify('l', end.pop_event(), key);
            Ok(Reply::Bulk(v))
        }
        Some(0) => Ok(Reply::Array(Vec::new())),
        Some(c) => {
            let n = c.min(l.len());
            let items = pop_n(ex, &mut l, end, n)?;
            store_held(ex, key, &mut l, Some(&old))?;
            ex.notify('l', end.pop_event(), key);
            Ok(Reply::bulks(items))
        }
    }
}

fn llen(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    Ok(Reply::Int(load(ex, &args[1])?.map_or(0, |(_, l)| l.len())))
}

fn lindex(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let Some((_, l)) = load(ex, key)? else {
        return Ok(Reply::Nil);
    };
    let idx = int_arg(&args[2])?;
    match norm_index(idx, l.len()) {
        Some(i) => Ok(Reply::Bulk(get_at(ex, key, &l, l.head + i)?)),
        None => Ok(Reply::Nil),
    }
}

fn lset(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let Some((_, mut l)) = load(ex, key)? else {
        return fail(errors::NO_SUCH_KEY);
    };
    let idx = int_arg(&args[2])?;
    let Some(i) = norm_index(idx, l.len()) else {
        return fail(errors::INDEX_OUT_OF_RANGE);
    };
    l.chunks.set(ex, l.head + i, &args[3])?;
    l.chunks.flush(ex)?;
    ex.touch(key);
    ex.notify('l', "lset", key);
    Ok(Reply::Ok)
}

fn lrange(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let start = int_arg(&args[2])?;
    let stop = int_arg(&args[3])?;
    let key = &args[1];
    let Some((_, l)) = load(ex, key)? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let Some((s, e)) = norm_range(start, stop, l.len()) else {
        return Ok(Reply::Array(Vec::new()));
    };
    let (from, to) = (l.head + s, l.head + e + 1);
    // Values only, copied once from where they lie: the indices are known, and a hole
    // shows as a short count.
    let want = (to - from) as usize;
    let mut items = BulkList::with_capacity(want);
    let seen = l.chunks.visit(ex, from, to, &mut |v| items.push(v))?;
    if seen != want {
        return Err(EngineError::corrupt("list element", key, "hole inside head..tail").into());
    }
    Ok(Reply::Bulks(items))
}

fn ltrim(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let start = int_arg(&args[2])?;
    let stop = int_arg(&args[3])?;
    let key = &args[1];
    let Some((old, l)) = load(ex, key)? else {
        return Ok(Reply::Ok);
    };
    let len = l.len();
    let Some((s, e)) = norm_range(start, stop, len) else {
        ex.delete_emptied(key, &old)?;
        ex.notify('l', "ltrim", key);
        return Ok(Reply::Ok);
    };
    let kept = e - s + 1;
    let removed = len - kept;
    if removed == 0 {
        ex.touch(key);
        ex.notify('l', "ltrim", key);
        return Ok(Reply::Ok);
    }
    if kept < removed {
        // Copying the small middle under a new version beats deleting the large ends;
        // put_meta queues the old version for GC.
        let items = collect_range(ex, &l, l.head + s, l.head + e + 1, Direction::Forward)?;
        let mut nl = List::fresh(ex);
        nl.expire_at = l.expire_at;
        for (_, v) in items {
            push_one(ex, &mut nl, End::Right, &v)?;
        }
        store(ex, key, &mut nl, Some(&old))?;
    } else {
        let mut nl = l;
        nl.chunks.clear(ex, nl.head, nl.head + s)?;
        nl.chunks.clear(ex, nl.head + e + 1, nl.tail)?;
        nl.tail = nl.head + e + 1;
        nl.head += s;
        store(ex, key, &mut nl, Some(&old))?;
    }
    ex.notify('l', "ltrim", key);
    Ok(Reply::Ok)
}

fn lrem(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let count = int_arg(&args[2])?;
    let key = &args[1];
    let ele = &args[3];
    let Some((old, mut l)) = load(ex, key)? else {
        return Ok(Reply::Int(0));
    };
    let limit = count.unsigned_abs();
    let dir = if count < 0 {
        Direction::Reverse
    } else {
        Direction::Forward
    };
    let mut removed = Vec::new();
    for item in elems(ex, &l, l.head, l.tail, dir) {
        let (idx, v) = item?;
        if v == ele {
            removed.push(idx);
            if limit != 0 && removed.len() as u64 >= limit {
                break;
            }
        }
    }
    let n = removed.len() as i64;
    if n == 0 {
        return Ok(Reply::Int(0));
    }
    if n == l.len() {
        ex.delete_emptied(key, &old)?;
        ex.notify('l', "lrem", key);
        return Ok(Reply::Int(n));
    }
    removed.sort_unstable();
    close_gaps(ex, &mut l, &removed)?;
    store(ex, key, &mut l, Some(&old))?;
    ex.notify('l', "lrem", key);
    Ok(Reply::Int(n))
}

/// Removes the elements at the absolute indices `removed` (sorted, non-empty, fewer than
/// the list holds) by shifting the survivors on the cheaper side of the removed span.
fn close_gaps(ex: &mut Exec, l: &mut List, removed: &[i64]) -> CmdResult<()> {
    let (Some(&first), Some(&last)) = (removed.first(), removed.last()) else {
        return Ok(());
    };
    if l.tail - first <= last - l.head {
        // Survivors after `first` move toward the head.
        let items = collect_range(ex, l, first, l.tail, Direction::Forward)?;
        let mut w = first;
        let mut gaps = removed.iter().peekable();
        for (idx, v) in items {
            if gaps.peek() == Some(&&idx) {
                gaps.next();
                continue;
            }
            if idx != w {
                l.chunks.set(ex, w, &v)?;
            }
            w += 1;
        }
        l.chunks.clear(ex, w, l.tail)?;
        l.tail = w;
    } else {
        // Survivors before `last` move toward the tail.
        let items = collect_range(ex, l, l.head, last + 1, Direction::Reverse)?;
        let mut w = last;
        let mut gaps = removed.iter().rev().peekable();
        for (idx, v) in items {
            if gaps.peek() == Some(&&idx) {
                gaps.next();
                continue;
            }
            if idx != w {
                l.chunks.set(ex, w, &v)?;
            }
            w -= 1;
        }
        l.chunks.clear(ex, l.head, w + 1)?;
        l.head = w + 1;
    }
    Ok(())
}

fn linsert(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let before = if eq_ci(&args[2], "BEFORE") {
        true
    } else if eq_ci(&args[2], "AFTER") {
        false
    } else {
        return fail(errors::SYNTAX);
    };
    let key = &args[1];
    let pivot = &args[3];
    let Some((old, mut l)) = load(ex, key)? else {
        return Ok(Reply::Int(0));
    };
    let mut found = None;
    for item in elems(ex, &l, l.head, l.tail, Direction::Forward) {
        let (idx, v) = item?;
        if v == pivot {
            found = Some(idx);
            break;
        }
    }
    let Some(p) = found else {
        return Ok(Reply::Int(-1));
    };
    let q = if before { p } else { p + 1 };
    insert_at(ex, &mut l, q, args[4].clone())?;
    store(ex, key, &mut l, Some(&old))?;
    ex.notify('l', "linsert", key);
    Ok(Reply::Int(l.len()))
}

/// Inserts `v` so that it takes absolute index `q` (head..=tail) of the current layout,
/// shifting whichever side of `q` is shorter by one index.
fn insert_at(ex: &mut Exec, l: &mut List, q: i64, v: Bytes) -> CmdResult<()> {
    if q - l.head < l.tail - q {
        let items = collect_range(ex, l, l.head, q, Direction::Forward)?;
        let new_head = l.head.checked_sub(1).ok_or_else(exhausted)?;
        for (idx, val) in items {
            l.chunks.set(ex, idx - 1, &val)?;
        }
        l.chunks.set(ex, q - 1, &v)?;
        l.head = new_head;
    } else {
        let new_tail = l.tail.checked_add(1).ok_or_else(exhausted)?;
        let items = collect_range(ex, l, q, l.tail, Direction::Reverse)?;
        for (idx, val) in items {
            l.chunks.set(ex, idx + 1, &val)?;
        }
        l.chunks.set(ex, q, &v)?;
        l.tail = new_tail;
    }
    Ok(())
}

fn lpos(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let (mut rank, mut count, mut maxlen) = (1i64, None::<i64>, 0i64);
    let mut i = 3;
    while i < args.len() {
        let more = i + 1 < args.len();
        let opt = &args[i];
        if eq_ci(opt, "RANK") && more {
            i += 1;
            rank = int_arg(&args[i])?;
            if rank == i64::MIN {
                return fail(RANK_RANGE);
            }
            if rank == 0 {
                return fail(RANK_ZERO);
            }
        } else if eq_ci(opt, "COUNT") && more {
            i += 1;
            match parse_i64(&args[i]) {
                Some(c) if c >= 0 => count = Some(c),
                _ => return fail(COUNT_NEGATIVE),
            }
        } else if eq_ci(opt, "MAXLEN") && more {
            i += 1;
            match parse_i64(&args[i]) {
                Some(m) if m >= 0 => maxlen = m,
                _ => return fail(MAXLEN_NEGATIVE),
            }
        } else {
            return fail(errors::SYNTAX);
        }
        i += 1;
    }
    let key = &args[1];
    let ele = &args[2];
    let Some((_, l)) = load(ex, key)? else {
        return Ok(match count {
            Some(_) => Reply::Array(Vec::new()),
            None => Reply::Nil,
        });
    };
    let dir = if rank < 0 {
        Direction::Reverse
    } else {
        Direction::Forward
    };
    let skip = rank.unsigned_abs();
    let mut matches = 0u64;
    let mut out = Vec::new();
    for (scanned, item) in elems(ex, &l, l.head, l.tail, dir).enumerate() {
        if maxlen != 0 && scanned as u64 >= maxlen as u64 {
            break;
        }
        let (idx, v) = item?;
        if v != ele {
            continue;
        }
        matches += 1;
        if matches < skip {
            continue;
        }
        let pos = idx - l.head;
        match count {
            None => return Ok(Reply::Int(pos)),
            Some(c) => {
                out.push(Reply::Int(pos));
                if c != 0 && out.len() as u64 >= c as u64 {
                    break;
                }
            }
        }
    }
    Ok(match count {
        Some(_) => Reply::Array(out),
        None => Reply::Nil,
    })
}

/// Pops one element of `src` at `from` and pushes it onto `dst` at `to` (the same list
/// when the keys are equal: a rotation). Nil when `src` does not exist.
fn move_generic(ex: &mut Exec, src: &Bytes, dst: &Bytes, from: End, to: End) -> CmdResult<Reply> {
    let Some((sold, mut sl)) = load(ex, src)? else {
        return Ok(Reply::Nil);
    };
    if src == dst {
        let v = pop_one(ex, src, &mut sl, from)?;
        push_one(ex, &mut sl, to, &v)?;
        store(ex, src, &mut sl, Some(&sold))?;
        ex.notify('l', to.push_event(), src);
        ex.notify('l', from.pop_event(), src);
        return Ok(Reply::Bulk(v));
    }
    // The destination's type is checked before anything is popped.
    let (dold, mut dl) = match load(ex, dst)? {
        Some((m, l)) => (Some(m), l),
        None => (None, List::fresh(ex)),
    };
    let v = pop_one(ex, src, &mut sl, from)?;
    push_one(ex, &mut dl, to, &v)?;
    store(ex, src, &mut sl, Some(&sold))?;
    store(ex, dst, &mut dl, dold.as_ref())?;
    // Redis's order: the push, then the pop (then `del` if the source emptied).
    ex.notify('l', to.push_event(), dst);
    ex.notify('l', from.pop_event(), src);
    Ok(Reply::Bulk(v))
}

fn lmove(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let from = parse_end(&args[3])?;
    let to = parse_end(&args[4])?;
    move_generic(ex, &args[1], &args[2], from, to)
}

fn rpoplpush(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    move_generic(ex, &args[1], &args[2], End::Right, End::Left)
}

fn blmove(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let from = parse_end(&args[3])?;
    let to = parse_end(&args[4])?;
    parse_timeout_ms(&args[5])?;
    move_generic(ex, &args[1], &args[2], from, to)
}

fn brpoplpush(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    parse_timeout_ms(&args[3])?;
    move_generic(ex, &args[1], &args[2], End::Right, End::Left)
}

/// Parsed `numkeys key… LEFT|RIGHT [COUNT n]` of LMPOP/BLMPOP.
struct MpopArgs<'a> {
    keys: &'a [Bytes],
    end: End,
    count: i64,
}

fn parse_mpop(args: &[Bytes], numkeys_idx: usize) -> CmdResult<MpopArgs<'_>> {
    let numkeys = match args.get(numkeys_idx).and_then(|a| parse_i64(a)) {
        Some(n) if n >= 1 => n as u64,
        _ => return fail(NUMKEYS),
    };
    let first = numkeys_idx + 1;
    // where_idx = first + numkeys must be a real argument.
    if numkeys >= args.len().saturating_sub(first) as u64 {
        return fail(errors::SYNTAX);
    }
    let where_idx = first + numkeys as usize;
    let end = parse_end(&args[where_idx])?;
    let mut count = None;
    let mut j = where_idx + 1;
    while j < args.len() {
        if count.is_none() && eq_ci(&args[j], "COUNT") && j + 1 < args.len() {
            j += 1;
            match parse_i64(&args[j]) {
                Some(c) if c >= 1 => count = Some(c),
                _ => return fail(MPOP_COUNT),
            }
        } else {
            return fail(errors::SYNTAX);
        }
        j += 1;
    }
    Ok(MpopArgs {
        keys: &args[first..where_idx],
        end,
        count: count.unwrap_or(1),
    })
}

/// Pops up to `count` elements from the first non-empty list of `keys`:
/// `[key, [elements…]]`, or the null array when every list is empty.
fn mpop_try(ex: &mut Exec, keys: &[Bytes], end: End, count: i64) -> CmdResult<Reply> {
    for key in keys {
        let Some((old, mut l)) = load(ex, key)? else {
            continue;
        };
        let n = count.min(l.len());
        let items = pop_n(ex, &mut l, end, n)?;
        store(ex, key, &mut l, Some(&old))?;
        ex.notify('l', end.pop_event(), key);
        return Ok(Reply::Array(vec![
            Reply::Bulk(key.clone()),
            Reply::bulks(items),
        ]));
    }
    Ok(Reply::NilArray)
}

fn lmpop(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let a = parse_mpop(args, 1)?;
    mpop_try(ex, a.keys, a.end, a.count)
}

fn blmpop(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let a = parse_mpop(args, 2)?;
    parse_timeout_ms(&args[1])?;
    mpop_try(ex, a.keys, a.end, a.count)
}

fn blpop(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    bpop_generic(ex, args, End::Left)
}

fn brpop(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    bpop_generic(ex, args, End::Right)
}

/// BLPOP/BRPOP's attempt: `[key, element]` from the first non-empty list, else the null
/// array.
fn bpop_generic(ex: &mut Exec, args: &[Bytes], end: End) -> CmdResult<Reply> {
    let Some((timeout, keys)) = args[1..].split_last() else {
        return fail(errors::wrong_args("blpop"));
    };
    parse_timeout_ms(timeout)?;
    for key in keys {
        let Some((old, mut l)) = load(ex, key)? else {
            continue;
        };
        let v = pop_one(ex, key, &mut l, end)?;
        store(ex, key, &mut l, Some(&old))?;
        ex.notify('l', end.pop_event(), key);
        return Ok(Reply::Array(vec![Reply::Bulk(key.clone()), Reply::Bulk(v)]));
    }
    Ok(Reply::NilArray)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_encoding_orders_like_integers() {
        let xs = [i64::MIN, -1_000_000, -2, -1, 0, 1, 2, 1_000_000, i64::MAX];
        for w in xs.windows(2) {
            assert!(enc_index(w[0]) < enc_index(w[1]), "{} < {}", w[0], w[1]);
        }
        for x in xs {
            assert_eq!(dec_index(&enc_index(x)), Some(x));
        }
        assert_eq!(dec_index(b"short"), None);
    }

    #[test]
    fn range_normalisation_matches_redis() {
        assert_eq!(norm_range(0, -1, 5), Some((0, 4)));
        assert_eq!(norm_range(-100, 100, 5), Some((0, 4)));
        assert_eq!(norm_range(3, 1, 5), None);
        assert_eq!(norm_range(5, 10, 5), None);
        assert_eq!(norm_range(-2, -1, 5), Some((3, 4)));
        assert_eq!(norm_range(0, -6, 5), None);
        assert_eq!(norm_range(i64::MIN, i64::MAX, 5), Some((0, 4)));
        assert_eq!(norm_index(-1, 3), Some(2));
        assert_eq!(norm_index(-4, 3), None);
        assert_eq!(norm_index(3, 3), None);
        assert_eq!(norm_index(i64::MIN, 3), None);
    }

    #[test]
    fn timeouts_parse_like_redis() {
        assert_eq!(parse_timeout_ms(b"0").ok(), Some(0));
        assert_eq!(parse_timeout_ms(b"1.5").ok(), Some(1500));
        assert_eq!(parse_timeout_ms(b"0.0001").ok(), Some(1));
        assert!(parse_timeout_ms(b"-1").is_err());
        assert!(parse_timeout_ms(b"abc").is_err());
        assert!(parse_timeout_ms(b"inf").is_err());
    }
}
