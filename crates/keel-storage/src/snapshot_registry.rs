//! The published sequence number and the sequence numbers readers have pinned.
//!
//! Every read of the server takes a pin (a snapshot, dropped when the read is done), so
//! pinning is on the hottest path there is. A pin claims one of [`SLOTS`] atomic slots
//! (one compare-and-swap on a cache line of its own, the thread's home slot first) and
//! gives it back with one store. Only when every slot is taken — more than [`SLOTS`]
//! pins open at once, e.g. many long scans — does a pin go to the exact, mutex-guarded
//! overflow map. A mutex and B-tree map for every pin cost about 8% of a GET.
//!
//! Why a reader never loses a version it needs: a pin first announces a sequence in its
//! slot, then reads the published sequence again and reads at that second value. The
//! horizon is computed by reading the published sequence first and the slots after
//! (all sequentially consistent). If the horizon's scan missed a slot, the slot was
//! claimed after the scan, so the pinner's second read comes after the horizon's read of
//! the published sequence and sees at least that much: the pinner reads at or above the
//! horizon, whose pruning keeps every version visible there. A scan that did see the
//! slot sees a sequence at or below the pinner's.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// Lock-free pin slots; more concurrent pins than this use the overflow map.
pub const SLOTS: usize = 16;

/// A slot on a cache line of its own, so pins of different threads don't contend.
#[derive(Debug)]
#[repr(align(128))]
struct Slot(AtomicU64);

/// A slot no pin holds.
const FREE: u64 = u64::MAX;

/// Where a pin is recorded, so its drop releases the right place.
#[derive(Debug, Clone, Copy)]
enum Held {
    Slot(usize),
    Overflow,
}

/// Tracks the published sequence number and the sequence numbers pinned by snapshots.
#[derive(Debug)]
pub struct SnapshotRegistry {
    visible: AtomicU64,
    slots: [Slot; SLOTS],
    overflow: Mutex<BTreeMap<u64, usize>>,
    /// Pins in `overflow`, changed under its lock: `horizon` takes the lock only when
    /// some are (a lock and an unlock were about a third of its cost, twice per batch).
    overflowed: AtomicUsize,
}

impl Default for SnapshotRegistry {
    fn default() -> Self {
        SnapshotRegistry {
            visible: AtomicU64::new(0),
            slots: std::array::from_fn(|_| Slot(AtomicU64::new(FREE))),
            overflow: Mutex::new(BTreeMap::new()),
            overflowed: AtomicUsize::new(0),
        }
    }
}

thread_local! {
    /// This thread's first slot to try, spread round robin so threads rarely collide.
    static HOME: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn home_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    HOME.with(|h| {
        let mut v = h.get();
        if v == usize::MAX {
            v = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
            h.set(v);
        }
        v
    })
}

impl SnapshotRegistry {
    /// A registry whose published sequence starts at `seq`.
    pub fn new(seq: u64) -> Arc<Self> {
        let r = SnapshotRegistry::default();
        r.visible.store(seq, Ordering::SeqCst);
        Arc::new(r)
    }

    /// The last published sequence number.
    pub fn visible(&self) -> u64 {
        self.visible.load(Ordering::SeqCst)
    }

    /// Publishes `seq`: batches up to it become visible to new readers.
    pub fn publish(&self, seq: u64) {
        self.visible.fetch_max(seq, Ordering::SeqCst);
    }

    /// Pins the current published sequence until the returned [`Pin`] is dropped.
    pub fn pin(self: &Arc<Self>) -> Pin {
        let (seq, held) = self.claim();
        Pin {
            registry: Arc::clone(self),
            seq,
            held,
        }
    }

    fn claim(&self) -> (u64, Held) {
        let announced = self.visible();
        // FREE is the empty marker, so that one sequence number goes the exact way.
        if announced != FREE {
            let home = home_slot();
            for i in 0..SLOTS {
                let at = (home + i) % SLOTS;
                let slot = &self.slots[at].0;
                if slot.load(Ordering::Relaxed) == FREE
                    && slot
                        .compare_exchange(FREE, announced, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                {
                    // See the module comment: read at the sequence published after the
                    // claim, which the slot's (older or equal) value protects.
                    let seq = self.visible();
                    if seq != announced {
                        slot.store(seq, Ordering::SeqCst);
                    }
                    return (seq, Held::Slot(at));
                }
            }
        }
        self.claim_overflow()
    }

    /// A pin in the overflow map (every slot taken).
    fn claim_overflow(&self) -> (u64, Held) {
        let mut pins = self.overflow.lock();
        // Counted, under the lock, before `visible` is read: a horizon that misses the
        // count read the published sequence before this pin does, and one that sees it
        // finds the pin in the map once it has the lock (see `horizon`).
        self.overflowed.fetch_add(1, Ordering::SeqCst);
        let seq = self.visible();
        *pins.entry(seq).or_insert(0) += 1;
        (seq, Held::Overflow)
    }

    fn release(&self, seq: u64, held: Held) {
        match held {
            Held::Slot(at) => self.slots[at].0.store(FREE, Ordering::Release),
            Held::Overflow => {
                let mut pins = self.overflow.lock();
                if let Some(n) = pins.get_mut(&seq) {
                    *n -= 1;
                    if *n == 0 {
                        pins.remove(&seq);
                    }
                    self.overflowed.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }

    /// Publishes `seq` and returns the horizon right after: no pin can slip in between
    /// with an older sequence (see the module comment).
    pub fn publish_and_horizon(&self, seq: u64) -> u64 {
        self.publish(seq);
        self.horizon()
    }

    /// The oldest sequence any reader may still ask for.
    pub fn horizon(&self) -> u64 {
        // The published sequence first, the pins after: the order the proof needs.
        let mut low = self.visible();
        // As with a slot: an overflow pin whose count this load misses was counted
        // after it, so its read of the published sequence sees `low` or more. One it
        // sees is in the map by the time the lock is had.
        if self.overflowed.load(Ordering::SeqCst) > 0 {
            if let Some(&p) = self.overflow.lock().keys().next() {
                low = low.min(p);
            }
        }
        for slot in &self.slots {
            low = low.min(slot.0.load(Ordering::SeqCst));
        }
        low
    }

    /// Number of live pins.
    pub fn open_pins(&self) -> u64 {
        let slotted = self
            .slots
            .iter()
            .filter(|s| s.0.load(Ordering::Relaxed) != FREE)
            .count();
        let overflow: usize = self.overflow.lock().values().sum();
        (slotted + overflow) as u64
    }
}

/// A pinned sequence number; reads through it see exactly the batches up to `seq`.
#[derive(Debug)]
pub struct Pin {
    registry: Arc<SnapshotRegistry>,
    seq: u64,
    held: Held,
}

impl Pin {
    /// The pinned sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.registry.release(self.seq, self.held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizon_is_the_oldest_pin_in_slots_and_overflow() {
        let r = SnapshotRegistry::new(5);
        assert_eq!(r.horizon(), 5);
        let first = r.pin();
        assert_eq!(first.seq(), 5);
        r.publish(9);
        // Fill every slot and then some, so the overflow map is used too.
        let many: Vec<Pin> = (0..SLOTS + 3).map(|_| r.pin()).collect();
        assert!(many.iter().all(|p| p.seq() == 9));
        assert_eq!(r.open_pins(), (SLOTS + 4) as u64);
        assert_eq!(r.horizon(), 5, "the first pin holds the horizon");
        drop(first);
        assert_eq!(r.horizon(), 9);
        r.publish(12);
        assert_eq!(r.horizon(), 9, "slot and overflow pins at 9 hold it");
        drop(many);
        assert_eq!(r.open_pins(), 0);
        assert_eq!(r.horizon(), 12);
        assert_eq!(r.publish_and_horizon(15), 15);
    }

    #[test]
    fn concurrent_pins_never_read_below_a_horizon_computed_meanwhile() {
        pins_race_horizons(SnapshotRegistry::pin);
    }

    #[test]
    fn concurrent_overflow_pins_never_read_below_a_horizon_computed_meanwhile() {
        // The path taken when every slot is held, which `horizon` looks at only while
        // its count says some pin is there.
        pins_race_horizons(|r| {
            let (seq, held) = r.claim_overflow();
            Pin {
                registry: Arc::clone(r),
                seq,
                held,
            }
        });
    }

    /// A publisher advances and computes horizons; pinners (pinning with `pin`) check
    /// that the sequence they read at is never below any horizon computed while they
    /// held the pin.
    fn pins_race_horizons(pin: fn(&Arc<SnapshotRegistry>) -> Pin) {
        let r = SnapshotRegistry::new(0);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let max_horizon = Arc::new(AtomicU64::new(0));
        std::thread::scope(|s| {
            for _ in 0..3 {
                let r = Arc::clone(&r);
                let stop = Arc::clone(&stop);
                let max_horizon = Arc::clone(&max_horizon);
                s.spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) && n < 200_000 {
                        let p = pin(&r);
                        // Any horizon the publisher has computed by now — before the
                        // claim (it missed the slot) or after (it saw it) — must be at
                        // or below the sequence this pin reads at.
                        for _ in 0..2 {
                            let h = max_horizon.load(Ordering::SeqCst);
                            assert!(h <= p.seq(), "horizon {h} passed pin {}", p.seq());
                        }
                        n += 1;
                    }
                });
            }
            for seq in 1..=100_000u64 {
                let h = r.publish_and_horizon(seq);
                max_horizon.fetch_max(h, Ordering::SeqCst);
            }
            stop.store(true, Ordering::Relaxed);
        });
        assert_eq!(r.open_pins(), 0);
    }
}
