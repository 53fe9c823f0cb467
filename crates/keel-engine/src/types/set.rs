//! Set commands.
//!
//! Layout: the metadata record (type set, version, len) plus one sub-key per member,
//! `S db klen key version member` → empty value. Members therefore sit in bytewise order
//! inside the key's sub-range; every reply whose order Redis leaves unspecified (SMEMBERS,
//! SINTER, SPOP with a count, SSCAN …) uses that order, so replicas always agree.
//!
//! Complexity (n = members of the key, m = members touched or returned):
//! - SADD, SREM, SISMEMBER, SMISMEMBER, SMOVE, SCARD: O(1) point reads/writes per member.
//! - SMEMBERS, SUNION, SDIFF, SINTER and the STORE variants: ordered scans, O(total size)
//!   (SINTER/SINTERCARD scan the smallest input and probe the others with point gets).
//! - SPOP / SRANDMEMBER: a random member is the one at a random position (uniform, and
//!   driven by the entry's DetRng, so a replay picks the same members). Storage finds
//!   it by position in O(log n) where it keeps order statistics (memory and bitcask,
//!   [`keel_storage::Storage::key_at`]); else, or when deleted members that snapshots
//!   still hold make positions inexact, or for picks of many members at once, one scan
//!   walks to the positions: O(n). SPOP of the whole set deletes the key in O(1)
//!   (members go to the GC queue).
//! - SSCAN: O(COUNT) per call, resuming strictly after the last member returned.

use std::collections::BTreeSet;
use std::ops::Bound;

use bytes::Bytes;
use keel_storage::{Direction, ScanRange};

use crate::args::{eq_ci, int_arg, parse_i64};
use crate::command::{flags::*, CommandSpec};
use crate::ctx::DetRng;
use crate::cursor::parse_cursor;
use crate::error::{fail, CmdError, CmdResult, EngineError};
use crate::exec::Exec;
use crate::glob::glob_match;
use crate::keys;
use crate::meta::{Body, KeyType, Meta};
use crate::reply::{errors, BulkList, Reply};

/// The set commands.
pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "sadd",
        arity: -3,
        flags: WRITE | DENYOOM | FAST,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "set",
        summary: "Adds one or more members to a set. Creates the key if it doesn't exist.",
        handler: sadd,
    },
    CommandSpec {
        name: "srem",
        arity: -3,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "set",
        summary: "Removes one or more members from a set. Deletes the set if the last member was removed.",
        handler: srem,
    },
    CommandSpec {
        name: "scard",
        arity: 2,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "set",
        summary: "Returns the number of members in a set.",
        handler: scard,
    },
    CommandSpec {
        name: "sismember",
        arity: 3,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "set",
        summary: "Determines whether a member belongs to a set.",
        handler: sismember,
    },
    CommandSpec {
        name: "smismember",
        arity: -3,
        flags: READONLY | FAST,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "set",
        summary: "Determines whether multiple members belong to a set.",
        handler: smismember,
    },
    CommandSpec {
        name: "smembers",
        arity: 2,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "set",
        summary: "Returns all members of a set.",
        handler: smembers,
    },
    CommandSpec {
        name: "srandmember",
        arity: -2,
        flags: READONLY | RANDOM,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "set",
        summary: "Get one or multiple random members from a set.",
        handler: srandmember,
    },
    CommandSpec {
        name: "spop",
        arity: -2,
        flags: WRITE | RANDOM | POSITIONAL,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "set",
        summary: "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.",
        handler: spop,
    },
    CommandSpec {
        name: "smove",
        arity: 4,
        flags: WRITE | FAST,
        first_key: 1,
        last_key: 2,
        step: 1,
        group: "set",
        summary: "Moves a member from one set to another.",
        handler: smove,
    },
    CommandSpec {
        name: "sinter",
        arity: -2,
        flags: READONLY,
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "set",
        summary: "Returns the intersect of multiple sets.",
        handler: sinter,
    },
    CommandSpec {
        name: "sintercard",
        arity: -3,
        flags: READONLY,
        // Keys follow numkeys (movable keys): the router must read numkeys.
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "set",
        summary: "Returns the number of members of the intersect of multiple sets.",
        handler: sintercard,
    },
    CommandSpec {
        name: "sinterstore",
        arity: -3,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "set",
        summary: "Stores the intersect of multiple sets in a key.",
        handler: sinterstore,
    },
    CommandSpec {
        name: "sunion",
        arity: -2,
        flags: READONLY,
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "set",
        summary: "Returns the union of multiple sets.",
        handler: sunion,
    },
    CommandSpec {
        name: "sunionstore",
        arity: -3,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "set",
        summary: "Stores the union of multiple sets in a key.",
        handler: sunionstore,
    },
    CommandSpec {
        name: "sdiff",
        arity: -2,
        flags: READONLY,
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "set",
        summary: "Returns the difference of multiple sets.",
        handler: sdiff,
    },
    CommandSpec {
        name: "sdiffstore",
        arity: -3,
        flags: WRITE | DENYOOM,
        first_key: 1,
        last_key: -1,
        step: 1,
        group: "set",
        summary: "Stores the difference of multiple sets in a key.",
        handler: sdiffstore,
    },
    CommandSpec {
        name: "sscan",
        arity: -3,
        flags: READONLY,
        first_key: 1,
        last_key: 1,
        step: 1,
        group: "set",
        summary: "Iterates over members of a set.",
        handler: sscan,
    },
];

// ---------------------------------------------------------------------------------------
// Helpers shared with the sorted-set module.
// ---------------------------------------------------------------------------------------

/// Version and length of a collection's metadata (a corrupt record if it is not one).
pub(crate) fn coll(key: &[u8], meta: &Meta) -> CmdResult<(u64, u64)> {
    match meta.body {
        Body::Collection { version, len, .. } => Ok((version, len)),
        Body::String(_) => Err(CmdError::Engine(EngineError::corrupt(
            "metadata",
            key,
            "collection type without a collection body",
        ))),
    }
}

/// `meta` with its element count replaced by `len`.
pub(crate) fn with_len(meta: &Meta, len: u64) -> Meta {
    let mut m = meta.clone();
    if let Body::Collection { len: l, .. } = &mut m.body {
        *l = len;
    }
    m
}

/// Records that the collection at `key` (previously `old`, now shaped like `base`) holds
/// `len` elements; deletes the key when none is left. The caller has already deleted
/// removed elements one by one, so nothing is queued for GC.
pub(crate) fn save_len(
    ex: &mut Exec,
    key: &[u8],
    old: Option<&Meta>,
    base: &Meta,
    len: u64,
) -> CmdResult<()> {
    if len == 0 {
        match old {
            Some(o) => ex.delete_emptied(key, &with_len(o, 0)),
            None => Ok(()),
        }
    } else {
        ex.put_meta(key, &with_len(base, len), old)
    }
}

/// A fresh, empty, persistent collection of `kind` for a key being (re)created.
pub(crate) fn new_collection(ex: &mut Exec, kind: KeyType) -> (Meta, u64) {
    let v = ex.new_version();
    (Meta::collection(kind, v), v)
}

/// Deletes whatever `dst` holds (any type) so a STORE command can write a fresh value;
/// true when it held one.
pub(crate) fn clear_destination(ex: &mut Exec, dst: &[u8]) -> CmdResult<bool> {
    match ex.meta(dst)? {
        Some(old) => {
            ex.delete_key(dst, &old)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// A STORE command's event: `event` on `dst` when it stored something, else `del` when
/// it deleted what `dst` held (Redis's SINTERSTORE, ZUNIONSTORE, GEOSEARCHSTORE, ...).
pub(crate) fn notify_stored(
    ex: &mut Exec,
    dst: &[u8],
    stored: bool,
    existed: bool,
    (class, event): (char, &'static str),
) {
    if stored {
        if existed {
            // Replaced, not added: Redis's overwrite raises no `new`.
            ex.take_back_new(dst);
        }
        ex.notify(class, event, dst);
    } else if existed {
        ex.notify('g', "del", dst);
    }
}

/// The member part of a sub-key scanned from the range of `key` (see
/// [`keys::sub_suffix`]).
pub(crate) fn member_of(key: &[u8], sub_key: Bytes) -> CmdResult<Bytes> {
    Ok(keys::sub_suffix(
        sub_key,
        keys::sub_prefix_len(key),
        "collection member",
    )?)
}

/// Scans `range` unless it is empty (storage ranges must not run backwards).
pub(crate) fn scan_checked<'e>(
    ex: &'e Exec<'_>,
    range: ScanRange,
    dir: Direction,
) -> crate::kv::PairIter<'e> {
    if range.is_empty() {
        Box::new(std::iter::empty())
    } else {
        ex.scan(range, dir)
    }
}

/// `count` distinct numbers from `0..n` (count <= n), ascending (Floyd's sampling).
pub(crate) fn sample_distinct(rng: &mut DetRng, n: u64, count: u64) -> Vec<u64> {
    let count = count.min(n);
    let mut chosen = BTreeSet::new();
    for j in (n - count)..n {
        let t = rng.below(j + 1);
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen.into_iter().collect()
}

/// The sub-key entries at the given ranks (sorted ascending, repeats allowed) of the
/// collection under `range`, in the same order: found by position in storage when
/// there are few enough of them for the collection's size (each the entry a walk would
/// reach, so a replay that walks picks the same), else with one scan. A single rank in
/// the upper half is reached from the end.
pub(crate) fn entries_at_ranks(
    ex: &Exec,
    range: ScanRange,
    len: u64,
    ranks: &[u64],
) -> CmdResult<Vec<(Bytes, Bytes)>> {
    if !ranks.is_empty() && (ranks.len() as u64).saturating_mul(POSITION_COST) <= len {
        let mut found = Vec::with_capacity(ranks.len());
        for &r in ranks {
            match ex.entry_at(&range, len, r)? {
                Some(kv) => found.push(kv),
                None => break,
            }
        }
        if found.len() == ranks.len() {
            return Ok(found);
        }
    }
    let mut out = Vec::new();
    if let [only] = ranks {
        if *only >= len / 2 && *only < len {
            let skip = len - 1 - only;
            for (i, item) in scan_checked(ex, range, Direction::Reverse).enumerate() {
                let kv = item?;
                if i as u64 == skip {
                    out.push(kv);
                    break;
                }
            }
            return Ok(out);
        }
    }
    let mut j = 0usize;
    if ranks.is_empty() {
        return Ok(out);
    }
    for (pos, item) in scan_checked(ex, range, Direction::Forward).enumerate() {
        let kv = item?;
        let pos = pos as u64;
        while j < ranks.len() && ranks[j] == pos {
            out.push(kv.clone());
            j += 1;
        }
        if j == ranks.len() {
            break;
        }
    }
    Ok(out)
}

/// About how many entries a walk passes in the time storage takes to find one by its
/// position (three descents of its order and a seek); [`entries_at_ranks`] asks storage
/// when the walk would be longer.
pub(crate) const POSITION_COST: u64 = 256;

/// Parses a count that may be negative but not `i64::MIN` (SRANDMEMBER, ZRANDMEMBER).
pub(crate) fn signed_count(b: &[u8]) -> CmdResult<i64> {
    let n = int_arg(b)?;
    if n == i64::MIN {
        return fail(format!(
            "ERR value is out of range, value must between {} and {}",
            -i64::MAX,
            i64::MAX
        ));
    }
    Ok(n)
}

/// Parses a count that must be >= 0 (`getPositiveLongFromObjectOrReply` without a
/// custom message).
pub(crate) fn positive_count(b: &[u8]) -> CmdResult<i64> {
    let n = int_arg(b)?;
    if n < 0 {
        return fail("ERR value is out of range, must be positive");
    }
    Ok(n)
}

/// Parses a number in `min..` where both a malformed number and one out of range give
/// `msg` (Redis's `getRangeLongFromObjectOrReply` with a message).
pub(crate) fn ranged_with_msg(b: &[u8], min: i64, msg: &str) -> CmdResult<i64> {
    match parse_i64(b) {
        Some(n) if n >= min => Ok(n),
        _ => fail(msg.to_string()),
    }
}

/// Options of SSCAN/ZSCAN/HSCAN.
pub(crate) struct ScanOpts {
    count: u64,
    pattern: Option<Bytes>,
}

/// Parses `[MATCH pattern] [COUNT count]` from `args` (everything after the cursor).
pub(crate) fn parse_scan_opts(args: &[Bytes]) -> CmdResult<ScanOpts> {
    let mut opts = ScanOpts {
        count: 10,
        pattern: None,
    };
    let mut i = 0;
    while i < args.len() {
        let left = args.len() - i;
        if eq_ci(&args[i], "COUNT") && left >= 2 {
            let n = int_arg(&args[i + 1])?;
            if n < 1 {
                return fail(errors::SYNTAX);
            }
            opts.count = n as u64;
            i += 2;
        } else if eq_ci(&args[i], "MATCH") && left >= 2 {
            let p = &args[i + 1];
            opts.pattern = (p.as_ref() != b"*").then(|| p.clone());
            i += 2;
        } else {
            return fail(errors::SYNTAX);
        }
    }
    Ok(opts)
}

/// One SSCAN/ZSCAN step over the sub-keys of (`key`, `version`): examines up to COUNT
/// members after the cursor's resume point and lets `emit` render the ones MATCH keeps.
pub(crate) fn scan_step(
    ex: &mut Exec,
    key: &[u8],
    version: u64,
    cursor: u64,
    opts: &ScanOpts,
    mut emit: impl FnMut(Bytes, &Bytes, &mut Vec<Reply>) -> CmdResult<()>,
) -> CmdResult<Reply> {
    let prefix = keys::sub_prefix(keys::SUB, ex.db, key, version);
    let whole = ScanRange::prefix(&prefix);
    let start = match ex.cursors.resume(cursor) {
        Some(after) => {
            let mut k = prefix.clone();
            k.extend_from_slice(&after);
            Bound::Excluded(k.freeze())
        }
        None => whole.start.clone(),
    };
    let range = ScanRange {
        start,
        end: whole.end,
    };
    let mut items = Vec::new();
    let mut last: Option<Bytes> = None;
    let mut more = false;
    for (seen, item) in scan_checked(ex, range, Direction::Forward).enumerate() {
        let (k, v) = item?;
        if seen as u64 == opts.count {
            more = true;
            break;
        }
        let member = member_of(key, k)?;
        last = Some(member.clone());
        if opts.pattern.as_ref().is_none_or(|p| glob_match(p, &member)) {
            emit(member, &v, &mut items)?;
        }
    }
    let next = match (more, last) {
        (true, Some(m)) => ex.cursors.save(m),
        _ => 0,
    };
    Ok(Reply::Array(vec![
        Reply::bulk(next.to_string()),
        Reply::Array(items),
    ]))
}

/// The empty SCAN reply: cursor 0, no elements.
pub(crate) fn empty_scan() -> Reply {
    Reply::Array(vec![Reply::bulk("0"), Reply::Array(Vec::new())])
}

// ---------------------------------------------------------------------------------------
// Set internals.
// ---------------------------------------------------------------------------------------

/// A live set: its key, metadata, version and size.
struct SetRef {
    key: Bytes,
    meta: Meta,
    version: u64,
    len: u64,
}

/// The set at `key` (None if absent); WRONGTYPE for other types.
fn load(ex: &mut Exec, key: &Bytes) -> CmdResult<Option<SetRef>> {
    match ex.typed(key, KeyType::Set)? {
        Some(meta) => {
            let (version, len) = coll(key, &meta)?;
            Ok(Some(SetRef {
                key: key.clone(),
                meta,
                version,
                len,
            }))
        }
        None => Ok(None),
    }
}

fn is_member(ex: &Exec, s: &SetRef, member: &[u8]) -> CmdResult<bool> {
    Ok(ex
        .get(&keys::sub_key(ex.db, &s.key, s.version, member))?
        .is_some())
}

fn all_members(ex: &Exec, s: &SetRef) -> CmdResult<Vec<Bytes>> {
    let mut out = Vec::new();
    for item in ex.scan(
        keys::sub_range(ex.db, &s.key, s.version),
        Direction::Forward,
    ) {
        let (k, _) = item?;
        out.push(member_of(&s.key, k)?);
    }
    Ok(out)
}

/// Members at the given ascending ranks (repeats allowed), in that order.
fn members_at(ex: &Exec, s: &SetRef, ranks: &[u64]) -> CmdResult<Vec<Bytes>> {
    let range = keys::sub_range(ex.db, &s.key, s.version);
    entries_at_ranks(ex, range, s.len, ranks)?
        .into_iter()
        .map(|(k, _)| member_of(&s.key, k))
        .collect()
}

/// Writes `members` (sorted, distinct) as the new set at `dst`, replacing any value,
/// and raises `event` (or `del`, see [`notify_stored`]).
fn store_set(ex: &mut Exec, dst: &[u8], members: &[Bytes], event: &'static str) -> CmdResult<()> {
    let existed = clear_destination(ex, dst)?;
    if !members.is_empty() {
        let (meta, v) = new_collection(ex, KeyType::Set);
        for m in members {
            ex.put(keys::sub_key(ex.db, dst, v, m), Bytes::new())?;
        }
        ex.put_meta(dst, &with_len(&meta, members.len() as u64), None)?;
    }
    notify_stored(ex, dst, !members.is_empty(), existed, ('s', event));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Commands.
// ---------------------------------------------------------------------------------------

fn sadd(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let old = load(ex, key)?;
    let (base, version, len) = match &old {
        Some(s) => (s.meta.clone(), s.version, s.len),
        None => {
            let (m, v) = new_collection(ex, KeyType::Set);
            (m, v, 0)
        }
    };
    let mut added = 0u64;
    // A set this command creates has a new version, so storage holds none of its
    // members: a member is new unless added here before (no read per member).
    let mut created = old.is_none().then(std::collections::HashSet::new);
    for m in &args[2..] {
        let sk = keys::sub_key(ex.db, key, version, m);
        let new = match &mut created {
            Some(seen) => seen.insert(m),
            None => !ex.contains(&sk)?,
        };
        if new {
            ex.put(sk, Bytes::new())?;
            added += 1;
        }
    }
    if added > 0 {
        let old_meta = old.as_ref().map(|s| &s.meta);
        save_len(ex, key, old_meta, &base, len + added)?;
        ex.notify('s', "sadd", key);
    }
    Ok(Reply::Int(added as i64))
}

fn srem(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let Some(s) = load(ex, key)? else {
        return Ok(Reply::Int(0));
    };
    let mut removed = 0u64;
    for m in &args[2..] {
        let sk = keys::sub_key(ex.db, key, s.version, m);
        if ex.contains(&sk)? {
            ex.delete(sk)?;
            removed += 1;
            if removed == s.len {
                break;
            }
        }
    }
    if removed > 0 {
        save_len(ex, key, Some(&s.meta), &s.meta, s.len - removed)?;
        ex.notify('s', "srem", key);
    }
    Ok(Reply::Int(removed as i64))
}

fn scard(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    Ok(Reply::Int(load(ex, &args[1])?.map_or(0, |s| s.len as i64)))
}

fn sismember(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let Some(s) = load(ex, &args[1])? else {
        return Ok(Reply::Int(0));
    };
    Ok(Reply::Int(i64::from(is_member(ex, &s, &args[2])?)))
}

fn smismember(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let s = load(ex, &args[1])?;
    let mut out = Vec::with_capacity(args.len() - 2);
    for m in &args[2..] {
        let hit = match &s {
            Some(s) => is_member(ex, s, m)?,
            None => false,
        };
        out.push(Reply::Int(i64::from(hit)));
    }
    Ok(Reply::Array(out))
}

fn smembers(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let Some(s) = load(ex, &args[1])? else {
        return Ok(Reply::Set(Vec::new()));
    };
    let range = keys::sub_range(ex.db, &s.key, s.version);
    let prefix = keys::sub_prefix_len(&s.key);
    let members = key_suffixes(ex, range, Visit::all(prefix))?;
    Ok(Reply::BulkSet(members))
}

/// Which entries of a range [`key_suffixes`] copies, and what of each.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Visit {
    /// The order.
    pub dir: Direction,
    /// Entries passed over first.
    pub skip: u64,
    /// Most entries visited, the skipped ones included.
    pub limit: usize,
    /// Bytes of each key dropped: the collection's sub-key prefix, leaving its member.
    pub prefix: usize,
    /// Each entry's value too, after its member (HGETALL's field, value, ...).
    pub values: bool,
}

impl Visit {
    /// Every member, forward, without values.
    pub fn all(prefix: usize) -> Visit {
        Visit {
            dir: Direction::Forward,
            skip: 0,
            limit: usize::MAX,
            prefix,
            values: false,
        }
    }
}

/// The members of `range`'s entries that `how` selects (and their values if asked),
/// copied once each from storage's keys into one buffer, the reply's, where a scan
/// copied each key out and the member again into a reply of its own (ZRANGE 0 99:
/// 78,913 -> 29,690 instructions per request). A key shorter than the prefix is
/// corrupt.
pub(crate) fn key_suffixes(ex: &Exec, range: ScanRange, how: Visit) -> CmdResult<BulkList> {
    let mut out = BulkList::with_capacity(how.limit.saturating_sub(how.skip as usize));
    let (mut seen, mut short) = (0u64, None);
    ex.visit_entries(range, how.dir, how.limit, &mut |k, v| {
        seen += 1;
        if seen <= how.skip {
            return;
        }
        match k.get(how.prefix..) {
            Some(member) => {
                out.push(member);
                if how.values {
                    out.push(v);
                }
            }
            None => {
                short.get_or_insert_with(|| Bytes::copy_from_slice(k));
            }
        }
    })?;
    match short {
        Some(k) => {
            Err(EngineError::corrupt("collection member", &k, "key shorter than its prefix").into())
        }
        None => Ok(out),
    }
}

fn srandmember(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    if args.len() > 3 {
        return fail(errors::SYNTAX);
    }
    if args.len() == 2 {
        let Some(s) = load(ex, &args[1])? else {
            return Ok(Reply::Nil);
        };
        let r = ex.rng.below(s.len);
        let m = members_at(ex, &s, &[r])?;
        return Ok(Reply::opt_bulk(m.into_iter().next()));
    }
    let count = signed_count(&args[2])?;
    let Some(s) = load(ex, &args[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    let picked = random_members(ex, &s, count)?;
    Ok(Reply::Array(picked.into_iter().map(Reply::Bulk).collect()))
}

/// SRANDMEMBER's choice for `count`: distinct members for a positive count (the whole
/// set if it is at least as large), `-count` independent draws for a negative one.
fn random_members(ex: &mut Exec, s: &SetRef, count: i64) -> CmdResult<Vec<Bytes>> {
    let range = keys::sub_range(ex.db, &s.key, s.version);
    random_entries(ex, range, s.len, count)?
        .into_iter()
        .map(|(k, _)| member_of(&s.key, k))
        .collect()
}

/// Random sub-key entries of the collection of `len` elements under `range`, with the
/// SRANDMEMBER/ZRANDMEMBER count rules: a positive count picks distinct elements (all of
/// them, in order, when count >= len), a negative one draws `-count` times with repeats,
/// in draw order.
pub(crate) fn random_entries(
    ex: &mut Exec,
    range: ScanRange,
    len: u64,
    count: i64,
) -> CmdResult<Vec<(Bytes, Bytes)>> {
    if count == 0 || len == 0 {
        return Ok(Vec::new());
    }
    if count > 0 {
        let count = count as u64;
        if count >= len {
            return scan_checked(ex, range, Direction::Forward)
                .map(|r| r.map_err(CmdError::from))
                .collect();
        }
        let ranks = sample_distinct(&mut ex.rng, len, count);
        return entries_at_ranks(ex, range, len, &ranks);
    }
    let draws = count.unsigned_abs();
    let mut ranks = Vec::new();
    for _ in 0..draws {
        ranks.push(ex.rng.below(len));
    }
    let corrupt = || {
        CmdError::Engine(EngineError::corrupt(
            "collection metadata",
            b"",
            "length larger than the elements stored",
        ))
    };
    if len <= draws {
        // The collection is no larger than the reply: read it once and index into it.
        let all: Vec<(Bytes, Bytes)> = scan_checked(ex, range, Direction::Forward)
            .map(|r| r.map_err(CmdError::from))
            .collect::<CmdResult<_>>()?;
        return ranks
            .iter()
            .map(|r| all.get(*r as usize).cloned().ok_or_else(corrupt))
            .collect();
    }
    let mut order: Vec<(u64, usize)> = ranks.iter().copied().zip(0..).collect();
    order.sort_unstable();
    let sorted: Vec<u64> = order.iter().map(|(r, _)| *r).collect();
    let found = entries_at_ranks(ex, range, len, &sorted)?;
    if found.len() != sorted.len() {
        return Err(corrupt());
    }
    let mut out = vec![(Bytes::new(), Bytes::new()); ranks.len()];
    for ((_, pos), e) in order.iter().zip(found) {
        if let Some(slot) = out.get_mut(*pos) {
            *slot = e;
        }
    }
    Ok(out)
}

fn spop(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    if args.len() > 3 {
        return fail(errors::SYNTAX);
    }
    let key = &args[1];
    if args.len() == 2 {
        let Some(s) = load(ex, key)? else {
            return Ok(Reply::Nil);
        };
        let r = ex.rng.below(s.len);
        let Some(m) = members_at(ex, &s, &[r])?.into_iter().next() else {
            return Ok(Reply::Nil);
        };
        ex.delete(keys::sub_key(ex.db, key, s.version, &m))?;
        save_len(ex, key, Some(&s.meta), &s.meta, s.len - 1)?;
        ex.notify('s', "spop", key);
        return Ok(Reply::Bulk(m));
    }
    let count = positive_count(&args[2])? as u64;
    let Some(s) = load(ex, key)? else {
        return Ok(Reply::Set(Vec::new()));
    };
    if count == 0 {
        return Ok(Reply::Set(Vec::new()));
    }
    if count >= s.len {
        let all = all_members(ex, &s)?;
        // Everything goes: O(1) delete, the members are collected in the background.
        ex.delete_emptied(key, &s.meta)?;
        ex.notify('s', "spop", key);
        return Ok(Reply::Set(all.into_iter().map(Reply::Bulk).collect()));
    }
    let ranks = sample_distinct(&mut ex.rng, s.len, count);
    let picked = members_at(ex, &s, &ranks)?;
    for m in &picked {
        ex.delete(keys::sub_key(ex.db, key, s.version, m))?;
    }
    save_len(ex, key, Some(&s.meta), &s.meta, s.len - picked.len() as u64)?;
    ex.notify('s', "spop", key);
    Ok(Reply::Set(picked.into_iter().map(Reply::Bulk).collect()))
}

fn smove(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let (src_key, dst_key, member) = (&args[1], &args[2], &args[3]);
    let Some(src_meta) = ex.meta(src_key)? else {
        return Ok(Reply::Int(0));
    };
    if src_meta.kind != KeyType::Set {
        return fail(errors::WRONGTYPE);
    }
    let dst = load(ex, dst_key)?;
    let (version, len) = coll(src_key, &src_meta)?;
    let src = SetRef {
        key: src_key.clone(),
        meta: src_meta,
        version,
        len,
    };
    if src_key == dst_key {
        return Ok(Reply::Int(i64::from(is_member(ex, &src, member)?)));
    }
    if !is_member(ex, &src, member)? {
        return Ok(Reply::Int(0));
    }
    ex.delete(keys::sub_key(ex.db, src_key, src.version, member))?;
    save_len(ex, src_key, Some(&src.meta), &src.meta, src.len - 1)?;
    ex.notify('s', "srem", src_key);
    // An emptied source's `del` comes before the destination's `sadd`, as in Redis.
    ex.raise_emptied();
    match dst {
        Some(d) => {
            if !is_member(ex, &d, member)? {
                ex.put(
                    keys::sub_key(ex.db, dst_key, d.version, member),
                    Bytes::new(),
                )?;
                save_len(ex, dst_key, Some(&d.meta), &d.meta, d.len + 1)?;
                ex.notify('s', "sadd", dst_key);
            }
        }
        None => {
            let (meta, v) = new_collection(ex, KeyType::Set);
            ex.put(keys::sub_key(ex.db, dst_key, v, member), Bytes::new())?;
            save_len(ex, dst_key, None, &meta, 1)?;
            ex.notify('s', "sadd", dst_key);
        }
    }
    Ok(Reply::Int(1))
}

/// Loads every input set; WRONGTYPE if any key holds another type.
fn load_all(ex: &mut Exec, keys: &[Bytes]) -> CmdResult<Vec<Option<SetRef>>> {
    keys.iter().map(|k| load(ex, k)).collect()
}

/// The intersection of `keys`, in member order, stopping at `limit` members (0 = all).
fn intersect(ex: &mut Exec, keys: &[Bytes], limit: u64) -> CmdResult<Vec<Bytes>> {
    let sets = load_all(ex, keys)?;
    if sets.iter().any(Option::is_none) {
        return Ok(Vec::new());
    }
    let mut sets: Vec<SetRef> = sets.into_iter().flatten().collect();
    // Smallest first: scan it and probe the others.
    sets.sort_by_key(|s| s.len);
    let Some((first, rest)) = sets.split_first() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    'members: for item in ex.scan(
        keys::sub_range(ex.db, &first.key, first.version),
        Direction::Forward,
    ) {
        let (k, _) = item?;
        let m = member_of(&first.key, k)?;
        for other in rest {
            if other.key != first.key && !is_member(ex, other, &m)? {
                continue 'members;
            }
        }
        out.push(m);
        if limit != 0 && out.len() as u64 >= limit {
            break;
        }
    }
    Ok(out)
}

fn union(ex: &mut Exec, keys: &[Bytes]) -> CmdResult<Vec<Bytes>> {
    let sets = load_all(ex, keys)?;
    let mut acc = BTreeSet::new();
    for s in sets.iter().flatten() {
        acc.extend(all_members(ex, s)?);
    }
    Ok(acc.into_iter().collect())
}

fn difference(ex: &mut Exec, keys: &[Bytes]) -> CmdResult<Vec<Bytes>> {
    let sets = load_all(ex, keys)?;
    let Some((Some(first), rest)) = sets.split_first() else {
        return Ok(Vec::new());
    };
    if rest.iter().flatten().any(|s| s.key == first.key) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    'members: for item in ex.scan(
        keys::sub_range(ex.db, &first.key, first.version),
        Direction::Forward,
    ) {
        let (k, _) = item?;
        let m = member_of(&first.key, k)?;
        for other in rest.iter().flatten() {
            if is_member(ex, other, &m)? {
                continue 'members;
            }
        }
        out.push(m);
    }
    Ok(out)
}

fn set_reply(members: Vec<Bytes>) -> Reply {
    Reply::Set(members.into_iter().map(Reply::Bulk).collect())
}

fn sinter(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    Ok(set_reply(intersect(ex, &args[1..], 0)?))
}

fn sunion(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    Ok(set_reply(union(ex, &args[1..])?))
}

fn sdiff(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    Ok(set_reply(difference(ex, &args[1..])?))
}

fn sinterstore(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let members = intersect(ex, &args[2..], 0)?;
    store_set(ex, &args[1], &members, "sinterstore")?;
    Ok(Reply::Int(members.len() as i64))
}

fn sunionstore(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let members = union(ex, &args[2..])?;
    store_set(ex, &args[1], &members, "sunionstore")?;
    Ok(Reply::Int(members.len() as i64))
}

fn sdiffstore(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let members = difference(ex, &args[2..])?;
    store_set(ex, &args[1], &members, "sdiffstore")?;
    Ok(Reply::Int(members.len() as i64))
}

fn sintercard(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let numkeys = ranged_with_msg(&args[1], 1, "ERR numkeys should be greater than 0")?;
    let avail = (args.len() - 2) as i64;
    if numkeys > avail {
        return fail("ERR Number of keys can't be greater than number of args");
    }
    let end = 2 + numkeys as usize;
    let mut limit = 0u64;
    let mut i = end;
    while i < args.len() {
        if eq_ci(&args[i], "LIMIT") && i + 1 < args.len() {
            limit = ranged_with_msg(&args[i + 1], 0, "ERR LIMIT can't be negative")? as u64;
            i += 2;
        } else {
            return fail(errors::SYNTAX);
        }
    }
    let n = intersect(ex, &args[2..end], limit)?.len();
    Ok(Reply::Int(n as i64))
}

fn sscan(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let cursor = parse_cursor(&args[2])?;
    let Some(s) = load(ex, &args[1])? else {
        return Ok(empty_scan());
    };
    let opts = parse_scan_opts(&args[3..])?;
    scan_step(ex, &s.key, s.version, cursor, &opts, |m, _, out| {
        out.push(Reply::Bulk(m));
        Ok(())
    })
}
