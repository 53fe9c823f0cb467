//! The durability state the apply loop and the `everysec` thread share: which file to
//! fdatasync, how far it has been written, how far it is known durable, the counters, and
//! the failure latch. One fdatasync covers everything written before it started, so
//! concurrent callers queue on one lock and the later ones usually find nothing left to
//! do (group commit).

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::error::{Result, WalError};

/// The file that receives appends and how much of it has been written.
struct Target {
    file: Option<Arc<File>>,
    path: PathBuf,
    /// Bytes written to `file` by write(2).
    written_len: u64,
    /// Last index whose record has been written (in this file or an earlier, synced one).
    written_index: u64,
}

/// State shared between the writer, the background fsync thread and stats readers.
pub(crate) struct Shared {
    pub dir: PathBuf,
    target: Mutex<Target>,
    /// Serialises fdatasync calls so each one can tell what the previous covered.
    sync_lock: Mutex<()>,
    failed: Mutex<Option<String>>,
    stop: Mutex<bool>,
    stop_cv: Condvar,
    pub bytes_on_disk: AtomicU64,
    pub segments: AtomicU64,
    pub last_index: AtomicU64,
    synced_index: AtomicU64,
    fsyncs: AtomicU64,
    last_fsync_nanos: AtomicU64,
}

impl Shared {
    pub fn new(dir: PathBuf) -> Self {
        Shared {
            target: Mutex::new(Target {
                file: None,
                path: dir.clone(),
                written_len: 0,
                written_index: 0,
            }),
            dir,
            sync_lock: Mutex::new(()),
            failed: Mutex::new(None),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
            bytes_on_disk: AtomicU64::new(0),
            segments: AtomicU64::new(0),
            last_index: AtomicU64::new(0),
            synced_index: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            last_fsync_nanos: AtomicU64::new(0),
        }
    }

    /// Errors if an earlier write or fsync failed.
    pub fn check(&self) -> Result<()> {
        match &*self.failed.lock() {
            Some(reason) => Err(WalError::Failed {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Latches the first failure; later writes are refused with it.
    pub fn fail(&self, err: &WalError) {
        let mut f = self.failed.lock();
        if f.is_none() {
            tracing::error!(error = %err, "wal: write path failed, refusing further writes");
            *f = Some(err.to_string());
        }
    }

    /// The first failure, if any.
    pub fn failure(&self) -> Option<String> {
        self.failed.lock().clone()
    }

    /// Switches appends to a new file of `len` bytes.
    pub fn set_target(&self, file: Arc<File>, path: PathBuf, len: u64) {
        let mut t = self.target.lock();
        t.file = Some(file);
        t.path = path;
        t.written_len = len;
    }

    /// Records that the target now holds `len` bytes, through index `index`.
    pub fn note_written(&self, len: u64, index: u64) {
        let mut t = self.target.lock();
        t.written_len = len;
        t.written_index = index;
    }

    /// Marks everything up to `index` durable without an fsync (the open made it so).
    pub fn set_synced(&self, index: u64) {
        self.synced_index.store(index, Ordering::Release);
    }

    /// The last index known durable.
    pub fn synced_index(&self) -> u64 {
        self.synced_index.load(Ordering::Acquire)
    }

    /// Number of fdatasync calls made.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs.load(Ordering::Relaxed)
    }

    /// Duration of the last fdatasync.
    pub fn last_fsync(&self) -> Duration {
        Duration::from_nanos(self.last_fsync_nanos.load(Ordering::Relaxed))
    }

    /// fdatasyncs the target if anything written is not yet durable; returns the last
    /// durable index. A failure latches: the fsync is not retried.
    pub fn sync(&self) -> Result<u64> {
        let _one_at_a_time = self.sync_lock.lock();
        self.check()?;
        let (file, path, len, index) = {
            let t = self.target.lock();
            (
                t.file.clone(),
                t.path.clone(),
                t.written_len,
                t.written_index,
            )
        };
        let synced = self.synced_index();
        let Some(file) = file else {
            return Ok(synced);
        };
        if index <= synced {
            return Ok(synced);
        }
        let started = Instant::now();
        let res = file.sync_data();
        let took = started.elapsed();
        self.last_fsync_nanos.store(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = res {
            let err = WalError::io("fdatasync", path, len, e);
            self.fail(&err);
            return Err(err);
        }
        self.synced_index.store(index, Ordering::Release);
        Ok(index)
    }

    /// Asks the background thread to end.
    pub fn stop(&self) {
        *self.stop.lock() = true;
        self.stop_cv.notify_all();
    }
}

/// Starts the `everysec` thread: once a second it fdatasyncs what has been written. It
/// holds only a weak handle between rounds and ends on `stop`, when the WAL is gone, or
/// after a failure.
pub(crate) fn spawn_everysec(shared: &Arc<Shared>) -> Result<JoinHandle<()>> {
    let weak: Weak<Shared> = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name("keel-wal-fsync".into())
        .spawn(move || everysec_loop(weak))
        .map_err(|e| WalError::io("spawn fsync thread", shared.dir.clone(), 0, e))
}

fn everysec_loop(weak: Weak<Shared>) {
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        {
            let mut stopped = shared.stop.lock();
            if !*stopped {
                shared
                    .stop_cv
                    .wait_for(&mut stopped, Duration::from_secs(1));
            }
            if *stopped {
                return;
            }
        }
        // A failure is latched and logged by `sync`; nothing more to do here.
        if shared.sync().is_err() {
            return;
        }
    }
}
