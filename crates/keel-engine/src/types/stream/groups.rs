//! Consumer groups of streams (XGROUP, XREADGROUP, XACK, XPENDING, XCLAIM, XAUTOCLAIM,
//! XINFO).
//!
//! # Records
//!
//! A group lives in four kinds of sub-keys of its stream's version (the keys are in the
//! layout of `super`); all integers are big-endian:
//!
//! ```text
//! group             last_delivered_id(16) entries_read(i64) pending(u64) consumers(u64)
//! pending entry     delivery_time_ms(i64) delivery_count(u64) consumer(rest)
//! consumer          seen_time_ms(i64) active_time_ms(i64) pending(u64)
//! consumer pending  (empty)
//! ```
//!
//! `entries_read` is -1 where Redis's is `SCG_INVALID_ENTRIES_READ` (unknown), and a
//! consumer's `active_time_ms` is -1 until something was delivered to it, as in Redis.
//! The group keeps the size of its pending entries list (PEL) and its number of
//! consumers, and each consumer the size of its own PEL, so XINFO GROUPS, XINFO
//! CONSUMERS and XPENDING's summary count without scanning. Every change to a PEL goes
//! through [`Group::assign`] and [`Group::release`], which keep the pending entry, the
//! consumer's index entry and both counts in step; [`Group::save`] writes the group
//! and the consumers a command changed.
//!
//! Iteration follows storage order: groups and consumers by name bytewise (Redis's
//! radix trees order them alike), pending entries by ID.
//!
//! # Decisions that differ from Redis
//!
//! - XREADGROUP never blocks here: when no stream had anything new for `>` it answers
//!   a null array, and the server parks the client and runs the command again when
//!   one of its keys is touched. A consumer it creates while finding nothing stays, as
//!   in Redis.
//! - Redis replicates XREADGROUP, XCLAIM and XAUTOCLAIM as XCLAIM/XGROUP SETID commands;
//!   keel's log holds the command itself, whose effects depend only on the stream and
//!   the entry's time (`Exec::now_ms`, never the clock), so a replay makes them again.
//! - Only XGROUP DESTROY (and a CREATE with MKSTREAM, which writes the key) marks the
//!   key as touched: Redis wakes blocked XREADGROUPs then so that they fail with
//!   NOGROUP, and keel's server wakes waiters on touched keys. That also aborts a
//!   WATCH on the key, which Redis's DESTROY does not. The other group writes touch
//!   nothing, as Redis signals no modified key for them.
//! - XGROUP is one command table row for all its subcommands, flagged WRITE without
//!   Redis's DENYOOM of CREATE and CREATECONSUMER, so that DESTROY and DELCONSUMER
//!   still run over maxmemory.
//! - XINFO STREAM's `radix-tree-keys` is the number of Redis nodes of
//!   [`NODE_ENTRIES`] entries the stream's length fills, and `radix-tree-nodes` one
//!   more (Redis's counts for a stream that was only appended to and trimmed).

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes};
use keel_storage::{Direction, ScanRange};

use super::entries::{parse_read, NODE_ENTRIES};
use super::{
    be8, entries_reply, entry_reply, group_key, group_prefix, groups_range, id_after, id_range,
    parse_exact_id, parse_id, parse_range_end, push_name, spec, Stream, StreamId, CONSUMER,
    CONSUMER_PENDING, PENDING,
};
use crate::args::{eq_ci, int_arg, parse_i64};
use crate::command::{flags::*, CommandSpec};
use crate::error::{fail, CmdError, CmdResult, EngineError};
use crate::exec::Exec;
use crate::keys;
use crate::reply::{errors, Reply};

/// Redis's `SCG_INVALID_ENTRIES_READ`: a group's read counter that is not known.
const INVALID_READ: i64 = -1;

/// XAUTOCLAIM looks at up to this many PEL entries per entry it may claim (Redis's
/// `attempts_factor`).
const ATTEMPTS_FACTOR: i64 = 10;

/// The largest XAUTOCLAIM COUNT (Redis: `LONG_MAX / max(sizeof(streamID), 10)`).
const MAX_AUTOCLAIM_COUNT: i64 = i64::MAX / 16;

/// PEL entries read per scan where a command walks a PEL while changing it.
const PEL_CHUNK: usize = 128;

/// The consumer group commands.
#[rustfmt::skip]
pub static COMMANDS: &[CommandSpec] = &[
    spec("xgroup", -2, WRITE, 2, "A container for consumer groups commands.", xgroup),
    spec("xinfo", -2, READONLY, 2, "A container for stream introspection commands.", xinfo),
    spec("xreadgroup", -7, WRITE | BLOCKING, 0, "Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.", xreadgroup),
    spec("xack", -4, WRITE | FAST, 1, "Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.", xack),
    spec("xpending", -3, READONLY, 1, "Returns the information and entries from a stream consumer group's pending entries list.", xpending),
    spec("xclaim", -6, WRITE | FAST, 1, "Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.", xclaim),
    spec("xautoclaim", -6, WRITE | FAST, 1, "Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.", xautoclaim),
];

// ---------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------

/// A group record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct GroupRec {
    last_id: StreamId,
    entries_read: i64,
    pending: u64,
    consumers: u64,
}

impl GroupRec {
    fn encode(&self) -> Bytes {
        let mut b = Vec::with_capacity(40);
        b.extend_from_slice(&self.last_id.to_bytes());
        b.put_i64(self.entries_read);
        b.put_u64(self.pending);
        b.put_u64(self.consumers);
        Bytes::from(b)
    }

    fn decode(b: &[u8], group: &[u8]) -> Result<GroupRec, EngineError> {
        let bad = || EngineError::corrupt("stream group", group, "not 40 bytes");
        if b.len() != 40 {
            return Err(bad());
        }
        Ok(GroupRec {
            last_id: StreamId::from_bytes(&b[..16]).ok_or_else(bad)?,
            entries_read: i64::from_be_bytes(be8(b, 16).ok_or_else(bad)?),
            pending: u64::from_be_bytes(be8(b, 24).ok_or_else(bad)?),
            consumers: u64::from_be_bytes(be8(b, 32).ok_or_else(bad)?),
        })
    }
}

/// A pending entry (Redis's NACK).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Nack {
    time: i64,
    count: u64,
    consumer: Bytes,
}

impl Nack {
    fn encode(&self) -> Bytes {
        let mut b = Vec::with_capacity(16 + self.consumer.len());
        b.put_i64(self.time);
        b.put_u64(self.count);
        b.extend_from_slice(&self.consumer);
        Bytes::from(b)
    }

    fn decode(b: &Bytes, id: StreamId) -> Result<Nack, EngineError> {
        let bad = || {
            EngineError::corrupt(
                "stream pending entry",
                id.to_string().as_bytes(),
                "shorter than 16 bytes",
            )
        };
        Ok(Nack {
            time: i64::from_be_bytes(be8(b, 0).ok_or_else(bad)?),
            count: u64::from_be_bytes(be8(b, 8).ok_or_else(bad)?),
            consumer: b.slice(16..),
        })
    }
}

/// A consumer record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConsumerRec {
    seen: i64,
    active: i64,
    pending: u64,
}

impl ConsumerRec {
    fn encode(&self) -> Bytes {
        let mut b = Vec::with_capacity(24);
        b.put_i64(self.seen);
        b.put_i64(self.active);
        b.put_u64(self.pending);
        Bytes::from(b)
    }

    fn decode(b: &[u8], name: &[u8]) -> Result<ConsumerRec, EngineError> {
        let bad = || EngineError::corrupt("stream consumer", name, "not 24 bytes");
        if b.len() != 24 {
            return Err(bad());
        }
        Ok(ConsumerRec {
            seen: i64::from_be_bytes(be8(b, 0).ok_or_else(bad)?),
            active: i64::from_be_bytes(be8(b, 8).ok_or_else(bad)?),
            pending: u64::from_be_bytes(be8(b, 16).ok_or_else(bad)?),
        })
    }
}

/// Storage key of pending entry `id` of `group`.
fn pending_key(version: u64, group: &[u8], id: StreamId) -> Bytes {
    Bytes::from(group_prefix(PENDING, version, group, &id.to_bytes()))
}

/// Storage key of consumer `name` of `group`.
fn consumer_key(version: u64, group: &[u8], name: &[u8]) -> Bytes {
    Bytes::from(group_prefix(CONSUMER, version, group, name))
}

/// The prefix of `consumer`'s pending index in `group`, to which an ID's bytes append.
fn owned_prefix(version: u64, group: &[u8], consumer: &[u8]) -> Vec<u8> {
    let mut more = Vec::with_capacity(4 + consumer.len() + 16);
    push_name(&mut more, consumer);
    group_prefix(CONSUMER_PENDING, version, group, &more)
}

/// Storage key of `id` in `consumer`'s pending index.
fn owned_key(version: u64, group: &[u8], consumer: &[u8], id: StreamId) -> Bytes {
    let mut k = owned_prefix(version, group, consumer);
    k.extend_from_slice(&id.to_bytes());
    Bytes::from(k)
}

/// The entry's time as Redis's `mstime_t`.
fn now(ex: &Exec) -> i64 {
    i64::try_from(ex.now_ms).unwrap_or(i64::MAX)
}

/// Milliseconds since `then` (negative if `then` is ahead).
fn since(now: i64, then: i64) -> i64 {
    now.saturating_sub(then)
}

/// An argument as text for an error message (Redis's `%.128s`).
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(128)]).into_owned()
}

/// "NOGROUP No such key … or consumer group …" with `tail` after it.
fn no_key_or_group(key: &[u8], group: &[u8], tail: &str) -> CmdError {
    CmdError::Reply(Reply::err(format!(
        "NOGROUP No such key '{}' or consumer group '{}'{tail}",
        text(key),
        text(group)
    )))
}

/// "NOGROUP No such consumer group … for key name …".
fn no_group(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::Reply(Reply::err(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        text(group),
        text(key)
    )))
}

// ---------------------------------------------------------------------------------
// A group as a command reads and changes it
// ---------------------------------------------------------------------------------

/// A consumer group loaded for a command, with the consumers it read or changed.
struct Group {
    version: u64,
    name: Bytes,
    rec: GroupRec,
    /// Consumers looked up so far: the record (None: no such consumer) and whether
    /// [`Group::save`] must write it.
    consumers: BTreeMap<Bytes, (Option<ConsumerRec>, bool)>,
}

impl Group {
    /// Group `name` of stream `s`, None when there is none.
    fn load(ex: &Exec, s: &Stream, name: &Bytes) -> CmdResult<Option<Group>> {
        let Some(b) = ex.get(&group_key(s.version, name))? else {
            return Ok(None);
        };
        Ok(Some(Group {
            version: s.version,
            name: name.clone(),
            rec: GroupRec::decode(&b, name)?,
            consumers: BTreeMap::new(),
        }))
    }

    /// A new group (written by [`Group::save`]).
    fn new(s: &Stream, name: &Bytes, last_id: StreamId, entries_read: i64) -> Group {
        Group {
            version: s.version,
            name: name.clone(),
            rec: GroupRec {
                last_id,
                entries_read,
                pending: 0,
                consumers: 0,
            },
            consumers: BTreeMap::new(),
        }
    }

    /// Consumer `name`'s record, None when there is no such consumer.
    fn consumer(&mut self, ex: &Exec, name: &[u8]) -> CmdResult<Option<ConsumerRec>> {
        if let Some((c, _)) = self.consumers.get(name) {
            return Ok(*c);
        }
        let c = match ex.get(&consumer_key(self.version, &self.name, name))? {
            Some(b) => Some(ConsumerRec::decode(&b, name)?),
            None => None,
        };
        self.consumers
            .insert(Bytes::copy_from_slice(name), (c, false));
        Ok(c)
    }

    /// Sets consumer `name`'s record (None deletes it) for [`Group::save`].
    fn set_consumer(&mut self, name: &[u8], c: Option<ConsumerRec>) {
        self.consumers
            .insert(Bytes::copy_from_slice(name), (c, true));
    }

    /// Changes consumer `name`'s record with `f`; a missing one is corrupt state (a
    /// pending entry names it).
    fn update_consumer(
        &mut self,
        ex: &Exec,
        name: &[u8],
        f: impl FnOnce(&mut ConsumerRec) -> Option<()>,
    ) -> CmdResult<()> {
        let mut c = self.consumer(ex, name)?.ok_or_else(|| {
            EngineError::corrupt(
                "stream consumer",
                name,
                "named by a pending entry but absent",
            )
        })?;
        if f(&mut c).is_none() {
            return Err(
                EngineError::corrupt("stream consumer", name, "pending count out of step").into(),
            );
        }
        self.set_consumer(name, Some(c));
        Ok(())
    }

    /// Creates consumer `name` unless it exists (raising `xgroup-createconsumer` on
    /// `key`); true if it was created.
    fn create_consumer(&mut self, ex: &mut Exec, key: &[u8], name: &[u8]) -> CmdResult<bool> {
        if self.consumer(ex, name)?.is_some() {
            return Ok(false);
        }
        self.set_consumer(
            name,
            Some(ConsumerRec {
                seen: now(ex),
                active: -1,
                pending: 0,
            }),
        );
        self.rec.consumers += 1;
        ex.notify('t', "xgroup-createconsumer", key);
        Ok(true)
    }

    /// Consumer `name`, created if missing, seen now (what every XREADGROUP, XCLAIM and
    /// XAUTOCLAIM does first).
    fn seen(&mut self, ex: &mut Exec, key: &[u8], name: &[u8]) -> CmdResult<()> {
        self.create_consumer(ex, key, name)?;
        let t = now(ex);
        self.update_consumer(ex, name, |c| {
            c.seen = t;
            Some(())
        })
    }

    /// Marks consumer `name` active now (something was delivered or claimed to it).
    fn active(&mut self, ex: &Exec, name: &[u8]) -> CmdResult<()> {
        let t = now(ex);
        self.update_consumer(ex, name, |c| {
            c.active = t;
            Some(())
        })
    }

    /// Pending entry `id`, None when it is not pending.
    fn nack(&self, ex: &Exec, id: StreamId) -> CmdResult<Option<Nack>> {
        match ex.get(&pending_key(self.version, &self.name, id))? {
            Some(b) => Ok(Some(Nack::decode(&b, id)?)),
            None => Ok(None),
        }
    }

    /// Makes `new` pending entry `id`, replacing `old` (its current state, None when
    /// it is not pending): moves it between consumers' indexes and counts as needed.
    fn assign(
        &mut self,
        ex: &mut Exec,
        id: StreamId,
        old: Option<&Nack>,
        new: Nack,
    ) -> CmdResult<()> {
        let moved = match old {
            None => {
                self.rec.pending += 1;
                true
            }
            Some(o) if o.consumer != new.consumer => {
                ex.delete(owned_key(self.version, &self.name, &o.consumer, id))?;
                self.update_consumer(ex, &o.consumer, |c| {
                    c.pending = c.pending.checked_sub(1)?;
                    Some(())
                })?;
                true
            }
            Some(_) => false,
        };
        if moved {
            ex.put(
                owned_key(self.version, &self.name, &new.consumer, id),
                Bytes::new(),
            )?;
            self.update_consumer(ex, &new.consumer, |c| {
                c.pending += 1;
                Some(())
            })?;
        }
        ex.put(pending_key(self.version, &self.name, id), new.encode())
    }

    /// Removes pending entry `id` (whose state is `nack`) from the group and its
    /// consumer.
    fn release(&mut self, ex: &mut Exec, id: StreamId, nack: &Nack) -> CmdResult<()> {
        ex.delete(pending_key(self.version, &self.name, id))?;
        ex.delete(owned_key(self.version, &self.name, &nack.consumer, id))?;
        self.update_consumer(ex, &nack.consumer, |c| {
            c.pending = c.pending.checked_sub(1)?;
            Some(())
        })?;
        self.rec.pending = self.rec.pending.checked_sub(1).ok_or_else(|| {
            EngineError::corrupt("stream group", &self.name, "pending count out of step")
        })?;
        Ok(())
    }

    /// Up to `limit` pending entries of the group with IDs in `from..=to`, in ID order.
    fn pel(
        &self,
        ex: &Exec,
        from: StreamId,
        to: StreamId,
        limit: usize,
    ) -> CmdResult<Vec<(StreamId, Nack)>> {
        let prefix = group_prefix(PENDING, self.version, &self.name, b"");
        let mut out = Vec::new();
        if from > to || limit == 0 {
            return Ok(out);
        }
        for item in ex.scan(id_range(&prefix, from, to), Direction::Forward) {
            let (k, v) = item?;
            let id = id_after(&k, prefix.len())?;
            out.push((id, Nack::decode(&v, id)?));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Up to `limit` IDs from `from` on in consumer `name`'s pending index.
    fn owned(
        &self,
        ex: &Exec,
        name: &[u8],
        from: StreamId,
        limit: usize,
    ) -> CmdResult<Vec<StreamId>> {
        let prefix = owned_prefix(self.version, &self.name, name);
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        for item in ex.scan(id_range(&prefix, from, StreamId::MAX), Direction::Forward) {
            let (k, _) = item?;
            out.push(id_after(&k, prefix.len())?);
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Every consumer of the group with its record, in name order.
    fn all_consumers(&self, ex: &Exec) -> CmdResult<Vec<(Bytes, ConsumerRec)>> {
        let prefix = group_prefix(CONSUMER, self.version, &self.name, b"");
        let mut out = Vec::new();
        for item in ex.scan(ScanRange::prefix(&prefix), Direction::Forward) {
            let (k, v) = item?;
            let name = k.slice(prefix.len()..);
            let rec = ConsumerRec::decode(&v, &name)?;
            out.push((name, rec));
        }
        Ok(out)
    }

    /// Writes the group record and the consumers this command changed.
    fn save(&self, ex: &mut Exec) -> CmdResult<()> {
        ex.put(group_key(self.version, &self.name), self.rec.encode())?;
        for (name, (c, dirty)) in &self.consumers {
            if !dirty {
                continue;
            }
            let k = consumer_key(self.version, &self.name, name);
            match c {
                Some(c) => ex.put(k, c.encode())?,
                None => ex.delete(k)?,
            }
        }
        Ok(())
    }
}

/// Deletes every record under `prefix`.
fn delete_prefix(ex: &mut Exec, prefix: &[u8]) -> CmdResult<()> {
    let mut doomed = Vec::new();
    for item in ex.scan(ScanRange::prefix(prefix), Direction::Forward) {
        doomed.push(item?.0);
    }
    for k in doomed {
        ex.delete(k)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------
// Read counters and lag (Redis 7.2's rules)
// ---------------------------------------------------------------------------------

/// What the read-counter rules need of a stream.
struct Shape {
    len: u64,
    last_id: StreamId,
    max_deleted: StreamId,
    entries_added: u64,
    /// The first entry's ID, 0-0 when empty (Redis's `first_id`).
    first_id: StreamId,
}

impl Shape {
    fn of(ex: &Exec, s: &Stream) -> CmdResult<Shape> {
        Ok(Shape {
            len: s.len,
            last_id: s.state.last_id,
            max_deleted: s.state.max_deleted,
            entries_added: s.state.entries_added,
            first_id: s.first_id(ex)?.unwrap_or(StreamId::MIN),
        })
    }

    /// Whether a deleted entry may lie at `start` or after (`streamRangeHasTombstones`
    /// with no end).
    fn tombstones_from(&self, start: StreamId) -> bool {
        if self.len == 0 || self.max_deleted == StreamId::MIN || self.first_id > self.max_deleted {
            return false;
        }
        start <= self.max_deleted
    }

    /// How many entries were added up to `id`, if that can be known
    /// (`streamEstimateDistanceFromFirstEverEntry`); [`INVALID_READ`] otherwise.
    fn estimate(&self, id: StreamId) -> i64 {
        let added = self.entries_added as i64;
        if self.entries_added == 0 {
            return 0;
        }
        if self.len == 0 && id <= self.last_id {
            return added;
        }
        if id == self.last_id {
            return added;
        }
        if id > self.last_id {
            return INVALID_READ;
        }
        if self.max_deleted == StreamId::MIN || self.max_deleted < self.first_id {
            let base = added - self.len as i64;
            if id < self.first_id {
                return base;
            }
            if id == self.first_id {
                return base + 1;
            }
        }
        INVALID_READ
    }

    /// The group's lag, None when it cannot be known (`streamReplyWithCGLag`).
    fn lag(&self, g: &GroupRec) -> Option<i64> {
        let added = self.entries_added as i64;
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != INVALID_READ && !self.tombstones_from(g.last_id) {
            return Some(added.wrapping_sub(g.entries_read));
        }
        match self.estimate(g.last_id) {
            INVALID_READ => None,
            read => Some(added.wrapping_sub(read)),
        }
    }

    /// Moves the group's last delivered ID to `id`, delivered now, counting it.
    fn deliver(&self, g: &mut GroupRec, id: StreamId) {
        if id <= g.last_id {
            return;
        }
        if g.entries_read != INVALID_READ && !self.tombstones_from(id) {
            g.entries_read = g.entries_read.saturating_add(1);
        } else if self.entries_added != 0 {
            g.entries_read = self.estimate(id);
        }
        g.last_id = id;
    }
}

/// A group's entries-read as XINFO shows it.
fn entries_read_reply(g: &GroupRec) -> Reply {
    if g.entries_read == INVALID_READ {
        Reply::Nil
    } else {
        Reply::Int(g.entries_read)
    }
}

// ---------------------------------------------------------------------------------
// Containers
// ---------------------------------------------------------------------------------

/// Finds subcommand `args[1]` of `container` among `subs` (name, arity) and checks its
/// arity as Redis's command table would.
fn subcommand(
    args: &[Bytes],
    container: &str,
    subs: &[(&'static str, i32)],
) -> CmdResult<&'static str> {
    let sub = &args[1];
    let Some(&(name, arity)) = subs.iter().find(|(n, _)| eq_ci(sub, n)) else {
        return fail(format!(
            "ERR unknown subcommand '{}'. Try {container} HELP.",
            text(sub)
        ));
    };
    let ok = if arity >= 0 {
        args.len() == arity as usize
    } else {
        args.len() >= arity.unsigned_abs() as usize
    };
    if !ok {
        return fail(errors::wrong_args(&format!(
            "{}|{name}",
            container.to_ascii_lowercase()
        )));
    }
    Ok(name)
}

/// Redis's `addReplySubcommandSyntaxError`.
fn sub_syntax<T>(args: &[Bytes], container: &str) -> CmdResult<T> {
    fail(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {container} HELP.",
        text(&args[1])
    ))
}

/// A HELP reply: Redis's header, `lines`, and its footer.
fn help(container: &str, lines: &[&str]) -> Reply {
    let mut out = Vec::with_capacity(lines.len() + 3);
    out.push(Reply::Simple(format!(
        "{container} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
    )));
    out.extend(lines.iter().map(|l| Reply::Simple((*l).to_owned())));
    out.push(Reply::Simple("HELP".to_owned()));
    out.push(Reply::Simple("    Print this help.".to_owned()));
    Reply::Array(out)
}

const XGROUP_SUBS: &[(&str, i32)] = &[
    ("create", -5),
    ("setid", -5),
    ("destroy", 4),
    ("createconsumer", 5),
    ("delconsumer", 5),
    ("help", 2),
];

const XGROUP_HELP: &[&str] = &[
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
];

/// XGROUP CREATE | SETID | DESTROY | CREATECONSUMER | DELCONSUMER | HELP, checked in
/// Redis's order: options, the key, the group, then the subcommand's own arity.
fn xgroup(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let sub = subcommand(args, "XGROUP", XGROUP_SUBS)?;
    if sub == "help" {
        return Ok(help("XGROUP", XGROUP_HELP));
    }
    let (key, name) = (&args[2], &args[3]);
    let mut mkstream = false;
    let mut entries_read = INVALID_READ;
    let mut i = 5;
    while i < args.len() {
        if sub == "create" && eq_ci(&args[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if (sub == "create" || sub == "setid")
            && eq_ci(&args[i], "entriesread")
            && i + 1 < args.len()
        {
            entries_read = int_arg(&args[i + 1])?;
            if entries_read < 0 && entries_read != INVALID_READ {
                return fail("ERR value for ENTRIESREAD must be positive or -1");
            }
            i += 2;
        } else {
            return sub_syntax(args, "XGROUP");
        }
    }
    let s = Stream::load(ex, key)?;
    let Some(s) = s.or_else(|| mkstream.then(|| Stream::create(ex))) else {
        return fail("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.");
    };
    let group = Group::load(ex, &s, name)?;
    if group.is_none() && matches!(sub, "setid" | "createconsumer" | "delconsumer") {
        return Err(no_group(key, name));
    }
    match (sub, group) {
        ("create", group) if args.len() <= 8 => {
            let id = if &args[4][..] == b"$" {
                s.state.last_id
            } else {
                parse_exact_id(&args[4])?
            };
            if group.is_some() {
                return fail("BUSYGROUP Consumer Group name already exists");
            }
            if s.old.is_none() {
                s.save(ex, key)?;
            }
            Group::new(&s, name, id, entries_read).save(ex)?;
            ex.notify('t', "xgroup-create", key);
            Ok(Reply::Ok)
        }
        ("setid", Some(mut g)) if args.len() == 5 || args.len() == 7 => {
            g.rec.last_id = if &args[4][..] == b"$" {
                s.state.last_id
            } else {
                parse_id(&args[4], 0)?
            };
            g.rec.entries_read = entries_read;
            g.save(ex)?;
            ex.notify('t', "xgroup-setid", key);
            Ok(Reply::Ok)
        }
        ("destroy", None) => Ok(Reply::Int(0)),
        ("destroy", Some(g)) => {
            ex.delete(group_key(s.version, name))?;
            for tag in [PENDING, CONSUMER, CONSUMER_PENDING] {
                delete_prefix(ex, &group_prefix(tag, g.version, name, b""))?;
            }
            ex.notify('t', "xgroup-destroy", key);
            // Wakes the XREADGROUPs blocked on the key, to fail with NOGROUP.
            ex.touch(key);
            Ok(Reply::Int(1))
        }
        ("createconsumer", Some(mut g)) => {
            let created = g.create_consumer(ex, key, &args[4])?;
            if created {
                g.save(ex)?;
            }
            Ok(Reply::Int(i64::from(created)))
        }
        ("delconsumer", Some(mut g)) => {
            let consumer = &args[4];
            let Some(c) = g.consumer(ex, consumer)? else {
                return Ok(Reply::Int(0));
            };
            let owned = g.owned(ex, consumer, StreamId::MIN, usize::MAX)?;
            if owned.len() as u64 != c.pending {
                return Err(EngineError::corrupt(
                    "stream consumer",
                    consumer,
                    "pending count out of step with its index",
                )
                .into());
            }
            for id in &owned {
                ex.delete(pending_key(g.version, name, *id))?;
                ex.delete(owned_key(g.version, name, consumer, *id))?;
            }
            g.rec.pending = g.rec.pending.saturating_sub(c.pending);
            g.rec.consumers = g.rec.consumers.saturating_sub(1);
            g.set_consumer(consumer, None);
            g.save(ex)?;
            ex.notify('t', "xgroup-delconsumer", key);
            Ok(Reply::Int(c.pending as i64))
        }
        _ => sub_syntax(args, "XGROUP"),
    }
}

const XINFO_SUBS: &[(&str, i32)] = &[("consumers", 4), ("groups", 3), ("stream", -3), ("help", 2)];

const XINFO_HELP: &[&str] = &[
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
];

/// XINFO STREAM | GROUPS | CONSUMERS | HELP.
fn xinfo(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let sub = subcommand(args, "XINFO", XINFO_SUBS)?;
    if sub == "help" {
        return Ok(help("XINFO", XINFO_HELP));
    }
    let key = &args[2];
    let Some(s) = Stream::load(ex, key)? else {
        return fail(errors::NO_SUCH_KEY);
    };
    match sub {
        "consumers" => {
            let Some(g) = Group::load(ex, &s, &args[3])? else {
                return Err(no_group(key, &args[3]));
            };
            let t = now(ex);
            let out = g
                .all_consumers(ex)?
                .into_iter()
                .map(|(name, c)| {
                    let inactive = if c.active == -1 {
                        -1
                    } else {
                        since(t, c.active)
                    };
                    Reply::Map(vec![
                        (Reply::bulk("name"), Reply::Bulk(name)),
                        (Reply::bulk("pending"), Reply::Int(c.pending as i64)),
                        (Reply::bulk("idle"), Reply::Int(since(t, c.seen).max(0))),
                        (Reply::bulk("inactive"), Reply::Int(inactive)),
                    ])
                })
                .collect();
            Ok(Reply::Array(out))
        }
        "groups" => {
            let shape = Shape::of(ex, &s)?;
            let out = all_groups(ex, &s)?
                .into_iter()
                .map(|g| {
                    Reply::Map(vec![
                        (Reply::bulk("name"), Reply::Bulk(g.name.clone())),
                        (Reply::bulk("consumers"), Reply::Int(g.rec.consumers as i64)),
                        (Reply::bulk("pending"), Reply::Int(g.rec.pending as i64)),
                        (Reply::bulk("last-delivered-id"), g.rec.last_id.reply()),
                        (Reply::bulk("entries-read"), entries_read_reply(&g.rec)),
                        (
                            Reply::bulk("lag"),
                            shape.lag(&g.rec).map_or(Reply::Nil, Reply::Int),
                        ),
                    ])
                })
                .collect();
            Ok(Reply::Array(out))
        }
        _ => xinfo_stream(ex, args, &s),
    }
}

/// Every group of stream `s`, in name order.
fn all_groups(ex: &Exec, s: &Stream) -> CmdResult<Vec<Group>> {
    let mut out = Vec::new();
    let plen = keys::SUB_PREFIX_LEN + 1;
    for item in ex.scan(groups_range(s.version), Direction::Forward) {
        let (k, v) = item?;
        let name = k.slice(plen.min(k.len())..);
        out.push(Group {
            version: s.version,
            rec: GroupRec::decode(&v, &name)?,
            name,
            consumers: BTreeMap::new(),
        });
    }
    Ok(out)
}

/// XINFO STREAM key [FULL [COUNT n]].
fn xinfo_stream(ex: &mut Exec, args: &[Bytes], s: &Stream) -> CmdResult<Reply> {
    let opts = &args[3..];
    let full = !opts.is_empty();
    let mut count: i64 = 10;
    if full {
        if (opts.len() != 1 && opts.len() != 3) || !eq_ci(&opts[0], "full") {
            return sub_syntax(args, "XINFO");
        }
        if opts.len() == 3 {
            if !eq_ci(&opts[1], "count") {
                return sub_syntax(args, "XINFO");
            }
            count = int_arg(&opts[2])?;
            if count < 0 {
                count = 10;
            }
        }
    }
    // 0 means everything, as in Redis.
    let limit = if count == 0 {
        usize::MAX
    } else {
        count as usize
    };
    let nodes = s.len.div_ceil(NODE_ENTRIES);
    let mut m = vec![
        (Reply::bulk("length"), Reply::Int(s.len as i64)),
        (Reply::bulk("radix-tree-keys"), Reply::Int(nodes as i64)),
        (
            Reply::bulk("radix-tree-nodes"),
            Reply::Int(nodes as i64 + 1),
        ),
        (Reply::bulk("last-generated-id"), s.state.last_id.reply()),
        (
            Reply::bulk("max-deleted-entry-id"),
            s.state.max_deleted.reply(),
        ),
        (
            Reply::bulk("entries-added"),
            Reply::Int(s.state.entries_added as i64),
        ),
    ];
    let shape = Shape::of(ex, s)?;
    m.push((
        Reply::bulk("recorded-first-entry-id"),
        shape.first_id.reply(),
    ));
    let groups = all_groups(ex, s)?;
    if !full {
        m.push((Reply::bulk("groups"), Reply::Int(groups.len() as i64)));
        for (name, dir) in [
            ("first-entry", Direction::Forward),
            ("last-entry", Direction::Reverse),
        ] {
            let edge = s.range(ex, StreamId::MIN, StreamId::MAX, dir, 1)?;
            let r = match edge.first() {
                Some((id, fields)) => entry_reply(*id, fields)?,
                None => Reply::Nil,
            };
            m.push((Reply::bulk(name), r));
        }
        return Ok(Reply::Map(m));
    }
    let entries = s.range(ex, StreamId::MIN, StreamId::MAX, Direction::Forward, limit)?;
    m.push((Reply::bulk("entries"), entries_reply(&entries)?));
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let pel = g
            .pel(ex, StreamId::MIN, StreamId::MAX, limit)?
            .into_iter()
            .map(|(id, n)| {
                Reply::Array(vec![
                    id.reply(),
                    Reply::Bulk(n.consumer),
                    Reply::Int(n.time),
                    Reply::Int(n.count as i64),
                ])
            })
            .collect();
        let mut consumers = Vec::new();
        for (name, c) in g.all_consumers(ex)? {
            let mut pending = Vec::new();
            for id in g.owned(ex, &name, StreamId::MIN, limit)? {
                let n = g.nack(ex, id)?.ok_or_else(|| {
                    EngineError::corrupt("stream consumer", &name, "indexes an entry not pending")
                })?;
                pending.push(Reply::Array(vec![
                    id.reply(),
                    Reply::Int(n.time),
                    Reply::Int(n.count as i64),
                ]));
            }
            consumers.push(Reply::Map(vec![
                (Reply::bulk("name"), Reply::Bulk(name)),
                (Reply::bulk("seen-time"), Reply::Int(c.seen)),
                (Reply::bulk("active-time"), Reply::Int(c.active)),
                (Reply::bulk("pel-count"), Reply::Int(c.pending as i64)),
                (Reply::bulk("pending"), Reply::Array(pending)),
            ]));
        }
        out.push(Reply::Map(vec![
            (Reply::bulk("name"), Reply::Bulk(g.name.clone())),
            (Reply::bulk("last-delivered-id"), g.rec.last_id.reply()),
            (Reply::bulk("entries-read"), entries_read_reply(&g.rec)),
            (
                Reply::bulk("lag"),
                shape.lag(&g.rec).map_or(Reply::Nil, Reply::Int),
            ),
            (Reply::bulk("pel-count"), Reply::Int(g.rec.pending as i64)),
            (Reply::bulk("pending"), Reply::Array(pel)),
            (Reply::bulk("consumers"), Reply::Array(consumers)),
        ]));
    }
    m.push((Reply::bulk("groups"), Reply::Array(out)));
    Ok(Reply::Map(m))
}

// ---------------------------------------------------------------------------------
// XREADGROUP
// ---------------------------------------------------------------------------------

/// What XREADGROUP asks of one stream.
#[derive(Debug, Clone, Copy)]
enum Ask {
    /// `>`: entries never delivered to the group.
    New,
    /// The consumer's pending entries after this ID.
    History(StreamId),
}

fn xreadgroup(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let r = parse_read(args, true)?;
    let Some((group, consumer)) = r.group.clone() else {
        return fail("ERR Missing GROUP option for XREADGROUP");
    };
    let keys = &args[r.keys_at..r.keys_at + r.streams];
    let ids = &args[r.keys_at + r.streams..];
    // Every key, group and ID is checked before anything is read, as Redis does.
    let mut asks = Vec::with_capacity(keys.len());
    for (key, id) in keys.iter().zip(ids) {
        let found = match Stream::load(ex, key)? {
            Some(s) => Group::load(ex, &s, &group)?.is_some(),
            None => false,
        };
        if !found {
            return Err(no_key_or_group(
                key,
                &group,
                " in XREADGROUP with GROUP option",
            ));
        }
        asks.push(match &id[..] {
            b"$" => return fail("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set."),
            b">" => Ask::New,
            // Redis marks `>` with the largest ID, so that ID given explicitly reads
            // as `>` too.
            _ => match parse_exact_id(id)? {
                StreamId::MAX => Ask::New,
                id => Ask::History(id),
            },
        });
    }
    let mut out = Vec::new();
    for (key, ask) in keys.iter().zip(asks) {
        // Loaded again for each: a key named twice sees what the first read changed.
        let Some(s) = Stream::load(ex, key)? else {
            continue;
        };
        let Some(mut g) = Group::load(ex, &s, &group)? else {
            continue;
        };
        g.seen(ex, key, &consumer)?;
        let served = match ask {
            Ask::New => read_new(ex, &s, &mut g, &consumer, r.count, r.noack)?,
            Ask::History(after) => Some(read_history(ex, &s, &mut g, &consumer, after, r.count)?),
        };
        g.save(ex)?;
        if let Some(entries) = served {
            out.push((Reply::Bulk(key.clone()), entries));
        }
    }
    if out.is_empty() {
        return Ok(Reply::NilArray);
    }
    Ok(Reply::PairMap(out))
}

/// Delivers up to `count` entries after the group's last delivered one to `consumer`;
/// None when there are none.
fn read_new(
    ex: &mut Exec,
    s: &Stream,
    g: &mut Group,
    consumer: &Bytes,
    count: usize,
    noack: bool,
) -> CmdResult<Option<Reply>> {
    let newer = match s.last_entry_id(ex)? {
        Some(last) => last > g.rec.last_id,
        None => false,
    };
    let Some(start) = g.rec.last_id.next().filter(|_| newer) else {
        return Ok(None);
    };
    let entries = s.range(ex, start, StreamId::MAX, Direction::Forward, count)?;
    let shape = Shape::of(ex, s)?;
    let t = now(ex);
    for (id, _) in &entries {
        shape.deliver(&mut g.rec, *id);
        if !noack {
            let old = g.nack(ex, *id)?;
            let fresh = Nack {
                time: t,
                count: 1,
                consumer: consumer.clone(),
            };
            g.assign(ex, *id, old.as_ref(), fresh)?;
            g.active(ex, consumer)?;
        }
    }
    Ok(Some(entries_reply(&entries)?))
}

/// Up to `count` of `consumer`'s pending entries after `after`, each delivered again; an
/// entry deleted from the stream since shows as its ID and a null.
fn read_history(
    ex: &mut Exec,
    s: &Stream,
    g: &mut Group,
    consumer: &Bytes,
    after: StreamId,
    count: usize,
) -> CmdResult<Reply> {
    let Some(from) = after.next() else {
        return Ok(Reply::Array(Vec::new()));
    };
    let t = now(ex);
    let mut out = Vec::new();
    for id in g.owned(ex, consumer, from, count)? {
        let Some(fields) = s.entry(ex, id)? else {
            out.push(Reply::Array(vec![id.reply(), Reply::NilArray]));
            continue;
        };
        out.push(entry_reply(id, &fields)?);
        let Some(mut n) = g.nack(ex, id)? else {
            return Err(EngineError::corrupt(
                "stream consumer",
                consumer,
                "indexes an entry not pending",
            )
            .into());
        };
        n.time = t;
        n.count = n.count.saturating_add(1);
        ex.put(pending_key(g.version, &g.name, id), n.encode())?;
    }
    Ok(Reply::Array(out))
}

// ---------------------------------------------------------------------------------
// XACK, XPENDING
// ---------------------------------------------------------------------------------

fn xack(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let key = &args[1];
    let Some(s) = Stream::load(ex, key)? else {
        return Ok(Reply::Int(0));
    };
    let Some(mut g) = Group::load(ex, &s, &args[2])? else {
        return Ok(Reply::Int(0));
    };
    // All or nothing: every ID is checked before anything is acknowledged.
    let ids = args[3..]
        .iter()
        .map(|a| parse_exact_id(a))
        .collect::<CmdResult<Vec<_>>>()?;
    let mut acked = 0;
    for id in ids {
        if let Some(n) = g.nack(ex, id)? {
            g.release(ex, id, &n)?;
            acked += 1;
        }
    }
    if acked > 0 {
        g.save(ex)?;
    }
    Ok(Reply::Int(acked))
}

fn xpending(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let (key, group) = (&args[1], &args[2]);
    let argc = args.len();
    if argc != 3 && !(6..=9).contains(&argc) {
        return fail(errors::SYNTAX);
    }
    // The range is parsed before the key is looked at, so that a syntax error comes
    // first, as in Redis.
    let mut range = None;
    if argc >= 6 {
        let mut at = 3;
        let mut min_idle = 0;
        if eq_ci(&args[3], "idle") {
            min_idle = int_arg(&args[4])?;
            if argc < 8 {
                return fail(errors::SYNTAX);
            }
            at += 2;
        }
        let count = int_arg(&args[at + 2])?.max(0);
        let start = parse_range_end(&args[at], true)?;
        let end = parse_range_end(&args[at + 1], false)?;
        range = Some((min_idle, start, end, count, args.get(at + 3)));
    }
    let Some(s) = Stream::load(ex, key)? else {
        return Err(no_key_or_group(key, group, ""));
    };
    let Some(mut g) = Group::load(ex, &s, group)? else {
        return Err(no_key_or_group(key, group, ""));
    };
    let Some((min_idle, start, end, count, consumer)) = range else {
        return pending_summary(ex, &g);
    };
    let (Some(start), Some(end)) = (start, end) else {
        return Ok(Reply::Array(Vec::new()));
    };
    let t = now(ex);
    let mut out = Vec::new();
    let mut want = count as usize;
    if let Some(name) = consumer {
        if g.consumer(ex, name)?.is_none() {
            return Ok(Reply::Array(Vec::new()));
        }
        // The consumer's index in chunks: an IDLE filter may skip any number.
        let mut from = start;
        while want > 0 && from <= end {
            let ids = g.owned(ex, name, from, PEL_CHUNK)?;
            let Some(&last) = ids.last() else { break };
            for id in ids {
                if id > end || want == 0 {
                    break;
                }
                let n = g.nack(ex, id)?.ok_or_else(|| {
                    EngineError::corrupt("stream consumer", name, "indexes an entry not pending")
                })?;
                if pending_row(&mut out, id, n, t, min_idle) {
                    want -= 1;
                }
            }
            let Some(next) = last.next() else { break };
            from = next;
        }
    } else {
        let mut from = start;
        while want > 0 && from <= end {
            let chunk = g.pel(ex, from, end, PEL_CHUNK)?;
            let Some(&(last, _)) = chunk.last() else {
                break;
            };
            for (id, n) in chunk {
                if want == 0 {
                    break;
                }
                if pending_row(&mut out, id, n, t, min_idle) {
                    want -= 1;
                }
            }
            let Some(next) = last.next() else { break };
            from = next;
        }
    }
    Ok(Reply::Array(out))
}

/// Adds XPENDING's row for pending entry `id` unless it was idle less than `min_idle`
/// (0: no filter); true if it did.
fn pending_row(out: &mut Vec<Reply>, id: StreamId, n: Nack, now: i64, min_idle: i64) -> bool {
    let idle = since(now, n.time);
    if min_idle != 0 && idle < min_idle {
        return false;
    }
    out.push(Reply::Array(vec![
        id.reply(),
        Reply::Bulk(n.consumer),
        Reply::Int(idle.max(0)),
        Reply::Int(n.count as i64),
    ]));
    true
}

/// XPENDING key group: the PEL's size, first and last IDs, and each consumer with
/// pending entries.
fn pending_summary(ex: &Exec, g: &Group) -> CmdResult<Reply> {
    if g.rec.pending == 0 {
        return Ok(Reply::Array(vec![
            Reply::Int(0),
            Reply::Nil,
            Reply::Nil,
            Reply::NilArray,
        ]));
    }
    let prefix = group_prefix(PENDING, g.version, &g.name, b"");
    let edge = |dir| -> CmdResult<Reply> {
        match ex.scan(ScanRange::prefix(&prefix), dir).next() {
            Some(item) => Ok(id_after(&item?.0, prefix.len())?.reply()),
            None => {
                Err(
                    EngineError::corrupt("stream group", &g.name, "pending count without entries")
                        .into(),
                )
            }
        }
    };
    let first = edge(Direction::Forward)?;
    let last = edge(Direction::Reverse)?;
    let consumers = g
        .all_consumers(ex)?
        .into_iter()
        .filter(|(_, c)| c.pending > 0)
        .map(|(name, c)| Reply::Array(vec![Reply::Bulk(name), Reply::bulk(c.pending.to_string())]))
        .collect();
    Ok(Reply::Array(vec![
        Reply::Int(g.rec.pending as i64),
        first,
        last,
        Reply::Array(consumers),
    ]))
}

// ---------------------------------------------------------------------------------
// XCLAIM, XAUTOCLAIM
// ---------------------------------------------------------------------------------

/// An integer option of XCLAIM/XAUTOCLAIM with its own error text.
fn int_or(b: &[u8], err: &str) -> CmdResult<i64> {
    match parse_i64(b) {
        Some(n) => Ok(n),
        None => fail(format!("ERR {err}")),
    }
}

fn xclaim(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let (key, group, consumer) = (&args[1], &args[2], &args[3]);
    let s = Stream::load(ex, key)?;
    let Some((s, mut g)) = (match s {
        Some(s) => Group::load(ex, &s, group)?.map(|g| (s, g)),
        None => None,
    }) else {
        return Err(no_key_or_group(key, group, ""));
    };
    let min_idle = int_or(&args[4], "Invalid min-idle-time argument for XCLAIM")?.max(0);
    // IDs up to the first argument that is not one; options after.
    let mut ids = Vec::new();
    let mut j = 5;
    while j < args.len() {
        match parse_exact_id(&args[j]) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let t = now(ex);
    let (mut force, mut justid) = (false, false);
    let mut retry: i64 = -1;
    let mut delivery: Option<i64> = None;
    let mut last_id = StreamId::MIN;
    while j < args.len() {
        let more = j + 1 < args.len();
        let opt = &args[j];
        if eq_ci(opt, "force") {
            force = true;
        } else if eq_ci(opt, "justid") {
            justid = true;
        } else if eq_ci(opt, "idle") && more {
            j += 1;
            let idle = int_or(&args[j], "Invalid IDLE option argument for XCLAIM")?;
            // An overflow is as bogus as a time ahead: both become now below.
            delivery = Some(t.checked_sub(idle).unwrap_or(-1));
        } else if eq_ci(opt, "time") && more {
            j += 1;
            delivery = Some(int_or(&args[j], "Invalid TIME option argument for XCLAIM")?);
        } else if eq_ci(opt, "retrycount") && more {
            j += 1;
            retry = int_or(&args[j], "Invalid RETRYCOUNT option argument for XCLAIM")?;
        } else if eq_ci(opt, "lastid") && more {
            j += 1;
            last_id = parse_exact_id(&args[j])?;
        } else {
            return fail(format!("ERR Unrecognized XCLAIM option '{}'", text(opt)));
        }
        j += 1;
    }
    if last_id > g.rec.last_id {
        g.rec.last_id = last_id;
    }
    // A time ahead of now or before 0 is taken for a client's clock error, not refused.
    let delivery = delivery.filter(|d| (0..=t).contains(d)).unwrap_or(t);
    g.seen(ex, key, consumer)?;
    let mut out = Vec::new();
    for id in ids {
        let old = g.nack(ex, id)?;
        let Some(fields) = s.entry(ex, id)? else {
            // Gone from the stream: it cannot be claimed, and leaves the PEL.
            if let Some(n) = old {
                g.release(ex, id, &n)?;
            }
            continue;
        };
        let base = match &old {
            Some(n) => {
                if min_idle > 0 && since(t, n.time) < min_idle {
                    continue;
                }
                n.count
            }
            // FORCE makes a pending entry of one that was not, as if delivered once.
            None if force => 1,
            None => continue,
        };
        let count = if retry >= 0 {
            retry as u64
        } else if justid {
            base
        } else {
            base.saturating_add(1)
        };
        let claimed = Nack {
            time: delivery,
            count,
            consumer: consumer.clone(),
        };
        g.assign(ex, id, old.as_ref(), claimed)?;
        out.push(if justid {
            id.reply()
        } else {
            entry_reply(id, &fields)?
        });
        g.active(ex, consumer)?;
    }
    g.save(ex)?;
    Ok(Reply::Array(out))
}

fn xautoclaim(ex: &mut Exec, args: &[Bytes]) -> CmdResult<Reply> {
    let (key, group, consumer) = (&args[1], &args[2], &args[3]);
    let min_idle = int_or(&args[4], "Invalid min-idle-time argument for XAUTOCLAIM")?.max(0);
    let start = parse_range_end(&args[5], true)?;
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < args.len() {
        if eq_ci(&args[j], "count") && j + 1 < args.len() {
            count = match parse_i64(&args[j + 1]) {
                Some(n) if (1..=MAX_AUTOCLAIM_COUNT).contains(&n) => n,
                _ => return fail("ERR COUNT must be > 0"),
            };
            j += 1;
        } else if eq_ci(&args[j], "justid") {
            justid = true;
        } else {
            return fail(errors::SYNTAX);
        }
        j += 1;
    }
    let s = Stream::load(ex, key)?;
    let Some((s, mut g)) = (match s {
        Some(s) => Group::load(ex, &s, group)?.map(|g| (s, g)),
        None => None,
    }) else {
        return Err(no_key_or_group(key, group, ""));
    };
    g.seen(ex, key, consumer)?;
    let t = now(ex);
    let mut attempts = count * ATTEMPTS_FACTOR;
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut from = start;
    let mut examined: Option<StreamId> = None;
    'scan: while let Some(lo) = from {
        let chunk = g.pel(ex, lo, StreamId::MAX, PEL_CHUNK)?;
        if chunk.is_empty() {
            break;
        }
        for (id, n) in chunk {
            if attempts == 0 || count == 0 {
                break 'scan;
            }
            attempts -= 1;
            examined = Some(id);
            from = id.next();
            let Some(fields) = s.entry(ex, id)? else {
                g.release(ex, id, &n)?;
                deleted.push(id.reply());
                count -= 1;
                continue;
            };
            if min_idle > 0 && since(t, n.time) < min_idle {
                continue;
            }
            let mine = Nack {
                time: t,
                count: if justid {
                    n.count
                } else {
                    n.count.saturating_add(1)
                },
                consumer: consumer.clone(),
            };
            g.assign(ex, id, Some(&n), mine)?;
            claimed.push(if justid {
                id.reply()
            } else {
                entry_reply(id, &fields)?
            });
            count -= 1;
            g.active(ex, consumer)?;
        }
    }
    // The cursor: the first pending entry after the last one looked at, 0-0 at the end.
    let after = match examined {
        Some(id) => id.next(),
        None => start,
    };
    let cursor = match after {
        Some(lo) => g.pel(ex, lo, StreamId::MAX, 1)?.first().map(|(id, _)| *id),
        None => None,
    };
    g.save(ex)?;
    Ok(Reply::Array(vec![
        cursor.unwrap_or(StreamId::MIN).reply(),
        Reply::Array(claimed),
        Reply::Array(deleted),
    ]))
}
