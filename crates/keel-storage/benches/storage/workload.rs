//! The data the benchmark writes: 16-byte keys spread uniformly over the key space in a
//! reproducible order, and incompressible 100-byte values.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

/// Key length in bytes.
pub const KEY_LEN: usize = 16;
/// Value length in bytes.
pub const VALUE_LEN: usize = 100;

/// A key as stored.
pub type Key = [u8; KEY_LEN];

/// SplitMix64's output function: a bijection on u64, so distinct indices give distinct
/// keys while consecutive indices land far apart (inserts hit random places in the order).
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Lower-case hex of `x`, 16 characters; bytewise order of the result is numeric order.
pub fn hex_key(x: u64) -> Key {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut k = [0u8; KEY_LEN];
    for (n, slot) in k.iter_mut().enumerate() {
        let shift = 60 - 4 * n as u32;
        *slot = DIGITS[((x >> shift) & 0xF) as usize];
    }
    k
}

/// The `i`-th key of the data set.
pub fn key(i: u64) -> Key {
    hex_key(mix(i))
}

/// A pool of random values, reused round-robin (each write still copies its value into a
/// fresh allocation, as a server receiving it from a socket would).
pub struct Values {
    pool: Vec<[u8; VALUE_LEN]>,
}

impl Values {
    /// `count` random values from a fixed seed.
    pub fn new(count: usize) -> Values {
        let mut rng = StdRng::seed_from_u64(0x6b65_656c);
        let pool = (0..count.max(1))
            .map(|_| {
                let mut v = [0u8; VALUE_LEN];
                rng.fill_bytes(&mut v);
                v
            })
            .collect();
        Values { pool }
    }

    /// The value written for index `i`.
    pub fn get(&self, i: u64) -> &[u8] {
        let n = self.pool.len() as u64;
        &self.pool[(i % n) as usize]
    }
}

/// `count` keys drawn uniformly from the first `n` keys of the data set.
pub fn random_existing_keys(rng: &mut StdRng, n: u64, count: usize) -> Vec<Key> {
    (0..count)
        .map(|_| key(rng.gen_range(0..n.max(1))))
        .collect()
}

/// A random scan start such that about `scan_len` keys or more follow it when `n` keys
/// are spread uniformly (starts are drawn from the first `1 - 3·scan_len/n` of the space).
pub fn random_scan_start(rng: &mut StdRng, n: u64, scan_len: usize) -> Key {
    let room = 1.0 - 3.0 * scan_len as f64 / n.max(1) as f64;
    if room <= 0.0 {
        return hex_key(0);
    }
    let limit = (u64::MAX as f64 * room) as u64;
    hex_key(rng.gen_range(0..limit.max(1)))
}
