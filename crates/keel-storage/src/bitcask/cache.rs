//! A byte-budgeted LRU cache of values keyed by their location on disk, filled by reads
//! and by writes (write-through: the writer caches each value it appends). Locations
//! are never reused (segment ids only grow), so an entry can never be stale; entries of
//! overwritten versions and merged-away segments simply age out.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;

use super::Loc;

const SHARDS: usize = 16;
const NIL: usize = usize::MAX;
/// Bookkeeping bytes charged per entry on top of the value.
const ENTRY_OVERHEAD: usize = 64;

/// The value cache (a no-op with a zero budget).
#[derive(Debug)]
pub struct ValueCache {
    shards: Vec<Mutex<Shard>>,
    hits: AtomicU64,
    misses: AtomicU64,
    enabled: bool,
}

#[derive(Debug)]
struct Node {
    key: u64,
    value: Bytes,
    prev: usize,
    next: usize,
}

/// One LRU list: a slab of nodes linked most-recent first.
#[derive(Debug)]
struct Shard {
    map: HashMap<u64, usize>,
    nodes: Vec<Node>,
    free: Vec<usize>,
    head: usize,
    tail: usize,
    bytes: usize,
    budget: usize,
}

fn cache_key(loc: Loc) -> u64 {
    (u64::from(loc.segment) << 32) | u64::from(loc.offset)
}

impl ValueCache {
    /// A cache holding up to `budget` bytes (0 = off).
    pub fn new(budget: usize) -> Self {
        let per = budget / SHARDS;
        ValueCache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        nodes: Vec::new(),
                        free: Vec::new(),
                        head: NIL,
                        tail: NIL,
                        bytes: 0,
                        budget: per,
                    })
                })
                .collect(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            enabled: budget > 0,
        }
    }

    fn shard(&self, key: u64) -> &Mutex<Shard> {
        // Offsets are spread well; mixing in the segment keeps equal offsets apart.
        let h = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58;
        &self.shards[(h as usize) % SHARDS]
    }

    /// The cached value at `loc`, counting a hit or a miss.
    pub fn get(&self, loc: Loc) -> Option<Bytes> {
        if !self.enabled {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let key = cache_key(loc);
        let found = self.shard(key).lock().get(key);
        match &found {
            Some(_) => self.hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    /// Caches `value`, read from or just written at `loc`.
    pub fn insert(&self, loc: Loc, value: &Bytes) {
        if !self.enabled {
            return;
        }
        let key = cache_key(loc);
        self.shard(key).lock().insert(key, value.clone());
    }

    /// (hits, misses) since open.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Bytes currently charged to the cache.
    pub fn charged_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.lock().bytes).sum()
    }
}

impl Shard {
    fn unlink(&mut self, i: usize) {
        let (prev, next) = (self.nodes[i].prev, self.nodes[i].next);
        if prev == NIL {
            self.head = next;
        } else {
            self.nodes[prev].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.nodes[next].prev = prev;
        }
    }

    fn push_front(&mut self, i: usize) {
        self.nodes[i].prev = NIL;
        self.nodes[i].next = self.head;
        if self.head != NIL {
            self.nodes[self.head].prev = i;
        }
        self.head = i;
        if self.tail == NIL {
            self.tail = i;
        }
    }

    fn get(&mut self, key: u64) -> Option<Bytes> {
        let i = *self.map.get(&key)?;
        self.unlink(i);
        self.push_front(i);
        Some(self.nodes[i].value.clone())
    }

    fn insert(&mut self, key: u64, value: Bytes) {
        let cost = value.len() + ENTRY_OVERHEAD;
        if cost > self.budget || self.map.contains_key(&key) {
            return;
        }
        while self.bytes + cost > self.budget && self.tail != NIL {
            let t = self.tail;
            self.unlink(t);
            self.map.remove(&self.nodes[t].key);
            self.bytes -= self.nodes[t].value.len() + ENTRY_OVERHEAD;
            self.nodes[t].value = Bytes::new();
            self.free.push(t);
        }
        let node = Node {
            key,
            value,
            prev: NIL,
            next: NIL,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.nodes[i] = node;
                i
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.push_front(i);
        self.map.insert(key, i);
        self.bytes += cost;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(seg: u32, off: u32) -> Loc {
        Loc {
            segment: seg,
            offset: off,
            vlen: 0,
        }
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        // One shard's budget is budget / SHARDS; use keys of one shard by fixing the hash.
        let cache = ValueCache::new(SHARDS * (3 * (100 + ENTRY_OVERHEAD)));
        let v = Bytes::from(vec![7u8; 100]);
        let mut same_shard = Vec::new();
        let target = cache_key(loc(1, 0)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58;
        let mut off = 0;
        while same_shard.len() < 4 {
            let k = cache_key(loc(1, off)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58;
            if k % SHARDS as u64 == target % SHARDS as u64 {
                same_shard.push(loc(1, off));
            }
            off += 1;
        }
        cache.insert(same_shard[0], &v);
        cache.insert(same_shard[1], &v);
        cache.insert(same_shard[2], &v);
        assert!(cache.get(same_shard[0]).is_some()); // 0 becomes most recent
        cache.insert(same_shard[3], &v); // evicts 1
        assert!(cache.get(same_shard[1]).is_none());
        assert!(cache.get(same_shard[0]).is_some());
        assert!(cache.get(same_shard[2]).is_some());
        assert!(cache.get(same_shard[3]).is_some());
        assert!(cache.charged_bytes() <= SHARDS * (3 * (100 + ENTRY_OVERHEAD)));
        let (hits, misses) = cache.counters();
        assert_eq!((hits, misses), (4, 1));
    }

    #[test]
    fn disabled_cache_only_counts_misses() {
        let cache = ValueCache::new(0);
        cache.insert(loc(1, 1), &Bytes::from_static(b"x"));
        assert!(cache.get(loc(1, 1)).is_none());
        assert_eq!(cache.counters(), (0, 1));
    }
}
