//! Read and write access to storage as commands see it: a snapshot for reads, and for
//! writes a transaction overlay that buffers one log entry's changes (reads see them
//! first) and becomes a single atomic storage batch.

use std::cell::{Cell, OnceCell};
use std::collections::BTreeSet;
use std::iter::Peekable;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use indexmap::map::Entry;
use indexmap::IndexMap;
use keel_storage::{Direction, KeyAt, KvPair, ScanRange, Snapshot, Storage, ValueRef, WriteBatch};

use crate::error::Result;
use crate::exec::TouchedKey;
use crate::keys;
use crate::meta::Meta;

/// A boxed iterator over key/value pairs in scan order.
pub type PairIter<'a> = Box<dyn Iterator<Item = Result<KvPair>> + 'a>;

/// Where a command reads from.
pub trait KvRead {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>>;
    /// Calls `f` once with the value of `key` (None: absent), lent where the source can
    /// lend it (see [`Storage::read_with`]); `f` must not read storage itself.
    fn read_with(&self, key: &[u8], f: &mut dyn FnMut(Option<ValueRef<'_>>)) -> Result<()> {
        f(self.get(key)?.map(ValueRef::Owned));
        Ok(())
    }
    /// Keys of `range` in `dir` order.
    fn scan(&self, range: ScanRange, dir: Direction) -> PairIter<'_>;
    /// Calls `f` with the key and value of each of the first `limit` keys of `range` in
    /// `dir` order, for a reader that copies out only what it needs (storage may then
    /// lend them instead of copying keys and values out); `f` must not read storage
    /// itself.
    fn visit_entries(
        &self,
        range: ScanRange,
        dir: Direction,
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        for r in self.scan(range, dir).take(limit) {
            let (k, v) = r?;
            f(&k, &v);
        }
        Ok(())
    }

    /// The entry at position `n` (0: the first) of `range` in this view, where the
    /// caller knows that `live` keys are there (a collection's length): found from
    /// storage's order statistics ([`Storage::key_at`]) without walking to it. Ok(None)
    /// when that cannot answer exactly (an engine without them, deleted keys that
    /// snapshots still hold, `n` past `live`): the caller walks instead, and finds the
    /// same entry.
    fn entry_at(&self, _range: &ScanRange, _live: u64, _n: u64) -> Result<Option<KvPair>> {
        Ok(None)
    }

    /// How many entries of `range` lie in `within` in this view, where the caller knows
    /// that `live` entries are in `range` (a collection's length): from storage's counts
    /// ([`Storage::count_within`]) without walking them. Ok(None) when those cannot
    /// answer exactly (as [`KvRead::entry_at`]): the caller walks, and counts the same.
    fn count_within(
        &self,
        _range: &ScanRange,
        _live: u64,
        _within: &ScanRange,
    ) -> Result<Option<u64>> {
        Ok(None)
    }
}

/// [`KvRead::count_within`] of a view without buffered writes: storage's part count
/// is the view's when storage holds as many keys in `range` as the view has live there.
fn stored_count(counts: Option<keel_storage::KeyCounts>, live: u64) -> Option<u64> {
    counts.filter(|c| c.keys == live).map(|c| c.within)
}

/// [`KvRead::entry_at`] of a view without buffered writes: `key_at` is exact when it
/// counts as many keys in `range` as the view has live there.
fn stored_entry_at(
    view: &dyn KvRead,
    key_at: Option<keel_storage::KeyAt>,
    live: u64,
) -> Result<Option<KvPair>> {
    match key_at {
        Some(keel_storage::KeyAt {
            key: Some(key),
            keys,
        }) if keys == live => entry_of(view, key),
        _ => Ok(None),
    }
}

/// `key` with its value in `view` (None if the view holds no such key).
fn entry_of(view: &dyn KvRead, key: Bytes) -> Result<Option<KvPair>> {
    Ok(view.get(&key)?.map(|v| (key, v)))
}

/// Reads from one storage snapshot.
pub struct SnapshotReader {
    snap: Box<dyn Snapshot>,
}

impl SnapshotReader {
    /// Wraps `snap`.
    pub fn new(snap: Box<dyn Snapshot>) -> Self {
        SnapshotReader { snap }
    }

    /// The storage sequence number the snapshot sees.
    pub fn seq(&self) -> u64 {
        self.snap.seq()
    }
}

impl KvRead for SnapshotReader {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        Ok(self.snap.get(key)?)
    }

    fn scan(&self, range: ScanRange, dir: Direction) -> PairIter<'_> {
        Box::new(self.snap.scan(range, dir).map(|r| r.map_err(Into::into)))
    }

    fn visit_entries(
        &self,
        range: ScanRange,
        dir: Direction,
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        Ok(self.snap.visit_entries(range, dir, limit, f)?)
    }

    fn entry_at(&self, range: &ScanRange, live: u64, n: u64) -> Result<Option<KvPair>> {
        if n >= live {
            return Ok(None);
        }
        stored_entry_at(self, self.snap.key_at(range, n), live)
    }

    fn count_within(
        &self,
        range: &ScanRange,
        live: u64,
        within: &ScanRange,
    ) -> Result<Option<u64>> {
        Ok(stored_count(self.snap.count_within(range, within), live))
    }
}

/// Reads of a command flagged as making one point read ([`crate::command::flags::POINT_READ`]):
/// straight from the latest state, without taking a snapshot (a snapshot's pin and
/// handle were most of a GET's storage cost). One read sees one moment, so it is as
/// consistent as a snapshot. A second read, or any scan, could combine two moments: the
/// reader then reports [`LatestReader::mixed`] and the command is run again on a
/// snapshot, so a wrong flag costs time, never a wrong answer.
pub struct LatestReader<'a> {
    store: &'a dyn Storage,
    reads: Cell<u32>,
}

impl<'a> LatestReader<'a> {
    /// Reads from `store`'s latest state.
    pub fn new(store: &'a dyn Storage) -> Self {
        LatestReader {
            store,
            reads: Cell::new(0),
        }
    }

    /// True when more than one read went to storage (the answer may mix moments).
    pub fn mixed(&self) -> bool {
        self.reads.get() > 1
    }
}

impl KvRead for LatestReader<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.reads.set(self.reads.get().saturating_add(1));
        Ok(self.store.get(key)?)
    }

    fn read_with(&self, key: &[u8], f: &mut dyn FnMut(Option<ValueRef<'_>>)) -> Result<()> {
        self.reads.set(self.reads.get().saturating_add(1));
        Ok(self.store.read_with(key, f)?)
    }

    fn scan(&self, range: ScanRange, dir: Direction) -> PairIter<'_> {
        self.reads.set(self.reads.get().saturating_add(2));
        Box::new(self.store.scan(range, dir).map(|r| r.map_err(Into::into)))
    }

    fn visit_entries(
        &self,
        range: ScanRange,
        dir: Direction,
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        self.reads.set(self.reads.get().saturating_add(2));
        Ok(self.store.visit_entries(range, dir, limit, f)?)
    }

    fn entry_at(&self, range: &ScanRange, live: u64, n: u64) -> Result<Option<KvPair>> {
        if n >= live {
            return Ok(None);
        }
        // The count and the key's read are two moments.
        self.reads.set(self.reads.get().saturating_add(2));
        stored_entry_at(self, self.store.key_at(range, n), live)
    }

    fn count_within(
        &self,
        range: &ScanRange,
        live: u64,
        within: &ScanRange,
    ) -> Result<Option<u64>> {
        // One moment: both counts come from one hold of storage's order.
        self.reads.set(self.reads.get().saturating_add(1));
        Ok(stored_count(self.store.count_within(range, within), live))
    }
}

/// Buffered writes of one log entry over the latest storage state. Only the apply loop
/// creates these, so "latest" cannot move underneath it.
///
/// Why a hash map with a lazily built order: most entries read and write single keys
/// (SET reads the old metadata, then puts it), and an ordered map paid a descent of key
/// comparisons for each of those (~600 instr per SET -P 16 under callgrind). The order
/// only matters to a scan that has to merge the overlay with storage; the first such
/// scan builds it, and from then on every write keeps it, so an entry that scans
/// repeatedly while it writes never re-sorts.
///
/// Why an index map: the undo log names a write by its position in the overlay, so the
/// overlay holds the only handle on a key. With a hash map the undo log held a clone,
/// and the first clone of a key built from a vector allocates a shared header (two
/// allocations per LPUSH, one per SET).
pub struct WriteTx {
    store: Arc<dyn Storage>,
    /// The buffered writes by key (None = delete).
    overlay: IndexMap<Bytes, Option<Bytes>, keel_storage::key_hash::BytesState>,
    /// The overlay's keys in order, once a scan needed them.
    order: OnceCell<BTreeSet<Bytes>>,
    /// Each write since the last [`WriteTx::mark`]: the overlay position it wrote and
    /// the value there before (None: the key was new, appended at that position).
    undo: Vec<(usize, Option<Option<Bytes>>)>,
    /// Where [`WriteTx::build`] writes records and keys, handed out as slices that share
    /// one allocation: see there.
    arena: BytesMut,
    /// One key's metadata kept decoded instead of written back (see [`WriteTx::hold`]);
    /// boxed, and kept once made, so that a transaction that never holds stays as small
    /// to move and as cheap to mark as before.
    held: Option<Box<HeldSlot>>,
}

/// The held metadata and what undoing the current scope restores.
#[derive(Debug, Default)]
struct HeldSlot {
    now: Option<Held>,
    /// `now` as it was when the current undo scope began, once the scope changed it.
    before: Option<Option<Held>>,
}

impl HeldSlot {
    /// Remembers `now` as the undo scope found it, before its first change in the scope.
    fn note(&mut self) {
        if self.before.is_none() {
            self.before = Some(self.now.clone());
        }
    }
}

/// Metadata [`WriteTx::hold`] keeps out of the overlay until it is released.
#[derive(Debug)]
struct Held {
    db: u8,
    key: TouchedKey,
    meta: Meta,
    /// The log index of the write that last changed it (the record's mod index).
    seq: u64,
}

/// By hand: every command that holds a key's metadata first clones it for its undo
/// scope ([`HeldSlot::note`]), and the derived clone copied the key through smallvec's
/// generic clone, byte by byte (~70 of that clone's ~130 instructions per RPOP -P 16).
impl Clone for Held {
    fn clone(&self) -> Self {
        Held {
            db: self.db,
            key: TouchedKey::from_slice(&self.key),
            meta: self.meta.clone(),
            seq: self.seq,
        }
    }
}

/// Keys an overlay has room for before it grows: a group's worth.
const OVERLAY_CAPACITY: usize = crate::engine::Group::MAX_KEYS;

/// Bytes the arena takes from the allocator at a time (or the build's size, if larger):
/// about a group of string writes' keys and records.
const ARENA_CHUNK: usize = 4096;

impl WriteTx {
    /// An empty transaction over `store`.
    pub fn new(store: Arc<dyn Storage>) -> Self {
        WriteTx {
            store,
            overlay: IndexMap::with_capacity_and_hasher(OVERLAY_CAPACITY, Default::default()),
            order: OnceCell::new(),
            // Sized like the overlay: growing from empty reallocated three times per
            // group of 16 keys.
            undo: Vec::with_capacity(OVERLAY_CAPACITY),
            arena: BytesMut::new(),
            held: None,
        }
    }

    /// Keeps `meta`, the new metadata of `key` in `db` written by the entry at log index
    /// `seq`, decoded instead of encoding it into the overlay; whatever key was held
    /// before is released first. Why: a pipeline of pushes or pops on one list rewrote
    /// and re-read its metadata record per command (~1,300 of LPUSH -P 16's ~5,900
    /// instructions); held, the record is encoded once, when released.
    ///
    /// The held record is stale in the overlay, so only code that asks [`WriteTx::held`]
    /// first may look at that key's metadata meanwhile: the engine releases before every
    /// command without [`crate::command::flags::HOLDS_META`] and every other entry, a
    /// write of the key's metadata record ([`WriteTx::put_meta_record`],
    /// [`WriteTx::delete_meta_record`], the only writers of one inside such a command)
    /// replaces it, and taking the batch releases it.
    pub fn hold(&mut self, db: u8, key: &[u8], meta: Meta, seq: u64) {
        let other = self
            .held_now()
            .is_some_and(|h| h.db != db || h.key.as_slice() != key);
        if other {
            self.release_held();
        }
        let slot = self.held.get_or_insert_with(Box::default);
        slot.note();
        match &mut slot.now {
            Some(h) => {
                h.meta = meta;
                h.seq = seq;
            }
            None => {
                slot.now = Some(Held {
                    db,
                    key: TouchedKey::from_slice(key),
                    meta,
                    seq,
                })
            }
        }
    }

    #[inline]
    fn held_now(&self) -> Option<&Held> {
        self.held.as_ref().and_then(|s| s.now.as_ref())
    }

    /// The metadata held for `key` in `db`, if it is the one held.
    pub fn held(&self, db: u8, key: &[u8]) -> Option<&Meta> {
        self.held_now()
            .filter(|h| h.db == db && h.key.as_slice() == key)
            .map(|h| &h.meta)
    }

    /// Writes the held metadata, if any, into the overlay.
    #[inline]
    pub fn release_held(&mut self) {
        if self.held_now().is_some() {
            self.write_held();
        }
    }

    #[inline(never)]
    fn write_held(&mut self) {
        let Some(h) = self.held.as_mut().and_then(|s| {
            s.note();
            s.now.take()
        }) else {
            return;
        };
        self.put_meta_record(h.db, &h.key, &h.meta, h.seq);
    }

    /// Buffers `meta` as the metadata record of `key` in `db`, written by the entry at
    /// log index `seq`, its storage key and record built in the arena.
    pub fn put_meta_record(&mut self, db: u8, key: &[u8], meta: &Meta, seq: u64) {
        self.put_record_built(db, key, meta.encoded_len(), |b| meta.encode_into(seq, b));
    }

    /// [`WriteTx::put_meta_record`] of the string `value` expiring at `expire_at`, from a
    /// borrowed value (see [`Meta::encode_string_into`]).
    pub fn put_string_record(
        &mut self,
        db: u8,
        key: &[u8],
        expire_at: Option<u64>,
        value: &[u8],
        seq: u64,
    ) {
        let len = Meta::string_encoded_len(expire_at, value.len());
        self.put_record_built(db, key, len, |b| {
            Meta::encode_string_into(seq, expire_at, value, b)
        });
    }

    /// Buffers the metadata record of `key` in `db`, `len` bytes written by `fill`.
    fn put_record_built(
        &mut self,
        db: u8,
        key: &[u8],
        len: usize,
        fill: impl FnOnce(&mut BytesMut),
    ) {
        self.drop_held_for(db, key);
        let rec = self.build(len, fill);
        let mkey = self.build(keys::META_PREFIX_LEN + key.len(), |b| {
            keys::write_meta_key(b, db, key)
        });
        self.put(mkey, rec);
    }

    /// Buffers the delete of `key`'s metadata record in `db`.
    pub fn delete_meta_record(&mut self, db: u8, key: &[u8]) {
        self.drop_held_for(db, key);
        self.delete(keys::meta_key(db, key));
    }

    /// Forgets the held metadata when it is `key`'s in `db`, whose record a write is
    /// replacing. Only the two metadata-record writers above call this: every other
    /// write of a metadata record comes from a command that released the hold first, and
    /// checking in [`WriteTx::buffer`] cost every write ~55 instructions (it stopped
    /// being inlined).
    #[inline]
    fn drop_held_for(&mut self, db: u8, key: &[u8]) {
        if let Some(s) = self.held.as_mut() {
            if s.now
                .as_ref()
                .is_some_and(|h| h.db == db && h.key.as_slice() == key)
            {
                s.note();
                s.now = None;
            }
        }
    }

    /// Whether `key` (a storage key) is the held metadata's record.
    #[inline]
    fn is_held_record(&self, key: &[u8]) -> bool {
        self.held_now().is_some_and(|h| {
            key.len() == keys::META_PREFIX_LEN + h.key.len()
                && key[keys::META_PREFIX_LEN..] == h.key[..]
                && key[..keys::META_PREFIX_LEN] == keys::meta_prefix(h.db)
        })
    }

    /// Bytes for a key or value of this transaction, `len` of them written by `fill`,
    /// built in the transaction's arena rather than an allocation of their own. A write
    /// allocated its metadata key and record and freed both once the group was stored;
    /// the allocator hands out blocks that were freed long ago, and reading the free
    /// block's link was a miss (the record's allocation alone was 2.9% of INCR -P 16's
    /// cycles). The arena's chunk is reused once every slice of it is gone, which is
    /// after the group is stored: engines copy what they keep. A slice someone keeps
    /// (a reply of a value read in a MULTI) keeps its chunk, and the arena takes a new one.
    pub fn build(&mut self, len: usize, fill: impl FnOnce(&mut BytesMut)) -> Bytes {
        if self.arena.capacity() < len {
            self.arena.reserve(len.max(ARENA_CHUNK));
        }
        fill(&mut self.arena);
        debug_assert_eq!(self.arena.len(), len, "build wrote other than its length");
        self.arena.split().freeze()
    }

    /// Buffers a put.
    pub fn put(&mut self, key: Bytes, value: Bytes) {
        self.buffer(key, Some(value));
    }

    /// Buffers a delete.
    pub fn delete(&mut self, key: Bytes) {
        self.buffer(key, None);
    }

    /// Buffers a put of `key` given as a slice, copied only if the overlay does not hold
    /// the key yet: a list's end record is rewritten by every push of a group, and
    /// allocating its key each time was ~4% of LPUSH -P 16's instructions.
    pub fn put_slice(&mut self, key: &[u8], value: Bytes) {
        self.buffer_slice(key, Some(value));
    }

    /// Buffers a delete of `key` given as a slice (see [`WriteTx::put_slice`]).
    pub fn delete_slice(&mut self, key: &[u8]) {
        self.buffer_slice(key, None);
    }

    #[inline]
    fn buffer_slice(&mut self, key: &[u8], value: Option<Bytes>) {
        debug_assert!(
            !self.is_held_record(key),
            "a held record written past its hold"
        );
        match self.overlay.get_full_mut(key) {
            Some((at, _, v)) => {
                let prev = std::mem::replace(v, value);
                self.undo.push((at, Some(prev)));
            }
            None => self.buffer(Bytes::copy_from_slice(key), value),
        }
    }

    #[inline]
    fn buffer(&mut self, key: Bytes, value: Option<Bytes>) {
        debug_assert!(
            !self.is_held_record(&key),
            "a held record written past its hold"
        );
        match self.overlay.entry(key) {
            Entry::Occupied(mut e) => {
                let prev = std::mem::replace(e.get_mut(), value);
                self.undo.push((e.index(), Some(prev)));
            }
            Entry::Vacant(e) => {
                if let Some(order) = self.order.get_mut() {
                    order.insert(e.key().clone());
                }
                self.undo.push((e.index(), None));
                e.insert(value);
            }
        }
    }

    /// Starts a new undo scope (each command of a MULTI gets one).
    #[inline]
    pub fn mark(&mut self) {
        self.undo.clear();
        if let Some(s) = self.held.as_mut() {
            s.before = None;
        }
    }

    /// Discards every write since the last [`WriteTx::mark`].
    pub fn rollback(&mut self) {
        while let Some((at, prev)) = self.undo.pop() {
            match prev {
                Some(p) => {
                    if let Some((_, v)) = self.overlay.get_index_mut(at) {
                        *v = p;
                    }
                }
                None => {
                    // New keys were appended in order and are undone newest first, so
                    // this one is the last.
                    debug_assert_eq!(at + 1, self.overlay.len());
                    if let Some((key, _)) = self.overlay.pop() {
                        if let Some(order) = self.order.get_mut() {
                            order.remove(&key);
                        }
                    }
                }
            }
        }
        if let Some(s) = self.held.as_mut() {
            if let Some(before) = s.before.take() {
                s.now = before;
            }
        }
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.overlay.is_empty() && self.held_now().is_none()
    }

    /// Keys written (puts and deletes), a held record counted once it is released.
    pub fn len(&self) -> usize {
        self.overlay.len()
    }

    /// The buffered writes as one storage batch.
    pub fn into_batch(mut self) -> WriteBatch {
        self.take_batch()
    }

    /// The buffered writes as one storage batch, leaving this transaction empty with
    /// its buffers' room kept, to be used again (see [`WriteTx::reusable`]).
    pub fn take_batch(&mut self) -> WriteBatch {
        self.release_held();
        if let Some(s) = self.held.as_mut() {
            s.before = None;
        }
        let mut b = WriteBatch::with_capacity(self.overlay.len());
        for (k, v) in self.overlay.drain(..) {
            match v {
                Some(v) => b.put(k, v),
                None => b.delete(k),
            };
        }
        self.undo.clear();
        self.order = OnceCell::new();
        b
    }

    /// Whether this empty transaction is worth keeping for the next group: its buffers
    /// are a group's size, not grown by one large entry (a MULTI of thousands of keys,
    /// or one command writing a key thousands of times, which grows only the undo log),
    /// whose room would stay held.
    pub fn reusable(&self) -> bool {
        let small = 4 * OVERLAY_CAPACITY;
        self.overlay.is_empty() && self.overlay.capacity() <= small && self.undo.capacity() <= small
    }
}

impl KvRead for WriteTx {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        debug_assert!(!self.is_held_record(key), "read of a held metadata record");
        match self.overlay.get(key) {
            Some(v) => Ok(v.clone()),
            None => Ok(self.store.get(key)?),
        }
    }

    fn read_with(&self, key: &[u8], f: &mut dyn FnMut(Option<ValueRef<'_>>)) -> Result<()> {
        // Lent, not cloned: the first clone of a value built from a vector (every
        // metadata record this group wrote) allocates a shared header.
        debug_assert!(!self.is_held_record(key), "read of a held metadata record");
        match self.overlay.get(key) {
            Some(v) => {
                f(v.as_deref().map(ValueRef::Borrowed));
                Ok(())
            }
            None => Ok(self.store.read_with(key, f)?),
        }
    }

    fn scan(&self, range: ScanRange, dir: Direction) -> PairIter<'_> {
        let (lo, hi) = range.as_bounds();
        let lo: Bound<&[u8]> = lo;
        let order = self
            .order
            .get_or_init(|| self.overlay.keys().cloned().collect());
        // Every key of `order` is in the overlay (both change together).
        let over = order
            .range::<[u8], _>((lo, hi))
            .filter_map(|k| self.overlay.get_key_value(k));
        let over: OverlayIter<'_> = match dir {
            Direction::Forward => Box::new(over),
            Direction::Reverse => Box::new(over.rev()),
        };
        let base = self.store.scan(range, dir);
        Box::new(Merge {
            base: base.peekable(),
            over: over.peekable(),
            dir,
        })
    }

    /// Storage's position, corrected for this group's writes in `range`: the keys they
    /// added (A) and removed (R) against storage. With S storage's live keys there and
    /// `n` past |A|, the view's key at `n` is at or after S's key at `n - |A|`, x0, and
    /// the view holds `n - |A| - |R before x0| + |A before x0|` keys before x0, at most
    /// `n`; so a merged walk from x0 reaches it within |A| + |R| steps. With `n` below
    /// |A|, a walk from the range's start reaches it within |A| steps. With only removed
    /// keys, it is found by positions in storage alone (see
    /// [`WriteTx::entry_past_removed`]).
    fn entry_at(&self, range: &ScanRange, live: u64, n: u64) -> Result<Option<KvPair>> {
        if n >= live {
            return Ok(None);
        }
        // The first or the last, with none of this group's writes there: storage's
        // first key of the range in that direction, lent by a walk of one entry (one
        // descent), exact whatever deleted keys snapshots hold. Through `key_at` and a
        // read of its key (three descents and a lookup) ZPOPMIN -P 16 cost ~15,850
        // instructions per pop; so, ~15,000.
        if (n == 0 || n + 1 == live) && !self.writes_in(range) {
            let dir = if n == 0 {
                Direction::Forward
            } else {
                Direction::Reverse
            };
            let mut found = None;
            self.store
                .visit_entries(range.clone(), dir, 1, &mut |k, v| {
                    found = Some((Bytes::copy_from_slice(k), Bytes::copy_from_slice(v)));
                })?;
            return Ok(found);
        }
        // Asked first: an engine without order statistics answers None at once, before
        // the group's writes are looked up in it.
        let Some(mut at_n) = self.store.key_at(range, n) else {
            return Ok(None);
        };
        let Some((GroupWrites { added, removed }, stored)) = self.group_writes(range, live)? else {
            return Ok(None);
        };
        if self.reclaimed_over(at_n.keys, stored) {
            match self.store.key_at(range, n) {
                Some(again) => at_n = again,
                None => return Ok(None),
            }
        }
        if added.is_empty() {
            if removed.is_empty() {
                // Nothing of this group's there: storage's key at `n` is the view's.
                return stored_entry_at(self, Some(at_n), stored);
            }
            return self.entry_past_removed(range, stored, n, removed, at_n);
        }
        let from = n
            .saturating_sub(added.len() as u64)
            .min(stored.saturating_sub(1));
        let at = self.store.key_at(range, from);
        let Some(at) = at.filter(|at| at.keys == stored) else {
            return Ok(None);
        };
        let (start, before) = match at.key {
            Some(x0) if from > 0 => {
                let below = |ks: &[&Bytes]| ks.iter().filter(|k| **k < &x0).count() as u64;
                let before = (from + below(&added)).checked_sub(below(&removed));
                (Bound::Included(x0), before)
            }
            // The position is within the added keys' count (or storage holds none
            // there): walk from the range's start.
            _ => (range.start.clone(), Some(0)),
        };
        let Some(skip) = before.and_then(|b| n.checked_sub(b)) else {
            return Ok(None);
        };
        let from_x0 = ScanRange {
            start,
            end: range.end.clone(),
        };
        match self.scan(from_x0, Direction::Forward).nth(skip as usize) {
            Some(kv) => Ok(Some(kv?)),
            None => Ok(None),
        }
    }

    /// Storage's count of `within`, corrected for this group's writes in `range` (the
    /// keys they added there, less the keys they removed).
    fn count_within(
        &self,
        range: &ScanRange,
        live: u64,
        within: &ScanRange,
    ) -> Result<Option<u64>> {
        let Some(mut counts) = self.store.count_within(range, within) else {
            return Ok(None);
        };
        let Some((GroupWrites { added, removed }, stored)) = self.group_writes(range, live)? else {
            return Ok(None);
        };
        if self.reclaimed_over(counts.keys, stored) {
            match self.store.count_within(range, within) {
                Some(again) => counts = again,
                None => return Ok(None),
            }
        }
        if counts.keys != stored {
            return Ok(None);
        }
        let inside = |ks: &[&Bytes]| ks.iter().filter(|k| within.contains(k)).count() as u64;
        Ok((counts.within + inside(&added)).checked_sub(inside(&removed)))
    }
}

/// The keys a group's writes added to a range and removed from it, against storage.
struct GroupWrites<'a> {
    added: Vec<&'a Bytes>,
    removed: Vec<&'a Bytes>,
}

impl WriteTx {
    /// The view's entry at `n` of `range`, where this group removed the keys `removed`
    /// (R) from the range's `stored` keys in storage and added none (`at_n`: storage's
    /// key at `n`, already asked for): the n-th key of storage's order that is not in R,
    /// found by positions in storage rather than by walking past R (a group of SPOPs
    /// walked a merged scan per pick, three quarters of SPOP -P 16's instructions).
    ///
    /// With f(p) the view's keys among storage's first p + 1 (it grows by one at each
    /// key not in R), the key is storage's at p*, the least p where f(p) reaches n + 1,
    /// and `n <= p* <= n + |R|`. With g(p) = n + |R at or before storage's key at p|,
    /// g(p) lies in `p + 1..=p*` below p* and in `p*..=p` above it: stepping `lo` up or
    /// `hi` down to g keeps p* between them, and a step that stays put has found it
    /// (from above, only at a key not in R). Scattered keys of R (SPOP's) settle from
    /// below in about two steps; a run at the front (ZPOPMIN's) settles from above in
    /// one, taken as soon as a step from below lands in R; past six steps, the rest is
    /// searched by halves.
    fn entry_past_removed(
        &self,
        range: &ScanRange,
        stored: u64,
        n: u64,
        mut removed: Vec<&Bytes>,
        at_n: KeyAt,
    ) -> Result<Option<KvPair>> {
        if at_n.keys != stored {
            return Ok(None);
        }
        removed.sort_unstable();
        let key_at = |p: u64| {
            self.store
                .key_at(range, p)
                .filter(|at| at.keys == stored)
                .and_then(|at| at.key)
        };
        // g(p) for storage's key at p.
        let g = |key: &Bytes| n + removed.partition_point(|r| *r <= key) as u64;
        let (mut lo, mut hi) = (n, n + removed.len() as u64);
        let mut first = at_n.key;
        // The next step is from above: after a step from below landed on a removed key
        // (likely a run of them), and every other step after two from below.
        let mut above = false;
        for step in 0..6 {
            if lo >= hi {
                break;
            }
            if above || step == 2 || step == 4 {
                above = false;
                let Some(key) = key_at(hi) else {
                    return Ok(None);
                };
                let to = g(&key);
                if to == hi {
                    if removed.binary_search(&&key).is_err() {
                        return entry_of(self, key);
                    }
                    hi -= 1;
                } else {
                    hi = to;
                }
            } else {
                let Some(key) = first.take().or_else(|| key_at(lo)) else {
                    return Ok(None);
                };
                let to = g(&key);
                if to == lo {
                    return entry_of(self, key);
                }
                above = removed.binary_search(&&key).is_ok();
                lo = to;
            }
        }
        // f(lo - 1) < n + 1 <= f(hi): the least p in lo..=hi with f(p) >= n + 1.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let Some(key) = key_at(mid) else {
                return Ok(None);
            };
            if g(&key) <= mid {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        match key_at(lo) {
            Some(key) => entry_of(self, key),
            None => Ok(None),
        }
    }

    /// The overlay's keys in `range`, in any order. Its key order is not built for
    /// this: once built, every later write of the group keeps it.
    fn overlay_keys_in<'a>(
        &'a self,
        range: &'a ScanRange,
    ) -> Box<dyn Iterator<Item = &'a Bytes> + 'a> {
        let (lo, hi) = range.as_bounds();
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (lo, hi);
        match self.order.get() {
            Some(order) => Box::new(order.range::<[u8], _>(bounds)),
            None => Box::new(
                self.overlay
                    .keys()
                    .filter(move |k| RangeBounds::<[u8]>::contains(&bounds, &k[..])),
            ),
        }
    }

    /// Whether storage, counting `keys` in a range where this view leaves `stored`,
    /// counts more and reclaimed some keys on being asked: then storage's positions and
    /// counts are worth asking for again.
    ///
    /// Storage counts keys deleted while a snapshot was open until its background step
    /// reclaims them; till then every position and count there is walked to. One such
    /// key left in a set under SPOP -P 16 on a loaded machine made a pop cost ~120,000
    /// instructions instead of ~12,000 for as long as the step was kept from the writer
    /// lock by the rounds themselves.
    fn reclaimed_over(&self, keys: u64, stored: u64) -> bool {
        keys > stored && self.store.reclaim(RECLAIM_KEYS) > 0
    }

    /// Whether this group wrote any key in `range`.
    fn writes_in(&self, range: &ScanRange) -> bool {
        !self.overlay.is_empty() && self.overlay_keys_in(range).next().is_some()
    }

    /// This group's writes in `range` that change which keys it holds (see
    /// [`GroupWrites`]), and so how many keys storage holds there where the view holds
    /// `live`; None past [`ENTRY_AT_MAX_WRITES`] of them (a caller walks), or when the
    /// counts disagree.
    fn group_writes<'a>(
        &'a self,
        range: &'a ScanRange,
        live: u64,
    ) -> Result<Option<(GroupWrites<'a>, u64)>> {
        let (mut added, mut removed) = (Vec::new(), Vec::new());
        for k in self.overlay_keys_in(range) {
            let mut stored = false;
            self.store.read_with(k, &mut |v| stored = v.is_some())?;
            match (self.overlay.get(k), stored) {
                (Some(Some(_)), false) => added.push(k),
                (Some(None), true) => removed.push(k),
                _ => {}
            }
            if added.len() + removed.len() > ENTRY_AT_MAX_WRITES {
                return Ok(None);
            }
        }
        let stored = (live + removed.len() as u64).checked_sub(added.len() as u64);
        Ok(stored.map(|stored| (GroupWrites { added, removed }, stored)))
    }
}

/// Most keys waiting for version reclaim that a write group's positions and counts have
/// storage look at when it counts more keys in a range than the view holds.
const RECLAIM_KEYS: usize = 64;

/// Most of a group's writes in a range that [`WriteTx::entry_at`] corrects a position
/// for (and [`WriteTx::count_within`] a count); past it, the caller walks.
const ENTRY_AT_MAX_WRITES: usize = 64;

/// The overlay's side of a merged scan.
type OverlayIter<'a> = Box<dyn Iterator<Item = (&'a Bytes, &'a Option<Bytes>)> + 'a>;

/// Merges a storage scan with the overlay; the overlay wins on equal keys and its
/// deletions hide storage entries.
struct Merge<'a, B: Iterator<Item = keel_storage::Result<KvPair>>> {
    base: Peekable<B>,
    over: Peekable<OverlayIter<'a>>,
    dir: Direction,
}

impl<B: Iterator<Item = keel_storage::Result<KvPair>>> Iterator for Merge<'_, B> {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take_over = match (self.base.peek(), self.over.peek()) {
                (None, None) => return None,
                (Some(Err(_)), _) => {
                    return self.base.next().map(|r| r.map_err(Into::into));
                }
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (Some(Ok((bk, _))), Some((ok, _))) => {
                    let ord = bk.as_ref().cmp(ok.as_ref());
                    let ord = match self.dir {
                        Direction::Forward => ord,
                        Direction::Reverse => ord.reverse(),
                    };
                    match ord {
                        std::cmp::Ordering::Less => false,
                        std::cmp::Ordering::Greater => true,
                        std::cmp::Ordering::Equal => {
                            self.base.next();
                            true
                        }
                    }
                }
            };
            if take_over {
                let (k, v) = self.over.next()?;
                if let Some(v) = v {
                    return Some(Ok((k.clone(), v.clone())));
                }
                // An overlay delete: skip it (and the base entry it shadowed).
            } else {
                return self.base.next().map(|r| r.map_err(Into::into));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_storage::{EngineKind, OpenOptions, WriteOptions};

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// A memory store in a temporary directory (kept alive by the returned guard).
    fn memory_store() -> Result<(tempfile::TempDir, Arc<dyn Storage>)> {
        let dir = tempfile::tempdir()
            .map_err(|e| keel_storage::StorageError::io("tempdir", "/tmp", e))?;
        let store = keel_storage::open(dir.path(), &OpenOptions::new(EngineKind::Memory))?;
        Ok((dir, store))
    }

    /// Built bytes are each exactly what their fill wrote, stay intact while the arena
    /// goes on into new chunks (and back to a reclaimed one), and reach the store as
    /// written.
    #[test]
    fn built_bytes_stay_intact_across_chunks() -> Result<()> {
        let (_dir, store) = memory_store()?;
        let mut tx = WriteTx::new(Arc::clone(&store));
        let mut built = Vec::new();
        // Past several chunks, with one value larger than a chunk.
        for i in 0..600usize {
            let len = if i == 300 { ARENA_CHUNK + 10 } else { i % 40 };
            let byte = (i % 251) as u8;
            let v = tx.build(len, |b| b.extend_from_slice(&vec![byte; len]));
            built.push((i, len, byte, v));
        }
        for (i, len, byte, v) in &built {
            assert_eq!(v.len(), *len, "build {i}");
            assert!(v.iter().all(|x| x == byte), "build {i} was overwritten");
        }
        for (i, _, _, v) in &built {
            tx.put(Bytes::from(format!("k{i:03}")), v.clone());
        }
        drop(built);
        store.write(tx.take_batch(), WriteOptions::DEFAULT)?;
        // The arena's chunks are free again; building on must not touch what is stored.
        for _ in 0..200 {
            tx.build(30, |b| b.extend_from_slice(&[0xEE; 30]));
        }
        for i in 0..600usize {
            let len = if i == 300 { ARENA_CHUNK + 10 } else { i % 40 };
            let got = store.get(format!("k{i:03}").as_bytes())?;
            assert_eq!(
                got,
                Some(Bytes::from(vec![(i % 251) as u8; len])),
                "key {i}"
            );
        }
        Ok(())
    }

    /// Every position of a range, asked of storage's order statistics through the
    /// overlay's writes there, is the entry a merged walk reaches; positions that
    /// deleted keys held for a snapshot would skew are refused, not answered.
    #[test]
    fn entries_by_position_and_counts_are_the_walks() -> Result<()> {
        let (_dir, store) = memory_store()?;
        let mut wb = WriteBatch::new();
        for i in 0..300 {
            wb.put(Bytes::from(format!("k{i:03}")), b("v"));
        }
        // Keys around the range, which positions must not count.
        wb.put(b("a"), b("1"));
        wb.put(b("l"), b("1"));
        store.write(wb, WriteOptions::DEFAULT)?;
        let range = ScanRange::new(b("k")..b("l"));
        let walk = |r: &dyn KvRead, live: u64| -> Result<()> {
            let all: Vec<KvPair> = r
                .scan(range.clone(), Direction::Forward)
                .collect::<Result<_>>()?;
            assert_eq!(all.len() as u64, live);
            for (n, kv) in all.into_iter().enumerate() {
                assert_eq!(
                    r.entry_at(&range, live, n as u64)?,
                    Some(kv),
                    "position {n}"
                );
            }
            assert_eq!(r.entry_at(&range, live, live)?, None, "past the end");
            // Parts of the range, between its keys and beyond its ends.
            let keys: Vec<Bytes> = r
                .scan(range.clone(), Direction::Forward)
                .map(|kv| kv.map(|(k, _)| k))
                .collect::<Result<_>>()?;
            let mut parts = vec![
                ScanRange::new(b("k05")..b("zz")),
                ScanRange::new(b("a")..b("k1")),
                ScanRange::all(),
            ];
            for lo in (0..keys.len()).step_by(37) {
                for hi in (lo..keys.len()).step_by(41) {
                    parts.push(ScanRange::new(keys[lo].clone()..keys[hi].clone()));
                    parts.push(ScanRange {
                        start: Bound::Excluded(keys[lo].clone()),
                        end: Bound::Included(keys[hi].clone()),
                    });
                }
            }
            for part in &parts {
                let want = keys.iter().filter(|k| part.contains(k)).count() as u64;
                assert_eq!(r.count_within(&range, live, part)?, Some(want), "{part:?}");
            }
            Ok(())
        };
        let mut tx = WriteTx::new(Arc::clone(&store));
        walk(&tx, 300)?;
        // This group's writes: three deletes, two new keys (one before every stored
        // key), an overwrite, and a delete of a key never stored.
        for k in ["k005", "k100", "k299", "k2999"] {
            tx.delete(b(k));
        }
        tx.put(b("k050x"), b("new"));
        tx.put(b("k"), b("new"));
        tx.put(b("k150"), b("changed"));
        // Asked before any scan built the overlay's key order, and after.
        let early: Vec<Option<KvPair>> = (0..299)
            .map(|n| tx.entry_at(&range, 299, n))
            .collect::<Result<_>>()?;
        walk(&tx, 299)?;
        let walked: Vec<KvPair> = tx
            .scan(range.clone(), Direction::Forward)
            .collect::<Result<_>>()?;
        assert_eq!(early, walked.into_iter().map(Some).collect::<Vec<_>>());
        // A wrong count is refused rather than answered from a skewed position.
        assert_eq!(tx.entry_at(&range, 298, 10)?, None);
        assert_eq!(tx.count_within(&range, 298, &range)?, None);
        store.write(tx.take_batch(), WriteOptions::DEFAULT)?;
        walk(&LatestReader::new(&*store), 299)?;
        walk(&SnapshotReader::new(store.snapshot()), 299)?;

        // A group that only removes: runs at the front, the middle and the end, and
        // single keys; positions come from storage's alone.
        let mut tx = WriteTx::new(Arc::clone(&store));
        let gone: Vec<String> = (0..10)
            .chain(150..153)
            .chain(290..299)
            .chain([33, 77, 201])
            .map(|i| format!("k{i:03}"))
            .collect();
        for k in &gone {
            tx.delete(Bytes::from(k.clone()));
        }
        let live = 299 - gone.len() as u64 + 1; // k005 was deleted before; "k" is there
        walk(&tx, live)?;
        drop(tx);
        // The range's first keys removed, and a run right after the first survivor: a
        // step from above lands on a removed key there, which is not the answer.
        let mut tx = WriteTx::new(Arc::clone(&store));
        for k in [
            "k", "k000", "k001", "k002", "k003", "k004", "k006", "k007", "k008", "k009",
        ]
        .into_iter()
        .chain(["k011", "k012", "k013"])
        {
            tx.delete(b(k));
        }
        walk(&tx, 299 - 13)?;
        drop(tx);

        // A snapshot keeps deleted keys in storage's order: positions there no longer
        // match any view's, so every view walks instead.
        let old = SnapshotReader::new(store.snapshot());
        let mut wb = WriteBatch::new();
        wb.delete(b("k010"));
        store.write(wb, WriteOptions::DEFAULT)?;
        let tx = WriteTx::new(Arc::clone(&store));
        assert_eq!(tx.entry_at(&range, 298, 5)?, None);
        assert_eq!(LatestReader::new(&*store).entry_at(&range, 298, 0)?, None);
        // The first and the last are found by a walk of one entry, which passes over
        // the deleted keys as a longer walk does.
        let walked: Vec<KvPair> = tx
            .scan(range.clone(), Direction::Forward)
            .collect::<Result<_>>()?;
        assert_eq!(walked.len(), 298);
        assert_eq!(tx.entry_at(&range, 298, 0)?, walked.first().cloned());
        assert_eq!(tx.entry_at(&range, 298, 297)?, walked.last().cloned());
        assert_eq!(tx.count_within(&range, 298, &range)?, None);
        let latest = LatestReader::new(&*store);
        assert_eq!(latest.count_within(&range, 298, &range)?, None);
        // The old snapshot sees all 299, and so does the order: exact for it.
        walk(&old, 299)?;
        drop(old);
        // No snapshot needs k010 any more, but storage counts it until its background
        // step (every 50 ms) reclaims it: a write group has storage reclaim it now and
        // answers by position (a reader cannot, and walks meanwhile).
        let tx = WriteTx::new(Arc::clone(&store));
        assert_eq!(tx.entry_at(&range, 298, 5)?, walked.get(5).cloned());
        assert_eq!(store.key_at(&range, 0).map(|at| at.keys), Some(298));
        walk(&tx, 298)?;
        Ok(())
    }

    #[test]
    fn overlay_scan_merges_both_ways() -> Result<()> {
        let (_dir, store) = memory_store()?;
        let mut wb = WriteBatch::new();
        wb.put(b("a"), b("1"))
            .put(b("c"), b("3"))
            .put(b("e"), b("5"));
        store.write(wb, WriteOptions::DEFAULT)?;
        let mut tx = WriteTx::new(Arc::clone(&store));
        tx.put(b("b"), b("2"));
        tx.delete(b("c"));
        tx.put(b("e"), b("55"));
        tx.put(b("f"), b("6"));
        let fwd: Vec<_> = tx
            .scan(ScanRange::all(), Direction::Forward)
            .collect::<Result<Vec<_>>>()?;
        assert_eq!(
            fwd,
            vec![
                (b("a"), b("1")),
                (b("b"), b("2")),
                (b("e"), b("55")),
                (b("f"), b("6"))
            ]
        );
        let rev: Vec<_> = tx
            .scan(ScanRange::all(), Direction::Reverse)
            .collect::<Result<Vec<_>>>()?;
        assert_eq!(rev.len(), 4);
        assert_eq!(rev[0], (b("f"), b("6")));
        assert_eq!(rev[3], (b("a"), b("1")));
        assert_eq!(tx.get(b"c")?, None);
        tx.mark();
        tx.put(b("a"), b("changed"));
        tx.delete(b("b"));
        tx.rollback();
        assert_eq!(tx.get(b"a")?, Some(b("1")));
        assert_eq!(tx.get(b"b")?, Some(b("2")));
        Ok(())
    }

    /// A rollback puts back the metadata held when its scope began: changed in place,
    /// or replaced by another key's (the first released into the overlay meanwhile).
    #[test]
    fn rollback_restores_the_held_metadata() -> Result<()> {
        use crate::meta::KeyType;
        let (_dir, store) = memory_store()?;
        let mut tx = WriteTx::new(Arc::clone(&store));
        let key = b"a-list-key-longer-than-a-few-bytes";
        let first = Meta::collection(KeyType::List, 7);
        tx.hold(0, key, first.clone(), 1);
        tx.mark();
        tx.hold(0, key, Meta::collection(KeyType::List, 8), 2);
        tx.rollback();
        assert_eq!(tx.held(0, key), Some(&first));
        tx.mark();
        tx.hold(1, b"other", Meta::collection(KeyType::Hash, 9), 3);
        assert_eq!(tx.held(0, key), None, "released by the other hold");
        tx.rollback();
        assert_eq!(tx.held(0, key), Some(&first));
        assert_eq!(tx.held(1, b"other"), None);
        Ok(())
    }

    /// A rollback undoes, newest first, keys written more than once and keys new to the
    /// overlay interleaved with keys it held, leaving the earlier writes as they were.
    #[test]
    fn rollback_restores_every_write_since_the_mark() -> Result<()> {
        let (_dir, store) = memory_store()?;
        let mut tx = WriteTx::new(Arc::clone(&store));
        tx.put(b("a"), b("1"));
        tx.delete(b("d"));
        tx.mark();
        tx.put(b("x"), b("1"));
        tx.put(b("a"), b("2"));
        tx.put(b("x"), b("2"));
        tx.put(b("d"), b("back"));
        tx.delete(b("y"));
        tx.put(b("a"), b("3"));
        assert_eq!(tx.len(), 4);
        tx.rollback();
        assert_eq!(tx.get(b"a")?, Some(b("1")));
        assert_eq!(tx.get(b"x")?, None);
        assert_eq!(tx.get(b"y")?, None);
        assert_eq!(tx.get(b"d")?, None);
        assert_eq!(tx.len(), 2, "a and the delete of d");
        // The undo log is spent: a second rollback changes nothing.
        tx.rollback();
        assert_eq!(tx.len(), 2);
        let batch = tx.into_batch();
        assert_eq!(batch.len(), 2);
        Ok(())
    }

    /// A transaction emptied by `take_batch` starts the next batch clean: none of the
    /// last batch's writes, undo entries or scan order come along, and one grown far
    /// past a group's size is not kept.
    #[test]
    fn an_emptied_transaction_carries_nothing_into_the_next_batch() -> Result<()> {
        let (_dir, store) = memory_store()?;
        let mut tx = WriteTx::new(Arc::clone(&store));
        tx.put(b("a"), b("1"));
        tx.delete(b("b"));
        assert_eq!(tx.scan(ScanRange::all(), Direction::Forward).count(), 1);
        let first = tx.take_batch();
        assert_eq!(first.len(), 2);
        store.write(first, WriteOptions::DEFAULT)?;
        assert!(tx.is_empty() && tx.reusable());
        assert_eq!(tx.get(b"a")?, Some(b("1")), "read from storage now");
        tx.mark();
        tx.put(b("c"), b("3"));
        tx.rollback();
        tx.put(b("d"), b("4"));
        let keys: Vec<Bytes> = tx
            .scan(ScanRange::all(), Direction::Forward)
            .map(|r| r.map(|(k, _)| k))
            .collect::<Result<_>>()?;
        assert_eq!(keys, vec![b("a"), b("d")]);
        let second = tx.take_batch();
        assert_eq!(second.ops().len(), 1);
        assert_eq!(second.ops()[0].key(), &b("d"));
        for i in 0..1000 {
            tx.put(Bytes::from(format!("k{i}")), b("v"));
        }
        let _ = tx.take_batch();
        assert!(!tx.reusable(), "a thousand-key overlay is not kept");
        Ok(())
    }

    /// The order a scan builds is kept by later writes and undone by a rollback.
    #[test]
    fn scans_see_writes_made_after_an_earlier_scan() -> Result<()> {
        let (_dir, store) = memory_store()?;
        let mut tx = WriteTx::new(Arc::clone(&store));
        let keys = |tx: &WriteTx, dir| -> Result<Vec<Bytes>> {
            tx.scan(ScanRange::all(), dir)
                .map(|r| r.map(|(k, _)| k))
                .collect()
        };
        tx.put(b("m"), b("1"));
        assert_eq!(keys(&tx, Direction::Forward)?, vec![b("m")]);
        tx.put(b("a"), b("2"));
        tx.put(b("z"), b("3"));
        tx.mark();
        tx.put(b("k"), b("4"));
        tx.delete(b("m"));
        assert_eq!(keys(&tx, Direction::Forward)?, vec![b("a"), b("k"), b("z")]);
        tx.rollback();
        assert_eq!(keys(&tx, Direction::Reverse)?, vec![b("z"), b("m"), b("a")]);
        assert_eq!(tx.len(), 3);
        let batch = tx.into_batch();
        assert_eq!(batch.len(), 3);
        Ok(())
    }
}
