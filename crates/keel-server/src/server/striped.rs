//! Counters that every runtime thread bumps on every command (commands processed, bytes
//! in and out, per-command calls). One shared atomic per counter made its cache line
//! travel between cores on each command; here each thread adds into its own stripe, on
//! its own line, and a reader (INFO, metrics) sums the stripes.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Stripes per counter: threads beyond this many share stripes, which stays correct.
pub const STRIPES: usize = 8;

/// This thread's stripe, assigned round-robin on first use.
pub fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    MINE.with(|m| *m)
}

/// One counter alone on its cache line (128 bytes: adjacent-line prefetch pairs lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// A monotonic counter summed over per-thread stripes.
#[derive(Debug, Default)]
pub struct StripedU64 {
    stripes: [Padded; STRIPES],
}

impl StripedU64 {
    /// Adds `n` on this thread's stripe.
    pub fn add(&self, n: u64) {
        self.stripes[stripe()].0.fetch_add(n, Ordering::Relaxed);
    }

    /// The total over all stripes.
    pub fn get(&self) -> u64 {
        self.stripes
            .iter()
            .fold(0u64, |t, s| t.wrapping_add(s.0.load(Ordering::Relaxed)))
    }

    /// Sets the total to zero (CONFIG RESETSTAT).
    pub fn reset(&self) {
        for s in &self.stripes {
            s.0.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_add_into_one_total() {
        let c = std::sync::Arc::new(StripedU64::default());
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let c = std::sync::Arc::clone(&c);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.add(i + 1);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("adder thread");
        }
        assert_eq!(c.get(), 1000 * (1..=12).sum::<u64>());
        c.reset();
        assert_eq!(c.get(), 0);
    }
}
