//! Typed errors of the write-ahead log. Each says what was being done, to which file and
//! at which offset, so an operator can find the damage.

use std::path::PathBuf;

/// Result alias of the WAL.
pub type Result<T, E = WalError> = std::result::Result<T, E>;

/// A failure of the write-ahead log.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An I/O call failed. After a failed write or fsync the WAL refuses further writes:
    /// the caller moves the node to Failed (an fsync is never retried, the kernel may
    /// already have dropped the dirty pages it could not write).
    #[error("wal {op} {path} at offset {offset}: {source}")]
    Io {
        /// What was being done ("write", "fdatasync", "open segment", …).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Byte offset in the file (0 where the call concerns the whole file).
        offset: u64,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A record before the tail of the log is damaged, or the indexes skip.
    #[error("wal corrupt in {path} at offset {offset}: {reason} (open with repair to truncate the log there)")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Offset of the first bad record.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// `append` was given an index that does not follow the last one.
    #[error("wal append: index {got} does not follow the last index {last} (expected {expected})")]
    OutOfOrder {
        /// The last index in the log (0 = empty).
        last: u64,
        /// The index the log expects next.
        expected: u64,
        /// The index given.
        got: u64,
    },

    /// A payload larger than a record may carry.
    #[error("wal append: payload of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The payload length.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// Entries asked for are no longer (or not yet) in the log.
    #[error("wal read: entries after {after} requested but the log starts at index {first}")]
    Missing {
        /// The index the reader asked to start after.
        after: u64,
        /// The first index the log holds.
        first: u64,
    },

    /// An earlier write or fsync failed; the WAL takes no more writes.
    #[error("wal failed earlier and refuses writes: {reason}")]
    Failed {
        /// The first failure.
        reason: String,
    },
}

impl WalError {
    /// Builds a [`WalError::Io`].
    pub fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
        offset: u64,
        source: std::io::Error,
    ) -> Self {
        WalError::Io {
            op,
            path: path.into(),
            offset,
            source,
        }
    }

    /// Builds a [`WalError::Corrupt`].
    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        WalError::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }
}
