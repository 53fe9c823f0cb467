//! The memory engine's MVCC index: the same versioned model as [`crate::mvcc`] (chains of
//! `(seq, Option<V>)`, a batch installed then published, snapshots pinning sequence
//! numbers in a [`SnapshotRegistry`]), with point lookups answered by a hash table.
//!
//! Every key has one heap [`Entry`] (a head with its reference count, lock and a
//! one-word slot for its versions, then the key's bytes), the only allocation per key
//! besides the value. Two structures reference it: a B-tree set ordered by key under a
//! reader-writer lock, used only by scans, and a sharded hash table used by
//! `get_latest`, `get_at` and the writer's lookup. A point lookup is one hash probe
//! instead of a search descent (a crossbeam skiplist took about twenty dependent cache
//! misses with a million keys, which was a third of the server's profile). The B-tree
//! holds 8-byte pointers packed in its nodes, far less per key than a skiplist node of
//! its own; its write lock is taken only to insert or remove a key, so scans wait at
//! most for one such change, and a scan holds the read lock for one chunk
//! (`range_at`'s `limit`) at a time.
//!
//! The hash table is split into [`SHARDS`] shards, each a `parking_lot` reader-writer lock
//! around a `hashbrown` table of entry pointers, hashed with a per-index random key
//! (foldhash), as keys come from users and must not be able to force collisions. Readers
//! and the writer's lookups of existing keys take a shard's read lock (one atomic); only
//! inserting or removing a key takes its shard's write lock, for a single insert or
//! remove (or a resize of that one shard, about a thousand entries with a million keys).
//!
//! The Bitcask engine's key directory is this index too, over record locations: its
//! B-tree descents had been a third of a pipelined GET's profile there.
//!
//! Versions a batch shadows are pruned right after the batch is published
//! ([`HashedIndex::settle`]), not when the next write of the key happens to come: before
//! the publish a reader may still be at the previous sequence and need them. Only versions
//! that an open snapshot still needs go to the background GC queue.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Bound;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicI64, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashTable;
use parking_lot::{Mutex, MutexGuard, RwLock};
use smallvec::SmallVec;

use crate::cache_hint::{prefetch_line, PREFETCH_WINDOW};
use crate::mvcc::{IndexKey, IndexValue, Pin, SnapshotRegistry, VersionView};
use crate::order_tree::{Keyed, OrderTree};
use crate::range::{Direction, ScanRange};
use crate::slot_lock::SlotLock;
use crate::storage::{KeyAt, KeyCounts};

/// Number of hash shards (a power of two). With a million keys a shard holds about a
/// thousand, so the write lock of an insert that resizes a shard is short.
pub const SHARDS: usize = 1024;

/// Hash bits that pick the shard. hashbrown uses the low bits for the bucket and the top
/// seven as the control byte, so the shard is taken from bits in between, leaving both
/// uncorrelated with the shard inside it.
const SHARD_SHIFT: u32 = 40;
/// Entries a shard holds before [`HashedIndex::grow`] rebuilds it instead of hashbrown
/// (below it, hashbrown's in-place growth costs less than the rebuild's vectors).
const GROW_MIN: usize = 56;
/// How far ahead of the entry it hashes [`HashedIndex::grow`] prefetches.
const GROW_AHEAD: usize = 8;
/// How far ahead of the entry it reads [`HashedIndex::visit_versions_in`] prefetches.
const VISIT_AHEAD: usize = 8;

#[derive(Debug)]
struct Version<V> {
    seq: u64,
    value: Option<V>,
}

/// A key's versions, oldest first, kept while a reader may still need an older one or
/// must not see the newest yet. Boxed so that the entry's slot stays one pointer wide;
/// chains are transient (a write spills one until its batch settles) and their boxes
/// are reused through [`Scratch::spare`].
type Chain<V> = Box<Vec<Version<V>>>;

/// Drops the versions of `chain` that no reader at or after `horizon` can see: all but
/// the newest at or below it, and none above it.
/// The positions in `order` where `range` starts and ends (end exclusive), counting
/// every key the index holds.
fn span<T: Keyed>(order: &OrderTree<T>, range: &ScanRange) -> (usize, usize) {
    (start_of(order, &range.start), end_of(order, &range.end))
}

/// The position in `order` where a range with the start bound `start` starts.
fn start_of<T: Keyed>(order: &OrderTree<T>, start: &Bound<Bytes>) -> usize {
    match start {
        Bound::Unbounded => 0,
        Bound::Included(k) => order.rank(k, false),
        Bound::Excluded(k) => order.rank(k, true),
    }
}

/// The position in `order` just past a range with the end bound `end`.
fn end_of<T: Keyed>(order: &OrderTree<T>, end: &Bound<Bytes>) -> usize {
    match end {
        Bound::Unbounded => order.len(),
        Bound::Included(k) => order.rank(k, true),
        Bound::Excluded(k) => order.rank(k, false),
    }
}

fn prune<V>(chain: &mut Vec<Version<V>>, horizon: u64, dropped: &mut impl FnMut(Option<&V>)) {
    if let Some(keep_from) = chain.iter().rposition(|v| v.seq <= horizon) {
        if keep_from > 0 {
            for v in chain.drain(..keep_from) {
                dropped(v.value.as_ref());
            }
        }
    }
}

/// [`Entry::flags`]: the entry sits in the settle list or the GC queue (never both).
const QUEUED: u8 = 1;
/// [`Entry::flags`]: the slot's `one` is a version written at [`HashedIndex::pending`]
/// and not yet settled.
const PENDING: u8 = 2;
/// [`Entry::flags`]: the slot holds a [`Chain`].
const CHAIN: u8 = 4;

/// An entry's versions in one word (for a one-word value); the entry's flags say which
/// field is live.
union Slot<V> {
    /// The key's only version (`None`: a tombstone).
    one: ManuallyDrop<Option<V>>,
    chain: ManuallyDrop<Chain<V>>,
}

/// An entry's versions, moved out of and back into its slot by the writer.
enum State<V> {
    /// One version that every reader sees: it is at or below the horizon, so no pinned
    /// or future reader is older than it, and it needs no sequence number.
    One(Option<V>),
    /// The only version, written by the batch at [`HashedIndex::pending`]: readers older
    /// than that batch must not see it. `settle` turns it into `One` (or, when a
    /// snapshot older than the batch is open, a chain).
    Pending(Option<V>),
    /// Versions oldest first.
    Chain(Chain<V>),
}

/// An entry's versions as a reader holding its lock sees them.
enum View<'a, V> {
    One(Option<&'a V>),
    Pending(Option<&'a V>),
    Chain(&'a [Version<V>]),
}

// Not derived: a view is references only, copyable whatever `V` is.
impl<V> Clone for View<'_, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<V> Copy for View<'_, V> {}

impl<'a, V> View<'a, V> {
    /// What a reader at `seq` sees (`None`: absent or deleted). `pending` gives the
    /// sequence of a pending version; it is read only for one.
    fn at(self, seq: u64, pending: impl FnOnce() -> u64) -> Option<&'a V> {
        match self {
            View::One(v) => v,
            View::Pending(v) => v.filter(|_| pending() <= seq),
            View::Chain(c) => c
                .iter()
                .rev()
                .find(|v| v.seq <= seq)
                .and_then(|v| v.value.as_ref()),
        }
    }

    /// The newest version's value, the one the next write replaces.
    fn latest(self) -> Option<&'a V> {
        match self {
            View::One(v) | View::Pending(v) => v,
            View::Chain(c) => c.last().and_then(|v| v.value.as_ref()),
        }
    }

    /// Versions held beyond one (what `retained_versions` counts).
    fn extra(&self) -> usize {
        match self {
            View::Chain(c) => c.len().saturating_sub(1),
            _ => 0,
        }
    }
}

/// One key of the index: a head (the slot's lock, the entry's reference count, its
/// flags and the key's length packed into one word, then the versions' slot) followed
/// in the same allocation by the key's bytes. This is the per-key allocation besides
/// the value, so its size is the engine's memory per key: 16 bytes plus the key,
/// rounded up to 8 (32 for a key of up to 16 bytes). The common single version carries
/// no sequence number (see [`State::One`]); a version chain of `(seq, value)` exists
/// only while a batch settles or a snapshot needs older versions.
#[repr(C)]
struct Entry<V> {
    /// References held by the B-tree, the hash shard, the settle list and readers.
    refs: AtomicU32,
    /// Guards `slot` and the `PENDING` and `CHAIN` flags.
    lock: SlotLock,
    /// `QUEUED`, `PENDING`, `CHAIN`. Written only by the serialised writer (the last two
    /// under `lock`), so a relaxed load and store is enough.
    flags: AtomicU8,
    /// The key's length, or [`LONG_KEY`]: the length is then the first 8 bytes after the
    /// head, before the key.
    key_len: u16,
    slot: UnsafeCell<Slot<V>>,
}

/// `Entry::key_len` of a key of `LONG_KEY` bytes or more.
const LONG_KEY: u16 = u16::MAX;

impl<V> Entry<V> {
    /// Where the key's bytes start, after the head (and the long length).
    const fn key_offset(long: bool) -> usize {
        std::mem::size_of::<Entry<V>>() + if long { 8 } else { 0 }
    }

    /// The layout of an entry for a key of `len` bytes.
    fn layout(len: usize) -> Layout {
        let long = len >= usize::from(LONG_KEY);
        // Keys come from requests and snapshots that already held them in memory, far
        // below `isize::MAX`; a layout error would be an allocation failure.
        Layout::from_size_align(
            Self::key_offset(long) + len,
            std::mem::align_of::<Entry<V>>(),
        )
        .map(|l| l.pad_to_align())
        .unwrap_or_else(|_| handle_alloc_error(Layout::new::<Entry<V>>()))
    }

    /// The key's bytes.
    fn key(&self) -> &[u8] {
        let base = (self as *const Entry<V>).cast::<u8>();
        // SAFETY: `EntryRef::new` allocated the head followed by the key (after its
        // 8-byte length when long) and never changes them.
        unsafe {
            if self.key_len != LONG_KEY {
                let at = base.add(Self::key_offset(false));
                std::slice::from_raw_parts(at, usize::from(self.key_len))
            } else {
                let len = base.add(Self::key_offset(false)).cast::<[u8; 8]>().read();
                let at = base.add(Self::key_offset(true));
                std::slice::from_raw_parts(at, u64::from_le_bytes(len) as usize)
            }
        }
    }

    /// Asks for the line holding the key's last byte. An entry is its 16-byte head and
    /// the key, so with the allocator's 40- and 48-byte blocks (keys of 17-32 bytes) about
    /// half of the entries run over into a second line, where the key compare of a probe
    /// then missed after the prefetched head had arrived (INCR -P 16: 3.9% of cycles in
    /// that compare). Reads the head's length, so call it once the head is loaded.
    fn prefetch_key(&self) {
        let key = self.key();
        if let Some(last) = key.len().checked_sub(1) {
            prefetch_line(key[last..].as_ptr());
        }
    }

    /// Locks the slot.
    fn chain(&self) -> ChainGuard<'_, V> {
        self.lock.lock();
        ChainGuard { entry: self }
    }

    fn flags(&self) -> u8 {
        self.flags.load(Ordering::Relaxed)
    }

    fn queued(&self) -> bool {
        self.flags() & QUEUED != 0
    }

    fn set_queued(&self, queued: bool) {
        let flags = self.flags() & !QUEUED;
        self.flags
            .store(flags | if queued { QUEUED } else { 0 }, Ordering::Relaxed);
    }

    /// The versions, read in place.
    ///
    /// # Safety
    /// The caller holds the entry's lock, or excludes the writer (the only one who
    /// changes the slot and its flags).
    unsafe fn view(&self) -> View<'_, V> {
        let flags = self.flags();
        // SAFETY: the caller's contract excludes a concurrent change; the flags name the
        // live field.
        unsafe {
            let slot = &*self.slot.get();
            if flags & CHAIN != 0 {
                View::Chain(&slot.chain)
            } else if flags & PENDING != 0 {
                View::Pending(slot.one.as_ref())
            } else {
                View::One(slot.one.as_ref())
            }
        }
    }
}

impl<V> Drop for Entry<V> {
    fn drop(&mut self) {
        let flags = *self.flags.get_mut();
        let slot = self.slot.get_mut();
        // SAFETY: the flags name the live field, dropped once, here.
        unsafe {
            if flags & CHAIN != 0 {
                ManuallyDrop::drop(&mut slot.chain);
            } else {
                ManuallyDrop::drop(&mut slot.one);
            }
        }
    }
}

/// The locked slot of an [`Entry`]; unlocks when dropped.
struct ChainGuard<'a, V> {
    entry: &'a Entry<V>,
}

impl<V> ChainGuard<'_, V> {
    /// The versions.
    fn view(&self) -> View<'_, V> {
        // SAFETY: the guard holds the entry's lock.
        unsafe { self.entry.view() }
    }

    /// The version holding `value` (values name one version each), to change in place.
    fn find_mut(&mut self, value: &V) -> Option<&mut V>
    where
        V: PartialEq,
    {
        let flags = self.entry.flags();
        // SAFETY: the guard holds the lock and `&mut self` makes this the only access
        // through it; the flags name the live field.
        unsafe {
            let slot = &mut *self.entry.slot.get();
            if flags & CHAIN != 0 {
                slot.chain
                    .iter_mut()
                    .filter_map(|v| v.value.as_mut())
                    .find(|v| **v == *value)
            } else {
                slot.one.as_mut().filter(|v| **v == *value)
            }
        }
    }

    /// Moves the versions out, leaving a tombstone (so a panic before [`Self::put`]
    /// drops nothing twice).
    fn take(&mut self) -> State<V> {
        let e = self.entry;
        let flags = e.flags();
        // SAFETY: the guard holds the lock and `&mut self` makes this the only access
        // through it; the flags name the live field, which is moved out and replaced by
        // a tombstone before the flags say `One`.
        unsafe {
            let slot = &mut *e.slot.get();
            let state = if flags & CHAIN != 0 {
                State::Chain(ManuallyDrop::take(&mut slot.chain))
            } else if flags & PENDING != 0 {
                State::Pending(ManuallyDrop::take(&mut slot.one))
            } else {
                State::One(ManuallyDrop::take(&mut slot.one))
            };
            slot.one = ManuallyDrop::new(None);
            e.flags.store(flags & !(CHAIN | PENDING), Ordering::Relaxed);
            state
        }
    }

    /// Moves versions in; the slot must hold what [`Self::take`] left.
    fn put(&mut self, state: State<V>) {
        let e = self.entry;
        let flags = e.flags() & !(CHAIN | PENDING);
        // SAFETY: as in `take`; the tombstone it left needs no drop.
        unsafe {
            let slot = &mut *e.slot.get();
            let flags = match state {
                State::One(v) => {
                    slot.one = ManuallyDrop::new(v);
                    flags
                }
                State::Pending(v) => {
                    slot.one = ManuallyDrop::new(v);
                    flags | PENDING
                }
                State::Chain(c) => {
                    slot.chain = ManuallyDrop::new(c);
                    flags | CHAIN
                }
            };
            e.flags.store(flags, Ordering::Relaxed);
        }
    }
}

impl<V> Drop for ChainGuard<'_, V> {
    fn drop(&mut self) {
        // SAFETY: the lock was taken in `Entry::chain` and is released once, here.
        unsafe { self.entry.lock.unlock() }
    }
}

/// A counted pointer to an [`Entry`] (a thin `Arc` without weak references), ordered
/// and compared by key so the B-tree can hold it directly (the key bytes are stored
/// once, in the entry).
struct EntryRef<V>(NonNull<Entry<V>>, PhantomData<Entry<V>>);

// SAFETY: an entry is shared like an `Arc<Mutex<Chain<V>>>`: its chain is reached only
// under its lock and its other fields are atomics or immutable.
unsafe impl<V: Send + Sync> Send for EntryRef<V> {}
// SAFETY: as above.
unsafe impl<V: Send + Sync> Sync for EntryRef<V> {}

impl<V> EntryRef<V> {
    /// A new entry for `key` holding `value` as its only version, pending (and then
    /// marked queued, for the settle list) or seen by every reader.
    fn new(key: &[u8], value: Option<V>, pending: bool) -> Self {
        let layout = Entry::<V>::layout(key.len());
        let long = key.len() >= usize::from(LONG_KEY);
        // SAFETY: the layout is non-zero (it holds the head).
        let raw = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(raw.cast::<Entry<V>>()) else {
            handle_alloc_error(layout)
        };
        // SAFETY: the allocation is aligned for the head and holds it, then the key
        // (after its 8-byte length when long); the key does not overlap it.
        unsafe {
            ptr.as_ptr().write(Entry {
                refs: AtomicU32::new(1),
                lock: SlotLock::new(),
                flags: AtomicU8::new(if pending { PENDING | QUEUED } else { 0 }),
                key_len: if long { LONG_KEY } else { key.len() as u16 },
                slot: UnsafeCell::new(Slot {
                    one: ManuallyDrop::new(value),
                }),
            });
            if long {
                raw.add(Entry::<V>::key_offset(false))
                    .cast::<[u8; 8]>()
                    .write((key.len() as u64).to_le_bytes());
            }
            let at = raw.add(Entry::<V>::key_offset(long));
            std::ptr::copy_nonoverlapping(key.as_ptr(), at, key.len());
        }
        EntryRef(ptr, PhantomData)
    }
}

impl<V> std::ops::Deref for EntryRef<V> {
    type Target = Entry<V>;
    fn deref(&self) -> &Entry<V> {
        // SAFETY: the entry lives while any reference counts it, and this one does.
        unsafe { self.0.as_ref() }
    }
}

impl<V> Clone for EntryRef<V> {
    fn clone(&self) -> Self {
        // Relaxed as in `Arc::clone`: a new reference is made from an existing one.
        let old = self.refs.fetch_add(1, Ordering::Relaxed);
        if old > u32::MAX / 2 {
            // References are held by two structures, a list and readers; billions mean
            // a leak, and wrapping would free a live entry.
            std::process::abort();
        }
        EntryRef(self.0, PhantomData)
    }
}

impl<V> Drop for EntryRef<V> {
    fn drop(&mut self) {
        if self.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // As in `Arc::drop`: every other reference's uses happen before the free.
        fence(Ordering::Acquire);
        let layout = Entry::<V>::layout(self.key().len());
        // SAFETY: this was the last reference to the entry `EntryRef::new` allocated
        // with this layout; the head is dropped in place (the key bytes need no drop).
        unsafe {
            std::ptr::drop_in_place(self.0.as_ptr());
            dealloc(self.0.as_ptr().cast::<u8>(), layout);
        }
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for EntryRef<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry").field("key", &self.key()).finish()
    }
}

// The order compares entries by their keys, a word at a time (`key_order`).
impl<V> Keyed for EntryRef<V> {
    fn key(&self) -> &[u8] {
        Entry::key(self)
    }

    // The head and, after it, the key: reading the key would be the miss itself.
    fn key_line(&self) -> *const u8 {
        self.0.as_ptr().cast::<u8>()
    }
}

// The memory engine's entry head: refs, lock, flags and key length in one word, the slot.
const _: () = assert!(std::mem::size_of::<Entry<crate::thin_value::Val>>() == 16);

/// One hash shard, alone on its cache line so readers of neighbouring shards do not
/// contend on the lock word.
#[repr(align(64))]
struct Shard<V> {
    table: RwLock<HashTable<EntryRef<V>>>,
    /// Where the table's buckets are, as of the writer's last insert: used only as
    /// addresses to prefetch (see [`Shard::prefetch_home`]), never to read through.
    home: AtomicUsize,
    /// The table's bucket mask as of the same insert.
    mask: AtomicUsize,
}

impl<V> Shard<V> {
    fn new() -> Self {
        Shard {
            table: RwLock::new(HashTable::new()),
            home: AtomicUsize::new(0),
            mask: AtomicUsize::new(0),
        }
    }

    /// Notes where the table keeps its buckets after an insert put an entry in bucket
    /// `index` (at `bucket`). hashbrown lays out bucket `i` at
    /// `ctrl - (i + 1) * size_of::<T>()`, before its control bytes; that is its
    /// implementation, not its contract, so it only ever feeds prefetch hints: a layout
    /// change would make them miss, not err (and fails a test here).
    fn note_home(&self, bucket: *const EntryRef<V>, index: usize, buckets: usize) {
        let ctrl = (bucket as usize).wrapping_add((index + 1) * std::mem::size_of::<EntryRef<V>>());
        self.home.store(ctrl, Ordering::Relaxed);
        self.mask.store(buckets.wrapping_sub(1), Ordering::Relaxed);
    }

    /// Asks for the lines a lookup or insert of `hash` touches first: the control
    /// group at its home position and the buckets beside it, where a key found is
    /// usually met and a new key usually goes. Unlike probing, this issues no load,
    /// so a window's misses all overlap, and an insert's store into a bucket no longer
    /// waits for the line behind the shard lock's release (measured: the release was
    /// half of a pipelined LPUSH's storage write).
    fn prefetch_home(&self, hash: u64) {
        let ctrl = self.home.load(Ordering::Relaxed);
        if ctrl == 0 {
            return;
        }
        let pos = (hash as usize) & self.mask.load(Ordering::Relaxed);
        let size = std::mem::size_of::<EntryRef<V>>();
        prefetch_line(ctrl.wrapping_add(pos) as *const u8);
        prefetch_line(ctrl.wrapping_sub((pos + 1) * size) as *const u8);
        prefetch_line(ctrl.wrapping_sub((pos + 8) * size) as *const u8);
    }
}

/// Outcome of collecting one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyGc {
    /// Nothing more to collect (or the entry is gone).
    Clean,
    /// Versions remain that a snapshot still needs: look again later.
    StillNeeded,
}

/// The memory engine's versioned index: a B-tree for order, hash shards for point lookups.
pub struct HashedIndex<V: IndexValue> {
    order: RwLock<OrderTree<EntryRef<V>>>,
    shards: Box<[Shard<V>]>,
    hasher: foldhash::fast::RandomState,
    registry: Arc<SnapshotRegistry>,
    /// The writer's lists (see [`Scratch`]), under one lock taken once per batch.
    scratch: Mutex<Scratch<V>>,
    /// Keys whose old versions an open snapshot still needed when last looked at.
    gc_queue: Mutex<VecDeque<IndexKey>>,
    live_keys: AtomicI64,
    live_bytes: AtomicI64,
    retained: AtomicI64,
    /// The sequence of the batch whose new keys are `PENDING`: the one `apply` installs
    /// until its `settle` resolves them all (stored before any entry is marked, and
    /// read by a reader under the lock of an entry it finds marked, so it is that
    /// entry's batch).
    pending: AtomicU64,
}

/// What only the serialised writer uses, kept together so that a batch takes one lock
/// for all of it: every overwrite took a spare chain and settle gave it back, each under
/// a lock of its own (~70 instructions per key of an MSET).
struct Scratch<V> {
    /// Entries the batch being applied left with versions to prune once it is
    /// published: only while an [`Applied`] holds this lock, which keeps every entry
    /// here alive (see there).
    settle: Vec<Settling<V>>,
    /// Chains that went back to one version, reused by the next overwrite.
    spare: Vec<Chain<V>>,
    /// The counters' changes since the writer last added them in (see [`Tally`]).
    tally: Tally,
}

/// Changes to the index's counters, gathered while the writer holds its lists and added
/// to the shared counters once per batch. Each counter's atomic add is a full barrier on
/// x86: three or four per written key (an overwrite's two `retained` changes usually
/// cancel) made each key's cache misses wait for the previous key's.
#[derive(Debug, Default)]
struct Tally {
    keys: i64,
    bytes: i64,
    retained: i64,
}

impl Tally {
    /// Counts a key's newest value changing from `old` to `new` weight (`None`: absent).
    fn account(&mut self, key_len: usize, old: Option<u64>, new: Option<u64>) {
        let weight = |w: u64| (key_len as u64 + w) as i64;
        match (old, new) {
            (None, Some(w)) => {
                self.keys += 1;
                self.bytes += weight(w);
            }
            (Some(w), None) => {
                self.keys -= 1;
                self.bytes -= weight(w);
            }
            (Some(a), Some(b)) => self.bytes += b as i64 - a as i64,
            (None, None) => {}
        }
    }
}

impl<V> Scratch<V> {
    /// An empty chain: a spare one, or a new one with room for two versions.
    fn spare_chain(&mut self) -> Chain<V> {
        self.spare
            .pop()
            .unwrap_or_else(|| Box::new(Vec::with_capacity(2)))
    }

    /// Keeps an emptied chain for the next overwrite (or frees it when enough are kept,
    /// or when a long-lived snapshot grew it).
    fn return_spare(&mut self, mut chain: Chain<V>) {
        chain.clear();
        if chain.capacity() <= 4 && self.spare.len() < MAX_SPARE {
            self.spare.push(chain);
        }
    }
}

/// Spare chains kept at most (each a box and room for a few versions: ~60 bytes).
const MAX_SPARE: usize = 1024;

/// An entry in the settle list, named without counting a reference: see [`Applied`].
struct Settling<V>(NonNull<Entry<V>>);

// SAFETY: only the writer holding the lists' lock reaches the entry through this, and
// an entry is shared like an `Arc<Mutex<..>>` (see `EntryRef`).
unsafe impl<V: Send + Sync> Send for Settling<V> {}

/// A batch [`HashedIndex::apply`] installed and [`Applied::settle`] resolves, once the
/// caller has published its sequence. It holds the writer's lists' lock from one to the
/// other, so nothing else that changes the index (`collect` removing an entry, above
/// all) runs in between: every entry of the settle list is then still held by the
/// tables, and the list names it by pointer. A counted reference was an atomic
/// increment and decrement per written key, each a full barrier on x86. Dropped
/// unsettled (a panic on the way), it settles without reporting dropped versions.
#[must_use = "a batch is settled once its sequence is published"]
pub struct Applied<'a, V: IndexValue> {
    index: &'a HashedIndex<V>,
    scratch: MutexGuard<'a, Scratch<V>>,
}

impl<V: IndexValue> Applied<'_, V> {
    /// Prunes, right after the batch was published, the versions it shadowed: with no
    /// snapshot older than the batch, an overwritten key is back to one version and a
    /// deleted key leaves the index at once (so a run of deletes at the front of a
    /// range is not walked by every scan until a background step gets to it). Keys an
    /// open snapshot still needs go to the GC queue. `dropped` hears every version that
    /// leaves the index.
    pub fn settle(mut self, dropped: &mut impl FnMut(&[u8], Option<&V>)) {
        self.index.settle_locked(&mut self.scratch, dropped);
    }
}

impl<V: IndexValue> Drop for Applied<'_, V> {
    fn drop(&mut self) {
        if !self.scratch.settle.is_empty() {
            self.index.settle_locked(&mut self.scratch, &mut |_, _| {});
        }
    }
}

impl<V: IndexValue> std::fmt::Debug for HashedIndex<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashedIndex")
            .field("entries", &self.entries())
            .field("visible", &self.registry.visible())
            .finish()
    }
}

/// Where one walk of the order goes: a range as of `seq`, in `dir` order, after the key
/// `resume` when given, for at most `limit` live entries.
#[derive(Clone, Copy, Debug)]
pub struct Walk<'a> {
    /// The keys walked.
    pub range: &'a ScanRange,
    /// Ascending or descending key order.
    pub dir: Direction,
    /// The sequence the walk reads at (pinned by the caller).
    pub seq: u64,
    /// Start strictly after this key (a previous walk's last), or at the range's start.
    pub resume: Option<&'a [u8]>,
    /// Most live entries visited.
    pub limit: usize,
}

/// A reader's copy of a stored value: nothing of the index is shared with it.
fn copy_out<V: AsRef<[u8]>>(v: &V) -> Bytes {
    Bytes::copy_from_slice(v.as_ref())
}

impl<V: IndexValue> HashedIndex<V> {
    /// An empty index whose published sequence starts at `seq`.
    pub fn new(seq: u64) -> Self {
        HashedIndex {
            order: RwLock::new(OrderTree::new()),
            shards: (0..SHARDS).map(|_| Shard::new()).collect(),
            hasher: foldhash::fast::RandomState::default(),
            registry: SnapshotRegistry::new(seq),
            scratch: Mutex::new(Scratch {
                settle: Vec::new(),
                spare: Vec::new(),
                tally: Tally::default(),
            }),
            gc_queue: Mutex::new(VecDeque::new()),
            live_keys: AtomicI64::new(0),
            live_bytes: AtomicI64::new(0),
            retained: AtomicI64::new(0),
            pending: AtomicU64::new(seq),
        }
    }

    /// The snapshot registry (publish, pin, horizon).
    pub fn registry(&self) -> &Arc<SnapshotRegistry> {
        &self.registry
    }

    /// Pins the latest published state.
    pub fn pin(&self) -> Pin {
        self.registry.pin()
    }

    fn hash(&self, key: &[u8]) -> u64 {
        crate::key_hash::hash_bytes(&self.hasher, key)
    }

    fn shard(&self, hash: u64) -> &RwLock<HashTable<EntryRef<V>>> {
        &self.shard_of(hash).table
    }

    /// The table of `hash`'s shard, read without its lock.
    ///
    /// # Safety
    /// Nothing changes the table meanwhile: the caller holds the writer's lists' lock,
    /// under which alone tables change (inserts in `apply_one`, removals in `collect`,
    /// `reserve`), or is serialised with every writer of the index. No `&mut` to the
    /// table then exists, and readers only read.
    unsafe fn table_unlocked(&self, hash: u64) -> &HashTable<EntryRef<V>> {
        // SAFETY: the caller's.
        unsafe { &*self.shard(hash).data_ptr() }
    }

    /// The version of `versions` a reader at the published sequence sees. Under the
    /// entry's lock (or with writers excluded): every version ≤ that sequence is
    /// installed, and pruning only removes versions shadowed by one ≤ the horizon ≤ it.
    fn visible<'v>(&self, versions: View<'v, V>) -> Option<&'v V> {
        versions.at(self.registry.visible(), || self.pending_seq())
    }

    fn shard_of(&self, hash: u64) -> &Shard<V> {
        // SHARDS is a power of two, so the mask keeps the index in bounds.
        &self.shards[(hash >> SHARD_SHIFT) as usize & (SHARDS - 1)]
    }

    /// Runs `f` on the versions of `key` under its lock (None: the key is absent).
    fn with_chain<R>(&self, key: &[u8], f: impl FnOnce(Option<View<'_, V>>) -> R) -> R {
        self.with_chain_hashed(self.hash(key), key, f)
    }

    /// [`HashedIndex::with_chain`] with `key`'s hash already computed.
    fn with_chain_hashed<R>(
        &self,
        hash: u64,
        key: &[u8],
        f: impl FnOnce(Option<View<'_, V>>) -> R,
    ) -> R {
        let table = self.shard(hash).read();
        match table.find(hash, |e| e.key() == key) {
            Some(entry) => f(Some(entry.chain().view())),
            None => f(None),
        }
    }

    /// The sequence of a `PENDING` version, for a reader holding its entry's lock.
    fn pending_seq(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Starts loading the entries of `keys` and their latest values into the CPU cache
    /// (see [`crate::Storage::prefetch`]), in three passes so that the misses of all keys
    /// overlap: the first asks for each key's home lines in its table (control bytes and
    /// buckets, from addresses alone), the second probes the tables (`iter_hash` matches
    /// the tag byte, never the key, so it does not wait for an entry) and asks for each
    /// entry's line, the third reads each entry's newest version and asks for its value
    /// and for the line where the entry's key ends, when the entry crosses a line.
    ///
    /// # Safety
    /// The caller serialises this with every writer of the index (`apply`, `settle`,
    /// `gc_step`), as they are serialised with one another: it reads the hash tables and
    /// chains without their locks, which is sound only while nothing changes them, and
    /// holds entry pointers that only those writers could free.
    pub unsafe fn prefetch_serialised(&self, keys: &[&[u8]]) {
        // Tag collisions can add a candidate; two per key are looked at.
        let mut found: SmallVec<[NonNull<Entry<V>>; 2 * PREFETCH_WINDOW]> = SmallVec::new();
        let hashes: SmallVec<[u64; PREFETCH_WINDOW]> = keys.iter().map(|k| self.hash(k)).collect();
        for &hash in &hashes {
            self.shard_of(hash).prefetch_home(hash);
        }
        for &hash in &hashes {
            // SAFETY: writers are excluded (the contract).
            let table = unsafe { self.table_unlocked(hash) };
            for e in table.iter_hash(hash).take(2) {
                prefetch_line(e.0.as_ptr());
                found.push(e.0);
            }
        }
        for e in found {
            // SAFETY: the table references the entry and only an excluded writer could
            // remove it; slots change only under writers, so reading one unlocked is a
            // read among readers.
            let entry = unsafe { e.as_ref() };
            entry.prefetch_key();
            // SAFETY: as above.
            if let Some(v) = unsafe { entry.view() }.latest() {
                v.prefetch();
            }
        }
    }

    /// Starts loading the entries of `keys` and their latest values into the CPU cache,
    /// for a reader about to look them up one by one (a pipeline of GETs); see
    /// [`HashedIndex::latest_each`].
    pub fn prefetch_concurrent(&self, keys: &[&[u8]]) {
        self.latest_each(keys, |_, v| v.prefetch());
    }

    /// Calls `f` with the position in `keys` and the newest version's value of each key
    /// that has one, for a reader about to look them up one by one: a hint (it may be a
    /// version not published yet), for what to load ahead. Unlike
    /// [`HashedIndex::prefetch_serialised`] it runs beside writers, so it reads each
    /// table under its shard's read lock. Three passes, so that the misses of all keys
    /// overlap: the home lines from addresses alone (no lock), then each key's entry
    /// line (`iter_hash` matches the tag byte, never the key), then each entry's newest
    /// value, found through the entry lines the second pass asked for.
    pub fn latest_each(&self, keys: &[&[u8]], mut f: impl FnMut(usize, &V)) {
        let hashes: SmallVec<[u64; PREFETCH_WINDOW]> = keys.iter().map(|k| self.hash(k)).collect();
        self.prefetch_entries(&hashes);
        for (i, (key, &hash)) in keys.iter().zip(&hashes).enumerate() {
            self.with_chain_hashed(hash, key, |versions| {
                if let Some(v) = versions.and_then(View::latest) {
                    f(i, v);
                }
            });
        }
    }

    /// Asks for the entries of keys with these hashes, beside writers: first each
    /// hash's home lines in its table (from addresses alone), then, under each shard's
    /// read lock, the line of each entry whose tag matches (`iter_hash` matches the tag
    /// byte, never the key, so it does not wait for an entry).
    fn prefetch_entries(&self, hashes: &[u64]) {
        for &hash in hashes {
            self.shard_of(hash).prefetch_home(hash);
        }
        for &hash in hashes {
            let table = self.shard(hash).read();
            for e in table.iter_hash(hash).take(2) {
                prefetch_line(e.0.as_ptr());
            }
        }
    }

    /// Calls `f` with the latest visible version of `key` (None: absent or deleted) under
    /// the entry's lock.
    fn with_latest<R>(&self, key: &[u8], f: impl FnOnce(Option<&V>) -> R) -> R {
        self.with_chain(key, |versions| f(versions.and_then(|v| self.visible(v))))
    }

    /// Calls `f` with the version of `key` as of `seq` (pinned by the caller) under the
    /// entry's lock.
    fn with_at<R>(&self, key: &[u8], seq: u64, f: impl FnOnce(Option<&V>) -> R) -> R {
        self.with_chain(key, |versions| {
            f(versions.and_then(|v| v.at(seq, || self.pending_seq())))
        })
    }

    /// The latest visible value of `key`, itself (for small values such as Bitcask
    /// locations; the memory engine's readers copy bytes out instead).
    pub fn latest_value(&self, key: &[u8]) -> Option<V> {
        self.with_latest(key, |v| v.cloned())
    }

    /// The value of `key` as of `seq` (pinned by the caller), itself.
    pub fn value_at(&self, key: &[u8], seq: u64) -> Option<V> {
        self.with_at(key, seq, |v| v.cloned())
    }

    /// Up to `limit` live entries of `range` as of `seq` with their values themselves, in
    /// `dir` order, resuming after the key `resume` (exclusive) when given.
    pub fn entries_at(
        &self,
        range: &ScanRange,
        dir: Direction,
        seq: u64,
        resume: Option<&[u8]>,
        limit: usize,
    ) -> Vec<(Bytes, V)> {
        let walk = Walk {
            range,
            dir,
            seq,
            resume,
            limit,
        };
        self.entries_mapped(&walk, V::clone)
    }

    /// The entries `walk` covers with `map` of each value, each key copied into its own
    /// allocation. Keys handed out as slices of one buffer per chunk cost an atomic
    /// increment each, and an atomic decrement when dropped, on the buffer's one shared
    /// count. Each is a full barrier. Allocating each key made HGETALL of 10 fields
    /// -P 16 10-14% faster than slicing one buffer (`bench/ab.sh --pin 1:0 --command`).
    fn entries_mapped<T>(&self, walk: &Walk<'_>, mut map: impl FnMut(&V) -> T) -> Vec<(Bytes, T)> {
        let mut found: Vec<(Bytes, T)> = Vec::with_capacity(walk.limit.min(1024));
        self.walk(&self.order.read(), walk, |k, v| {
            found.push((Bytes::copy_from_slice(k), map(v)));
        });
        found
    }

    /// Calls `f` with every version of every key from `lo` and below `end` (exclusive;
    /// None: to the last key), oldest first per key, in key order, for up to `limit` keys
    /// under one hold of the order's read lock; returns the last key visited, to resume
    /// after. Sequence number 0 stands for "at or below every pin" (a version every
    /// reader sees). Bitcask's merge walks it to find what is referenced, several
    /// threads each over its own part of the key space.
    pub fn visit_versions_in(
        &self,
        lo: Bound<&[u8]>,
        end: Option<&[u8]>,
        limit: usize,
        mut f: impl FnMut(&[u8], &[VersionView<V>]),
    ) -> Option<Vec<u8>> {
        let hi = end.map_or(Bound::Unbounded, Bound::Excluded);
        let order = self.order.read();
        // The chunk's entries are listed first and read with the entry VISIT_AHEAD places
        // on asked for: each entry is its own allocation, and reading them in the walk
        // waited for one miss per key (merge's walk of 500k keys took twice as long as
        // over the B-tree map with its slots inline it replaced).
        let mut entries: Vec<&EntryRef<V>> = Vec::with_capacity(limit.min(4096));
        order.walk((lo, hi), Direction::Forward, |e| {
            if entries.len() >= limit {
                return false;
            }
            entries.push(e);
            true
        });
        let mut versions: SmallVec<[VersionView<V>; 2]> = SmallVec::new();
        for (i, e) in entries.iter().enumerate() {
            if let Some(ahead) = entries.get(i + VISIT_AHEAD) {
                prefetch_line(ahead.key_line());
            }
            versions.clear();
            match e.chain().view() {
                View::One(v) => versions.push((0, v.cloned())),
                View::Pending(v) => versions.push((self.pending_seq(), v.cloned())),
                View::Chain(c) => versions.extend(c.iter().map(|v| (v.seq, v.value.clone()))),
            }
            f(e.key(), &versions);
        }
        entries.last().map(|e| e.key().to_vec())
    }

    /// The first and the last key of the index (None when it is empty).
    pub fn first_and_last_keys(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let order = self.order.read();
        let end = |dir| {
            let mut key = None;
            order.walk((Bound::Unbounded, Bound::Unbounded), dir, |e| {
                key = Some(e.key().to_vec());
                false
            });
            key
        };
        Some((end(Direction::Forward)?, end(Direction::Reverse)?))
    }

    /// Moves versions merge relocated: for each `(key, old, new)` whose key still has a
    /// version holding `old`, puts `new` in its place; calls `missed` with `new` for each
    /// whose version left the index meanwhile. Versions are matched by value, which
    /// for Bitcask locations (segment, offset) names exactly one record. Each key is
    /// found through its hash and changed under its entry's lock, the lock readers
    /// take, so the moves may come in any order and no reader waits for more than one.
    /// Not to run beside [`HashedIndex::prefetch_serialised`], which reads slots unlocked.
    pub fn relocate<'a>(
        &self,
        moves: impl IntoIterator<Item = (&'a [u8], V, V)>,
        mut missed: impl FnMut(&[u8], &V),
    ) where
        V: PartialEq,
    {
        // In windows whose entries are asked for before any is probed, so that their
        // misses overlap.
        let mut moves = moves.into_iter();
        let mut window: SmallVec<[(&'a [u8], V, V); PREFETCH_WINDOW]> = SmallVec::new();
        let mut hashes: SmallVec<[u64; PREFETCH_WINDOW]> = SmallVec::new();
        loop {
            window.extend(moves.by_ref().take(PREFETCH_WINDOW));
            if window.is_empty() {
                return;
            }
            hashes.clear();
            hashes.extend(window.iter().map(|(key, ..)| self.hash(key)));
            self.prefetch_entries(&hashes);
            for ((key, old, new), &hash) in window.drain(..).zip(&hashes) {
                let table = self.shard(hash).read();
                let moved = match table.find(hash, |e| e.key() == key) {
                    Some(e) => match e.chain().find_mut(&old) {
                        Some(v) => {
                            *v = new.clone();
                            true
                        }
                        None => false,
                    },
                    None => false,
                };
                drop(table);
                if !moved {
                    missed(key, &new);
                }
            }
        }
    }

    /// Calls `f` with the live entries `walk` covers in the locked `order` and returns
    /// the last one's key (borrowed from `order`, so it outlives `f`'s calls).
    fn walk<'o>(
        &self,
        order: &'o OrderTree<EntryRef<V>>,
        walk: &Walk<'_>,
        mut f: impl FnMut(&'o [u8], &V),
    ) -> Option<&'o [u8]> {
        let Walk {
            range,
            dir,
            seq,
            resume,
            limit,
        } = *walk;
        let (lo, hi) = range.remaining_bounds(dir, resume)?;
        if limit == 0 {
            return None;
        }
        let mut seen = 0;
        let mut last = None;
        let visit = |e: &'o EntryRef<V>| {
            let chain = e.chain();
            if let Some(v) = chain.view().at(seq, || self.pending_seq()) {
                f(e.key(), v);
                last = Some(e.key());
                seen += 1;
            }
            seen < limit
        };
        order.walk((lo, hi), dir, visit);
        last
    }

    /// Makes room in the hash shards for `keys` more keys, before an open installs the
    /// keys it recovered: without it each shard's table was rebuilt five times on the
    /// way to a million keys (17% of a bitcask open's samples, with the rehashing).
    pub fn reserve(&self, keys: usize) {
        // Keys spread over the shards binomially; an eighth more than the mean is about
        // four standard deviations at a thousand per shard. A shard that still fills up
        // grows as usual.
        let per = keys / SHARDS;
        let per = per + per / 8 + 8;
        // Tables change only under the writer's lists' lock (see `apply_one`).
        let _writer = self.scratch.lock();
        for shard in self.shards.iter() {
            shard.table.write().reserve(per, |e| self.hash(e.key()));
        }
    }

    /// Installs one batch's operations at `seq`. The caller serialises writers, publishes
    /// `seq` afterwards and then calls [`Applied::settle`]. `dropped` hears every version
    /// that leaves the index.
    pub fn apply<K: AsRef<[u8]>>(
        &self,
        seq: u64,
        ops: impl IntoIterator<Item = (K, Option<V>)>,
        dropped: &mut impl FnMut(&[u8], Option<&V>),
    ) -> Applied<'_, V> {
        let horizon = self.registry.horizon();
        let mut scratch = self.scratch.lock();
        // The last batch's settle resolved every pending version, so none is left that
        // this store would mislabel.
        debug_assert!(
            scratch.settle.is_empty(),
            "apply before the last batch settled"
        );
        self.pending.store(seq, Ordering::Relaxed);
        // A window's home lines are asked for before any of its keys is looked up, so
        // their misses overlap instead of each waiting behind the previous key's lock
        // atomics (a new key's bucket store held up its shard lock's release).
        let mut ops = ops.into_iter();
        let mut window: SmallVec<[(u64, K, Option<V>); PREFETCH_WINDOW]> = SmallVec::new();
        loop {
            window.extend(
                ops.by_ref()
                    .take(PREFETCH_WINDOW)
                    .map(|(k, v)| (self.hash(k.as_ref()), k, v)),
            );
            if window.is_empty() {
                break;
            }
            for (hash, _, _) in &window {
                self.shard_of(*hash).prefetch_home(*hash);
            }
            for (hash, key, value) in window.drain(..) {
                self.apply_one(
                    seq,
                    horizon,
                    hash,
                    key.as_ref(),
                    value,
                    &mut scratch,
                    dropped,
                );
            }
        }
        self.add_tally(&mut scratch);
        Applied {
            index: self,
            scratch,
        }
    }

    /// Installs one operation of a batch (see [`HashedIndex::apply`]).
    #[allow(clippy::too_many_arguments)]
    fn apply_one(
        &self,
        seq: u64,
        horizon: u64,
        hash: u64,
        key: &[u8],
        value: Option<V>,
        scratch: &mut Scratch<V>,
        dropped: &mut impl FnMut(&[u8], Option<&V>),
    ) {
        {
            // SAFETY: `scratch` is borrowed from the lock of the writer's lists. The
            // shard's read lock was two atomics per written key, each a full barrier
            // that made the key's misses wait for the previous key's.
            let table = unsafe { self.table_unlocked(hash) };
            if let Some(e) = table.find(hash, |e| e.key() == key) {
                self.install(e, seq, horizon, value, scratch, dropped);
                return;
            }
        }
        // A new key. Writers are serialised, so nobody else can insert it meanwhile.
        // Readers may find it in one structure and not yet in the other, or (when a
        // tombstone is being removed) still in one and no longer in the other; both
        // answers are right for every reader:
        // - a new entry's only version is at `seq`, which is not published yet, so
        //   any reader — whose sequence is at most the published one — sees the key
        //   as absent whether it finds the entry or not;
        // - an entry is removed (`collect`) only once it holds nothing but a
        //   tombstone at or below the horizon, and every reader's sequence is at or
        //   above the horizon, so it reads as absent found or not found; and removal
        //   runs under the writer lock too, so it never overlaps an insert of the
        //   same key.
        // So both structures hold the same set of keys whenever the writer lock is
        // free, and between those moments they differ only in keys that read absent.
        if value.is_none() {
            // Deleting an absent key: nothing to record, no reader could see it.
            return;
        }
        scratch
            .tally
            .account(key.len(), None, value.as_ref().map(|v| v.weight()));
        // A version at or below the horizon is seen by every reader (only when loading
        // a checkpoint at its own sequence); otherwise it is pending until settled.
        let pending = seq > horizon;
        let entry = EntryRef::new(key, value, pending);
        if pending {
            scratch.settle.push(Settling(entry.0));
        }
        self.order.write().insert(entry.clone());
        let home = self.shard_of(hash);
        let mut table = home.table.write();
        if table.len() == table.capacity() && table.len() >= GROW_MIN {
            self.grow(&mut table);
        }
        let slot = table.insert_unique(hash, entry, |e| self.hash(e.key()));
        let (index, bucket) = (slot.bucket_index(), slot.get() as *const EntryRef<V>);
        home.note_home(bucket, index, slot.into_table().num_buckets());
    }

    /// Rebuilds a full shard table before an insert, with room for it: what hashbrown
    /// would do itself (twice the buckets, or the same number when at least half the
    /// capacity is tombstones), but hashing the entries in a pass that prefetches the
    /// entry [`GROW_AHEAD`] places on. hashbrown's own rehash reads each entry's key
    /// one dependent miss at a time: with the shards of a growing keyspace filling up
    /// together, those misses were a third of the funnel thread's samples during a
    /// pipelined LPUSH of a few million elements, and the tail of its latency.
    fn grow(&self, table: &mut HashTable<EntryRef<V>>) {
        let buckets = table.num_buckets();
        // hashbrown's capacity for a bucket count (7/8 of it from 8 buckets up).
        let full = if buckets < 8 {
            buckets.saturating_sub(1)
        } else {
            buckets / 8 * 7
        };
        let want = if table.len() < full / 2 {
            full
        } else {
            full + 1
        };
        let entries: Vec<EntryRef<V>> = std::mem::take(table).into_iter().collect();
        // Hashing is its own pass, before any insert: hashing each entry just before
        // inserting it (one loop, no vector of hashes) cost LPUSH -P 16 7-10% more CPU
        // per request in two `bench/ab.sh` runs.
        let mut hashes = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            if let Some(ahead) = entries.get(i + GROW_AHEAD) {
                prefetch_line(ahead.key_line());
            }
            hashes.push(self.hash(e.key()));
        }
        let mut grown = HashTable::with_capacity(want.max(entries.len() + 1));
        for (e, hash) in entries.into_iter().zip(hashes) {
            grown.insert_unique(hash, e, |e| self.hash(e.key()));
        }
        *table = grown;
    }

    /// Adds the writer's tallied counter changes to the shared counters.
    fn add_tally(&self, scratch: &mut Scratch<V>) {
        let t = std::mem::take(&mut scratch.tally);
        for (counter, change) in [
            (&self.live_keys, t.keys),
            (&self.live_bytes, t.bytes),
            (&self.retained, t.retained),
        ] {
            if change != 0 {
                counter.fetch_add(change, Ordering::Relaxed);
            }
        }
    }

    /// Adds the version `(seq, value)` to an existing `entry` and trims what the earlier
    /// versions no longer need to provide against `horizon`.
    fn install(
        &self,
        entry: &EntryRef<V>,
        seq: u64,
        horizon: u64,
        value: Option<V>,
        scratch: &mut Scratch<V>,
        dropped: &mut impl FnMut(&[u8], Option<&V>),
    ) {
        let key = entry.key();
        let mut chain = entry.chain();
        let view = chain.view();
        let old_weight = view.latest().map(|v| v.weight());
        let before = view.extra();
        scratch
            .tally
            .account(key.len(), old_weight, value.as_ref().map(|v| v.weight()));
        let state = match chain.take() {
            State::Pending(old) => {
                // Written earlier in this same batch (pending versions are this batch's).
                debug_assert_eq!(seq, self.pending_seq());
                dropped(key, old.as_ref());
                State::Pending(value)
            }
            State::One(old) if seq <= horizon => {
                dropped(key, old.as_ref());
                State::One(value)
            }
            State::One(old) => {
                // Readers at the published sequence still see `old` until the batch is
                // published; `settle` drops it then. Any sequence at or below the
                // horizon stands for it, as no reader is older than the horizon.
                let mut c = scratch.spare_chain();
                c.push(Version { seq: 0, value: old });
                c.push(Version { seq, value });
                State::Chain(c)
            }
            State::Chain(mut c) => {
                match c.last_mut() {
                    Some(last) if last.seq == seq => {
                        let old = std::mem::replace(&mut last.value, value);
                        dropped(key, old.as_ref());
                    }
                    _ => c.push(Version { seq, value }),
                }
                // The horizon is below `seq` (it is not published yet), so the newest
                // earlier version stays for readers at the published sequence.
                prune(&mut c, horizon, &mut |v| dropped(key, v));
                State::Chain(c)
            }
        };
        let settled = matches!(state, State::One(Some(_)));
        chain.put(state);
        scratch.tally.retained += chain.view().extra() as i64 - before as i64;
        if !settled && !entry.queued() {
            entry.set_queued(true);
            scratch.settle.push(Settling(entry.0));
        }
    }

    /// [`Applied::settle`], under the lists' lock the batch's `apply` took.
    fn settle_locked(&self, scratch: &mut Scratch<V>, dropped: &mut impl FnMut(&[u8], Option<&V>)) {
        let mut list = std::mem::take(&mut scratch.settle);
        if list.is_empty() {
            return;
        }
        let horizon = self.registry.horizon();
        let mut still = Vec::new();
        for queued in &list {
            // SAFETY: `apply` put the entry here while the tables held it, and the lock
            // held since keeps anything else from removing it; `collect` may remove it,
            // and it is not looked at again after (each entry is listed once).
            let entry = unsafe { queued.0.as_ref() };
            if self.collect(entry, horizon, scratch, dropped) == KeyGc::StillNeeded {
                still.push(IndexKey::new(entry.key()));
            }
        }
        self.add_tally(scratch);
        if !still.is_empty() {
            self.gc_queue.lock().extend(still);
        }
        // Hand the buffer back so the next batch does not allocate one.
        list.clear();
        scratch.settle = list;
    }

    /// Reclaims versions for up to `max_keys` queued keys; returns how many were looked at.
    /// The caller must hold the engine's writer lock (no concurrent `apply`).
    pub fn gc_step(&self, max_keys: usize, dropped: &mut impl FnMut(&[u8], Option<&V>)) -> usize {
        let horizon = self.registry.horizon();
        let mut requeue = Vec::new();
        let mut seen = 0;
        let mut scratch = self.scratch.lock();
        while seen < max_keys {
            let Some(key) = self.gc_queue.lock().pop_front() else {
                break;
            };
            seen += 1;
            let hash = self.hash(&key);
            let entry = self
                .shard(hash)
                .read()
                .find(hash, |e| e.key() == &key[..])
                .cloned();
            if let Some(entry) = entry {
                if self.collect(&entry, horizon, &mut scratch, dropped) == KeyGc::StillNeeded {
                    requeue.push(key);
                }
            }
        }
        self.add_tally(&mut scratch);
        if !requeue.is_empty() {
            self.gc_queue.lock().extend(requeue);
        }
        seen
    }

    /// Resolves one entry's versions against `horizon`: a pending version becomes the
    /// one every reader sees (or a chain, while an older snapshot is open), a chain is
    /// pruned and goes back to one version once that one is at or below the horizon,
    /// and an entry left with only a tombstone leaves both structures. The entry must
    /// be queued (in the settle list or the GC queue) and the caller must hold the
    /// writer lock, so the entry is the one both structures hold for its key.
    fn collect(
        &self,
        entry: &Entry<V>,
        horizon: u64,
        scratch: &mut Scratch<V>,
        dropped: &mut impl FnMut(&[u8], Option<&V>),
    ) -> KeyGc {
        let key = entry.key();
        let mut chain = entry.chain();
        let before = chain.view().extra();
        let state = match chain.take() {
            State::Pending(v) => {
                let seq = self.pending_seq();
                if seq <= horizon {
                    State::One(v)
                } else {
                    let mut c = scratch.spare_chain();
                    c.push(Version { seq, value: v });
                    State::Chain(c)
                }
            }
            State::Chain(mut c) => {
                prune(&mut c, horizon, &mut |v| dropped(key, v));
                match c.last() {
                    Some(last) if c.len() == 1 && last.seq <= horizon => {
                        // Back to one version: the chain's box goes to the spare list for
                        // the next overwrite instead of to the allocator (an overwrite
                        // paid a malloc and a free for it, ~450 instr of a pipelined
                        // SET's ~8,400 under callgrind).
                        let value = c.pop().and_then(|v| v.value);
                        scratch.return_spare(c);
                        State::One(value)
                    }
                    Some(_) => State::Chain(c),
                    None => State::One(None),
                }
            }
            one @ State::One(_) => one,
        };
        let (settled, removable) = match &state {
            State::One(v) => (true, v.is_none()),
            _ => (false, false),
        };
        chain.put(state);
        scratch.tally.retained -= before as i64 - chain.view().extra() as i64;
        if !settled {
            return KeyGc::StillNeeded;
        }
        entry.set_queued(false);
        if removable {
            dropped(key, None);
            drop(chain);
            let hash = self.hash(key);
            // The table's reference is kept until the tree's is gone too: it may be the
            // last but the tree's, and `key` borrows the entry.
            let from_table = self
                .shard(hash)
                .write()
                .find_entry(hash, |e| std::ptr::eq(e.0.as_ptr(), entry))
                .ok()
                .map(|found| found.remove().0);
            self.order.write().remove(key);
            drop(from_table);
        }
        KeyGc::Clean
    }

    /// Keys waiting for version GC.
    pub fn gc_pending(&self) -> usize {
        self.gc_queue.lock().len()
    }

    /// The key at position `n` of `range` among every key the index holds, live or not,
    /// and how many it holds there (see [`crate::Storage::key_at`]); one hold of the
    /// order's read lock, three descents.
    pub fn key_at(&self, range: &ScanRange, n: u64) -> KeyAt {
        let order = self.order.read();
        let (start, end) = span(&order, range);
        let keys = end.saturating_sub(start) as u64;
        let key = if n < keys {
            order
                .nth(start + n as usize)
                .map(|e| Bytes::copy_from_slice(e.key()))
        } else {
            None
        };
        KeyAt { key, keys }
    }

    /// How many keys the index holds in `range` and in the part of it `within` covers
    /// (see [`crate::Storage::count_within`]); one hold of the order's read lock, four
    /// descents, three when `within` shares a bound with `range`.
    ///
    /// Why the shared bound is not searched again: a rank (ZRANK counts from the
    /// sorted set's first entry to the member) is `within` from `range`'s start, and
    /// the repeated descent was a quarter of ZRANK's count.
    pub fn count_within(&self, range: &ScanRange, within: &ScanRange) -> KeyCounts {
        let order = self.order.read();
        let (start, end) = span(&order, range);
        let from = if within.start == range.start {
            start
        } else {
            start_of(&order, &within.start)
        };
        let to = if within.end == range.end {
            end
        } else {
            end_of(&order, &within.end)
        };
        let (from, to) = (from.max(start), to.min(end));
        KeyCounts {
            keys: end.saturating_sub(start) as u64,
            within: to.saturating_sub(from) as u64,
        }
    }

    /// Live (visible, non-deleted) keys at the latest state.
    pub fn live_keys(&self) -> u64 {
        self.live_keys.load(Ordering::Relaxed).max(0) as u64
    }

    /// Sum of key and value weights of live keys.
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes.load(Ordering::Relaxed).max(0) as u64
    }

    /// Versions kept beyond one per key (for snapshots or awaiting GC).
    pub fn retained_versions(&self) -> u64 {
        self.retained.load(Ordering::Relaxed).max(0) as u64
    }

    /// Entries in the index, including tombstones awaiting GC.
    pub fn entries(&self) -> usize {
        self.order.read().len()
    }
}

/// Reads that copy or lend a value's bytes: the memory engine's, whose values are them.
impl<V: IndexValue + AsRef<[u8]>> HashedIndex<V> {
    /// The latest visible value of `key`.
    pub fn get_latest(&self, key: &[u8]) -> Option<Bytes> {
        self.read_latest(key, |v| v.map(Bytes::copy_from_slice))
    }

    /// Calls `f` once with the latest visible value of `key` (None: absent), under the
    /// entry's lock, without copying it.
    pub fn read_latest<R>(&self, key: &[u8], f: impl FnOnce(Option<&[u8]>) -> R) -> R {
        self.with_latest(key, |v| f(v.map(AsRef::as_ref)))
    }

    /// [`HashedIndex::read_latest`] for the writer itself, without the shard's and the
    /// entry's locks, which only exclude it.
    ///
    /// # Safety
    /// As for [`HashedIndex::prefetch_serialised`]: the caller serialises this with every
    /// writer of the index.
    pub unsafe fn read_latest_serialised<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(Option<&[u8]>) -> R,
    ) -> R {
        let hash = self.hash(key);
        // SAFETY: writers are excluded (the contract).
        let table = unsafe { self.table_unlocked(hash) };
        let Some(entry) = table.find(hash, |e| e.key() == key) else {
            return f(None);
        };
        // SAFETY: slots change only under writers, so reading one unlocked is a read
        // among readers.
        let versions = unsafe { entry.view() };
        f(self.visible(versions).map(AsRef::as_ref))
    }

    /// The value of `key` as of `seq` (which must be pinned by the caller).
    pub fn get_at(&self, key: &[u8], seq: u64) -> Option<Bytes> {
        self.with_at(key, seq, |v| v.map(copy_out))
    }

    /// Up to `limit` live entries of `range` as of `seq`, in `dir` order, resuming after
    /// the key `resume` (exclusive) when given. Used to build owning chunked iterators.
    pub fn range_at(
        &self,
        range: &ScanRange,
        dir: Direction,
        seq: u64,
        resume: Option<&[u8]>,
        limit: usize,
    ) -> Vec<(Bytes, Bytes)> {
        let walk = Walk {
            range,
            dir,
            seq,
            resume,
            limit,
        };
        self.entries_mapped(&walk, copy_out)
    }

    /// Like [`HashedIndex::range_at`] for a reader that keeps neither keys nor values as
    /// they are: `f` is lent each key and value (under the order's read lock), and only
    /// the last entry's key is copied (where a next walk resumes; None when the range had
    /// no live entry left). Returns how many entries `f` saw and that key.
    pub fn visit_at(
        &self,
        walk: &Walk<'_>,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> (usize, Option<Bytes>) {
        let order = self.order.read();
        let mut visited = 0;
        let last = self.walk(&order, walk, |k, v| {
            visited += 1;
            f(k, v.as_ref());
        });
        (visited, last.map(Bytes::copy_from_slice))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn put(idx: &HashedIndex<Bytes>, seq: u64, k: &str, v: Option<&str>) {
        let applied = idx.apply(seq, [(b(k), v.map(b))], &mut |_, _| {});
        idx.registry().publish(seq);
        applied.settle(&mut |_, _| {});
    }

    #[test]
    fn prefetch_takes_any_key_and_changes_nothing() {
        let idx = HashedIndex::<Bytes>::new(0);
        let long = "k".repeat(usize::from(LONG_KEY) + 5);
        put(&idx, 1, "a", Some("1"));
        let pin = idx.pin();
        put(&idx, 2, "a", Some("2"));
        put(&idx, 3, "gone", Some("x"));
        put(&idx, 4, "gone", None);
        put(&idx, 5, &long, Some("L"));
        for i in 0..100u64 {
            put(&idx, 6 + i, &format!("n{i}"), Some(&i.to_string()));
        }
        // An entry with no key bytes past its head (the key-tail prefetch's edge).
        put(&idx, 106, "", Some("empty"));
        let latest = idx.registry().visible();
        let everything = |seq| idx.range_at(&ScanRange::all(), Direction::Forward, seq, None, 1000);
        let (before_now, before_pinned) = (everything(latest), everything(pin.seq()));
        let mut keys: Vec<Vec<u8>> = ["a", "gone", "absent", "", long.as_str()]
            .iter()
            .map(|k| k.as_bytes().to_vec())
            .collect();
        keys.extend((0..100).map(|i| format!("n{i}").into_bytes()));
        let keys: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
        // More than a window at once, and in windows.
        // SAFETY: this test's thread is the index's only writer.
        unsafe { idx.prefetch_serialised(&keys) };
        for window in keys.chunks(crate::cache_hint::PREFETCH_WINDOW) {
            // SAFETY: as above.
            unsafe { idx.prefetch_serialised(window) };
        }
        assert_eq!(everything(latest), before_now);
        assert_eq!(everything(pin.seq()), before_pinned);
        assert_eq!(idx.get_at(b"a", pin.seq()), Some(b("1")));
        assert_eq!(idx.get_latest(b"a"), Some(b("2")));
        assert_eq!(idx.get_latest(long.as_bytes()), Some(b("L")));
        assert_eq!(idx.get_latest(b"gone"), None);
        assert_eq!(idx.get_latest(b""), Some(b("empty")));
        assert_eq!(idx.live_keys(), 103);
        // The readers' hint changes nothing either.
        idx.prefetch_concurrent(&keys);
        for window in keys.chunks(crate::cache_hint::PREFETCH_WINDOW) {
            idx.prefetch_concurrent(window);
        }
        assert_eq!(everything(latest), before_now);
        assert_eq!(everything(pin.seq()), before_pinned);
    }

    #[test]
    fn readers_prefetch_beside_a_writer_that_grows_the_tables() {
        let idx = Arc::new(HashedIndex::<Bytes>::new(0));
        let keys: Vec<Vec<u8>> = (0..4000).map(|i| format!("k{i}").into_bytes()).collect();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (idx, keys, stop) = (Arc::clone(&idx), keys.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let refs: Vec<&[u8]> = keys.iter().map(|k| &k[..]).collect();
                let mut passes = 0u64;
                while !stop.load(Ordering::Relaxed) || passes == 0 {
                    for window in refs.chunks(crate::cache_hint::PREFETCH_WINDOW) {
                        idx.prefetch_concurrent(window);
                    }
                    passes += 1;
                }
                passes
            })
        };
        // Inserts (the tables grow), overwrites and deletes while the reader hints.
        for (i, k) in keys.iter().enumerate() {
            let k = std::str::from_utf8(k).expect("utf8");
            put(&idx, 1 + i as u64, k, Some("v"));
        }
        let base = keys.len() as u64;
        for (i, k) in keys.iter().enumerate().step_by(2) {
            let k = std::str::from_utf8(k).expect("utf8");
            put(&idx, base + 1 + i as u64, k, None);
        }
        stop.store(true, Ordering::Relaxed);
        assert!(reader.join().expect("reader") > 0);
        assert_eq!(idx.live_keys(), 2000);
        assert_eq!(idx.get_latest(b"k1"), Some(b("v")));
        assert_eq!(idx.get_latest(b"k0"), None);
    }

    #[test]
    fn snapshot_sees_its_point_in_time() {
        let idx = HashedIndex::<Bytes>::new(0);
        put(&idx, 1, "a", Some("1"));
        let pin = idx.pin();
        put(&idx, 2, "a", Some("2"));
        put(&idx, 3, "b", Some("x"));
        put(&idx, 4, "a", None);
        assert_eq!(idx.get_at(b"a", pin.seq()), Some(b("1")));
        assert_eq!(idx.get_at(b"b", pin.seq()), None);
        assert_eq!(idx.get_latest(b"a"), None);
        assert_eq!(idx.get_latest(b"b"), Some(b("x")));
        let all = idx.range_at(&ScanRange::all(), Direction::Forward, pin.seq(), None, 10);
        assert_eq!(all, vec![(b("a"), b("1"))]);
        assert_eq!(idx.live_keys(), 1);
    }

    #[test]
    fn unpublished_batch_is_invisible_and_old_version_stays_until_settle() {
        let idx = HashedIndex::<Bytes>::new(0);
        put(&idx, 1, "a", Some("1"));
        let applied = idx.apply(
            2,
            [(b("a"), Some(b("2"))), (b("n"), Some(b("new")))],
            &mut |_, _| {},
        );
        assert_eq!(idx.get_latest(b"a"), Some(b("1")), "seq 2 is not published");
        assert_eq!(
            idx.get_latest(b"n"),
            None,
            "a new key of an unpublished batch"
        );
        assert_eq!(idx.retained_versions(), 1);
        idx.registry().publish(2);
        applied.settle(&mut |_, _| {});
        assert_eq!(idx.get_latest(b"a"), Some(b("2")));
        assert_eq!(idx.get_latest(b"n"), Some(b("new")));
        assert_eq!(idx.retained_versions(), 0);
    }

    #[test]
    fn a_new_key_stays_invisible_to_older_snapshots_until_they_close() {
        let idx = HashedIndex::<Bytes>::new(0);
        let mut noop = |_: &[u8], _: Option<&Bytes>| {};
        put(&idx, 1, "old", Some("o"));
        let pin = idx.pin();
        // Written twice and once deleted within one batch: only the last write counts.
        let applied = idx.apply(
            2,
            [
                (b("n"), Some(b("first"))),
                (b("n"), Some(b("second"))),
                (b("gone"), Some(b("x"))),
                (b("gone"), None),
            ],
            &mut noop,
        );
        assert_eq!(idx.get_latest(b"n"), None, "pending, not published");
        idx.registry().publish(2);
        assert_eq!(
            idx.get_latest(b"n"),
            Some(b("second")),
            "published, not settled"
        );
        assert_eq!(idx.get_at(b"n", pin.seq()), None);
        applied.settle(&mut noop);
        // The snapshot predates the batch, so the key keeps its sequence in a chain.
        assert_eq!(idx.get_at(b"n", pin.seq()), None);
        assert_eq!(idx.get_latest(b"n"), Some(b("second")));
        assert_eq!(idx.get_latest(b"gone"), None);
        assert_eq!(idx.gc_pending(), 2, "n and gone wait for the snapshot");
        let scan = |seq| idx.range_at(&ScanRange::all(), Direction::Forward, seq, None, 10);
        assert_eq!(scan(pin.seq()), vec![(b("old"), b("o"))]);
        // A later batch's pending keys do not change what the older chain says.
        put(&idx, 3, "later", Some("l"));
        assert_eq!(idx.get_at(b"n", pin.seq()), None);
        drop(pin);
        while idx.gc_step(16, &mut noop) > 0 {}
        assert_eq!(idx.gc_pending(), 0);
        assert_eq!(idx.entries(), 3, "old, n, later; gone left");
        assert_eq!(idx.live_keys(), 3);
        assert_eq!(idx.retained_versions(), 0);
        let hash = idx.hash(b"n");
        let table = idx.shard(hash).read();
        let entry = table.find(hash, |e| e.key() == b"n").expect("n is indexed");
        assert!(matches!(entry.chain().view(), View::One(Some(_))));
        assert!(!entry.queued());
    }

    #[test]
    fn a_checkpoint_loaded_at_its_own_sequence_is_visible_at_once() {
        // Opening applies the checkpoint at the sequence the registry starts from, at the
        // horizon: its keys need no settling to be seen.
        let idx = HashedIndex::<Bytes>::new(7);
        let applied = idx.apply(
            7,
            [(b("a"), Some(b("1"))), (b("b"), Some(b("2")))],
            &mut |_, _| {},
        );
        assert_eq!(idx.get_latest(b"a"), Some(b("1")));
        assert_eq!(idx.get_at(b"b", 7), Some(b("2")));
        applied.settle(&mut |_, _| {});
        assert_eq!(idx.gc_pending(), 0);
        assert_eq!(idx.live_keys(), 2);
    }

    #[test]
    fn an_overwritten_chain_reuses_one_spare_buffer() {
        let idx = HashedIndex::<Bytes>::new(0);
        let mut noop = |_: &[u8], _: Option<&Bytes>| {};
        for s in 1..=50u64 {
            let applied = idx.apply(s, [(b("k"), Some(b(&s.to_string())))], &mut noop);
            idx.registry().publish(s);
            applied.settle(&mut noop);
            assert_eq!(idx.get_latest(b"k"), Some(b(&s.to_string())));
        }
        // The first overwrite allocated the buffer; every later one took it back from
        // the spare list and returned it at settle.
        assert_eq!(idx.scratch.lock().spare.len(), 1);
        // A snapshot keeps old versions in a chain; releasing it brings the key back to
        // one version and the chain back to the spare list.
        let pin = idx.pin();
        for s in 51..=53u64 {
            let applied = idx.apply(s, [(b("k"), Some(b(&s.to_string())))], &mut noop);
            idx.registry().publish(s);
            applied.settle(&mut noop);
        }
        assert_eq!(idx.get_at(b"k", pin.seq()), Some(b("50")));
        drop(pin);
        while idx.gc_pending() > 0 {
            idx.gc_step(16, &mut noop);
        }
        assert_eq!(idx.get_latest(b"k"), Some(b("53")));
        assert_eq!(idx.retained_versions(), 0);
        assert!(idx.scratch.lock().spare.len() <= MAX_SPARE);
    }

    #[test]
    fn overwrites_without_snapshots_queue_nothing_for_gc() {
        let idx = HashedIndex::<Bytes>::new(0);
        let mut dropped = 0usize;
        for s in 1..=100u64 {
            let k = format!("k{}", s % 10);
            let applied = idx.apply(s, [(b(&k), Some(b("v")))], &mut |_, _| dropped += 1);
            idx.registry().publish(s);
            applied.settle(&mut |_, _| dropped += 1);
        }
        assert_eq!(idx.gc_pending(), 0);
        assert_eq!(idx.retained_versions(), 0);
        for i in 0..10 {
            let key = format!("k{i}");
            let hash = idx.hash(key.as_bytes());
            let table = idx.shard(hash).read();
            let entry = table.find(hash, |e| e.key() == key.as_bytes());
            let settled = entry.map(|e| matches!(e.chain().view(), View::One(Some(_))));
            assert_eq!(settled, Some(true), "{key} is back to one version");
        }
        assert_eq!(
            dropped, 90,
            "every overwritten version left at its batch's settle"
        );
        assert_eq!(idx.entries(), 10);
    }

    #[test]
    fn gc_returns_to_one_version_per_key_after_pins_drop() {
        let idx = HashedIndex::<Bytes>::new(0);
        let mut dropped = 0usize;
        put(&idx, 1, "a", Some("1"));
        let pin = idx.pin();
        for s in 2..50 {
            let applied = idx.apply(s, [(b("a"), Some(b("v")))], &mut |_, _| dropped += 1);
            idx.registry().publish(s);
            applied.settle(&mut |_, _| dropped += 1);
        }
        assert_eq!(idx.get_at(b"a", pin.seq()), Some(b("1")));
        assert!(idx.retained_versions() >= 2);
        assert_eq!(
            idx.gc_pending(),
            1,
            "the key waits once, not once per write"
        );
        drop(pin);
        while idx.gc_step(100, &mut |_, _| dropped += 1) > 0 {}
        assert_eq!(idx.retained_versions(), 0);
        assert_eq!(dropped, 48);
        put(&idx, 60, "a", None);
        assert_eq!(idx.entries(), 0);
        assert_eq!(idx.live_keys(), 0);
        assert_eq!(idx.live_bytes(), 0);
        assert_eq!(idx.get_latest(b"a"), None);
    }

    /// A value that counts its live copies, to see entries and chains freed.
    #[derive(Debug)]
    struct Counted(Bytes, Arc<AtomicI64>);

    impl Counted {
        fn new(s: &str, live: &Arc<AtomicI64>) -> Counted {
            live.fetch_add(1, Ordering::Relaxed);
            Counted(b(s), Arc::clone(live))
        }
    }

    impl Clone for Counted {
        fn clone(&self) -> Counted {
            self.1.fetch_add(1, Ordering::Relaxed);
            Counted(self.0.clone(), Arc::clone(&self.1))
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.fetch_sub(1, Ordering::Relaxed);
        }
    }

    impl AsRef<[u8]> for Counted {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }

    impl IndexValue for Counted {
        fn weight(&self) -> u64 {
            self.0.len() as u64
        }
    }

    #[test]
    fn every_entry_and_value_is_freed() {
        let live = Arc::new(AtomicI64::new(0));
        let idx = HashedIndex::<Counted>::new(0);
        let mut seq = 0;
        let mut write = |idx: &HashedIndex<Counted>, ops: Vec<(String, Option<&str>)>| {
            seq += 1;
            let ops = ops
                .into_iter()
                .map(|(k, v)| (b(&k), v.map(|v| Counted::new(v, &live))));
            let applied = idx.apply(seq, ops, &mut |_, _| {});
            idx.registry().publish(seq);
            applied.settle(&mut |_, _| {});
        };
        write(
            &idx,
            (0..500).map(|i| (format!("k{i}"), Some("a"))).collect(),
        );
        let pin = idx.pin();
        write(
            &idx,
            (0..500).map(|i| (format!("k{i}"), Some("b"))).collect(),
        );
        write(&idx, (0..250).map(|i| (format!("k{i}"), None)).collect());
        assert_eq!(
            live.load(Ordering::Relaxed),
            1000,
            "the snapshot keeps the a's"
        );
        drop(pin);
        while idx.gc_step(100, &mut |_, _| {}) > 0 {}
        assert_eq!(idx.entries(), 250);
        assert_eq!(live.load(Ordering::Relaxed), 250);
        drop(idx);
        assert_eq!(
            live.load(Ordering::Relaxed),
            0,
            "dropping the index frees all"
        );
    }

    #[test]
    fn keys_of_every_length_class_round_trip() {
        let idx = HashedIndex::<Bytes>::new(0);
        let lens = [0usize, 1, 12, 22, 23, 100, 65_534, 65_535, 70_000];
        let key = |len: usize| -> Bytes { (0..len).map(|i| (i * 31 + len) as u8).collect() };
        let mut noop = |_: &[u8], _: Option<&Bytes>| {};
        for (i, &len) in lens.iter().enumerate() {
            let applied = idx.apply(
                i as u64 + 1,
                [(key(len), Some(b(&len.to_string())))],
                &mut noop,
            );
            idx.registry().publish(i as u64 + 1);
            applied.settle(&mut noop);
        }
        for &len in &lens {
            assert_eq!(
                idx.get_latest(&key(len)),
                Some(b(&len.to_string())),
                "len {len}"
            );
        }
        let all = idx.range_at(&ScanRange::all(), Direction::Forward, 99, None, 100);
        let mut want: Vec<Bytes> = lens.iter().map(|&l| key(l)).collect();
        want.sort();
        assert_eq!(all.into_iter().map(|(k, _)| k).collect::<Vec<_>>(), want);
    }

    #[test]
    fn resume_and_reverse() {
        let idx = HashedIndex::<Bytes>::new(0);
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            put(&idx, i as u64 + 1, k, Some(k));
        }
        let s = idx.registry().visible();
        let r = idx.range_at(&ScanRange::all(), Direction::Reverse, s, Some(b"c"), 10);
        assert_eq!(
            r.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
            vec![b("b"), b("a")]
        );
        let r = idx.range_at(&ScanRange::all(), Direction::Forward, s, Some(b"b"), 1);
        assert_eq!(r, vec![(b("c"), b("c"))]);
    }

    #[test]
    fn deletes_leave_the_index_at_once_unless_a_snapshot_needs_them() {
        let idx = HashedIndex::<Bytes>::new(0);
        put(&idx, 1, "a", Some("1"));
        put(&idx, 2, "b", Some("2"));
        put(&idx, 3, "a", None);
        assert_eq!(idx.entries(), 1, "no snapshot: the tombstone is gone");
        let pin = idx.pin();
        put(&idx, 4, "b", None);
        assert_eq!(idx.entries(), 1, "a snapshot still sees b");
        assert_eq!(idx.get_at(b"b", pin.seq()), Some(b("2")));
        drop(pin);
        while idx.gc_step(10, &mut |_, _| {}) > 0 {}
        assert_eq!(idx.entries(), 0);
        put(&idx, 5, "b", Some("again"));
        assert_eq!(idx.get_latest(b"b"), Some(b("again")));
        assert_eq!(idx.entries(), 1);
    }

    #[test]
    fn home_addresses_match_where_the_table_keeps_its_buckets() {
        // The prefetch hint computes bucket addresses from hashbrown's layout; should that
        // layout change, this fails rather than the hints silently missing.
        let idx = HashedIndex::<Bytes>::new(0);
        let keys: Vec<String> = (0..20_000).map(|i| format!("home{i}")).collect();
        let _unsettled = idx.apply(1, keys.iter().map(|k| (b(k), Some(b("v")))), &mut |_, _| {});
        let mut checked = 0;
        for key in &keys {
            let hash = idx.hash(key.as_bytes());
            let shard = idx.shard_of(hash);
            let table = shard.table.read();
            let index = table
                .find_bucket_index(hash, |e| e.key() == key.as_bytes())
                .expect("inserted key is in its shard");
            let bucket = table.get_bucket(index).expect("occupied") as *const EntryRef<Bytes>;
            let home = shard.home.load(Ordering::Relaxed);
            let size = std::mem::size_of::<EntryRef<Bytes>>();
            assert_eq!(home - (index + 1) * size, bucket as usize, "{key}");
            assert_eq!(shard.mask.load(Ordering::Relaxed), table.num_buckets() - 1);
            checked += 1;
        }
        assert_eq!(checked, keys.len());
    }

    #[test]
    fn a_rebuilt_shard_keeps_every_key_and_doubles_only_past_half_load() {
        // Keys of one shard, so its table passes GROW_MIN and is rebuilt by `grow` a few
        // times on insert; then direct rebuilds: a full table doubles, one with under half
        // its capacity live (after deletes) keeps its size.
        let idx = HashedIndex::<Bytes>::new(0);
        let target = idx.shard_of(idx.hash(b"g0")) as *const Shard<Bytes>;
        let mut keys = (0..)
            .map(|i| format!("g{i}"))
            .filter(|k| std::ptr::eq(idx.shard_of(idx.hash(k.as_bytes())), target));
        // SAFETY: `target` points into `idx.shards`, which outlives this test's uses.
        let shard = unsafe { &*target };
        let mut live: Vec<String> = Vec::new();
        let mut gone: Vec<String> = Vec::new();
        let mut seq = 0;
        let check = |live: &[String], gone: &[String]| {
            for k in live {
                assert_eq!(idx.get_latest(k.as_bytes()), Some(b(k)), "{k}");
            }
            for k in gone {
                assert_eq!(idx.get_latest(k.as_bytes()), None, "{k}");
            }
            assert_eq!(shard.table.read().len(), live.len());
        };
        // Fill until the table is full at 2048 buckets (grown from empty through GROW_MIN).
        loop {
            let t = shard.table.read();
            if t.num_buckets() >= 2048 && t.len() == t.capacity() {
                break;
            }
            drop(t);
            let k = keys.next().expect("keys never run out");
            seq += 1;
            put(&idx, seq, &k, Some(&k));
            live.push(k);
        }
        check(&live, &gone);
        // Full: the next insert would double it, as a direct rebuild does.
        idx.grow(&mut shard.table.write());
        check(&live, &gone);
        let doubled = shard.table.read().num_buckets();
        assert_eq!(doubled, 4096);
        // Delete four in five: under half the capacity is live, so a rebuild keeps the size.
        let mut n = 0;
        let doomed: Vec<String> = live
            .extract_if(.., |_| {
                n += 1;
                n % 5 != 0
            })
            .collect();
        for k in doomed {
            seq += 1;
            put(&idx, seq, &k, None);
            gone.push(k);
        }
        idx.grow(&mut shard.table.write());
        check(&live, &gone);
        assert_eq!(shard.table.read().num_buckets(), doubled);
        // And inserts after it land in the rebuilt table.
        for k in keys.take(500) {
            seq += 1;
            put(&idx, seq, &k, Some(&k));
            live.push(k);
        }
        check(&live, &gone);
    }

    #[test]
    fn many_keys_across_shards_are_found_and_ordered() {
        let idx = HashedIndex::<Bytes>::new(0);
        let n = 5000u64;
        let applied = idx.apply(
            1,
            (0..n).map(|i| (b(&format!("key{i:05}")), Some(b(&i.to_string())))),
            &mut |_, _| {},
        );
        idx.registry().publish(1);
        applied.settle(&mut |_, _| {});
        for i in (0..n).step_by(7) {
            assert_eq!(
                idx.get_latest(format!("key{i:05}").as_bytes()),
                Some(b(&i.to_string()))
            );
        }
        assert_eq!(idx.get_latest(b"key99999"), None);
        let all = idx.range_at(
            &ScanRange::all(),
            Direction::Forward,
            1,
            None,
            n as usize + 1,
        );
        assert_eq!(all.len(), n as usize);
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn bounded_visits_split_the_key_space() {
        let idx = HashedIndex::<Bytes>::new(0);
        assert_eq!(idx.first_and_last_keys(), None);
        for i in 0..1000u64 {
            put(&idx, i + 1, &format!("k{i:04}"), Some("v"));
        }
        assert_eq!(
            idx.first_and_last_keys(),
            Some((b"k0000".to_vec(), b"k0999".to_vec()))
        );
        // The two sides of a split visit every key exactly once.
        let mid = b"k0500".to_vec();
        let mut seen = Vec::new();
        for (lo, hi) in [(None, Some(mid.as_slice())), (Some(mid.as_slice()), None)] {
            let mut resume: Option<Vec<u8>> = None;
            loop {
                let bound = match (&resume, lo) {
                    (Some(r), _) => Bound::Excluded(r.as_slice()),
                    (None, Some(l)) => Bound::Included(l),
                    (None, None) => Bound::Unbounded,
                };
                let last = idx.visit_versions_in(bound, hi, 33, |k, _| seen.push(k.to_vec()));
                match last {
                    Some(k) => resume = Some(k),
                    None => break,
                }
            }
        }
        let want: Vec<Vec<u8>> = (0..1000).map(|i| format!("k{i:04}").into_bytes()).collect();
        assert_eq!(seen, want);
        // Empty and inverted ranges visit nothing.
        let mut n = 0;
        assert!(idx
            .visit_versions_in(Bound::Included(b"k0600"), Some(b"k0100"), 10, |_, _| n += 1)
            .is_none());
        assert!(idx
            .visit_versions_in(Bound::Excluded(b"k0600"), Some(b"k0600"), 10, |_, _| n += 1)
            .is_none());
        assert_eq!(n, 0);
    }

    #[test]
    fn visits_show_each_version_with_its_sequence() {
        let idx = HashedIndex::<Bytes>::new(0);
        put(&idx, 1, "a", Some("1"));
        let pin = idx.pin();
        put(&idx, 2, "a", Some("2"));
        put(&idx, 3, "a", None);
        // An unpublished batch: its version is pending, at its own sequence.
        let applied = idx.apply(4, [(b("b"), Some(b("4")))], &mut |_, _| {});
        let mut seen = Vec::new();
        idx.visit_versions_in(Bound::Unbounded, None, 10, |k, v| {
            seen.push((k.to_vec(), v.to_vec()))
        });
        assert_eq!(
            seen,
            vec![
                (
                    b"a".to_vec(),
                    vec![(0, Some(b("1"))), (2, Some(b("2"))), (3, None)]
                ),
                (b"b".to_vec(), vec![(4, Some(b("4")))]),
            ]
        );
        idx.registry().publish(4);
        applied.settle(&mut |_, _| {});
        drop(pin);
        while idx.gc_step(10, &mut |_, _| {}) > 0 {}
        seen.clear();
        idx.visit_versions_in(Bound::Unbounded, None, 10, |k, v| {
            seen.push((k.to_vec(), v.to_vec()))
        });
        assert_eq!(seen, vec![(b"b".to_vec(), vec![(0, Some(b("4")))])]);
    }

    #[test]
    fn values_themselves_as_of_a_sequence() {
        let idx = HashedIndex::<Bytes>::new(0);
        put(&idx, 1, "a", Some("1"));
        put(&idx, 2, "c", Some("3"));
        let pin = idx.pin();
        put(&idx, 3, "a", Some("2"));
        put(&idx, 4, "b", Some("x"));
        put(&idx, 5, "c", None);
        assert_eq!(idx.latest_value(b"a"), Some(b("2")));
        assert_eq!(idx.latest_value(b"c"), None);
        assert_eq!(idx.value_at(b"a", pin.seq()), Some(b("1")));
        assert_eq!(idx.value_at(b"b", pin.seq()), None);
        let at = |seq, dir, resume: Option<&[u8]>, limit| {
            idx.entries_at(&ScanRange::all(), dir, seq, resume, limit)
        };
        assert_eq!(
            at(pin.seq(), Direction::Forward, None, 10),
            vec![(b("a"), b("1")), (b("c"), b("3"))]
        );
        assert_eq!(
            at(5, Direction::Reverse, None, 10),
            vec![(b("b"), b("x")), (b("a"), b("2"))]
        );
        assert_eq!(
            at(5, Direction::Forward, Some(b"a"), 1),
            vec![(b("b"), b("x"))]
        );
        let mut latest = Vec::new();
        idx.latest_each(&[b"a", b"zz", b"b"], |i, v| latest.push((i, v.clone())));
        assert_eq!(latest, vec![(0, b("2")), (2, b("x"))]);
    }

    #[test]
    fn relocate_moves_only_versions_still_held() {
        let idx = HashedIndex::<Bytes>::new(0);
        put(&idx, 1, "a", Some("a1"));
        put(&idx, 2, "c", Some("c2"));
        let pin = idx.pin();
        put(&idx, 3, "c", Some("c3"));
        put(&idx, 4, "d", Some("d4"));
        let mut missed = Vec::new();
        idx.relocate(
            [
                (&b"d"[..], b("d5"), b("D4")),
                (&b"a"[..], b("a1"), b("A1")),
                (&b"b"[..], b("b1"), b("B1")),
                (&b"c"[..], b("c2"), b("C2")),
                (&b"c"[..], b("stale"), b("C3")),
            ],
            |k, new| missed.push((k.to_vec(), new.clone())),
        );
        assert_eq!(idx.latest_value(b"a"), Some(b("A1")));
        assert_eq!(idx.value_at(b"c", pin.seq()), Some(b("C2")));
        assert_eq!(idx.latest_value(b"c"), Some(b("c3")));
        assert_eq!(idx.latest_value(b"d"), Some(b("d4")));
        assert_eq!(
            missed,
            vec![
                (b"d".to_vec(), b("D4")),
                (b"b".to_vec(), b("B1")),
                (b"c".to_vec(), b("C3")),
            ]
        );
    }

    #[test]
    fn a_count_within_searches_a_bound_it_shares_with_its_range_once() {
        let idx = HashedIndex::<Bytes>::new(0);
        for i in 0..500u64 {
            put(&idx, 1 + i, &format!("k{i:03}"), Some("v"));
        }
        let key = |i: u32| Bytes::from(format!("k{i:03}"));
        let whole = ScanRange {
            start: Bound::Included(key(100)),
            end: Bound::Excluded(key(400)),
        };
        let counted = |within: ScanRange| {
            let ranks = || idx.order.read().ranks.load(Ordering::Relaxed);
            let before = ranks();
            let counts = idx.count_within(&whole, &within);
            assert_eq!(counts.keys, 300);
            (counts.within, ranks() - before)
        };
        // A rank: from the range's start to a member, or from one past it to the end.
        let from_start = ScanRange {
            start: whole.start.clone(),
            end: Bound::Excluded(key(250)),
        };
        assert_eq!(counted(from_start), (150, 3));
        let to_end = ScanRange {
            start: Bound::Excluded(key(250)),
            end: whole.end.clone(),
        };
        assert_eq!(counted(to_end), (149, 3));
        // Equal keys under other bounds are other positions, searched on their own.
        let other_bound = ScanRange {
            start: Bound::Excluded(key(100)),
            end: Bound::Included(key(400)),
        };
        assert_eq!(counted(other_bound), (299, 4));
        assert_eq!(counted(whole.clone()), (300, 2));
    }

    // A Bitcask key's entry: the head with a 16-byte slot (a location and its tag), then
    // the key.
    const _: () = assert!(std::mem::size_of::<Entry<crate::bitcask::Loc>>() == 24);
}
