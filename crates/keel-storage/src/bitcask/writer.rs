//! The write path: encode a batch outside the lock, then under the writer lock stamp its
//! sequence number, append it with one write, install it in the index and publish it;
//! then wait for durability as the sync policy asks. Also segment rotation.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::group_commit::Tail;
use super::record::{self, EncodedBatch};
use super::segment::{self, Segment};
use super::{Inner, Loc};
use crate::batch::WriteBatch;
use crate::error::{IoContext, Result, StorageError};
use crate::options::{SyncPolicy, WriteOptions};

/// Batches with at least this many operations ask for their fdatasync before they are
/// installed in the index (see [`super::group_commit`]).
const EARLY_SYNC_OPS: usize = 32;

/// The segment being appended to.
#[derive(Debug)]
pub struct Active {
    /// The segment.
    pub seg: Arc<Segment>,
    /// Bytes written to it.
    pub size: u64,
}

/// State owned by the writer lock.
#[derive(Debug)]
pub struct WriterState {
    /// The active segment.
    pub active: Active,
    /// The next unused segment id.
    pub next_id: u32,
    /// Bytes appended since open (the group-commit position).
    pub lsn: u64,
}

/// A sealed segment whose hint file is still to be written, outside the writer lock.
/// The hint is built by reading the sealed file back (it is in the page cache), so the
/// write path keeps no per-record hint state in memory.
#[derive(Debug)]
pub struct SealJob {
    /// Segment id.
    pub id: u32,
    /// The store's sequence number when it was sealed.
    pub max_seq: u64,
    /// Its data file length.
    pub data_len: u64,
}

/// Creates the empty data file of segment `id` and makes its directory entry durable.
pub fn create_segment(dir: &Path, id: u32) -> Result<Arc<Segment>> {
    let path = segment::data_path(dir, id);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .ctx("create segment", &path)?;
    segment::sync_dir(dir)?;
    Ok(Segment::new(id, path, file, 0))
}

impl Inner {
    #[cfg(test)]
    fn injected_fault(&self, path: &Path) -> Result<()> {
        if self.faults.fail_writes.load(Ordering::Acquire) {
            return Err(StorageError::io(
                "append to segment",
                path,
                std::io::Error::other("injected fault"),
            ));
        }
        Ok(())
    }

    #[cfg(not(test))]
    fn injected_fault(&self, _path: &Path) -> Result<()> {
        Ok(())
    }

    /// Applies `batch` atomically; see [`crate::Storage::write`].
    pub(crate) fn write_batch(&self, batch: WriteBatch, opts: WriteOptions) -> Result<u64> {
        self.check_open()?;
        self.lifecycle.check_writable()?;
        if batch.is_empty() {
            return Ok(self.index.registry().visible());
        }
        let durable = opts.sync || self.sync_policy == SyncPolicy::Always;
        let mut enc = EncodedBatch::encode(batch.into_ops())?;
        let len = enc.buf.len() as u64;
        // Worth a thread handoff only when installing the batch takes a while.
        let early_sync = durable && enc.ops.len() >= EARLY_SYNC_OPS;
        let mut freed: Vec<(u32, u64)> = Vec::new();
        let (seq, end_lsn) = {
            let mut w = self.writer.lock();
            // Re-checked under the lock: close and failures order against appends here.
            self.check_open()?;
            self.lifecycle.check_writable()?;
            let needs_room = w.active.size + len > u64::from(u32::MAX);
            if w.active.size > 0 && (w.active.size >= self.opts.max_segment_bytes || needs_room) {
                self.rotate(&mut w)?;
            }
            let registry = self.index.registry();
            let seq = registry.visible() + 1;
            enc.seal(seq);
            let base = w.active.size;
            let seg = Arc::clone(&w.active.seg);
            let res = self.injected_fault(&seg.path).and_then(|()| {
                seg.file
                    .write_all_at(&enc.buf, base)
                    .ctx("append to segment", &seg.path)
            });
            self.lifecycle.guard(res)?;
            if early_sync {
                self.commit.advance(w.lsn + len);
                self.commit.request_early(w.lsn + len);
            }

            let mut tomb_bytes = 0u64;
            let cache = &self.cache;
            let ops = enc.ops.into_iter().map(|(key, off, value)| {
                let Some(value) = value else {
                    tomb_bytes += record::record_len(key.len(), 0);
                    return (key, None);
                };
                let loc = Loc {
                    segment: seg.id,
                    offset: (base + u64::from(off)) as u32,
                    vlen: value.len() as u32,
                };
                // Write-through: a value just written is the likeliest to be read next,
                // and without this every read after a write would pay a pread once.
                // Nobody can look `loc` up before the batch is published below.
                cache.insert(&key, loc, &value);
                (key, Some(loc))
            });
            // Installs the batch, publishes `seq`, then drops what it overwrote or
            // deleted that no snapshot holds (counted as garbage below).
            let mut dropped = |k: &[u8], v: Option<&Loc>| {
                if let Some(l) = v {
                    freed.push((l.segment, record::record_len(k.len(), l.vlen)));
                }
            };
            let applied = self.index.apply(seq, ops, &mut dropped);
            registry.publish(seq);
            applied.settle(&mut dropped);
            w.active.size = base + len;
            seg.size.store(base + len, Ordering::Relaxed);
            seg.add_garbage(tomb_bytes);
            w.lsn += len;
            self.commit.advance(w.lsn);
            (seq, w.lsn)
        };
        for (seg, bytes) in freed {
            self.segments.add_garbage(seg, bytes);
        }
        if durable {
            self.commit.wait_durable(end_lsn, &self.lifecycle)?;
        }
        Ok(seq)
    }

    /// Forces everything written so far to stable storage.
    pub(crate) fn sync_all(&self) -> Result<()> {
        self.lifecycle.check_writable()?;
        let lsn = self.commit.written();
        self.commit.wait_durable(lsn, &self.lifecycle)
    }

    /// Seals the active segment (fsync; its hint is queued for the background thread)
    /// and starts a new one with the next id. An empty active segment is dropped
    /// instead of sealed. Called under the writer lock; errors move the store to Failed.
    pub(crate) fn rotate(&self, w: &mut WriterState) -> Result<()> {
        let res = self.rotate_inner(w);
        self.lifecycle.guard(res)
    }

    fn rotate_inner(&self, w: &mut WriterState) -> Result<()> {
        let id = w.next_id;
        let next = id
            .checked_add(1)
            .ok_or_else(|| StorageError::InvalidArgument("segment ids exhausted".into()))?;
        let old = Arc::clone(&w.active.seg);
        if w.active.size == 0 {
            self.segments.remove(&[old.id]);
            segment::remove_if_exists(&old.path)?;
        } else {
            old.file
                .sync_data()
                .ctx("fsync sealed segment", &old.path)?;
        }
        let seg = create_segment(&self.dir, id)?;
        w.next_id = next;
        self.segments.insert(Arc::clone(&seg));
        let sealed = std::mem::replace(
            &mut w.active,
            Active {
                seg: Arc::clone(&seg),
                size: 0,
            },
        );
        self.commit.rotated(Tail {
            file: Arc::clone(&seg.file),
            path: seg.path.clone(),
            lsn: w.lsn,
            start_lsn: w.lsn,
            start_offset: 0,
        });
        if sealed.size > 0 {
            let max_seq = self.index.registry().visible();
            self.pending_hints.lock().push(SealJob {
                id: old.id,
                max_seq,
                data_len: sealed.size,
            });
        }
        Ok(())
    }
}
