//! The lock of one index entry's versions: a byte that spins, yields, then naps.
//!
//! Why not parking_lot's `RawMutex`: its unlock is a compare-and-swap, because it must
//! notice parked waiters. A locked instruction is a full barrier on x86, and the writer
//! unlocks every key it writes twice (install and settle). perf put 17% of
//! `MemoryEngine::write`'s samples on those two unlocks (ZADD -P 16). This unlock is a
//! release store, a plain store on x86. A holder keeps the lock only while it reads or
//! swaps one key's versions, so a waiter spins, then yields its thread, then naps.

use std::sync::atomic::{AtomicU8, Ordering};

/// Spins before a waiter starts yielding its thread.
const SPINS: u32 = 128;
/// Yields before a waiter starts sleeping: a reader copying out a value of hundreds of
/// megabytes holds the lock for milliseconds.
const YIELDS: u32 = 64;
/// A sleeping waiter's nap between looks.
const NAP: std::time::Duration = std::time::Duration::from_micros(50);

/// A one-byte lock without parking (see the module doc).
pub(crate) struct SlotLock(AtomicU8);

impl SlotLock {
    /// Unlocked.
    pub(crate) const fn new() -> Self {
        Self(AtomicU8::new(0))
    }

    /// Takes the lock, waiting while another thread holds it.
    #[inline]
    pub(crate) fn lock(&self) {
        if self
            .0
            .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
    }

    #[cold]
    fn lock_contended(&self) {
        let mut spins: u32 = 0;
        loop {
            while self.0.load(Ordering::Relaxed) != 0 {
                spins = spins.saturating_add(1);
                if spins <= SPINS {
                    std::hint::spin_loop();
                } else if spins <= SPINS + YIELDS {
                    std::thread::yield_now();
                } else {
                    std::thread::sleep(NAP);
                }
            }
            if self
                .0
                .compare_exchange_weak(0, 1, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Releases the lock.
    ///
    /// # Safety
    /// The calling thread holds the lock (took it with [`SlotLock::lock`]).
    #[inline]
    pub(crate) unsafe fn unlock(&self) {
        self.0.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn excludes_other_threads() {
        // Four threads each add to a plain counter under the lock; a lock that let two in
        // at once would lose increments.
        struct Shared {
            lock: SlotLock,
            count: std::cell::UnsafeCell<u64>,
        }
        // SAFETY: `count` is touched only under `lock`.
        unsafe impl Sync for Shared {}
        let shared = Arc::new(Shared {
            lock: SlotLock::new(),
            count: std::cell::UnsafeCell::new(0),
        });
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let s = Arc::clone(&shared);
                std::thread::spawn(move || {
                    for _ in 0..20_000 {
                        s.lock.lock();
                        // SAFETY: under the lock.
                        unsafe {
                            let c = s.count.get();
                            c.write(std::ptr::read_volatile(c) + 1);
                            s.lock.unlock();
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a locking thread panicked");
        }
        // SAFETY: every thread has finished.
        assert_eq!(unsafe { *shared.count.get() }, 80_000);
    }
}
