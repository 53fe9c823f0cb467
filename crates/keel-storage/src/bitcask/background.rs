//! Background threads: maintenance (version GC, queued hint files, the once-a-second
//! fdatasync of policy `everysec`), the early-sync and writeback thread of group commit and, with
//! `auto_merge`, the merge trigger. They hold
//! only a weak reference to the engine between rounds and stop when it closes.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::group_commit::{Due, GroupCommit};
use super::Inner;
use crate::error::{Result, StorageError};
use crate::lifecycle::LifecycleState;
use crate::options::SyncPolicy;

/// How often maintenance runs, and how many keys one GC step looks at.
const TICK: Duration = Duration::from_millis(50);
const GC_STEP_KEYS: usize = 4096;
const EVERYSEC: Duration = Duration::from_secs(1);

/// A stop signal background threads sleep on.
#[derive(Debug, Default)]
pub struct Shutdown {
    stopped: Mutex<bool>,
    cv: Condvar,
}

impl Shutdown {
    /// Tells every waiting thread to stop.
    pub fn signal(&self) {
        *self.stopped.lock() = true;
        self.cv.notify_all();
    }

    /// Sleeps up to `d`; true once shutdown was signalled.
    pub fn wait(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut stopped = self.stopped.lock();
        while !*stopped {
            if self.cv.wait_until(&mut stopped, deadline).timed_out() {
                break;
            }
        }
        *stopped
    }
}

/// Starts the engine's background threads.
pub(crate) fn spawn(inner: &Arc<Inner>) -> Result<Vec<JoinHandle<()>>> {
    let mut threads = Vec::new();
    let weak = Arc::downgrade(inner);
    let stop = Arc::clone(&inner.shutdown);
    threads.push(
        std::thread::Builder::new()
            .name("keel-bitcask-maint".into())
            .spawn(move || maintenance_loop(weak, stop))
            .map_err(|e| StorageError::io("spawn maintenance thread", &inner.dir, e))?,
    );
    {
        let weak = Arc::downgrade(inner);
        let commit = Arc::clone(&inner.commit);
        let spawned = std::thread::Builder::new()
            .name("keel-bitcask-sync".into())
            .spawn(move || syncer_loop(weak, commit));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                inner.shutdown.signal();
                inner.commit.stop();
                for t in threads {
                    let _ = t.join();
                }
                return Err(StorageError::io("spawn sync thread", &inner.dir, e));
            }
        }
    }
    if inner.opts.auto_merge {
        let weak = Arc::downgrade(inner);
        let stop = Arc::clone(&inner.shutdown);
        let every = inner
            .opts
            .merge_check_interval
            .max(Duration::from_millis(10));
        let spawned = std::thread::Builder::new()
            .name("keel-bitcask-merge".into())
            .spawn(move || merge_loop(weak, stop, every));
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                inner.shutdown.signal();
                inner.commit.stop();
                for t in threads {
                    let _ = t.join();
                }
                return Err(StorageError::io("spawn merge thread", &inner.dir, e));
            }
        }
    }
    Ok(threads)
}

fn maintenance_loop(inner: Weak<Inner>, stop: Arc<Shutdown>) {
    let mut last_sync = Instant::now();
    while !stop.wait(TICK) {
        let Some(inner) = inner.upgrade() else { return };
        if inner.index.gc_pending() > 0 {
            inner.gc_step(GC_STEP_KEYS);
        }
        inner.flush_pending_hints();
        if inner.sync_policy == SyncPolicy::EverySec && last_sync.elapsed() >= EVERYSEC {
            last_sync = Instant::now();
            let lsn = inner.commit.written();
            if inner.commit.synced() < lsn && inner.lifecycle.state() != LifecycleState::Failed {
                if let Err(e) = inner.commit.wait_durable(lsn, &inner.lifecycle) {
                    tracing::error!(error = %e, "everysec fdatasync failed");
                }
            }
        }
    }
}

/// Runs early fdatasyncs asked for by large synced batches, and starts writebacks.
fn syncer_loop(inner: Weak<Inner>, commit: Arc<GroupCommit>) {
    while let Some(due) = commit.wait_for_request() {
        let Some(inner) = inner.upgrade() else { return };
        match due {
            Due::Sync => inner.commit.sync_requested(&inner.lifecycle),
            Due::Writeback => inner.commit.start_writeback(),
        }
    }
}

fn merge_loop(inner: Weak<Inner>, stop: Arc<Shutdown>, every: Duration) {
    while !stop.wait(every) {
        let Some(inner) = inner.upgrade() else { return };
        if inner.lifecycle.state() != LifecycleState::Ready || !inner.merge_wanted() {
            continue;
        }
        match inner.compact_now() {
            Ok(()) => {}
            Err(StorageError::Closed) => return,
            Err(e) => tracing::warn!(error = %e, "background merge failed"),
        }
    }
}

impl Inner {
    /// Whether garbage crossed both merge thresholds.
    pub(crate) fn merge_wanted(&self) -> bool {
        let (disk, garbage) = self.segments.totals();
        disk > 0
            && garbage >= self.opts.merge_min_garbage_bytes
            && garbage as f64 / disk as f64 > self.opts.merge_garbage_ratio
    }
}
