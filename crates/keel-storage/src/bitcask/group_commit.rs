//! Group commit: writers that need durability wait until an fdatasync covers their
//! position in the log. Whoever finds no sync running becomes the leader and syncs
//! everything written so far; the others wait on a condition variable and return
//! without syncing when the leader's sync covered them.
//!
//! A large batch can also ask for its sync early, right after its append: the syncer
//! thread then runs the fdatasync while the writer is still installing the batch in the
//! index, so the two overlap. If the writer gets to waiting first, it leads the sync
//! itself; a late syncer finds nothing to do.
//!
//! Positions are log sequence numbers (LSNs): bytes appended since open, across
//! segments. Rotation fsyncs the sealed segment, so a sync of the active segment at
//! position p makes every position up to p durable.
//!
//! Unless every batch is synced (`always`), the same thread also starts the writeback
//! of every [`WRITEBACK_BYTES`] appended (see [`crate::writeback`]): the fdatasync that
//! seals a 128 MiB segment on the writer's thread otherwise finds most of it dirty.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::error::{Result, StorageError};
use crate::lifecycle::{Lifecycle, LifecycleState};
use crate::writeback::{Progress, WRITEBACK_BYTES};

/// The active file and the LSN of its end, as the last writer left them.
#[derive(Debug, Clone)]
pub struct Tail {
    /// The active segment's file.
    pub file: Arc<File>,
    /// Its path (for error messages).
    pub path: PathBuf,
    /// LSN just past the last appended byte.
    pub lsn: u64,
    /// LSN of the byte at `start_offset` in `file` (where this file became the tail).
    pub start_lsn: u64,
    /// Offset in `file` of the byte at `start_lsn`.
    pub start_offset: u64,
}

impl Tail {
    /// The offset in the file of the byte at `lsn` (at or after `start_lsn`).
    fn offset_of(&self, lsn: u64) -> u64 {
        self.start_offset + lsn.saturating_sub(self.start_lsn)
    }
}

/// What the syncer thread is woken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// An early fdatasync.
    Sync,
    /// Starting the writeback of what was appended since the last one.
    Writeback,
}

#[derive(Debug)]
struct State {
    synced: u64,
    syncing: bool,
    /// Highest LSN an early sync was asked for.
    requested: u64,
    /// A writeback was asked for and not yet started.
    writeback_due: bool,
    stopped: bool,
}

/// Shared group-commit state.
#[derive(Debug)]
pub struct GroupCommit {
    tail: Mutex<Tail>,
    state: Mutex<State>,
    /// Wakes waiters when a sync finishes.
    done: Condvar,
    /// Wakes the syncer thread when an early sync or a writeback is asked for.
    kick: Condvar,
    syncs: AtomicU64,
    /// Whether appends ask for writeback (not under `always`).
    writeback: bool,
    /// The log's writeback, in LSNs (asked for under the writer lock).
    writebacks: Progress,
}

impl GroupCommit {
    /// Starts with everything up to `tail.lsn` durable; `writeback`: appends ask the
    /// syncer thread to start their writeback.
    pub fn new(tail: Tail, writeback: bool) -> Self {
        let lsn = tail.lsn;
        GroupCommit {
            state: Mutex::new(State {
                synced: lsn,
                syncing: false,
                requested: lsn,
                writeback_due: false,
                stopped: false,
            }),
            tail: Mutex::new(tail),
            done: Condvar::new(),
            kick: Condvar::new(),
            syncs: AtomicU64::new(0),
            writeback,
            writebacks: Progress::new(WRITEBACK_BYTES, lsn),
        }
    }

    /// Records the new end of the log after an append (called under the writer lock),
    /// and asks for writeback once [`WRITEBACK_BYTES`] have gathered since the last ask.
    pub fn advance(&self, lsn: u64) {
        self.tail.lock().lsn = lsn;
        if self.writeback && self.writebacks.ask(lsn) {
            self.state.lock().writeback_due = true;
            self.kick.notify_one();
        }
    }

    /// Starts the writeback of the tail file's bytes appended since the last one.
    pub fn start_writeback(&self) {
        let tail = self.tail.lock().clone();
        if let Some(from) = self.writebacks.take(tail.lsn, tail.start_lsn) {
            let len = tail.lsn - from;
            self.writebacks
                .start(&tail.file, &tail.path, tail.offset_of(from), len);
        }
    }

    /// Writebacks started so far.
    pub fn writeback_count(&self) -> u64 {
        self.writebacks.count()
    }

    /// Switches to a new active file after a rotation that fsynced everything up to
    /// `lsn` (called under the writer lock).
    pub fn rotated(&self, tail: Tail) {
        let lsn = tail.lsn;
        *self.tail.lock() = tail;
        let mut st = self.state.lock();
        if lsn > st.synced {
            st.synced = lsn;
            self.done.notify_all();
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

    /// Asks the syncer thread to start syncing up to `lsn` now.
    pub fn request_early(&self, lsn: u64) {
        let mut st = self.state.lock();
        if lsn > st.requested {
            st.requested = lsn;
            if !st.syncing {
                self.kick.notify_one();
            }
        }
    }

    /// Stops the syncer thread.
    pub fn stop(&self) {
        self.state.lock().stopped = true;
        self.kick.notify_all();
    }

    /// The syncer thread's wait: what is due, None once stopped.
    pub fn wait_for_request(&self) -> Option<Due> {
        let mut st = self.state.lock();
        loop {
            if st.stopped {
                return None;
            }
            if st.requested > st.synced && !st.syncing {
                return Some(Due::Sync);
            }
            if st.writeback_due {
                st.writeback_due = false;
                return Some(Due::Writeback);
            }
            self.kick.wait(&mut st);
        }
    }

    /// The syncer thread's sync: leads one sync unless one is running or nothing is due.
    pub fn sync_requested(&self, lifecycle: &Lifecycle) {
        let st = self.state.lock();
        if st.syncing || st.requested <= st.synced || failed(lifecycle).is_some() {
            return;
        }
        let (_st, res) = self.lead(st, lifecycle);
        if let Err(e) = res {
            tracing::error!(error = %e, "fdatasync failed");
        }
    }

    /// Returns once everything up to `lsn` is durable, syncing as leader if needed. A
    /// failed sync moves the store to Failed and fails every waiter.
    pub fn wait_durable(&self, lsn: u64, lifecycle: &Lifecycle) -> Result<()> {
        let mut st = self.state.lock();
        loop {
            if st.synced >= lsn {
                return Ok(());
            }
            if let Some(e) = failed(lifecycle) {
                return Err(e);
            }
            if st.syncing {
                self.done.wait(&mut st);
                continue;
            }
            let (guard, res) = self.lead(st, lifecycle);
            st = guard;
            res?;
        }
    }

    /// Runs one fdatasync of everything written so far; `st` must show no sync running.
    fn lead<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        lifecycle: &Lifecycle,
    ) -> (MutexGuard<'a, State>, Result<()>) {
        st.syncing = true;
        drop(st);
        let tail = self.tail.lock().clone();
        self.syncs.fetch_add(1, Ordering::Relaxed);
        let res = lifecycle.guard(
            tail.file
                .sync_data()
                .map_err(|e| StorageError::io("fdatasync segment", &tail.path, e)),
        );
        let mut st = self.state.lock();
        st.syncing = false;
        if res.is_ok() && tail.lsn > st.synced {
            st.synced = tail.lsn;
        }
        self.done.notify_all();
        (st, res)
    }
}

fn failed(lifecycle: &Lifecycle) -> Option<StorageError> {
    (lifecycle.state() == LifecycleState::Failed).then(|| StorageError::Failed {
        reason: lifecycle
            .failure_reason()
            .unwrap_or_else(|| "unknown I/O error".into()),
    })
}
