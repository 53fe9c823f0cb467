//! Blocking pops (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP)
//! and blocking stream reads (XREAD and XREADGROUP with BLOCK).
//!
//! The engine's handlers make a non-blocking attempt and answer nil when there is
//! nothing to pop. The server parks such a client: it queues it on each of its keys
//! (FIFO per key) in the [`BlockRegistry`], and the apply hook wakes the FIRST waiter of
//! every key an applied entry touched. The woken client retries the command through the
//! coordinator; if it loses the race it waits again, keeping its place at the front.
//! Whoever leaves a queue (served, timed out, disconnected, unblocked) wakes the next
//! waiter, so data pushed for several waiters at once reaches all of them in order.
//!
//! A new blocking command does not take data that a waiter queued before it has been
//! woken for: Redis serves blocked clients right after the write that feeds them, so a
//! pipelined `LPUSH l x` + `BLPOP l 0` leaves `x` to the earlier waiter. Here the woken
//! waiter's retry is a round trip of its own, so the newcomer's first attempt waits,
//! briefly and bounded, until no waiter ahead of it on its keys has a wake-up pending
//! or a retry under way (see [`BlockRegistry::ahead_is_pending`]).
//!
//! XREAD's `$` means "after the stream's last entry when the command arrived"; a retry
//! must not read it afresh, or it would never see the entry that woke it. The first
//! attempt therefore reads each such stream's last entry in the same log entry as the
//! read, and the retries ask for entries after it (see [`resolve_last_ids`]).
//!
//! A client waiting here still reads its socket, so a disconnect removes it at once
//! (a vanished client never swallows an element). Inside MULTI these commands are queued
//! like any other and run once, non-blocking, inside the `Op::Multi`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use keel_engine::command::CommandSpec;
use keel_engine::types::stream::entries as stream;
use keel_engine::types::{list, zset};
use keel_engine::{Applied, Op, Reply};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::client::client_flags;
use super::closing::Closing;
use super::commands::Cmd;
use super::conn::{Flow, Session};

/// One parked client as its key queues hold it.
#[derive(Debug, Clone)]
struct Waiter {
    client: u64,
    state: Arc<WaitState>,
    /// Also waits for the key to go (XREADGROUP, which a deleted stream or group ends
    /// with an error): Redis's "blocked on nokey", counted by INFO.
    nokey: bool,
    /// A stream read (XREAD, XREADGROUP): woken by writes to its keys wherever it is
    /// in the queue, as new entries may serve every reader (see `on_applied`).
    stream: bool,
    /// XREADGROUP's group: of its waiters only the first is woken, as a pop's.
    group: Option<Bytes>,
}

/// What a blocked command waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitKind {
    /// A pop (BLPOP, BZPOPMIN, BLMOVE, …): data to take.
    Pop,
    /// XREAD: entries after an ID.
    Read,
    /// XREADGROUP: entries new to a group, or the stream or group to go.
    GroupRead,
}

impl WaitKind {
    fn of(name: &[u8]) -> WaitKind {
        if name.eq_ignore_ascii_case(b"xreadgroup") {
            WaitKind::GroupRead
        } else if name.eq_ignore_ascii_case(b"xread") {
            WaitKind::Read
        } else {
            WaitKind::Pop
        }
    }
}

/// What the registry and a blocked client's connection share.
#[derive(Debug, Default)]
struct WaitState {
    wake: Notify,
    /// CLIENT UNBLOCK's switch: one of the [`Unblock`] values as a byte, 0 while nobody
    /// has unblocked the client.
    unblocked: AtomicU8,
    /// Woken and not yet retrying: data may be there for this client.
    pending: AtomicBool,
    /// A retry is under way.
    retrying: AtomicBool,
}

impl WaitState {
    fn wake(&self) {
        self.pending.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn busy(&self) -> bool {
        self.pending.load(Ordering::Acquire) || self.retrying.load(Ordering::Acquire)
    }
}

/// Longest a new blocking command waits for woken waiters ahead of it before its first
/// attempt. Their retries take a round of the write funnel, well under this; the bound
/// only keeps a stalled waiter from holding the newcomer up.
const YIELD_TO_AHEAD: Duration = Duration::from_millis(200);

/// How CLIENT UNBLOCK ends a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unblock {
    /// As if the timeout ran out: the command's "nothing" reply.
    Timeout = 1,
    /// With Redis's `-UNBLOCKED` error.
    Error = 2,
}

/// The error a client unblocked with `CLIENT UNBLOCK id ERROR` gets (Redis's text).
const UNBLOCKED_ERROR: &str = "UNBLOCKED client unblocked via CLIENT UNBLOCK";

/// Per (db, key) FIFO of blocked clients, plus each blocked client's unblock switch.
#[derive(Debug, Default)]
pub struct BlockRegistry {
    queues: Mutex<HashMap<(u8, Bytes), VecDeque<Waiter>>>,
    /// `queues.len()`, stored under the lock by every change, so that the hook skips
    /// the lock while nobody waits (see [`BlockRegistry::on_applied`]).
    waited_on: AtomicUsize,
    by_client: Mutex<HashMap<u64, Arc<WaitState>>>,
    /// Told whenever a waiter finishes a retry or leaves: what a newcomer yielding to
    /// the waiters ahead of it waits for.
    settled: Notify,
}

impl BlockRegistry {
    /// Wakes the first waiter of each key `applied` touched.
    pub fn on_applied(&self, _op: &Op, applied: &Applied) {
        if applied.touched.is_empty() {
            return;
        }
        // As in the WATCH hook: a write whose hook reads 0 here comes before the
        // registration, and the client's retry after registering is applied after it.
        if self.waited_on.load(Ordering::SeqCst) == 0 {
            return;
        }
        let queues = self.queues.lock();
        for (db, key) in &applied.touched {
            let Some(q) = queues.get(&(*db, Bytes::copy_from_slice(key))) else {
                continue;
            };
            // A pop takes what it finds, so only the first popper is woken (the next
            // when it leaves); so is the first reader of each group, which delivers an
            // entry to one consumer. An XREAD takes nothing from the others and is
            // always woken, and a popper ahead that keeps waiting (its key now a stream)
            // must not hold the stream readers up.
            let mut groups: Vec<&Bytes> = Vec::new();
            let mut popper = false;
            for w in q {
                let wake = match (&w.group, w.stream) {
                    (Some(g), _) if !groups.contains(&g) => {
                        groups.push(g);
                        true
                    }
                    (Some(_), _) => false,
                    (None, true) => true,
                    (None, false) => !std::mem::replace(&mut popper, true),
                };
                if wake {
                    w.state.wake();
                }
            }
        }
    }

    /// Ends client `client`'s wait as `how` says (CLIENT UNBLOCK); false if it is not
    /// blocked.
    pub fn unblock(&self, client: u64, how: Unblock) -> bool {
        match self.by_client.lock().get(&client) {
            Some(state) => {
                state.unblocked.store(how as u8, Ordering::Release);
                state.wake.notify_one();
                true
            }
            None => false,
        }
    }

    /// Clients blocked now.
    pub fn blocked_clients(&self) -> usize {
        self.by_client.lock().len()
    }

    /// Keys clients wait on, and how many of them a client also waits on to go (INFO's
    /// `total_blocking_keys` and `total_blocking_keys_on_nokey`).
    pub fn blocking_keys(&self) -> (usize, usize) {
        let queues = self.queues.lock();
        let nokey = queues
            .values()
            .filter(|q| q.iter().any(|w| w.nokey))
            .count();
        (queues.len(), nokey)
    }

    fn register(
        &self,
        client: u64,
        db: u8,
        keys: &[Bytes],
        kind: WaitKind,
        group: Option<Bytes>,
    ) -> Arc<WaitState> {
        let state = Arc::new(WaitState::default());
        let mut queues = self.queues.lock();
        for k in keys {
            let q = queues.entry((db, k.clone())).or_default();
            if !q.iter().any(|w| w.client == client) {
                q.push_back(Waiter {
                    client,
                    state: Arc::clone(&state),
                    nokey: kind == WaitKind::GroupRead,
                    stream: kind != WaitKind::Pop,
                    group: group.clone(),
                });
            }
        }
        self.waited_on.store(queues.len(), Ordering::SeqCst);
        drop(queues);
        self.by_client.lock().insert(client, Arc::clone(&state));
        state
    }

    /// Whether a waiter queued before `client` on one of `keys` has been woken and has
    /// not finished its retry.
    fn ahead_is_pending(&self, client: u64, db: u8, keys: &[Bytes]) -> bool {
        let queues = self.queues.lock();
        keys.iter().any(|k| {
            queues.get(&(db, k.clone())).is_some_and(|q| {
                q.iter()
                    .take_while(|w| w.client != client)
                    .any(|w| w.state.busy())
            })
        })
    }

    /// Waits, up to [`YIELD_TO_AHEAD`], until no waiter ahead of `client` on `keys`
    /// is woken or retrying.
    async fn yield_to_ahead(&self, client: u64, db: u8, keys: &[Bytes]) {
        let until = Instant::now() + YIELD_TO_AHEAD;
        loop {
            let settled = self.settled.notified();
            tokio::pin!(settled);
            // Registered before the check, so a change right after it is not missed.
            settled.as_mut().enable();
            if !self.ahead_is_pending(client, db, keys) {
                return;
            }
            if tokio::time::timeout_at(until, settled).await.is_err() {
                return;
            }
        }
    }

    /// Leaves every queue and wakes the next waiter of each: it may find data this
    /// client was woken for and did not take, or that is left after its pop.
    fn unregister(&self, client: u64, db: u8, keys: &[Bytes]) {
        self.by_client.lock().remove(&client);
        let mut queues = self.queues.lock();
        for k in keys {
            let id = (db, k.clone());
            let Some(q) = queues.get_mut(&id) else {
                continue;
            };
            q.retain(|w| w.client != client);
            match q.front() {
                Some(next) => next.state.wake(),
                None => {
                    queues.remove(&id);
                }
            }
        }
        self.waited_on.store(queues.len(), Ordering::SeqCst);
        drop(queues);
        self.settled.notify_waiters();
    }
}

/// A blocking command that found nothing, waiting to be carried out by the connection.
#[derive(Debug)]
pub struct Blocked {
    spec: &'static CommandSpec,
    args: Vec<Bytes>,
    db: u8,
    keys: Vec<Bytes>,
    /// None waits forever.
    deadline: Option<Instant>,
    /// The reply on timeout (the engine's "nothing").
    nothing: Reply,
    denyoom: bool,
    state: Arc<WaitState>,
    /// The command's commandstats slot and time so far, counted when the wait ends
    /// ([`Blocked::count_later`]).
    stat: Option<(usize, u64)>,
}

impl Blocked {
    /// Counts the command in commandstats when its wait ends rather than now, as Redis
    /// counts a blocked command once it is unblocked: a call then, a failed one if its
    /// last attempt errs, or a rejected one if its user may no longer run it.
    pub(super) fn count_later(&mut self, index: usize, usec: u64) {
        self.stat = Some((index, usec));
    }
}

/// True for the engine's "nothing to pop" replies.
fn is_nothing(r: &Reply) -> bool {
    matches!(r, Reply::Nil | Reply::NilArray)
}

/// A woken waiter's retry: the command plus a TYPE of each waited-on key in ONE log
/// entry, so the types are those the command itself saw. Returns the command's reply
/// and whether a waited-on key held a type the command cannot pop from.
async fn retry(s: &Session, b: &Blocked) -> (Reply, bool) {
    let want = wanted_type(&b.args[0]);
    let mut cmds: Vec<(u8, Vec<Bytes>)> = b
        .keys
        .iter()
        .map(|k| (b.db, vec![Bytes::from_static(b"TYPE"), k.clone()]))
        .collect();
    cmds.push((b.db, b.args.clone()));
    match s
        .shared
        .coord
        .write_from(Op::Multi { cmds }, b.denyoom, s.client.handle.id)
        .await
    {
        Ok(mut replies) => {
            let reply = replies.pop().unwrap_or(Reply::Nil);
            let wrong = replies
                .iter()
                .any(|t| matches!(t, Reply::Simple(t) if t != "none" && t != want));
            (reply, wrong)
        }
        Err(r) => (r, false),
    }
}

/// The type of key a blocking command waits for.
fn wanted_type(name: &[u8]) -> &'static str {
    let name = name.to_ascii_lowercase();
    if name.starts_with(b"bz") {
        "zset"
    } else if name.starts_with(b"x") {
        "stream"
    } else {
        "list"
    }
}

/// Whether `args` of a command flagged blocking would block: the stream reads block
/// only with BLOCK (without it they are a plain read or write).
pub fn would_block(args: &[Bytes]) -> bool {
    match args.first() {
        Some(n) if n.eq_ignore_ascii_case(b"xread") || n.eq_ignore_ascii_case(b"xreadgroup") => {
            stream::asks_to_block(args)
        }
        _ => true,
    }
}

/// True for WRONGTYPE errors.
fn is_wrongtype(r: &Reply) -> bool {
    matches!(r, Reply::Error(e) if e.starts_with("WRONGTYPE"))
}

/// The keys a blocking command waits on, and its timeout in ms (0 = forever).
fn keys_and_timeout(args: &[Bytes]) -> Option<(Vec<Bytes>, u64)> {
    let name = std::str::from_utf8(args.first()?)
        .ok()?
        .to_ascii_lowercase();
    let last = args.len().checked_sub(1)?;
    let (keys, timeout_at): (Vec<Bytes>, usize) = match name.as_str() {
        "blpop" | "brpop" | "bzpopmin" | "bzpopmax" => (args.get(1..last)?.to_vec(), last),
        // Only the source list unblocks a move.
        "blmove" | "brpoplpush" => (vec![args.get(1)?.clone()], last),
        "blmpop" | "bzmpop" => {
            let keys: Vec<Bytes> = keel_engine::command::movable_key_positions(args)?
                .into_iter()
                .filter_map(|i| args.get(i).cloned())
                .collect();
            // A malformed count: the engine answers the error without blocking.
            if keys.is_empty() {
                return None;
            }
            (keys, 1)
        }
        "xread" | "xreadgroup" => {
            let read = stream::parse_read(args, name == "xreadgroup").ok()?;
            let keys = args
                .get(read.keys_at..read.keys_at + read.streams)?
                .to_vec();
            return Some((keys, read.block_ms?));
        }
        _ => return None,
    };
    let t = args.get(timeout_at)?;
    let ms = if name.starts_with("bz") {
        zset::parse_timeout_ms(t).ok()?
    } else {
        list::parse_timeout_ms(t).ok()?
    };
    Some((keys, ms))
}

/// Runs a blocking command once; when it found nothing, queues the client and leaves
/// the wait to [`wait`] (via `Session::blocked`), so the connection can keep watching
/// its socket.
pub async fn start(s: &mut Session, spec: &'static CommandSpec, args: Vec<Bytes>) -> Flow {
    s.settle().await;
    let Some((keys, timeout_ms)) = keys_and_timeout(&args) else {
        // Malformed: the engine gives the right error without blocking.
        let reply = attempt(s, &args, false).await;
        s.reply(&reply).await;
        return Flow::Continue;
    };
    let args = match resolve_last_ids(s, args).await {
        Ok(args) => args,
        Err(reply) => {
            s.reply(&reply).await;
            return Flow::Continue;
        }
    };
    let db = s.client.db;
    let client = s.client.handle.id;
    let denyoom = spec.flags & keel_engine::command::flags::DENYOOM != 0;
    // Queued before the first attempt: a push landing right after it still wakes us.
    let kind = WaitKind::of(&args[0]);
    let group = match kind {
        WaitKind::GroupRead => stream::parse_read(&args, true)
            .ok()
            .and_then(|r| r.group)
            .map(|(g, _)| g),
        _ => None,
    };
    let state = s.shared.blocked.register(client, db, &keys, kind, group);
    s.shared.blocked.yield_to_ahead(client, db, &keys).await;
    let reply = attempt(s, &args, denyoom).await;
    if !is_nothing(&reply) {
        s.shared.blocked.unregister(client, db, &keys);
        s.reply(&reply).await;
        return Flow::Continue;
    }
    let deadline = (timeout_ms > 0).then(|| Instant::now() + Duration::from_millis(timeout_ms));
    s.client.flags |= client_flags::BLOCKED;
    s.blocked = Some(Blocked {
        spec,
        args,
        db,
        keys,
        deadline,
        nothing: reply,
        denyoom,
        state,
        stat: None,
    });
    Flow::Continue
}

/// XREAD's arguments with each `$` replaced by the ID of its stream's last entry (0-0
/// for a missing or empty stream), read in one log entry. Entries after the last one
/// are exactly those after the stream's last ID: XADD only appends above that. An
/// error reply (a stream key of another type) is the command's answer.
async fn resolve_last_ids(s: &Session, mut args: Vec<Bytes>) -> Result<Vec<Bytes>, Reply> {
    if !args[0].eq_ignore_ascii_case(b"xread") {
        return Ok(args);
    }
    let Ok(read) = stream::parse_read(&args, false) else {
        return Ok(args);
    };
    let ids_at = read.keys_at + read.streams;
    let dollars: Vec<usize> = (ids_at..args.len())
        .filter(|&i| &args[i][..] == b"$")
        .collect();
    if dollars.is_empty() {
        return Ok(args);
    }
    let cmds = dollars
        .iter()
        .map(|&i| {
            let key = &args[i - read.streams][..];
            let q = [&b"XREVRANGE"[..], key, b"+", b"-", b"COUNT", b"1"];
            (s.client.db, q.map(Bytes::copy_from_slice).to_vec())
        })
        .collect();
    let replies = s
        .shared
        .coord
        .write_from(Op::Multi { cmds }, false, s.client.handle.id)
        .await?;
    for (&i, reply) in dollars.iter().zip(replies) {
        // The reply is `[[id, fields]]`, or empty for a missing or empty stream.
        args[i] = match reply {
            Reply::Error(e) => return Err(Reply::Error(e)),
            Reply::Array(entries) => match entries.first() {
                Some(Reply::Array(entry)) => match entry.first() {
                    Some(Reply::Bulk(id)) => id.clone(),
                    _ => Bytes::from_static(b"0-0"),
                },
                _ => Bytes::from_static(b"0-0"),
            },
            _ => Bytes::from_static(b"0-0"),
        };
    }
    Ok(args)
}

/// One try through the coordinator.
async fn attempt(s: &Session, args: &[Bytes], denyoom: bool) -> Reply {
    let op = Op::Command {
        db: s.client.db,
        args: args.to_vec(),
    };
    match s
        .shared
        .coord
        .write_from(op, denyoom, s.client.handle.id)
        .await
    {
        Ok(replies) => replies.into_iter().next().unwrap_or(Reply::Nil),
        Err(r) => r,
    }
}

/// The connection's I/O while a client is blocked.
pub struct BlockIo<'a> {
    /// Read half: bytes read while blocked stay buffered; EOF means disconnect.
    pub rd: &'a mut OwnedReadHalf,
    /// Write half: replies before the blocking command go out first.
    pub wr: &'a mut OwnedWriteHalf,
    /// The connection's input buffer.
    pub inbuf: &'a mut BytesMut,
    /// Server shutdown or CLIENT KILL.
    pub closing: &'a mut Closing,
    /// Query buffer limit.
    pub qbuf_limit: u64,
}

/// Waits out `b`: flushes earlier replies, then retries whenever woken until the
/// command pops something, times out, is unblocked, or the client goes away.
pub async fn wait(s: &mut Session, b: Blocked, io: BlockIo<'_>) -> Flow {
    let client = s.client.handle.id;
    let flow = wait_inner(s, &b, io).await;
    // A client that went away while blocked is not counted, as in Redis.
    if let Some((index, usec)) = b.stat.filter(|_| !matches!(flow, Flow::Close)) {
        let result = s.call_result();
        s.shared.cmd_stats.record_at(index, usec, result);
    }
    s.shared.blocked.unregister(client, b.db, &b.keys);
    s.client.flags &= !client_flags::BLOCKED;
    flow
}

async fn wait_inner(s: &mut Session, b: &Blocked, io: BlockIo<'_>) -> Flow {
    if !s.out.is_empty() {
        if io.wr.write_all(&s.out).await.is_err() {
            return Flow::Close;
        }
        s.out.clear();
    }
    loop {
        let timed_out = tokio::select! {
            _ = b.state.wake.notified() => false,
            _ = sleep_until(b.deadline) => true,
            r = io.rd.read_buf(io.inbuf) => match r {
                Ok(0) | Err(_) => return Flow::Close,
                Ok(_) if io.inbuf.len() as u64 > io.qbuf_limit => return Flow::Close,
                Ok(_) => continue,
            },
            _ = &mut *io.closing => return Flow::Close,
        };
        let unblocked = b.state.unblocked.load(Ordering::Acquire);
        if unblocked == Unblock::Error as u8 {
            s.reply(&Reply::Error(UNBLOCKED_ERROR.into())).await;
            return Flow::Continue;
        }
        if timed_out || unblocked == Unblock::Timeout as u8 {
            s.reply(&b.nothing).await;
            return Flow::Continue;
        }
        // The user's rules may have changed while it waited (Redis checks again too,
        // and counts the call as rejected, not failed).
        if !s.client.user.open() {
            if let Some(refusal) = s.acl_refusal(Cmd::Engine(b.spec), &b.args) {
                s.cur_rejected = true;
                s.reply(&refusal).await;
                return Flow::Continue;
            }
        }
        b.state.retrying.store(true, Ordering::Release);
        b.state.pending.store(false, Ordering::Release);
        let (reply, source_wrong) = retry(s, b).await;
        b.state.retrying.store(false, Ordering::Release);
        s.shared.blocked.settled.notify_waiters();
        // A waited-on key that meanwhile became another type does not serve the waiter:
        // like Redis, it stays blocked until the key holds the right type or time runs
        // out. A wrong-typed destination (BLMOVE, BRPOPLPUSH) is the client's error, and
        // so is a group's stream turned into another type (XREADGROUP: Redis 7.2 ends
        // the wait with WRONGTYPE, as it ends it with NOGROUP when the key goes).
        let waits_out_type = !b.args[0].eq_ignore_ascii_case(b"xreadgroup");
        if is_nothing(&reply) || (is_wrongtype(&reply) && source_wrong && waits_out_type) {
            continue;
        }
        s.reply(&reply).await;
        return Flow::Continue;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
