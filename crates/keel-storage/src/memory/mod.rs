//! The memory engine: versioned entries in a B-tree for order and a sharded hash table
//! for point lookups (see [`crate::hashed_index`]). Writes are durable only
//! through the log above it and through checkpoints: `open` loads the directory's
//! checkpoint if there is one, and `checkpoint(dir)` writes one. `sync` and
//! `WriteOptions::sync` have nothing to flush.

pub mod checkpoint;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};

use crate::batch::{BatchOp, WriteBatch};
use crate::dirlock::DirLock;
use crate::error::{Result, StorageError};
use crate::hashed_index::{HashedIndex, Walk};
use crate::lifecycle::{Lifecycle, LifecycleState};
use crate::mvcc::Pin;
use crate::options::{EngineKind, OpenOptions, WriteOptions};
use crate::range::{Direction, ScanRange};
use crate::scan_iter;
use crate::stats::StorageStats;
use crate::storage::{KeyAt, KeyCounts, KvIter, Snapshot, Storage, ValueRef};
use crate::thin_value::Val;

/// How often the background task reclaims old versions, and how many keys per step.
const GC_INTERVAL: Duration = Duration::from_millis(50);
const GC_STEP_KEYS: usize = 4096;

struct Inner {
    index: HashedIndex<Val>,
    /// Serialises writers (and GC, which must not race them).
    writer: Mutex<()>,
    /// The thread whose writer session holds `writer` ([`thread_token`]), 0 if none.
    session: AtomicUsize,
    lifecycle: Lifecycle,
    closed: AtomicBool,
    dir: PathBuf,
    _lock: Mutex<Option<DirLock>>,
}

impl Inner {
    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(StorageError::Closed)
        } else {
            Ok(())
        }
    }

    /// Whether the calling thread's writer session holds the writer lock. Relaxed: only
    /// this thread stores its own token, so it reads back its own last store, and any
    /// other value means no.
    fn in_session(&self) -> bool {
        self.session.load(Ordering::Relaxed) == thread_token()
    }

    /// The writer lock, unless the calling thread's session holds it already.
    fn lock_writer(&self) -> Option<MutexGuard<'_, ()>> {
        (!self.in_session()).then(|| self.writer.lock())
    }

    fn gc_step(&self, max: usize) -> usize {
        let _w = self.lock_writer();
        self.index.gc_step(max, &mut |_, _| {})
    }

    /// Keys queued for GC, read under the writer lock: a maintenance step holds that
    /// lock while it has keys out of the queue, so none are missed by a caller that
    /// must finish the queue (compact).
    fn gc_pending_settled(&self) -> usize {
        let _w = self.lock_writer();
        self.index.gc_pending()
    }
}

/// An id of the calling thread, never 0 and never reused (a thread-local's address
/// could be, by a thread started after this one ended), cheap to take.
fn thread_token() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    thread_local! {
        static TOKEN: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    TOKEN.with(|t| *t)
}

/// The memory engine.
pub struct MemoryEngine {
    inner: Arc<Inner>,
    gc_thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for MemoryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryEngine")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

impl MemoryEngine {
    /// Opens the memory engine on `dir`, loading its checkpoint if one exists.
    pub fn open(dir: &Path, opts: &OpenOptions) -> Result<MemoryEngine> {
        let lock = DirLock::acquire(dir)?;
        let lifecycle = Lifecycle::new();
        let loaded = checkpoint::load(dir, opts.repair)?;
        let (seq, entries) = match loaded {
            Some(l) => (l.seq, l.entries),
            None => (0, Vec::new()),
        };
        let index = HashedIndex::new(seq);
        index.reserve(entries.len());
        let applied = index.apply(
            seq,
            entries.into_iter().map(|(k, v)| (k, Some(Val::new(&v)))),
            &mut |_, _| {},
        );
        index.registry().publish(seq);
        applied.settle(&mut |_, _| {});
        lifecycle.set_ready();
        let inner = Arc::new(Inner {
            index,
            writer: Mutex::new(()),
            session: AtomicUsize::new(0),
            lifecycle,
            closed: AtomicBool::new(false),
            dir: dir.to_path_buf(),
            _lock: Mutex::new(Some(lock)),
        });
        let weak = Arc::downgrade(&inner);
        let gc_thread = std::thread::Builder::new()
            .name("keel-mem-gc".into())
            .spawn(move || gc_loop(weak))
            .map_err(|e| StorageError::io("spawn gc thread", dir, e))?;
        Ok(MemoryEngine {
            inner,
            gc_thread: Mutex::new(Some(gc_thread)),
        })
    }
}

fn gc_loop(inner: Weak<Inner>) {
    loop {
        // park_timeout rather than sleep: close() unparks us so it need not wait.
        std::thread::park_timeout(GC_INTERVAL);
        let Some(inner) = inner.upgrade() else { return };
        if inner.closed.load(Ordering::Acquire) {
            return;
        }
        if inner.index.gc_pending() > 0 {
            inner.gc_step(GC_STEP_KEYS);
        }
    }
}

struct MemSnapshot {
    inner: Arc<Inner>,
    pin: Arc<Pin>,
}

impl Snapshot for MemSnapshot {
    fn seq(&self) -> u64 {
        self.pin.seq()
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.inner.check_open()?;
        Ok(self.inner.index.get_at(key, self.pin.seq()))
    }

    fn scan(&self, range: ScanRange, dir: Direction) -> KvIter {
        scan_pinned(Arc::clone(&self.inner), Arc::clone(&self.pin), range, dir)
    }

    fn visit_entries(
        &self,
        range: ScanRange,
        dir: Direction,
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        visit_at(&self.inner, self.pin.seq(), &range, dir, limit, f)
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

/// Calls `f` with the key and value of the first `limit` live keys of `range` as of the pinned
/// `seq`, a chunk of [`scan_iter::SCAN_CHUNK`] at a time (so writers wait at most one
/// chunk for the order's lock), copying only each chunk's last key (where the next one
/// resumes).
fn visit_at(
    inner: &Inner,
    seq: u64,
    range: &ScanRange,
    dir: Direction,
    limit: usize,
    f: &mut dyn FnMut(&[u8], &[u8]),
) -> Result<()> {
    inner.check_open()?;
    let mut seen = 0;
    let mut resume: Option<Bytes> = None;
    while seen < limit {
        let want = (limit - seen).min(scan_iter::SCAN_CHUNK);
        let walk = Walk {
            range,
            dir,
            seq,
            resume: resume.as_deref(),
            limit: want,
        };
        let (visited, last) = inner.index.visit_at(&walk, f);
        seen += visited;
        match last {
            Some(k) if visited == want => resume = Some(k),
            _ => break,
        }
    }
    Ok(())
}

fn scan_pinned(inner: Arc<Inner>, pin: Arc<Pin>, range: ScanRange, dir: Direction) -> KvIter {
    scan_iter::chunked((inner, pin), move |(inner, pin), resume, limit| {
        inner.check_open()?;
        Ok(inner.index.range_at(&range, dir, pin.seq(), resume, limit))
    })
}

impl Storage for MemoryEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Memory
    }

    fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.inner.check_open()?;
        Ok(self.inner.index.get_latest(key))
    }

    fn read_with(&self, key: &[u8], f: &mut dyn FnMut(Option<ValueRef<'_>>)) -> Result<()> {
        self.inner.check_open()?;
        let index = &self.inner.index;
        let mut f = |v: Option<&[u8]>| f(v.map(ValueRef::Borrowed));
        if self.inner.in_session() {
            // SAFETY: this thread's session holds the writer lock, which every writer of
            // the index holds.
            unsafe { index.read_latest_serialised(key, &mut f) };
        } else {
            index.read_latest(key, f);
        }
        Ok(())
    }

    fn prefetch(&self, keys: &[&[u8]]) {
        // One lock for the whole window instead of a shard lock per key: the lock's
        // atomic is a full barrier, and one per key would make each key's misses wait for
        // the previous key's.
        let _w = self.inner.lock_writer();
        for window in keys.chunks(crate::cache_hint::PREFETCH_WINDOW) {
            // SAFETY: every writer of the index holds `writer`, and so does this.
            unsafe { self.inner.index.prefetch_serialised(window) };
        }
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
        for window in keys.chunks(crate::cache_hint::PREFETCH_WINDOW) {
            self.inner.index.prefetch_concurrent(window);
        }
    }

    fn scan(&self, range: ScanRange, dir: Direction) -> KvIter {
        let pin = Arc::new(self.inner.index.pin());
        scan_pinned(Arc::clone(&self.inner), pin, range, dir)
    }

    fn visit_entries(
        &self,
        range: ScanRange,
        dir: Direction,
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        let pin = self.inner.index.pin();
        visit_at(&self.inner, pin.seq(), &range, dir, limit, f)
    }

    /// The session holds the writer lock from a round's first read to its write: its
    /// reads (the engine reading metadata and members before writing) then skip the
    /// shard's and the entry's locks, four atomics per read, each a full barrier.
    fn begin_writer_session(&self) -> bool {
        if self.inner.in_session() {
            return false;
        }
        std::mem::forget(self.inner.writer.lock());
        self.inner.session.store(thread_token(), Ordering::Relaxed);
        true
    }

    fn end_writer_session(&self) {
        if self.inner.in_session() {
            self.inner.session.store(0, Ordering::Relaxed);
            // SAFETY: `begin_writer_session` locked it for this thread and forgot the
            // guard; this thread's token was there, so it is still locked, by it.
            unsafe { self.inner.writer.force_unlock() };
        }
    }

    fn write(&self, batch: WriteBatch, _opts: WriteOptions) -> Result<u64> {
        self.inner.check_open()?;
        self.inner.lifecycle.check_writable()?;
        let _w = self.inner.lock_writer();
        let registry = self.inner.index.registry();
        if batch.is_empty() {
            return Ok(registry.visible());
        }
        let seq = registry.visible() + 1;
        // The batch is read in place and dropped whole after the index has it: a shared
        // `Bytes` dropped between two keys' look-ups is a locked decrement, a full
        // barrier that waited for the previous key's stores and misses (perf, MSET -P 16:
        // 12% of the server's samples on that one instruction).
        let ops = batch.into_ops();
        let applied = self.inner.index.apply(
            seq,
            ops.iter().map(|op| match op {
                BatchOp::Put(k, v) => (k.as_ref(), Some(Val::new(v))),
                BatchOp::Delete(k) => (k.as_ref(), None),
            }),
            &mut |_, _| {},
        );
        registry.publish(seq);
        applied.settle(&mut |_, _| {});
        drop(ops);
        Ok(seq)
    }

    fn snapshot(&self) -> Box<dyn Snapshot> {
        Box::new(MemSnapshot {
            inner: Arc::clone(&self.inner),
            pin: Arc::new(self.inner.index.pin()),
        })
    }

    fn last_seq(&self) -> u64 {
        self.inner.index.registry().visible()
    }

    fn sync(&self) -> Result<()> {
        self.inner.check_open()
    }

    fn checkpoint(&self, dir: &Path) -> Result<()> {
        self.inner.check_open()?;
        let snap = self.snapshot();
        let seq = snap.seq();
        checkpoint::write(dir, seq, snap.scan(ScanRange::all(), Direction::Forward)).map(|_| ())
    }

    fn compact(&self) -> Result<()> {
        self.inner.check_open()?;
        while self.inner.gc_pending_settled() > 0 {
            if self.inner.gc_step(GC_STEP_KEYS) == 0 {
                break;
            }
            // Keys still needed by open snapshots go back in the queue; stop after one
            // pass over them rather than spinning.
            if self.inner.gc_pending_settled() > 0 && self.inner.index.registry().open_pins() > 0 {
                break;
            }
        }
        Ok(())
    }

    fn stats(&self) -> StorageStats {
        let idx = &self.inner.index;
        let mut s = StorageStats::empty(EngineKind::Memory, self.inner.lifecycle.state());
        s.last_seq = idx.registry().visible();
        s.live_keys = idx.live_keys();
        s.live_bytes = idx.live_bytes();
        s.open_snapshots = idx.registry().open_pins();
        s.retained_versions = idx.retained_versions();
        s.disk_bytes = std::fs::metadata(self.inner.dir.join(checkpoint::CHECKPOINT_FILE))
            .map(|m| m.len())
            .unwrap_or(0);
        s
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
        if let Some(t) = self.gc_thread.lock().take() {
            t.thread().unpark();
            let _ = t.join();
        }
        self.inner._lock.lock().take();
        Ok(())
    }
}

impl Drop for MemoryEngine {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
