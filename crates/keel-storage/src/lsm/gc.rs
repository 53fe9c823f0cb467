//! Garbage collection of keel versions no reader can ask for any more.
//!
//! The *horizon* is the oldest sequence number a reader may still read at (the oldest
//! pinned snapshot, or the published sequence number; it never goes down). A version is
//! garbage when a newer version of the same key has a sequence number at or below the
//! horizon: every reader at or above the horizon sees that one (or a newer one) instead.
//! A tombstone that is a key's newest version at or below the horizon is garbage too once
//! no older version of that key is left anywhere, so it has to go last.
//!
//! Two collectors share that rule:
//! - a fjall compaction filter ([`GcFilterFactory`]) drops shadowed versions that meet in
//!   one compaction, in the background and without writing anything (each stored key is
//!   written exactly once, so destroying it cannot uncover an older copy of itself). It
//!   never drops a newest tombstone: a compaction sees only some tables, so it cannot know
//!   that no older version survives elsewhere;
//! - `compact` walks the whole keyspace ([`garbage_in`]) and deletes every garbage version,
//!   tombstones after the older versions of their key, before the major compaction.
//!
//! Point reads do not pin the horizon (that would cost a lock per read); each collector
//! raises the shared `gc_horizon` before it drops anything, and a read that finds it above
//! its own sequence number afterwards retries (see the engine's `get`).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fjall::compaction::filter::{
    CompactionFilter, CompactionFilterResult, Context, Factory, ItemAccessor, Verdict,
};

use super::keys::{self, Kind};
use crate::mvcc::SnapshotRegistry;

/// The horizon collectors work with, shared with the readers that validate against it.
#[derive(Debug)]
pub struct GcHorizon {
    registry: AssertUnwindSafe<Arc<SnapshotRegistry>>,
    /// The highest horizon any collector has used (or is about to use).
    used: AtomicU64,
}

impl GcHorizon {
    /// A horizon tracker over `registry`.
    pub fn new(registry: Arc<SnapshotRegistry>) -> Arc<Self> {
        Arc::new(GcHorizon {
            registry: AssertUnwindSafe(registry),
            used: AtomicU64::new(0),
        })
    }

    /// Takes the current horizon for a collection, announcing it first.
    pub fn claim(&self) -> u64 {
        let h = self.registry.horizon();
        self.used.fetch_max(h, Ordering::SeqCst);
        h
    }

    /// The highest horizon a collector has claimed so far.
    pub fn claimed(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }
}

/// Installs [`GcFilter`] on keel's data keyspace.
pub struct GcFilterFactory {
    horizon: Arc<GcHorizon>,
}

impl GcFilterFactory {
    /// A factory whose filters collect below `horizon`.
    pub fn new(horizon: Arc<GcHorizon>) -> Self {
        GcFilterFactory { horizon }
    }
}

impl Factory for GcFilterFactory {
    fn name(&self) -> &str {
        "keel-version-gc"
    }

    fn make_filter(&self, _ctx: &Context) -> Box<dyn CompactionFilter> {
        Box::new(GcFilter {
            horizon: self.horizon.claim(),
            current: Vec::new(),
            covered: false,
        })
    }
}

/// Drops versions shadowed by a newer version at or below the horizon within one
/// compaction. Items arrive in stored-key order: per key, newest first.
struct GcFilter {
    horizon: u64,
    /// Prefix of the key whose versions are passing.
    current: Vec<u8>,
    /// A version of `current` at or below the horizon has passed (and been kept).
    covered: bool,
}

impl CompactionFilter for GcFilter {
    fn filter_item(&mut self, item: ItemAccessor<'_>, _ctx: &Context) -> CompactionFilterResult {
        let Some(p) = keys::parse(item.key()) else {
            return Ok(Verdict::Keep);
        };
        if p.prefix != self.current.as_slice() {
            self.current.clear();
            self.current.extend_from_slice(p.prefix);
            self.covered = false;
        }
        if self.covered {
            return Ok(Verdict::Destroy);
        }
        if p.seq <= self.horizon {
            self.covered = true;
        }
        Ok(Verdict::Keep)
    }
}

/// Walks stored keys in ascending order and reports the garbage at `horizon`, each key's
/// tombstone after its older versions. Keys that do not parse are left alone.
#[derive(Debug, Default)]
pub struct GarbageWalk {
    current: Vec<u8>,
    /// The key's newest version ≤ horizon has passed: everything older is garbage.
    covered: bool,
    /// That version, when it is a tombstone: dropped after the versions below it.
    tombstone: Option<Vec<u8>>,
}

impl GarbageWalk {
    /// Feeds the next stored key; pushes what is garbage to `out`.
    pub fn push(&mut self, stored: &[u8], horizon: u64, out: &mut Vec<Vec<u8>>) {
        let Some(p) = keys::parse(stored) else {
            return;
        };
        if p.prefix != self.current.as_slice() {
            self.finish_key(out);
            self.current.clear();
            self.current.extend_from_slice(p.prefix);
        }
        if self.covered {
            out.push(stored.to_vec());
        } else if p.seq <= horizon {
            self.covered = true;
            if p.kind == Kind::Tombstone {
                self.tombstone = Some(stored.to_vec());
            }
        }
    }

    /// Ends the current key: its tombstone (if garbage) goes after its older versions.
    pub fn finish_key(&mut self, out: &mut Vec<Vec<u8>>) {
        if let Some(t) = self.tombstone.take() {
            out.push(t);
        }
        self.covered = false;
    }
}

/// Every garbage stored key of `stored` (ascending) at `horizon`, in delete order.
pub fn garbage_in<'a>(stored: impl IntoIterator<Item = &'a [u8]>, horizon: u64) -> Vec<Vec<u8>> {
    let mut walk = GarbageWalk::default();
    let mut out = Vec::new();
    for k in stored {
        walk.push(k, horizon, &mut out);
    }
    walk.finish_key(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use keys::version_key;

    #[test]
    fn garbage_is_exactly_what_the_horizon_shadows() {
        let mut stored = vec![
            version_key(b"a", 1, Kind::Put),
            version_key(b"a", 4, Kind::Put),
            version_key(b"a", 9, Kind::Put),
            version_key(b"b", 2, Kind::Put),
            version_key(b"b", 3, Kind::Tombstone),
            version_key(b"c", 6, Kind::Tombstone),
            version_key(b"c", 2, Kind::Put),
            version_key(b"d", 7, Kind::Tombstone),
        ];
        stored.sort();
        let g = garbage_in(stored.iter().map(Vec::as_slice), 5);
        // a@1 (shadowed by a@4 ≤ 5), b@2 then b's tombstone @3 last; c's tombstone @6
        // and d's @7 are above the horizon and stay, and so does c@2 below c@6.
        assert_eq!(
            g,
            vec![
                version_key(b"a", 1, Kind::Put),
                version_key(b"b", 2, Kind::Put),
                version_key(b"b", 3, Kind::Tombstone),
            ]
        );
        let g = garbage_in(stored.iter().map(Vec::as_slice), 100);
        assert_eq!(
            g,
            vec![
                version_key(b"a", 4, Kind::Put),
                version_key(b"a", 1, Kind::Put),
                version_key(b"b", 2, Kind::Put),
                version_key(b"b", 3, Kind::Tombstone),
                version_key(b"c", 2, Kind::Put),
                version_key(b"c", 6, Kind::Tombstone),
                version_key(b"d", 7, Kind::Tombstone),
            ]
        );
        assert!(garbage_in(stored.iter().map(Vec::as_slice), 0).is_empty());
    }
}
