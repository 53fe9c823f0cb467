//! Errors of the engine layer. A command's user-facing failure (wrong type, syntax, …) is
//! a [`crate::reply::Reply::Error`], not an `EngineError`; `EngineError` is for what goes
//! wrong underneath (storage I/O, corrupt records).

/// Result alias of the engine layer.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// A failure below the command level.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The storage layer failed.
    #[error(transparent)]
    Storage(#[from] keel_storage::StorageError),

    /// A stored record could not be decoded: the database is damaged or was written by
    /// an incompatible version.
    #[error("corrupt {what} record for key {key:?}: {reason}")]
    CorruptRecord {
        /// Which kind of record ("metadata", "list element", …).
        what: &'static str,
        /// The storage key, shown lossily.
        key: String,
        /// What was wrong.
        reason: String,
    },
}

impl EngineError {
    /// Builds a [`EngineError::CorruptRecord`].
    pub fn corrupt(what: &'static str, key: &[u8], reason: impl Into<String>) -> Self {
        EngineError::CorruptRecord {
            what,
            key: String::from_utf8_lossy(key).into_owned(),
            reason: reason.into(),
        }
    }
}

/// Why a command did not produce its normal reply: an error reply for the client
/// (wrong type, syntax, …) or a failure underneath.
#[derive(Debug)]
pub enum CmdError {
    /// Send this reply (an error reply); the command's writes are rolled back.
    Reply(crate::reply::Reply),
    /// Storage or decoding failed; the whole entry fails.
    Engine(EngineError),
}

impl From<EngineError> for CmdError {
    fn from(e: EngineError) -> Self {
        CmdError::Engine(e)
    }
}

impl From<keel_storage::StorageError> for CmdError {
    fn from(e: keel_storage::StorageError) -> Self {
        CmdError::Engine(EngineError::Storage(e))
    }
}

impl From<crate::reply::Reply> for CmdError {
    fn from(r: crate::reply::Reply) -> Self {
        CmdError::Reply(r)
    }
}

/// Result of a command handler.
pub type CmdResult<T> = std::result::Result<T, CmdError>;

/// Shorthand for failing a command with the error text `text`.
pub fn fail<T>(text: impl Into<String>) -> CmdResult<T> {
    Err(CmdError::Reply(crate::reply::Reply::Error(text.into())))
}
