//! Group commit: writers that need their batch on stable storage share fsyncs.
//!
//! fjall appends a batch to its journal under its journal lock, and its own per-batch
//! sync option fsyncs under that lock too, so every synced writer would pay a full fsync
//! in turn. Instead writers commit buffered and then ask this syncer for "everything up
//! to my sequence number". One caller at a time runs the fsync, covering every batch
//! committed before it started; callers whose batch is covered return at once, the rest
//! wait for the running fsync and then start the next one together.

use parking_lot::{Condvar, Mutex};

use crate::error::Result;

#[derive(Debug, Default)]
struct State {
    /// Every batch with a sequence number up to this one is on stable storage.
    synced: u64,
    /// An fsync is running right now.
    running: bool,
}

/// Shares fsyncs between concurrent writers.
#[derive(Debug, Default)]
pub struct Syncer {
    state: Mutex<State>,
    done: Condvar,
}

impl Syncer {
    /// A syncer for a store whose batches up to `synced` are already durable.
    pub fn new(synced: u64) -> Self {
        Syncer {
            state: Mutex::new(State {
                synced,
                running: false,
            }),
            done: Condvar::new(),
        }
    }

    /// Sequence number up to which everything is known to be on stable storage.
    pub fn synced(&self) -> u64 {
        self.state.lock().synced
    }

    /// Returns once every batch up to `target` is durable. `applied` reads the last
    /// committed sequence number (all batches up to it are in the journal); `persist`
    /// fsyncs the journal. A failed fsync is returned to the caller that ran it; waiters
    /// then try themselves (and fail the same way, the library being poisoned by then).
    pub fn sync_to(
        &self,
        target: u64,
        applied: impl Fn() -> u64,
        persist: impl Fn() -> Result<()>,
    ) -> Result<()> {
        let mut st = self.state.lock();
        loop {
            if st.synced >= target {
                return Ok(());
            }
            if !st.running {
                break;
            }
            self.done.wait(&mut st);
        }
        st.running = true;
        drop(st);
        // Read before the fsync: whatever was committed by now is covered by it.
        let upto = applied();
        let res = persist();
        let mut st = self.state.lock();
        st.running = false;
        if res.is_ok() {
            st.synced = st.synced.max(upto);
        }
        drop(st);
        self.done.notify_all();
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    #[test]
    fn covered_targets_skip_the_fsync() {
        let s = Syncer::new(0);
        let fsyncs = AtomicU64::new(0);
        let persist = || {
            fsyncs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        };
        s.sync_to(5, || 7, persist).expect("first sync");
        assert_eq!(s.synced(), 7);
        s.sync_to(6, || 7, persist).expect("covered");
        s.sync_to(7, || 7, persist).expect("covered");
        assert_eq!(fsyncs.load(Ordering::SeqCst), 1);
        s.sync_to(8, || 8, persist).expect("second sync");
        assert_eq!(fsyncs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn failed_fsync_does_not_advance() {
        let s = Syncer::new(3);
        let r = s.sync_to(
            4,
            || 4,
            || {
                Err(crate::error::StorageError::io(
                    "fsync journal",
                    "/x",
                    std::io::Error::other("disk gone"),
                ))
            },
        );
        assert!(r.is_err());
        assert_eq!(s.synced(), 3);
    }

    #[test]
    fn concurrent_writers_share_fsyncs() {
        let s = Arc::new(Syncer::new(0));
        let applied = Arc::new(AtomicU64::new(0));
        let fsyncs = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (s, applied, fsyncs) = (s.clone(), applied.clone(), fsyncs.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let my = applied.fetch_add(1, Ordering::SeqCst) + 1;
                        s.sync_to(
                            my,
                            || applied.load(Ordering::SeqCst),
                            || {
                                fsyncs.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_micros(200));
                                Ok(())
                            },
                        )
                        .expect("sync");
                        assert!(s.synced() >= my);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("writer thread");
        }
        assert_eq!(s.synced(), 400);
        assert!(fsyncs.load(Ordering::SeqCst) >= 1);
    }
}
