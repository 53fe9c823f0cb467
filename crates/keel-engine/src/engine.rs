//! The engine: the deterministic state machine every coordinator feeds. `apply` runs one
//! log entry's commands in a write transaction and commits it as one atomic storage
//! batch; `read` runs a read-only command on a fresh snapshot without waiting for apply.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use keel_storage::{Storage, WriteBatch, WriteOptions, WriterSession};
use smallvec::SmallVec;

use crate::command::{flags, lookup, CommandSpec};
use crate::ctx::ApplyCtx;
use crate::cursor::CursorTable;
use crate::error::{CmdError, Result};
use crate::eviction::{pick_victims, used_memory, AccessSlot, AccessTable, EvictionPolicy};
use crate::exec::{Access, Exec};
use crate::gate::{CallGate, CallGates, DenyAll};
use crate::keys;
use crate::kv::{LatestReader, SnapshotReader, WriteTx};
use crate::member_prefetch::{Followed, Members};
use crate::meta::Meta;
use crate::reply::{errors, Reply};

/// Name of the internal record holding the last applied log index.
const APPLIED_INDEX: &str = "applied-index";

/// `keys::internal_key(APPLIED_INDEX)`, built at compile time: every group writes it,
/// and with a write per group (pipeline 1) building it was an allocation per write.
static APPLIED_INDEX_KEY: [u8; 1 + APPLIED_INDEX.len()] = {
    let mut k = [keys::INTERNAL; 1 + APPLIED_INDEX.len()];
    let name = APPLIED_INDEX.as_bytes();
    let mut i = 0;
    while i < name.len() {
        k[1 + i] = name[i];
        i += 1;
    }
    k
};

/// One log entry's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// One command in database `db`.
    Command {
        /// Selected database.
        db: u8,
        /// The command and its arguments.
        args: Vec<Bytes>,
    },
    /// MULTI/EXEC: commands applied atomically, each with its database.
    Multi {
        /// (db, args) per queued command.
        cmds: Vec<(u8, Vec<Bytes>)>,
    },
    /// Delete these keys if they are expired at the entry's time (lazy expiry found them).
    ExpireDue {
        /// Database of the keys.
        db: u8,
        /// Keys seen expired by a reader.
        keys: Vec<Bytes>,
    },
    /// Active expiry: delete up to `max` keys whose time has come.
    ExpireCycle {
        /// Bound on keys deleted by this entry.
        max: usize,
    },
    /// Eviction under maxmemory: delete these (db, key) pairs if they still exist.
    Evict {
        /// The victims the leader picked.
        keys: Vec<(u8, Bytes)>,
    },
    /// Commit of an optimistic transaction (see [`crate::txn`]).
    TxnCommit {
        /// Database of the keys.
        db: u8,
        /// Log index the transaction's snapshot reflected.
        start_index: u64,
        /// The writes, each with the modification index it expects.
        writes: Vec<crate::txn::TxnKeyWrite>,
    },
    /// An entry run with its caller's permissions: each command a script inside `op`
    /// calls is checked by the gate the engine's [`CallGates`] make of `user` and
    /// `rules` (see [`crate::gate`]). `op` is a `Command` or a `Multi`.
    AsUser {
        /// The caller's name, for the refusals' texts.
        user: Bytes,
        /// The caller's permissions, in the front-end's words.
        rules: Bytes,
        /// The entry itself.
        op: Box<Op>,
    },
}

/// What applying an entry produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    /// One reply per command (one for `Command`, one per queued command for `Multi`, the
    /// count of deleted keys for expiry entries).
    pub replies: Replies,
    /// Keys modified, as (db, key), for WATCH and keyspace notifications.
    pub touched: crate::exec::Touched,
    /// Keyspace events raised, in order (notify-keyspace-events).
    pub events: Vec<crate::exec::KeyEvent>,
}

/// An entry's replies: one for all but MULTI, kept inline.
pub type Replies = smallvec::SmallVec<[Reply; 1]>;

/// Keys handed to [`Storage::prefetch`] at a time.
const WINDOW: usize = keel_storage::cache_hint::PREFETCH_WINDOW;

/// The metadata keys of one [`Engine::prefetch`] window, in one reused buffer.
#[derive(Debug, Default)]
pub struct PrefetchScratch {
    /// The keys, back to back.
    keys: Vec<u8>,
    /// Where each key ends in `keys`.
    ends: SmallVec<[usize; WINDOW]>,
}

impl PrefetchScratch {
    fn clear(&mut self) {
        self.keys.clear();
        self.ends.clear();
    }

    fn push(&mut self, db: u8, key: &[u8]) {
        keys::push_meta_key(&mut self.keys, db, key);
        self.ends.push(self.keys.len());
    }

    fn push_sub(&mut self, version: u64, suffix: &[u8]) {
        let start = self.keys.len();
        keys::push_sub_key(&mut self.keys, version, suffix);
        // A run of pops of one list names its end chunk once per pop: asking again is a
        // hash probe for nothing.
        let n = self.ends.len();
        let prev = if n > 1 { self.ends[n - 2] } else { 0 };
        if n > 0 && self.keys[prev..start] == self.keys[start..] {
            self.keys.truncate(start);
            return;
        }
        self.ends.push(self.keys.len());
    }

    /// Calls `f` with the keys pushed (if any), then clears them.
    fn with_window(&mut self, f: impl FnOnce(&[&[u8]])) {
        if self.ends.is_empty() {
            return;
        }
        {
            let mut start = 0;
            let keys: SmallVec<[&[u8]; WINDOW]> = self
                .ends
                .iter()
                .map(|&end| {
                    let k = &self.keys[start..end];
                    start = end;
                    k
                })
                .collect();
            f(&keys);
        }
        self.clear();
    }

    /// Whether the last key pushed is `key` of `db`.
    fn last_is(&self, db: u8, key: &[u8]) -> bool {
        let n = self.ends.len();
        let Some(&end) = self.ends.last() else {
            return false;
        };
        let start = if n > 1 { self.ends[n - 2] } else { 0 };
        self.keys[start..end].strip_prefix(&keys::meta_prefix(db)[..]) == Some(key)
    }
}

/// What a read produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadResult {
    /// The reply.
    pub reply: Reply,
    /// Keys found expired, as (db, key): the caller should log an `ExpireDue` for them.
    pub expired: Vec<(u8, Bytes)>,
}

/// The database state machine over one storage instance.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Storage>,
    cursors: Arc<CursorTable>,
    access: Arc<AccessTable>,
    /// Whether applied entries record keyspace events (see [`Engine::record_events`]).
    events_wanted: Arc<std::sync::atomic::AtomicBool>,
    /// The last written group's overlay, emptied, for the next group: a new overlay
    /// took three allocations (its table, its entries, the undo log), which a round of
    /// one write (a lone client, or any write at -P 1 when the funnel keeps up) paid
    /// alone.
    spare_tx: Arc<parking_lot::Mutex<Option<WriteTx>>>,
    /// Where the writes to storage stand in the log.
    marks: Arc<LogMarks>,
    /// Whether every group records its index in the store: a store that keeps its
    /// writes between checkpoints (bitcask, lsm) must hold, after a crash, the index of
    /// the last batch it kept. The memory engine's store is only ever read back from a
    /// checkpoint, so it records the index only while one is under way
    /// ([`Engine::begin_checkpoint`]): the record cost ~1,000 of SET -P 1's ~10,700
    /// instructions per request, a second key in a one-write group.
    record_every_group: bool,
    /// What makes a gated entry's gate ([`Op::AsUser`]), registered by the front-end.
    gates: Arc<OnceLock<Arc<dyn CallGates>>>,
}

/// Where the engine's writes to storage stand in the log.
#[derive(Debug, Default)]
struct LogMarks {
    /// Index of the last group handed to storage (set before its batch is written).
    writing: AtomicU64,
    /// Index of the last group written to storage (at open: the store's record).
    written: AtomicU64,
    /// Checkpoints under way; while there is one, every group records its index.
    checkpoints: AtomicU32,
}

/// Log entries applied one after another into one storage batch (see
/// [`Engine::apply_in`]): the per-batch costs — the applied-index record where there is
/// one, publishing, pruning — are paid once for the group instead of once per entry.
pub struct Group {
    /// The overlay, created by the first entry (an empty group holds nothing).
    tx: Option<WriteTx>,
    last_seq: Option<u64>,
}

impl Group {
    /// Keys a group may write before it should go to storage: enough to amortise the
    /// per-batch costs. Chosen while the overlay was an ordered map that deepened with
    /// every key (callgrind, SET -P 16: a whole round per group ~12,150 instr/req, 64
    /// keys ~12,030, 16 keys ~11,910). Measured again with the hash-map overlay: 64 keys
    /// took LPUSH -P 16 from 6,439 to 6,265 instructions but SET's throughput to 0.958
    /// (CPU per request 1.05), also with the next window's lines prefetched.
    pub const MAX_KEYS: usize = 16;

    /// True when the group has reached [`Group::MAX_KEYS`] and should be written.
    pub fn is_full(&self) -> bool {
        self.len() >= Self::MAX_KEYS
    }

    /// The index of the last entry applied into the group, if any.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// Keys the group writes (its overlay's size).
    pub fn len(&self) -> usize {
        self.tx.as_ref().map_or(0, WriteTx::len)
    }

    /// True when the group writes nothing yet.
    pub fn is_empty(&self) -> bool {
        self.tx.as_ref().is_none_or(WriteTx::is_empty)
    }
}

/// What `Engine::memory_pressure` advises before a write that may grow memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryVerdict {
    /// Under the limit (or no limit): go ahead.
    Fine,
    /// Log an `Op::Evict` for these keys first, then check again.
    Evict(Vec<(u8, Bytes)>),
    /// Over the limit and nothing may be evicted: refuse with the OOM error.
    Oom,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("storage", &self.store.kind())
            .finish()
    }
}

/// Checks name and arity; returns the spec or the error reply Redis gives.
pub fn resolve(args: &[Bytes]) -> std::result::Result<&'static CommandSpec, Reply> {
    let Some(name) = args.first() else {
        return Err(Reply::err("ERR empty command"));
    };
    let Some(spec) = lookup(name) else {
        let shown = String::from_utf8_lossy(name).into_owned();
        return Err(Reply::err(errors::unknown_command(&shown, &args[1..])));
    };
    if !spec.arity_ok(args.len()) {
        return Err(Reply::err(errors::wrong_args(spec.name)));
    }
    Ok(spec)
}

impl Engine {
    /// An engine over `store`, at the applied index the store records.
    pub fn new(store: Arc<dyn Storage>) -> Result<Self> {
        let recorded = store
            .get(&APPLIED_INDEX_KEY)?
            .and_then(|r| <[u8; 8]>::try_from(r.as_ref()).ok())
            .map_or(0, u64::from_le_bytes);
        let marks = LogMarks {
            writing: AtomicU64::new(recorded),
            written: AtomicU64::new(recorded),
            checkpoints: AtomicU32::new(0),
        };
        Ok(Engine {
            record_every_group: !store.kind().checkpoint_only(),
            gates: Arc::new(OnceLock::new()),
            store,
            cursors: Arc::new(CursorTable::new()),
            access: Arc::new(AccessTable::new()),
            events_wanted: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            spare_tx: Arc::new(parking_lot::Mutex::new(None)),
            marks: Arc::new(marks),
        })
    }

    /// Whether entries applied from now on record keyspace events in
    /// [`Applied::events`] (on by default). Nobody reads them while keyspace
    /// notifications are off, and recording one costs a key copy and a vector for every
    /// write, so the server turns this off with notify-keyspace-events "".
    pub fn record_events(&self, on: bool) {
        self.events_wanted
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// The storage underneath.
    pub fn storage(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    /// The last log index whose batch reached storage (at open: the one the store
    /// records, 0 on an empty store): a restart replays the log after it.
    pub fn applied_index(&self) -> u64 {
        self.marks.written.load(Ordering::Acquire)
    }

    /// Makes every group record its index in the store until
    /// [`Engine::end_checkpoint`], and records the current one now, so that a checkpoint
    /// taken meanwhile (on any thread) holds the index of the last entry it holds. Call
    /// it where groups are written, never beside a [`Engine::write_group`].
    pub fn begin_checkpoint(&self) -> Result<()> {
        if !self.record_every_group && self.marks.checkpoints.load(Ordering::Relaxed) == 0 {
            let index = self.applied_index().to_le_bytes();
            let mut batch = WriteBatch::with_capacity(1);
            batch.put(
                Bytes::from_static(&APPLIED_INDEX_KEY),
                Bytes::copy_from_slice(&index),
            );
            self.store.write(batch, WriteOptions::DEFAULT)?;
        }
        self.marks.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Ends what [`Engine::begin_checkpoint`] began, once the checkpoint is written (or
    /// has failed).
    pub fn end_checkpoint(&self) {
        let _ = self
            .marks
            .checkpoints
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Whether the group being written records its index in the store.
    fn records_index(&self) -> bool {
        self.record_every_group || self.marks.checkpoints.load(Ordering::Relaxed) > 0
    }

    /// Applies one log entry deterministically and commits it as one storage batch.
    pub fn apply(&self, ctx: &ApplyCtx, op: &Op) -> Result<Applied> {
        let mut group = self.group();
        let applied = self.apply_in(&mut group, ctx, op)?;
        self.write_group(group)?;
        Ok(applied)
    }

    /// An empty group: consecutive log entries applied into one storage batch.
    pub fn group(&self) -> Group {
        Group {
            tx: None,
            last_seq: None,
        }
    }

    /// Starts loading what applying `writes` will touch (each key's metadata record and
    /// access slot, then the member records of collection writes) into the CPU cache.
    /// The apply loop calls it for a round's writes, with the commands the connections
    /// resolved (None: resolved here), before applying the first, so that their cache
    /// misses overlap instead of coming one per write.
    pub fn prefetch<'a>(
        &self,
        scratch: &mut PrefetchScratch,
        writes: impl IntoIterator<Item = (&'a Op, Option<&'static CommandSpec>)> + Clone,
    ) {
        scratch.clear();
        if self.prefetch_alone(writes.clone()) {
            return;
        }
        for (op, spec) in writes.clone() {
            let Op::Command { db, args } = op else {
                continue;
            };
            let Some(spec) = spec.or_else(|| resolve(args).ok()) else {
                continue;
            };
            for key in spec.key_positions(args.len()).filter_map(|p| args.get(p)) {
                // A pipeline of writes to one key (LPUSH or HSET of one list or hash)
                // needs it once.
                if scratch.last_is(*db, key) {
                    continue;
                }
                self.access.prefetch(*db, key);
                scratch.push(*db, key);
                if scratch.ends.len() == WINDOW {
                    self.prefetch_window(scratch);
                }
            }
        }
        self.prefetch_window(scratch);
        self.prefetch_members(scratch, writes);
    }

    /// [`Engine::prefetch`] of a round that holds one write naming one key and no
    /// members (SET, INCR, DEL of one key): true when it was that and is done. There
    /// are no misses of different keys to overlap, and the write's own look-ups follow
    /// at once, so the storage probe only repeated them (SET with a round to itself,
    /// as most -P 1 writes have at native speed: ~12,200 -> ~11,500 instructions). The
    /// access slot's line is still asked for: the write touches it before its own
    /// look-ups, and this way the two misses overlap.
    fn prefetch_alone<'a>(
        &self,
        writes: impl IntoIterator<Item = (&'a Op, Option<&'static CommandSpec>)>,
    ) -> bool {
        let mut it = writes.into_iter();
        let (Some((Op::Command { db, args }, spec)), None) = (it.next(), it.next()) else {
            return false;
        };
        let Some(spec) = spec.or_else(|| resolve(args).ok()) else {
            return false;
        };
        if Members::of(spec.name).is_some() {
            return false;
        }
        let mut keys = spec.key_positions(args.len()).filter_map(|p| args.get(p));
        match (keys.next(), keys.next()) {
            (Some(key), None) => {
                self.access.prefetch(*db, key);
                true
            }
            _ => false,
        }
    }

    /// The second pass of [`Engine::prefetch`]: the member records that collection
    /// writes read (see [`crate::member_prefetch`]), with each collection's version read
    /// from its metadata record (requested by the first pass) once per run of writes to
    /// the same key.
    fn prefetch_members<'a>(
        &self,
        scratch: &mut PrefetchScratch,
        writes: impl IntoIterator<Item = (&'a Op, Option<&'static CommandSpec>)>,
    ) {
        let mut followed: Option<(u8, &'a [u8], Option<Followed>)> = None;
        for (op, spec) in writes {
            let Op::Command { db, args } = op else {
                continue;
            };
            let Some(spec) = spec.or_else(|| resolve(args).ok()) else {
                continue;
            };
            let Some(kind) = Members::of(spec.name) else {
                continue;
            };
            let Some(key) = args.get(1) else {
                continue;
            };
            let same = matches!(followed, Some((d, k, _)) if d == *db && k == &key[..]);
            if !same {
                let meta = self
                    .store
                    .get(&keys::meta_key_buf(*db, key))
                    .ok()
                    .flatten()
                    .and_then(|raw| Meta::decode(key, raw).ok());
                followed = Some((*db, key, meta.as_ref().and_then(Followed::of)));
            }
            let Some((_, _, Some(c))) = followed.as_mut() else {
                continue;
            };
            let version = c.version;
            kind.each(args, c, |m| {
                scratch.push_sub(version, m);
                if scratch.ends.len() == WINDOW {
                    self.prefetch_window(scratch);
                }
            });
        }
        self.prefetch_window(scratch);
    }

    /// Starts loading what a run of reads about to be served one by one will look up
    /// (each key's metadata record, its newest value and its access slot), so that
    /// their cache misses overlap: a connection calls it for the keys of the reads it
    /// has parsed from one input (a pipeline of GETs). Safe beside the writer.
    pub fn prefetch_reads<'a>(
        &self,
        scratch: &mut PrefetchScratch,
        keys: impl IntoIterator<Item = (u8, &'a [u8])>,
    ) {
        scratch.clear();
        let mut windows = 0;
        for (db, key) in keys {
            // A pipeline of reads of one key (LRANGE of one list) needs it once.
            if scratch.last_is(db, key) {
                continue;
            }
            self.access.prefetch(db, key);
            scratch.push(db, key);
            if scratch.ends.len() == WINDOW {
                self.prefetch_read_window(scratch);
                windows += 1;
            }
        }
        // One key alone has no misses to overlap, and its read follows at once.
        if windows == 0 && scratch.ends.len() < 2 {
            scratch.clear();
            return;
        }
        self.prefetch_read_window(scratch);
    }

    /// [`Engine::prefetch_reads`] for the keys of one read naming several (MGET,
    /// EXISTS, SUNION), which it would otherwise look up one miss after another.
    fn prefetch_keys_of(&self, spec: &'static CommandSpec, db: u8, args: &[Bytes]) {
        // Most reads name one key (first == last): skip them before walking anything.
        if spec.first_key <= 0 || spec.first_key == spec.last_key || args.len() < 3 {
            return;
        }
        let keys = spec.key_positions(args.len()).filter_map(|p| args.get(p));
        thread_local! {
            static SCRATCH: std::cell::RefCell<PrefetchScratch> =
                std::cell::RefCell::new(PrefetchScratch::default());
        }
        SCRATCH.with(|s| {
            if let Ok(mut scratch) = s.try_borrow_mut() {
                self.prefetch_reads(&mut scratch, keys.map(|k| (db, &k[..])));
            }
        });
    }

    fn prefetch_read_window(&self, scratch: &mut PrefetchScratch) {
        scratch.with_window(|keys| self.store.prefetch_reads(keys));
    }

    fn prefetch_window(&self, scratch: &mut PrefetchScratch) {
        scratch.with_window(|keys| self.store.prefetch(keys));
    }

    /// Applies one log entry into `group`: later entries of the group read its writes,
    /// readers of the store see none of them until [`Engine::write_group`]. On an error
    /// the group holds part of the entry and must be dropped, not written.
    pub fn apply_in(&self, group: &mut Group, ctx: &ApplyCtx, op: &Op) -> Result<Applied> {
        let mut out = Applied::default();
        self.apply_into(group, ctx, op, None, &mut out)?;
        Ok(out)
    }

    /// [`Engine::apply_in`] into `out` (its previous content replaced; after an error,
    /// what it holds means nothing), for a caller that already resolved an
    /// `Op::Command`'s `args[0]` to `spec` and checked its arity (the front-end's
    /// dispatcher, from this crate's command table), sparing a second lookup. `None`
    /// resolves here, as replay and followers do; both give the same spec, so the entry
    /// applies the same.
    ///
    /// Why an out-parameter: returned by value, the 128-byte `Applied` was copied at
    /// each level on its way to the funnel's hooks, and the copies' vector loads
    /// stalled on the scalar stores that had just built it (perf put two thirds of
    /// `ApplyLoop::write`'s samples there).
    pub fn apply_into(
        &self,
        group: &mut Group,
        ctx: &ApplyCtx,
        op: &Op,
        spec: Option<&'static CommandSpec>,
        out: &mut Applied,
    ) -> Result<()> {
        out.replies.clear();
        let tx = group.tx.get_or_insert_with(|| {
            self.spare_tx
                .lock()
                .take()
                .unwrap_or_else(|| WriteTx::new(Arc::clone(&self.store)))
        });
        if !matches!(
            op,
            Op::Command { .. } | Op::Multi { .. } | Op::AsUser { .. }
        ) {
            // Commands start their own undo scope in run_one, which alone knows whether
            // one may leave metadata held; marking here too cost SET -P 16 ~35
            // instructions per request.
            tx.mark();
            tx.release_held();
        }
        // The entry's Exec borrows the group's overlay: it ends with this block, before
        // the group is touched again.
        {
            let mut ex = Exec::for_entry(
                tx,
                ctx,
                &self.cursors,
                &self.access,
                self.events_wanted
                    .load(std::sync::atomic::Ordering::Relaxed),
            );
            let replies = &mut out.replies;
            // A gated entry runs its command or transaction with the caller's gate.
            let op = match op {
                Op::AsUser {
                    user,
                    rules,
                    op: inner,
                } if matches!(**inner, Op::Command { .. } | Op::Multi { .. }) => {
                    ex.gate = Some(self.gate(user, rules));
                    &**inner
                }
                other => other,
            };
            match op {
                Op::Command { db, args } => {
                    replies.push(run_one(&mut ex, *db, args, spec)?);
                }
                Op::Multi { cmds } => {
                    for (db, args) in cmds {
                        replies.push(run_one(&mut ex, *db, args, None)?);
                    }
                }
                // Holding anything else: the codec reads nothing else inside; a caller
                // building one gets an error reply, not a silent apply.
                Op::AsUser { .. } => {
                    replies.push(Reply::err("ERR a gated entry holds only commands"))
                }
                Op::ExpireDue { db, keys } => {
                    ex.db = *db;
                    let mut n = 0;
                    for k in keys {
                        // meta() deletes the key inside this entry if it is due at its time.
                        let mk = keys::meta_key(*db, k);
                        if ex.contains(&mk)? && run_cmd(ex.meta(k))?.is_none() {
                            n += 1;
                        }
                    }
                    replies.push(Reply::Int(n));
                }
                Op::ExpireCycle { max } => {
                    let n = crate::types::expire::expire_cycle(&mut ex, *max)?;
                    replies.push(Reply::Int(n as i64));
                }
                Op::Evict { keys } => {
                    let mut n = 0;
                    for (db, k) in keys {
                        if let Some(meta) = run_cmd(ex.meta_in(*db, k))? {
                            run_cmd(ex.delete_key_in(*db, k, &meta))?;
                            ex.notify_in(*db, 'e', "evicted", k);
                            n += 1;
                        }
                    }
                    replies.push(Reply::Int(n));
                }
                Op::TxnCommit { db, writes, .. } => {
                    ex.db = *db;
                    let reply = match crate::txn::apply_commit(&mut ex, *db, writes) {
                        Ok(()) => Reply::Ok,
                        Err(CmdError::Reply(r)) => {
                            if let Some(tx) = ex.tx_mut() {
                                tx.rollback();
                            }
                            ex.touched.clear();
                            ex.events.clear();
                            r
                        }
                        Err(CmdError::Engine(e)) => return Err(e),
                    };
                    replies.push(reply);
                }
            }
            out.touched = std::mem::take(&mut ex.touched);
            out.events = std::mem::take(&mut ex.events);
        }
        group.last_seq = Some(ctx.seq);
        Ok(())
    }

    /// Registers what turns a gated entry's user and rules into its gate (the
    /// front-end's ACL); false if one was registered already (it stays).
    pub fn set_call_gates(&self, gates: Arc<dyn CallGates>) -> bool {
        self.gates.set(gates).is_ok()
    }

    /// The gate of a gated entry's `user` and `rules`: refusing everything when no
    /// front-end registered its gates.
    pub fn gate(&self, user: &Bytes, rules: &Bytes) -> Arc<dyn CallGate> {
        match self.gates.get() {
            Some(g) => g.gate(user, rules),
            None => Arc::new(DenyAll),
        }
    }

    /// A writer session on the store for the calling thread while the result lives (see
    /// `Storage::begin_writer_session`): for a round of writes, its reads, prefetches
    /// and group writes, from one thread.
    pub fn writer_session(&self) -> WriterSession {
        WriterSession::begin(&self.store)
    }

    /// Writes everything `group` applied as one atomic storage batch; the index of its
    /// last entry becomes the applied index, recorded in the batch where the store needs
    /// it (see [`Engine::begin_checkpoint`]; a restart replays the log after it).
    pub fn write_group(&self, mut group: Group) -> Result<()> {
        let written = self.write_group_in(&mut group);
        if let Some(tx) = group.tx.take() {
            *self.spare_tx.lock() = Some(tx);
        }
        written
    }

    /// [`Engine::write_group`] of a group that stays with its owner, emptied, its
    /// overlay kept for the next entries unless one large entry grew it. Why: the
    /// 176-byte overlay moved out of the group, into the engine's spare slot and back
    /// into the next group, and the group itself (184 bytes) out of the apply loop, a
    /// `memcpy` each, five per round: at -P 1, where a round is one write, five per
    /// write. On an error the group may hold part of the batch: drop it.
    pub fn write_group_in(&self, group: &mut Group) -> Result<()> {
        let Some(seq) = group.last_seq.take() else {
            return Ok(());
        };
        let Some(tx) = group.tx.as_mut() else {
            return Ok(());
        };
        if self.records_index() {
            tx.mark();
            let index = tx.build(8, |b| b.extend_from_slice(&seq.to_le_bytes()));
            tx.put(Bytes::from_static(&APPLIED_INDEX_KEY), index);
        }
        let batch = tx.take_batch();
        if !tx.reusable() {
            group.tx = None;
        }
        // `writing` goes up before the batch is visible and `written` after: `begin`
        // reads them on either side of its snapshot.
        self.marks.writing.store(seq, Ordering::Release);
        self.store.write(batch, WriteOptions::DEFAULT)?;
        self.marks.written.store(seq, Ordering::Release);
        Ok(())
    }

    /// The access table (OBJECT IDLETIME/FREQ, eviction).
    pub fn access(&self) -> &AccessTable {
        &self.access
    }

    /// Memory as counted for `maxmemory` (see [`crate::eviction::used_memory`]).
    pub fn used_memory(&self) -> u64 {
        used_memory(self.store.as_ref())
    }

    /// Decides what a write that may grow memory must do under `maxmemory` bytes
    /// (0 = unlimited) and `policy`, sampling `samples` keys per victim.
    pub fn memory_pressure(
        &self,
        maxmemory: u64,
        policy: EvictionPolicy,
        samples: usize,
        now_ms: u64,
        seed: u64,
    ) -> Result<MemoryVerdict> {
        if maxmemory == 0 {
            return Ok(MemoryVerdict::Fine);
        }
        let stats = self.store.stats();
        let used = stats.live_bytes + stats.live_keys * crate::eviction::PER_KEY_OVERHEAD;
        if used <= maxmemory {
            return Ok(MemoryVerdict::Fine);
        }
        if policy == EvictionPolicy::NoEviction {
            return Ok(MemoryVerdict::Oom);
        }
        // Evict about as many average-sized keys as the excess, in bounded rounds.
        let avg = (used / stats.live_keys.max(1)).max(1);
        let want = (used - maxmemory).div_ceil(avg).clamp(1, 64) as usize;
        let victims = pick_victims(
            self.store.snapshot(),
            &self.access,
            policy,
            samples.max(1),
            want,
            now_ms,
            seed,
        )?;
        Ok(if victims.is_empty() {
            MemoryVerdict::Oom
        } else {
            MemoryVerdict::Evict(victims)
        })
    }

    /// The cached scripts (see `types::scripting`): how many, and their bodies' bytes.
    pub fn cached_scripts(&self) -> Result<(u64, u64)> {
        self.count_records(&keys::script_key(""))
    }

    /// The function libraries (see `types::functions`): how many libraries, their
    /// payloads' bytes, and how many functions they register.
    pub fn function_libraries(&self) -> Result<(u64, u64, u64)> {
        let (libraries, bytes) = self.count_records(&keys::library_key(b""))?;
        let (functions, _) = self.count_records(&keys::function_key(b""))?;
        Ok((libraries, bytes, functions))
    }

    /// How many internal records have `prefix`, and their values' bytes.
    fn count_records(&self, prefix: &[u8]) -> Result<(u64, u64)> {
        use crate::kv::KvRead;
        let reader = SnapshotReader::new(self.store.snapshot());
        let (mut n, mut bytes) = (0u64, 0u64);
        for pair in reader.scan(
            keel_storage::ScanRange::prefix(prefix),
            keel_storage::Direction::Forward,
        ) {
            let (_, body) = pair?;
            n += 1;
            bytes += body.len() as u64;
        }
        Ok((n, bytes))
    }

    /// Digest of the logical keyspace at `now_ms` (see [`crate::digest`]).
    pub fn digest(&self, now_ms: u64) -> Result<u64> {
        crate::digest::digest(self.store.snapshot(), now_ms)
    }

    /// Starts an optimistic transaction in `db` at a fresh snapshot.
    pub fn begin(&self, db: u8) -> Result<crate::txn::Txn> {
        let (snapshot, start) = self.snapshot_at_index();
        Ok(crate::txn::Txn::new(
            SnapshotReader::new(snapshot),
            db,
            start,
        ))
    }

    /// A fresh snapshot and a log index it reflects: every write up to it is visible.
    /// The index is exact unless a group was being written at each of a few tries (the
    /// snapshot may then hold that group too), without making writers wait.
    fn snapshot_at_index(&self) -> (Box<dyn keel_storage::Snapshot>, u64) {
        const TRIES: usize = 4;
        let mut i = 0;
        loop {
            // Batches become visible in index order, and `written` is stored only once
            // its batch is: the snapshot holds everything up to `before`. When no group
            // had gone to storage past it by the time the snapshot was taken, it holds
            // nothing more either.
            let before = self.marks.written.load(Ordering::Acquire);
            let snapshot = self.store.snapshot();
            i += 1;
            if self.marks.writing.load(Ordering::Acquire) == before || i == TRIES {
                return (snapshot, before);
            }
        }
    }

    /// Collects up to `max_keys` orphaned sub-keys of dropped collections (see
    /// [`crate::gc`]); runs outside the log, at each replica's own pace.
    pub fn gc_step(&self, max_keys: usize) -> Result<crate::gc::GcProgress> {
        crate::gc::gc_step(&self.store, max_keys)
    }

    /// Runs a read-only command on a fresh snapshot at time `now_ms`.
    pub fn read(&self, db: u8, now_ms: u64, args: &[Bytes]) -> Result<ReadResult> {
        match resolve(args) {
            Ok(spec) => self.read_spec(spec, db, now_ms, args),
            Err(reply) => Ok(ReadResult {
                reply,
                expired: Vec::new(),
            }),
        }
    }

    /// [`Engine::read`] for a caller that already resolved `args[0]` to `spec` and
    /// checked its arity (the front-end's dispatcher), sparing a second lookup.
    pub fn read_spec(
        &self,
        spec: &'static CommandSpec,
        db: u8,
        now_ms: u64,
        args: &[Bytes],
    ) -> Result<ReadResult> {
        if spec.is_write() {
            return Ok(ReadResult {
                reply: Reply::err(format!(
                    "ERR '{}' is a write command and must go through the log",
                    spec.name
                )),
                expired: Vec::new(),
            });
        }
        // A one-key command's access slot is located (its line asked for) now and
        // recorded after the read, so the access table's miss overlaps the store's
        // instead of stalling ahead of it.
        let touch = plan_touch(&self.access, spec, db, args);
        self.prefetch_keys_of(spec, db, args);
        if spec.flags & flags::POINT_READ != 0 {
            let latest = Access::Latest(LatestReader::new(&*self.store));
            let (reply, read) = self.run_read(latest, spec, db, now_ms, args)?;
            if !read.mixed {
                finish_touch(&self.access, touch, spec, db, args, now_ms);
                return Ok(ReadResult {
                    reply,
                    expired: read.expired,
                });
            }
        }
        let snapshot = Access::Read(SnapshotReader::new(self.store.snapshot()));
        let (reply, read) = self.run_read(snapshot, spec, db, now_ms, args)?;
        finish_touch(&self.access, touch, spec, db, args, now_ms);
        Ok(ReadResult {
            reply,
            expired: read.expired,
        })
    }

    /// [`Engine::read_spec`] of a read-only script (EVAL_RO, EVALSHA_RO) for a
    /// client-side caching client: also the keys the script's read-only commands
    /// named, which that client must hear about when they change.
    ///
    /// With a `gate` (a limited caller), each command the script runs is checked first;
    /// the refusals come back with the keys, as events of class
    /// [`crate::exec::REFUSED_CALL`].
    pub fn read_script(
        &self,
        spec: &'static CommandSpec,
        db: u8,
        now_ms: u64,
        args: &[Bytes],
        gate: Option<Arc<dyn CallGate>>,
    ) -> Result<(ReadResult, Vec<crate::exec::KeyEvent>)> {
        // Not through `run_read`: a third caller took it out of line from the GET path
        // (GET -P 16, ~70 more instructions per request).
        let snapshot = Access::Read(SnapshotReader::new(self.store.snapshot()));
        let mut ex = Exec::new(snapshot, db, now_ms, 0, read_seed(now_ms), &self.cursors);
        ex.access_table = Some(&self.access);
        ex.gate = gate;
        let reply = match (spec.handler)(&mut ex, args) {
            Ok(r) => r,
            Err(CmdError::Reply(r)) => r,
            Err(CmdError::Engine(e)) => return Err(e),
        };
        let noted = std::mem::take(&mut ex.events);
        let result = ReadResult {
            reply,
            expired: std::mem::take(&mut ex.expired),
        };
        Ok((result, noted))
    }

    fn run_read(
        &self,
        access: Access<'_>,
        spec: &'static CommandSpec,
        db: u8,
        now_ms: u64,
        args: &[Bytes],
    ) -> Result<(Reply, ReadEnd)> {
        let mut ex = Exec::new(access, db, now_ms, 0, read_seed(now_ms), &self.cursors);
        ex.access_table = Some(&self.access);
        let reply = match (spec.handler)(&mut ex, args) {
            Ok(r) => r,
            Err(CmdError::Reply(r)) => r,
            Err(CmdError::Engine(e)) => return Err(e),
        };
        Ok((
            reply,
            ReadEnd {
                mixed: ex.read_mixed(),
                expired: std::mem::take(&mut ex.expired),
            },
        ))
    }
}

/// A fresh seed per read: reads are not replicated, so they need no determinism, and
/// seeding by the clock alone made every SRANDMEMBER within one millisecond pick the
/// same members.
fn read_seed(now_ms: u64) -> u64 {
    now_ms ^ crate::ctx::local_random()
}

/// What a finished read leaves besides its reply.
struct ReadEnd {
    /// The point read read more than once (see [`LatestReader`]): run it on a snapshot.
    mixed: bool,
    /// Keys found expired, for the server to delete through the log.
    expired: Vec<(u8, Bytes)>,
}

/// Runs one command inside the entry's transaction; an error reply rolls back just that
/// command's writes (Redis: a failing command in EXEC does not undo the others). `spec`
/// is `args[0]`'s command when the caller resolved it already.
fn run_one(
    ex: &mut Exec,
    db: u8,
    args: &[Bytes],
    spec: Option<&'static CommandSpec>,
) -> Result<Reply> {
    debug_assert!(spec.is_none_or(|s| resolve(args).is_ok_and(|r| std::ptr::eq(r, s))));
    let spec = match spec.map_or_else(|| resolve(args), Ok) {
        Ok(s) => s,
        Err(reply) => return Ok(reply),
    };
    run_spec(ex, db, args, spec)
}

/// [`run_one`] of a resolved command: also what a script's `redis.call` runs, so a
/// command inside a script has the same undo scope, access record and events as one
/// sent alone.
#[inline(always)]
pub(crate) fn run_spec(
    ex: &mut Exec,
    db: u8,
    args: &[Bytes],
    spec: &'static CommandSpec,
) -> Result<Reply> {
    ex.db = db;
    if let Some(access) = &ex.access_table {
        touch_keys(access, spec, db, args, ex.now_ms);
    }
    if let Some(tx) = ex.tx_mut() {
        tx.mark();
        if spec.flags & flags::HOLDS_META == 0 {
            tx.release_held();
        }
    }
    let touched_before = ex.touched.len();
    let events_before = ex.events.len();
    match (spec.handler)(ex, args) {
        Ok(r) => {
            if ex.events.len() > events_before {
                ex.raise_emptied();
            }
            Ok(r)
        }
        Err(CmdError::Reply(r)) => {
            if let Some(tx) = ex.tx_mut() {
                tx.rollback();
            }
            ex.touched.truncate(touched_before);
            ex.events.truncate(events_before);
            Ok(r)
        }
        Err(CmdError::Engine(e)) => Err(e),
    }
}

/// Records an access to each key `spec` names in `args` (LRU/LFU bookkeeping), except
/// for the commands Redis lets look without touching.
fn touch_keys(access: &AccessTable, spec: &CommandSpec, db: u8, args: &[Bytes], now_ms: u64) {
    if spec.flags & flags::NO_TOUCH != 0 {
        return;
    }
    for pos in spec.key_positions(args.len()) {
        if let Some(k) = args.get(pos) {
            access.touch(db, k, now_ms);
        }
    }
}

/// How a read records its keys' accesses once it has run.
#[derive(Clone, Copy)]
enum Touch {
    /// Not at all (the commands Redis lets look without touching).
    None,
    /// The one key's slot, located ahead (see [`AccessTable::locate`]).
    One(AccessSlot),
    /// Every key `spec` names, looked up then.
    All,
}

/// Plans the access records of a read of `args`, locating a one-key command's slot.
fn plan_touch(access: &AccessTable, spec: &CommandSpec, db: u8, args: &[Bytes]) -> Touch {
    if spec.flags & flags::NO_TOUCH != 0 {
        return Touch::None;
    }
    if spec.first_key > 0 && spec.first_key == spec.last_key {
        return match args.get(spec.first_key as usize) {
            Some(k) => Touch::One(access.locate(db, k)),
            None => Touch::None,
        };
    }
    Touch::All
}

/// Records the accesses [`plan_touch`] planned.
fn finish_touch(
    access: &AccessTable,
    touch: Touch,
    spec: &CommandSpec,
    db: u8,
    args: &[Bytes],
    now_ms: u64,
) {
    match touch {
        Touch::None => {}
        Touch::One(slot) => access.touch_slot(slot, now_ms),
        Touch::All => touch_keys(access, spec, db, args, now_ms),
    }
}

/// Unwraps a command result where only engine errors are possible.
fn run_cmd<T>(r: crate::error::CmdResult<T>) -> Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(CmdError::Engine(e)) => Err(e),
        Err(CmdError::Reply(r)) => Err(crate::error::EngineError::corrupt(
            "metadata",
            b"",
            format!("unexpected command error in internal op: {r:?}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compile-time key is the one stores written before it hold.
    #[test]
    fn applied_index_key_is_the_internal_key() {
        assert_eq!(
            &APPLIED_INDEX_KEY[..],
            &keys::internal_key(APPLIED_INDEX)[..]
        );
    }
}
