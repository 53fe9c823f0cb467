//! Typed errors of the storage layer. Every variant says which operation failed and,
//! where a file is involved, which file and offset.

use std::path::PathBuf;

/// Result alias of the storage layer.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// An error of the storage layer, with enough context to act on it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An I/O call failed; `op` names what was being done.
    #[error("{op} {path}: {source}")]
    Io {
        /// The operation, e.g. "append to segment" or "fsync".
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// A record failed its checksum or has an impossible shape before the tail of a file.
    #[error("corrupt data in {path} at offset {offset}: {reason} (open with repair to truncate the file there)")]
    Corrupt {
        /// The file that holds the bad record.
        path: PathBuf,
        /// Byte offset of the first bad record.
        offset: u64,
        /// What was wrong with it.
        reason: String,
    },

    /// Another process (or another open in this process) holds the data directory.
    #[error("data directory {path} is locked by pid {pid}")]
    Locked {
        /// The data directory.
        path: PathBuf,
        /// The process id written in the lock file (0 if unreadable).
        pid: u32,
    },

    /// The store hit an unrecoverable I/O error earlier; writes are refused, reads work.
    #[error("storage is in the Failed state, writes are refused: {reason}")]
    Failed {
        /// Why the store failed.
        reason: String,
    },

    /// The caller asked for something the store cannot do with these arguments.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The store was closed.
    #[error("storage is closed")]
    Closed,

    /// An error reported by the LSM library, with the operation that hit it.
    #[error("lsm {op}: {message}")]
    Lsm {
        /// The operation, e.g. "open" or "write batch".
        op: &'static str,
        /// The library's message.
        message: String,
    },
}

impl StorageError {
    /// Builds an [`StorageError::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds a [`StorageError::Corrupt`] for the record at `offset` of `path`.
    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        StorageError::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// True for errors that must move the store to the Failed state (the disk or the file
    /// system misbehaved; retrying could only make things worse).
    pub fn is_fatal_io(&self) -> bool {
        matches!(self, StorageError::Io { .. })
    }
}

/// Helper to attach operation and path context to `std::io::Result`.
pub trait IoContext<T> {
    /// Maps an I/O error to [`StorageError::Io`] with `op` and `path`.
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| StorageError::io(op, path, e))
    }
}
