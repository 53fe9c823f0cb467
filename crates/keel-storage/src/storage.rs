//! The storage trait every engine implements, and its snapshot trait.
//!
//! Keys and values are bytes; keys are ordered bytewise. The trait is object safe so the
//! layers above hold an `Arc<dyn Storage>` and never know which engine is underneath.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::WriteBatch;
use crate::error::Result;
use crate::lifecycle::LifecycleState;
use crate::options::{EngineKind, WriteOptions};
use crate::range::{Direction, ScanRange};
use crate::stats::StorageStats;

/// A key and its value.
pub type KvPair = (Bytes, Bytes);

/// A key found by its position in a range ([`Storage::key_at`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAt {
    /// The key at the position asked for; None past the range's end.
    pub key: Option<Bytes>,
    /// How many keys the engine holds in the range, counted as positions are.
    pub keys: u64,
}

/// How many keys a range holds and how many of them a part of it holds
/// ([`Storage::count_within`]), counted at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyCounts {
    /// Keys in the whole range, counted as [`KeyAt::keys`] counts them.
    pub keys: u64,
    /// Keys in the part asked about (its keys outside the range are not counted).
    pub within: u64,
}

/// An owning iterator over a scan. It pins the state it reads (an implicit or explicit
/// snapshot), so it sees one point in time however long it lives.
pub type KvIter = Box<dyn Iterator<Item = Result<KvPair>> + Send>;

/// Read access to one point in time.
pub trait Snapshot: Send + Sync {
    /// Sequence number of the last batch this snapshot sees.
    fn seq(&self) -> u64;
    /// The value of `key` at this snapshot.
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>>;
    /// Keys in `range` at this snapshot, in `dir` order.
    fn scan(&self, range: ScanRange, dir: Direction) -> KvIter;

    /// Calls `f` with the key and value of each of the first `limit` keys of `range` at
    /// this snapshot, in `dir` order, for a reader that keeps neither as they are (it
    /// copies out the part it needs, or only looks): an engine may lend its own bytes
    /// instead of copying keys and values out. `f` may run under an engine lock, so it
    /// must not call back into storage.
    fn visit_entries(
        &self,
        range: ScanRange,
        dir: Direction,
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        visit_scan(self.scan(range, dir), limit, f)
    }

    /// [`Storage::key_at`] (the count and positions are the engine's, not this
    /// snapshot's: compare `keys` with how many live keys the snapshot sees there).
    fn key_at(&self, _range: &ScanRange, _n: u64) -> Option<KeyAt> {
        None
    }

    /// [`Storage::count_within`] (the engine's counts, as with `key_at`).
    fn count_within(&self, _range: &ScanRange, _within: &ScanRange) -> Option<KeyCounts> {
        None
    }
}

/// Calls `f` with the first `limit` entries of a scan (the default `visit_entries`).
fn visit_scan(scan: KvIter, limit: usize, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<()> {
    for r in scan.take(limit) {
        let (k, v) = r?;
        f(&k, &v);
    }
    Ok(())
}

/// A value handed to a [`Storage::read_with`] callback: borrowed from the engine for
/// the call only, or owned when the engine had to produce a copy anyway.
#[derive(Debug)]
pub enum ValueRef<'a> {
    /// The engine's own bytes, valid during the callback.
    Borrowed(&'a [u8]),
    /// A value the engine read into a buffer of its own.
    Owned(Bytes),
}

impl ValueRef<'_> {
    /// The value's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            ValueRef::Borrowed(b) => b,
            ValueRef::Owned(b) => b,
        }
    }

    /// The value as an owned buffer: a copy when borrowed, the buffer itself when owned.
    pub fn into_bytes(self) -> Bytes {
        match self {
            ValueRef::Borrowed(b) => Bytes::copy_from_slice(b),
            ValueRef::Owned(b) => b,
        }
    }

    /// The bytes from `offset` on as an owned buffer: a copy when borrowed, the same
    /// buffer advanced when owned. None when `offset` is past the end.
    pub fn tail_from(self, offset: usize) -> Option<Bytes> {
        match self {
            ValueRef::Borrowed(b) => b.get(offset..).map(Bytes::copy_from_slice),
            ValueRef::Owned(mut b) => (offset <= b.len()).then(|| {
                bytes::Buf::advance(&mut b, offset);
                b
            }),
        }
    }
}

/// An ordered byte key-value store with atomic batches and point-in-time snapshots.
pub trait Storage: Send + Sync {
    /// Which engine this is.
    fn kind(&self) -> EngineKind;

    /// The latest value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>>;

    /// Calls `f` once with the latest value of `key` (None: absent), for a reader that
    /// only looks at the value or keeps part of it: an in-memory engine lends its own
    /// bytes instead of copying them out. `f` may run under an engine lock, so it must
    /// not call back into storage.
    fn read_with(&self, key: &[u8], f: &mut dyn FnMut(Option<ValueRef<'_>>)) -> Result<()> {
        f(self.get(key)?.map(ValueRef::Owned));
        Ok(())
    }

    /// Keys in `range` at the moment of the call (an implicit snapshot), in `dir` order.
    fn scan(&self, range: ScanRange, dir: Direction) -> KvIter;

    /// Calls `f` with the key and value of each of the first `limit` keys of `range` at
    /// the moment of the call, in `dir` order (see [`Snapshot::visit_entries`]).
    fn visit_entries(
        &self,
        range: ScanRange,
        dir: Direction,
        limit: usize,
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        visit_scan(self.scan(range, dir), limit, f)
    }

    /// The key at position `n` (0: the first) of `range`, and how many keys `range`
    /// holds, in O(log n), from an engine that keeps order statistics (memory, bitcask);
    /// None from one that does not (lsm), whose caller walks the range instead.
    ///
    /// Positions and the count are over every key the engine holds, which includes
    /// deleted keys whose old versions a snapshot still needs and keys written after a
    /// reader's snapshot. So a caller that knows how many live keys its view has in the
    /// range (a collection's length) compares it with `keys`: equal, every key held
    /// there is live in its view, and positions are its view's.
    fn key_at(&self, _range: &ScanRange, _n: u64) -> Option<KeyAt> {
        None
    }

    /// How many keys `range` holds and how many of them lie in `within`, in O(log n) and
    /// at one moment, from an engine that keeps order statistics; None from one that
    /// does not. Counted as [`Storage::key_at`] counts: when `keys` equals the live keys
    /// a reader's view has in `range`, `within` is that view's count there too (a rank,
    /// or the size of a score interval, without walking it).
    fn count_within(&self, _range: &ScanRange, _within: &ScanRange) -> Option<KeyCounts> {
        None
    }

    /// A hint from the writer that `keys` are about to be read and written: an engine may
    /// start bringing them into the CPU cache, so that their memory latencies overlap
    /// instead of coming one after another. No effect on results. An engine may exclude
    /// its own writers meanwhile, so readers should not call it.
    fn prefetch(&self, _keys: &[&[u8]]) {}

    /// A hint from a reader that it is about to read `keys` one after another: like
    /// [`Storage::prefetch`], but safe beside writers. No effect on results.
    fn prefetch_reads(&self, _keys: &[&[u8]]) {}

    /// Reclaims now, for up to `max_keys` of the keys waiting for it, the versions no
    /// snapshot needs any more, as the engine's background step does every so often;
    /// returns how many keys it looked at. For a writer that finds deleted keys still
    /// counted in a range ([`Storage::key_at`]'s count includes them until then).
    /// Default: nothing to reclaim.
    fn reclaim(&self, _max_keys: usize) -> usize {
        0
    }

    /// Starts a writer session on the calling thread: until
    /// [`Storage::end_writer_session`] on this thread, the engine keeps its writer lock
    /// for it, and this thread's reads, prefetches and writes skip the locks that only
    /// exclude a writer. For the thread that reads, then writes, a round of commands.
    /// Returns whether a session began (false: the engine has none, or this thread is
    /// in one already; nothing to end). [`WriterSession`] ends it even on unwinding.
    fn begin_writer_session(&self) -> bool {
        false
    }

    /// Ends the calling thread's writer session, if it is in one.
    fn end_writer_session(&self) {}

    /// Applies `batch` atomically and returns its sequence number. With `opts.sync` (or
    /// policy `always`) it returns only once the batch is on stable storage. An empty
    /// batch is allowed and returns the current sequence number. The batch's `Bytes` may
    /// be slices of a larger buffer: an engine copies what it keeps beyond the call.
    fn write(&self, batch: WriteBatch, opts: WriteOptions) -> Result<u64>;

    /// A snapshot of the latest state; it keeps seeing exactly that state while writers
    /// go on. Dropping it lets the versions only it needed be reclaimed.
    fn snapshot(&self) -> Box<dyn Snapshot>;

    /// Sequence number of the last applied batch.
    fn last_seq(&self) -> u64;

    /// Forces everything written so far to stable storage.
    fn sync(&self) -> Result<()>;

    /// Writes a consistent copy of the current state into the empty or absent directory
    /// `dir`, which `open` with the same engine accepts.
    fn checkpoint(&self, dir: &Path) -> Result<()>;

    /// Runs a merge/compaction now (bitcask merge, LSM major compaction, memory version GC)
    /// and returns when it is done.
    fn compact(&self) -> Result<()>;

    /// Current numbers.
    fn stats(&self) -> StorageStats;

    /// Current lifecycle state.
    fn state(&self) -> LifecycleState;

    /// Why the store is Failed, if it is.
    fn failure_reason(&self) -> Option<String>;

    /// Flushes, stops background work and releases the directory. Later calls fail with
    /// [`crate::StorageError::Closed`]; dropping the last handle also closes.
    fn close(&self) -> Result<()>;
}

/// A writer session on the calling thread for as long as this lives (see
/// [`Storage::begin_writer_session`]).
pub struct WriterSession(Option<Arc<dyn Storage>>);

impl WriterSession {
    /// Begins a session on `store` for the calling thread.
    pub fn begin(store: &Arc<dyn Storage>) -> WriterSession {
        WriterSession(store.begin_writer_session().then(|| Arc::clone(store)))
    }
}

impl Drop for WriterSession {
    fn drop(&mut self) {
        if let Some(store) = &self.0 {
            store.end_writer_session();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_ref_gives_its_tail_borrowed_or_owned() {
        let record = Bytes::from(b"head:body".to_vec());
        for v in [
            ValueRef::Borrowed(&record[..]),
            ValueRef::Owned(record.clone()),
        ] {
            assert_eq!(v.as_slice(), b"head:body");
            assert_eq!(v.tail_from(5).as_deref(), Some(&b"body"[..]));
        }
        assert_eq!(
            ValueRef::Owned(record.clone()).tail_from(9).as_deref(),
            Some(&b""[..])
        );
        assert_eq!(ValueRef::Borrowed(&record[..]).tail_from(10), None);
        assert_eq!(ValueRef::Owned(record).tail_from(10), None);
    }
}
