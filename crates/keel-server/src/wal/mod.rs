//! The standalone coordinator's write-ahead log.
//!
//! Every write of a shard becomes one log entry (see `keel_engine::codec`) appended here
//! before it is applied and answered. The log is a directory (`<data-dir>/wal/`) of
//! segment files `wal-{first_index:020}.log`, each a run of records
//! `crc32 u32 LE | len u32 LE | index u64 LE | payload` with indexes rising by one across
//! the whole log (see [`record`]).
//!
//! Durability follows `appendfsync`: under `always` the apply loop appends a batch of
//! entries and flushes them (one write), and the coordinator's acknowledgement thread
//! replies to them after one fdatasync through a [`WalSyncHandle`] covers them
//! ([`Wal::commit`] does both at once); `everysec` leaves the fdatasync to a background
//! thread; `no` leaves it to the OS. Under both, that thread also starts the writeback
//! of every MiB written (see `keel_storage::writeback`), so the fdatasync that seals a full segment on
//! the funnel's thread finds little left to write; under every policy it deletes the
//! segments a snapshot covers ([`Wal::truncate_before_in_background`]). Any failed write or fsync is returned as a
//! [`WalError`] and latches: the caller moves the node to Failed, and the fsync is never
//! retried.
//!
//! Under `always` the active segment carries zeros ahead of its records (see
//! `writer::ZERO_AHEAD`), which sealing and closing cut off. On open, zeros after the
//! last record are a clean end, and a torn tail (the remains of an interrupted write at
//! the end of the last segment) is cut back to the last good record; damage anywhere
//! else stops the open with the file and offset unless [`WalOptions::repair`] is set.
//! Replay streams from the segment that holds the wanted index ([`Wal::entries_after`]),
//! and [`Wal::truncate_before`] drops segments a snapshot covers.

pub mod error;
pub mod reader;
pub mod record;
pub mod recovery;
pub mod segment;
mod sync;
mod truncate;
pub mod writer;

use std::path::{Path, PathBuf};

pub use error::{Result, WalError};
pub use reader::WalEntries;
pub use recovery::{RecoveryReport, Repair, TornTail};
pub use writer::{Wal, WalOptions, WalStats, WalStatsHandle, WalSyncHandle, DEFAULT_SEGMENT_SIZE};

/// Name of the WAL directory inside a node's data directory.
pub const WAL_DIR: &str = "wal";

/// The WAL directory of the data directory `data_dir`.
pub fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(WAL_DIR)
}
