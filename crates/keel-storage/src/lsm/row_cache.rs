//! The LSM engine's row cache: the newest value of recently written or read keys, so a
//! point read of a hot key skips fjall.
//!
//! keel keeps every version as a fjall key of its own ([`super::keys`]), so a point read
//! is a range seek over every memtable and every table that overlaps the key (fjall's
//! bloom filters answer exact keys only): GET -P 16 ran at 0.22 of Redis's rate, and
//! every SET paid such a read for the key's metadata first.
//!
//! An entry says: "as of sequence number `seq`, and until a later write replaces this
//! entry, the newest version of `key` is `value`" (None: deleted). Two rules keep that
//! true without a lock shared with fjall:
//!
//! - **Writes** ([`RowCache::put_written`]) store each key's new value under the batch's
//!   number after fjall has the batch and before the number is published, and raise
//!   their shard's `written`, the highest number any write stored there.
//! - **Fills** ([`RowCache::fill`]) store what a read found at a published number `read`
//!   only if no write to the shard stored a number above `read` yet. A write to the key
//!   above `read` stored before the fill is seen in `written` (the fill gives up); one
//!   stored after replaces the fill's entry. Either way the entry stays the newest.
//!
//! A lookup at `s` ([`RowCache::lookup`]) may answer from an entry with `seq <= s`:
//! every write numbered up to `s` was stored before `s` was published, so it would have
//! replaced the entry. An entry above `s` (a reader pinned before the write) is a miss.
//!
//! Eviction is CLOCK per shard: a hit marks the entry, the hand passes a marked entry
//! once (clearing the mark) and evicts an unmarked one, keeping each shard within its
//! share of the budget. Evicting is always safe: a miss reads fjall.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;

use bytes::Bytes;
use parking_lot::Mutex;

/// Shards, each under its own lock (a power of two).
const SHARDS: usize = 64;
/// Values over this share of a shard's budget are not kept (their entry says so), so one
/// large value does not flush a shard's hot keys.
const LARGEST_SHARE: usize = 8;
/// Entries up to this size are kept whatever the budget (a tiny one then holds one or
/// two, as in the tests).
const ALWAYS_KEPT: usize = 1024;
/// What an entry costs beyond its key and value bytes (the map's slot, the entry, the
/// clock queue's key handle, the `Bytes` headers), counted against the budget.
const ENTRY_OVERHEAD: usize = 96;

/// The newest value of `key` as of `seq`.
struct Entry {
    seq: u64,
    /// None: deleted, or (with `too_large`) not kept.
    value: Option<Bytes>,
    /// The value was over a [`LARGEST_SHARE`] of the shard's budget and is not kept: a
    /// lookup misses. The entry stays, so the key's older value cannot answer for it.
    too_large: bool,
    /// Read since the clock hand last passed.
    referenced: bool,
}

#[derive(Default)]
struct Shard {
    map: HashMap<Bytes, Entry, foldhash::fast::RandomState>,
    /// Keys in the order the clock hand visits them; each key of the map once.
    clock: VecDeque<Bytes>,
    bytes: usize,
    /// The highest sequence number a write stored in this shard.
    written: u64,
    hits: u64,
    misses: u64,
}

impl Shard {
    /// Inserts or replaces `key`'s entry, then evicts down to `budget`. The key is copied
    /// only for a new entry (a batch's keys may be slices of a larger buffer).
    fn store(&mut self, key: &[u8], seq: u64, value: Option<Bytes>, budget: usize) {
        let too_large = cost(key, value.as_ref()) > (budget / LARGEST_SHARE).max(ALWAYS_KEPT);
        let value = if too_large { None } else { value };
        let size = cost(key, value.as_ref());
        match self.map.get_mut(key) {
            Some(e) => {
                self.bytes = self.bytes + size - cost(key, e.value.as_ref());
                e.seq = seq;
                e.value = value;
                e.too_large = too_large;
            }
            None => {
                self.bytes += size;
                let key = Bytes::copy_from_slice(key);
                self.clock.push_back(key.clone());
                self.map.insert(
                    key,
                    Entry {
                        seq,
                        value,
                        too_large,
                        referenced: false,
                    },
                );
            }
        }
        self.evict(budget);
    }

    /// CLOCK: evicts unreferenced entries from the hand until the shard fits `budget`.
    fn evict(&mut self, budget: usize) {
        // Each pass over an entry either evicts it or clears its mark, so two turns of
        // the clock are enough.
        let mut steps = 2 * self.clock.len();
        while self.bytes > budget && steps > 0 {
            steps -= 1;
            let Some(key) = self.clock.pop_front() else {
                break;
            };
            match self.map.get_mut(&key) {
                Some(e) if e.referenced => {
                    e.referenced = false;
                    self.clock.push_back(key);
                }
                Some(_) => {
                    if let Some(e) = self.map.remove(&key) {
                        self.bytes -= cost(&key, e.value.as_ref());
                    }
                }
                None => {}
            }
        }
    }
}

fn cost(key: &[u8], value: Option<&Bytes>) -> usize {
    key.len() + value.map_or(0, |v| v.len()) + ENTRY_OVERHEAD
}

/// The cache (see the module docs). With a budget of 0 it holds nothing and every
/// lookup misses.
pub struct RowCache {
    shards: Box<[Mutex<Shard>]>,
    /// Bytes each shard may hold.
    shard_budget: usize,
    hasher: foldhash::fast::RandomState,
}

impl RowCache {
    /// A cache of about `budget` bytes in all.
    pub fn new(budget: u64) -> RowCache {
        let budget = usize::try_from(budget).unwrap_or(usize::MAX);
        RowCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_budget: budget / SHARDS,
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    fn enabled(&self) -> bool {
        self.shard_budget > 0
    }

    fn shard(&self, key: &[u8]) -> &Mutex<Shard> {
        let h = self.hasher.hash_one(key);
        // SHARDS is a power of two, so the mask keeps the index in bounds.
        &self.shards[(h >> 32) as usize & (SHARDS - 1)]
    }

    /// `key`'s value at the published sequence number `seq` if the cache knows it:
    /// `Some(None)` for a deleted key, `None` for a miss.
    pub fn lookup(&self, key: &[u8], seq: u64) -> Option<Option<Bytes>> {
        if !self.enabled() {
            return None;
        }
        let mut shard = self.shard(key).lock();
        let found = match shard.map.get_mut(key) {
            Some(e) if e.seq <= seq && !e.too_large => {
                e.referenced = true;
                Some(e.value.clone())
            }
            _ => None,
        };
        if found.is_some() {
            shard.hits += 1;
        } else {
            shard.misses += 1;
        }
        found
    }

    /// Stores a batch's writes, numbered `seq`, each key once: called by the writer after
    /// fjall has the batch and before `seq` is published.
    pub fn put_written<'a>(
        &self,
        seq: u64,
        writes: impl IntoIterator<Item = (&'a [u8], Option<&'a Bytes>)>,
    ) {
        if !self.enabled() {
            return;
        }
        for (key, value) in writes {
            let mut shard = self.shard(key).lock();
            shard.written = shard.written.max(seq);
            shard.store(key, seq, value.cloned(), self.shard_budget);
        }
    }

    /// Stores what a read of `key` at the published sequence number `read` found, unless
    /// a write above `read` reached the key's shard meanwhile (or an entry is there).
    pub fn fill(&self, key: &[u8], read: u64, value: Option<&Bytes>) {
        if !self.enabled() {
            return;
        }
        let mut shard = self.shard(key).lock();
        if shard.written > read || shard.map.contains_key(key) {
            return;
        }
        // Copied: a value fjall read from a table is a slice of its whole block, which a
        // kept slice would pin.
        shard.store(
            key,
            read,
            value.map(|v| Bytes::copy_from_slice(v)),
            self.shard_budget,
        );
    }

    /// Hits and misses of [`RowCache::lookup`] since open.
    pub fn hits_and_misses(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(h, m), s| {
            let s = s.lock();
            (h + s.hits, m + s.misses)
        })
    }

    /// Bytes held, counted as against the budget.
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().bytes).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn a_write_is_seen_at_its_number_and_above_only() {
        let c = RowCache::new(1 << 20);
        let v = b("v1");
        c.put_written(5, [(&b"k"[..], Some(&v))]);
        assert_eq!(
            c.lookup(b"k", 4),
            None,
            "a reader pinned below the write misses"
        );
        assert_eq!(c.lookup(b"k", 5), Some(Some(v.clone())));
        assert_eq!(c.lookup(b"k", 9), Some(Some(v)));
        c.put_written(7, [(&b"k"[..], None)]);
        assert_eq!(
            c.lookup(b"k", 7),
            Some(None),
            "a delete is a hit saying absent"
        );
        assert_eq!(c.lookup(b"k", 6), None);
        assert_eq!(c.lookup(b"other", 9), None);
        assert_eq!(c.hits_and_misses(), (3, 3));
    }

    #[test]
    fn a_fill_gives_way_to_a_later_write_in_its_shard() {
        let c = RowCache::new(1 << 20);
        let (old, new) = (b("old"), b("new"));
        // The read ran at 3; a write at 4 reached the shard before the fill.
        c.put_written(4, [(&b"k"[..], Some(&new))]);
        c.fill(b"k", 3, Some(&old));
        assert_eq!(c.lookup(b"k", 10), Some(Some(new.clone())));
        // Another key of the same shard: its fill at 3 is refused too, as the write at 4
        // might have been to it.
        let same_shard = (0..10_000)
            .map(|i| format!("x{i}"))
            .find(|k| std::ptr::eq(c.shard(k.as_bytes()), c.shard(b"k")))
            .expect("some key shares the shard");
        c.fill(same_shard.as_bytes(), 3, Some(&old));
        assert_eq!(c.lookup(same_shard.as_bytes(), 10), None);
        // A fill at or above every write stored in the shard is kept.
        c.fill(same_shard.as_bytes(), 4, Some(&old));
        assert_eq!(c.lookup(same_shard.as_bytes(), 4), Some(Some(old.clone())));
        assert_eq!(c.lookup(same_shard.as_bytes(), 3), None);
        // A fill never replaces an entry.
        c.fill(b"k", 10, Some(&old));
        assert_eq!(c.lookup(b"k", 10), Some(Some(new)));
    }

    #[test]
    fn eviction_keeps_the_budget_and_spares_referenced_entries() {
        let budget = SHARDS * 16 * (ENTRY_OVERHEAD + 8);
        let c = RowCache::new(budget as u64);
        let v = b("vv");
        let hot = b"hot-key";
        c.put_written(1, [(&hot[..], Some(&v))]);
        for i in 0..20_000u32 {
            let k = format!("k{i:05}");
            c.put_written(u64::from(i) + 2, [(k.as_bytes(), Some(&v))]);
            // Read the hot key now and then: the clock passes it over.
            if i % 8 == 0 {
                assert!(c.lookup(hot, u64::MAX).is_some(), "hot key evicted at {i}");
            }
        }
        assert!(
            c.bytes() <= budget,
            "{} bytes held, budget {budget}",
            c.bytes()
        );
        let kept = (0..20_000u32)
            .filter(|i| c.lookup(format!("k{i:05}").as_bytes(), u64::MAX).is_some())
            .count();
        assert!(kept > 0 && kept < 20_000, "{kept} of 20000 kept");
    }

    #[test]
    fn a_value_too_large_to_keep_still_hides_the_older_one() {
        let c = RowCache::new((SHARDS * 8 * 1024) as u64);
        let small = b("small");
        let large = Bytes::from(vec![b'x'; 4096]);
        c.put_written(1, [(&b"k"[..], Some(&small))]);
        assert_eq!(c.lookup(b"k", 1), Some(Some(small.clone())));
        c.put_written(2, [(&b"k"[..], Some(&large))]);
        assert_eq!(
            c.lookup(b"k", 2),
            None,
            "the large value is read from fjall"
        );
        assert!(c.bytes() < 1024, "{} bytes held", c.bytes());
        // Its entry blocks a fill of the older value read before the write.
        c.fill(b"k", 2, Some(&small));
        assert_eq!(c.lookup(b"k", 2), None);
        c.put_written(3, [(&b"k"[..], Some(&small))]);
        assert_eq!(c.lookup(b"k", 3), Some(Some(small)));
    }

    #[test]
    fn a_zero_budget_holds_nothing() {
        let c = RowCache::new(0);
        let v = b("v");
        c.put_written(1, [(&b"k"[..], Some(&v))]);
        c.fill(b"j", 1, Some(&v));
        assert_eq!(c.lookup(b"k", 1), None);
        assert_eq!(c.lookup(b"j", 1), None);
        assert_eq!(c.bytes(), 0);
    }
}
