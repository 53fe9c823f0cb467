//! The LSM engine: keel's [`Storage`] on fjall, for data larger than memory.
//!
//! # Layout
//!
//! `<dir>/LOCK` is keel's directory lock (taken before fjall is touched, so a second
//! opener gets "locked by pid N"); fjall's own files live in `<dir>/lsm/`. Two fjall
//! keyspaces: `keel_data` holds keel's versions (see [`keys`]) and `keel_meta` holds one
//! key, `seq`, keel's sequence number as 8 big-endian bytes. Every batch writes `seq` in
//! the same fjall batch as its data, so the sequence number is exactly as durable as the
//! data.
//!
//! # Versions and visibility: keel's MVCC, not fjall's
//!
//! fjall 3.1's snapshots are not stable while memtables flush and tables compact (a
//! snapshot read twice can differ), so keel uses fjall only as an ordered store with
//! atomic batches and keeps versions itself. Every batch gets the next sequence number
//! and stores each of its keys as a new fjall key `key | !seq | kind` ([`keys`]); a stored
//! key is written once and never overwritten. Writers are serialised; after fjall's commit
//! returns, the sequence number is published in a [`SnapshotRegistry`]. Every read runs at
//! a published sequence number `S` (the latest one for `get` and `scan`, a pinned one for
//! snapshots and scan iterators) and takes, per key, the newest version at or below `S`
//! ([`versions`]); a batch fjall has only half applied, or any later batch, has versions
//! above `S` and is invisible by construction. Reads use plain fjall iterators: as no
//! stored key is ever written twice, fjall never has to choose between versions of one of
//! its keys, which is where its views went wrong (a plain iterator over distinct,
//! never-rewritten keys stayed exact under memtable rotation, flushes and major
//! compactions in a stress probe that broke fjall snapshots of overwritten keys).
//!
//! Old versions are reclaimed below the horizon (the oldest pinned sequence number) by a
//! compaction filter, in fjall's background compactions and in `compact`'s major
//! compaction ([`gc`]); keel never deletes or overwrites a stored key.
//!
//! # Durability
//!
//! Each batch is appended to fjall's journal and handed to the OS (`PersistMode::Buffer`)
//! before `write` returns, so a process crash loses nothing; power loss loses what was
//! not fsynced. `always` and `WriteOptions::sync` fsync before returning, with concurrent
//! writers sharing fsyncs ([`group_commit`]); `everysec` fsyncs from a background thread
//! once a second; `no` never fsyncs on its own. Under `everysec` and `no` a thread starts
//! the kernel's writeback of the journal every MiB of batches ([`journal_writeback`]),
//! so that fjall's own fsync of it, made under its journal lock when it flushes a
//! memtable, finds little to write. The fsync is `fdatasync` on the journal:
//! fjall preallocates journal files and fsyncs each new file and its directory when it
//! creates them, so appends change no metadata that `fdatasync` would skip.
//!
//! # Recovery and corruption: what fjall 3.1 does, and what keel adds
//!
//! Journal format: a batch is `Start{count, seqno}`, its items, then `End{xxh3-64 of
//! the items}` followed by the 4 bytes `FJL\x03`; files are preallocated (sparse, 64
//! MiB). On open fjall replays the journals and:
//! - **torn tail** (the file ends, or turns to zeros, inside a batch): it stops at the
//!   first entry that does not decode, truncates the journal to the end of the last
//!   complete batch and opens. An unterminated batch is discarded whole, so batches are
//!   all-or-nothing across a crash. keel relies on this.
//! - **flipped byte in an item's key or value, keyspace id or in an `End` checksum**:
//!   the batch checksum fails and fjall refuses to open (`ChecksumMismatch`, no file or
//!   offset), even when that batch is the last one; it has no repair mode. A wrong item
//!   count fails the same way (`InsufficientLength` / `TooManyItems`).
//! - **flipped byte in an entry tag, value type, compression tag, key or stored-value
//!   length, or an `End` trailer**: decoding fails, which fjall cannot tell from a torn
//!   tail, so it **silently truncates the journal there and opens, dropping that batch
//!   and every later one, fsynced or not**.
//! - **flipped byte in a `Start` seqno**: not covered by any checksum; fjall replays the
//!   batch under the wrong sequence number (a raised one makes it shadow later writes).
//!
//! keel therefore walks the journals itself before fjall opens them
//! ([`journal_check`]): it mirrors fjall's framing, verifies every batch checksum and
//! that sequence numbers rise, and looks past the point where fjall would cut for
//! further complete batches. Damage before the tail stops the open with
//! [`StorageError::Corrupt`] naming the journal file and the offset of the first bad
//! batch; with `OpenOptions::repair` keel cuts the journal there (or lets fjall cut) and
//! opens with the batches before it. A cut explained by a crash (an all-zero sector,
//! i.e. unsynced pages that never reached the disk) is treated as a torn tail, including
//! a last batch whose checksum fails because a sector inside it was never written.
//! `stats().torn_bytes_dropped` reports what was cut. A damaged last batch whose
//! trailer no longer decodes is indistinguishable from a torn tail and is dropped.
//!
//! SST tables: every block carries an xxh3-128 checksum of its data and a checksum of
//! its header, verified whenever the block is read. Damage in a data block is reported
//! by the reads that load it (get/scan fail with [`StorageError::Lsm`] naming the
//! operation, the store stays up, other blocks stay readable); damage in blocks read at
//! open (table metadata, pinned index and filter blocks) makes `open` fail with
//! `ChecksumMismatch` (no file or offset). Tables are written once and fsynced before
//! the version file names them, so they have no torn tail.
//!
//! # Stats
//!
//! `live_keys` is fjall's O(1) *approximate* count of stored versions: it includes
//! overwritten versions and tombstones not yet collected, so it lies between the number of
//! live keys and the number of versions written, and is exact after `compact` with no open
//! snapshot (which collects every shadowed version and tombstone, then major-compacts).
//! `live_bytes` and `garbage_ratio` are not exposed by fjall and are reported as 0.
//! `cache_hits`/`cache_misses` count table block loads served by fjall's block cache
//! and loads that went to disk (fjall's experimental metrics); `row_cache_*` are the row
//! cache's ([`row_cache`]), whose hits load no block at all. `disk_bytes` is the
//! space actually allocated under `<dir>/lsm`.

pub mod gc;
pub mod group_commit;
pub mod journal_check;
mod journal_writeback;
pub mod keys;
pub mod row_cache;
pub mod versions;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use parking_lot::{Mutex, RwLock};

use crate::batch::{BatchOp, WriteBatch};
use crate::dirlock::DirLock;
use crate::error::{Result, StorageError};
use crate::lifecycle::{Lifecycle, LifecycleState};
use crate::mvcc::{Pin, SnapshotRegistry};
use crate::options::{EngineKind, OpenOptions, SyncPolicy, WriteOptions};
use crate::range::{Direction, ScanRange};
use crate::stats::StorageStats;
use crate::storage::{KvIter, KvPair, Snapshot, Storage};

use gc::{GcFilterFactory, GcHorizon};
use group_commit::Syncer;
use journal_writeback::JournalWriteback;
use keys::Kind;
use row_cache::RowCache;
use versions::{Resolved, Resolver};

/// Sub-directory of the data directory that holds fjall's files.
pub const FJALL_DIR: &str = "lsm";
const DATA_KEYSPACE: &str = "keel_data";
const META_KEYSPACE: &str = "keel_meta";
const SEQ_KEY: &[u8] = b"seq";
/// The meta keyspace gets one version of `seq` per batch; a small memtable flushes them
/// (and lets compaction drop the old ones) long before they add up.
const META_MEMTABLE_BYTES: u64 = 4 * 1024 * 1024;
/// How often `everysec` fsyncs.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// A checkpoint copies in batches of at most this many bytes...
const CHECKPOINT_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// ...or this many entries.
const CHECKPOINT_BATCH_ENTRIES: usize = 16 * 1024;
/// Cache of the temporary engine a checkpoint writes through.
const CHECKPOINT_CACHE_BYTES: u64 = 8 * 1024 * 1024;
/// A point read retries this often when a collection overtakes it, then pins.
const GET_RETRIES: usize = 2;
/// `compact` gives up waiting for the memtable flush after this long.
const FLUSH_WAIT_LIMIT: Duration = Duration::from_secs(300);

/// fjall's background (flush and compaction) threads on a machine of `cores`: one per
/// core up to four, as fjall picks, but never fewer than two.
///
/// Why two: fjall 3.1's worker, on a request to seal a full memtable, seals it and then
/// sends itself a flush request on the same bounded queue it reads. Writers put a seal
/// request on that queue with every batch while the memtable is over its size, so under
/// write load the queue can be full at that moment, and a lone worker then waits
/// forever on its own queue: no memtable is flushed again and memory grows without
/// bound. Seen with one worker on two cores (SET -P 16, 100k keys: RSS 332 MB to 1.4 GB
/// in 30 s, the worker parked in `flume::Sender::send` under
/// `Keyspace::inner_rotate_memtable`); fjall itself picks one worker where the process
/// may use one core (a 1-CPU machine, or a container limited to one). A second worker
/// drains the queue. Its cost there: while one compacts, fjall's first worker puts
/// compaction requests back on the queue in a loop.
fn background_threads(cores: usize) -> usize {
    cores.clamp(2, 4)
}

/// Maps a fjall error to keel's, naming the operation.
fn map_err(op: &'static str, path: &Path, e: fjall::Error) -> StorageError {
    match e {
        fjall::Error::Io(io) | fjall::Error::Storage(fjall::LsmError::Io(io)) => {
            StorageError::io(op, path, io)
        }
        other => StorageError::Lsm {
            op,
            message: format!("{other:?}"),
        },
    }
}

fn decode_seq(raw: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = raw.try_into().map_err(|_| StorageError::Lsm {
        op: "read sequence number",
        message: format!("stored sequence number has {} bytes, expected 8", raw.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// fjall's handles; None once the store is closed.
struct Handles {
    db: Database,
    data: Keyspace,
    meta: Keyspace,
}

struct Inner {
    handles: RwLock<Option<Handles>>,
    /// Serialises commits so sequence numbers reach fjall in order.
    writer: Mutex<()>,
    /// The published sequence number and the snapshots' pins.
    registry: Arc<SnapshotRegistry>,
    /// The horizon version GC works below, which unpinned point reads validate against.
    gc: Arc<GcHorizon>,
    /// The data keyspace's compaction filter factory.
    gc_filter: Arc<GcFilterFactory>,
    /// The newest values of hot keys, answering point reads without fjall.
    rows: RowCache,
    syncer: Syncer,
    policy: SyncPolicy,
    /// Starts the journal's writeback as batches go in (none under `Always`, whose
    /// batches are each fsynced).
    journal_writeback: Option<Arc<JournalWriteback>>,
    lifecycle: Lifecycle,
    closed: AtomicBool,
    open_snapshots: AtomicU64,
    /// One `compact` at a time.
    compaction: Mutex<()>,
    fjall_dir: PathBuf,
    /// Bytes fjall cut from journal tails during open.
    torn_bytes_dropped: u64,
    /// fjall's flush and compaction threads ([`background_threads`]).
    background_threads: usize,
    lock: Mutex<Option<DirLock>>,
}

impl Inner {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(StorageError::Closed)
        } else {
            Ok(())
        }
    }

    /// Maps a fjall error on the write or sync path and moves the store to Failed: fjall
    /// poisons itself after a failed journal write or fsync, so nothing later can succeed.
    fn fail_with(&self, op: &'static str, e: fjall::Error) -> StorageError {
        let err = map_err(op, &self.fjall_dir, e);
        self.lifecycle.fail(err.to_string());
        err
    }

    /// Commits `ops` as one fjall batch together with the sequence number: the next one,
    /// or `fixed` (checkpoint copies carry the source's number). Returns the number.
    fn commit(&self, ops: Vec<BatchOp>, fixed: Option<u64>) -> Result<u64> {
        let guard = self.handles.read();
        let h = guard.as_ref().ok_or(StorageError::Closed)?;
        // Encoded outside the writer lock; the sequence number is patched in under it.
        // Each item keeps its user key and value (None: a delete) for the row cache.
        let mut items: Vec<(Vec<u8>, Bytes, Option<Bytes>)> = ops
            .into_iter()
            .map(|op| match op {
                // fjall keeps the `Bytes` it is given in its memtable; a batch's values may
                // be slices of a larger buffer (the engine's arena), which a kept slice
                // would pin whole, so the memtable gets a compact copy.
                BatchOp::Put(k, v) => (
                    keys::version_key(&k, 0, Kind::Put),
                    k,
                    Some(Bytes::copy_from_slice(&v)),
                ),
                BatchOp::Delete(k) => (keys::version_key(&k, 0, Kind::Tombstone), k, None),
            })
            .collect();
        let journal_bytes: u64 = items
            .iter()
            .map(|(stored, _, v)| (stored.len() + v.as_ref().map_or(0, Bytes::len)) as u64)
            .sum();
        let _w = self.writer.lock();
        let seq = fixed.unwrap_or_else(|| self.registry.visible() + 1);
        let mut fb = h.db.batch().durability(Some(PersistMode::Buffer));
        for (stored, _, v) in &mut items {
            keys::set_seq(stored, seq);
            fb.insert(
                &h.data,
                std::mem::take(stored),
                v.clone().unwrap_or_default(),
            );
        }
        fb.insert(&h.meta, SEQ_KEY, seq.to_be_bytes().to_vec());
        fb.commit().map_err(|e| self.fail_with("write batch", e))?;
        if let Some(wb) = &self.journal_writeback {
            wb.note_appended(journal_bytes);
        }
        // Before `seq` is published, so no reader at `seq` or above finds an older entry.
        self.rows
            .put_written(seq, items.iter().map(|(_, k, v)| (&k[..], v.as_ref())));
        // Only now may readers ask for `seq`: every version of the batch is in fjall.
        self.registry.publish(seq);
        Ok(seq)
    }

    /// The value of `key` at `seq`: its newest version at or below `seq`, if a put.
    fn read_at(&self, h: &Handles, key: &[u8], seq: u64) -> Result<Option<Bytes>> {
        let prefix = keys::key_prefix(key);
        let mut upper = prefix.clone();
        if let Some(last) = upper.last_mut() {
            *last += 1;
        }
        let mut it = h.data.range(keys::seek_key(key, seq)..upper);
        let Some(guard) = it.next() else {
            return Ok(None);
        };
        let (k, v) = guard
            .into_inner()
            .map_err(|e| map_err("get", &self.fjall_dir, e))?;
        Ok(versions::first_visible(
            &prefix,
            seq,
            Some((&k, Bytes::from(v))),
        ))
    }

    /// fsyncs the journal if anything up to `target` is not yet durable.
    fn sync_through(&self, target: u64) -> Result<()> {
        self.syncer.sync_to(
            target,
            || self.registry.visible(),
            || self.persist(PersistMode::SyncData),
        )
    }

    fn persist(&self, mode: PersistMode) -> Result<()> {
        let guard = self.handles.read();
        let h = guard.as_ref().ok_or(StorageError::Closed)?;
        h.db.persist(mode)
            .map_err(|e| self.fail_with("fsync journal", e))
    }

    /// Pins the latest published sequence number.
    fn open_snapshot(self: &Arc<Self>) -> LsmSnapshot {
        let pin = Arc::new(self.registry.pin());
        self.open_snapshots.fetch_add(1, Ordering::AcqRel);
        LsmSnapshot {
            inner: Arc::clone(self),
            pin,
        }
    }

    /// Flushes `ks`'s memtable to a table and waits (bounded) for the flush.
    fn flush_memtable(&self, ks: &Keyspace) -> Result<()> {
        ks.rotate_memtable()
            .map_err(|e| map_err("compact: rotate memtable", &self.fjall_dir, e))?;
        let deadline = Instant::now() + FLUSH_WAIT_LIMIT;
        while ks.sealed_memtable_count() > 0 {
            if Instant::now() > deadline {
                return Err(StorageError::Lsm {
                    op: "compact: flush memtable",
                    message: format!("memtable not flushed after {FLUSH_WAIT_LIMIT:?}"),
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    fn compact_now(&self) -> Result<()> {
        let guard = self.handles.read();
        let h = guard.as_ref().ok_or(StorageError::Closed)?;
        self.flush_memtable(&h.data)?;
        // On this thread, so the filter may drop newest tombstones too (see `gc`).
        self.gc_filter
            .full(|| h.data.major_compact())
            .map_err(|e| map_err("compact", &self.fjall_dir, e))?;
        self.flush_memtable(&h.meta)?;
        h.meta
            .major_compact()
            .map_err(|e| map_err("compact", &self.fjall_dir, e))?;
        Ok(())
    }
}

/// Last-op-wins deduplication. Two ops on one key in one batch would be two versions
/// with the same sequence number, i.e. the same stored key written twice, which keel
/// never does (see [`gc`]), so the batch carries one op per key by construction.
fn dedup_last_wins(ops: Vec<BatchOp>) -> Vec<BatchOp> {
    if ops.len() < 2 {
        return ops;
    }
    let mut seen = std::collections::HashSet::with_capacity(ops.len());
    let unique = ops.iter().all(|op| seen.insert(op.key().clone()));
    if unique {
        return ops;
    }
    seen.clear();
    let mut out: Vec<BatchOp> = ops
        .into_iter()
        .rev()
        .filter(|op| seen.insert(op.key().clone()))
        .collect();
    out.reverse();
    out
}

/// The LSM engine (fjall).
pub struct LsmEngine {
    inner: Arc<Inner>,
    flusher: Mutex<Option<JoinHandle<()>>>,
    /// The journal's writeback thread ([`journal_writeback`]).
    writeback: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for LsmEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LsmEngine")
            .field("dir", &self.inner.fjall_dir)
            .finish()
    }
}

impl LsmEngine {
    /// Writebacks of fjall's journal started so far (see [`journal_writeback`]).
    pub fn journal_writebacks(&self) -> u64 {
        self.inner
            .journal_writeback
            .as_ref()
            .map_or(0, |wb| wb.count())
    }

    /// Opens (creating if needed) the LSM store in `dir`; fjall's files go to `dir/lsm`.
    pub fn open(dir: &Path, opts: &OpenOptions) -> Result<LsmEngine> {
        let lock = DirLock::acquire(dir)?;
        let lifecycle = Lifecycle::new();
        let fjall_dir = dir.join(FJALL_DIR);
        let torn_bytes_dropped = precheck_journals(&fjall_dir, opts.repair)?;
        // The registry starts at 0 and is raised to the stored number below, before any
        // reader exists; the compaction filter needs it from the moment fjall starts.
        let registry = SnapshotRegistry::new(0);
        let gc_horizon = GcHorizon::new(Arc::clone(&registry));
        let gc_filter = GcFilterFactory::new(Arc::clone(&gc_horizon));
        let filter = Arc::clone(&gc_filter);
        let workers =
            background_threads(std::thread::available_parallelism().map_or(1, usize::from));
        let db = Database::builder(&fjall_dir)
            .cache_size(opts.lsm.cache_bytes)
            .worker_threads(workers)
            .manual_journal_persist(true)
            .with_compaction_filter_factories(Arc::new(move |name: &str| {
                (name == DATA_KEYSPACE)
                    .then(|| Arc::clone(&filter) as Arc<dyn fjall::compaction::filter::Factory>)
            }))
            .open()
            .map_err(|e| map_err("open", &fjall_dir, e))?;
        let data = db
            .keyspace(DATA_KEYSPACE, KeyspaceCreateOptions::default)
            .map_err(|e| map_err("open data keyspace", &fjall_dir, e))?;
        let meta = db
            .keyspace(META_KEYSPACE, || {
                KeyspaceCreateOptions::default()
                    .max_memtable_size(META_MEMTABLE_BYTES)
                    .expect_point_read_hits(true)
            })
            .map_err(|e| map_err("open meta keyspace", &fjall_dir, e))?;
        let seq = match meta
            .get(SEQ_KEY)
            .map_err(|e| map_err("read sequence number", &fjall_dir, e))?
        {
            Some(raw) => decode_seq(&raw)?,
            None => 0,
        };
        if let Some(old) = data.range(vec![keys::OLD_TAG]..vec![keys::TAG]).next() {
            let key = old
                .key()
                .map_err(|e| map_err("check data layout", &fjall_dir, e))?;
            return Err(StorageError::Lsm {
                op: "open",
                message: format!(
                    "the store holds keys of the unversioned layout (first: {:?}); it was written by an older keel and cannot be read",
                    Bytes::from(key)
                ),
            });
        }
        // Nothing above the stored number exists: it is written in every batch.
        registry.publish(seq);
        lifecycle.set_ready();
        let journal_writeback =
            (opts.sync_policy != SyncPolicy::Always).then(|| JournalWriteback::new(&fjall_dir));
        let inner = Arc::new(Inner {
            handles: RwLock::new(Some(Handles { db, data, meta })),
            writer: Mutex::new(()),
            registry,
            gc: gc_horizon,
            gc_filter,
            rows: RowCache::new(opts.lsm.row_cache_bytes),
            // What recovery found is in the journal fjall just fsynced on open.
            syncer: Syncer::new(seq),
            policy: opts.sync_policy,
            journal_writeback,
            lifecycle,
            closed: AtomicBool::new(false),
            open_snapshots: AtomicU64::new(0),
            compaction: Mutex::new(()),
            fjall_dir,
            torn_bytes_dropped,
            background_threads: workers,
            lock: Mutex::new(Some(lock)),
        });
        let flusher = if opts.sync_policy == SyncPolicy::EverySec {
            let weak = Arc::downgrade(&inner);
            Some(
                std::thread::Builder::new()
                    .name("keel-lsm-fsync".into())
                    .spawn(move || flush_loop(weak))
                    .map_err(|e| StorageError::io("spawn fsync thread", dir, e))?,
            )
        } else {
            None
        };
        // Last: an error here drops `inner`, which ends the flusher on its own.
        let writeback = match &inner.journal_writeback {
            Some(wb) => Some(
                wb.spawn()
                    .map_err(|e| StorageError::io("spawn journal writeback thread", dir, e))?,
            ),
            None => None,
        };
        Ok(LsmEngine {
            inner,
            flusher: Mutex::new(flusher),
            writeback: Mutex::new(writeback),
        })
    }
}

/// Walks fjall's journals before fjall replays them (see [`journal_check`]): damage that
/// fjall would answer by silently dropping complete batches stops the open with
/// [`StorageError::Corrupt`] naming the file and offset, unless `repair` is set. Returns
/// the bytes fjall is about to cut from journal tails.
fn precheck_journals(fjall_dir: &Path, repair: bool) -> Result<u64> {
    let reports = journal_check::check_dir(fjall_dir)
        .map_err(|e| StorageError::io("pre-check journals", fjall_dir, e))?;
    let mut dropped = 0;
    for r in reports {
        let path = r.path.display().to_string();
        // Damage fjall would refuse or misread, earliest first; we cut there ourselves.
        let seq_cut = r.seqno_regression_at.map(|at| {
            (
                at,
                "journal batch sequence numbers stop rising after this batch",
                false,
            )
        });
        let bad_cut = r
            .bad_batch
            .map(|(at, reason)| (at, reason, r.bad_batch_is_torn_tail));
        let cut = match (seq_cut, bad_cut) {
            (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
            (a, b) => a.or(b),
        };
        if let Some((at, reason, torn)) = cut {
            if !torn && !repair {
                return Err(StorageError::corrupt(&r.path, at, reason));
            }
            if torn {
                tracing::warn!(%path, offset = at, "lsm: last journal batch torn by a crash (unwritten sector); cutting it");
            } else {
                tracing::warn!(%path, offset = at, %reason, "lsm repair: cutting the journal there");
            }
            journal_check::truncate_at(&r.path, at)
                .map_err(|e| StorageError::io("cut journal", &r.path, e))?;
            dropped += r.content_end.saturating_sub(at);
            continue;
        }
        if r.damaged_before_tail() {
            let reason = format!(
                "journal entry does not decode, yet {} complete batch(es) follow from offset {}",
                r.batches_after_cut,
                r.resumes_at.unwrap_or_default()
            );
            if !repair {
                return Err(StorageError::corrupt(&r.path, r.valid_end, reason));
            }
            tracing::warn!(%path, offset = r.valid_end, %reason, "lsm repair: journal will be cut there");
        } else if r.batches_after_cut > 0 {
            tracing::warn!(%path, offset = r.valid_end, batches = r.batches_after_cut,
                "lsm: unwritten sector in the journal tail (crash); unsynced batches after it are dropped");
        }
        if r.dropped_bytes() > 0 {
            tracing::info!(%path, offset = r.valid_end, bytes = r.dropped_bytes(), "lsm: torn journal tail cut");
        }
        dropped += r.dropped_bytes();
    }
    Ok(dropped)
}

/// `everysec`: fsync once a second while anything is unsynced. `close` unparks it.
fn flush_loop(inner: Weak<Inner>) {
    loop {
        let deadline = Instant::now() + FLUSH_INTERVAL;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::park_timeout(deadline - now);
            match inner.upgrade() {
                Some(i) if !i.closed.load(Ordering::Acquire) => {}
                _ => return,
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        if inner.lifecycle.state() == LifecycleState::Failed {
            continue;
        }
        if let Err(e) = inner.sync_through(inner.registry.visible()) {
            tracing::error!(error = %e, "lsm: background fsync failed");
        }
    }
}

/// A point-in-time view: a pinned keel sequence number.
struct LsmSnapshot {
    inner: Arc<Inner>,
    /// Shared with the scan iterators opened on it, which may outlive the snapshot.
    pin: Arc<Pin>,
}

impl Drop for LsmSnapshot {
    fn drop(&mut self) {
        self.inner.open_snapshots.fetch_sub(1, Ordering::AcqRel);
    }
}

impl LsmSnapshot {
    fn get_at(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.inner.check_open()?;
        let seq = self.pin.seq();
        if let Some(value) = self.inner.rows.lookup(key, seq) {
            return Ok(value);
        }
        let guard = self.inner.handles.read();
        let h = guard.as_ref().ok_or(StorageError::Closed)?;
        let value = self.inner.read_at(h, key, seq)?;
        self.inner.rows.fill(key, seq, value.as_ref());
        Ok(value)
    }

    fn scan_at(&self, range: &ScanRange, dir: Direction) -> KvIter {
        let Some(stored) = keys::stored_bounds(range) else {
            return Box::new(std::iter::empty());
        };
        if self.inner.closed.load(Ordering::Acquire) {
            return error_iter(StorageError::Closed);
        }
        let guard = self.inner.handles.read();
        let Some(h) = guard.as_ref() else {
            return error_iter(StorageError::Closed);
        };
        let reverse = dir == Direction::Reverse;
        let end = stored.end.clone();
        let entries = stored_entries(&h.data, stored, &self.inner.fjall_dir);
        let entries: StoredIter = if reverse {
            Box::new(entries.rev())
        } else {
            Box::new(entries)
        };
        // Forward walks reopen the range further on (see `Resolver::with_reseek`); the
        // pin keeps what they read from being collected, as for the first range.
        let (data, dir_path) = (h.data.clone(), self.inner.fjall_dir.clone());
        let reseek = move |from: Vec<u8>| -> StoredIter {
            if from >= end {
                return Box::new(std::iter::empty());
            }
            Box::new(stored_entries(&data, from..end.clone(), &dir_path))
        };
        Box::new(LsmIter {
            inner: Arc::clone(&self.inner),
            resolver: Resolver::new(entries, self.pin.seq(), reverse).with_reseek(Box::new(reseek)),
            _pin: Arc::clone(&self.pin),
            done: false,
        })
    }
}

impl Snapshot for LsmSnapshot {
    fn seq(&self) -> u64 {
        self.pin.seq()
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.get_at(key)
    }

    fn scan(&self, range: ScanRange, dir: Direction) -> KvIter {
        self.scan_at(&range, dir)
    }
}

/// A stream of stored versions, as the resolver reads them.
type StoredIter = Box<dyn Iterator<Item = Result<versions::Entry>> + Send>;

/// The stored versions in `range` of the data keyspace, in fjall order.
fn stored_entries(
    data: &Keyspace,
    range: std::ops::Range<Vec<u8>>,
    fjall_dir: &Path,
) -> impl DoubleEndedIterator<Item = Result<versions::Entry>> + Send + 'static {
    let fjall_dir = fjall_dir.to_path_buf();
    data.range(range).map(move |g| {
        g.into_inner()
            .map(|(k, v)| (k.to_vec(), Bytes::from(v)))
            .map_err(|e| map_err("scan", &fjall_dir, e))
    })
}

fn error_iter(e: StorageError) -> KvIter {
    Box::new(std::iter::once(Err(e)))
}

/// A scan at a pinned sequence number; stops with `Closed` once the store is closed.
struct LsmIter {
    inner: Arc<Inner>,
    resolver: Resolver<StoredIter>,
    /// Keeps the versions this scan reads from being collected.
    _pin: Arc<Pin>,
    done: bool,
}

impl Iterator for LsmIter {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.inner.closed.load(Ordering::Acquire) {
            self.done = true;
            return Some(Err(StorageError::Closed));
        }
        let item = match self.resolver.next() {
            None => None,
            Some(Ok(Resolved::Live(k, v))) => Some(Ok((k, v))),
            Some(Ok(Resolved::Malformed(stored))) => Some(Err(StorageError::Lsm {
                op: "scan",
                message: format!("stored key {:?} is not a keel version", Bytes::from(stored)),
            })),
            Some(Err(e)) => Some(Err(e)),
        };
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

/// Bytes allocated on disk under `dir` (sparse preallocated journals count what they use).
fn allocated_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(md) = entry.metadata() else { continue };
            if md.is_dir() {
                stack.push(entry.path());
            } else {
                total += md.blocks() * 512;
            }
        }
    }
    total
}

impl Storage for LsmEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Lsm
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.inner.check_open()?;
        let inner = &self.inner;
        if let Some(value) = inner.rows.lookup(key, inner.registry.visible()) {
            return Ok(value);
        }
        let guard = inner.handles.read();
        let h = guard.as_ref().ok_or(StorageError::Closed)?;
        // Unpinned: a collection that starts meanwhile may drop the version this read
        // needs, but it announces its horizon first, so a read that finds the announced
        // horizon still at or below its sequence number afterwards was not overtaken.
        for _ in 0..GET_RETRIES {
            let seq = inner.registry.visible();
            let value = inner.read_at(h, key, seq)?;
            if inner.gc.claimed() <= seq {
                inner.rows.fill(key, seq, value.as_ref());
                return Ok(value);
            }
        }
        let pin = inner.registry.pin();
        let value = inner.read_at(h, key, pin.seq())?;
        inner.rows.fill(key, pin.seq(), value.as_ref());
        Ok(value)
    }

    fn scan(&self, range: ScanRange, dir: Direction) -> KvIter {
        let snap = self.inner.open_snapshot();
        snap.scan_at(&range, dir)
    }

    fn write(&self, batch: WriteBatch, opts: WriteOptions) -> Result<u64> {
        let inner = &self.inner;
        inner.check_open()?;
        inner.lifecycle.check_writable()?;
        if batch.is_empty() {
            return Ok(inner.registry.visible());
        }
        for op in batch.ops() {
            match op {
                BatchOp::Put(k, v) => keys::check_sizes(k, Some(v))?,
                BatchOp::Delete(k) => keys::check_sizes(k, None)?,
            }
        }
        let seq = inner.commit(dedup_last_wins(batch.into_ops()), None)?;
        if opts.sync || inner.policy == SyncPolicy::Always {
            inner.sync_through(seq)?;
        }
        Ok(seq)
    }

    fn snapshot(&self) -> Box<dyn Snapshot> {
        Box::new(self.inner.open_snapshot())
    }

    fn last_seq(&self) -> u64 {
        self.inner.registry.visible()
    }

    fn sync(&self) -> Result<()> {
        self.inner.check_open()?;
        self.inner.sync_through(self.inner.registry.visible())
    }

    fn checkpoint(&self, dir: &Path) -> Result<()> {
        self.inner.check_open()?;
        match std::fs::read_dir(dir) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(StorageError::InvalidArgument(format!(
                        "checkpoint directory {} is not empty",
                        dir.display()
                    )));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("read checkpoint directory", dir, e)),
        }
        let snap = self.inner.open_snapshot();
        let mut opts = OpenOptions::new(EngineKind::Lsm).sync_policy(SyncPolicy::No);
        opts.lsm.cache_bytes = CHECKPOINT_CACHE_BYTES;
        // The copy is written once and closed: nothing would read its cache.
        opts.lsm.row_cache_bytes = 0;
        let target = LsmEngine::open(dir, &opts)?;
        let copied = copy_snapshot(&snap, &target.inner);
        let closed = target.close();
        copied?;
        closed?;
        // The copy's own files are fsynced by fjall; make its directory entry durable.
        let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
        for d in std::iter::once(dir).chain(parent) {
            std::fs::File::open(d)
                .and_then(|f| f.sync_all())
                .map_err(|e| StorageError::io("fsync checkpoint directory", d, e))?;
        }
        Ok(())
    }

    fn compact(&self) -> Result<()> {
        let inner = &self.inner;
        inner.check_open()?;
        let _one = inner.compaction.lock();
        inner.lifecycle.check_writable()?;
        if !inner.lifecycle.begin_compaction() {
            return inner.lifecycle.check_writable();
        }
        let res = inner.compact_now();
        inner.lifecycle.end_compaction();
        inner.lifecycle.guard(res)
    }

    fn stats(&self) -> StorageStats {
        let inner = &self.inner;
        let mut s = StorageStats::empty(EngineKind::Lsm, inner.lifecycle.state());
        s.last_seq = inner.registry.visible();
        s.open_snapshots = inner.open_snapshots.load(Ordering::Acquire);
        s.torn_bytes_dropped = inner.torn_bytes_dropped;
        (s.row_cache_hits, s.row_cache_misses) = inner.rows.hits_and_misses();
        s.row_cache_bytes = inner.rows.bytes() as u64;
        s.background_threads = inner.background_threads as u64;
        s.writebacks = self.journal_writebacks();
        if let Some(h) = inner.handles.read().as_ref() {
            s.live_keys = h.data.approximate_len() as u64;
            s.write_buffer_bytes = h.db.write_buffer_size();
            s.pending_flushes = h.db.outstanding_flushes() as u64;
            s.tables = (h.data.table_count() + h.meta.table_count()) as u64;
            s.active_compactions = h.db.active_compactions() as u64;
            s.compactions_completed = h.db.compactions_completed() as u64;
            for ks in [&h.data, &h.meta] {
                let m = ks.metrics();
                s.cache_hits += m.block_load_cached_count() as u64;
                s.cache_misses += m.block_load_io_count() as u64;
            }
            s.disk_bytes = allocated_bytes(&inner.fjall_dir);
        }
        s
    }

    fn state(&self) -> LifecycleState {
        self.inner.lifecycle.state()
    }

    fn failure_reason(&self) -> Option<String> {
        self.inner.lifecycle.failure_reason()
    }

    fn close(&self) -> Result<()> {
        let inner = &self.inner;
        if inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        if let Some(t) = self.flusher.lock().take() {
            t.thread().unpark();
            let _ = t.join();
        }
        if let (Some(wb), Some(t)) = (&inner.journal_writeback, self.writeback.lock().take()) {
            wb.stop();
            let _ = t.join();
        }
        let handles = inner.handles.write().take();
        let res = match handles {
            Some(h) => {
                let r =
                    h.db.persist(PersistMode::SyncAll)
                        .map_err(|e| map_err("close: fsync journal", &inner.fjall_dir, e));
                // Keyspaces first, then the database, whose drop joins fjall's workers
                // and releases its own lock file.
                let Handles { db, data, meta } = h;
                drop(data);
                drop(meta);
                drop(db);
                r
            }
            None => Ok(()),
        };
        inner.lock.lock().take();
        res
    }
}

/// Copies `snap` into the freshly opened `target` in bounded batches, each carrying the
/// source's sequence number, then makes it durable.
fn copy_snapshot(snap: &LsmSnapshot, target: &Inner) -> Result<()> {
    let mut ops = Vec::new();
    let mut bytes = 0usize;
    for item in snap.scan_at(&ScanRange::all(), Direction::Forward) {
        let (k, v) = item?;
        bytes += k.len() + v.len();
        ops.push(BatchOp::Put(k, v));
        if bytes >= CHECKPOINT_BATCH_BYTES || ops.len() >= CHECKPOINT_BATCH_ENTRIES {
            target.commit(std::mem::take(&mut ops), Some(snap.pin.seq()))?;
            bytes = 0;
        }
    }
    // Always one last batch, so an empty copy still records the sequence number.
    target.commit(ops, Some(snap.pin.seq()))?;
    target.persist(PersistMode::SyncAll)
}

impl Drop for LsmEngine {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fjall_gets_two_to_four_background_threads() {
        assert_eq!(background_threads(1), 2);
        assert_eq!(background_threads(2), 2);
        assert_eq!(background_threads(3), 3);
        assert_eq!(background_threads(64), 4);
    }

    #[test]
    fn dedup_keeps_the_last_op_per_key_in_order() {
        let put = |k: &'static str, v: &'static str| BatchOp::Put(k.into(), v.into());
        let del = |k: &'static str| BatchOp::Delete(k.into());
        let ops = vec![
            put("a", "1"),
            put("b", "1"),
            del("a"),
            put("c", "1"),
            put("b", "2"),
        ];
        assert_eq!(
            dedup_last_wins(ops),
            vec![del("a"), put("c", "1"), put("b", "2")]
        );
        let unique = vec![put("x", "1"), del("y")];
        assert_eq!(dedup_last_wins(unique.clone()), unique);
    }

    fn engine(dir: &Path, policy: SyncPolicy) -> LsmEngine {
        let mut o = OpenOptions::new(EngineKind::Lsm).sync_policy(policy);
        o.lsm.cache_bytes = 1 << 20;
        LsmEngine::open(dir, &o).expect("open")
    }

    fn put_one(s: &LsmEngine, opts: WriteOptions) -> u64 {
        let mut b = WriteBatch::new();
        b.put("k", "v");
        s.write(b, opts).expect("write")
    }

    fn write(s: &LsmEngine, k: &str, v: Option<&str>) -> u64 {
        let mut b = WriteBatch::new();
        match v {
            Some(v) => b.put(k.to_owned(), v.to_owned()),
            None => b.delete(k.to_owned()),
        };
        s.write(b, WriteOptions::DEFAULT).expect("write")
    }

    /// Every stored version as (key, seq), in fjall order.
    fn stored(s: &LsmEngine) -> Vec<(String, u64)> {
        let guard = s.inner.handles.read();
        let h = guard.as_ref().expect("open");
        h.data
            .iter()
            .map(|g| {
                let k = g.key().expect("key");
                let p = keys::parse(&k).expect("version");
                let user = keys::decode_prefix(p.prefix).expect("escaping");
                (String::from_utf8(user).expect("utf8"), p.seq)
            })
            .collect()
    }

    fn owned(v: &[(&str, u64)]) -> Vec<(String, u64)> {
        v.iter().map(|(k, s)| (k.to_string(), *s)).collect()
    }

    #[test]
    fn compact_drops_exactly_the_versions_below_the_horizon() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = engine(dir.path(), SyncPolicy::No);
        write(&s, "a", Some("1"));
        write(&s, "a", Some("2"));
        write(&s, "b", Some("x"));
        let snap = s.snapshot();
        assert_eq!(snap.seq(), 3);
        write(&s, "a", Some("4"));
        write(&s, "a", Some("5"));
        write(&s, "b", None);
        write(&s, "c", Some("1"));
        assert_eq!(stored(&s).len(), 7);
        s.compact().expect("compact");
        // Only a@1 is shadowed at or below the snapshot's 3; b's tombstone is above it.
        assert_eq!(
            stored(&s),
            owned(&[("a", 5), ("a", 4), ("a", 2), ("b", 6), ("b", 3), ("c", 7)])
        );
        assert_eq!(snap.get(b"a").expect("get"), Some(Bytes::from("2")));
        assert_eq!(snap.get(b"b").expect("get"), Some(Bytes::from("x")));
        assert_eq!(snap.get(b"c").expect("get"), None);
        drop(snap);
        s.compact().expect("compact");
        assert_eq!(stored(&s), owned(&[("a", 5), ("c", 7)]));
        assert_eq!(s.stats().live_keys, 2);
        assert_eq!(s.get(b"a").expect("get"), Some(Bytes::from("5")));
        assert_eq!(s.get(b"b").expect("get"), None);
    }

    #[test]
    fn compaction_filter_drops_shadowed_versions_in_the_background() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = engine(dir.path(), SyncPolicy::No);
        let flush = |s: &LsmEngine| {
            let guard = s.inner.handles.read();
            let h = guard.as_ref().expect("open");
            s.inner.flush_memtable(&h.data).expect("flush");
        };
        write(&s, "a", Some("1"));
        write(&s, "b", Some("1"));
        flush(&s);
        let snap = s.snapshot();
        write(&s, "a", Some("3"));
        write(&s, "b", None);
        flush(&s);
        write(&s, "a", Some("5"));
        flush(&s);
        // fjall's own major compaction, without keel's walk: the filter alone collects.
        let major = |s: &LsmEngine| {
            let guard = s.inner.handles.read();
            let h = guard.as_ref().expect("open");
            h.data.major_compact().expect("major compaction");
        };
        major(&s);
        assert_eq!(
            stored(&s),
            owned(&[("a", 5), ("a", 3), ("a", 1), ("b", 4), ("b", 2)]),
            "the snapshot at 2 keeps everything it can see"
        );
        drop(snap);
        major(&s);
        // The newest tombstone stays: a compaction cannot know nothing older survives.
        assert_eq!(stored(&s), owned(&[("a", 5), ("b", 4)]));
        assert_eq!(s.get(b"a").expect("get"), Some(Bytes::from("5")));
        assert_eq!(s.get(b"b").expect("get"), None);
    }

    #[test]
    fn a_store_in_the_unversioned_layout_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        engine(dir.path(), SyncPolicy::No).close().expect("close");
        {
            let db = Database::builder(dir.path().join(FJALL_DIR))
                .open()
                .expect("fjall open");
            let data = db
                .keyspace(DATA_KEYSPACE, KeyspaceCreateOptions::default)
                .expect("keyspace");
            data.insert([keys::OLD_TAG, b'k'], "v").expect("insert");
            db.persist(PersistMode::SyncAll).expect("persist");
        }
        let mut o = OpenOptions::new(EngineKind::Lsm);
        o.lsm.cache_bytes = 1 << 20;
        match LsmEngine::open(dir.path(), &o) {
            Err(StorageError::Lsm {
                op: "open",
                message,
            }) => {
                assert!(message.contains("unversioned layout"), "{message}");
            }
            other => panic!("expected the old layout to be refused, got {other:?}"),
        }
    }

    #[test]
    fn the_journal_writeback_starts_as_batches_go_in_unless_every_batch_is_synced() {
        for policy in [SyncPolicy::No, SyncPolicy::EverySec, SyncPolicy::Always] {
            let dir = tempfile::tempdir().expect("tempdir");
            let s = engine(dir.path(), policy);
            // 48 batches of 64 KiB: three times the writeback step.
            let value = vec![b'v'; 64 * 1024];
            for i in 0..48 {
                let mut b = WriteBatch::new();
                b.put(format!("k{i}").into_bytes(), value.clone());
                s.write(b, WriteOptions::DEFAULT).expect("write");
            }
            if policy == SyncPolicy::Always {
                assert_eq!(s.journal_writebacks(), 0, "every batch is fsynced");
                continue;
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while s.journal_writebacks() == 0 {
                assert!(
                    Instant::now() < deadline,
                    "policy {policy:?}: no journal writeback started"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            s.close().expect("close");
        }
    }

    #[test]
    fn everysec_fsyncs_in_the_background() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = engine(dir.path(), SyncPolicy::EverySec);
        let seq = put_one(&s, WriteOptions::DEFAULT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while s.inner.syncer.synced() < seq {
            assert!(Instant::now() < deadline, "background fsync never came");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn sync_policies_decide_when_writes_are_fsynced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = engine(dir.path(), SyncPolicy::No);
        let seq = put_one(&s, WriteOptions::DEFAULT);
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            s.inner.syncer.synced() < seq,
            "policy no never syncs on its own"
        );
        let seq = put_one(&s, WriteOptions::SYNC);
        assert!(
            s.inner.syncer.synced() >= seq,
            "a sync write is durable on return"
        );
        let seq = put_one(&s, WriteOptions::DEFAULT);
        s.sync().expect("sync");
        assert!(s.inner.syncer.synced() >= seq);
        drop(s);
        let dir = tempfile::tempdir().expect("tempdir");
        let s = engine(dir.path(), SyncPolicy::Always);
        let seq = put_one(&s, WriteOptions::DEFAULT);
        assert!(
            s.inner.syncer.synced() >= seq,
            "policy always syncs every write"
        );
    }
}
