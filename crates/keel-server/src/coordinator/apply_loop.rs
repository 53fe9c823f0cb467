//! The funnel's state: the one owner of the WAL and the only caller of `Engine::apply`.
//! It sits behind the funnel's lock (`funnel.rs`), so whichever thread holds that lock
//! runs its rounds: a connection's thread that found it free, or the apply thread.
//!
//! Each round takes every write waiting (up to [`MAX_BATCH`]), and for each one:
//! checks the lifecycle (Failed → MISCONF), makes room under maxmemory (logging an
//! `Op::Evict` first, or refusing with OOM), stamps the entry (index, a monotonic clock,
//! a random seed), encodes and appends it to the WAL, and applies it. Then ONE
//! `wal.commit()` covers the whole batch, and only then are the replies sent; under
//! `always` the batch is flushed and its replies go to the acknowledgement thread
//! (`acks`), which sends them after the fdatasync that covers them (group commit).
//! Timers for active expiry and automatic snapshots run between rounds.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::Sender;
use keel_engine::codec::encode_entry;
use keel_engine::command::{flags, CommandSpec};
use keel_engine::engine::{Group, PrefetchScratch};
use keel_engine::exec::KeyEvent;
use keel_engine::keys;
use keel_engine::reply::errors;
use keel_engine::{Applied, ApplyCtx, Engine, EvictionPolicy, MemoryVerdict, Op, Reply};
use keel_storage::{Direction, EngineKind, ScanRange};
use parking_lot::RwLock;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;

use super::acks::Acks;
use super::state::{Lifecycle, NodeState};
use super::write_queue::WriteQueue;
use super::{
    ApplyHook, ApplyHooks, Control, GatheredWrite, Request, Results, SinkTicket, SnapshotReply,
    WriteResult,
};
use crate::clock::unix_now_ms;
use crate::config::Config;
use crate::wal::{Wal, WalError};

/// Most requests handled per round (one WAL commit each round).
pub const MAX_BATCH: usize = 1024;
/// A round's keys are prefetched in chunks of whole messages of about this many
/// arguments, each asked for while the one before it is applied. Why so few: a chunk's
/// lines must still be in the cache when its writes run, and a write's own work pulls in
/// many (a ZADD descends the order tree twice). Rounds used to be prefetched whole up to
/// 4,096 arguments; once rounds gathered ten -P 16 batches of 16 writes, ZADD -P 16 ran
/// at 0.94x the rate of lone 16-write rounds. In 64-argument chunks (one ZADD batch, two
/// SET batches), against lone rounds (`bench/ab.sh --pin 1:0`, 5 rounds each): ZADD
/// 0.996, SET 1.007, LPUSH 1.024, RPOP 1.029, MSET 1.058; 32 arguments gained nothing
/// more (ZADD 0.95-0.99 against 64). Before the chunks were this small, a round of MSETs
/// at -P 16 named up to ten thousand keys, and the first ones' lines were gone by the
/// time they were applied (perf: the store's look-ups 18.6% of samples).
const PREFETCH_CHUNK_ARGS: usize = 64;

/// The arguments of a message's writes.
fn request_args(r: &Request) -> usize {
    r.writes().map(|(op, _)| op_args(op)).sum()
}

/// A write's arguments, the measure of [`PREFETCH_CHUNK_ARGS`] (1 for other entries).
fn op_args(op: &Op) -> usize {
    match op {
        Op::Command { args, .. } => args.len(),
        _ => 1,
    }
}

/// Keys active expiry deletes per entry at most.
const EXPIRE_CYCLE_MAX: usize = 200;
/// Eviction rounds one write may trigger before it is refused.
const EVICT_ROUNDS: usize = 16;
/// How long a failed save-point snapshot waits before the next try (Redis's
/// CONFIG_BGSAVE_RETRY_DELAY).
const SAVE_RETRY_DELAY: std::time::Duration = std::time::Duration::from_secs(5);

/// The state of the write funnel, behind its lock.
pub(super) struct ApplyLoop {
    pub engine: Engine,
    pub wal: Wal,
    pub state: Arc<NodeState>,
    pub config: Arc<RwLock<Config>>,
    /// Queued writes.
    pub queue: Arc<WriteQueue>,
    /// For the snapshot thread to report back.
    pub tx: Sender<Control>,
    pub last_index: u64,
    pub last_now_ms: u64,
    pub storage_dir: PathBuf,
    pub rng: StdRng,
    buf: Vec<u8>,
    dirty: bool,
    /// Entries go to the WAL (`appendonly yes`, fixed at start); off, nothing is
    /// logged and snapshots at the save points are what persists.
    logging: bool,
    /// When the save points last started a snapshot, until one succeeds (a failed one
    /// is retried after [`SAVE_RETRY_DELAY`], as Redis does).
    save_tried_at: Option<Instant>,
    wal_bytes_after_snapshot: u64,
    hooks: ApplyHooks,
    /// This thread's copy of `hooks`, as of `hooks_seen` registrations.
    hooks_here: Vec<ApplyHook>,
    hooks_seen: u64,
    /// The round's entries applied so far, written to storage as one batch at the
    /// round's end (see `flush_group`).
    group: Option<Group>,
    /// An entry failed to apply: the group was dropped, so the round's earlier writes
    /// never reached storage and must not be acknowledged.
    group_lost: bool,
    /// Keyspace events of the group, emitted once it is visible in storage.
    deferred_events: Vec<KeyEvent>,
    /// The client whose request is being applied (0: none), for the apply hooks.
    origin: u64,
    /// `last_now_ms` was read from the clock in this round (see `clock`).
    clock_fresh: bool,
    /// Entries applied that changed a key, not yet added to `changes_since_save` (once per commit: an
    /// atomic per write is a barrier between writes' cache misses).
    unsaved: u64,
    /// The maxmemory settings, read once per round by `make_room`.
    limits: Option<(u64, EvictionPolicy, usize)>,
    /// Buffers reused by every round's prefetch.
    prefetch: PrefetchScratch,
    /// Under `always` with the WAL on: where a round's replies wait for the fdatasync
    /// that covers them (see `acks`); otherwise a round replies once committed.
    acks: Option<Acks>,
    /// The round's messages, taken from the queue before any is applied so that their
    /// keys are prefetched a chunk ahead (kept to reuse its allocation).
    inbox: VecDeque<Request>,
    /// The round's replies until its commit (kept to reuse its allocation: a vector
    /// made per round was an allocation, a growth and a free for every -P 1 write,
    /// whose round is its own).
    pending: Vec<Pending>,
    /// The last applied entry's result, filled in place (see `apply_logged`).
    applied: Applied,
}

/// Replies waiting for the round's commit.
pub(super) enum Pending {
    /// One write's.
    One(oneshot::Sender<WriteResult>, WriteResult),
    /// A `Request::Writes` message's, in order.
    Many(oneshot::Sender<Vec<WriteResult>>, Vec<WriteResult>),
    /// A `Request::Unawaited` message's, in order.
    Sink(SinkTicket, Results),
}

impl Pending {
    /// Turns every successful result into `err` (the commit failed).
    pub(super) fn fail(&mut self, err: &Reply) {
        let results = match self {
            Pending::One(_, res) => std::slice::from_mut(res),
            Pending::Many(_, results) => results.as_mut_slice(),
            Pending::Sink(_, results) => results.as_mut_slice(),
        };
        for res in results.iter_mut().filter(|r| r.is_ok()) {
            *res = Err(err.clone());
        }
    }

    /// Sends the results; the client may have gone, and its writes stand.
    pub(super) fn send(self) {
        match self {
            Pending::One(tx, res) => {
                let _ = tx.send(res);
            }
            Pending::Many(tx, results) => {
                let _ = tx.send(results);
            }
            Pending::Sink(sink, results) => sink.deliver(results),
        }
    }
}

impl ApplyLoop {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        engine: Engine,
        wal: Wal,
        state: Arc<NodeState>,
        config: Arc<RwLock<Config>>,
        queue: Arc<WriteQueue>,
        tx: Sender<Control>,
        last_index: u64,
        last_now_ms: u64,
        storage_dir: PathBuf,
        hooks: ApplyHooks,
        acks: Option<Acks>,
    ) -> Self {
        let wal_bytes_after_snapshot = wal.stats().bytes_on_disk;
        state.snapshot_base_bytes.store(
            snapshot_base_bytes(engine.storage().as_ref()),
            Ordering::Relaxed,
        );
        let logging = config.read().appendonly;
        ApplyLoop {
            engine,
            wal,
            state,
            config,
            queue,
            tx,
            last_index,
            last_now_ms,
            storage_dir,
            rng: StdRng::from_entropy(),
            buf: Vec::new(),
            dirty: false,
            logging,
            save_tried_at: None,
            wal_bytes_after_snapshot,
            hooks,
            hooks_here: Vec::new(),
            hooks_seen: 0,
            group: None,
            group_lost: false,
            deferred_events: Vec::new(),
            origin: 0,
            clock_fresh: false,
            unsaved: 0,
            limits: None,
            prefetch: PrefetchScratch::default(),
            inbox: VecDeque::new(),
            pending: Vec::new(),
            applied: Applied::default(),
            acks,
        }
    }

    /// Forgets what the previous round read once for all its entries (the clock, the
    /// maxmemory settings), so that this one reads them afresh.
    fn start_round(&mut self) {
        self.clock_fresh = false;
        self.limits = None;
    }

    /// Takes up to [`MAX_BATCH`] queued writes, applies them, commits once and sends
    /// their replies; returns how many messages it took (0: the queue was empty).
    pub fn round(&mut self) -> usize {
        self.start_round();
        let mut inbox = std::mem::take(&mut self.inbox);
        // Requests, counting each write of a `Writes` message.
        let taken = self.queue.take_into(&mut inbox, MAX_BATCH);
        let messages = inbox.len();
        if messages == 0 {
            self.inbox = inbox;
            return 0;
        }
        let mut pending = std::mem::take(&mut self.pending);
        // Only the funnel's holder writes these: a load and a store, no atomic add.
        let counted = |c: &std::sync::atomic::AtomicU64, n: usize| {
            c.store(c.load(Ordering::Relaxed) + n as u64, Ordering::Relaxed)
        };
        counted(&self.state.funnel_rounds, 1);
        counted(&self.state.funnel_writes, taken);
        // The store's writer lock for the whole round, taken once: the round's reads
        // then skip the locks that only exclude a writer (see `Engine::writer_session`).
        let session = self.engine.writer_session();
        // Messages at the inbox's front whose keys have been asked for.
        let mut fetched = self.prefetch_chunk(&inbox, 0, PREFETCH_CHUNK_ARGS);
        while !inbox.is_empty() {
            let chunk = fetched;
            // The next chunk's misses overlap this chunk's work.
            fetched = self.prefetch_chunk(&inbox, chunk, PREFETCH_CHUNK_ARGS);
            for r in inbox.drain(..chunk) {
                self.handle(r, &mut pending);
            }
        }
        self.inbox = inbox;
        self.commit(&mut pending);
        drop(session);
        pending.drain(..).for_each(Pending::send);
        self.pending = pending;
        messages
    }

    /// Prefetches the keys of the messages from `from` on, up to `max_args` arguments'
    /// worth (at least one message while any are left), and returns how many messages
    /// it covered.
    fn prefetch_chunk(&mut self, inbox: &VecDeque<Request>, from: usize, max_args: usize) -> usize {
        let mut args = 0;
        let n = inbox
            .range(from..)
            .take_while(|r| {
                let fits = args < max_args;
                args += request_args(r);
                fits
            })
            .count();
        // The call after the last chunk covers nothing: asking the engine anyway cost
        // ~170 instructions of a -P 1 write's ~9,700, whose round is one message.
        if n > 0 {
            self.engine.prefetch(
                &mut self.prefetch,
                inbox.range(from..from + n).flat_map(Request::writes),
            );
        }
        n
    }

    /// After a round panicked (a bug): the node goes to Failed, so writes are refused
    /// with MISCONF and reads keep working, and whatever the round left in its group is
    /// dropped rather than written, as it may hold part of an entry.
    pub fn abandon_round(&mut self, what: &str) {
        self.group = None;
        self.group_lost = false;
        self.deferred_events.clear();
        self.state
            .fail(format!("a write panicked in the write funnel: {what}"));
    }

    /// Runs rounds until the queue is empty.
    pub fn drain(&mut self) {
        while self.round() > 0 {}
    }

    /// The timer's work between requests: active expiry, then its commit, then a
    /// snapshot if one is due.
    ///
    /// Why the snapshot check is here and not after every round: it read the config's
    /// lock, the clock and the save points (or the WAL's size) each time, ~100
    /// instructions of a -P 1 write, whose round is its own. Redis checks its save
    /// points and AOF growth in its cron, ten times a second; the tick runs as often.
    /// With the WAL on, the log grows for up to a tick past the threshold (~13 MB at
    /// 1.3M SETs a second of 64-byte values), which the threshold's 64 MB default
    /// absorbs.
    pub fn tick(&mut self) {
        self.start_round();
        self.active_expiry();
        self.commit(&mut Vec::new());
        self.maybe_auto_snapshot();
    }

    /// Carries out a control request other than shutdown (which `finish` handles).
    pub fn control(&mut self, req: Control) {
        self.start_round();
        match req {
            Control::Snapshot { reply } => self.start_snapshot(reply),
            Control::SnapshotDone {
                covered,
                result,
                reply,
            } => self.snapshot_done(covered, result, reply),
            Control::Shutdown { reply, .. } => {
                let _ = reply.send(Err("ERR shutdown already in progress".into()));
            }
            Control::Drain => {}
        }
    }

    /// Carries out a write request.
    fn handle(&mut self, req: Request, pending: &mut Vec<Pending>) {
        match req {
            Request::Writes { ops, reply, origin } => {
                self.origin = origin;
                let results = self.write_each(ops);
                pending.push(Pending::Many(reply, results));
            }
            Request::Unawaited { ops, sink, origin } => {
                self.origin = origin;
                let results = self.write_each(ops);
                pending.push(Pending::Sink(sink, results));
            }
            Request::Write {
                op,
                denyoom,
                spec,
                reply,
                origin,
            } => {
                self.origin = origin;
                let res = self.write(op, spec, denyoom);
                if let Some(tx) = reply {
                    pending.push(Pending::One(tx, res));
                }
            }
            Request::GuardedWrite {
                op,
                denyoom,
                abort,
                reply,
                origin,
            } => {
                self.origin = origin;
                let res = if abort.load(Ordering::Acquire) {
                    Err(Reply::NilArray)
                } else {
                    self.write(op, None, denyoom)
                };
                pending.push(Pending::One(reply, res));
            }
        }
        self.origin = 0;
    }

    /// [`ApplyLoop::write`] of each of a connection's writes, in order.
    fn write_each<R: FromIterator<WriteResult>>(
        &mut self,
        ops: impl IntoIterator<Item = GatheredWrite>,
    ) -> R {
        ops.into_iter()
            .map(|(op, spec)| self.write(op, Some(spec), spec.flags & flags::DENYOOM != 0))
            .collect()
    }

    /// The funnel's per-write path; `spec` is the command a connection resolved `op` to.
    fn write(&mut self, op: Op, spec: Option<&'static CommandSpec>, denyoom: bool) -> WriteResult {
        if let Some(msg) = self.state.misconf() {
            return Err(Reply::err(msg));
        }
        if denyoom && !self.make_room()? {
            return Err(Reply::err(errors::OOM));
        }
        let expiry = matches!(op, Op::ExpireDue { .. } | Op::ExpireCycle { .. });
        self.apply_logged(&op, spec)?;
        if expiry {
            let n = self.applied_count();
            self.state.expired_keys.fetch_add(n, Ordering::Relaxed);
        }
        Ok(std::mem::take(&mut self.applied.replies))
    }

    /// Evicts under maxmemory until the write fits; false if it cannot.
    fn make_room(&mut self) -> Result<bool, Reply> {
        let (max, policy, samples) = *self.limits.get_or_insert_with(|| {
            let c = self.config.read();
            (c.maxmemory, c.maxmemory_policy, c.maxmemory_samples)
        });
        if max == 0 {
            return Ok(true);
        }
        // Memory is measured on storage, which must hold the round so far.
        self.flush_group()?;
        for _ in 0..EVICT_ROUNDS {
            let now = self.clock();
            let seed = self.rng.gen();
            let verdict = self
                .engine
                .memory_pressure(max, policy, samples, now, seed)
                .map_err(|e| self.fail(format!("eviction: {e}")))?;
            match verdict {
                MemoryVerdict::Fine => return Ok(true),
                MemoryVerdict::Oom => return Ok(false),
                MemoryVerdict::Evict(keys) => {
                    // The server's entry, not the writer's (whose NOLOOP tracking must
                    // still hear of keys it read that eviction takes).
                    let writer = std::mem::take(&mut self.origin);
                    let evicted = self.apply_logged(&Op::Evict { keys }, None);
                    self.origin = writer;
                    evicted?;
                    let n = self.applied_count();
                    self.flush_group()?;
                    self.state.evicted_keys.fetch_add(n, Ordering::Relaxed);
                }
            }
        }
        let now = self.clock();
        let seed = self.rng.gen();
        Ok(matches!(
            self.engine.memory_pressure(max, policy, samples, now, seed),
            Ok(MemoryVerdict::Fine)
        ))
    }

    /// Wall clock in ms, never behind the previous entry's. Read once per round: the
    /// round's entries are applied together and answered after one commit, so one
    /// reading serves them all (a reading and its conversion were ~85 instructions of
    /// each pipelined write on this, the one serial thread).
    fn clock(&mut self) -> u64 {
        if !self.clock_fresh {
            self.last_now_ms = self.last_now_ms.max(unix_now_ms());
            self.clock_fresh = true;
        }
        self.last_now_ms
    }

    /// Stamps, logs and applies one entry; its result is left in `self.applied` (see
    /// `Engine::apply_into`: returned by value, it was copied at each level).
    fn apply_logged(&mut self, op: &Op, spec: Option<&'static CommandSpec>) -> Result<(), Reply> {
        let ctx = ApplyCtx {
            seq: self.last_index + 1,
            now_ms: self.clock(),
            seed: self.rng.gen(),
        };
        // A command that finds members by position reads storage's order statistics in
        // O(log n); with the group's writes in that range, each position is corrected
        // for them (the group's writes there collected and checked against storage, then
        // a bisection over storage's positions): a pipelined SPOP cost 17,419
        // instructions that way and 12,115 with the group written out first (ZPOPMIN
        // 19,913 and 15,846). Writing it out here is writing it out after the previous
        // entry, as a full group is.
        if spec.is_some_and(CommandSpec::reads_positions)
            && self.group.as_ref().is_some_and(|g| !g.is_empty())
        {
            self.flush_group()?;
        }
        if self.logging {
            self.log(&ctx, op)?;
        }
        self.last_index = ctx.seq;
        // In place: taking the group out and putting it back copied it twice per entry.
        let engine = &self.engine;
        let group = self.group.get_or_insert_with(|| engine.group());
        if let Err(e) = engine.apply_into(group, &ctx, op, spec, &mut self.applied) {
            // The group holds part of this entry: drop it whole (the log has it all).
            self.group = None;
            self.group_lost = true;
            return Err(self.fail(format!("apply of entry {}: {e}", ctx.seq)));
        }
        if group.is_full() {
            self.flush_group()?;
        }
        // In order and at once: a WATCH later in this round must see this entry's keys.
        if let Some(now) = self.hooks.changed_since(&mut self.hooks_seen) {
            self.hooks_here = now;
        }
        for hook in &self.hooks_here {
            hook(op, &self.applied, self.origin);
        }
        self.deferred_events.append(&mut self.applied.events);
        // Like Redis's dirty counter, only an entry that changed a key counts: a
        // blocking pop that found nothing, or a write that failed, does not.
        self.unsaved += u64::from(!self.applied.touched.is_empty());
        Ok(())
    }

    /// The count the last applied entry answered (keys expired or evicted), 0 if none.
    fn applied_count(&self) -> u64 {
        match self.applied.replies.first() {
            Some(Reply::Int(n)) => u64::try_from(*n).unwrap_or(0),
            _ => 0,
        }
    }

    /// Appends the entry to the WAL (made durable by the round's commit).
    fn log(&mut self, ctx: &ApplyCtx, op: &Op) -> Result<(), Reply> {
        self.buf.clear();
        encode_entry(ctx, op, &mut self.buf);
        match self.wal.append(ctx.seq, &self.buf) {
            Ok(()) => {}
            Err(WalError::TooLarge { len, max }) => {
                return Err(Reply::err(format!(
                    "ERR command of {len} bytes exceeds the log entry limit of {max} bytes"
                )))
            }
            Err(e) => return Err(self.fail(format!("wal append: {e}"))),
        }
        if self.buf.capacity() > 1 << 20 {
            self.buf = Vec::new();
        }
        self.dirty = true;
        Ok(())
    }

    /// Moves the node to Failed and returns the MISCONF reply.
    fn fail(&self, reason: String) -> Reply {
        failure_reply(&self.state, reason)
    }

    /// Writes the round's group to storage as one batch, then emits its keyspace events.
    ///
    /// Why a round is one storage batch: each entry as its own batch paid an
    /// applied-index record, a publish and a pruning pass; a pipelined SET spent about a
    /// tenth of its instructions there. Nothing can tell the difference: replies go out
    /// only after the round's commit, later entries of the group read earlier ones
    /// through the group's overlay, and every other reader of storage on this thread
    /// (snapshots, eviction) flushes the group first.
    fn flush_group(&mut self) -> Result<(), Reply> {
        // Written in place: the group and its overlay stay for the next round.
        let Some(group) = self.group.as_mut() else {
            return Ok(());
        };
        let last = group.last_seq();
        if last.is_some() {
            // Only the funnel's holder writes it: a load and a store.
            let batches = &self.state.funnel_batches;
            batches.store(batches.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        if let Err(e) = self.engine.write_group_in(group) {
            self.group = None;
            self.group_lost = true;
            self.deferred_events.clear();
            return Err(self.fail(format!("storage write of entries up to {last:?}: {e}")));
        }
        if let Some(seq) = last {
            self.state.applied_index.store(seq, Ordering::Relaxed);
        }
        if !self.deferred_events.is_empty() {
            if let Some(emit) = self.state.event_hook.get() {
                emit(&self.deferred_events);
            }
            self.deferred_events.clear();
        }
        if let Some(visible) = self.state.visible_hook.get() {
            visible();
        }
        Ok(())
    }

    /// Flushes the group and makes one commit for everything appended since the last;
    /// on failure the batch's successful replies become the MISCONF error (they were
    /// not made durable, or never reached storage). Under `always` the written batch's
    /// replies move to `acks` (leaving `pending` empty), which sends them once durable.
    fn commit(&mut self, pending: &mut Vec<Pending>) {
        let unsaved = std::mem::take(&mut self.unsaved);
        if unsaved > 0 {
            self.state
                .changes_since_save
                .fetch_add(unsaved, Ordering::Relaxed);
        }
        let mut failure = self.flush_group().err();
        if std::mem::take(&mut self.group_lost) && failure.is_none() {
            // apply_logged already failed the node; its reason is the reply.
            failure = Some(Reply::err(
                self.state
                    .misconf()
                    .unwrap_or_else(|| "ERR node failed".into()),
            ));
        }
        if self.dirty {
            self.dirty = false;
            let written = match &self.acks {
                Some(acks) if failure.is_none() => self
                    .wal
                    .flush()
                    .map(|()| acks.defer(std::mem::take(pending))),
                _ => self.wal.commit().map(drop),
            };
            if let Err(e) = written {
                failure = Some(self.fail(format!("wal commit: {e}")));
            }
        }
        if let Some(err) = failure {
            for p in pending.iter_mut() {
                p.fail(&err);
            }
        }
    }

    /// Logs an ExpireCycle if some key's time has come (an idle node logs nothing).
    fn active_expiry(&mut self) {
        if self.state.lifecycle() == Lifecycle::Failed
            || !self.state.active_expire.load(Ordering::Relaxed)
        {
            return;
        }
        let now = self.clock();
        if !expiry_due(&self.engine, now) {
            return;
        }
        let cycle = Op::ExpireCycle {
            max: EXPIRE_CYCLE_MAX,
        };
        if self.apply_logged(&cycle, None).is_ok() {
            let n = self.applied_count();
            self.state.expired_keys.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Starts a snapshot when one is due: by WAL growth with the log on, at the save
    /// points with it off.
    fn maybe_auto_snapshot(&mut self) {
        if self.state.snapshot_in_progress.load(Ordering::Acquire)
            || self.state.lifecycle() == Lifecycle::Failed
        {
            return;
        }
        if !self.logging {
            self.maybe_save_point();
            return;
        }
        let threshold = snapshot_trigger_bytes(
            &self.config.read(),
            self.state.snapshot_base_bytes.load(Ordering::Relaxed),
        );
        if threshold == 0 {
            return;
        }
        let grown = self
            .wal
            .stats()
            .bytes_on_disk
            .saturating_sub(self.wal_bytes_after_snapshot);
        if grown >= threshold {
            tracing::info!(wal_bytes_grown = grown, threshold, "automatic snapshot");
            self.start_snapshot(None);
        }
    }

    /// Redis's save points: a snapshot once some point's number of changes is reached
    /// and the last snapshot is older than its seconds; after a failed one, not again
    /// for [`SAVE_RETRY_DELAY`].
    fn maybe_save_point(&mut self) {
        if self
            .save_tried_at
            .is_some_and(|t| t.elapsed() < SAVE_RETRY_DELAY)
        {
            return;
        }
        let changes = self.state.changes_since_save.load(Ordering::Relaxed);
        let age =
            (self.clock() / 1000).saturating_sub(self.state.last_save_unix.load(Ordering::Relaxed));
        let due = self
            .config
            .read()
            .save_points
            .iter()
            .find(|&&(secs, min)| changes >= min && age > secs)
            .copied();
        if let Some((secs, min)) = due {
            tracing::info!("{min} changes in {secs} seconds. Saving...");
            self.save_tried_at = Some(Instant::now());
            self.start_snapshot(None);
        }
    }

    /// Seals the WAL and writes the snapshot on another thread; the WAL is truncated
    /// when it reports back (`snapshot_done`).
    ///
    /// Why the truncation point is safe: `covered` is the last index applied before the
    /// snapshot thread starts, and the memory engine's checkpoint reads its own storage
    /// snapshot after that, so it holds every entry up to `covered` (and perhaps later
    /// ones, which replay skips: from here until `snapshot_done` every group records its
    /// index in the store, see `Engine::begin_checkpoint`). Bitcask/lsm: `sync` makes
    /// every applied entry durable.
    fn start_snapshot(&mut self, reply: Option<SnapshotReply>) {
        if self.state.snapshot_in_progress.load(Ordering::Acquire) {
            if let Some(r) = reply {
                let _ = r.send(Err("ERR Background save already in progress".into()));
            }
            return;
        }
        if let Some(msg) = self.state.misconf() {
            if let Some(r) = reply {
                let _ = r.send(Err(msg));
            }
            return;
        }
        self.commit(&mut Vec::new());
        if let Err(e) = self.seal_for_snapshot() {
            let err = self.fail(e);
            if let Some(r) = reply {
                let _ = r.send(Err(error_text(&err)));
            }
            return;
        }
        let covered = self.last_index;
        self.state
            .snapshot_in_progress
            .store(true, Ordering::Release);
        self.state.set(Lifecycle::Snapshotting);
        let store = Arc::clone(self.engine.storage());
        let dir = self.storage_dir.clone();
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name("keel-snapshot".into())
            .spawn(move || {
                let started = Instant::now();
                let result = write_snapshot(store.as_ref(), &dir);
                tracing::info!(
                    covered,
                    took_ms = started.elapsed().as_millis() as u64,
                    ok = result.is_ok(),
                    "snapshot written"
                );
                let _ = tx.send(Control::SnapshotDone {
                    covered,
                    result,
                    reply,
                });
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the snapshot thread");
            self.engine.end_checkpoint();
            self.state
                .snapshot_in_progress
                .store(false, Ordering::Release);
            self.state.set(Lifecycle::Ready);
            self.state.note_snapshot(false);
        }
    }

    /// Seals the WAL, so that the snapshot covers whole segments, and makes the store
    /// record its applied index until `Engine::end_checkpoint` (see `start_snapshot`).
    fn seal_for_snapshot(&mut self) -> Result<(), String> {
        self.wal
            .seal_active()
            .map_err(|e| format!("wal seal: {e}"))?;
        self.engine
            .begin_checkpoint()
            .map_err(|e| format!("applied index record: {e}"))
    }

    fn snapshot_done(
        &mut self,
        covered: u64,
        result: Result<(), String>,
        reply: Option<SnapshotReply>,
    ) {
        self.engine.end_checkpoint();
        // After a snapshot, the log holds only what was written since it started (the
        // log was sealed then and is now cut there), all of which counts toward the next
        // one: counting from the size now left writes made during the snapshot out, and
        // a log that grew past the threshold meanwhile stayed there. After a failure,
        // wait for the threshold's worth again instead of retrying on every tick.
        match &result {
            Ok(()) => {
                // Deleted by the WAL's thread: here they stalled the funnel for ~20 ms.
                self.wal.truncate_before_in_background(covered + 1);
                self.save_tried_at = None;
                self.wal_bytes_after_snapshot = 0;
                self.state.snapshot_base_bytes.store(
                    snapshot_base_bytes(self.engine.storage().as_ref()),
                    Ordering::Relaxed,
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "snapshot failed");
                self.wal_bytes_after_snapshot = self.wal.stats().bytes_on_disk;
            }
        }
        self.state.note_snapshot(result.is_ok());
        self.state
            .snapshot_in_progress
            .store(false, Ordering::Release);
        self.state.set(Lifecycle::Ready);
        if let Some(r) = reply {
            let _ = r.send(result.map_err(|e| format!("ERR {e}")));
        }
    }

    /// True while a snapshot thread has not reported back.
    pub fn snapshot_running(&self) -> bool {
        self.state.snapshot_in_progress.load(Ordering::Acquire)
    }

    /// Closes the funnel: applies what is still queued, optionally snapshots, commits
    /// and closes the WAL and the store.
    pub fn finish(mut self, save: bool) -> Result<(), String> {
        self.drain();
        let mut result: Result<(), String> = Ok(());
        if save {
            let covered = self.last_index;
            result = self
                .seal_for_snapshot()
                .and_then(|()| {
                    let written = write_snapshot(self.engine.storage().as_ref(), &self.storage_dir);
                    self.engine.end_checkpoint();
                    written
                })
                .and_then(|()| {
                    self.wal
                        .truncate_before(covered + 1)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                });
            self.state.note_snapshot(result.is_ok());
        }
        let closed = self.wal.close().map_err(|e| format!("wal close: {e}"));
        // After the close's fdatasync: the replies still waiting go out.
        if let Some(acks) = self.acks.as_mut() {
            acks.close();
        }
        let store_closed = self
            .engine
            .storage()
            .close()
            .map_err(|e| format!("storage close: {e}"));
        let result = result.and(closed).and(store_closed);
        match &result {
            Ok(()) => tracing::info!(last_index = self.last_index, "wal and storage closed"),
            Err(e) => tracing::error!(error = %e, "shutdown was not clean"),
        }
        result
    }
}

/// Moves the node in `state` to Failed and returns the MISCONF reply.
pub(super) fn failure_reply(state: &NodeState, reason: String) -> Reply {
    state.fail(reason);
    Reply::err(state.misconf().unwrap_or_else(|| "ERR node failed".into()))
}

/// The text of an error reply.
fn error_text(r: &Reply) -> String {
    match r {
        Reply::Error(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// Writes the snapshot: the memory engine's checkpoint, or a sync of the others.
pub(super) fn write_snapshot(
    store: &dyn keel_storage::Storage,
    dir: &std::path::Path,
) -> Result<(), String> {
    match store.kind() {
        EngineKind::Memory => store.checkpoint(dir),
        EngineKind::Bitcask | EngineKind::Lsm => store.sync(),
    }
    .map_err(|e| e.to_string())
}

/// The WAL growth after which a snapshot starts (0: never by size): `auto-snapshot-wal-
/// bytes`, or `auto-snapshot-wal-percentage` of `base_bytes` (the last snapshot's size)
/// when that is more. The percentage is Redis's auto-aof-rewrite-percentage: without it
/// a dataset larger than the threshold was written whole for every threshold's worth of
/// log (3M keys, a 310 MB checkpoint: snapshots back to back under SET -P 16, at 0.56 of
/// the rate).
pub fn snapshot_trigger_bytes(config: &Config, base_bytes: u64) -> u64 {
    if config.auto_snapshot_wal_bytes == 0 {
        return 0;
    }
    let scaled = u128::from(base_bytes) * u128::from(config.auto_snapshot_wal_percentage) / 100;
    config
        .auto_snapshot_wal_bytes
        .max(u64::try_from(scaled).unwrap_or(u64::MAX))
}

/// Bytes a snapshot of `store` writes: the memory engine's checkpoint file; 0 for the
/// engines whose snapshot is a sync of their own files.
pub(super) fn snapshot_base_bytes(store: &dyn keel_storage::Storage) -> u64 {
    match store.kind() {
        EngineKind::Memory => store.stats().disk_bytes,
        EngineKind::Bitcask | EngineKind::Lsm => 0,
    }
}

/// True if some key in some database has an expiry at or before `now_ms`.
pub(super) fn expiry_due(engine: &Engine, now_ms: u64) -> bool {
    let store = engine.storage();
    (0..keys::DATABASES).any(|db| {
        let lo = keys::expiry_key(db, 0, b"");
        let hi = keys::expiry_key(db, now_ms.saturating_add(1), b"");
        let range = ScanRange::new(lo.as_ref()..hi.as_ref());
        matches!(store.scan(range, Direction::Forward).next(), Some(Ok(_)))
    })
}
