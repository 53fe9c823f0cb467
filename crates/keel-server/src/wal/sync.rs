//! The durability state the apply loop and the WAL's background thread share: which file
//! to fdatasync, how far it has been written, how far it is known durable, how far its
//! writeback has been started, the counters, and the failure latch. One fdatasync covers
//! everything written before it started, so concurrent callers queue on one lock and the
//! later ones usually find nothing left to do (group commit).

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::error::{Result, WalError};
use super::segment::sync_dir;
use keel_storage::writeback::{Progress, WRITEBACK_BYTES};

/// How often the `everysec` thread fdatasyncs.
const EVERY: Duration = Duration::from_secs(1);

/// The file that receives appends and how much of it has been written.
struct Target {
    file: Option<Arc<File>>,
    path: PathBuf,
    /// Bytes written to `file` by write(2).
    written_len: u64,
    /// Last index whose record has been written (in this file or an earlier, synced one).
    written_index: u64,
}

/// Why the background thread should wake.
#[derive(Default)]
struct Wake {
    stop: bool,
    writeback: bool,
    /// Segments a snapshot covers, to delete.
    doomed: Vec<PathBuf>,
}

/// State shared between the writer, the background fsync thread and stats readers.
pub(crate) struct Shared {
    pub dir: PathBuf,
    target: Mutex<Target>,
    /// Serialises fdatasync calls so each one can tell what the previous covered.
    sync_lock: Mutex<()>,
    failed: Mutex<Option<String>>,
    /// Whether a background thread starts the writeback of what is written (`everysec`
    /// and `no`; under `always` every round is fdatasynced anyway).
    writeback: bool,
    wake: Mutex<Wake>,
    wake_cv: Condvar,
    pub bytes_on_disk: AtomicU64,
    pub segments: AtomicU64,
    pub last_index: AtomicU64,
    synced_index: AtomicU64,
    fsyncs: AtomicU64,
    last_fsync_nanos: AtomicU64,
    /// The target's writeback, in bytes of the file.
    writebacks: Progress,
}

impl Shared {
    /// The state of a log in `dir`; `writeback`: a background thread will start the
    /// writeback of what is written (see [`spawn_background`]).
    pub fn new(dir: PathBuf, writeback: bool) -> Self {
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
            writeback,
            wake: Mutex::new(Wake::default()),
            wake_cv: Condvar::new(),
            bytes_on_disk: AtomicU64::new(0),
            segments: AtomicU64::new(0),
            last_index: AtomicU64::new(0),
            synced_index: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            last_fsync_nanos: AtomicU64::new(0),
            writebacks: Progress::new(WRITEBACK_BYTES, 0),
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
        self.writebacks.reset(len);
    }

    /// Records that the target now holds `len` bytes, through index `index`, and wakes
    /// the background thread to start their writeback once [`WRITEBACK_BYTES`] have
    /// gathered since it was last asked.
    pub fn note_written(&self, len: u64, index: u64) {
        let ask = {
            let mut t = self.target.lock();
            t.written_len = len;
            t.written_index = index;
            self.writeback && self.writebacks.ask(len)
        };
        if ask {
            self.wake.lock().writeback = true;
            self.wake_cv.notify_one();
        }
    }

    /// Starts the writeback of what was written to the target since the last one.
    fn start_writeback(&self) {
        let (file, path, from, to) = {
            let t = self.target.lock();
            let Some(file) = t.file.clone() else {
                return;
            };
            let Some(from) = self.writebacks.take(t.written_len, 0) else {
                return;
            };
            (file, t.path.clone(), from, t.written_len)
        };
        self.writebacks.start(&file, &path, from, to - from);
    }

    /// Hands `segments` to the background thread to delete.
    pub fn delete_later(&self, segments: Vec<PathBuf>) {
        self.wake.lock().doomed.extend(segments);
        self.wake_cv.notify_one();
    }

    /// Deletes `segments`, then fsyncs the directory; a failure is logged and leaves the
    /// file for a later truncation (after a restart: nothing refers to it until then).
    fn delete(&self, segments: Vec<PathBuf>) {
        let mut deleted = 0;
        for path in segments {
            match std::fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "wal: covered segment not deleted")
                }
            }
        }
        if deleted > 0 {
            if let Err(e) = sync_dir(&self.dir) {
                tracing::warn!(error = %e, "wal: deletions of covered segments not made durable");
            }
            tracing::debug!(deleted, "wal: covered segments deleted");
        }
    }

    /// Number of writebacks started.
    pub fn writebacks(&self) -> u64 {
        self.writebacks.count()
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
        self.wake.lock().stop = true;
        self.wake_cv.notify_all();
    }
}

/// Starts the WAL's background thread: it deletes the segments handed to it, starts the
/// writeback of every [`WRITEBACK_BYTES`] written (when the shared state asks for it)
/// and, when `everysec`, fdatasyncs what has been written once a second. It holds only
/// a weak handle between rounds and ends on `stop` (after the deletions still due), when
/// the WAL is gone, or after a failed fdatasync.
pub(crate) fn spawn_background(shared: &Arc<Shared>, everysec: bool) -> Result<JoinHandle<()>> {
    let weak: Weak<Shared> = Arc::downgrade(shared);
    std::thread::Builder::new()
        .name("keel-wal-fsync".into())
        .spawn(move || background_loop(weak, everysec))
        .map_err(|e| WalError::io("spawn fsync thread", shared.dir.clone(), 0, e))
}

fn background_loop(weak: Weak<Shared>, everysec: bool) {
    let mut next_sync = Instant::now() + EVERY;
    loop {
        let Some(shared) = weak.upgrade() else {
            return;
        };
        let (stop, writeback, doomed) = {
            let mut wake = shared.wake.lock();
            while !wake.stop && !wake.writeback && wake.doomed.is_empty() {
                if !everysec {
                    shared.wake_cv.wait(&mut wake);
                } else if shared.wake_cv.wait_until(&mut wake, next_sync).timed_out() {
                    break;
                }
            }
            (
                wake.stop,
                std::mem::take(&mut wake.writeback),
                std::mem::take(&mut wake.doomed),
            )
        };
        if !doomed.is_empty() {
            shared.delete(doomed);
        }
        if stop {
            return;
        }
        if writeback {
            shared.start_writeback();
        }
        if everysec && Instant::now() >= next_sync {
            // A failure is latched and logged by `sync`; nothing more to do here.
            if shared.sync().is_err() {
                return;
            }
            next_sync = Instant::now() + EVERY;
        }
    }
}
