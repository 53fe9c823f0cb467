//! An ordered index of versioned entries, the MVCC core that the memory and Bitcask
//! engines share.
//!
//! It is a B-tree under a reader-writer lock. Each key maps to a [`Slot`]: in the common
//! case a single `(seq, value)` stored inline, and only while a snapshot still needs an
//! older version a boxed chain of versions `(seq, Option<V>)` (None = deleted) in
//! ascending `seq`. Keys of up to [`INLINE_KEY`] bytes are stored inside the tree node,
//! so a typical key costs no allocation of its own. Writers are serialised by the engine
//! and install a whole batch under the write lock, publishing its sequence number there,
//! so a reader (which holds the read lock) sees either all of a batch or none of it.
//! Snapshots pin a sequence number in the [`SnapshotRegistry`]; versions older than the
//! newest one at or below the oldest pin (the *horizon*) are reclaimed at once on write,
//! and by bounded background steps for keys whose old versions outlived a snapshot.

use std::borrow::Borrow;
use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::key_order::word;
use crate::range::{Direction, ScanRange};
pub use crate::snapshot_registry::{Pin, SnapshotRegistry};
/// What the index needs to know of a stored value.
pub trait IndexValue: Clone + Send + Sync + 'static {
    /// Bytes the value accounts for in `live_bytes` (value length for both engines).
    fn weight(&self) -> u64;

    /// Starts loading the value's bytes into the CPU cache (see
    /// [`crate::Storage::prefetch`]); values without a heap part of their own do nothing.
    fn prefetch(&self) {}
}

impl IndexValue for Bytes {
    fn weight(&self) -> u64 {
        self.len() as u64
    }
}

/// Keys up to this many bytes live inside the tree node instead of their own allocation.
pub const INLINE_KEY: usize = 22;

/// A key as the index stores it: inline when short (no allocation of its own), else
/// one exact-size allocation. Ordered bytewise, like the keys it holds.
#[derive(Clone)]
pub struct IndexKey(KeyRepr);

#[derive(Clone)]
enum KeyRepr {
    Inline { len: u8, data: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

// The tree node holds keys inline; their size is the per-key cost.
const _: () = assert!(std::mem::size_of::<IndexKey>() == 24);

impl IndexKey {
    /// A copy of `key`.
    pub fn new(key: &[u8]) -> IndexKey {
        if key.len() <= INLINE_KEY {
            let mut data = [0u8; INLINE_KEY];
            data[..key.len()].copy_from_slice(key);
            IndexKey(KeyRepr::Inline {
                len: key.len() as u8,
                data,
            })
        } else {
            IndexKey(KeyRepr::Heap(key.into()))
        }
    }

    /// The key's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            KeyRepr::Inline { len, data } => &data[..usize::from(*len).min(INLINE_KEY)],
            KeyRepr::Heap(b) => b,
        }
    }
}

impl std::ops::Deref for IndexKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for IndexKey {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for IndexKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for IndexKey {}

impl PartialOrd for IndexKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IndexKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Inline keys are zero-padded, so their bytes read as big-endian words order
        // like the bytes themselves, and equal words leave the length to decide
        // ("ab" < "ab\0"). Keys of one shape share long prefixes (`m`, the database,
        // then the user's `key:0000…`), so a first-word check alone mostly fell through
        // to memcmp: a bitcask GET spent ~1,500 instructions in keydir comparisons. The
        // words are loaded at fixed offsets, each a plain load and byte swap, and the
        // early returns are predictable (keys of one shape agree on the first word): a
        // loop over the offsets kept a bounds-checked copy per word, and one 128-bit
        // comparison compiled to a longer branch-free sequence, both slower per key.
        if let (KeyRepr::Inline { len: la, data: a }, KeyRepr::Inline { len: lb, data: b }) =
            (&self.0, &other.0)
        {
            let (a0, b0) = (word(a, 0), word(b, 0));
            if a0 != b0 {
                return a0.cmp(&b0);
            }
            let (a1, b1) = (word(a, 8), word(b, 8));
            if a1 != b1 {
                return a1.cmp(&b1);
            }
            let (a2, b2) = (tail(a), tail(b));
            if a2 != b2 {
                return a2.cmp(&b2);
            }
            return la.cmp(lb);
        }
        self.as_slice().cmp(other.as_slice())
    }
}

/// Bytes 16.. of an inline key, zero-padded to a big-endian word.
#[inline(always)]
fn tail(data: &[u8; INLINE_KEY]) -> u64 {
    let mut w = [0u8; 8];
    w[..INLINE_KEY - 16].copy_from_slice(&data[16..]);
    u64::from_be_bytes(w)
}

/// The slot of `key`, searched with an inline [`IndexKey`] when the key fits one (the
/// fast comparison) and with the plain bytes otherwise.
fn find<'m, V>(map: &'m BTreeMap<IndexKey, Slot<V>>, key: &[u8]) -> Option<&'m Slot<V>> {
    if key.len() <= INLINE_KEY {
        map.get(&IndexKey::new(key))
    } else {
        map.get(key)
    }
}

/// Mutable [`find`].
fn find_mut<'m, V>(
    map: &'m mut BTreeMap<IndexKey, Slot<V>>,
    key: &[u8],
) -> Option<&'m mut Slot<V>> {
    if key.len() <= INLINE_KEY {
        map.get_mut(&IndexKey::new(key))
    } else {
        map.get_mut(key)
    }
}

impl std::fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", Bytes::copy_from_slice(self.as_slice()))
    }
}

/// A version: its batch's sequence number and value (None = deleted).
pub type VersionView<V> = (u64, Option<V>);

/// Versions kept for snapshots, oldest first; never empty, never led by a tombstone.
#[derive(Debug)]
struct Chain<V> {
    versions: Vec<VersionView<V>>,
    /// Whether the key sits in the GC queue already.
    queued: bool,
}

/// What a key maps to. `One` is the common case: a single version that every reader,
/// pinned or not, sees (its batch is at or below the horizon), so it needs no sequence
/// number and is as small as the value allows — 16 bytes for a Bitcask location. Every
/// other state, including a new key that older snapshots must not see yet, is a boxed
/// chain, queued for GC until it can settle back into `One`.
#[derive(Debug)]
enum Slot<V> {
    One(V),
    Many(Box<Chain<V>>),
}

/// Sequence number a chain gives a version that came from a `One` slot: at or below
/// every pin, which is all a `One` version promises.
const BASE_SEQ: u64 = 0;

impl<V: IndexValue> Slot<V> {
    fn at(&self, seq: u64) -> Option<&V> {
        match self {
            Slot::One(v) => Some(v),
            Slot::Many(c) => c
                .versions
                .iter()
                .rev()
                .find(|(s, _)| *s <= seq)
                .and_then(|(_, v)| v.as_ref()),
        }
    }

    fn latest(&self) -> Option<&V> {
        match self {
            Slot::One(v) => Some(v),
            Slot::Many(c) => c.versions.last().and_then(|(_, v)| v.as_ref()),
        }
    }

    /// Versions beyond the first.
    fn extra(&self) -> i64 {
        match self {
            Slot::One(..) => 0,
            Slot::Many(c) => c.versions.len() as i64 - 1,
        }
    }
}

/// Drops the versions no reader at or after `horizon` can see: everything older than the
/// newest version at or below it, and tombstones at the front (a reader that finds a
/// leading tombstone sees the same absence as one that finds nothing).
fn prune<V>(
    versions: &mut Vec<VersionView<V>>,
    horizon: u64,
    dropped: &mut impl FnMut(Option<&V>),
) {
    let keep_from = versions
        .iter()
        .rposition(|(s, _)| *s <= horizon)
        .unwrap_or(0);
    let lead_tombs = versions[keep_from..]
        .iter()
        .take_while(|(_, v)| v.is_none())
        .count();
    let cut = keep_from + lead_tombs;
    if cut > 0 {
        for (_, v) in versions.drain(..cut) {
            dropped(v.as_ref());
        }
    }
}

/// The slot a chain pruned against `horizon` becomes: nothing, a single version every
/// reader sees, or still a chain.
fn settle<V>(mut chain: Box<Chain<V>>, horizon: u64) -> Option<Slot<V>> {
    match chain.versions.as_slice() {
        [] | [(_, None)] => None,
        [(s, Some(_))] if *s <= horizon => match chain.versions.pop() {
            Some((_, Some(v))) => Some(Slot::One(v)),
            _ => None,
        },
        _ => Some(Slot::Many(chain)),
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

/// Keys collected per hold of the write lock, so a GC step never blocks readers long.
const GC_LOCK_KEYS: usize = 256;

/// The concurrent versioned ordered index.
pub struct VersionedIndex<V: IndexValue> {
    map: RwLock<BTreeMap<IndexKey, Slot<V>>>,
    registry: Arc<SnapshotRegistry>,
    gc_queue: Mutex<VecDeque<IndexKey>>,
    live_keys: AtomicI64,
    live_bytes: AtomicI64,
    retained: AtomicI64,
}

impl<V: IndexValue> std::fmt::Debug for VersionedIndex<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionedIndex")
            .field("entries", &self.entries())
            .field("visible", &self.registry.visible())
            .finish()
    }
}

impl<V: IndexValue> VersionedIndex<V> {
    /// An empty index whose published sequence starts at `seq`.
    pub fn new(seq: u64) -> Self {
        VersionedIndex {
            map: RwLock::new(BTreeMap::new()),
            registry: SnapshotRegistry::new(seq),
            gc_queue: Mutex::new(VecDeque::new()),
            live_keys: AtomicI64::new(0),
            live_bytes: AtomicI64::new(0),
            retained: AtomicI64::new(0),
        }
    }

    /// An index holding `entries` — `(key, value)`; of equal keys the last one wins —
    /// published at `seq`. Builds the tree bottom-up in one pass (what opening a
    /// store needs) instead of inserting key by key; input sorted by key costs no sort.
    pub fn bulk_load(seq: u64, entries: impl IntoIterator<Item = (IndexKey, V)>) -> Self {
        let mut keys = 0i64;
        let mut bytes = 0i64;
        let map: BTreeMap<IndexKey, Slot<V>> = entries
            .into_iter()
            .map(|(k, v)| {
                keys += 1;
                bytes += (k.len() as u64 + v.weight()) as i64;
                (k, Slot::One(v))
            })
            .collect();
        let idx = VersionedIndex::new(seq);
        // Duplicate keys (a caller bug) keep the last one; count what the map holds.
        if map.len() as i64 != keys {
            keys = map.len() as i64;
            bytes = map
                .iter()
                .map(|(k, s)| {
                    (k.as_slice().len() as u64 + s.latest().map_or(0, |v| v.weight())) as i64
                })
                .sum();
        }
        *idx.map.write() = map;
        idx.live_keys.store(keys, Ordering::Relaxed);
        idx.live_bytes.store(bytes, Ordering::Relaxed);
        idx
    }

    /// The snapshot registry (publish, pin, horizon).
    pub fn registry(&self) -> &Arc<SnapshotRegistry> {
        &self.registry
    }

    /// Pins the latest published state.
    pub fn pin(&self) -> Pin {
        self.registry.pin()
    }

    /// The latest visible value of `key`.
    pub fn get_latest(&self, key: &[u8]) -> Option<V> {
        let map = self.map.read();
        // Under the read lock every published batch is fully installed, and nothing has
        // pruned a version a reader at the published sequence needs.
        find(&map, key)?.latest().cloned()
    }

    /// Calls `f` with the latest visible value of each of `keys` that has one, under one
    /// hold of the read lock: a prefetch pass, whose searches run back to back with no
    /// lock's barrier between them, so one key's misses can overlap the next key's.
    pub fn latest_each(&self, keys: &[&[u8]], mut f: impl FnMut(&V)) {
        let map = self.map.read();
        for key in keys {
            if let Some(v) = find(&map, key).and_then(Slot::latest) {
                f(v);
            }
        }
    }

    /// The value of `key` as of `seq` (which must be pinned by the caller).
    pub fn get_at(&self, key: &[u8], seq: u64) -> Option<V> {
        let map = self.map.read();
        find(&map, key)?.at(seq).cloned()
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
    ) -> Vec<(Bytes, V)> {
        let Some((lo, hi)) = range.remaining_bounds(dir, resume) else {
            return Vec::new();
        };
        if limit == 0 {
            return Vec::new();
        }
        // The chunk's keys are copied into one buffer and handed out as slices of it:
        // one allocation per chunk instead of one per key.
        let mut keys: Vec<u8> = Vec::new();
        let mut found: Vec<(usize, usize, V)> = Vec::with_capacity(limit.min(1024));
        let map = self.map.read();
        let mut visit = |(k, slot): (&IndexKey, &Slot<V>)| {
            if let Some(v) = slot.at(seq) {
                let start = keys.len();
                keys.extend_from_slice(k.as_slice());
                found.push((start, keys.len(), v.clone()));
            }
            found.len() < limit
        };
        let iter = map.range::<[u8], _>((lo, hi));
        match dir {
            Direction::Forward => {
                for e in iter {
                    if !visit(e) {
                        break;
                    }
                }
            }
            Direction::Reverse => {
                for e in iter.rev() {
                    if !visit(e) {
                        break;
                    }
                }
            }
        }
        drop(map);
        let keys = Bytes::from(keys);
        found
            .into_iter()
            .map(|(start, end, v)| (keys.slice(start..end), v))
            .collect()
    }

    /// Installs one batch's operations at `seq` and publishes `seq`. The caller
    /// serialises writers. `dropped` hears every version that leaves the index: with no
    /// snapshot older than the batch, an overwritten or deleted value leaves at once.
    pub fn apply(
        &self,
        seq: u64,
        ops: impl IntoIterator<Item = (Bytes, Option<V>)>,
        dropped: &mut impl FnMut(&[u8], Option<&V>),
    ) {
        let mut map = self.map.write();
        // Publishing under the write lock is invisible to readers until it is released,
        // when the whole batch is in; so the horizon may already count this batch, and
        // a version it shadows is gone the moment no snapshot holds an older sequence.
        let horizon = self.registry.publish_and_horizon(seq);
        for (key, value) in ops {
            self.apply_one(&mut map, seq, horizon, key, value, dropped);
        }
    }

    fn apply_one(
        &self,
        map: &mut BTreeMap<IndexKey, Slot<V>>,
        seq: u64,
        horizon: u64,
        key: Bytes,
        value: Option<V>,
        dropped: &mut impl FnMut(&[u8], Option<&V>),
    ) {
        let k: &[u8] = &key;
        let new_weight = value.as_ref().map(|v| v.weight());
        let Some(slot) = find_mut(map, k) else {
            // Absent: a delete changes nothing, a put adds a key (as a chain while an
            // older snapshot must not see it).
            if let Some(v) = value {
                self.count(k, None, new_weight);
                let slot = if seq <= horizon {
                    Slot::One(v)
                } else {
                    let mut c = Chain::empty();
                    c.versions.push((seq, Some(v)));
                    c.queued = true;
                    self.gc_queue.lock().push_back(IndexKey::new(k));
                    Slot::Many(Box::new(c))
                };
                map.insert(IndexKey::new(k), slot);
            }
            return;
        };
        let old_weight = slot.latest().map(|v| v.weight());
        self.count(k, old_weight, new_weight);
        let extra_before = slot.extra();
        // Turn the slot into a chain with the new version on top, prune it, settle it.
        let chain = match std::mem::replace(slot, Slot::Many(Box::new(Chain::empty()))) {
            Slot::One(v) if seq <= horizon => {
                // No snapshot can still want the old value.
                dropped(k, Some(&v));
                match value {
                    Some(nv) => {
                        *slot = Slot::One(nv);
                        return;
                    }
                    None => {
                        map.remove(k);
                        return;
                    }
                }
            }
            Slot::One(v) => {
                let mut c = Chain::empty();
                c.versions.push((BASE_SEQ, Some(v)));
                c.versions.push((seq, value));
                Box::new(c)
            }
            Slot::Many(mut c) => {
                match c.versions.last_mut() {
                    Some((s, last)) if *s == seq => {
                        let old = std::mem::replace(last, value);
                        dropped(k, old.as_ref());
                    }
                    _ => c.versions.push((seq, value)),
                }
                prune(&mut c.versions, horizon, &mut |v| dropped(k, v));
                c
            }
        };
        match settle(chain, horizon) {
            None => {
                map.remove(k);
                self.retained.fetch_sub(extra_before, Ordering::Relaxed);
            }
            Some(mut s) => {
                self.retained
                    .fetch_add(s.extra() - extra_before, Ordering::Relaxed);
                if let Slot::Many(c) = &mut s {
                    if !c.queued {
                        c.queued = true;
                        self.gc_queue.lock().push_back(IndexKey::new(k));
                    }
                }
                *slot = s;
            }
        }
    }

    /// Live-key and live-byte accounting for a key whose latest value changes weight.
    fn count(&self, key: &[u8], old: Option<u64>, new: Option<u64>) {
        let k = key.len() as u64;
        match (old, new) {
            (None, Some(w)) => {
                self.live_keys.fetch_add(1, Ordering::Relaxed);
                self.live_bytes.fetch_add((k + w) as i64, Ordering::Relaxed);
            }
            (Some(w), None) => {
                self.live_keys.fetch_sub(1, Ordering::Relaxed);
                self.live_bytes.fetch_sub((k + w) as i64, Ordering::Relaxed);
            }
            (Some(a), Some(b)) => {
                self.live_bytes
                    .fetch_add(b as i64 - a as i64, Ordering::Relaxed);
            }
            (None, None) => {}
        }
    }

    /// Reclaims versions for up to `max_keys` queued keys; returns how many were looked at.
    /// The caller must hold the engine's writer lock (no concurrent `apply`).
    pub fn gc_step(&self, max_keys: usize, dropped: &mut impl FnMut(&[u8], Option<&V>)) -> usize {
        let mut requeue = Vec::new();
        let mut seen = 0;
        while seen < max_keys {
            let keys: Vec<IndexKey> = {
                let mut q = self.gc_queue.lock();
                let n = q.len().min(max_keys - seen).min(GC_LOCK_KEYS);
                q.drain(..n).collect()
            };
            if keys.is_empty() {
                break;
            }
            seen += keys.len();
            let mut map = self.map.write();
            let horizon = self.registry.horizon();
            for key in keys {
                if self.collect_key(&mut map, &key, horizon, dropped) == KeyGc::StillNeeded {
                    requeue.push(key);
                }
            }
        }
        if !requeue.is_empty() {
            self.gc_queue.lock().extend(requeue);
        }
        seen
    }

    /// Prunes one key's chain against `horizon`.
    fn collect_key(
        &self,
        map: &mut BTreeMap<IndexKey, Slot<V>>,
        key: &IndexKey,
        horizon: u64,
        dropped: &mut impl FnMut(&[u8], Option<&V>),
    ) -> KeyGc {
        let k = key.as_slice();
        let Some(slot) = map.get_mut(key) else {
            return KeyGc::Clean;
        };
        let extra_before = slot.extra();
        let Slot::Many(_) = slot else {
            return KeyGc::Clean;
        };
        let Slot::Many(mut chain) = std::mem::replace(slot, Slot::Many(Box::new(Chain::empty())))
        else {
            return KeyGc::Clean;
        };
        prune(&mut chain.versions, horizon, &mut |v| dropped(k, v));
        match settle(chain, horizon) {
            None => {
                map.remove(k);
                self.retained.fetch_sub(extra_before, Ordering::Relaxed);
                KeyGc::Clean
            }
            Some(s) => {
                self.retained
                    .fetch_add(s.extra() - extra_before, Ordering::Relaxed);
                let still = matches!(s, Slot::Many(_));
                *slot = s;
                if still {
                    KeyGc::StillNeeded
                } else {
                    KeyGc::Clean
                }
            }
        }
    }

    /// Keys waiting for version GC.
    pub fn gc_pending(&self) -> usize {
        self.gc_queue.lock().len()
    }

    /// Calls `f` with every version of every key (oldest first per key) in key order
    /// (sequence number 0 stands for "at or below every pin": a version every reader sees),
    /// starting after `resume`, for up to `limit` keys under one hold of the read lock.
    /// Returns the last key visited, to resume from. Merge uses it to find what is
    /// referenced.
    pub fn visit_versions(
        &self,
        resume: Option<&[u8]>,
        limit: usize,
        f: impl FnMut(&[u8], &[VersionView<V>]),
    ) -> Option<Vec<u8>> {
        let lo = resume.map_or(Bound::Unbounded, Bound::Excluded);
        self.visit_versions_in(lo, None, limit, f)
    }

    /// [`VersionedIndex::visit_versions`] over the keys from `lo` and below `end`
    /// (exclusive) only, so that several threads can each walk one part of the key space.
    pub fn visit_versions_in(
        &self,
        lo: Bound<&[u8]>,
        end: Option<&[u8]>,
        limit: usize,
        mut f: impl FnMut(&[u8], &[VersionView<V>]),
    ) -> Option<Vec<u8>> {
        let hi = end.map_or(Bound::Unbounded, Bound::Excluded);
        let empty = match (lo, end) {
            (Bound::Included(a), Some(e)) => a >= e,
            (Bound::Excluded(a), Some(e)) => a >= e,
            _ => false,
        };
        // BTreeMap::range panics on an inverted range (or an empty one with both ends
        // excluded); an empty one visits nothing anyway.
        if empty {
            return None;
        }
        let map = self.map.read();
        let mut last = None;
        for (n, (k, slot)) in map.range::<[u8], _>((lo, hi)).enumerate() {
            if n >= limit {
                break;
            }
            match slot {
                Slot::One(v) => f(k.as_slice(), &[(BASE_SEQ, Some(v.clone()))]),
                Slot::Many(c) => f(k.as_slice(), &c.versions),
            }
            last = Some(k);
        }
        last.map(|k| k.as_slice().to_vec())
    }

    /// The first and the last key of the index (None when it is empty).
    pub fn first_and_last_keys(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let map = self.map.read();
        let (first, _) = map.first_key_value()?;
        let (last, _) = map.last_key_value()?;
        Some((first.as_slice().to_vec(), last.as_slice().to_vec()))
    }

    /// Moves versions merge relocated: for each `(key, old, new)` whose key still has a
    /// version holding `old`, puts `new` in its place; calls `missed` with `new` for each
    /// whose version left the index meanwhile. Versions are matched by value, which
    /// for Bitcask locations (segment, offset) names exactly one record. `moves` must be
    /// in ascending key order (a key may repeat, one move per version): the tree is
    /// walked once alongside them. One hold of the write lock per call: the caller
    /// passes a bounded chunk.
    pub fn relocate_sorted<'a>(
        &self,
        moves: impl IntoIterator<Item = (&'a [u8], V, V)>,
        mut missed: impl FnMut(&[u8], &V),
    ) where
        V: PartialEq,
    {
        let mut moves = moves.into_iter().peekable();
        let Some(&(first, ..)) = moves.peek() else {
            return;
        };
        let mut map = self.map.write();
        let mut entries = map.range_mut::<[u8], _>((Bound::Included(first), Bound::Unbounded));
        let mut cur = entries.next();
        for (key, old, new) in moves {
            // Skip entries before `key`; a move whose key is gone finds a greater one.
            // One comparison per entry passed and one for the entry found.
            let mut found = false;
            while let Some((k, _)) = cur.as_ref() {
                match k.as_slice().cmp(key) {
                    std::cmp::Ordering::Less => cur = entries.next(),
                    ord => {
                        found = ord == std::cmp::Ordering::Equal;
                        break;
                    }
                }
            }
            let slot = match cur.as_mut() {
                Some((_, slot)) if found => match &mut **slot {
                    Slot::One(v) => Some(v),
                    Slot::Many(c) => c
                        .versions
                        .iter_mut()
                        .filter_map(|(_, v)| v.as_mut())
                        .find(|v| **v == old),
                },
                _ => None,
            };
            match slot {
                Some(v) if *v == old => *v = new,
                _ => missed(key, &new),
            }
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

    /// Keys in the index (a key whose latest version is a tombstone still counts while a
    /// snapshot needs its older value).
    pub fn entries(&self) -> usize {
        self.map.read().len()
    }
}

impl<V> Chain<V> {
    fn empty() -> Self {
        Chain {
            versions: Vec::new(),
            queued: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// IndexKey orders exactly like the bytes, inline (word compares) or not.
        #[test]
        fn index_key_orders_like_bytes(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..30),
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..30),
            shared in proptest::collection::vec(0u8..3, 0..24),
        ) {
            // Long shared prefixes and zero bytes are the cases that matter.
            let a: Vec<u8> = shared.iter().copied().chain(a).collect();
            let b: Vec<u8> = shared.iter().copied().chain(b).collect();
            let (ka, kb) = (IndexKey::new(&a), IndexKey::new(&b));
            proptest::prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            proptest::prop_assert_eq!(ka.cmp(&ka.clone()), std::cmp::Ordering::Equal);
        }
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn put(idx: &VersionedIndex<Bytes>, seq: u64, k: &str, v: Option<&str>) {
        idx.apply(seq, [(b(k), v.map(b))], &mut |_, _| {});
        idx.registry().publish(seq);
    }

    #[test]
    fn bounded_visits_split_the_key_space() {
        let idx = VersionedIndex::<Bytes>::new(0);
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
        // Empty and inverted ranges visit nothing instead of panicking.
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
    fn snapshot_sees_its_point_in_time() {
        let idx = VersionedIndex::<Bytes>::new(0);
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
    fn gc_returns_to_one_version_per_key_after_pins_drop() {
        let idx = VersionedIndex::<Bytes>::new(0);
        let mut dropped = 0usize;
        put(&idx, 1, "a", Some("1"));
        let pin = idx.pin();
        for s in 2..50 {
            idx.apply(s, [(b("a"), Some(b("v")))], &mut |_, _| dropped += 1);
            idx.registry().publish(s);
        }
        assert_eq!(idx.get_at(b"a", pin.seq()), Some(b("1")));
        assert!(idx.retained_versions() >= 2);
        drop(pin);
        while idx.gc_step(100, &mut |_, _| dropped += 1) > 0 {}
        assert_eq!(idx.retained_versions(), 0);
        assert_eq!(dropped, 48);
        put(&idx, 60, "a", None);
        while idx.gc_step(100, &mut |_, _| {}) > 0 {}
        assert_eq!(idx.entries(), 0);
        assert_eq!(idx.live_keys(), 0);
        assert_eq!(idx.live_bytes(), 0);
    }

    #[test]
    fn resume_and_reverse() {
        let idx = VersionedIndex::<Bytes>::new(0);
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
        let idx = VersionedIndex::<Bytes>::new(0);
        put(&idx, 1, "a", Some("1"));
        put(&idx, 2, "b", Some("2"));
        put(&idx, 3, "a", None);
        assert_eq!(idx.entries(), 1, "no snapshot: the tombstone is gone");
        let pin = idx.pin();
        put(&idx, 4, "b", None);
        assert_eq!(idx.entries(), 1, "a snapshot still sees b");
        assert_eq!(idx.get_at(b"b", pin.seq()), Some(b("2")));
        assert_eq!(idx.get_latest(b"b"), None);
        drop(pin);
        while idx.gc_step(10, &mut |_, _| {}) > 0 {}
        assert_eq!(idx.entries(), 0);
    }

    #[test]
    fn overwrites_drop_the_old_version_at_once_without_snapshots() {
        let idx = VersionedIndex::<Bytes>::new(0);
        let mut dropped = Vec::new();
        for s in 1..=3 {
            idx.apply(s, [(b("k"), Some(b("v")))], &mut |k, v| {
                dropped.push((k.to_vec(), v.cloned()))
            });
        }
        assert_eq!(dropped.len(), 2);
        assert_eq!(idx.retained_versions(), 0);
        assert_eq!(idx.gc_pending(), 0);
        assert_eq!(idx.registry().visible(), 3, "apply publishes its batch");
    }

    #[test]
    fn a_bitcask_entry_is_key_plus_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<Slot<crate::bitcask::Loc>>(), 16);
    }

    #[test]
    fn a_key_created_after_a_snapshot_stays_invisible_to_it() {
        let idx = VersionedIndex::<Bytes>::new(0);
        put(&idx, 1, "a", Some("1"));
        let pin = idx.pin();
        put(&idx, 2, "n", Some("new"));
        put(&idx, 3, "a", Some("2"));
        assert_eq!(idx.get_at(b"n", pin.seq()), None);
        assert_eq!(idx.get_at(b"a", pin.seq()), Some(b("1")));
        let seen = idx.range_at(&ScanRange::all(), Direction::Forward, pin.seq(), None, 10);
        assert_eq!(seen, vec![(b("a"), b("1"))]);
        drop(pin);
        while idx.gc_step(10, &mut |_, _| {}) > 0 {
            if idx.gc_pending() == 0 {
                break;
            }
        }
        assert_eq!(idx.gc_pending(), 0);
        assert_eq!(idx.retained_versions(), 0);
        assert_eq!(idx.get_at(b"n", 0), Some(b("new")), "settled: seen by all");
    }

    #[test]
    fn relocate_sorted_moves_only_current_versions() {
        let idx = VersionedIndex::<Bytes>::new(0);
        put(&idx, 1, "a", Some("a1"));
        put(&idx, 2, "c", Some("c2"));
        let pin = idx.pin();
        put(&idx, 3, "c", Some("c3"));
        put(&idx, 4, "d", Some("d4"));
        let mut missed = Vec::new();
        idx.relocate_sorted(
            [
                (&b"a"[..], b("a1"), b("A1")),
                (&b"b"[..], b("b1"), b("B1")),
                (&b"c"[..], b("c2"), b("C2")),
                (&b"c"[..], b("stale"), b("C3")),
                (&b"d"[..], b("d5"), b("D4")),
            ],
            |k, new| missed.push((k.to_vec(), new.clone())),
        );
        assert_eq!(idx.get_latest(b"a"), Some(b("A1")));
        assert_eq!(idx.get_at(b"c", pin.seq()), Some(b("C2")));
        assert_eq!(idx.get_latest(b"c"), Some(b("c3")));
        assert_eq!(idx.get_latest(b"d"), Some(b("d4")));
        assert_eq!(
            missed,
            vec![
                (b"b".to_vec(), b("B1")),
                (b"c".to_vec(), b("C3")),
                (b"d".to_vec(), b("D4")),
            ]
        );
    }

    #[test]
    fn long_keys_and_bulk_load() {
        let long = "k".repeat(100);
        let idx = VersionedIndex::<Bytes>::bulk_load(
            7,
            vec![
                (IndexKey::new(b"a"), b("1")),
                (IndexKey::new(long.as_bytes()), b("2")),
            ],
        );
        assert_eq!(idx.live_keys(), 2);
        assert_eq!(idx.live_bytes(), 1 + 1 + 100 + 1);
        assert_eq!(idx.get_latest(long.as_bytes()), Some(b("2")));
        put(&idx, 8, &long, None);
        assert_eq!(idx.entries(), 1);
        let all = idx.range_at(&ScanRange::all(), Direction::Reverse, 8, None, 10);
        assert_eq!(all, vec![(b("a"), b("1"))]);
    }

    #[test]
    fn snapshot_between_versions_keeps_the_right_one() {
        let idx = VersionedIndex::<Bytes>::new(0);
        put(&idx, 1, "a", Some("1"));
        let p1 = idx.pin();
        put(&idx, 2, "a", Some("2"));
        let p2 = idx.pin();
        put(&idx, 3, "a", None);
        put(&idx, 4, "a", Some("4"));
        assert_eq!(idx.get_at(b"a", p1.seq()), Some(b("1")));
        assert_eq!(idx.get_at(b"a", p2.seq()), Some(b("2")));
        assert_eq!(idx.get_at(b"a", 3), None);
        drop(p1);
        while idx.gc_step(10, &mut |_, _| {}) > 0 {
            if idx.gc_pending() > 0 {
                break;
            }
        }
        assert_eq!(idx.get_at(b"a", p2.seq()), Some(b("2")));
        drop(p2);
        idx.gc_step(10, &mut |_, _| {});
        assert_eq!(idx.retained_versions(), 0);
        assert_eq!(idx.get_latest(b"a"), Some(b("4")));
    }
}
