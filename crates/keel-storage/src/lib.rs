//! keel's storage layer: one ordered byte key-value trait ([`Storage`]) with atomic
//! batches, point-in-time snapshots and explicit durability, and three engines behind it:
//! `memory`, `bitcask` (keel's own) and `lsm` (fjall).
//!
//! This crate knows nothing of Redis; the engine crate encodes Redis types on it.

pub mod batch;
pub mod cache_hint;
pub mod dirlock;
pub mod error;
pub mod hashed_index;
pub mod key_hash;
pub mod key_order;
pub mod lifecycle;
pub mod mvcc;
pub mod options;
pub mod order_tree;
pub mod range;
pub mod scan_iter;
mod slot_lock;
pub mod snapshot_registry;
pub mod stats;
pub mod storage;
pub mod thin_value;
pub mod writeback;

pub mod bitcask;
pub mod lsm;
pub mod memory;

use std::path::Path;
use std::sync::Arc;

pub use batch::{BatchOp, WriteBatch};
pub use error::{Result, StorageError};
pub use lifecycle::LifecycleState;
pub use options::{BitcaskOptions, EngineKind, LsmOptions, OpenOptions, SyncPolicy, WriteOptions};
pub use range::{Direction, ScanRange};
pub use stats::StorageStats;
pub use storage::{KeyAt, KeyCounts, KvIter, KvPair, Snapshot, Storage, ValueRef, WriterSession};

/// Opens (creating if needed) the store in `dir` with the engine `opts.engine`.
pub fn open(dir: &Path, opts: &OpenOptions) -> Result<Arc<dyn Storage>> {
    match opts.engine {
        EngineKind::Memory => Ok(Arc::new(memory::MemoryEngine::open(dir, opts)?)),
        EngineKind::Bitcask => Ok(Arc::new(bitcask::Bitcask::open(dir, opts)?)),
        EngineKind::Lsm => Ok(Arc::new(lsm::LsmEngine::open(dir, opts)?)),
    }
}
