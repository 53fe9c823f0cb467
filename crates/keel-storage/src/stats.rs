//! Numbers a store reports about itself (for INFO, metrics and merge decisions).

use crate::lifecycle::LifecycleState;
use crate::options::EngineKind;

/// A point-in-time summary of a store.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageStats {
    /// Which engine.
    pub engine: EngineKind,
    /// Lifecycle state when the stats were taken.
    pub state: LifecycleState,
    /// Sequence number of the last applied batch.
    pub last_seq: u64,
    /// Live (visible, non-deleted) keys at the latest state.
    pub live_keys: u64,
    /// Sum of live keys' key and value lengths.
    pub live_bytes: u64,
    /// Bytes the store occupies on disk (0 for memory without checkpoints).
    pub disk_bytes: u64,
    /// Fraction of disk bytes that merge/compaction could reclaim (0.0–1.0).
    pub garbage_ratio: f64,
    /// Value-cache hits since open.
    pub cache_hits: u64,
    /// Value-cache misses since open.
    pub cache_misses: u64,
    /// Row-cache hits since open (lsm: point reads answered without fjall; 0 elsewhere).
    pub row_cache_hits: u64,
    /// Row-cache misses since open.
    pub row_cache_misses: u64,
    /// Bytes the row cache holds, as counted against its budget.
    pub row_cache_bytes: u64,
    /// Snapshots currently open.
    pub open_snapshots: u64,
    /// Key versions held only for open snapshots (MVCC engines; 0 where unknown).
    pub retained_versions: u64,
    /// Bytes dropped from torn file tails during the last open.
    pub torn_bytes_dropped: u64,
    /// Threads flushing and compacting in the background (lsm: fjall's workers; 0 for
    /// the other engines).
    pub background_threads: u64,
    /// Bytes in memtables, not yet written to tables (lsm).
    pub write_buffer_bytes: u64,
    /// Sealed memtables waiting for their flush (lsm).
    pub pending_flushes: u64,
    /// Table files (lsm).
    pub tables: u64,
    /// Compactions running now (lsm).
    pub active_compactions: u64,
    /// Compactions finished since open (lsm).
    pub compactions_completed: u64,
    /// Writebacks of the engine's log started in the background since open, so that
    /// its fsyncs find little dirty (bitcask's data segments, lsm's journal).
    pub writebacks: u64,
}

impl StorageStats {
    /// Zeroed stats for `engine` in `state`.
    pub fn empty(engine: EngineKind, state: LifecycleState) -> Self {
        StorageStats {
            engine,
            state,
            last_seq: 0,
            live_keys: 0,
            live_bytes: 0,
            disk_bytes: 0,
            garbage_ratio: 0.0,
            cache_hits: 0,
            cache_misses: 0,
            row_cache_hits: 0,
            row_cache_misses: 0,
            row_cache_bytes: 0,
            open_snapshots: 0,
            retained_versions: 0,
            torn_bytes_dropped: 0,
            background_threads: 0,
            write_buffer_bytes: 0,
            pending_flushes: 0,
            tables: 0,
            active_compactions: 0,
            compactions_completed: 0,
            writebacks: 0,
        }
    }
}
