//! Group commit: writers that need durability wait until an fdatasync covers their
//! position in the log. One waiter becomes the leader and syncs everything written so
//! far; the others wait on a condition variable and return without syncing when the
//! leader's sync covered them.
//!
//! Positions are log sequence numbers (LSNs): bytes appended since open, across
//! segments. Rotation fsyncs the sealed segment, so a sync of the active segment at
//! position p makes every position up to p durable.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::error::{Result, StorageError};
use crate::lifecycle::Lifecycle;

/// The active file and the LSN of its end, as the last writer left them.
#[derive(Debug, Clone)]
pub struct Tail {
    /// The active segment's file.
    pub file: Arc<File>,
    /// Its path (for error messages).
    pub path: PathBuf,
    /// LSN just past the last appended byte.
    pub lsn: u64,
}

#[derive(Debug)]
struct State {
    synced: u64,
    syncing: bool,
}

/// Shared group-commit state.
#[derive(Debug)]
pub struct GroupCommit {
    tail: Mutex<Tail>,
    state: Mutex<State>,
    cv: Condvar,
    syncs: AtomicU64,
}

impl GroupCommit {
    /// Starts with everything up to `tail.lsn` durable.
    pub fn new(tail: Tail) -> Self {
        GroupCommit {
            state: Mutex::new(State {
                synced: tail.lsn,
                syncing: false,
            }),
            tail: Mutex::new(tail),
            cv: Condvar::new(),
            syncs: AtomicU64::new(0),
        }
    }

    /// Records the new end of the log after an append (called under the writer lock).
    pub fn advance(&self, lsn: u64) {
        self.tail.lock().lsn = lsn;
    }

    /// Switches to a new active file after a rotation that fsynced everything up to
    /// `lsn` (called under the writer lock).
    pub fn rotated(&self, tail: Tail) {
        let lsn = tail.lsn;
        *self.tail.lock() = tail;
        let mut st = self.state.lock();
        if lsn > st.synced {
            st.synced = lsn;
            self.cv.notify_all();
        }
    }

    /// LSN of the end of the log.
    pub fn written(&self) -> u64 {
        self.tail.lock().lsn
    }

    /// LSN up to which everything is durable.
    pub fn synced(&self) -> u64 {
        self.state.lock().synced
    }

    /// fdatasync calls made so far.
    pub fn sync_count(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// Returns once everything up to `lsn` is durable, syncing as leader if needed. A
    /// failed sync moves the store to Failed and fails every waiter.
    pub fn wait_durable(&self, lsn: u64, lifecycle: &Lifecycle) -> Result<()> {
        let mut st = self.state.lock();
        loop {
            if st.synced >= lsn {
                return Ok(());
            }
            if lifecycle.state() == crate::lifecycle::LifecycleState::Failed {
                return Err(StorageError::Failed {
                    reason: lifecycle
                        .failure_reason()
                        .unwrap_or_else(|| "unknown I/O error".into()),
                });
            }
            if st.syncing {
                self.cv.wait(&mut st);
                continue;
            }
            st.syncing = true;
            drop(st);
            let tail = self.tail.lock().clone();
            self.syncs.fetch_add(1, Ordering::Relaxed);
            let res = lifecycle.guard(
                tail.file
                    .sync_data()
                    .map_err(|e| StorageError::io("fdatasync segment", &tail.path, e)),
            );
            st = self.state.lock();
            st.syncing = false;
            if res.is_ok() && tail.lsn > st.synced {
                st.synced = tail.lsn;
            }
            self.cv.notify_all();
            res?;
        }
    }
}
