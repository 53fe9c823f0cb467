//! Result types of the engine measurements and the small bits of arithmetic on them
//! (rates, percentiles).

use std::time::Duration;

use crate::physical::RawSync;

/// A count of operations done in some wall time.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Operations done.
    pub ops: u64,
    /// Wall time they took.
    pub elapsed: Duration,
}

impl Rate {
    /// Operations per second.
    pub fn per_s(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Mean time per operation.
    pub fn mean(&self) -> Duration {
        if self.ops == 0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(self.elapsed.as_secs_f64() / self.ops as f64)
    }
}

/// Per-operation latencies of a sample, summarised.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Median, in nanoseconds.
    pub p50_ns: u64,
    /// 99th percentile, in nanoseconds.
    pub p99_ns: u64,
}

impl Latency {
    /// Summarises `ns` (sorted in place); None for an empty sample.
    pub fn from_samples(ns: &mut [u64]) -> Option<Latency> {
        if ns.is_empty() {
            return None;
        }
        ns.sort_unstable();
        let at = |pct: usize| ns[((ns.len() - 1) * pct) / 100];
        Some(Latency {
            p50_ns: at(50),
            p99_ns: at(99),
        })
    }
}

/// Random point gets against a loaded store.
#[derive(Debug, Clone, Copy)]
pub struct GetFigures {
    /// Throughput over the whole run (no per-op timing).
    pub rate: Rate,
    /// Per-op latencies of a separate sample.
    pub latency: Option<Latency>,
    /// Gets in that sample.
    pub samples: usize,
    /// Gets that found no value (should be 0: every key asked for was loaded).
    pub misses: u64,
}

/// Forward scans from random starts.
#[derive(Debug, Clone, Copy)]
pub struct ScanFigures {
    /// Scans done in the elapsed time.
    pub rate: Rate,
    /// Keys returned over all scans.
    pub keys: u64,
}

/// Synced writers at one (threads, batch size) point.
#[derive(Debug, Clone, Copy)]
pub struct SyncFigures {
    /// Writer threads.
    pub writers: usize,
    /// Ops per batch.
    pub batch: usize,
    /// Batches acknowledged (each synced) in the elapsed time.
    pub batches: Rate,
    /// Raw append+fdatasync at the same batch size, interleaved with this run's slices.
    pub raw: Option<RawSync>,
}

impl SyncFigures {
    /// Ops (puts) per second.
    pub fn ops_per_s(&self) -> f64 {
        self.batches.per_s() * self.batch as f64
    }
}

/// Heap held by a loaded store.
#[derive(Debug, Clone, Copy)]
pub struct MemFigures {
    /// Keys loaded.
    pub keys: u64,
    /// Live heap bytes after loading minus before (store already open and empty before).
    pub bytes: i64,
    /// Live heap blocks after minus before.
    pub blocks: i64,
}

impl MemFigures {
    /// Heap bytes per key.
    pub fn per_key(&self) -> f64 {
        self.bytes as f64 / self.keys.max(1) as f64
    }

    /// Heap blocks per key.
    pub fn blocks_per_key(&self) -> f64 {
        self.blocks as f64 / self.keys.max(1) as f64
    }
}

/// One timed open of a store holding `keys` keys.
#[derive(Debug, Clone)]
pub struct OpenFigure {
    /// What was opened (e.g. "with hints").
    pub label: String,
    /// Wall time of `keel_storage::open`.
    pub elapsed: Duration,
    /// CPU time the process used meanwhile (all threads; 10 ms resolution).
    pub cpu: Option<Duration>,
    /// Live keys the store reported after opening.
    pub live_keys: u64,
    /// Heap the open left allocated (live bytes after − before), i.e. the store's
    /// steady-state index after a restart (caches are still empty at this point).
    pub heap_bytes: i64,
}

impl OpenFigure {
    /// Heap bytes per key after the open.
    pub fn heap_per_key(&self, keys: u64) -> f64 {
        self.heap_bytes as f64 / keys.max(1) as f64
    }
}

/// A merge/compaction over a store with 50% garbage.
#[derive(Debug, Clone, Copy)]
pub struct MergeFigures {
    /// Directory bytes before the merge.
    pub dir_bytes_before: u64,
    /// Directory bytes after it.
    pub dir_bytes_after: u64,
    /// Bytes of files the merge removed or rewrote (what it had to read).
    pub bytes_read: u64,
    /// Bytes of files the merge created or grew (what it wrote).
    pub bytes_written: u64,
    /// Wall time of `compact()`.
    pub elapsed: Duration,
    /// CPU time the process used meanwhile (all threads; 10 ms resolution).
    pub cpu: Option<Duration>,
    /// Garbage ratio the engine reported before merging.
    pub garbage_ratio_before: f64,
}

impl MergeFigures {
    /// Read throughput, MB (10^6 bytes) per second.
    pub fn read_mb_per_s(&self) -> f64 {
        self.bytes_read as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Write throughput, MB (10^6 bytes) per second.
    pub fn written_mb_per_s(&self) -> f64 {
        self.bytes_written as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }
}
