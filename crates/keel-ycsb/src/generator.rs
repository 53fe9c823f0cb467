//! Number generators with YCSB's definitions: a seeded PRNG, uniform, zipfian, scrambled
//! zipfian, skewed-latest, and the acknowledged insert counter that bounds what readers
//! may pick while inserts are in flight.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// YCSB's default zipfian constant (theta).
pub const ZIPFIAN_CONSTANT: f64 = 0.99;

/// Item count YCSB's scrambled zipfian draws from before hashing into the key range.
pub const SCRAMBLED_ITEM_COUNT: u64 = 10_000_000_000;

/// YCSB's precomputed zeta(SCRAMBLED_ITEM_COUNT, 0.99); computing it takes minutes.
pub const SCRAMBLED_ZETAN: f64 = 26.469_028_201_783_02;

const FNV_OFFSET_BASIS_64: u64 = 0xCBF2_9CE4_8422_2325;
const FNV_PRIME_64: u64 = 1_099_511_628_211;

/// YCSB's `Utils.fnvhash64`: FNV-1a over the 8 little-endian bytes, then the absolute
/// value of the result read as a signed 64-bit number.
pub fn fnv_hash64(val: u64) -> u64 {
    let mut hash = FNV_OFFSET_BASIS_64;
    for byte in val.to_le_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME_64);
    }
    (hash as i64).unsigned_abs()
}

/// SplitMix64: small, fast and fully determined by its seed.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator whose sequence depends only on `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [0, n); 0 when n is 0.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Fills `out` with printable ASCII, like YCSB's random field values.
    pub fn fill_printable(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let bits = self.next_u64().to_le_bytes();
            for (b, r) in chunk.iter_mut().zip(bits) {
                // 95 printable characters from space to '~'.
                *b = b' ' + ((u16::from(r) * 95) >> 8) as u8;
            }
        }
    }
}

/// Uniform over [min, min + count).
#[derive(Debug, Clone)]
pub struct Uniform {
    min: u64,
    count: u64,
}

impl Uniform {
    /// Uniform over the inclusive range [min, max].
    pub fn new(min: u64, max: u64) -> Uniform {
        Uniform {
            min,
            count: max.saturating_sub(min).saturating_add(1),
        }
    }

    /// The next value.
    pub fn next(&mut self, rng: &mut Rng) -> u64 {
        self.min + rng.below(self.count)
    }
}

/// zeta(n, theta) summed from item `from` (exclusive count already in `initial`) to `to`.
fn zeta(from: u64, to: u64, theta: f64, initial: f64) -> f64 {
    let mut sum = initial;
    for i in from..to {
        sum += 1.0 / ((i + 1) as f64).powf(theta);
    }
    sum
}

/// Zipfian over [base, base + items) with item `base` the most popular, following Gray et
/// al., "Quickly Generating Billion-Record Synthetic Databases" (as YCSB does).
#[derive(Debug, Clone)]
pub struct Zipfian {
    base: u64,
    items: u64,
    theta: f64,
    alpha: f64,
    zeta2theta: f64,
    zetan: f64,
    eta: f64,
}

impl Zipfian {
    /// Zipfian over the inclusive range [min, max] with constant `theta` (0 < theta < 1).
    pub fn new(min: u64, max: u64, theta: f64) -> Zipfian {
        let items = max.saturating_sub(min).saturating_add(1);
        let zetan = zeta(0, items, theta, 0.0);
        Zipfian::with_zetan(min, items, theta, zetan)
    }

    /// Zipfian over `items` items from `base` with a precomputed zeta(items, theta).
    pub fn with_zetan(base: u64, items: u64, theta: f64, zetan: f64) -> Zipfian {
        let zeta2theta = zeta(0, 2, theta, 0.0);
        let mut z = Zipfian {
            base,
            items: items.max(1),
            theta,
            alpha: 1.0 / (1.0 - theta),
            zeta2theta,
            zetan,
            eta: 0.0,
        };
        z.eta = z.eta_for(z.items);
        z
    }

    fn eta_for(&self, items: u64) -> f64 {
        (1.0 - (2.0 / items as f64).powf(1.0 - self.theta)) / (1.0 - self.zeta2theta / self.zetan)
    }

    /// The number of items drawn from.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// The next value.
    pub fn next(&mut self, rng: &mut Rng) -> u64 {
        let u = rng.next_f64();
        let uz = u * self.zetan;
        if uz < 1.0 {
            return self.base;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return self.base + 1.min(self.items - 1);
        }
        let off = (self.items as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        self.base + off.min(self.items - 1)
    }

    /// The next value over `items` items, extending zeta incrementally when the item count
    /// grew (the latest distribution's window grows with every insert).
    pub fn next_over(&mut self, rng: &mut Rng, items: u64) -> u64 {
        let items = items.max(1);
        if items > self.items {
            self.zetan = zeta(self.items, items, self.theta, self.zetan);
            self.items = items;
            self.eta = self.eta_for(items);
        } else if items < self.items {
            // Only a fresh generator shrinks; recompute rather than drift.
            *self = Zipfian::new(self.base, self.base + items - 1, self.theta);
        }
        self.next(rng)
    }
}

/// YCSB's scrambled zipfian: a zipfian draw over 10^10 items (with YCSB's precomputed
/// zeta) hashed by FNV-1a 64 into [min, max], so the popular items are spread over the
/// whole key range instead of clustering at its start.
#[derive(Debug, Clone)]
pub struct ScrambledZipfian {
    min: u64,
    count: u64,
    inner: Zipfian,
}

impl ScrambledZipfian {
    /// Scrambled zipfian over the inclusive range [min, max] with YCSB's constant 0.99.
    pub fn new(min: u64, max: u64) -> ScrambledZipfian {
        ScrambledZipfian {
            min,
            count: max.saturating_sub(min).saturating_add(1),
            inner: Zipfian::with_zetan(0, SCRAMBLED_ITEM_COUNT, ZIPFIAN_CONSTANT, SCRAMBLED_ZETAN),
        }
    }

    /// The next value.
    pub fn next(&mut self, rng: &mut Rng) -> u64 {
        let v = self.inner.next(rng);
        self.min + fnv_hash64(v) % self.count
    }
}

/// YCSB's skewed-latest: the most recently inserted record is the most popular, with a
/// zipfian fall-off towards older ones.
#[derive(Debug, Clone)]
pub struct Latest {
    zipf: Zipfian,
}

impl Latest {
    /// A generator for a key space whose newest key is currently `last`.
    pub fn new(last: u64) -> Latest {
        Latest {
            zipf: Zipfian::new(0, last, ZIPFIAN_CONSTANT),
        }
    }

    /// The next key, given the newest acknowledged key `last`; always in [0, last].
    pub fn next(&mut self, rng: &mut Rng, last: u64) -> u64 {
        let back = self.zipf.next_over(rng, last.saturating_add(1));
        last.saturating_sub(back)
    }
}

/// Hands out insert key numbers and tracks which of them have completed, so readers only
/// pick keys whose insert is acknowledged: `last()` is the highest key below which every
/// insert has finished (YCSB's AcknowledgedCounterGenerator).
#[derive(Debug)]
pub struct AckCounter {
    next: AtomicU64,
    /// Every key below this one is acknowledged.
    done_below: AtomicU64,
    pending: Mutex<BTreeSet<u64>>,
}

impl AckCounter {
    /// A counter whose first insert is `start`; keys below it already exist.
    pub fn new(start: u64) -> AckCounter {
        AckCounter {
            next: AtomicU64::new(start),
            done_below: AtomicU64::new(start),
            pending: Mutex::new(BTreeSet::new()),
        }
    }

    /// The key number for the next insert.
    pub fn next_insert(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Marks the insert of `key` complete.
    pub fn ack(&self, key: u64) {
        // A poisoned lock only means another task panicked; the set itself stays valid.
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.insert(key);
        let mut below = self.done_below.load(Ordering::Relaxed);
        while pending.remove(&below) {
            below += 1;
        }
        self.done_below.store(below, Ordering::Release);
    }

    /// The highest key number below which every insert is acknowledged (None: no keys).
    pub fn last(&self) -> Option<u64> {
        self.done_below.load(Ordering::Acquire).checked_sub(1)
    }

    /// Key numbers handed out so far (the next insert's number).
    pub fn issued(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn counts(n: usize, mut f: impl FnMut() -> u64) -> HashMap<u64, usize> {
        let mut m = HashMap::new();
        for _ in 0..n {
            *m.entry(f()).or_insert(0) += 1;
        }
        m
    }

    #[test]
    fn fnv_matches_reference_values() {
        // FNV-1a 64 of eight zero bytes, computed independently step by step.
        let mut h: u64 = 0xCBF2_9CE4_8422_2325;
        for _ in 0..8 {
            h = h.wrapping_mul(0x100_0000_01B3);
        }
        assert_eq!(fnv_hash64(0), (h as i64).unsigned_abs());
        assert_ne!(fnv_hash64(1), fnv_hash64(2));
        assert!(fnv_hash64(u64::MAX) <= 1u64 << 63);
    }

    #[test]
    fn rng_is_deterministic_and_in_bounds() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let mut c = Rng::new(8);
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..100).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        for _ in 0..10_000 {
            assert!(a.below(13) < 13);
            let f = a.next_f64();
            assert!((0.0..1.0).contains(&f));
        }
        let mut buf = [0u8; 1000];
        a.fill_printable(&mut buf);
        assert!(buf.iter().all(|b| (b' '..=b'~').contains(b)));
        assert!(buf.iter().collect::<BTreeSet<_>>().len() > 50);
    }

    #[test]
    fn uniform_covers_the_range_evenly() {
        let mut rng = Rng::new(1);
        let mut u = Uniform::new(10, 19);
        let c = counts(100_000, || u.next(&mut rng));
        assert_eq!(c.len(), 10);
        for (k, n) in c {
            assert!((10..=19).contains(&k));
            assert!((9_000..11_000).contains(&n), "item {k}: {n}");
        }
    }

    #[test]
    fn zipfian_most_popular_item_gets_its_expected_share() {
        let items = 1000u64;
        let mut rng = Rng::new(42);
        let mut z = Zipfian::new(0, items - 1, ZIPFIAN_CONSTANT);
        let samples = 200_000;
        let c = counts(samples, || z.next(&mut rng));
        assert!(c.keys().all(|k| *k < items));
        let zetan = zeta(0, items, ZIPFIAN_CONSTANT, 0.0);
        // P(item i) = 1 / ((i+1)^theta * zetan).
        let expect0 = 1.0 / zetan;
        let got0 = *c.get(&0).unwrap_or(&0) as f64 / samples as f64;
        assert!(
            (got0 - expect0).abs() < 0.1 * expect0,
            "item 0: {got0} vs {expect0}"
        );
        let expect1 = 1.0 / (2f64.powf(ZIPFIAN_CONSTANT) * zetan);
        let got1 = *c.get(&1).unwrap_or(&0) as f64 / samples as f64;
        assert!(
            (got1 - expect1).abs() < 0.1 * expect1,
            "item 1: {got1} vs {expect1}"
        );
        // Skew: the first 10% of items take well over half the draws.
        let head: usize = c
            .iter()
            .filter(|(k, _)| **k < items / 10)
            .map(|(_, n)| n)
            .sum();
        assert!(head as f64 > 0.6 * samples as f64, "head {head}");
    }

    #[test]
    fn scrambled_zipfian_spreads_hot_items_over_the_range() {
        let items = 10_000u64;
        let mut rng = Rng::new(3);
        let mut z = ScrambledZipfian::new(0, items - 1);
        let samples = 200_000;
        let c = counts(samples, || z.next(&mut rng));
        assert!(c.keys().all(|k| *k < items));
        let mut by_count: Vec<(u64, usize)> = c.into_iter().collect();
        by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        // The hottest item is zipfian item 0 hashed: share about 1/zeta(10^10).
        let hottest = by_count[0];
        assert_eq!(hottest.0, fnv_hash64(0) % items);
        let share = hottest.1 as f64 / samples as f64;
        let expect = 1.0 / SCRAMBLED_ZETAN;
        assert!(
            share > 0.9 * expect && share < 1.3 * expect,
            "share {share}"
        );
        // Still skewed: the ten hottest items far exceed ten uniform ones.
        let top10: usize = by_count.iter().take(10).map(|(_, n)| n).sum();
        assert!(top10 as f64 > 50.0 * 10.0 * samples as f64 / items as f64);
        // Spread: the ten hottest land in at least five different tenths of the range.
        let tenths: BTreeSet<u64> = by_count
            .iter()
            .take(10)
            .map(|(k, _)| k * 10 / items)
            .collect();
        assert!(tenths.len() >= 5, "hot items cluster: {tenths:?}");
    }

    #[test]
    fn latest_favors_recent_inserts_and_follows_growth() {
        let mut rng = Rng::new(9);
        let mut last = 999u64;
        let mut l = Latest::new(last);
        let samples = 100_000;
        let c = counts(samples, || l.next(&mut rng, last));
        assert!(c.keys().all(|k| *k <= last));
        let newest = *c.get(&last).unwrap_or(&0);
        let oldest_half: usize = c.iter().filter(|(k, _)| **k < 500).map(|(_, n)| n).sum();
        assert!(newest as f64 > 0.1 * samples as f64, "newest {newest}");
        assert!(
            newest > oldest_half,
            "newest {newest} vs old half {oldest_half}"
        );
        // After more inserts the new newest key becomes the favourite.
        last = 1499;
        let c = counts(samples, || l.next(&mut rng, last));
        assert!(c.keys().all(|k| *k <= last));
        let top = c.iter().max_by_key(|(_, n)| **n).map(|(k, _)| *k);
        assert_eq!(top, Some(last));
    }

    #[test]
    fn ack_counter_advances_only_over_contiguous_acks() {
        let c = AckCounter::new(10);
        assert_eq!(c.last(), Some(9));
        let a = c.next_insert();
        let b = c.next_insert();
        let d = c.next_insert();
        assert_eq!((a, b, d), (10, 11, 12));
        c.ack(b);
        assert_eq!(c.last(), Some(9));
        c.ack(d);
        assert_eq!(c.last(), Some(9));
        c.ack(a);
        assert_eq!(c.last(), Some(12));
        assert_eq!(c.issued(), 13);
        assert_eq!(AckCounter::new(0).last(), None);
    }
}
