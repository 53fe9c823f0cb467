//! Starting the kernel's writeback of a range of an append-only file without waiting for
//! it (`sync_file_range(SYNC_FILE_RANGE_WRITE)` on Linux, nothing elsewhere).
//!
//! Without it the page cache holds up to a whole segment of dirty log between
//! fdatasyncs, and the fdatasync that seals a segment writes it all out on the thread
//! that appends: keel's WAL spent 5.8-9.9 ms per 16 MiB seal under SET -P 16. Started in
//! the background every [`WRITEBACK_BYTES`], the writes are on their way or done when an
//! fdatasync comes (as RocksDB's `bytes_per_sync` and PostgreSQL's
//! `wal_writer_flush_after`). It is only a hint: durability still comes from fdatasync
//! alone, which also reports any write error the started writeback met.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes appended after which a log's background thread starts their writeback.
pub const WRITEBACK_BYTES: u64 = 1 << 20;

/// Where an appended file's writeback stands, in positions that grow with its appends
/// (its bytes, or a log's sequence numbers that map onto them): up to where it was
/// asked for, up to where it was started, and how many were started. The WAL, bitcask's
/// segments, the memory checkpoint and the lsm engine's journal keep one each.
#[derive(Debug)]
pub struct Progress {
    step: u64,
    asked: AtomicU64,
    started: AtomicU64,
    count: AtomicU64,
}

impl Progress {
    /// A writeback every `step` bytes appended, counted from position `at`.
    pub fn new(step: u64, at: u64) -> Self {
        Progress {
            step,
            asked: AtomicU64::new(at),
            started: AtomicU64::new(at),
            count: AtomicU64::new(0),
        }
    }

    /// Starts over at `at` (appends went on in a new file).
    pub fn reset(&self, at: u64) {
        self.asked.store(at, Ordering::Relaxed);
        self.started.store(at, Ordering::Relaxed);
    }

    /// Notes that appends reached `end`: true once `step` bytes gathered since it last
    /// said so (the caller then starts the writeback, or wakes the thread that does).
    /// One appender at a time.
    pub fn ask(&self, end: u64) -> bool {
        let due = end >= self.asked.load(Ordering::Relaxed) + self.step;
        if due {
            self.asked.store(end, Ordering::Relaxed);
        }
        due
    }

    /// Marks everything up to `end` started and returns where the part not started yet
    /// begins (no lower than `floor`, where the current file begins), or None when
    /// nothing below `end` is new.
    pub fn take(&self, end: u64, floor: u64) -> Option<u64> {
        let from = self.started.swap(end, Ordering::Relaxed).max(floor);
        (end > from).then_some(from)
    }

    /// Starts the writeback of `len` bytes of `file` (at `path`) from `offset`, counted
    /// when the kernel takes it. A refusal is only logged: the next fdatasync writes the
    /// range and reports any error.
    pub fn start(&self, file: &File, path: &Path, offset: u64, len: u64) {
        match start(file, offset, len) {
            Ok(()) => {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!(file = %path.display(), offset, error = %e, "writeback not started")
            }
        }
    }

    /// Writebacks started.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to the disk.
#[cfg(target_os = "linux")]
pub fn start(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    };
    // SAFETY: the descriptor belongs to `file`, which the borrow keeps open for the call;
    // the call reads no memory of ours.
    let rc = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to the disk.
#[cfg(not(target_os = "linux"))]
pub fn start(_file: &File, _offset: u64, _len: u64) -> std::io::Result<()> {
    Ok(())
}
