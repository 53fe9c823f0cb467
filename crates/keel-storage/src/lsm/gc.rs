//! Garbage collection of keel versions no reader can ask for any more.
//!
//! The *horizon* is the oldest sequence number a reader may still read at (the oldest
//! pinned snapshot, or the published sequence number; it never goes down). A version is
//! garbage when a newer version of the same key has a sequence number at or below the
//! horizon: every reader at or above the horizon sees that one (or a newer one) instead.
//! A tombstone that is a key's newest version at or below the horizon is garbage too once
//! no older version of that key is left anywhere, so it has to go last.
//!
//! Collection runs only inside fjall compactions, through a compaction filter
//! ([`GcFilterFactory`]): it destroys garbage versions without writing anything. keel
//! never deletes or rewrites a stored key: a stored key is written exactly once, so
//! destroying it cannot uncover an older copy of itself, and fjall (3.1) is only ever
//! asked to keep distinct keys, the case in which its iterators stay consistent while
//! it flushes and compacts (explicit deletes, i.e. a second fjall version of one key, made
//! keel's scans see half batches under concurrent compaction in testing).
//!
//! A background compaction sees only some tables, so it drops only versions shadowed by
//! a newer one in the same compaction, never a key's newest tombstone (an older version
//! may survive in a table it does not see, and would come back). `compact` flushes the
//! memtable and runs fjall's major compaction on its own thread, which merges every table
//! while no other compaction runs; filters made on that thread are *full*: they also drop a
//! newest tombstone at or below the horizon, together with everything older. Every
//! version older than that tombstone was written before it and so was flushed no later,
//! which puts it in the same major compaction.
//!
//! Point reads do not pin the horizon (that would cost a lock per read); each filter
//! raises the shared claimed horizon before it drops anything, and a read that finds it
//! above its own sequence number afterwards retries (see the engine's `get`).

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;

use fjall::compaction::filter::{
    CompactionFilter, CompactionFilterResult, Context, Factory, ItemAccessor, Verdict,
};

use parking_lot::Mutex;

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
    /// The thread running `compact`'s major compaction, whose filters are full. (A panic
    /// cannot leave it half updated: it is only ever replaced whole.)
    full_on: AssertUnwindSafe<Mutex<Option<ThreadId>>>,
}

impl GcFilterFactory {
    /// A factory whose filters collect below `horizon`.
    pub fn new(horizon: Arc<GcHorizon>) -> Arc<Self> {
        Arc::new(GcFilterFactory {
            horizon,
            full_on: AssertUnwindSafe(Mutex::new(None)),
        })
    }

    /// Runs `major` (a major compaction on this thread) with full filters.
    pub fn full<T>(&self, major: impl FnOnce() -> T) -> T {
        struct Reset<'a>(&'a Mutex<Option<ThreadId>>);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                *self.0.lock() = None;
            }
        }
        *self.full_on.lock() = Some(std::thread::current().id());
        let _reset = Reset(&self.full_on);
        major()
    }
}

impl Factory for GcFilterFactory {
    fn name(&self) -> &str {
        "keel-version-gc"
    }

    fn make_filter(&self, _ctx: &Context) -> Box<dyn CompactionFilter> {
        let full = *self.full_on.lock() == Some(std::thread::current().id());
        Box::new(GcFilter(Sieve::new(self.horizon.claim(), full)))
    }
}

/// The filter: drops what the [`Sieve`] says.
struct GcFilter(Sieve);

impl CompactionFilter for GcFilter {
    fn filter_item(&mut self, item: ItemAccessor<'_>, _ctx: &Context) -> CompactionFilterResult {
        Ok(if self.0.is_garbage(item.key()) {
            Verdict::Destroy
        } else {
            Verdict::Keep
        })
    }
}

/// Decides, for stored keys arriving in ascending order (per key newest first), which are
/// garbage at `horizon`. Keys that do not parse are kept.
#[derive(Debug)]
pub struct Sieve {
    horizon: u64,
    /// Also drop a key's newest tombstone at or below the horizon (every older version
    /// of the key passes through this sieve too).
    full: bool,
    /// Prefix of the key whose versions are passing.
    current: Vec<u8>,
    /// The key's newest version at or below the horizon has passed: the rest is garbage.
    covered: bool,
}

impl Sieve {
    /// A sieve for one ordered pass.
    pub fn new(horizon: u64, full: bool) -> Self {
        Sieve {
            horizon,
            full,
            current: Vec::new(),
            covered: false,
        }
    }

    /// Whether the next stored key is garbage.
    pub fn is_garbage(&mut self, stored: &[u8]) -> bool {
        let Some(p) = keys::parse(stored) else {
            return false;
        };
        if p.prefix != self.current.as_slice() {
            self.current.clear();
            self.current.extend_from_slice(p.prefix);
            self.covered = false;
        }
        if self.covered {
            return true;
        }
        if p.seq > self.horizon {
            return false;
        }
        self.covered = true;
        self.full && p.kind == Kind::Tombstone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keys::version_key;

    fn garbage(stored: &[Vec<u8>], horizon: u64, full: bool) -> Vec<Vec<u8>> {
        let mut sieve = Sieve::new(horizon, full);
        stored
            .iter()
            .filter(|k| sieve.is_garbage(k))
            .cloned()
            .collect()
    }

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
        // a@1 is shadowed by a@4 ≤ 5 and b@2 by b's tombstone @3, which a partial pass
        // keeps; c's tombstone @6 and d's @7 are above the horizon, and c@2 stays under c@6.
        assert_eq!(
            garbage(&stored, 5, false),
            vec![
                version_key(b"a", 1, Kind::Put),
                version_key(b"b", 2, Kind::Put)
            ]
        );
        assert_eq!(
            garbage(&stored, 5, true),
            vec![
                version_key(b"a", 1, Kind::Put),
                version_key(b"b", 3, Kind::Tombstone),
                version_key(b"b", 2, Kind::Put),
            ]
        );
        assert_eq!(
            garbage(&stored, 100, true),
            vec![
                version_key(b"a", 4, Kind::Put),
                version_key(b"a", 1, Kind::Put),
                version_key(b"b", 3, Kind::Tombstone),
                version_key(b"b", 2, Kind::Put),
                version_key(b"c", 6, Kind::Tombstone),
                version_key(b"c", 2, Kind::Put),
                version_key(b"d", 7, Kind::Tombstone),
            ]
        );
        assert!(garbage(&stored, 0, true).is_empty());
    }
}
