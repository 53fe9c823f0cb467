//! Stream commands (Redis's t_stream.c): the layout and the parts every stream command
//! shares. `entries` holds the commands on entries (XADD, XRANGE, XREAD, XTRIM, …),
//! `groups` the consumer groups (XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM, XINFO, …).
//!
//! # Layout
//!
//! The metadata record is `Body::Collection { version, len, list: None }` with `len` the
//! number of entries (XLEN). A stream is not deleted when its last entry goes: like
//! Redis's, an empty stream keeps its last ID and its groups. Everything else is a
//! sub-key of the version, told apart by its first byte:
//!
//! ```text
//! 0x00 ms(u64 BE) seq(u64 BE)                          an entry; value = its fields
//! 0x01                                                 the stream's state (State)
//! 0x02 group                                           a consumer group
//! 0x03 len(u32 BE) group id(16)                        an entry pending in a group
//! 0x04 len(u32 BE) group consumer                      a consumer of a group
//! 0x05 len(u32 BE) group len(u32 BE) consumer id(16)   an entry pending for a consumer
//! ```
//!
//! Entries sort by ID, so a range of IDs is a range scan. An entry's value is its
//! field/value pairs: a count (u32 BE), then each string as a length (u32 BE) and its
//! bytes. Redis shares field names between the entries of a node ("master entry");
//! keel stores each entry's fields whole, which is simpler and costs memory only for
//! streams of many small entries with the same fields.
//!
//! A group's name and a consumer's are prefixed by their length where more follows, so
//! one group's records never run into another's whose name starts the same.
//!
//! # Determinism
//!
//! An ID made by `*` comes from the entry's time (`Exec::now_ms`), never the clock, so a
//! replay or a replica makes the same IDs. As in Redis, a clock behind the last ID
//! makes IDs from the last ID on (sequence + 1).

pub mod entries;
pub mod groups;

use std::fmt;
use std::ops::Bound;

use bytes::{BufMut, Bytes};
use keel_storage::{Direction, ScanRange};

use crate::error::{fail, CmdResult, EngineError};
use crate::exec::Exec;
use crate::keys;
use crate::meta::{Body, KeyType, Meta};
use crate::reply::Reply;

/// A stream command's table entry (group "stream"): one key at `key_at` (XGROUP's and
/// XINFO's follows their subcommand), or 0 for XREAD's and XREADGROUP's movable keys.
const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    key_at: i32,
    summary: &'static str,
    handler: crate::command::Handler,
) -> crate::command::CommandSpec {
    crate::command::CommandSpec {
        name,
        arity,
        flags,
        first_key: key_at,
        last_key: key_at,
        step: if key_at == 0 { 0 } else { 1 },
        group: "stream",
        summary,
        handler,
    }
}

/// An ID that does not parse (Redis's text).
pub const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
/// The stream is out of IDs (Redis's text).
pub const EXHAUSTED: &str =
    "ERR The stream has exhausted the last possible ID, unable to add more items";

/// First byte of an entry's sub-key suffix.
pub const ENTRY: u8 = 0x00;
/// The state record's sub-key suffix (one byte).
pub const STATE: u8 = 0x01;
/// First byte of a consumer group's sub-key suffix.
pub const GROUP: u8 = 0x02;
/// First byte of a group's pending entry's sub-key suffix.
pub const PENDING: u8 = 0x03;
/// First byte of a consumer's sub-key suffix.
pub const CONSUMER: u8 = 0x04;
/// First byte of a consumer's pending entry's sub-key suffix.
pub const CONSUMER_PENDING: u8 = 0x05;

/// A stream entry ID: milliseconds and a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl StreamId {
    /// The smallest ID, 0-0.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest ID.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// An ID of `ms` and `seq`.
    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The ID's 16 bytes as it sorts in storage.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.ms.to_be_bytes());
        b[8..].copy_from_slice(&self.seq.to_be_bytes());
        b
    }

    /// Reads an ID from the first 16 bytes of `b`.
    pub fn from_bytes(b: &[u8]) -> Option<StreamId> {
        let ms = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        let seq = u64::from_be_bytes(b.get(8..16)?.try_into().ok()?);
        Some(StreamId { ms, seq })
    }

    /// The next ID, None after the last.
    pub fn next(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The ID before, None before 0-0.
    pub fn prev(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    /// The ID as a bulk reply.
    pub fn reply(self) -> Reply {
        Reply::bulk(self.to_string())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Parses `ms[-seq]` strictly (Redis's `string2ull`: digits only); a missing sequence
/// is `missing_seq`. None when malformed.
pub fn parse_id_parts(b: &[u8], missing_seq: u64) -> Option<StreamId> {
    let (ms, seq) = match b.iter().position(|&c| c == b'-') {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    };
    let ms = parse_u64(ms)?;
    let seq = match seq {
        Some(s) => parse_u64(s)?,
        None => missing_seq,
    };
    Some(StreamId::new(ms, seq))
}

/// An unsigned decimal as Redis's `string2ull` takes it: digits only, within u64.
fn parse_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// An ID argument (`-` and `+` allowed, a missing sequence is `missing_seq`), or Redis's
/// invalid-ID error.
pub fn parse_id(b: &[u8], missing_seq: u64) -> CmdResult<StreamId> {
    match b {
        b"-" => Ok(StreamId::MIN),
        b"+" => Ok(StreamId::MAX),
        _ => match parse_id_parts(b, missing_seq) {
            Some(id) => Ok(id),
            None => fail(INVALID_ID),
        },
    }
}

/// An exact ID argument (no `-`/`+`, sequence defaults to 0), as XDEL, XACK and XCLAIM
/// take them.
pub fn parse_exact_id(b: &[u8]) -> CmdResult<StreamId> {
    match parse_id_parts(b, 0) {
        Some(id) => Ok(id),
        None => fail(INVALID_ID),
    }
}

/// One end of an XRANGE-style range: `-`, `+`, `id`, or `(id` (exclusive). A start's
/// missing sequence is 0 and an end's the largest. None when the range is empty (an
/// exclusive bound past the last or before the first ID).
pub fn parse_range_end(b: &[u8], is_start: bool) -> CmdResult<Option<StreamId>> {
    let missing = if is_start { 0 } else { u64::MAX };
    if let Some(rest) = b.strip_prefix(b"(") {
        if rest == b"-" || rest == b"+" {
            return fail(INVALID_ID);
        }
        let id = parse_id(rest, missing)?;
        let moved = if is_start { id.next() } else { id.prev() };
        return match moved {
            Some(m) => Ok(Some(m)),
            None if is_start => fail("ERR invalid start ID for the interval"),
            None => fail("ERR invalid end ID for the interval"),
        };
    }
    parse_id(b, missing).map(Some)
}

/// The stream's state beside its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct State {
    /// The largest ID ever added (or set by XSETID).
    pub last_id: StreamId,
    /// The largest ID deleted (XDEL, XTRIM), 0-0 when none.
    pub max_deleted: StreamId,
    /// How many entries were ever added.
    pub entries_added: u64,
}

impl State {
    /// Its stored form: last ID, max deleted ID, entries added.
    pub fn encode(&self) -> Bytes {
        let mut b = Vec::with_capacity(40);
        b.extend_from_slice(&self.last_id.to_bytes());
        b.extend_from_slice(&self.max_deleted.to_bytes());
        b.put_u64(self.entries_added);
        Bytes::from(b)
    }

    /// Reads a stored state; `key` names the stream in the error.
    pub fn decode(b: &[u8], key: &[u8]) -> Result<State, EngineError> {
        let bad = || EngineError::corrupt("stream state", key, "not 40 bytes");
        if b.len() != 40 {
            return Err(bad());
        }
        let last_id = StreamId::from_bytes(&b[..16]).ok_or_else(bad)?;
        let max_deleted = StreamId::from_bytes(&b[16..32]).ok_or_else(bad)?;
        let entries_added = u64::from_be_bytes(be8(b, 32).ok_or_else(bad)?);
        Ok(State {
            last_id,
            max_deleted,
            entries_added,
        })
    }
}

/// A stream as a command reads and writes it.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The metadata record as read (None for a stream this command creates).
    pub old: Option<Meta>,
    /// The version its sub-keys live under.
    pub version: u64,
    /// Number of entries.
    pub len: u64,
    /// The state record.
    pub state: State,
}

impl Stream {
    /// The stream at `key` (WRONGTYPE for other types), None when there is none.
    pub fn load(ex: &mut Exec, key: &[u8]) -> CmdResult<Option<Stream>> {
        let Some(m) = ex.typed(key, KeyType::Stream)? else {
            return Ok(None);
        };
        let Some(version) = m.version() else {
            return Err(
                EngineError::corrupt("stream metadata", key, "no collection version").into(),
            );
        };
        let state = match ex.get(&state_key(version))? {
            Some(b) => State::decode(&b, key)?,
            None => return Err(EngineError::corrupt("stream", key, "no state record").into()),
        };
        Ok(Some(Stream {
            len: m.len(),
            old: Some(m),
            version,
            state,
        }))
    }

    /// A new, empty stream (written by [`Stream::save`]).
    pub fn create(ex: &mut Exec) -> Stream {
        Stream {
            old: None,
            version: ex.new_version(),
            len: 0,
            state: State::default(),
        }
    }

    /// Writes the metadata and the state record.
    pub fn save(&self, ex: &mut Exec, key: &[u8]) -> CmdResult<()> {
        let meta = Meta {
            kind: KeyType::Stream,
            expire_at: self.old.as_ref().and_then(|m| m.expire_at),
            body: Body::Collection {
                version: self.version,
                len: self.len,
                list: None,
            },
        };
        ex.put_meta(key, &meta, self.old.as_ref())?;
        ex.put(state_key(self.version), self.state.encode())
    }

    /// The entries with IDs in `from..=to`, in `dir` order, at most `limit` of them.
    pub fn range(
        &self,
        ex: &Exec,
        from: StreamId,
        to: StreamId,
        dir: Direction,
        limit: usize,
    ) -> CmdResult<Vec<(StreamId, Bytes)>> {
        if from > to || limit == 0 {
            return Ok(Vec::new());
        }
        let prefix = keys::sub_key(0, b"", self.version, &[ENTRY]);
        let mut out = Vec::with_capacity(limit.min(64));
        let mut bad = None;
        // Visited rather than scanned: a scan copied each entry's key out, and its first
        // chunk fetched 16 entries for XRANGE … COUNT 10.
        ex.visit_entries(
            id_range(&prefix, from, to),
            dir,
            limit,
            &mut |k, v| match id_after(k, prefix.len()) {
                Ok(id) => out.push((id, Bytes::copy_from_slice(v))),
                Err(e) => {
                    bad.get_or_insert(e);
                }
            },
        )?;
        match bad {
            Some(e) => Err(e.into()),
            None => Ok(out),
        }
    }

    /// The first entry's ID (None when empty).
    pub fn first_id(&self, ex: &Exec) -> CmdResult<Option<StreamId>> {
        Ok(self
            .range(ex, StreamId::MIN, StreamId::MAX, Direction::Forward, 1)?
            .first()
            .map(|(id, _)| *id))
    }

    /// The last entry's ID (None when empty).
    pub fn last_entry_id(&self, ex: &Exec) -> CmdResult<Option<StreamId>> {
        Ok(self
            .range(ex, StreamId::MIN, StreamId::MAX, Direction::Reverse, 1)?
            .first()
            .map(|(id, _)| *id))
    }

    /// The entry `id`'s fields, None when there is no such entry.
    pub fn entry(&self, ex: &Exec, id: StreamId) -> CmdResult<Option<Bytes>> {
        Ok(ex.get(&entry_key(self.version, id))?)
    }
}

/// Storage key of the state record of stream `version`.
pub fn state_key(version: u64) -> Bytes {
    keys::sub_key(0, b"", version, &[STATE])
}

/// Storage key of entry `id` of stream `version`.
pub fn entry_key(version: u64, id: StreamId) -> Bytes {
    let mut s = [0u8; 17];
    s[0] = ENTRY;
    s[1..].copy_from_slice(&id.to_bytes());
    keys::sub_key(0, b"", version, &s)
}

/// The range of IDs `from..=to` of records keyed by `prefix` + ID (entries, pending
/// entries, a consumer's pending index).
pub(super) fn id_range(prefix: &[u8], from: StreamId, to: StreamId) -> ScanRange {
    let mut lo = prefix.to_vec();
    lo.extend_from_slice(&from.to_bytes());
    let mut hi = prefix.to_vec();
    hi.extend_from_slice(&to.to_bytes());
    ScanRange::new::<&[u8]>((Bound::Included(&lo[..]), Bound::Included(&hi[..])))
}

/// The ID after `prefix_len` bytes of a scanned record key.
pub(super) fn id_after(key: &[u8], prefix_len: usize) -> Result<StreamId, EngineError> {
    key.get(prefix_len..)
        .filter(|rest| rest.len() == 16)
        .and_then(StreamId::from_bytes)
        .ok_or_else(|| EngineError::corrupt("stream record", key, "no 16-byte ID"))
}

/// The 8 bytes of `b` at `at`, for the records' fixed-width fields.
pub(super) fn be8(b: &[u8], at: usize) -> Option<[u8; 8]> {
    b.get(at..at + 8)?.try_into().ok()
}

/// A name prefixed by its length (u32 BE), for a suffix that continues after it.
pub fn push_name(out: &mut Vec<u8>, name: &[u8]) {
    out.extend_from_slice(&(name.len() as u32).to_be_bytes());
    out.extend_from_slice(name);
}

/// Storage key of group `group` of stream `version`.
pub fn group_key(version: u64, group: &[u8]) -> Bytes {
    let mut s = Vec::with_capacity(1 + group.len());
    s.push(GROUP);
    s.extend_from_slice(group);
    keys::sub_key(0, b"", version, &s)
}

/// The range of every group record of stream `version`.
pub fn groups_range(version: u64) -> ScanRange {
    let mut p = keys::sub_prefix(keys::SUB, 0, b"", version);
    p.put_u8(GROUP);
    ScanRange::prefix(p)
}

/// The sub-key prefix of `tag`'s records of `group` in stream `version`, with `more`
/// after the group's name.
pub fn group_prefix(tag: u8, version: u64, group: &[u8], more: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(keys::SUB_PREFIX_LEN + 5 + group.len() + more.len());
    keys::push_sub_key(&mut s, version, &[tag]);
    push_name(&mut s, group);
    s.extend_from_slice(more);
    s
}

/// Encodes an entry's field/value pairs.
pub fn encode_fields(pairs: &[Bytes]) -> Bytes {
    let total: usize = pairs.iter().map(|p| 4 + p.len()).sum();
    let mut b = Vec::with_capacity(4 + total);
    b.put_u32(pairs.len() as u32);
    for p in pairs {
        b.put_u32(p.len() as u32);
        b.extend_from_slice(p);
    }
    Bytes::from(b)
}

/// Decodes an entry's field/value pairs; `id` names the entry in the error.
pub fn decode_fields(v: &Bytes, id: StreamId) -> Result<Vec<Bytes>, EngineError> {
    let bad = || {
        EngineError::corrupt(
            "stream entry",
            id.to_string().as_bytes(),
            "fields cut short",
        )
    };
    let mut at = 4;
    let n = u32::from_be_bytes(v.get(..4).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
    let mut out = Vec::with_capacity((n as usize).min(v.len() / 4));
    for _ in 0..n {
        let len = u32::from_be_bytes(
            v.get(at..at + 4)
                .ok_or_else(bad)?
                .try_into()
                .map_err(|_| bad())?,
        ) as usize;
        at += 4;
        if v.len() < at + len {
            return Err(bad());
        }
        out.push(v.slice(at..at + len));
        at += len;
    }
    Ok(out)
}

/// An entry as Redis replies with it: `[id, [field, value, …]]`.
pub fn entry_reply(id: StreamId, fields: &Bytes) -> CmdResult<Reply> {
    let pairs = decode_fields(fields, id)?;
    Ok(Reply::Array(vec![
        id.reply(),
        Reply::Array(pairs.into_iter().map(Reply::Bulk).collect()),
    ]))
}

/// Entries as a reply array.
pub fn entries_reply(entries: &[(StreamId, Bytes)]) -> CmdResult<Reply> {
    entries
        .iter()
        .map(|(id, v)| entry_reply(*id, v))
        .collect::<CmdResult<Vec<_>>>()
        .map(Reply::Array)
}

/// A COUNT argument: a non-negative integer (0 and negatives mean "no limit", as in
/// Redis's XRANGE and XREAD).
pub fn parse_count(b: &[u8]) -> CmdResult<usize> {
    let n = crate::args::int_arg(b)?;
    Ok(if n <= 0 { usize::MAX } else { n as usize })
}
