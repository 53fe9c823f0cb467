//! Start-up: open storage and the engine, open the WAL, and replay the entries the store
//! has not applied yet, each with the context it was logged with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_engine::codec::{decode_entry, CodecError};
use keel_engine::{Engine, EngineError};
use keel_storage::{EngineKind, OpenOptions, StorageError, SyncPolicy};

use crate::config::Config;
use crate::wal::{wal_dir, Wal, WalError, WalOptions, DEFAULT_SEGMENT_SIZE};

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Storage failed to open.
    #[error("storage ({engine}) in {path}: {source}")]
    Storage {
        /// Engine name.
        engine: EngineKind,
        /// Its directory.
        path: PathBuf,
        /// Why.
        source: StorageError,
    },
    /// The engine could not read its applied index or apply a replayed entry.
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    /// The WAL could not be opened or read.
    #[error("{0}")]
    Wal(#[from] WalError),
    /// A WAL entry did not decode.
    #[error("wal entry {index}: {source}")]
    Codec {
        /// Its index.
        index: u64,
        /// Why.
        source: CodecError,
    },
    /// An entry's own index disagrees with its position in the log.
    #[error("wal entry at index {index} carries index {carried}")]
    IndexMismatch {
        /// Position in the log.
        index: u64,
        /// Index stamped in the entry.
        carried: u64,
    },
    /// The coordinator thread could not be started.
    #[error("cannot start thread {name}: {source}")]
    Thread {
        /// Thread name.
        name: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// What recovery opened and found.
pub struct Recovered {
    /// The engine over the opened storage.
    pub engine: Engine,
    /// The WAL, ready for appends after `last_index`.
    pub wal: Wal,
    /// Last index applied (from storage or replay).
    pub last_index: u64,
    /// Latest entry time seen, so the clock never runs backwards across restarts.
    pub last_now_ms: u64,
    /// Storage's applied index before replay.
    pub storage_index: u64,
    /// Entries replayed from the WAL.
    pub replayed: u64,
    /// Time the whole recovery took.
    pub took: Duration,
    /// Where the storage lives (the memory engine's checkpoint goes there too).
    pub storage_dir: PathBuf,
}

/// The storage directory of engine `kind` inside the data directory: one per engine so
/// switching engines never reads another engine's files.
pub fn storage_dir(data_dir: &Path, kind: EngineKind) -> PathBuf {
    data_dir.join(kind.as_str())
}

/// WAL segment size for a snapshot trigger of `auto_bytes`: several segments per
/// trigger, so truncation frees most of the log.
pub fn segment_size_for(auto_bytes: u64) -> u64 {
    if auto_bytes == 0 {
        DEFAULT_SEGMENT_SIZE
    } else {
        (auto_bytes / 4).clamp(1 << 20, DEFAULT_SEGMENT_SIZE)
    }
}

/// Opens storage, engine and WAL in `cfg.dir` and replays the log.
pub fn recover(
    cfg: &Config,
    gates: Option<Arc<dyn keel_engine::gate::CallGates>>,
) -> Result<Recovered, StartError> {
    let started = Instant::now();
    let sdir = storage_dir(&cfg.dir, cfg.engine);
    std::fs::create_dir_all(&sdir).map_err(|source| StartError::DataDir {
        path: sdir.clone(),
        source,
    })?;
    // The WAL is the durability of record: storage need not fsync on its own. Snapshots
    // sync it before the WAL is truncated.
    let opts = OpenOptions::new(cfg.engine)
        .sync_policy(SyncPolicy::No)
        .cache_bytes(cfg.cache_size);
    let store = keel_storage::open(&sdir, &opts).map_err(|source| StartError::Storage {
        engine: cfg.engine,
        path: sdir.clone(),
        source,
    })?;
    let engine = Engine::new(store)?;
    // Before the replay: a gated entry's calls are checked on replay as they were live.
    if let Some(g) = gates {
        engine.set_call_gates(g);
    }
    let storage_index = engine.applied_index();
    let wopts = WalOptions::default()
        .sync(cfg.appendfsync)
        .segment_size(segment_size_for(cfg.auto_snapshot_wal_bytes));
    let (mut wal, report) = Wal::open(wal_dir(&cfg.dir), wopts)?;
    tracing::debug!(?report, "wal opened");
    if wal.last_index() < storage_index {
        // A crash under everysec/no can leave the store ahead of the log: everything the
        // log holds is in the store already.
        // With the log off (appendonly no) the store always moves on without it.
        if cfg.appendonly {
            tracing::warn!(
                wal_last = wal.last_index(),
                storage_index,
                "wal ends before the store's applied index; starting the wal after it"
            );
        }
        wal.restart_after(storage_index)?;
    }
    let mut replayed = 0u64;
    let mut last_index = storage_index;
    let mut last_now_ms = 0u64;
    // Replayed in groups like the apply loop writes them: one storage batch per group.
    let mut group = engine.group();
    for item in wal.entries_after(storage_index) {
        let (index, payload) = item?;
        let (ctx, op) =
            decode_entry(&payload).map_err(|source| StartError::Codec { index, source })?;
        if ctx.seq != index {
            return Err(StartError::IndexMismatch {
                index,
                carried: ctx.seq,
            });
        }
        engine.apply_in(&mut group, &ctx, &op)?;
        if group.is_full() {
            engine.write_group(std::mem::replace(&mut group, engine.group()))?;
        }
        last_index = index;
        last_now_ms = last_now_ms.max(ctx.now_ms);
        replayed += 1;
    }
    engine.write_group(group)?;
    let last_index = last_index.max(wal.last_index());
    Ok(Recovered {
        engine,
        wal,
        last_index,
        last_now_ms,
        storage_index,
        replayed,
        took: started.elapsed(),
        storage_dir: sdir,
    })
}
