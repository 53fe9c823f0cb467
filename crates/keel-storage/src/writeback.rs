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

/// Bytes appended after which a log's background thread starts their writeback.
pub const WRITEBACK_BYTES: u64 = 1 << 20;

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
