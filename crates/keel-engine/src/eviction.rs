//! Memory accounting and eviction under `maxmemory`, approximated by sampling as Redis
//! does.
//!
//! Access recency and frequency live in a fixed-size [`AccessTable`] indexed by a hash
//! of (db, key): 4 MiB whatever the key count, at the price of collisions making the
//! figures approximate (Redis's own LRU/LFU are approximations too). The table is local
//! to the node that serves requests; it is not replicated. Eviction decisions are taken
//! by the leader and travel through the log as `Op::Evict`, so replicas delete the same
//! keys.

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use bytes::Bytes;
use keel_storage::{Direction, ScanRange, Snapshot};

use crate::error::Result;
use crate::keys;
use crate::kv::{KvRead, SnapshotReader};
use crate::meta::Meta;

/// What to do when a write would exceed `maxmemory` (Redis's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EvictionPolicy {
    /// Refuse writes that grow memory with the OOM error.
    #[default]
    NoEviction,
    /// Evict the least recently used key.
    AllKeysLru,
    /// Evict the least frequently used key.
    AllKeysLfu,
    /// Evict a random key.
    AllKeysRandom,
    /// Evict the least recently used key among keys with an expiry.
    VolatileLru,
    /// Evict the least frequently used key among keys with an expiry.
    VolatileLfu,
    /// Evict a random key among keys with an expiry.
    VolatileRandom,
    /// Evict the key with an expiry that expires soonest.
    VolatileTtl,
}

impl EvictionPolicy {
    /// The policy's configuration name.
    pub fn as_str(self) -> &'static str {
        match self {
            EvictionPolicy::NoEviction => "noeviction",
            EvictionPolicy::AllKeysLru => "allkeys-lru",
            EvictionPolicy::AllKeysLfu => "allkeys-lfu",
            EvictionPolicy::AllKeysRandom => "allkeys-random",
            EvictionPolicy::VolatileLru => "volatile-lru",
            EvictionPolicy::VolatileLfu => "volatile-lfu",
            EvictionPolicy::VolatileRandom => "volatile-random",
            EvictionPolicy::VolatileTtl => "volatile-ttl",
        }
    }

    /// True for the policies that evict by access frequency: only then does keel keep
    /// frequencies up to date (see [`AccessTable::set_lfu`]).
    pub fn is_lfu(self) -> bool {
        matches!(
            self,
            EvictionPolicy::AllKeysLfu | EvictionPolicy::VolatileLfu
        )
    }

    fn volatile_only(self) -> bool {
        matches!(
            self,
            EvictionPolicy::VolatileLru
                | EvictionPolicy::VolatileLfu
                | EvictionPolicy::VolatileRandom
                | EvictionPolicy::VolatileTtl
        )
    }
}

impl FromStr for EvictionPolicy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let all = [
            EvictionPolicy::NoEviction,
            EvictionPolicy::AllKeysLru,
            EvictionPolicy::AllKeysLfu,
            EvictionPolicy::AllKeysRandom,
            EvictionPolicy::VolatileLru,
            EvictionPolicy::VolatileLfu,
            EvictionPolicy::VolatileRandom,
            EvictionPolicy::VolatileTtl,
        ];
        all.into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown maxmemory-policy '{s}'"))
    }
}

/// Bytes keel counts per key on top of its stored bytes (index node, metadata header,
/// allocator slack): an estimate, documented as such in INFO.
pub const PER_KEY_OVERHEAD: u64 = 64;

const SLOTS: usize = 1 << 20;
/// Redis's defaults: lfu-log-factor 10, lfu-decay-time 1 minute, new keys start at 5.
const LFU_LOG_FACTOR: f64 = 10.0;
const LFU_INIT: u32 = 5;

/// Where a key's access record is in an [`AccessTable`].
#[derive(Debug, Clone, Copy)]
pub struct AccessSlot(usize);

/// Per-key access recency and frequency in a fixed-size hashed table.
pub struct AccessTable {
    /// Per slot: bits 0..16 last access (seconds, wrapping), 16..24 LFU counter,
    /// 24..32 last LFU decrement (minutes, wrapping).
    slots: Box<[AtomicU32]>,
    /// Frequencies are kept (an LFU policy is set); otherwise only recency.
    lfu: AtomicBool,
}

impl std::fmt::Debug for AccessTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTable")
            .field("slots", &SLOTS)
            .finish()
    }
}

impl Default for AccessTable {
    fn default() -> Self {
        Self::new()
    }
}

/// The slot of a key. Every command touches its keys, so this is foldhash with a fixed
/// seed (about half the instructions of FNV-1a on a 16-byte key, a fifth of SipHash's); a
/// collision only shares an access record between two keys, which sampling-based
/// eviction tolerates, so there is nothing to flood. The key's bytes are hashed alone
/// (see `keel_storage::key_hash`) and the database added after, by a multiple of an odd
/// constant: hashing the pair fed foldhash two more words.
fn slot_of(db: u8, key: &[u8]) -> usize {
    const SEED: foldhash::fast::FixedState = foldhash::fast::FixedState::with_seed(0x2545_F491);
    let h = keel_storage::key_hash::hash_bytes(&SEED, key)
        .wrapping_add(u64::from(db).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    // Fold the high bits in: the table index uses the low ones.
    ((h ^ (h >> 29)) as usize) & (SLOTS - 1)
}

impl AccessTable {
    /// An empty table (every key looks new).
    pub fn new() -> Self {
        AccessTable {
            slots: (0..SLOTS).map(|_| AtomicU32::new(0)).collect(),
            lfu: AtomicBool::new(false),
        }
    }

    /// Keeps access frequencies (true, an LFU maxmemory-policy) or recency alone. Redis
    /// keeps one or the other per key, and so does the upkeep here: the frequency's
    /// probabilistic increment was most of what every command paid for this table.
    /// Switching at runtime starts from stale figures, as in Redis.
    pub fn set_lfu(&self, on: bool) {
        self.lfu.store(on, Ordering::Relaxed);
    }

    /// Whether frequencies are kept (OBJECT FREQ answers only then, as in Redis).
    pub fn tracks_lfu(&self) -> bool {
        self.lfu.load(Ordering::Relaxed)
    }

    fn rand01() -> f64 {
        // The thread's own generator: one shared generator state was a cache line every
        // runtime thread wrote on every command.
        (crate::ctx::local_random() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Starts loading the slot of `key` into the CPU cache ahead of a [`AccessTable::touch`].
    pub fn prefetch(&self, db: u8, key: &[u8]) {
        self.locate(db, key);
    }

    /// The slot of `key`, starting to load it into the CPU cache, for a
    /// [`AccessTable::touch_slot`] after the command's own reads: the table is 4 MiB, so
    /// the slot's line is usually a miss, and its load, touched first, stalled a read for
    /// the whole miss (15% of a pipelined GET's samples under perf).
    pub fn locate(&self, db: u8, key: &[u8]) -> AccessSlot {
        let at = slot_of(db, key);
        keel_storage::cache_hint::prefetch_line(&self.slots[at]);
        AccessSlot(at)
    }

    /// Records an access to `key` at `now_ms`.
    pub fn touch(&self, db: u8, key: &[u8], now_ms: u64) {
        self.touch_slot(AccessSlot(slot_of(db, key)), now_ms);
    }

    /// Records an access to the key [`AccessTable::locate`] found `at`, at `now_ms`.
    pub fn touch_slot(&self, at: AccessSlot, now_ms: u64) {
        // `AccessSlot`s are made only by `slot_of`, which masks them into the table.
        let slot = &self.slots[at.0];
        let old = slot.load(Ordering::Relaxed);
        let secs = ((now_ms / 1000) & 0xFFFF) as u32;
        if !self.tracks_lfu() {
            let new = (old & !0xFFFF) | secs;
            // 0 means "never seen" to idle_ms; a key touched at second 0 of the wrap
            // gets 1 (one second off, once every 18 hours).
            let new = if new == 0 { 1 } else { new };
            if new != old {
                slot.store(new, Ordering::Relaxed);
            }
            return;
        }
        let mut counter = if old == 0 {
            LFU_INIT
        } else {
            self.decayed(old, now_ms)
        };
        if counter < 255 {
            let base = counter.saturating_sub(LFU_INIT) as f64;
            let p = 1.0 / (base * LFU_LOG_FACTOR + 1.0);
            if Self::rand01() < p {
                counter += 1;
            }
        }
        let mins = ((now_ms / 60_000) & 0xFF) as u32;
        let new = secs | (counter << 16) | (mins << 24);
        // Unchanged most of the time (same second, counter not bumped): skipping the
        // store keeps the line shared instead of owned by the last thread that looked.
        if new != old {
            slot.store(new, Ordering::Relaxed);
        }
    }

    fn decayed(&self, v: u32, now_ms: u64) -> u32 {
        let counter = (v >> 16) & 0xFF;
        let last = v >> 24;
        let now = ((now_ms / 60_000) & 0xFF) as u32;
        let elapsed = (now + 256 - last) & 0xFF;
        counter.saturating_sub(elapsed)
    }

    /// Approximate ms since the last access (0 for keys never seen: treated as new).
    pub fn idle_ms(&self, db: u8, key: &[u8], now_ms: u64) -> u64 {
        let v = self.slots[slot_of(db, key)].load(Ordering::Relaxed);
        if v == 0 {
            return 0;
        }
        let last = u64::from(v & 0xFFFF);
        let now = (now_ms / 1000) & 0xFFFF;
        ((now + 0x1_0000 - last) & 0xFFFF) * 1000
    }

    /// Approximate LFU counter (0–255) with decay applied, as OBJECT FREQ reports it.
    pub fn freq(&self, db: u8, key: &[u8], now_ms: u64) -> u32 {
        let v = self.slots[slot_of(db, key)].load(Ordering::Relaxed);
        if v == 0 {
            return LFU_INIT;
        }
        self.decayed(v, now_ms)
    }
}

/// Dataset size as keel accounts it for `maxmemory`: stored bytes plus a per-key
/// overhead estimate.
pub fn used_memory(store: &dyn keel_storage::Storage) -> u64 {
    let s = store.stats();
    s.live_bytes + s.live_keys * PER_KEY_OVERHEAD
}

/// Picks up to `want` keys to evict under `policy`, sampling `samples` candidates per
/// pick as Redis's maxmemory-samples does. `seed` drives the sampling positions.
pub fn pick_victims(
    snap: Box<dyn Snapshot>,
    access: &AccessTable,
    policy: EvictionPolicy,
    samples: usize,
    want: usize,
    now_ms: u64,
    seed: u64,
) -> Result<Vec<(u8, Bytes)>> {
    if policy == EvictionPolicy::NoEviction || want == 0 {
        return Ok(Vec::new());
    }
    let reader = SnapshotReader::new(snap);
    let mut rng = crate::ctx::DetRng::new(seed);
    let mut victims: Vec<(u8, Bytes)> = Vec::new();
    for _ in 0..want {
        let mut best: Option<(u64, u8, Bytes)> = None;
        let candidates = if policy.volatile_only() {
            sample_volatile(
                &reader,
                samples,
                &mut rng,
                policy == EvictionPolicy::VolatileTtl,
            )?
        } else {
            sample_all(&reader, samples, &mut rng)?
        };
        for (db, key, expire_at) in candidates {
            if victims.iter().any(|(d, k)| *d == db && *k == key) {
                continue;
            }
            // Larger score = better victim.
            let score = match policy {
                EvictionPolicy::AllKeysLru | EvictionPolicy::VolatileLru => {
                    access.idle_ms(db, &key, now_ms)
                }
                EvictionPolicy::AllKeysLfu | EvictionPolicy::VolatileLfu => {
                    255 - u64::from(access.freq(db, &key, now_ms).min(255))
                }
                EvictionPolicy::VolatileTtl => u64::MAX - expire_at.unwrap_or(u64::MAX),
                _ => rng.next_u64(),
            };
            if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                best = Some((score, db, key));
            }
        }
        match best {
            Some((_, db, key)) => victims.push((db, key)),
            None => break,
        }
    }
    Ok(victims)
}

/// Samples up to `n` keys of any database, starting at random points between each
/// database's first and last key.
fn sample_all(
    reader: &SnapshotReader,
    n: usize,
    rng: &mut crate::ctx::DetRng,
) -> Result<Vec<(u8, Bytes, Option<u64>)>> {
    let mut out = Vec::new();
    let dbs: Vec<u8> = (0..keys::DATABASES)
        .filter(|db| {
            reader
                .scan(keys::meta_range(*db), Direction::Forward)
                .next()
                .is_some()
        })
        .collect();
    if dbs.is_empty() {
        return Ok(out);
    }
    let db = dbs[rng.below(dbs.len() as u64) as usize];
    let range = keys::meta_range(db);
    let first = reader
        .scan(range.clone(), Direction::Forward)
        .next()
        .transpose()?;
    let last = reader
        .scan(range.clone(), Direction::Reverse)
        .next()
        .transpose()?;
    let (Some((f, _)), Some((l, _))) = (first, last) else {
        return Ok(out);
    };
    let start = random_between(&f, &l, rng);
    let from_start = ScanRange {
        start: std::ops::Bound::Included(start),
        end: range.end.clone(),
    };
    let wrapped = reader
        .scan(from_start, Direction::Forward)
        .chain(reader.scan(range, Direction::Forward));
    for item in wrapped {
        let (mk, raw) = item?;
        if out.len() >= n
            || out
                .iter()
                .any(|(_, k, _): &(u8, Bytes, _)| mk.get(2..) == Some(k.as_ref()))
        {
            break;
        }
        let meta = Meta::decode(&mk, raw)?;
        out.push((db, mk.slice(2..), meta.expire_at));
    }
    Ok(out)
}

/// Samples keys with an expiry from the expiry index; for volatile-ttl the soonest
/// expiring come first, which is exactly what that policy wants.
fn sample_volatile(
    reader: &SnapshotReader,
    n: usize,
    rng: &mut crate::ctx::DetRng,
    soonest: bool,
) -> Result<Vec<(u8, Bytes, Option<u64>)>> {
    let mut out = Vec::new();
    let start_db = if soonest {
        0
    } else {
        rng.below(u64::from(keys::DATABASES)) as u8
    };
    for i in 0..keys::DATABASES {
        let db = (start_db + i) % keys::DATABASES;
        let range = ScanRange::prefix([keys::EXPIRY_IDX, db]);
        for item in reader.scan(range, Direction::Forward) {
            let (k, _) = item?;
            if let Some((db, at, key)) = keys::parse_expiry_key(&k) {
                out.push((db, Bytes::copy_from_slice(key), Some(at)));
            }
            if out.len() >= n {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// A byte string uniformly between `lo` and `hi` (bytewise order), over their length.
fn random_between(lo: &[u8], hi: &[u8], rng: &mut crate::ctx::DetRng) -> Bytes {
    let common = lo.iter().zip(hi).take_while(|(a, b)| a == b).count();
    let mut out = lo[..common].to_vec();
    let a = lo.get(common).copied().unwrap_or(0);
    let b = hi.get(common).copied().unwrap_or(255);
    if b > a {
        out.push(a + rng.below(u64::from(b - a) + 1) as u8);
        for _ in 0..4 {
            out.push(rng.next_u64() as u8);
        }
    } else {
        out.extend_from_slice(&lo[common..]);
    }
    Bytes::from(out)
}
