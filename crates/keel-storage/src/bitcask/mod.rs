//! keel's own Bitcask engine: append-only CRC'd segment files and an in-memory key
//! directory (the MVCC index the memory engine uses too, [`crate::hashed_index`]: hash
//! shards for point lookups, a B-tree for order) pointing at each value's record. A
//! read is one positioned read of one record; a write is one append of its whole batch.
//! Hint files make opening cheap, merge rewrites what the index still references and
//! drops the rest.
//!
//! Directory layout (a contract the corruption and crash suites test against):
//! `LOCK`, data segments `{id:010}.data` (ids from 1), hint files `{id:010}.hint`, and
//! `merge/` while a merge runs. See [`record`] for the record format, [`hint`] for hint
//! files and [`marker`] for the merge protocol.
//!
//! The newest segment is the active one; every other segment is sealed (complete and
//! fsynced). On open a sealed segment with a valid hint file is loaded from the hint:
//! its data file is only read sequentially to check the whole-file CRC the hint
//! records, never parsed. A segment without a valid hint, or whose data no longer
//! matches, is scanned record by record, so damage anywhere stops the open with file and
//! offset. Every read checks its record's CRC too. Sequence numbers, not file order,
//! decide which record of a key wins.

pub mod background;
pub mod cache;
pub mod checkpoint;
pub mod group_commit;
pub mod hint;
pub mod marker;
pub mod merge;
pub mod output;
pub mod record;
pub mod recovery;
pub mod segment;
pub mod writer;

#[cfg(test)]
mod tests;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::batch::WriteBatch;
use crate::cache_hint::PREFETCH_WINDOW;
use crate::dirlock::DirLock;
use crate::error::{Result, StorageError};
use crate::hashed_index::HashedIndex;
use crate::lifecycle::{Lifecycle, LifecycleState};
use crate::mvcc::{IndexValue, Pin};
use crate::options::{BitcaskOptions, EngineKind, OpenOptions, SyncPolicy, WriteOptions};
use crate::range::{Direction, ScanRange};
use crate::scan_iter;
use crate::stats::StorageStats;
use crate::storage::{KeyAt, KeyCounts, KvIter, Snapshot, Storage, ValueRef};

use background::Shutdown;
use cache::ValueCache;
use group_commit::{GroupCommit, Tail};
use segment::{Segment, SegmentSet};
use writer::{Active, SealJob, WriterState};

/// Where a value lives: its record's segment and offset, and the value's length (the
/// record length follows from the key, which the index holds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Loc {
    /// Segment id.
    pub segment: u32,
    /// Offset of the record in the segment (segments stay below 4 GiB).
    pub offset: u32,
    /// Value length.
    pub vlen: u32,
}

impl IndexValue for Loc {
    fn weight(&self) -> u64 {
        u64::from(self.vlen)
    }
}

/// Everything the engine's handles, snapshots, iterators and threads share.
pub(crate) struct Inner {
    pub(crate) dir: PathBuf,
    pub(crate) opts: BitcaskOptions,
    pub(crate) sync_policy: SyncPolicy,
    pub(crate) index: HashedIndex<Loc>,
    /// Serialises appends (and version GC, which must not race them).
    pub(crate) writer: Mutex<WriterState>,
    pub(crate) segments: SegmentSet,
    pub(crate) commit: Arc<GroupCommit>,
    pub(crate) cache: ValueCache,
    pub(crate) lifecycle: Lifecycle,
    pub(crate) closed: AtomicBool,
    pub(crate) shutdown: Arc<Shutdown>,
    /// One merge at a time.
    pub(crate) merge_lock: Mutex<()>,
    /// Orders rotation-hint writes against merge deleting segments.
    pub(crate) hint_lock: Mutex<()>,
    /// Hints of sealed segments waiting for the background thread to write them.
    pub(crate) pending_hints: Mutex<Vec<SealJob>>,
    /// Bytes the open cut from torn tails (or dropped by repair).
    pub(crate) torn_bytes_dropped: u64,
    /// Segments the last open loaded from hint files (the rest were scanned).
    pub(crate) segments_from_hints: usize,
    /// The directory lock, released by `close`.
    pub(crate) lock: Mutex<Option<DirLock>>,
    #[cfg(test)]
    pub(crate) faults: tests::Faults,
}

impl Inner {
    /// Fails with [`StorageError::Closed`] after `close`.
    pub(crate) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(StorageError::Closed)
        } else {
            Ok(())
        }
    }

    /// Reads the value of `key` at `loc`; if merge has removed the segment meanwhile,
    /// asks `lookup` for the version's new location and tries again.
    pub(crate) fn read_value(
        &self,
        key: &[u8],
        loc: Loc,
        lookup: impl Fn() -> Option<Loc>,
        use_cache: bool,
    ) -> Result<Option<Bytes>> {
        self.visit_value(key, loc, lookup, use_cache, |v| v.into_bytes())
    }

    /// [`Inner::read_value`] handing the value to `f`: lent from the value cache (under
    /// its shard's read lock, so `f` must be short) when it holds it, else the buffer
    /// read from the segment. None when `key` has no version there any more.
    pub(crate) fn visit_value<R>(
        &self,
        key: &[u8],
        mut loc: Loc,
        lookup: impl Fn() -> Option<Loc>,
        use_cache: bool,
        f: impl FnOnce(ValueRef<'_>) -> R,
    ) -> Result<Option<R>> {
        let mut f = Some(f);
        for _ in 0..4 {
            if use_cache {
                let hit = self
                    .cache
                    .read(key, loc, |v| f.take().map(|f| f(ValueRef::Borrowed(v))));
                if let Some(r) = hit {
                    return Ok(r);
                }
            }
            let Some(seg) = self.segments.get(loc.segment) else {
                match lookup() {
                    Some(l) => {
                        loc = l;
                        continue;
                    }
                    None => return Ok(None),
                }
            };
            let value = read_record(&seg, key, loc)?;
            if use_cache {
                self.cache.insert(key, loc, &value);
            }
            return Ok(f.take().map(|f| f(ValueRef::Owned(value))));
        }
        Err(StorageError::io(
            "read value",
            segment::data_path(&self.dir, loc.segment),
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "segment keeps disappearing under the reader",
            ),
        ))
    }

    fn get_latest(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let Some(loc) = self.index.latest_value(key) else {
            return Ok(None);
        };
        self.read_value(key, loc, || self.index.latest_value(key), true)
    }

    /// Lends the latest visible value of `key` to `f` (see [`Storage::read_with`]).
    fn read_latest_with(&self, key: &[u8], f: &mut dyn FnMut(Option<ValueRef<'_>>)) -> Result<()> {
        let Some(loc) = self.index.latest_value(key) else {
            f(None);
            return Ok(());
        };
        let mut f = Some(f);
        let seen = self.visit_value(
            key,
            loc,
            || self.index.latest_value(key),
            true,
            |v| {
                if let Some(f) = f.take() {
                    f(Some(v));
                }
            },
        )?;
        if seen.is_none() {
            if let Some(f) = f.take() {
                f(None);
            }
        }
        Ok(())
    }

    fn get_at(&self, key: &[u8], seq: u64) -> Result<Option<Bytes>> {
        let Some(loc) = self.index.value_at(key, seq) else {
            return Ok(None);
        };
        self.read_value(key, loc, || self.index.value_at(key, seq), true)
    }

    /// Version GC step under the writer lock, with garbage accounting.
    pub(crate) fn gc_step(&self, max: usize) -> usize {
        let mut freed: Vec<(u32, u64)> = Vec::new();
        let n = {
            let _w = self.writer.lock();
            self.index.gc_step(max, &mut |k, v| {
                if let Some(l) = v {
                    freed.push((l.segment, record::record_len(k.len(), l.vlen)));
                }
            })
        };
        for (seg, bytes) in freed {
            self.segments.add_garbage(seg, bytes);
        }
        n
    }

    /// One version-GC pass over every queued key, in steps that hold the writer lock
    /// briefly. Keys still needed by snapshots go back in the queue for later.
    pub(crate) fn gc_all(&self) {
        let mut budget = self.gc_pending_settled();
        while budget > 0 {
            let n = self.gc_step(budget.min(4096));
            if n == 0 {
                break;
            }
            budget -= n.min(budget);
        }
    }

    /// Keys queued for GC, read under the writer lock: a maintenance step holds that
    /// lock while it has keys out of the queue, and a count read mid-step missed them
    /// (compact then returned with versions still retained).
    fn gc_pending_settled(&self) -> usize {
        let _w = self.writer.lock();
        self.index.gc_pending()
    }

    /// Writes queued hint files of sealed segments.
    pub(crate) fn flush_pending_hints(&self) {
        let jobs = std::mem::take(&mut *self.pending_hints.lock());
        for job in jobs {
            self.write_seal_hint(job);
        }
    }

    fn write_seal_hint(&self, job: SealJob) {
        let Some(seg) = self.segments.get(job.id) else {
            return; // merged away before its hint was written
        };
        let path = segment::hint_path(&self.dir, job.id);
        // Built outside the lock by reading the sealed file back (a merge that deletes
        // it meanwhile leaves our open handle readable); the lock only orders the rename
        // against that delete.
        let built =
            hint::write_tmp_from_data(&seg.file, &seg.path, job.data_len, job.max_seq, &path);
        let (tmp, bytes) = match built {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(path = %seg.path.display(), error = %e, "cannot write the hint of a sealed segment; it will be scanned on open");
                return;
            }
        };
        let _h = self.hint_lock.lock();
        if self.segments.get(job.id).is_none() || seg.replaced.load(Ordering::Acquire) {
            let _ = std::fs::remove_file(&tmp);
            return;
        }
        match hint::install(&tmp, &path) {
            Ok(()) => seg.hint_bytes.store(bytes, Ordering::Relaxed),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                tracing::warn!(path = %path.display(), error = %e, "cannot write hint file; the segment will be scanned on open")
            }
        }
    }

    fn stats(&self) -> StorageStats {
        let idx = &self.index;
        let mut s = StorageStats::empty(EngineKind::Bitcask, self.lifecycle.state());
        s.last_seq = idx.registry().visible();
        s.live_keys = idx.live_keys();
        s.live_bytes = idx.live_bytes();
        s.open_snapshots = idx.registry().open_pins();
        s.retained_versions = idx.retained_versions();
        let (disk, garbage) = self.segments.totals();
        s.disk_bytes = disk;
        s.garbage_ratio = if disk == 0 {
            0.0
        } else {
            (garbage as f64 / disk as f64).clamp(0.0, 1.0)
        };
        let (hits, misses) = self.cache.counters();
        s.cache_hits = hits;
        s.cache_misses = misses;
        s.torn_bytes_dropped = self.torn_bytes_dropped;
        s.writebacks = self.commit.writeback_count();
        s
    }
}

/// Reads and verifies the record of `key` at `loc` with one positioned read.
fn read_record(seg: &Segment, key: &[u8], loc: Loc) -> Result<Bytes> {
    let len = record::record_len(key.len(), loc.vlen) as usize;
    let mut buf = vec![0u8; len];
    let offset = u64::from(loc.offset);
    seg.file.read_exact_at(&mut buf, offset).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            StorageError::corrupt(&seg.path, offset, "record cut short by the end of the file")
        } else {
            StorageError::io("read value", &seg.path, e)
        }
    })?;
    record::verify_read(Bytes::from(buf), key, &seg.path, offset)
}

/// The Bitcask engine.
pub struct Bitcask {
    inner: Arc<Inner>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Bitcask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bitcask")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl Bitcask {
    /// Opens (creating if needed) the Bitcask store in `dir`: finishes or discards an
    /// interrupted merge, loads every segment (hint file or scan), cuts a torn tail.
    pub fn open(dir: &Path, opts: &OpenOptions) -> Result<Bitcask> {
        let lock = DirLock::acquire(dir)?;
        let lifecycle = Lifecycle::new();
        marker::recover(dir)?;
        let (data_ids, hint_ids) = segment::list(dir)?;
        recovery::clean_strays(dir, &data_ids, &hint_ids)?;
        let rec = recovery::recover(dir, &data_ids, opts.repair)?;
        let max_seq = rec.max_seq;
        tracing::info!(dir = %dir.display(), segments = data_ids.len(), from_hints = rec.from_hints,
            keys = rec.live.len(), last_seq = max_seq, torn_bytes = rec.dropped_bytes, "bitcask opened");

        // Installed at the recovered sequence itself, so every version is one that all
        // readers see: no pending version or chain is made, and the settle that `apply`
        // asks of its caller finds nothing to do.
        let index = HashedIndex::new(max_seq);
        index.reserve(rec.live.len());
        index
            .apply(
                max_seq,
                rec.live.into_iter().map(|(k, loc)| (k, Some(loc))),
                &mut |_, _| {},
            )
            .settle(&mut |_, _| {});
        let segments = SegmentSet::default();
        let mut next_id = data_ids.last().map_or(1, |id| id.saturating_add(1));
        let n = rec.segments.len();
        let mut active = None;
        for (i, ls) in rec.segments.into_iter().enumerate() {
            let last = i + 1 == n;
            segments.insert(Arc::clone(&ls.segment));
            let size = ls.segment.size.load(Ordering::Relaxed);
            if last && !ls.hinted {
                active = Some(Active {
                    size,
                    seg: ls.segment,
                });
            } else if let Some(builder) = ls.hint {
                // A sealed segment without a usable hint: write one for the next open.
                let crc = hint::data_crc(&ls.segment.file, &ls.segment.path, size)?;
                let contents = builder.finish(max_seq, size, crc.finalize());
                let path = segment::hint_path(dir, ls.segment.id);
                match hint::write(&path, &contents) {
                    Ok(()) => ls
                        .segment
                        .hint_bytes
                        .store(contents.len() as u64, Ordering::Relaxed),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e, "cannot write hint file")
                    }
                }
            }
        }
        let active = match active {
            Some(a) => a,
            None => {
                let id = next_id;
                next_id = next_id
                    .checked_add(1)
                    .ok_or_else(|| StorageError::InvalidArgument("segment ids exhausted".into()))?;
                let seg = writer::create_segment(dir, id)?;
                segments.insert(Arc::clone(&seg));
                Active { seg, size: 0 }
            }
        };
        let commit = Arc::new(GroupCommit::new(
            Tail {
                file: Arc::clone(&active.seg.file),
                path: active.seg.path.clone(),
                lsn: 0,
                start_lsn: 0,
                start_offset: active.size,
            },
            opts.sync_policy != SyncPolicy::Always,
        ));
        lifecycle.set_ready();
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            opts: opts.bitcask.clone(),
            sync_policy: opts.sync_policy,
            index,
            writer: Mutex::new(WriterState {
                active,
                next_id,
                lsn: 0,
            }),
            segments,
            commit,
            cache: ValueCache::new(opts.bitcask.cache_bytes),
            lifecycle,
            closed: AtomicBool::new(false),
            shutdown: Arc::new(Shutdown::default()),
            merge_lock: Mutex::new(()),
            hint_lock: Mutex::new(()),
            pending_hints: Mutex::new(Vec::new()),
            torn_bytes_dropped: rec.dropped_bytes,
            segments_from_hints: rec.from_hints,
            lock: Mutex::new(Some(lock)),
            #[cfg(test)]
            faults: tests::Faults::default(),
        });
        let threads = background::spawn(&inner)?;
        Ok(Bitcask {
            inner,
            threads: Mutex::new(threads),
        })
    }

    /// Segments the open loaded from hint files instead of scanning them.
    pub fn segments_from_hints(&self) -> usize {
        self.inner.segments_from_hints
    }

    /// fdatasync calls made by group commit so far (for measurements).
    pub fn sync_count(&self) -> u64 {
        self.inner.commit.sync_count()
    }
}

struct BitcaskSnapshot {
    inner: Arc<Inner>,
    pin: Arc<Pin>,
}

impl Snapshot for BitcaskSnapshot {
    fn seq(&self) -> u64 {
        self.pin.seq()
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.inner.get_at(key, self.pin.seq())
    }

    fn scan(&self, range: ScanRange, dir: Direction) -> KvIter {
        scan_pinned(Arc::clone(&self.inner), Arc::clone(&self.pin), range, dir)
    }

    fn key_at(&self, range: &ScanRange, n: u64) -> Option<KeyAt> {
        self.inner.check_open().ok()?;
        Some(self.inner.index.key_at(range, n))
    }

    fn count_within(&self, range: &ScanRange, within: &ScanRange) -> Option<KeyCounts> {
        self.inner.check_open().ok()?;
        Some(self.inner.index.count_within(range, within))
    }
}

fn scan_pinned(inner: Arc<Inner>, pin: Arc<Pin>, range: ScanRange, dir: Direction) -> KvIter {
    scan_iter::chunked((inner, pin), move |(inner, pin), resume, limit| {
        inner.check_open()?;
        let seq = pin.seq();
        let locs = inner.index.entries_at(&range, dir, seq, resume, limit);
        let mut out = Vec::with_capacity(locs.len());
        for (key, loc) in locs {
            let value = inner.read_value(&key, loc, || inner.index.value_at(&key, seq), true)?;
            match value {
                Some(v) => out.push((key, v)),
                None => {
                    return Err(StorageError::corrupt(
                        segment::data_path(&inner.dir, loc.segment),
                        u64::from(loc.offset),
                        "a pinned version vanished from the index",
                    ))
                }
            }
        }
        Ok(out)
    })
}

impl Storage for Bitcask {
    fn kind(&self) -> EngineKind {
        EngineKind::Bitcask
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.inner.check_open()?;
        self.inner.get_latest(key)
    }

    fn read_with(&self, key: &[u8], f: &mut dyn FnMut(Option<ValueRef<'_>>)) -> Result<()> {
        self.inner.check_open()?;
        self.inner.read_latest_with(key, f)
    }

    fn key_at(&self, range: &ScanRange, n: u64) -> Option<KeyAt> {
        self.inner.check_open().ok()?;
        Some(self.inner.index.key_at(range, n))
    }

    fn count_within(&self, range: &ScanRange, within: &ScanRange) -> Option<KeyCounts> {
        self.inner.check_open().ok()?;
        Some(self.inner.index.count_within(range, within))
    }

    fn reclaim(&self, max_keys: usize) -> usize {
        if self.inner.check_open().is_err() || self.inner.index.gc_pending() == 0 {
            return 0;
        }
        self.inner.gc_step(max_keys)
    }

    fn prefetch_reads(&self, keys: &[&[u8]]) {
        if self.inner.check_open().is_err() {
            return;
        }
        let inner = &self.inner;
        for window in keys.chunks(PREFETCH_WINDOW) {
            inner.cache.prefetch(window, |locs| {
                inner
                    .index
                    .latest_each(window, |i, loc| locs[i] = Some(*loc));
            });
        }
    }

    fn scan(&self, range: ScanRange, dir: Direction) -> KvIter {
        let pin = Arc::new(self.inner.index.pin());
        scan_pinned(Arc::clone(&self.inner), pin, range, dir)
    }

    fn write(&self, batch: WriteBatch, opts: WriteOptions) -> Result<u64> {
        self.inner.write_batch(batch, opts)
    }

    fn snapshot(&self) -> Box<dyn Snapshot> {
        Box::new(BitcaskSnapshot {
            inner: Arc::clone(&self.inner),
            pin: Arc::new(self.inner.index.pin()),
        })
    }

    fn last_seq(&self) -> u64 {
        self.inner.index.registry().visible()
    }

    fn sync(&self) -> Result<()> {
        self.inner.check_open()?;
        self.inner.sync_all()
    }

    fn checkpoint(&self, dir: &Path) -> Result<()> {
        self.inner.check_open()?;
        self.inner.checkpoint_to(dir)
    }

    fn compact(&self) -> Result<()> {
        self.inner.check_open()?;
        self.inner.compact_now()
    }

    fn stats(&self) -> StorageStats {
        self.inner.stats()
    }

    fn state(&self) -> LifecycleState {
        self.inner.lifecycle.state()
    }

    fn failure_reason(&self) -> Option<String> {
        self.inner.lifecycle.failure_reason()
    }

    fn close(&self) -> Result<()> {
        if self.inner.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.inner.shutdown.signal();
        self.inner.commit.stop();
        for t in self.threads.lock().drain(..) {
            let _ = t.join();
        }
        // A merge run by a caller stops at its next step once `closed` is set; wait for
        // it so nothing touches the directory after the lock is released. Writers check
        // `closed` under the writer lock, so taking it once orders the final sync after
        // every append.
        drop(self.inner.merge_lock.lock());
        drop(self.inner.writer.lock());
        self.inner.flush_pending_hints();
        let res = if self.inner.lifecycle.state() == LifecycleState::Failed {
            Ok(())
        } else {
            self.inner.sync_all()
        };
        self.inner.lock.lock().take();
        res
    }
}

impl Drop for Bitcask {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
