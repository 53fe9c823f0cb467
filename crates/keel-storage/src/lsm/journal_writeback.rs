//! Starting the kernel's writeback of fjall's journal while batches are appended to it.
//!
//! keel's server opens this engine without fsyncs of its own (`SyncPolicy::No`: its WAL
//! is the durability of record), so fjall's journal is written into the page cache and
//! fsynced when fjall flushes a memtable: by fjall's flush task, while it holds fjall's
//! journal writer lock, which every batch keel commits needs. With the 64 MiB memtable
//! that fsync found up to a memtable's worth of journal dirty and took 15-35 ms under
//! SET -P 16 (`perf trace -e fsync`), a stall of every write each flush. Here a thread
//! of its own starts the writeback of the newest journal every [`WRITEBACK_BYTES`] of
//! batches, as the WAL and bitcask do for their logs, so that fsync finds little left.
//!
//! fjall does not say which journal it appends to, so the thread takes the journal with
//! the highest number in fjall's directory and the whole file's range (writeback of the
//! pages already clean is a walk of the page cache's dirty tags, not a write). A journal
//! fjall has just rotated away from was fsynced by the rotation.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};

use super::journal_check::journal_files;
use crate::writeback::{Progress, WRITEBACK_BYTES};

/// Why the thread should wake.
#[derive(Default)]
struct Wake {
    due: bool,
    stop: bool,
}

/// What the committing writer and the writeback thread share.
pub(crate) struct JournalWriteback {
    dir: PathBuf,
    /// Bytes of stored keys and values handed to fjall: the journal's growth, roughly.
    appended: AtomicU64,
    progress: Progress,
    wake: Mutex<Wake>,
    cv: Condvar,
}

impl JournalWriteback {
    /// The state for the journals in `fjall_dir`; [`JournalWriteback::spawn`] starts its
    /// thread.
    pub fn new(fjall_dir: &Path) -> Arc<JournalWriteback> {
        Arc::new(JournalWriteback {
            dir: fjall_dir.to_path_buf(),
            appended: AtomicU64::new(0),
            progress: Progress::new(WRITEBACK_BYTES, 0),
            wake: Mutex::new(Wake::default()),
            cv: Condvar::new(),
        })
    }

    /// Starts the thread (`keel-lsm-writeback`); it runs until [`JournalWriteback::stop`].
    pub fn spawn(self: &Arc<Self>) -> std::io::Result<JoinHandle<()>> {
        let run = Arc::clone(self);
        std::thread::Builder::new()
            .name("keel-lsm-writeback".into())
            .spawn(move || run.run())
    }

    /// Notes a committed batch of `bytes`; wakes the thread once [`WRITEBACK_BYTES`]
    /// have gathered. One committer at a time (fjall's batches are written under keel's
    /// writer lock).
    pub fn note_appended(&self, bytes: u64) {
        let end = self.appended.load(Ordering::Relaxed) + bytes;
        self.appended.store(end, Ordering::Relaxed);
        if self.progress.ask(end) {
            self.wake.lock().due = true;
            self.cv.notify_one();
        }
    }

    /// Writebacks started.
    pub fn count(&self) -> u64 {
        self.progress.count()
    }

    /// Ends the thread (the caller joins it).
    pub fn stop(&self) {
        self.wake.lock().stop = true;
        self.cv.notify_one();
    }

    fn run(&self) {
        // The journal last written back, kept open while fjall appends to it.
        let mut current: Option<(PathBuf, File)> = None;
        loop {
            {
                let mut wake = self.wake.lock();
                while !wake.due && !wake.stop {
                    self.cv.wait(&mut wake);
                }
                if wake.stop {
                    return;
                }
                // Set only when `ask` saw a new MiB: there is always something to start.
                wake.due = false;
            }
            let Some(newest) = newest_journal(&self.dir) else {
                continue;
            };
            if current.as_ref().map(|(p, _)| p) != Some(&newest) {
                current = match File::open(&newest) {
                    Ok(f) => Some((newest, f)),
                    // Rotated and deleted in between: the next wake finds its successor.
                    Err(e) => {
                        tracing::debug!(file = %newest.display(), error = %e, "lsm: journal not opened for writeback");
                        None
                    }
                };
            }
            if let Some((path, file)) = &current {
                // A length of 0 runs to the end of the file.
                self.progress.start(file, path, 0, 0);
            }
        }
    }
}

/// The journal in `dir` with the highest number, which fjall appends to.
fn newest_journal(dir: &Path) -> Option<PathBuf> {
    journal_files(dir)
        .ok()?
        .into_iter()
        .filter_map(|p| {
            let n = p.file_stem()?.to_str()?.parse::<u64>().ok()?;
            Some((n, p))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_journal_is_the_highest_number_not_the_last_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in ["9.jnl", "10.jnl", "11.other", "x.jnl", "2.jnl"] {
            std::fs::write(dir.path().join(name), b"").expect("write");
        }
        assert_eq!(newest_journal(dir.path()), Some(dir.path().join("10.jnl")));
        let empty = tempfile::tempdir().expect("tempdir");
        assert_eq!(newest_journal(empty.path()), None);
    }
}
