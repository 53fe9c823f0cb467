//! What makes `apply` deterministic: the log position, the leader's clock and a random
//! seed all come from the log entry, never from the replica applying it.

/// Inputs of one log entry's application, stamped by the leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApplyCtx {
    /// Log index of the entry (strictly increasing).
    pub seq: u64,
    /// The leader's wall clock when it accepted the entry, in ms since the epoch.
    pub now_ms: u64,
    /// Seed for every random choice the entry's commands make (SPOP, SRANDMEMBER, …).
    pub seed: u64,
}

/// 64 random bits from this thread's own generator, for choices nothing replicates
/// (read seeds, LFU increments). Per thread, so runtime threads never write one shared
/// counter; each thread's stream starts from a distinct splitmix64 seed.
pub fn local_random() -> u64 {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU64, Ordering};
    static THREADS: AtomicU64 = AtomicU64::new(0);
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            DetRng::new(THREADS.fetch_add(1, Ordering::Relaxed) ^ 0x2545_F491_4F6C_DD1D)
                .next_u64(),
        );
    }
    STATE.with(|s| {
        let mut r = DetRng(s.get());
        let v = r.next_u64();
        s.set(r.0);
        v
    })
}

/// A small deterministic generator (splitmix64): the same seed gives the same choices on
/// every replica and every platform, which a library generator does not promise.
#[derive(Debug, Clone)]
pub struct DetRng(u64);

impl DetRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        DetRng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Rejection sampling keeps the distribution uniform.
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let r = self.next_u64();
            if r < zone {
                return r % n;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_and_bounded() {
        let mut a = DetRng::new(42);
        let mut b = DetRng::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        let mut c = DetRng::new(7);
        let mut seen = [false; 5];
        for _ in 0..200 {
            let x = c.below(5);
            assert!(x < 5);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
