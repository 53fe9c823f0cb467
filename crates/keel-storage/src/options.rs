//! Options that choose an engine and tune its durability and resource use.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::StorageError;

/// Which engine backs a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// Ordered in-memory map; durable only through the log above it and checkpoints.
    Memory,
    /// keel's own Bitcask: append-only CRC'd segments, in-memory key directory.
    Bitcask,
    /// LSM tree (fjall), for data larger than memory.
    Lsm,
}

impl EngineKind {
    /// All engines, for suites that run against each.
    pub const ALL: [EngineKind; 3] = [EngineKind::Memory, EngineKind::Bitcask, EngineKind::Lsm];

    /// The engine's name as used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Memory => "memory",
            EngineKind::Bitcask => "bitcask",
            EngineKind::Lsm => "lsm",
        }
    }

    /// True when the engine keeps nothing of its own between checkpoints: its writes
    /// outlive the process only through [`crate::Storage::checkpoint`].
    pub fn checkpoint_only(self) -> bool {
        matches!(self, EngineKind::Memory)
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EngineKind {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "memory" => Ok(EngineKind::Memory),
            "bitcask" => Ok(EngineKind::Bitcask),
            "lsm" => Ok(EngineKind::Lsm),
            other => Err(StorageError::InvalidArgument(format!(
                "unknown engine '{other}' (expected memory, bitcask or lsm)"
            ))),
        }
    }
}

/// When written data is forced to stable storage (the names of Redis's appendfsync).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SyncPolicy {
    /// Every write is fsynced before it returns (concurrent writers share one fsync).
    Always,
    /// A background task fsyncs once a second; a crash loses at most about a second.
    #[default]
    EverySec,
    /// keel never fsyncs on its own; the OS decides.
    No,
}

impl SyncPolicy {
    /// The policy's name as used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncPolicy::Always => "always",
            SyncPolicy::EverySec => "everysec",
            SyncPolicy::No => "no",
        }
    }
}

impl fmt::Display for SyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SyncPolicy {
    type Err = StorageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "always" => Ok(SyncPolicy::Always),
            "everysec" => Ok(SyncPolicy::EverySec),
            "no" => Ok(SyncPolicy::No),
            other => Err(StorageError::InvalidArgument(format!(
                "unknown sync policy '{other}' (expected always, everysec or no)"
            ))),
        }
    }
}

/// Per-write options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOptions {
    /// Force this write to stable storage before returning, whatever the policy.
    pub sync: bool,
}

impl WriteOptions {
    /// A write that is fsynced before it returns.
    pub const SYNC: WriteOptions = WriteOptions { sync: true };
    /// A write that follows the store's sync policy.
    pub const DEFAULT: WriteOptions = WriteOptions { sync: false };
}

/// Tuning of the Bitcask engine.
#[derive(Debug, Clone, PartialEq)]
pub struct BitcaskOptions {
    /// The active segment is closed and a new one started past this size.
    pub max_segment_bytes: u64,
    /// Byte budget of the value cache (CLOCK eviction, an LRU approximation; 0 turns it off).
    pub cache_bytes: usize,
    /// Merge starts in the background when garbage / total bytes on disk exceeds this.
    pub merge_garbage_ratio: f64,
    /// ...and at least this many garbage bytes exist (avoids merging tiny stores).
    pub merge_min_garbage_bytes: u64,
    /// How often the background task checks whether to merge.
    pub merge_check_interval: Duration,
    /// Whether the background merge task runs at all (tests drive merge by hand).
    pub auto_merge: bool,
}

impl Default for BitcaskOptions {
    fn default() -> Self {
        BitcaskOptions {
            max_segment_bytes: 128 * 1024 * 1024,
            cache_bytes: 64 * 1024 * 1024,
            merge_garbage_ratio: 0.5,
            merge_min_garbage_bytes: 64 * 1024 * 1024,
            merge_check_interval: Duration::from_secs(10),
            auto_merge: true,
        }
    }
}

/// Tuning of the LSM engine.
#[derive(Debug, Clone, PartialEq)]
pub struct LsmOptions {
    /// Block cache size in bytes.
    pub cache_bytes: u64,
    /// Row cache size in bytes: the newest values of recently written and read keys,
    /// which point reads take without a seek through fjall (0: none).
    pub row_cache_bytes: u64,
}

impl Default for LsmOptions {
    fn default() -> Self {
        LsmOptions {
            cache_bytes: 32 * 1024 * 1024,
            row_cache_bytes: 32 * 1024 * 1024,
        }
    }
}

/// Everything needed to open a store.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenOptions {
    /// Which engine.
    pub engine: EngineKind,
    /// Durability policy for writes that do not ask for sync themselves.
    pub sync_policy: SyncPolicy,
    /// On corruption before the tail, truncate there (losing what follows) instead of failing.
    pub repair: bool,
    /// Bitcask tuning.
    pub bitcask: BitcaskOptions,
    /// LSM tuning.
    pub lsm: LsmOptions,
}

impl OpenOptions {
    /// Defaults for `engine`.
    pub fn new(engine: EngineKind) -> Self {
        OpenOptions {
            engine,
            sync_policy: SyncPolicy::default(),
            repair: false,
            bitcask: BitcaskOptions::default(),
            lsm: LsmOptions::default(),
        }
    }

    /// Sets the sync policy.
    pub fn sync_policy(mut self, policy: SyncPolicy) -> Self {
        self.sync_policy = policy;
        self
    }

    /// Sets the cache budget of the engines that keep one: bitcask's value cache, and
    /// lsm's block and row caches, half each (the memory engine holds everything anyway).
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.bitcask.cache_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        self.lsm.row_cache_bytes = bytes / 2;
        self.lsm.cache_bytes = bytes - bytes / 2;
        self
    }

    /// Sets repair mode.
    pub fn repair(mut self, repair: bool) -> Self {
        self.repair = repair;
        self
    }
}
