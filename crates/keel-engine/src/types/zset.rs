//! Sorted-set commands.
//!
//! Layout, all under the key's current collection version:
//! - member sub-key `S db klen key version member` → the score, 8 bytes (f64 bits, LE);
//!   it answers ZSCORE and membership with one point get and orders members bytewise
//!   (BYLEX ranges, ZSCAN, ZRANDMEMBER);
//! - score index `Z db klen key version sortable(score) member` → empty, where
//!   `keys::score_to_sortable` makes byte order numeric order; it orders members by
//!   (score, member) exactly as Redis ranks them.
//!
//! Scores are stored normalised: -0 becomes 0 (Redis treats them as equal; both the
//! member value and the index then agree on one spelling).
//!
//! Complexity (n = members, m = members returned or removed):
//! - ZADD, ZINCRBY, ZREM, ZSCORE, ZMSCORE, ZCARD: O(1) point operations per member.
//! - ZRANGE BYSCORE/BYLEX (and the ZRANGEBY*/ZREVRANGEBY* forms), ZREMRANGEBYSCORE/BYLEX,
//!   ZPOPMIN/ZPOPMAX/ZMPOP: an ordered scan seeking to the bound, O(log n + m).
//! - Rank operations use storage's order statistics where it keeps them (memory,
//!   bitcask; see [`keel_storage::Storage::count_within`]): ZRANK, ZREVRANK, ZCOUNT and
//!   ZLEXCOUNT O(log n); ZRANGE by index, ZREMRANGEBYRANK and the LIMIT offset of the
//!   BYSCORE/BYLEX forms O(log n + m), the window's first member found by its
//!   position. Where storage cannot count exactly (the lsm engine; deleted members a
//!   snapshot still holds; many of the same entry's writes to the set) they walk the
//!   index: ZRANK O(rank), ZREVRANK O(n - rank), ranges O(offset + m), counts O(m).
//!   Both ways give the same answer.
//! - ZRANDMEMBER: the members at random positions of the member sub-keys, uniform and
//!   driven by the entry's DetRng: O(log n) each by position in storage where it keeps
//!   order statistics (as SPOP), else one O(n) scan for all the picks.
//! - ZUNION/ZINTER/ZDIFF (and STORE forms): ZINTER scans the smallest input and probes
//!   the others with point gets; ZUNION scans every input; ZDIFF scans the first input.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::{Buf, Bytes, BytesMut};
use keel_storage::{Direction, ScanRange};

use crate::args::{eq_ci, float_arg, format_f64, int_arg, parse_f64};
use crate::command::{flags::*, CommandSpec};
use crate::cursor::parse_cursor;
use crate::error::{fail, CmdError, CmdResult, EngineError};
use crate::exec::Exec;
use crate::keys;
use crate::meta::{KeyType, Meta};
use crate::reply::{errors, BulkList, Reply};
use crate::types::set::{
    clear_destination, coll, empty_scan, entries_at_ranks, key_suffixes, member_of, new_collection,
    notify_stored, parse_scan_opts, positive_count, random_entries, ranged_with_msg, save_len,
    scan_checked, scan_step, signed_count, Visit, POSITION_COST,
};

/// Reply to ZADD … INCR / ZINCRBY when the sum is NaN (e.g. +inf + -inf).
const NAN_SCORE: &str = "ERR resulting score is not a number (NaN)";
/// Bad score bound of a BYSCORE range.
const BAD_SCORE_RANGE: &str = "ERR min or max is not a float";
/// Bad bound of a BYLEX range.
const BAD_LEX_RANGE: &str = "ERR min or max not valid string range item";

macro_rules! zcmd {
    ($name:literal, $arity:expr, $flags:expr, $first:expr, $last:expr, $step:expr, $summary:literal, $handler:expr) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            first_key: $first,
            last_key: $last,
            step: $step,
            group: "sorted-set",
            summary: $summary,
            handler: $handler,
        }
    };
}

/// The sorted-set commands. Commands whose keys follow a numkeys argument have no fixed
/// key positions (0/0/0, Redis's "movable keys"): the router must read numkeys.
pub static COMMANDS: &[CommandSpec] = &[
    zcmd!("zadd", -4, WRITE | DENYOOM | FAST, 1, 1, 1,
        "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.", zadd),
    zcmd!("zincrby", 4, WRITE | DENYOOM | FAST, 1, 1, 1,
        "Increments the score of a member in a sorted set.", zincrby),
    zcmd!("zrem", -3, WRITE | FAST, 1, 1, 1,
        "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.", zrem),
    zcmd!("zcard", 2, READONLY | FAST, 1, 1, 1,
        "Returns the number of members in a sorted set.", zcard),
    zcmd!("zscore", 3, READONLY | FAST, 1, 1, 1,
        "Returns the score of a member in a sorted set.", zscore),
    zcmd!("zmscore", -3, READONLY | FAST, 1, 1, 1,
        "Returns the score of one or more members in a sorted set.", zmscore),
    zcmd!("zrank", -3, READONLY, 1, 1, 1,
        "Returns the index of a member in a sorted set ordered by ascending scores.", zrank),
    zcmd!("zrevrank", -3, READONLY, 1, 1, 1,
        "Returns the index of a member in a sorted set ordered by descending scores.", zrevrank),
    zcmd!("zcount", 4, READONLY, 1, 1, 1,
        "Returns the count of members in a sorted set that have scores within a range.", zcount),
    zcmd!("zlexcount", 4, READONLY, 1, 1, 1,
        "Returns the number of members in a sorted set within a lexicographical range.", zlexcount),
    zcmd!("zrange", -4, READONLY, 1, 1, 1,
        "Returns members in a sorted set within a range of indexes, scores or lexicographical order.", zrange),
    zcmd!("zrangestore", -5, WRITE | DENYOOM | POSITIONAL, 1, 2, 1,
        "Stores a range of members from sorted set in a key.", zrangestore),
    zcmd!("zrevrange", -4, READONLY, 1, 1, 1,
        "Returns members in a sorted set within a range of indexes in reverse order.", zrevrange),
    zcmd!("zrangebyscore", -4, READONLY, 1, 1, 1,
        "Returns members in a sorted set within a range of scores.", zrangebyscore),
    zcmd!("zrevrangebyscore", -4, READONLY, 1, 1, 1,
        "Returns members in a sorted set within a range of scores in reverse order.", zrevrangebyscore),
    zcmd!("zrangebylex", -4, READONLY, 1, 1, 1,
        "Returns members in a sorted set within a lexicographical range.", zrangebylex),
    zcmd!("zrevrangebylex", -4, READONLY, 1, 1, 1,
        "Returns members in a sorted set within a lexicographical range in reverse order.", zrevrangebylex),
    zcmd!("zremrangebyrank", 4, WRITE | POSITIONAL, 1, 1, 1,
        "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.", zremrangebyrank),
    zcmd!("zremrangebyscore", 4, WRITE, 1, 1, 1,
        "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.", zremrangebyscore),
    zcmd!("zremrangebylex", 4, WRITE, 1, 1, 1,
        "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.", zremrangebylex),
    zcmd!("zpopmin", -2, WRITE | FAST | POSITIONAL, 1, 1, 1,
        "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", zpopmin),
    zcmd!("zpopmax", -2, WRITE | FAST | POSITIONAL, 1, 1, 1,
        "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", zpopmax),
    zcmd!("zmpop", -4, WRITE | POSITIONAL, 0, 0, 0,
        "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.", zmpop),
    zcmd!("bzpopmin", -3, WRITE | BLOCKING | FAST | POSITIONAL, 1, -2, 1,
        "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise.", bzpopmin),
    zcmd!("bzpopmax", -3, WRITE | BLOCKING | FAST | POSITIONAL, 1, -2, 1,
        "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.", bzpopmax),
    zcmd!("bzmpop", -5, WRITE | BLOCKING | POSITIONAL, 0, 0, 0,
        "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise.", bzmpop),
    zcmd!("zrandmember", -2, READONLY | RANDOM, 1, 1, 1,
        "Returns one or more random members from a sorted set.", zrandmember),
    zcmd!("zunion", -3, READONLY, 0, 0, 0,
        "Returns the union of multiple sorted sets.", zunion),
    zcmd!("zinter", -3, READONLY, 0, 0, 0,
        "Returns the intersect of multiple sorted sets.", zinter),
    zcmd!("zdiff", -3, READONLY, 0, 0, 0,
        "Returns the difference between multiple sorted sets.", zdiff),
    zcmd!("zintercard", -3, READONLY, 0, 0, 0,
        "Returns the number of members of the intersect of multiple sorted sets.", zintercard),
    zcmd!("zunionstore", -4, WRITE | DENYOOM, 1, 1, 1,
        "Stores the union of multiple sorted sets in a key.", zunionstore),
    zcmd!("zinterstore", -4, WRITE | DENYOOM, 1, 1, 1,
        "Stores the intersect of multiple sorted sets in a key.", zinterstore),
    zcmd!("zdiffstore", -4, WRITE | DENYOOM, 1, 1, 1,
        "Stores the difference of multiple sorted sets in a key.", zdiffstore),
    zcmd!("zscan", -3, READONLY, 1, 1, 1,
        "Iterates over members and scores of a sorted set.", zscan),
];

// ---------------------------------------------------------------------------------------
// Storage helpers.
// ---------------------------------------------------------------------------------------

/// Decodes a member sub-key's value (`k` names the record in errors).
pub(crate) fn decode_score(k: &[u8], v: &[u8]) -> CmdResult<f64> {
    let raw: [u8; 8] = v.try_into().map_err(|_| {
        CmdError::Engine(EngineError::corrupt(
            "sorted-set member",
            k,
            format!("score is {} bytes, expected 8", v.len()),
        ))
    })?;
    Ok(f64::from_le_bytes(raw))
}

/// One spelling per score: -0 is stored as 0.
fn norm(s: f64) -> f64 {
    if s == 0.0 {
        0.0
    } else {
        s
    }
}

/// A live sorted set.
struct ZRef {
    key: Bytes,
    meta: Meta,
    version: u64,
    len: u64,
}

/// The sorted set at `key` (None if absent); WRONGTYPE for other types.
fn load(ex: &mut Exec, key: &Bytes) -> CmdResult<Option<ZRef>> {
    match ex.typed(key, KeyType::ZSet)? {
        Some(meta) => {
            let (version, len) = coll(key, &meta)?;
            Ok(Some(ZRef {
                key: key.clone(),
                meta,
                version,
                len,
            }))
        }
        None => Ok(None),
    }
}

fn idx_prefix(db: u8, key: &[u8], version: u64) -> BytesMut {
    keys::sub_prefix(keys::ZSCORE_IDX, db, key, version)
}

/// Splits a scanned score-index key of `key` into (member, score).
fn parse_idx(key: &[u8], mut k: Bytes) -> CmdResult<(Bytes, f64)> {
    let plen = keys::sub_prefix_len(key);
    let bad = || {
        CmdError::Engine(EngineError::corrupt(
            "sorted-set index",
            &k,
            "key shorter than prefix and score",
        ))
    };
    let raw: [u8; 8] = k
        .get(plen..plen + 8)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(bad)?;
    // Advanced in place, not sliced (see `keys::sub_suffix`).
    k.advance(plen + 8);
    Ok((k, keys::sortable_to_score(raw)))
}

/// Splits a scanned member sub-key and its value into (member, score).
fn parse_member(key: &[u8], k: Bytes, v: &Bytes) -> CmdResult<(Bytes, f64)> {
    let score = decode_score(&k, v)?;
    Ok((member_of(key, k)?, score))
}

impl ZRef {
    fn score(&self, ex: &Exec, member: &[u8]) -> CmdResult<Option<f64>> {
        let k = keys::sub_key(ex.db, &self.key, self.version, member);
        ex.read_value(&k, |v| decode_score(&k, v))?.transpose()
    }

    fn index_range(&self, db: u8) -> ScanRange {
        ScanRange::prefix(idx_prefix(db, &self.key, self.version))
    }

    /// Every member sub-key, in member order (the range BYLEX parts are of).
    fn member_range(&self, db: u8) -> ScanRange {
        ScanRange::prefix(keys::sub_prefix(keys::SUB, db, &self.key, self.version))
    }
}

/// Writes `member`, whose sub-key is `member_key`, with `score` (already normalised),
/// replacing its index entry for `old` if it had one.
fn write_member(
    ex: &mut Exec,
    member_key: Bytes,
    version: u64,
    member: &[u8],
    score: f64,
    old: Option<f64>,
) -> CmdResult<()> {
    if let Some(o) = old {
        ex.delete(keys::score_key(version, o, member))?;
    }
    ex.put(member_key, Bytes::copy_from_slice(&score.to_le_bytes()))?;
    ex.put(keys::score_key(version, score, member), Bytes::new())
}

fn remove_member(
    ex: &mut Exec,
    key: &[u8],
    version: u64,
    member: &[u8],
    score: f64,
) -> CmdResult<()> {
    let db = ex.db;
    ex.delete(keys::score_key(version, score, member))?;
    ex.delete(keys::sub_key(db, key, version, member))
}

/// Removes `items` (all present in `z`), deleting the key in O(1) when nothing is left.
fn remove_items(ex: &mut Exec, z: &ZRef, items: &[(Bytes, f64)]) -> CmdResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let removed = items.len() as u64;
    if removed >= z.len {
        // Everything goes: the old version's keys are collected in the background.
        ex.delete_emptied(&z.key, &z.meta)?;
        return Ok(());
    }
    for (m, s) in items {
        remove_member(ex, &z.key, z.version, m, *s)?;
    }
    save_len(ex, &z.key, Some(&z.meta), &z.meta, z.len - removed)
}

/// Writes `items` as the new sorted set at `dst`, replacing any value of any type, and
/// raises `event` (or `del`, see [`notify_stored`]); an empty result leaves `dst`
/// deleted.
pub(crate) fn store_zset(
    ex: &mut Exec,
    dst: &[u8],
    items: &[(Bytes, f64)],
    event: &'static str,
) -> CmdResult<()> {
    let existed = clear_destination(ex, dst)?;
    if !items.is_empty() {
        let (meta, v) = new_collection(ex, KeyType::ZSet);
        for (m, s) in items {
            let mk = keys::sub_key(ex.db, dst, v, m);
            write_member(ex, mk, v, m, norm(*s), None)?;
        }
        save_len(ex, dst, None, &meta, items.len() as u64)?;
    }
    notify_stored(ex, dst, !items.is_empty(), existed, ('z', event));
    Ok(())
}

/// Collects the window `[offset, offset + limit)` (limit < 0: no end) of `iter`, mapping
/// each entry with `f`.
fn window<'a>(
    iter: crate::kv::PairIter<'a>,
    offset: u64,
    limit: i64,
    mut f: impl FnMut(Bytes, &Bytes) -> CmdResult<(Bytes, f64)>,
) -> CmdResult<Vec<(Bytes, f64)>> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let mut skipped = 0u64;
    for item in iter {
        let (k, v) = item?;
        if skipped < offset {
            skipped += 1;
            continue;
        }
        out.push(f(k, &v)?);
        if limit > 0 && out.len() as u64 >= limit as u64 {
            break;
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Ranges.
// ---------------------------------------------------------------------------------------

/// A score interval with Redis's "(" exclusive ends.
#[derive(Debug, Clone, Copy)]
struct ScoreRange {
    min: f64,
    minex: bool,
    max: f64,
    maxex: bool,
}

/// Parses a number the way C's strtod consumes a whole argument: leading white space
/// is skipped, an empty string is 0, NaN is refused.
fn strtod_whole(b: &[u8]) -> Option<f64> {
    if b.is_empty() {
        return Some(0.0);
    }
    let start = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))?;
    parse_f64(&b[start..])
}

fn parse_score_bound(b: &[u8]) -> Option<(f64, bool)> {
    match b.split_first() {
        Some((b'(', rest)) => strtod_whole(rest).map(|v| (v, true)),
        _ => strtod_whole(b).map(|v| (v, false)),
    }
}

fn parse_score_range(min: &[u8], max: &[u8]) -> CmdResult<ScoreRange> {
    match (parse_score_bound(min), parse_score_bound(max)) {
        (Some((min, minex)), Some((max, maxex))) => Ok(ScoreRange {
            min,
            minex,
            max,
            maxex,
        }),
        _ => fail(BAD_SCORE_RANGE),
    }
}

impl ScoreRange {
    fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.minex || self.maxex))
    }

    /// The score-index keys of (`key`, `version`) inside the interval.
    fn scan_range(&self, db: u8, key: &[u8], version: u64) -> Option<ScanRange> {
        if self.is_empty() {
            return None;
        }
        let prefix = idx_prefix(db, key, version);
        let at = |sortable: [u8; 8]| {
            let mut b = prefix.clone();
            b.extend_from_slice(&sortable);
            b.freeze()
        };
        let lo = keys::score_to_sortable(self.min);
        let hi = keys::score_to_sortable(self.max);
        let start = if self.minex {
            // Past every member of score `min`: the next sortable value.
            Bound::Included(at(sortable_succ(lo)?))
        } else {
            Bound::Included(at(lo))
        };
        let end = if self.maxex {
            Bound::Excluded(at(hi))
        } else {
            match sortable_succ(hi) {
                Some(s) => Bound::Excluded(at(s)),
                None => ScanRange::prefix(&prefix).end,
            }
        };
        let r = ScanRange { start, end };
        (!r.is_empty()).then_some(r)
    }
}

fn sortable_succ(s: [u8; 8]) -> Option<[u8; 8]> {
    u64::from_be_bytes(s).checked_add(1).map(u64::to_be_bytes)
}

/// One end of a BYLEX range.
#[derive(Debug, Clone)]
enum LexBound {
    /// `-`: before every member.
    Min,
    /// `+`: after every member.
    Max,
    /// `[m`.
    Incl(Bytes),
    /// `(m`.
    Excl(Bytes),
}

fn parse_lex_bound(b: &Bytes) -> Option<LexBound> {
    match b.first()? {
        b'+' if b.len() == 1 => Some(LexBound::Max),
        b'-' if b.len() == 1 => Some(LexBound::Min),
        b'(' => Some(LexBound::Excl(b.slice(1..))),
        b'[' => Some(LexBound::Incl(b.slice(1..))),
        _ => None,
    }
}

#[derive(Debug, Clone)]
struct LexRange {
    min: LexBound,
    max: LexBound,
}

fn parse_lex_range(min: &Bytes, max: &Bytes) -> CmdResult<LexRange> {
    match (parse_lex_bound(min), parse_lex_bound(max)) {
        (Some(min), Some(max)) => Ok(LexRange { min, max }),
        _ => fail(BAD_LEX_RANGE),
    }
}

impl LexRange {
    /// The member sub-keys of (`key`, `version`) inside the range.
    fn scan_range(&self, db: u8, key: &[u8], version: u64) -> Option<ScanRange> {
        let prefix = keys::sub_prefix(keys::SUB, db, key, version);
        let whole = ScanRange::prefix(&prefix);
        let at = |m: &Bytes| {
            let mut b = prefix.clone();
            b.extend_from_slice(m);
            b.freeze()
        };
        let start = match &self.min {
            LexBound::Min => whole.start.clone(),
            LexBound::Max => return None,
            LexBound::Incl(m) => Bound::Included(at(m)),
            LexBound::Excl(m) => Bound::Excluded(at(m)),
        };
        let end = match &self.max {
            LexBound::Max => whole.end.clone(),
            LexBound::Min => return None,
            LexBound::Incl(m) => Bound::Included(at(m)),
            LexBound::Excl(m) => Bound::Excluded(at(m)),
        };
        let r = ScanRange { start, end };
        (!r.is_empty()).then_some(r)
    }
}

/// What a ZRANGE-family command selects.
#[derive(Debug, Clone)]
enum By {
    Rank(i64, i64),
    Score(ScoreRange),
    Lex(LexRange),
}

/// A parsed ZRANGE-family request.
#[derive(Debug, Clone)]
struct RangeReq {
    by: By,
    rev: bool,
    offset: i64,
    limit: i64,
    withscores: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Auto,
    Rank,
    Score,
    Lex,
}

/// Parses the arguments of ZRANGE and its relatives; `key_at` is the source key's
/// position, `kind`/`rev` are fixed by the legacy command names (Auto/None = ZRANGE).
fn parse_range(
    args: &[Bytes],
    key_at: usize,
    store: bool,
    mut kind: Kind,
    rev: Option<bool>,
) -> CmdResult<RangeReq> {
    let mut rev = rev;
    let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut j = key_at + 3;
    while j < args.len() {
        let a = &args[j];
        let left = args.len() - j - 1;
        if !store && eq_ci(a, "WITHSCORES") {
            withscores = true;
        } else if eq_ci(a, "LIMIT") && left >= 2 {
            offset = int_arg(&args[j + 1])?;
            limit = int_arg(&args[j + 2])?;
            j += 2;
        } else if rev.is_none() && eq_ci(a, "REV") {
            rev = Some(true);
        } else if kind == Kind::Auto && eq_ci(a, "BYLEX") {
            kind = Kind::Lex;
        } else if kind == Kind::Auto && eq_ci(a, "BYSCORE") {
            kind = Kind::Score;
        } else {
            return fail(errors::SYNTAX);
        }
        j += 1;
    }
    let rev = rev.unwrap_or(false);
    if kind == Kind::Auto {
        kind = Kind::Rank;
    }
    // Redis checks the sentinel, so "LIMIT 0 -1" passes even on an index range.
    if limit != -1 && kind == Kind::Rank {
        return fail(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        );
    }
    if withscores && kind == Kind::Lex {
        return fail("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    let (mut lo, mut hi) = (&args[key_at + 1], &args[key_at + 2]);
    if rev && kind != Kind::Rank {
        // Reverse score/lex ranges are written max first.
        std::mem::swap(&mut lo, &mut hi);
    }
    let by = match kind {
        Kind::Score => By::Score(parse_score_range(lo, hi)?),
        Kind::Lex => By::Lex(parse_lex_range(lo, hi)?),
        _ => By::Rank(int_arg(lo)?, int_arg(hi)?),
    };
    Ok(RangeReq {
        by,
        rev,
        offset,
        limit,
        withscores,
    })
}

/// Clamps Redis index arguments to `len`; None when the range is empty.
fn clamp_ranks(start: i64, end: i64, len: u64) -> Option<(u64, u64)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let mut start = if start < 0 {
        start.saturating_add(len)
    } else {
        start
    };
    let mut end = if end < 0 {
        end.saturating_add(len)
    } else {
        end
    };
    if start < 0 {
        start = 0;
    }
    if start > end || start >= len {
        return None;
    }
    if end >= len {
        end = len - 1;
    }
    Some((start as u64, end as u64))
}

/// What a range request reads: `range` in `dir` order, past its first `skip` entries,
/// at most `limit` of them (negative: no end), from the score index (`lex` false) or
/// the member sub-keys (`lex` true).
struct Plan {
    range: ScanRange,
    dir: Direction,
    skip: u64,
    limit: i64,
    lex: bool,
}

/// The plan of a range request on `z`; None when it selects nothing.
fn plan_range(ex: &Exec, z: &ZRef, req: &RangeReq) -> CmdResult<Option<Plan>> {
    let dir = if req.rev {
        Direction::Reverse
    } else {
        Direction::Forward
    };
    let (whole, part, offset, limit, lex) = match &req.by {
        By::Rank(start, end) => {
            let Some((start, end)) = clamp_ranks(*start, *end, z.len) else {
                return Ok(None);
            };
            let n = (end - start + 1) as i64;
            (z.index_range(ex.db), None, start, n, false)
        }
        By::Score(_) | By::Lex(_) => {
            if req.offset < 0 || (req.offset > 0 && req.offset as u64 >= z.len) {
                return Ok(None);
            }
            let (part, whole, lex) = match &req.by {
                By::Score(r) => (
                    r.scan_range(ex.db, &z.key, z.version),
                    z.index_range(ex.db),
                    false,
                ),
                By::Lex(r) => (
                    r.scan_range(ex.db, &z.key, z.version),
                    z.member_range(ex.db),
                    true,
                ),
                By::Rank(..) => unreachable!("matched above"),
            };
            let Some(part) = part else {
                return Ok(None);
            };
            (whole, Some(part), req.offset as u64, req.limit, lex)
        }
    };
    if limit == 0 {
        return Ok(None);
    }
    let Some((range, skip)) = seek_window(ex, &whole, z.len, part, offset, req.rev)? else {
        return Ok(None);
    };
    Ok(Some(Plan {
        range,
        dir,
        skip,
        limit,
        lex,
    }))
}

/// The members (with scores) a range request selects from `z`, in reply order.
fn run_range(ex: &Exec, z: &ZRef, req: &RangeReq) -> CmdResult<Vec<(Bytes, f64)>> {
    let Some(plan) = plan_range(ex, z, req)? else {
        return Ok(Vec::new());
    };
    let key = z.key.clone();
    let iter = scan_checked(ex, plan.range, plan.dir);
    if plan.lex {
        window(iter, plan.skip, plan.limit, |k, v| parse_member(&key, k, v))
    } else {
        window(iter, plan.skip, plan.limit, |k, _| parse_idx(&key, k))
    }
}

/// The members a range request selects from `z`, in reply order, without scores:
/// each copied once, from storage's own key into the reply's buffer (see
/// [`key_suffixes`]).
fn range_members(ex: &Exec, z: &ZRef, req: &RangeReq) -> CmdResult<BulkList> {
    let Some(plan) = plan_range(ex, z, req)? else {
        return Ok(BulkList::default());
    };
    // A member follows the key's prefix, and in the score index its 8-byte score too.
    let prefix = keys::sub_prefix_len(&z.key) + if plan.lex { 0 } else { 8 };
    let limit = match u64::try_from(plan.limit) {
        Ok(n) => usize::try_from(plan.skip.saturating_add(n)).unwrap_or(usize::MAX),
        Err(_) => usize::MAX,
    };
    let how = Visit {
        dir: plan.dir,
        skip: plan.skip,
        limit,
        prefix,
        values: false,
    };
    key_suffixes(ex, plan.range, how)
}

/// Where a range's window that skips `offset` entries (from the end when `rev`) starts:
/// the range to scan and how many of its entries to skip, or None when the window is
/// empty. `part` is the range's part of `whole` (None: all of it), which holds `len`
/// entries. A long skip is found by position in storage, so the scan starts at the
/// window's first entry and skips none; otherwise, or where storage cannot tell, the
/// scan walks past the `offset` entries.
fn seek_window(
    ex: &Exec,
    whole: &ScanRange,
    len: u64,
    part: Option<ScanRange>,
    offset: u64,
    rev: bool,
) -> CmdResult<Option<(ScanRange, u64)>> {
    let range = part.clone().unwrap_or_else(|| whole.clone());
    if offset < POSITION_COST {
        return Ok(Some((range, offset)));
    }
    let walk = Ok(Some((range.clone(), offset)));
    // Entries before the part, and in it.
    let (before, count) = match &part {
        None => (0, len),
        Some(part) => {
            let head = ScanRange {
                start: whole.start.clone(),
                end: match &part.start {
                    Bound::Included(k) => Bound::Excluded(k.clone()),
                    Bound::Excluded(k) => Bound::Included(k.clone()),
                    Bound::Unbounded => return walk,
                },
            };
            let before = ex.count_within(whole, len, &head)?;
            let count = ex.count_within(whole, len, part)?;
            let (Some(before), Some(count)) = (before, count) else {
                return walk;
            };
            (before, count)
        }
    };
    if offset >= count {
        return Ok(None);
    }
    let first = if rev {
        before + count - 1 - offset
    } else {
        before + offset
    };
    let Some((at, _)) = ex.entry_at(whole, len, first)? else {
        return walk;
    };
    let from = if rev {
        ScanRange {
            start: range.start,
            end: Bound::Included(at),
        }
    } else {
        ScanRange {
            start: Bound::Included(at),
            end: range.end,
        }
    };
    Ok(Some((from, 0)))
}

/// Members, or member/score pairs (an empty result keeps its shape; both render as an
/// empty array).
fn items_reply(items: Vec<(Bytes, f64)>, withscores: bool) -> Reply {
    if withscores {
        Reply::Pairs(
            items
                .into_iter()
                .map(|(m, s)| (Reply::Bulk(m), Reply::Double(s)))
                .collect(),
        )
    } else {
        Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect())
    }
}

// ---------------------------------------------------------------------------------------
// What the GEO commands use: a geo set is a sorted set whose scores are cells.
// ---------------------------------------------------------------------------------------

/// A sorted set opened for the GEO commands (see [`open`]).
pub(crate) struct GeoSet(ZRef);

/// The sorted set at `key` for a GEO command: None if absent, WRONGTYPE for other types.
pub(crate) fn open(ex: &mut Exec, key: &Bytes) -> CmdResult<Option<GeoSet>> {
    Ok(load(ex, key)?.map(GeoSet))
}

impl GeoSet {
    /// `member`'s score, if it is a member.
    pub(crate) fn score(&self, ex: &Exec, member: &[u8]) -> CmdResult<Option<f64>> {
        self.0.score(ex, member)
    }

    /// Visits the members with scores in `[min, max)` in score order until `visit`
    /// answers false.
    pub(crate) fn each_in(
        &self,
        ex: &Exec,
        min: f64,
        max: f64,
        mut visit: impl FnMut(Bytes, f64) -> bool,
    ) -> CmdResult<()> {
        let r = ScoreRange {
            min,
            minex: false,
            max,
            maxex: true,
        };
        let Some(range) = r.scan_range(ex.db, &self.0.key, self.0.version) else {
            return Ok(());
        };
        for kv in scan_checked(ex, range, Direction::Forward) {
            let (k, _) = kv?;
            let (member, score) = parse_idx(&self.0.key, k)?;
            if !visit(member, score) {
                break;
            }
        }
        Ok(())
    }
}

/// ZADD's core for GEOADD: `pairs` of (score, member) with the NX, XX and CH options;
/// the reply is ZADD's.
pub(crate) fn add_scored(
    ex: &mut Exec,
    key: &Bytes,
    nx: bool,
    xx: bool,
    ch: bool,
    pairs: &[(f64, Bytes)],
) -> CmdResult<Reply> {
    let f = AddFlags {
        nx,
        xx,
        ch,
        ..AddFlags::default()
    };
    add_members(ex, key, f, pairs)
}

// ---------------------------------------------------------------------------------------
// Commands: writes of single members.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

fn zadd(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let mut f = AddFlags::default();
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        if eq_ci(a, "NX") {
            f.nx = true;
        } else if eq_ci(a, "XX") {
            f.xx = true;
        } else if eq_ci(a, "CH") {
            f.ch = true;
        } else if eq_ci(a, "INCR") {
            f.incr = true;
        } else if eq_ci(a, "GT") {
            f.gt = true;
        } else if eq_ci(a, "LT") {
            f.lt = true;
        } else {
            break;
        }
        i += 1;
    }
    let rest = &args[i..];
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return fail(errors::SYNTAX);
    }
    if f.nx && f.xx {
        return fail("ERR XX and NX options at the same time are not compatible");
    }
    if (f.nx && (f.gt || f.lt)) || (f.gt && f.lt) {
        return fail("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && rest.len() > 2 {
        return fail("ERR INCR option supports a single increment-element pair");
    }
    let mut pairs = Vec::with_capacity(rest.len() / 2);
    for p in rest.chunks_exact(2) {
        pairs.push((float_arg(&p[0])?, p[1].clone()));
    }
    add_members(ex, &args[1], f, &pairs)
}

fn zincrby(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let incr = float_arg(&args[2])?;
    let f = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    add_members(ex, &args[1], f, &[(incr, args[3].clone())])
}

/// ZADD's core (`zsetAdd` per pair) with its reply.
fn add_members(
    ex: &mut Exec,
    key: &Bytes,
    f: AddFlags,
    pairs: &[(f64, Bytes)],
) -> CmdResult<Reply> {
    let old = load(ex, key)?;
    if old.is_none() && f.xx {
        return Ok(if f.incr { Reply::Nil } else { Reply::Int(0) });
    }
    let (base, version, len) = match &old {
        Some(z) => (z.meta.clone(), z.version, z.len),
        None => {
            let (m, v) = new_collection(ex, KeyType::ZSet);
            (m, v, 0)
        }
    };
    let (mut added, mut updated, mut processed) = (0u64, 0u64, 0u64);
    let mut last = 0.0;
    // A sorted set this command creates has a new version, so storage holds none of its
    // members: a member's score is the one this command gave it, if any (no read per
    // member; the lsm engine answered each with a seek).
    let mut created = old
        .is_none()
        .then(std::collections::HashMap::<&[u8], f64>::new);
    for (score, member) in pairs {
        let sk = keys::sub_key(ex.db, key, version, member);
        let cur = match &created {
            Some(scores) => scores.get(&member[..]).copied(),
            None => ex.read_value(&sk, |v| decode_score(&sk, v))?.transpose()?,
        };
        match cur {
            Some(cur) => {
                if f.nx {
                    continue;
                }
                let mut s = *score;
                if f.incr {
                    s += cur;
                    if s.is_nan() {
                        return fail(NAN_SCORE);
                    }
                }
                if (f.lt && s >= cur) || (f.gt && s <= cur) {
                    continue;
                }
                let s = norm(s);
                processed += 1;
                last = s;
                if s != cur {
                    write_member(ex, sk, version, member, s, Some(cur))?;
                    updated += 1;
                    if let Some(scores) = &mut created {
                        scores.insert(member, s);
                    }
                }
            }
            None => {
                if f.xx {
                    continue;
                }
                let s = norm(*score);
                write_member(ex, sk, version, member, s, None)?;
                if let Some(scores) = &mut created {
                    scores.insert(member, s);
                }
                added += 1;
                processed += 1;
                last = s;
            }
        }
    }
    if added > 0 {
        save_len(ex, key, old.as_ref().map(|z| &z.meta), &base, len + added)?;
    } else if updated > 0 {
        ex.touch(key);
    }
    if added + updated > 0 {
        ex.notify('z', if f.incr { "zincr" } else { "zadd" }, key);
    }
    Ok(if f.incr {
        if processed > 0 {
            Reply::Double(last)
        } else {
            Reply::Nil
        }
    } else {
        Reply::Int((if f.ch { added + updated } else { added }) as i64)
    })
}

fn zrem(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let Some(z) = load(ex, &args[1])? else {
        return Ok(Reply::Int(0));
    };
    let mut removed = Vec::new();
    for m in &args[2..] {
        if removed.len() as u64 >= z.len {
            break;
        }
        if let Some(s) = z.score(ex, m)? {
            remove_member(ex, &z.key, z.version, m, s)?;
            removed.push(m.clone());
        }
    }
    if !removed.is_empty() {
        save_len(
            ex,
            &z.key,
            Some(&z.meta),
            &z.meta,
            z.len - removed.len() as u64,
        )?;
        ex.notify('z', "zrem", &z.key);
    }
    Ok(Reply::Int(removed.len() as i64))
}

// ---------------------------------------------------------------------------------------
// Commands: point reads.
// ---------------------------------------------------------------------------------------

fn zcard(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    Ok(Reply::Int(load(ex, &args[1])?.map_or(0, |z| z.len as i64)))
}

fn zscore(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let Some(z) = load(ex, &args[1])? else {
        return Ok(Reply::Nil);
    };
    Ok(z.score(ex, &args[2])?.map_or(Reply::Nil, Reply::Double))
}

fn zmscore(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let z = load(ex, &args[1])?;
    let mut out = Vec::with_capacity(args.len() - 2);
    for m in &args[2..] {
        let s = match &z {
            Some(z) => z.score(ex, m)?,
            None => None,
        };
        out.push(s.map_or(Reply::Nil, Reply::Double));
    }
    Ok(Reply::Array(out))
}

fn zrank(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    rank_generic(ex, args, false, "zrank")
}

fn zrevrank(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    rank_generic(ex, args, true, "zrevrank")
}

/// ZRANK/ZREVRANK: the index entries before (after) the member, counted by storage where
/// it can (O(log n)), else walked (O(rank)).
fn rank_generic(ex: &mut Exec, args: &[Bytes], rev: bool, name: &str) -> CmdResult<Reply> {
    if args.len() > 4 {
        return fail(errors::wrong_args(name));
    }
    let withscore = if args.len() == 4 {
        if !eq_ci(&args[3], "WITHSCORE") {
            return fail(errors::SYNTAX);
        }
        true
    } else {
        false
    };
    let none = if withscore {
        Reply::NilArray
    } else {
        Reply::Nil
    };
    let Some(z) = load(ex, &args[1])? else {
        return Ok(none);
    };
    let member = &args[2];
    let Some(score) = z.score(ex, member)? else {
        return Ok(none);
    };
    let whole = z.index_range(ex.db);
    let at = keys::score_key(z.version, score, member);
    let range = if rev {
        ScanRange {
            start: Bound::Excluded(at),
            end: whole.end.clone(),
        }
    } else {
        ScanRange {
            start: whole.start.clone(),
            end: Bound::Excluded(at),
        }
    };
    let rank = count_entries(ex, &whole, z.len, Some(range))?;
    Ok(if withscore {
        Reply::Array(vec![Reply::Int(rank), Reply::Double(score)])
    } else {
        Reply::Int(rank)
    })
}

/// How many entries of `whole` (which holds `len`) lie in `range`: from storage's
/// counts where it keeps them, else counted by a walk.
fn count_entries(
    ex: &Exec,
    whole: &ScanRange,
    len: u64,
    range: Option<ScanRange>,
) -> CmdResult<i64> {
    let Some(range) = range else {
        return Ok(0);
    };
    if let Some(n) = ex.count_within(whole, len, &range)? {
        return Ok(i64::try_from(n).unwrap_or(i64::MAX));
    }
    let mut n = 0i64;
    for item in scan_checked(ex, range, Direction::Forward) {
        item?;
        n += 1;
    }
    Ok(n)
}

fn zcount(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let r = parse_score_range(&args[2], &args[3])?;
    let Some(z) = load(ex, &args[1])? else {
        return Ok(Reply::Int(0));
    };
    let range = r.scan_range(ex.db, &z.key, z.version);
    let n = count_entries(ex, &z.index_range(ex.db), z.len, range)?;
    Ok(Reply::Int(n))
}

fn zlexcount(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let r = parse_lex_range(&args[2], &args[3])?;
    let Some(z) = load(ex, &args[1])? else {
        return Ok(Reply::Int(0));
    };
    let range = r.scan_range(ex.db, &z.key, z.version);
    let n = count_entries(ex, &z.member_range(ex.db), z.len, range)?;
    Ok(Reply::Int(n))
}

// ---------------------------------------------------------------------------------------
// Commands: ranges.
// ---------------------------------------------------------------------------------------

fn range_generic(ex: &mut Exec, args: &[Bytes], kind: Kind, rev: Option<bool>) -> CmdResult<Reply> {
    let req = parse_range(args, 1, false, kind, rev)?;
    let Some(z) = load(ex, &args[1])? else {
        return Ok(items_reply(Vec::new(), req.withscores));
    };
    if !req.withscores {
        return Ok(Reply::Bulks(range_members(ex, &z, &req)?));
    }
    let items = run_range(ex, &z, &req)?;
    Ok(items_reply(items, req.withscores))
}

fn zrange(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    range_generic(ex, args, Kind::Auto, None)
}

fn zrevrange(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    range_generic(ex, args, Kind::Rank, Some(true))
}

fn zrangebyscore(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    range_generic(ex, args, Kind::Score, Some(false))
}

fn zrevrangebyscore(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    range_generic(ex, args, Kind::Score, Some(true))
}

fn zrangebylex(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    range_generic(ex, args, Kind::Lex, Some(false))
}

fn zrevrangebylex(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    range_generic(ex, args, Kind::Lex, Some(true))
}

fn zrangestore(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let req = parse_range(args, 2, true, Kind::Auto, None)?;
    let items = match load(ex, &args[2])? {
        Some(z) => run_range(ex, &z, &req)?,
        None => Vec::new(),
    };
    store_zset(ex, &args[1], &items, "zrangestore")?;
    Ok(Reply::Int(items.len() as i64))
}

fn remrange(ex: &mut Exec, args: &[Bytes], by: By) -> CmdResult<Reply> {
    let Some(z) = load(ex, &args[1])? else {
        return Ok(Reply::Int(0));
    };
    if let By::Rank(start, end) = by {
        if clamp_ranks(start, end, z.len) == Some((0, z.len.saturating_sub(1))) {
            // The whole set: O(1), no scan.
            ex.delete_emptied(&z.key, &z.meta)?;
            ex.notify('z', "zremrangebyrank", &z.key);
            return Ok(Reply::Int(z.len as i64));
        }
    }
    let req = RangeReq {
        by,
        rev: false,
        offset: 0,
        limit: -1,
        withscores: false,
    };
    let event = match req.by {
        By::Rank(..) => "zremrangebyrank",
        By::Score(_) => "zremrangebyscore",
        By::Lex(_) => "zremrangebylex",
    };
    let items = run_range(ex, &z, &req)?;
    remove_items(ex, &z, &items)?;
    if !items.is_empty() {
        ex.notify('z', event, &z.key);
    }
    Ok(Reply::Int(items.len() as i64))
}

fn zremrangebyrank(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let by = By::Rank(int_arg(&args[2])?, int_arg(&args[3])?);
    remrange(ex, args, by)
}

fn zremrangebyscore(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let by = By::Score(parse_score_range(&args[2], &args[3])?);
    remrange(ex, args, by)
}

fn zremrangebylex(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let by = By::Lex(parse_lex_range(&args[2], &args[3])?);
    remrange(ex, args, by)
}

// ---------------------------------------------------------------------------------------
// Commands: pops.
// ---------------------------------------------------------------------------------------

/// Removes and returns up to `count` lowest (highest with `max`) members of `z`.
fn pop(ex: &mut Exec, z: &ZRef, count: u64, max: bool) -> CmdResult<Vec<(Bytes, f64)>> {
    let dir = if max {
        Direction::Reverse
    } else {
        Direction::Forward
    };
    let limit = i64::try_from(count).unwrap_or(i64::MAX);
    let key = z.key.clone();
    let range = z.index_range(ex.db);
    // One member: found by its position where storage can tell, which passes over the
    // members this group's earlier pops removed without walking them (and copies out
    // one entry, not a scan's first chunk).
    let end = if max { z.len.checked_sub(1) } else { Some(0) };
    let one = match end {
        Some(at) if count == 1 => ex.entry_at(&range, z.len, at)?,
        _ => None,
    };
    let items = match one {
        Some((k, _)) => vec![parse_idx(&key, k)?],
        None => window(scan_checked(ex, range, dir), 0, limit, |k, _| {
            parse_idx(&key, k)
        })?,
    };
    remove_items(ex, z, &items)?;
    if !items.is_empty() {
        ex.notify('z', if max { "zpopmax" } else { "zpopmin" }, &z.key);
    }
    Ok(items)
}

fn zpopmin(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    zpop_generic(ex, args, false)
}

fn zpopmax(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    zpop_generic(ex, args, true)
}

fn zpop_generic(ex: &mut Exec, args: &[Bytes], max: bool) -> CmdResult<Reply> {
    if args.len() > 3 {
        return fail(errors::SYNTAX);
    }
    let count = match args.get(2) {
        Some(c) => Some(positive_count(c)? as u64),
        None => None,
    };
    let Some(z) = load(ex, &args[1])? else {
        return Ok(items_reply(Vec::new(), count.is_some()));
    };
    if count == Some(0) {
        return Ok(items_reply(Vec::new(), true));
    }
    let items = pop(ex, &z, count.unwrap_or(1), max)?;
    Ok(match count {
        // Without a count the reply is one flat member/score pair in both protocols.
        None => Reply::Array(
            items
                .into_iter()
                .flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)])
                .collect(),
        ),
        Some(_) => items_reply(items, true),
    })
}

/// The key popped from and its (member, score) pairs.
type Popped = (Bytes, Vec<(Bytes, f64)>);

/// Pops from the first non-empty sorted set among `keys` (WRONGTYPE stops the walk at a
/// key of another type, as Redis does).
fn pop_first(ex: &mut Exec, keys: &[Bytes], count: u64, max: bool) -> CmdResult<Option<Popped>> {
    for k in keys {
        if let Some(z) = load(ex, k)? {
            let items = pop(ex, &z, count, max)?;
            return Ok(Some((k.clone(), items)));
        }
    }
    Ok(None)
}

/// ZMPOP/BZMPOP reply: key, then nested member/score pairs in every protocol.
fn mpop_reply(res: Option<Popped>) -> Reply {
    match res {
        None => Reply::NilArray,
        Some((key, items)) => Reply::Array(vec![
            Reply::Bulk(key),
            Reply::Array(
                items
                    .into_iter()
                    .map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]))
                    .collect(),
            ),
        ]),
    }
}

/// Parses `numkeys key… MIN|MAX [COUNT n]` starting at `numkeys_at`.
fn parse_mpop(args: &[Bytes], numkeys_at: usize) -> CmdResult<(Vec<Bytes>, bool, u64)> {
    let numkeys =
        ranged_with_msg(&args[numkeys_at], 1, "ERR numkeys should be greater than 0")? as u64;
    let where_at = (numkeys_at as u64)
        .checked_add(numkeys)
        .and_then(|x| x.checked_add(1))
        .filter(|&x| x < args.len() as u64)
        .map(|x| x as usize);
    let Some(where_at) = where_at else {
        return fail(errors::SYNTAX);
    };
    let max = if eq_ci(&args[where_at], "MIN") {
        false
    } else if eq_ci(&args[where_at], "MAX") {
        true
    } else {
        return fail(errors::SYNTAX);
    };
    let mut count: Option<u64> = None;
    let mut j = where_at + 1;
    while j < args.len() {
        if count.is_none() && eq_ci(&args[j], "COUNT") && j + 1 < args.len() {
            count = Some(
                ranged_with_msg(&args[j + 1], 1, "ERR count should be greater than 0")? as u64,
            );
            j += 2;
        } else {
            return fail(errors::SYNTAX);
        }
    }
    let keys = args[numkeys_at + 1..where_at].to_vec();
    Ok((keys, max, count.unwrap_or(1)))
}

fn zmpop(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let (keys, max, count) = parse_mpop(args, 1)?;
    let res = pop_first(ex, &keys, count, max)?;
    Ok(mpop_reply(res))
}

/// Validates a blocking timeout in seconds as Redis does; returns it in ms (0 = forever).
/// The server does the waiting; the engine only checks the argument.
pub fn parse_timeout_ms(b: &[u8]) -> CmdResult<u64> {
    let Some(secs) = parse_f64(b) else {
        return fail("ERR timeout is not a float or out of range");
    };
    let ms = secs * 1000.0;
    if ms > i64::MAX as f64 {
        return fail("ERR timeout is out of range");
    }
    let ms = ms.ceil();
    if ms < 0.0 {
        return fail("ERR timeout is negative");
    }
    Ok(ms as u64)
}

fn bzpopmin(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    bzpop_generic(ex, args, false)
}

fn bzpopmax(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    bzpop_generic(ex, args, true)
}

/// The non-blocking attempt of BZPOPMIN/BZPOPMAX: a nil array tells the server to block.
fn bzpop_generic(ex: &mut Exec, args: &[Bytes], max: bool) -> CmdResult<Reply> {
    let last = args.len() - 1;
    parse_timeout_ms(&args[last])?;
    Ok(match pop_first(ex, &args[1..last], 1, max)? {
        Some((key, items)) => match items.into_iter().next() {
            Some((m, s)) => Reply::Array(vec![Reply::Bulk(key), Reply::Bulk(m), Reply::Double(s)]),
            None => Reply::NilArray,
        },
        None => Reply::NilArray,
    })
}

/// The non-blocking attempt of BZMPOP: a nil array tells the server to block.
fn bzmpop(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let (keys, max, count) = parse_mpop(args, 2)?;
    parse_timeout_ms(&args[1])?;
    let res = pop_first(ex, &keys, count, max)?;
    Ok(mpop_reply(res))
}

// ---------------------------------------------------------------------------------------
// Commands: random members and scans.
// ---------------------------------------------------------------------------------------

fn zrandmember(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    if args.len() == 2 {
        let Some(z) = load(ex, &args[1])? else {
            return Ok(Reply::Nil);
        };
        let r = ex.rng.below(z.len);
        let range = keys::sub_range(ex.db, &z.key, z.version);
        let hit = entries_at_ranks(ex, range, z.len, &[r])?;
        return Ok(match hit.into_iter().next() {
            Some((k, _)) => Reply::Bulk(member_of(&z.key, k)?),
            None => Reply::Nil,
        });
    }
    let count = signed_count(&args[2])?;
    if args.len() > 4 || (args.len() == 4 && !eq_ci(&args[3], "WITHSCORES")) {
        return fail(errors::SYNTAX);
    }
    let withscores = args.len() == 4;
    if withscores && !(i64::MIN / 2..=i64::MAX / 2).contains(&count) {
        return fail("ERR value is out of range");
    }
    let Some(z) = load(ex, &args[1])? else {
        return Ok(items_reply(Vec::new(), withscores));
    };
    let range = keys::sub_range(ex.db, &z.key, z.version);
    let items: Vec<(Bytes, f64)> = random_entries(ex, range, z.len, count)?
        .into_iter()
        .map(|(k, v)| parse_member(&z.key, k, &v))
        .collect::<CmdResult<_>>()?;
    Ok(items_reply(items, withscores))
}

fn zscan(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let cursor = parse_cursor(&args[2])?;
    let Some(z) = load(ex, &args[1])? else {
        return Ok(empty_scan());
    };
    let opts = parse_scan_opts(&args[3..])?;
    scan_step(ex, &z.key, z.version, cursor, &opts, |m, v, out| {
        let s = decode_score(&m, v)?;
        out.push(Reply::Bulk(m));
        out.push(Reply::bulk(format_f64(s)));
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------
// Commands: set algebra.
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Union,
    Inter,
    Diff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// One input of ZUNION/ZINTER/ZDIFF: a set (scores 1) or a sorted set; absent keys are
/// empty inputs.
struct Src {
    key: Bytes,
    found: Option<(KeyType, u64, u64)>,
    weight: f64,
}

impl Src {
    fn len(&self) -> u64 {
        self.found.map_or(0, |(_, _, len)| len)
    }

    /// Score of `member` in this input, if present.
    fn find(&self, ex: &Exec, member: &[u8]) -> CmdResult<Option<f64>> {
        let Some((kind, version, _)) = self.found else {
            return Ok(None);
        };
        let k = keys::sub_key(ex.db, &self.key, version, member);
        ex.read_value(&k, |v| match kind {
            KeyType::ZSet => decode_score(&k, v),
            _ => Ok(1.0),
        })?
        .transpose()
    }

    /// Visits every (member, score) in member order.
    fn for_each(
        &self,
        ex: &Exec,
        mut f: impl FnMut(Bytes, f64) -> CmdResult<bool>,
    ) -> CmdResult<()> {
        let Some((kind, version, _)) = self.found else {
            return Ok(());
        };
        for item in ex.scan(
            keys::sub_range(ex.db, &self.key, version),
            Direction::Forward,
        ) {
            let (k, v) = item?;
            let s = if kind == KeyType::ZSet {
                decode_score(&k, &v)?
            } else {
                1.0
            };
            let m = member_of(&self.key, k)?;
            if !f(m, s)? {
                break;
            }
        }
        Ok(())
    }
}

fn aggregate(target: &mut f64, val: f64, agg: Aggregate) {
    match agg {
        Aggregate::Sum => {
            *target += val;
            // inf + -inf: Redis settles on 0 rather than storing NaN.
            if target.is_nan() {
                *target = 0.0;
            }
        }
        Aggregate::Min => {
            if val < *target {
                *target = val;
            }
        }
        Aggregate::Max => {
            if val > *target {
                *target = val;
            }
        }
    }
}

fn weighted(score: f64, weight: f64) -> f64 {
    let s = score * weight;
    if s.is_nan() {
        0.0
    } else {
        s
    }
}

/// What ZUNION/ZINTER/ZDIFF and friends produce.
enum AlgebraOut {
    Items(Vec<(Bytes, f64)>, bool),
    Card(u64),
}

/// The shared body of ZUNION, ZINTER, ZDIFF, ZINTERCARD and the STORE forms
/// (`zunionInterDiffGenericCommand`).
fn algebra(
    ex: &mut Exec,
    args: &[Bytes],
    numkeys_at: usize,
    op: Op,
    store: bool,
    card_only: bool,
    name: &str,
) -> CmdResult<AlgebraOut> {
    let setnum = int_arg(&args[numkeys_at])?;
    if setnum < 1 {
        return fail(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        ));
    }
    let avail = (args.len() - numkeys_at - 1) as u64;
    if setnum as u64 > avail {
        return fail(errors::SYNTAX);
    }
    let setnum = setnum as usize;
    let mut srcs = Vec::with_capacity(setnum);
    for key in &args[numkeys_at + 1..numkeys_at + 1 + setnum] {
        let found = match ex.meta(key)? {
            Some(m) if m.kind == KeyType::Set || m.kind == KeyType::ZSet => {
                let (v, len) = coll(key, &m)?;
                Some((m.kind, v, len))
            }
            Some(_) => return fail(errors::WRONGTYPE),
            None => None,
        };
        srcs.push(Src {
            key: key.clone(),
            found,
            weight: 1.0,
        });
    }
    let mut agg = Aggregate::Sum;
    let mut withscores = false;
    let mut limit = 0u64;
    let mut j = numkeys_at + 1 + setnum;
    while j < args.len() {
        let remaining = args.len() - j;
        let a = &args[j];
        if op != Op::Diff && !card_only && remaining > setnum && eq_ci(a, "WEIGHTS") {
            j += 1;
            for src in srcs.iter_mut() {
                src.weight = parse_f64(&args[j]).ok_or_else(|| {
                    CmdError::Reply(Reply::err("ERR weight value is not a float"))
                })?;
                j += 1;
            }
        } else if op != Op::Diff && !card_only && remaining >= 2 && eq_ci(a, "AGGREGATE") {
            let v = &args[j + 1];
            agg = if eq_ci(v, "SUM") {
                Aggregate::Sum
            } else if eq_ci(v, "MIN") {
                Aggregate::Min
            } else if eq_ci(v, "MAX") {
                Aggregate::Max
            } else {
                return fail(errors::SYNTAX);
            };
            j += 2;
        } else if !store && !card_only && eq_ci(a, "WITHSCORES") {
            withscores = true;
            j += 1;
        } else if card_only && remaining >= 2 && eq_ci(a, "LIMIT") {
            limit = ranged_with_msg(&args[j + 1], 0, "ERR LIMIT can't be negative")? as u64;
            j += 2;
        } else {
            return fail(errors::SYNTAX);
        }
    }
    if op != Op::Diff {
        // Smallest inputs first (stable, so equal sizes keep their order on every replica).
        srcs.sort_by_key(Src::len);
    }
    let mut items: Vec<(Bytes, f64)> = Vec::new();
    let mut card = 0u64;
    match op {
        Op::Inter => {
            if let Some((first, rest)) = srcs.split_first() {
                if first.len() > 0 {
                    first.for_each(ex, |m, s| {
                        let mut score = weighted(s, first.weight);
                        for other in rest {
                            let val = if other.key == first.key {
                                Some(s)
                            } else {
                                other.find(ex, &m)?
                            };
                            // Only the first input's product is NaN-corrected, as in Redis.
                            match val {
                                Some(v) => aggregate(&mut score, v * other.weight, agg),
                                None => return Ok(true),
                            }
                        }
                        if card_only {
                            card += 1;
                            return Ok(limit == 0 || card < limit);
                        }
                        items.push((m, score));
                        Ok(true)
                    })?;
                }
            }
        }
        Op::Union => {
            let mut acc: BTreeMap<Bytes, f64> = BTreeMap::new();
            for src in &srcs {
                src.for_each(ex, |m, s| {
                    let score = weighted(s, src.weight);
                    match acc.get_mut(&m) {
                        Some(t) => aggregate(t, score, agg),
                        None => {
                            acc.insert(m, score);
                        }
                    }
                    Ok(true)
                })?;
            }
            items = acc.into_iter().collect();
        }
        Op::Diff => {
            if let Some((first, rest)) = srcs.split_first() {
                if !rest.iter().any(|o| o.found.is_some() && o.key == first.key) {
                    first.for_each(ex, |m, s| {
                        for other in rest {
                            if other.find(ex, &m)?.is_some() {
                                return Ok(true);
                            }
                        }
                        items.push((m, s));
                        Ok(true)
                    })?;
                }
            }
        }
    }
    if card_only {
        return Ok(AlgebraOut::Card(card));
    }
    for it in items.iter_mut() {
        it.1 = norm(it.1);
    }
    items.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok(AlgebraOut::Items(items, withscores))
}

fn algebra_reply(ex: &mut Exec, args: &[Bytes], op: Op, name: &str) -> CmdResult<Reply> {
    match algebra(ex, args, 1, op, false, false, name)? {
        AlgebraOut::Items(items, ws) => Ok(items_reply(items, ws)),
        AlgebraOut::Card(n) => Ok(Reply::Int(n as i64)),
    }
}

fn algebra_store(ex: &mut Exec, args: &[Bytes], op: Op, name: &'static str) -> CmdResult<Reply> {
    match algebra(ex, args, 2, op, true, false, name)? {
        AlgebraOut::Items(items, _) => {
            store_zset(ex, &args[1], &items, name)?;
            Ok(Reply::Int(items.len() as i64))
        }
        AlgebraOut::Card(n) => Ok(Reply::Int(n as i64)),
    }
}

fn zunion(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    algebra_reply(ex, args, Op::Union, "zunion")
}

fn zinter(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    algebra_reply(ex, args, Op::Inter, "zinter")
}

fn zdiff(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    algebra_reply(ex, args, Op::Diff, "zdiff")
}

fn zintercard(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    match algebra(ex, args, 1, Op::Inter, false, true, "zintercard")? {
        AlgebraOut::Card(n) => Ok(Reply::Int(n as i64)),
        AlgebraOut::Items(items, _) => Ok(Reply::Int(items.len() as i64)),
    }
}

fn zunionstore(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    algebra_store(ex, args, Op::Union, "zunionstore")
}

fn zinterstore(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    algebra_store(ex, args, Op::Inter, "zinterstore")
}

fn zdiffstore(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    algebra_store(ex, args, Op::Diff, "zdiffstore")
}
