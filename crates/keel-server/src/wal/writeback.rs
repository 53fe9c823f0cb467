//! Starting the kernel's writeback of a range of a segment without waiting for it
//! (`sync_file_range(SYNC_FILE_RANGE_WRITE)` on Linux, nothing elsewhere).
//!
//! Under `everysec` and `no` the page cache otherwise holds up to a whole segment of
//! dirty log, which the fdatasync that seals the segment then writes out on the thread
//! running the write funnel's round: 16 MiB segments at SET -P 16 rates stalled every
//! connection of that thread for 10-25 ms a few times a second. Started in the
//! background every `WRITEBACK_BYTES`, the writes are on their way or done when an
//! fdatasync comes (as RocksDB's `wal_bytes_per_sync` and PostgreSQL's `wal_writer_flush_after`).
//! It is only a hint: durability still comes from fdatasync alone, which also reports
//! any write error the started writeback met.

use std::fs::File;

/// Asks the kernel to start writing `len` bytes of `file` from `offset` to the disk.
#[cfg(target_os = "linux")]
pub(super) fn start(file: &File, offset: u64, len: u64) -> std::io::Result<()> {
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
pub(super) fn start(_file: &File, _offset: u64, _len: u64) -> std::io::Result<()> {
    Ok(())
}
