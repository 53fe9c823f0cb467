//! Commands on a stream's entries: XADD, XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XREAD,
//! XSETID.
//!
//! # Approximate trimming
//!
//! Redis keeps entries in nodes of up to `stream-node-max-entries` (100) and trims with
//! `~` by whole nodes only. keel has no nodes; its `~` trims in runs of
//! [`NODE_ENTRIES`] entries counted from the first, which is where Redis's node
//! boundaries fall for a stream that was only appended to and trimmed. Redis rewrites
//! an approximate trim into an exact one for its replicas; keel's log holds the command
//! and its trim is a function of the stream alone, so a replay trims the same entries.

use bytes::Bytes;
use keel_storage::Direction;

use super::{
    encode_fields, entries_reply, entry_key, parse_count, parse_exact_id, parse_id_parts,
    parse_range_end, spec, State, Stream, StreamId, EXHAUSTED, INVALID_ID,
};
use crate::args::{eq_ci, int_arg};
use crate::command::{flags::*, CommandSpec};
use crate::error::{fail, CmdResult};
use crate::exec::Exec;
use crate::meta::KeyType;
use crate::reply::{errors, Reply};

/// The entries of one of Redis's stream nodes (`stream-node-max-entries`' default),
/// the unit of an approximate trim.
pub const NODE_ENTRIES: u64 = 100;

/// Most entries an approximate trim removes without LIMIT (Redis: 100 nodes).
const DEFAULT_APPROX_LIMIT: u64 = 100 * NODE_ENTRIES;

/// XREAD given GROUP or NOACK (Redis's texts).
const GROUP_ONLY: &str =
    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.";
const NOACK_ONLY: &str =
    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.";
const GT_ONLY: &str = "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.";

/// The entry commands.
pub static COMMANDS: &[CommandSpec] = &[
    spec("xadd", -5, WRITE | DENYOOM | FAST, 1, "Appends a new message to a stream. Creates the key if it doesn't exist.", xadd),
    spec("xlen", 2, READONLY | FAST, 1, "Return the number of messages in a stream.", xlen),
    spec("xrange", -4, READONLY, 1, "Returns the messages from a stream within a range of IDs.", xrange),
    spec("xrevrange", -4, READONLY, 1, "Returns the messages from a stream within a range of IDs in reverse order.", xrevrange),
    spec("xdel", -3, WRITE | FAST, 1, "Returns the number of messages after removing them from a stream.", xdel),
    spec("xtrim", -4, WRITE, 1, "Deletes messages from the beginning of a stream.", xtrim),
    spec("xsetid", -3, WRITE | DENYOOM | FAST, 1, "An internal command for replicating stream values.", xsetid),
    spec("xread", -4, READONLY | BLOCKING, 0, "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.", xread),
];

/// How XADD and XTRIM trim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trim {
    None,
    MaxLen(u64),
    MinId(StreamId),
}

/// XADD's and XTRIM's options.
#[derive(Debug, Clone, Copy)]
struct TrimArgs {
    trim: Trim,
    approx: bool,
    /// Most entries to remove (0: no limit).
    limit: u64,
}

/// Parses the options from `args[2]` on; for XADD stops at the ID and returns its
/// position with NOMKSTREAM (Redis's `streamParseAddOrTrimArgsOrReply`).
fn parse_trim(args: &[Bytes], xadd: bool) -> CmdResult<(TrimArgs, usize, bool)> {
    let mut t = TrimArgs {
        trim: Trim::None,
        approx: false,
        limit: 0,
    };
    let mut limit_given = false;
    let mut nomkstream = false;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = &args[i];
        if xadd && &opt[..] == b"*" {
            break;
        } else if (eq_ci(opt, "maxlen") || eq_ci(opt, "minid")) && more > 0 {
            if t.trim != Trim::None {
                return fail("ERR syntax error, MAXLEN and MINID options at the same time are not compatible");
            }
            t.approx = false;
            let next = &args[i + 1][..];
            if more >= 2 && (next == b"~" || next == b"=") {
                t.approx = next == b"~";
                i += 1;
            }
            let v = &args[i + 1];
            t.trim = if eq_ci(opt, "maxlen") {
                let n = int_arg(v)?;
                if n < 0 {
                    return fail("ERR The MAXLEN argument must be >= 0.");
                }
                Trim::MaxLen(n as u64)
            } else {
                Trim::MinId(parse_exact_id(v)?)
            };
            i += 2;
        } else if eq_ci(opt, "limit") && more > 0 {
            let n = int_arg(&args[i + 1])?;
            if n < 0 {
                return fail("ERR The LIMIT argument must be >= 0.");
            }
            t.limit = n as u64;
            limit_given = true;
            i += 2;
        } else if xadd && eq_ci(opt, "nomkstream") {
            nomkstream = true;
            i += 1;
        } else if xadd {
            break;
        } else {
            return fail(errors::SYNTAX);
        }
    }
    if t.limit > 0 && t.trim == Trim::None {
        return fail(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        );
    }
    if !xadd && t.trim == Trim::None {
        return fail("ERR syntax error, XTRIM must be called with a trimming strategy");
    }
    if limit_given && !t.approx {
        return fail("ERR syntax error, LIMIT cannot be used without the special ~ option");
    }
    if !limit_given {
        t.limit = if t.approx { DEFAULT_APPROX_LIMIT } else { 0 };
    }
    Ok((t, i, nomkstream))
}

/// Removes the entries `t` says from the stream's head; returns how many went. One scan
/// finds them: the first `len - MAXLEN`, or those below MINID, at most LIMIT; an
/// approximate trim then keeps whole runs of [`NODE_ENTRIES`].
fn trim(ex: &mut Exec, s: &mut Stream, t: TrimArgs) -> CmdResult<u64> {
    let (last, mut most) = match t.trim {
        Trim::None => return Ok(0),
        Trim::MaxLen(max) => (StreamId::MAX, s.len.saturating_sub(max)),
        Trim::MinId(min) => match min.prev() {
            Some(below) => (below, u64::MAX),
            None => return Ok(0),
        },
    };
    if t.limit > 0 {
        most = most.min(t.limit);
    }
    if most == 0 {
        return Ok(0);
    }
    let limit = usize::try_from(most).unwrap_or(usize::MAX);
    let mut doomed = s.range(ex, StreamId::MIN, last, Direction::Forward, limit)?;
    if t.approx {
        doomed.truncate(doomed.len() - doomed.len() % NODE_ENTRIES as usize);
    }
    for (id, _) in &doomed {
        ex.delete(entry_key(s.version, *id))?;
    }
    s.len -= doomed.len() as u64;
    Ok(doomed.len() as u64)
}

fn xadd(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let (t, idpos, nomkstream) = parse_trim(args, true)?;
    // The ID: `*`, `ms-*` (sequence chosen) or exact; checked before the arity, as
    // Redis does.
    let Some(raw) = args.get(idpos).map(|a| &a[..]) else {
        return fail(errors::wrong_args("xadd"));
    };
    let given: Option<(StreamId, bool)> = if raw == b"*" {
        None
    } else if let Some(ms) = raw.strip_suffix(b"-*") {
        match parse_id_parts(ms, 0) {
            Some(id) if !ms.contains(&b'-') => Some((id, false)),
            _ => return fail(INVALID_ID),
        }
    } else {
        match parse_id_parts(raw, 0) {
            Some(id) => Some((id, true)),
            None => return fail(INVALID_ID),
        }
    };
    let fields = args.get(idpos + 1..).unwrap_or_default();
    if fields.len() < 2 || fields.len() % 2 == 1 {
        return fail(errors::wrong_args("xadd"));
    }
    if given == Some((StreamId::MIN, true)) {
        return fail("ERR The ID specified in XADD must be greater than 0-0");
    }
    let mut s = match Stream::load(ex, key)? {
        Some(s) => s,
        None if nomkstream => return Ok(Reply::Nil),
        None => Stream::create(ex),
    };
    let last = s.state.last_id;
    if last == StreamId::MAX {
        return fail(EXHAUSTED);
    }
    let id = match given {
        None => {
            if ex.now_ms > last.ms {
                StreamId::new(ex.now_ms, 0)
            } else {
                last.next()
                    .ok_or_else(|| crate::error::CmdError::Reply(Reply::err(EXHAUSTED)))?
            }
        }
        Some((id, true)) => id,
        Some((ms_only, false)) => {
            if ms_only.ms == last.ms {
                if last.seq == u64::MAX {
                    return fail(too_small());
                }
                StreamId::new(last.ms, last.seq + 1)
            } else {
                StreamId::new(ms_only.ms, 0)
            }
        }
    };
    if id <= last {
        return fail(too_small());
    }
    ex.put(entry_key(s.version, id), encode_fields(fields))?;
    s.len += 1;
    s.state.last_id = id;
    s.state.entries_added += 1;
    ex.notify('t', "xadd", key);
    if trim(ex, &mut s, t)? > 0 {
        ex.notify('t', "xtrim", key);
    }
    s.save(ex, key)?;
    Ok(id.reply())
}

/// XADD's ID at or below the stream's last.
fn too_small() -> &'static str {
    "ERR The ID specified in XADD is equal or smaller than the target stream top item"
}

fn xlen(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    // The metadata's length alone: the state record is not needed (XLEN -P 16 ran ~10%
    // faster without reading it).
    let n = ex.typed(&args[1], KeyType::Stream)?.map_or(0, |m| m.len());
    Ok(Reply::Int(n as i64))
}

fn xrange(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    range_command(ex, args, false)
}

fn xrevrange(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    range_command(ex, args, true)
}

/// XRANGE and XREVRANGE (the reverse form takes its end first).
fn range_command(ex: &mut Exec, args: &[Bytes], rev: bool) -> CmdResult<Reply> {
    let (start_arg, end_arg) = if rev {
        (&args[3], &args[2])
    } else {
        (&args[2], &args[3])
    };
    let start = parse_range_end(start_arg, true)?;
    let end = parse_range_end(end_arg, false)?;
    let mut count: Option<usize> = None;
    let mut i = 4;
    while i < args.len() {
        if eq_ci(&args[i], "count") && i + 1 < args.len() {
            let n = int_arg(&args[i + 1])?;
            count = Some(n.max(0) as usize);
            i += 2;
        } else {
            return fail(errors::SYNTAX);
        }
    }
    let Some(s) = Stream::load(ex, &args[1])? else {
        return Ok(Reply::Array(Vec::new()));
    };
    if count == Some(0) {
        return Ok(Reply::NilArray);
    }
    let (Some(start), Some(end)) = (start, end) else {
        return Ok(Reply::Array(Vec::new()));
    };
    let dir = if rev {
        Direction::Reverse
    } else {
        Direction::Forward
    };
    let entries = s.range(ex, start, end, dir, count.unwrap_or(usize::MAX))?;
    entries_reply(&entries)
}

fn xdel(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    // Every ID is checked before anything is deleted, as Redis does.
    let ids = args[2..]
        .iter()
        .map(|a| parse_exact_id(a))
        .collect::<CmdResult<Vec<_>>>()?;
    let Some(mut s) = Stream::load(ex, key)? else {
        return Ok(Reply::Int(0));
    };
    let mut deleted = 0;
    for id in ids {
        let k = entry_key(s.version, id);
        if ex.contains(&k)? {
            ex.delete(k)?;
            s.len -= 1;
            s.state.max_deleted = s.state.max_deleted.max(id);
            deleted += 1;
        }
    }
    if deleted > 0 {
        s.save(ex, key)?;
        ex.notify('t', "xdel", key);
    }
    Ok(Reply::Int(deleted))
}

fn xtrim(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let (t, _, _) = parse_trim(args, false)?;
    let Some(mut s) = Stream::load(ex, key)? else {
        return Ok(Reply::Int(0));
    };
    let n = trim(ex, &mut s, t)?;
    if n > 0 {
        s.save(ex, key)?;
        ex.notify('t', "xtrim", key);
    }
    Ok(Reply::Int(n as i64))
}

fn xsetid(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let id = parse_exact_id(&args[2])?;
    let mut entries_added: Option<u64> = None;
    let mut max_deleted = StreamId::MIN;
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - 1 - i;
        if eq_ci(&args[i], "entriesadded") && more > 0 {
            let n = int_arg(&args[i + 1])?;
            if n < 0 {
                return fail("ERR entries_added must be positive");
            }
            entries_added = Some(n as u64);
        } else if eq_ci(&args[i], "maxdeletedid") && more > 0 {
            max_deleted = parse_exact_id(&args[i + 1])?;
            if id < max_deleted {
                return fail("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id");
            }
        } else {
            return fail(errors::SYNTAX);
        }
        i += 2;
    }
    let Some(mut s) = Stream::load(ex, key)? else {
        return fail(errors::NO_SUCH_KEY);
    };
    if id < s.state.max_deleted {
        return fail("ERR The ID specified in XSETID is smaller than current max_deleted_entry_id");
    }
    if s.len > 0 {
        if let Some(top) = s.last_entry_id(ex)? {
            if id < top {
                return fail(
                    "ERR The ID specified in XSETID is smaller than the target stream top item",
                );
            }
        }
        if entries_added.is_some_and(|n| s.len > n) {
            return fail("ERR The entries_added specified in XSETID is smaller than the target stream length");
        }
    }
    s.state = State {
        last_id: id,
        max_deleted: if max_deleted == StreamId::MIN {
            s.state.max_deleted
        } else {
            max_deleted
        },
        entries_added: entries_added.unwrap_or(s.state.entries_added),
    };
    s.save(ex, key)?;
    ex.notify('t', "xsetid", key);
    Ok(Reply::Ok)
}

/// XREAD's and XREADGROUP's arguments.
#[derive(Debug, Clone)]
pub struct ReadArgs {
    /// COUNT (`usize::MAX` without one).
    pub count: usize,
    /// BLOCK's timeout in ms, None without BLOCK.
    pub block_ms: Option<u64>,
    /// GROUP's group and consumer.
    pub group: Option<(Bytes, Bytes)>,
    /// NOACK.
    pub noack: bool,
    /// Index of the first key (after STREAMS).
    pub keys_at: usize,
    /// Number of streams.
    pub streams: usize,
}

/// Parses XREAD's (`group` false) or XREADGROUP's options, as Redis's `xreadCommand`.
pub fn parse_read(args: &[Bytes], group: bool) -> CmdResult<ReadArgs> {
    let mut r = ReadArgs {
        count: usize::MAX,
        block_ms: None,
        group: None,
        noack: false,
        keys_at: 0,
        streams: 0,
    };
    let name = if group { "xreadgroup" } else { "xread" };
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - i - 1;
        let o = &args[i];
        if eq_ci(o, "block") && more > 0 {
            r.block_ms = Some(parse_block_ms(&args[i + 1])?);
            i += 2;
        } else if eq_ci(o, "count") && more > 0 {
            r.count = parse_count(&args[i + 1])?;
            i += 2;
        } else if eq_ci(o, "streams") && more > 0 {
            r.keys_at = i + 1;
            let n = args.len() - r.keys_at;
            if !n.is_multiple_of(2) {
                let symbol = if group { '>' } else { '$' };
                return fail(format!(
                    "ERR Unbalanced '{name}' list of streams: for each stream key an ID or '{symbol}' must be specified."
                ));
            }
            r.streams = n / 2;
            break;
        } else if eq_ci(o, "group") && more >= 2 {
            if !group {
                return fail(GROUP_ONLY);
            }
            r.group = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 3;
        } else if eq_ci(o, "noack") {
            if !group {
                return fail(NOACK_ONLY);
            }
            r.noack = true;
            i += 1;
        } else {
            return fail(errors::SYNTAX);
        }
    }
    if r.keys_at == 0 {
        return fail(errors::SYNTAX);
    }
    if group && r.group.is_none() {
        return fail("ERR Missing GROUP option for XREADGROUP");
    }
    Ok(r)
}

/// Whether `args` are an XREAD or XREADGROUP that asks to block (a well-formed BLOCK
/// option): the server parks such a command, a script refuses it.
pub fn asks_to_block(args: &[Bytes]) -> bool {
    let Some(name) = args.first() else {
        return false;
    };
    let group = name.eq_ignore_ascii_case(b"xreadgroup");
    (group || name.eq_ignore_ascii_case(b"xread"))
        && parse_read(args, group).is_ok_and(|r| r.block_ms.is_some())
}

/// BLOCK's milliseconds, with Redis's errors.
pub fn parse_block_ms(b: &[u8]) -> CmdResult<u64> {
    match crate::args::parse_i64(b) {
        Some(n) if n < 0 => fail("ERR timeout is negative"),
        Some(n) => Ok(n as u64),
        None => fail("ERR timeout is not an integer or out of range"),
    }
}

fn xread(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let r = parse_read(args, false)?;
    let keys = &args[r.keys_at..r.keys_at + r.streams];
    let ids = &args[r.keys_at + r.streams..];
    // Every key's type and every ID are checked before anything is read.
    let mut after = Vec::with_capacity(r.streams);
    for (key, id) in keys.iter().zip(ids) {
        let s = Stream::load(ex, key)?;
        let from = match &id[..] {
            b"$" => s.as_ref().map_or(StreamId::MIN, |s| s.state.last_id),
            b">" => return fail(GT_ONLY),
            _ => parse_exact_id(id)?,
        };
        after.push((s, from));
    }
    let mut out = Vec::new();
    for (key, (s, from)) in keys.iter().zip(after) {
        let (Some(s), Some(start)) = (s, from.next()) else {
            continue;
        };
        let entries = s.range(ex, start, StreamId::MAX, Direction::Forward, r.count)?;
        if !entries.is_empty() {
            out.push((Reply::Bulk(key.clone()), entries_reply(&entries)?));
        }
    }
    if out.is_empty() {
        return Ok(Reply::NilArray);
    }
    Ok(Reply::PairMap(out))
}
