//! Counters that every runtime thread bumps on every command (commands processed, bytes
//! in and out, per-command calls). One shared atomic per counter made its cache line
//! travel between cores on each command; here each thread adds into its own stripe, on
//! its own line, and a reader (INFO, metrics) sums the stripes.
//!
//! A thread that holds a stripe alone adds with a plain load and store: an atomic
//! read-modify-write is a barrier (~20 cycles, and the loads behind it wait), and a
//! command paid three of them here. Stripes are claimed on a thread's first add and
//! given back when it exits; threads beyond [`OWNED`] share one more stripe and add
//! atomically. A reset cannot store zero under an owner's feet (its next store would
//! bring the old count back), so it records the totals as a baseline instead.

use std::sync::atomic::{AtomicU64, Ordering};

/// Stripes a thread can hold alone.
pub const OWNED: usize = 16;

/// Stripes per counter: the owned ones and the shared one after them.
pub const STRIPES: usize = OWNED + 1;

/// Which stripes are held, one bit each.
static CLAIMED: AtomicU64 = AtomicU64::new(0);

/// A thread's stripe in `from`, given back when the thread exits.
struct Claim {
    from: &'static AtomicU64,
    index: Option<usize>,
}

impl Claim {
    fn take(from: &'static AtomicU64) -> Claim {
        let mut cur = from.load(Ordering::Acquire);
        loop {
            let free = (!cur).trailing_zeros() as usize;
            if free >= OWNED {
                return Claim { from, index: None };
            }
            // Acquire: the stripe's last holder's stores are seen before ours.
            match from.compare_exchange_weak(
                cur,
                cur | 1 << free,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Claim {
                        from,
                        index: Some(free),
                    }
                }
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(i) = self.index {
            self.from.fetch_and(!(1 << i), Ordering::Release);
        }
    }
}

/// The stripe this thread adds into, and whether it holds it alone.
#[derive(Debug, Clone, Copy)]
pub struct Stripe {
    /// Index into a counter's stripes (below [`STRIPES`]).
    pub index: usize,
    alone: bool,
}

impl Stripe {
    /// Adds `n` to `c`, this stripe's part of a counter.
    #[inline]
    pub fn add(self, c: &AtomicU64, n: u64) {
        if self.alone {
            c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        } else {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// This thread's stripe, claimed on first use.
pub fn stripe() -> Stripe {
    thread_local! {
        static MINE: Claim = Claim::take(&CLAIMED);
    }
    // During the thread's exit the claim may be gone already: share.
    match MINE.try_with(|c| c.index) {
        Ok(Some(index)) => Stripe { index, alone: true },
        _ => Stripe {
            index: OWNED,
            alone: false,
        },
    }
}

/// One counter alone on its cache line (128 bytes: adjacent-line prefetch pairs lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// A monotonic counter summed over per-thread stripes.
#[derive(Debug, Default)]
pub struct StripedU64 {
    stripes: [Padded; STRIPES],
    /// The sum at the last reset.
    base: AtomicU64,
}

impl StripedU64 {
    /// Adds `n` on this thread's stripe.
    pub fn add(&self, n: u64) {
        let s = stripe();
        s.add(&self.stripes[s.index].0, n);
    }

    fn sum(&self) -> u64 {
        self.stripes
            .iter()
            .fold(0u64, |t, s| t.wrapping_add(s.0.load(Ordering::Relaxed)))
    }

    /// The total over all stripes since the last reset.
    pub fn get(&self) -> u64 {
        self.sum().wrapping_sub(self.base.load(Ordering::Relaxed))
    }

    /// Sets the total to zero (CONFIG RESETSTAT).
    pub fn reset(&self) {
        self.base.store(self.sum(), Ordering::Relaxed);
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
        c.add(2);
        assert_eq!(c.get(), 2, "a reset is a baseline: adds after it count");
    }

    #[test]
    fn threads_beyond_the_owned_stripes_share_one_without_losing_adds() {
        // All alive at once, so that at least the last few share the extra stripe.
        let n = OWNED + 8;
        let c = std::sync::Arc::new(StripedU64::default());
        let start = std::sync::Arc::new(std::sync::Barrier::new(n));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (c, start) = (std::sync::Arc::clone(&c), std::sync::Arc::clone(&start));
                std::thread::spawn(move || {
                    let mine = stripe();
                    start.wait();
                    for _ in 0..20_000 {
                        c.add(1);
                    }
                    mine
                })
            })
            .collect();
        let mine: Vec<Stripe> = handles
            .into_iter()
            .map(|h| h.join().expect("adder thread"))
            .collect();
        assert!(mine.iter().any(|s| !s.alone && s.index == OWNED));
        let mut alone: Vec<usize> = mine.iter().filter(|s| s.alone).map(|s| s.index).collect();
        let held = alone.len();
        alone.sort_unstable();
        alone.dedup();
        assert_eq!(alone.len(), held, "two live threads held one stripe");
        assert_eq!(c.get(), 20_000 * n as u64);
    }

    #[test]
    fn a_stripe_is_claimed_once_and_given_back_on_drop() {
        static BITS: AtomicU64 = AtomicU64::new(0);
        let claims: Vec<Claim> = (0..OWNED).map(|_| Claim::take(&BITS)).collect();
        let mut got: Vec<usize> = claims.iter().filter_map(|c| c.index).collect();
        got.sort_unstable();
        assert_eq!(got, (0..OWNED).collect::<Vec<_>>());
        assert_eq!(Claim::take(&BITS).index, None, "all held: share");
        let mut claims = claims;
        drop(claims.remove(3));
        assert_eq!(Claim::take(&BITS).index, Some(3));
    }
}
