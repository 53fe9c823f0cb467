//! A concurrent ordered index of versioned entries, the MVCC core that the memory and
//! Bitcask engines share.
//!
//! Each key maps to a short chain of versions `(seq, Option<V>)` (None = deleted), in
//! ascending `seq`. Writers are serialised by the engine; they install a batch's versions
//! and then publish its sequence number, so a reader that loaded the published sequence
//! sees either all of a batch or none of it. Snapshots pin a sequence number in the
//! [`SnapshotRegistry`]; versions older than the newest one at or below the oldest pin
//! (the *horizon*) are reclaimed, inline on write and by bounded background steps.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use crossbeam_skiplist::SkipMap;
use parking_lot::Mutex;
use smallvec::SmallVec;

use crate::range::{Direction, ScanRange};

/// What the index needs to know of a stored value.
pub trait IndexValue: Clone + Send + Sync + 'static {
    /// Bytes the value accounts for in `live_bytes` (value length for both engines).
    fn weight(&self) -> u64;
}

impl IndexValue for Bytes {
    fn weight(&self) -> u64 {
        self.len() as u64
    }
}

/// Tracks the published sequence number and the sequence numbers pinned by snapshots.
#[derive(Debug, Default)]
pub struct SnapshotRegistry {
    visible: AtomicU64,
    pins: Mutex<BTreeMap<u64, usize>>,
}

impl SnapshotRegistry {
    /// A registry whose published sequence starts at `seq`.
    pub fn new(seq: u64) -> Arc<Self> {
        Arc::new(SnapshotRegistry {
            visible: AtomicU64::new(seq),
            pins: Mutex::new(BTreeMap::new()),
        })
    }

    /// The last published sequence number.
    pub fn visible(&self) -> u64 {
        self.visible.load(Ordering::Acquire)
    }

    /// Publishes `seq`: batches up to it become visible to new readers.
    pub fn publish(&self, seq: u64) {
        self.visible.fetch_max(seq, Ordering::AcqRel);
    }

    /// Pins the current published sequence until the returned [`Pin`] is dropped.
    pub fn pin(self: &Arc<Self>) -> Pin {
        // Loading `visible` under the lock orders this pin against `horizon()`: a horizon
        // computed before us is ≤ the sequence we load; one computed after sees our pin.
        let mut pins = self.pins.lock();
        let seq = self.visible();
        *pins.entry(seq).or_insert(0) += 1;
        Pin {
            registry: Arc::clone(self),
            seq,
        }
    }

    /// The oldest sequence any reader may still ask for.
    pub fn horizon(&self) -> u64 {
        let pins = self.pins.lock();
        let visible = self.visible();
        pins.keys()
            .next()
            .copied()
            .map_or(visible, |p| p.min(visible))
    }

    /// Number of live pins.
    pub fn open_pins(&self) -> u64 {
        self.pins.lock().values().sum::<usize>() as u64
    }
}

/// A pinned sequence number; reads through it see exactly the batches up to `seq`.
#[derive(Debug)]
pub struct Pin {
    registry: Arc<SnapshotRegistry>,
    seq: u64,
}

impl Pin {
    /// The pinned sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let mut pins = self.registry.pins.lock();
        if let Some(n) = pins.get_mut(&self.seq) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&self.seq);
            }
        }
    }
}

#[derive(Debug)]
struct Version<V> {
    seq: u64,
    value: Option<V>,
}

#[derive(Debug)]
struct ChainInner<V> {
    versions: SmallVec<[Version<V>; 1]>,
    /// Whether the key sits in the GC queue already.
    queued: bool,
}

impl<V: IndexValue> ChainInner<V> {
    fn at(&self, seq: u64) -> Option<&Version<V>> {
        self.versions.iter().rev().find(|v| v.seq <= seq)
    }

    fn latest(&self) -> Option<&Version<V>> {
        self.versions.last()
    }

    /// Drops versions no reader at or after `horizon` can see. Returns true when what is
    /// left is a lone tombstone at or below the horizon, i.e. the key can leave the map.
    fn prune(&mut self, horizon: u64, dropped: &mut impl FnMut(Option<&V>)) -> bool {
        if let Some(keep_from) = self.versions.iter().rposition(|v| v.seq <= horizon) {
            if keep_from > 0 {
                for v in self.versions.drain(..keep_from) {
                    dropped(v.value.as_ref());
                }
            }
        }
        self.versions.len() == 1
            && self.versions[0].value.is_none()
            && self.versions[0].seq <= horizon
    }

    fn needs_gc(&self) -> bool {
        self.versions.len() > 1 || self.versions.first().is_some_and(|v| v.value.is_none())
    }
}

type Chain<V> = Mutex<ChainInner<V>>;

/// Outcome of collecting one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyGc {
    /// Nothing more to collect (or the entry is gone).
    Clean,
    /// Versions remain that a snapshot still needs: look again later.
    StillNeeded,
}

/// A version as seen by merge: its sequence number and value (None = tombstone).
pub type VersionView<V> = (u64, Option<V>);

/// The concurrent versioned ordered index.
pub struct VersionedIndex<V: IndexValue> {
    map: SkipMap<Bytes, Chain<V>>,
    registry: Arc<SnapshotRegistry>,
    gc_queue: Mutex<VecDeque<Bytes>>,
    live_keys: AtomicI64,
    live_bytes: AtomicI64,
    retained: AtomicI64,
}

impl<V: IndexValue> std::fmt::Debug for VersionedIndex<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionedIndex")
            .field("entries", &self.map.len())
            .field("visible", &self.registry.visible())
            .finish()
    }
}

impl<V: IndexValue> VersionedIndex<V> {
    /// An empty index whose published sequence starts at `seq`.
    pub fn new(seq: u64) -> Self {
        VersionedIndex {
            map: SkipMap::new(),
            registry: SnapshotRegistry::new(seq),
            gc_queue: Mutex::new(VecDeque::new()),
            live_keys: AtomicI64::new(0),
            live_bytes: AtomicI64::new(0),
            retained: AtomicI64::new(0),
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

    /// The latest visible value of `key`.
    pub fn get_latest(&self, key: &[u8]) -> Option<V> {
        let entry = self.map.get(key)?;
        let chain = entry.value().lock();
        // Loaded under the chain lock: every version ≤ this sequence is installed, and
        // pruning only removes versions shadowed by one ≤ the horizon ≤ this sequence.
        let seq = self.registry.visible();
        chain.at(seq).and_then(|v| v.value.clone())
    }

    /// The value of `key` as of `seq` (which must be pinned by the caller).
    pub fn get_at(&self, key: &[u8], seq: u64) -> Option<V> {
        let entry = self.map.get(key)?;
        let chain = entry.value().lock();
        chain.at(seq).and_then(|v| v.value.clone())
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
        let (mut lo, mut hi) = range.as_bounds();
        if let Some(r) = resume {
            match dir {
                Direction::Forward => lo = Bound::Excluded(r),
                Direction::Reverse => hi = Bound::Excluded(r),
            }
        }
        let mut out = Vec::with_capacity(limit.min(1024));
        if bounds_empty(lo, hi) {
            return out;
        }
        let mut visit = |entry: crossbeam_skiplist::map::Entry<'_, Bytes, Chain<V>>| {
            let chain = entry.value().lock();
            if let Some(Version { value: Some(v), .. }) = chain.at(seq) {
                out.push((entry.key().clone(), v.clone()));
            }
            out.len() < limit
        };
        let iter = self.map.range::<[u8], _>((lo, hi));
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
        out
    }

    /// Installs one batch's operations at `seq`. The caller serialises writers and
    /// publishes `seq` afterwards. `dropped` hears every version that leaves the index.
    pub fn apply(
        &self,
        seq: u64,
        ops: impl IntoIterator<Item = (Bytes, Option<V>)>,
        dropped: &mut impl FnMut(&[u8], Option<&V>),
    ) {
        let horizon = self.registry.horizon();
        for (key, value) in ops {
            // Writers are serialised, so look-then-insert cannot race; it spares a key
            // clone (and Bytes' promotion to a shared buffer) for keys that exist.
            let entry = match self.map.get(key.as_ref()) {
                Some(e) => e,
                None => self.map.insert(
                    key.clone(),
                    Mutex::new(ChainInner {
                        versions: SmallVec::new(),
                        queued: false,
                    }),
                ),
            };
            let mut chain = entry.value().lock();
            let old_weight = match chain.latest() {
                Some(Version { value: Some(v), .. }) => Some(v.weight()),
                _ => None,
            };
            let new_weight = value.as_ref().map(|v| v.weight());
            match (old_weight, new_weight) {
                (None, Some(w)) => {
                    self.live_keys.fetch_add(1, Ordering::Relaxed);
                    self.live_bytes
                        .fetch_add((key.len() as u64 + w) as i64, Ordering::Relaxed);
                }
                (Some(w), None) => {
                    self.live_keys.fetch_sub(1, Ordering::Relaxed);
                    self.live_bytes
                        .fetch_sub((key.len() as u64 + w) as i64, Ordering::Relaxed);
                }
                (Some(a), Some(b)) => {
                    self.live_bytes
                        .fetch_add(b as i64 - a as i64, Ordering::Relaxed);
                }
                (None, None) => {}
            }
            let before = chain.versions.len();
            let same_batch = chain.versions.last().is_some_and(|v| v.seq == seq);
            if same_batch {
                if let Some(last) = chain.versions.last_mut() {
                    let old = std::mem::replace(&mut last.value, value);
                    dropped(&key, old.as_ref());
                }
            } else {
                chain.versions.push(Version { seq, value });
            }
            // The new version is above the horizon, so this only trims what the previous
            // versions no longer need to provide.
            chain.prune(horizon, &mut |v| dropped(&key, v));
            let after = chain.versions.len();
            let new_chain = i64::from(before == 0 && after > 0);
            self.retained
                .fetch_add(after as i64 - before as i64 - new_chain, Ordering::Relaxed);
            if chain.needs_gc() && !chain.queued {
                chain.queued = true;
                self.gc_queue.lock().push_back(key);
            }
        }
    }

    /// Reclaims versions for up to `max_keys` queued keys; returns how many were looked at.
    /// The caller must hold the engine's writer lock (no concurrent `apply`).
    pub fn gc_step(&self, max_keys: usize, dropped: &mut impl FnMut(&[u8], Option<&V>)) -> usize {
        let horizon = self.registry.horizon();
        let mut requeue = Vec::new();
        let mut seen = 0;
        while seen < max_keys {
            let Some(key) = self.gc_queue.lock().pop_front() else {
                break;
            };
            seen += 1;
            if self.collect_key(&key, horizon, dropped) == KeyGc::StillNeeded {
                requeue.push(key);
            }
        }
        if !requeue.is_empty() {
            self.gc_queue.lock().extend(requeue);
        }
        seen
    }

    /// Reclaims, right after a batch was published, the entries of `keys` (its deletes)
    /// that are now lone tombstones no reader can need: with no snapshot older than the
    /// batch, a deleted key leaves the index at once. Without this a run of deletes at
    /// the front of a range (queue-style pops) stays until the background GC gets to it,
    /// and every scan meanwhile walks past it. The caller holds the writer lock.
    pub fn reclaim_deleted(&self, keys: &[Bytes], dropped: &mut impl FnMut(&[u8], Option<&V>)) {
        if keys.is_empty() {
            return;
        }
        let horizon = self.registry.horizon();
        for key in keys {
            self.collect_key(key, horizon, dropped);
        }
    }

    /// Prunes one key's chain against `horizon`, removing the entry when only a tombstone
    /// at or below it is left.
    fn collect_key(
        &self,
        key: &Bytes,
        horizon: u64,
        dropped: &mut impl FnMut(&[u8], Option<&V>),
    ) -> KeyGc {
        let Some(entry) = self.map.get(key.as_ref()) else {
            return KeyGc::Clean;
        };
        let mut chain = entry.value().lock();
        let before = chain.versions.len();
        let removable = chain.prune(horizon, &mut |v| dropped(key, v));
        self.retained
            .fetch_sub((before - chain.versions.len()) as i64, Ordering::Relaxed);
        if removable {
            if let Some(v) = chain.versions.pop() {
                dropped(key, v.value.as_ref());
            }
            chain.queued = false;
            drop(chain);
            entry.remove();
            KeyGc::Clean
        } else if chain.needs_gc() {
            KeyGc::StillNeeded
        } else {
            chain.queued = false;
            KeyGc::Clean
        }
    }

    /// Keys waiting for version GC.
    pub fn gc_pending(&self) -> usize {
        self.gc_queue.lock().len()
    }

    /// Every version of every key in `range` (oldest first per key), in key order, up to
    /// `limit` keys after `resume`. Merge and checkpoint use it to find what is referenced.
    pub fn versions_chunk(
        &self,
        range: &ScanRange,
        resume: Option<&[u8]>,
        limit: usize,
    ) -> Vec<(Bytes, Vec<VersionView<V>>)> {
        let (mut lo, hi) = range.as_bounds();
        if let Some(r) = resume {
            lo = Bound::Excluded(r);
        }
        let mut out = Vec::new();
        if bounds_empty(lo, hi) {
            return out;
        }
        for entry in self.map.range::<[u8], _>((lo, hi)) {
            let chain = entry.value().lock();
            let versions = chain
                .versions
                .iter()
                .map(|v| (v.seq, v.value.clone()))
                .collect::<Vec<_>>();
            drop(chain);
            if !versions.is_empty() {
                out.push((entry.key().clone(), versions));
            }
            if out.len() >= limit {
                break;
            }
        }
        out
    }

    /// Replaces the value of the version `seq` of `key` if `is_current` accepts the value
    /// it holds now (merge relocating a record). Returns whether it was replaced.
    pub fn replace_version(
        &self,
        key: &[u8],
        seq: u64,
        is_current: impl FnOnce(&V) -> bool,
        new: V,
    ) -> bool {
        let Some(entry) = self.map.get(key) else {
            return false;
        };
        let mut chain = entry.value().lock();
        match chain.versions.iter_mut().find(|v| v.seq == seq) {
            Some(Version { value: Some(v), .. }) if is_current(v) => {
                *v = new;
                true
            }
            _ => false,
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

    /// Entries in the map, including tombstones awaiting GC.
    pub fn entries(&self) -> usize {
        self.map.len()
    }
}

fn bounds_empty(lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    match (lo, hi) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e))
        | (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn put(idx: &VersionedIndex<Bytes>, seq: u64, k: &str, v: Option<&str>) {
        idx.apply(seq, [(b(k), v.map(b))], &mut |_, _| {});
        idx.registry().publish(seq);
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
        idx.reclaim_deleted(&[b("a")], &mut |_, _| {});
        assert_eq!(idx.entries(), 1, "no snapshot: the tombstone is gone");
        let pin = idx.pin();
        put(&idx, 4, "b", None);
        idx.reclaim_deleted(&[b("b")], &mut |_, _| {});
        assert_eq!(idx.entries(), 1, "a snapshot still sees b");
        assert_eq!(idx.get_at(b"b", pin.seq()), Some(b("2")));
        drop(pin);
        while idx.gc_step(10, &mut |_, _| {}) > 0 {}
        assert_eq!(idx.entries(), 0);
    }
}
