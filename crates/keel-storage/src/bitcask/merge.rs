//! Merge: rewrites every version the index still references in the sealed segments
//! (all but the active one) into fresh segments with hint files inside `merge/`, marks
//! the result done, then installs it: the files move into the main directory under
//! reserved ids, each index version is relocated with a compare-and-swap on its old
//! location, and the old segments are deleted. Readers and writers go on throughout;
//! the writer lock is taken only for the rotations at the start and at the install.
//!
//! Why tombstones can be dropped: every record in the merged segments is older than
//! every record in the segments left alone (rotation order, and merge output gets ids
//! reserved while the active segment moves past them). So a deleted key needs its
//! tombstone in the output only when an older version of it is rewritten for a snapshot;
//! otherwise nothing older survives the merge that the tombstone would have to shadow.
//!
//! How the copy works, and what it checks. One walk over the index in key order lists
//! every referenced version of the merge set with its location, length, sequence
//! number and a key fingerprint (for large merges two threads take turns at 32 pieces
//! of the key space). Each segment's list is sorted by offset, and each segment is then
//! read front to back once in big windows, by one of two copy threads (split where half
//! of the bytes are behind). A live record is copied byte for byte, so its own CRC
//! travels with it: adjacent live records become one run that goes out with one write,
//! and only a record whose batch ends with a record that is not copied (or that would
//! land in the next output file) is re-encoded, with BATCH_END, because recovery reads
//! a file as batches that each end with that flag and carry one sequence number.
//!
//! Each copied record is still checked before it is written, because relocation trusts
//! the copy: its CRC (so damage is reported now, naming the old file and offset,
//! instead of being sealed into a new file whose hint-file CRC would then vouch for it
//! at the next open), its lengths, sequence number and key fingerprint against what
//! the index holds (so a stale or wrong location can never be relocated to some other
//! record), and that no two locations overlap. The bytes have to be in memory anyway,
//! because the hint trailer carries the CRC of the whole new file. That is also why
//! runs are read and written rather than handed to `copy_file_range`: the in-kernel
//! copy would save nothing once the bytes are read to be checked and summed, and not
//! reading them would mean trusting the index and the old file blindly.
//!
//! Durability: each output file gets early fdatasyncs while it is written, and its
//! final fdatasync, and its hint (written alongside, entry by entry) its fdatasync on a
//! sealing thread while the copy goes on into the next file; the marker is written only
//! after all of them, so a crash before it leaves an unreferenced `merge/` that open
//! discards, and a crash after it an install that open finishes. Once the marker is
//! durable the old hint files are deleted on a second thread while the index is
//! relocated; the old data files go last, when no reader can reach them any more.

use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};

use super::marker::{self, Marker};
use super::output::{Finished, OutputWriter};
use super::record::{self, FLAG_BATCH_END, FLAG_TOMBSTONE, HEADER_LEN};
use super::segment::{self, Segment};
use super::writer::SealJob;
use super::{Inner, Loc};
use crate::error::{IoContext, Result, StorageError};

/// Keys visited per hold of the index's read lock, and relocations per write lock.
const CHUNK: usize = 4096;

/// Index entries from which the walk, and versions to copy from which the copy, use
/// two threads.
const PARALLEL_MIN: usize = 16 * 1024;

/// First output id of the second copy thread inside `merge/` (the first starts at 1).
const SECOND_RUN_ID: u32 = 1 << 30;

/// Pieces of the key space the two walk threads take turns at: enough that keys
/// crowded into a few of them (say hex digits, which leave the bytes between '9' and
/// 'a' empty) still give both threads about half.
const WALK_PIECES: usize = 32;

/// Bytes read from a merged segment at a time (tiny in unit tests, so their small
/// stores cross window edges in the middle of batches).
#[cfg(not(test))]
const WINDOW: usize = 4 << 20;
#[cfg(test)]
const WINDOW: usize = 300;

/// A rewritten version waiting to be pointed at its new place. Its key is
/// `keys[key_at..key_at + key_len]` of its [`Part`].
#[derive(Clone, Copy)]
struct Reloc {
    key_at: usize,
    key_len: u32,
    old: Loc,
}

/// A record to copy, with what the copy checks it against, so the copy (in file order)
/// touches nothing else that was built in key order.
#[derive(Clone, Copy, Default)]
struct Job {
    offset: u32,
    /// Its place in its segment's list as the walk made it (key order), which is where
    /// its new location goes in [`Part::placed`].
    reloc: u32,
    seq: u64,
    /// [`fingerprint`] of the key the index holds for it.
    fp: u64,
    klen: u32,
    vlen: u32,
}

impl Job {
    fn len(&self) -> u64 {
        record::record_len(self.klen as usize, self.vlen)
    }
}

/// FNV-1a of a key: compared against the key in the record read back, in place of the
/// key itself (which sits in key order, far from the record's place in file order).
fn fingerprint(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What one walk over a range of keys found, and where its versions were copied to.
#[derive(Default)]
struct Part {
    keys: Vec<u8>,
    relocs: Vec<Reloc>,
    /// Per segment of the merge set (by position in it): the records to copy from it,
    /// sorted by offset once the walk is done.
    jobs: Vec<Vec<Job>>,
    /// Per segment of the merge set: the bytes of those records.
    bytes: Vec<u64>,
    /// (key_at, key_len, seq) of tombstones to rewrite.
    tombs: Vec<(usize, u32, u64)>,
    /// (piece number, first relocation, end) of each piece of the key space this part
    /// walked, in walking (and key) order.
    pieces: Vec<(usize, usize, usize)>,
    /// Per segment of the merge set, per record in key order (`Job::reloc`): where its
    /// copy went, as output id << 32 | offset (output ids start at 1, so 0 means not
    /// copied). The copy threads store into it directly; per segment, so those stores
    /// stay within a small array instead of landing all over one big one.
    placed: Vec<Vec<AtomicU64>>,
}

impl Part {
    fn key(&self, at: usize, len: u32) -> &[u8] {
        self.keys.get(at..at + len as usize).unwrap_or(&[])
    }
}

/// What a merge copied: one part per walk thread.
type Plan = Vec<Part>;

/// A record read and checked, held back until the next one shows whether it may keep
/// its flags.
#[derive(Clone, Copy)]
struct Pending<'a> {
    /// Offset in the source segment.
    src: u64,
    len: u64,
    seq: u64,
    flags: u8,
    klen: u32,
    vlen: u32,
    /// Where to note its new place.
    placed: &'a AtomicU64,
    /// Its bytes were moved to [`Source::side`] because the window moved on.
    side: bool,
}

/// A merged segment being read front to back in windows, and the run of copied bytes
/// of the current window waiting to be written with one call.
struct Source<'a> {
    seg: &'a Segment,
    size: u64,
    win: &'a mut Vec<u8>,
    win_start: u64,
    win_len: usize,
    side: &'a mut Vec<u8>,
    run: Option<(usize, usize)>,
}

impl Source<'_> {
    /// Makes the window hold `[off, off + len)`; the caller has checked it lies inside
    /// the file. A pending record outside the new window keeps its bytes in `side`.
    fn load(
        &mut self,
        off: u64,
        len: u64,
        pending: &mut Option<Pending>,
        out: &mut OutputWriter,
    ) -> Result<()> {
        if off >= self.win_start && off + len <= self.win_start + self.win_len as u64 {
            return Ok(());
        }
        self.flush(out)?;
        if let Some(p) = pending.as_mut().filter(|p| !p.side) {
            let at = (p.src - self.win_start) as usize;
            let bytes = self.win.get(at..at + p.len as usize).unwrap_or(&[]);
            self.side.clear();
            self.side.extend_from_slice(bytes);
            p.side = true;
        }
        let n = (self.size - off).min(WINDOW.max(len as usize) as u64) as usize;
        if self.win.len() < n {
            self.win.resize(n, 0);
        }
        self.win_start = off;
        self.win_len = 0;
        let buf = self.win.get_mut(..n).unwrap_or(&mut []);
        std::os::unix::fs::FileExt::read_exact_at(&*self.seg.file, buf, off).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                StorageError::corrupt(
                    &self.seg.path,
                    off,
                    "segment shorter than its recorded size",
                )
            } else {
                StorageError::io("read segment", &self.seg.path, e)
            }
        })?;
        self.win_len = n;
        Ok(())
    }

    /// `len` bytes at `off` of the window.
    fn window(&self, off: u64, len: u64) -> &[u8] {
        let at = off.saturating_sub(self.win_start) as usize;
        self.win
            .get(..self.win_len)
            .and_then(|w| w.get(at..at + len as usize))
            .unwrap_or(&[])
    }

    fn bytes_of(&self, p: &Pending) -> &[u8] {
        if p.side {
            self.side
        } else {
            self.window(p.src, p.len)
        }
    }

    /// Writes the waiting run.
    fn flush(&mut self, out: &mut OutputWriter) -> Result<()> {
        if let Some((s, e)) = self.run.take() {
            out.write(self.win.get(s..e).unwrap_or(&[]))?;
        }
        Ok(())
    }

    /// Writes `p` to `out` (as part of the run when it is copied as is) and notes where
    /// it went. `next` is the record copied after it from this segment, if any.
    fn emit(
        &mut self,
        p: &Pending<'_>,
        next: Option<&Pending<'_>>,
        out: &mut OutputWriter,
    ) -> Result<()> {
        // Kept as is if it ends its batch, or if the next record in the output belongs
        // to the same batch (same sequence number) and lands in the same file.
        let keep = p.flags & FLAG_BATCH_END != 0
            || next.is_some_and(|n| n.seq == p.seq && out.fits_after(p.len, n.len));
        let klen = p.klen as usize;
        let at = if keep {
            if out.would_roll(p.len) {
                self.flush(out)?;
            }
            let key = self
                .bytes_of(p)
                .get(HEADER_LEN..HEADER_LEN + klen)
                .unwrap_or(&[]);
            let at = out.place(p.len, p.seq, p.flags, key, p.vlen)?;
            if p.side {
                self.flush(out)?;
                out.write(self.side)?;
            } else {
                let s = (p.src - self.win_start) as usize;
                let e = s + p.len as usize;
                match self.run {
                    Some((rs, re)) if re == s => self.run = Some((rs, e)),
                    _ => {
                        self.flush(out)?;
                        self.run = Some((s, e));
                    }
                }
            }
            at
        } else {
            self.flush(out)?;
            let bytes = self.bytes_of(p);
            let key = bytes.get(HEADER_LEN..HEADER_LEN + klen).unwrap_or(&[]);
            let value = bytes.get(HEADER_LEN + klen..).unwrap_or(&[]);
            out.append(p.seq, p.flags | FLAG_BATCH_END, key, value)?
        };
        p.placed
            .store((u64::from(at.0) << 32) | u64::from(at.1), Ordering::Relaxed);
        Ok(())
    }
}

/// `jobs` sorted by offset. A least-significant-digit radix sort of (offset, index)
/// pairs, 8 bits a pass, skipping digits every offset shares, then one gather: a
/// segment's offsets come in key order, i.e. at random, and sorting them with a
/// comparison sort (or moving whole jobs in every pass) cost several times as much.
fn sorted_by_offset(jobs: &[Job]) -> Vec<Job> {
    if jobs.len() < 64 {
        let mut v = jobs.to_vec();
        v.sort_unstable_by_key(|j| j.offset);
        return v;
    }
    let n = jobs.len();
    let mut keys: Vec<u64> = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (u64::from(j.offset) << 32) | i as u64)
        .collect();
    let mut tmp = vec![0u64; n];
    let mut in_keys = true;
    for shift in [32u32, 40, 48, 56] {
        let (src, dst): (&[u64], &mut [u64]) = if in_keys {
            (&keys, &mut tmp)
        } else {
            (&tmp, &mut keys)
        };
        let mut counts = [0usize; 256];
        for k in src {
            counts[((k >> shift) & 0xff) as usize] += 1;
        }
        if counts.contains(&n) {
            continue;
        }
        let mut at = 0;
        for c in counts.iter_mut() {
            let here = *c;
            *c = at;
            at += here;
        }
        for &k in src {
            let d = ((k >> shift) & 0xff) as usize;
            if let Some(slot) = dst.get_mut(counts[d]) {
                *slot = k;
            }
            counts[d] += 1;
        }
        in_keys = !in_keys;
    }
    let sorted = if in_keys { &keys } else { &tmp };
    sorted
        .iter()
        .filter_map(|&k| jobs.get(k as u32 as usize).copied())
        .collect()
}

/// Up to `n - 1` keys, rising, strictly after `a` and at most `b`, spread evenly between
/// them when keys are read as big-endian fractions (after their common prefix): where
/// walks over the index are cut into pieces. Even for uniformly spread keys (hashes,
/// random ids, numbers of equal width); skewed keys only make some pieces bigger.
/// Finding keys of known rank would mean walking the tree first.
fn split_points(a: &[u8], b: &[u8], n: usize) -> Vec<Vec<u8>> {
    if a >= b || n < 2 {
        return Vec::new();
    }
    let common = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let word = |k: &[u8]| {
        let mut w = [0u8; 8];
        for (d, s) in w.iter_mut().zip(k.iter().skip(common)) {
            *d = *s;
        }
        u128::from(u64::from_be_bytes(w))
    };
    let (x, y) = (word(a), word(b));
    let Some(prefix) = b.get(..common) else {
        return Vec::new();
    };
    let mut out: Vec<Vec<u8>> = Vec::new();
    for i in 1..n as u128 {
        let at = x + y.saturating_sub(x) * i / n as u128;
        let mut key = prefix.to_vec();
        key.extend_from_slice(&(at as u64).to_be_bytes());
        while key.len() > common && key.last() == Some(&0) {
            key.pop();
        }
        let after_last = out.last().map_or(a, |l| l.as_slice());
        if after_last < key.as_slice() && key.as_slice() <= b {
            out.push(key);
        }
    }
    out
}

/// One segment's share of a copy thread: the segment, its position in the merge set
/// and, per part, its records (ascending by offset).
type SegWork<'a> = (u32, usize, [(&'a [Job], &'a Part); 2]);

/// Where a test wants merge to stop, as if the process died there.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopAt {
    /// After the output is written, before the marker.
    BeforeMarker,
    /// After the marker, before anything is installed.
    AfterMarker,
}

impl Inner {
    /// Runs one merge now (serialised with any other), inside Compacting.
    pub(crate) fn compact_now(&self) -> Result<()> {
        self.check_open()?;
        let _m = self.merge_lock.lock();
        self.lifecycle.check_writable()?;
        if !self.lifecycle.begin_compaction() {
            return self.lifecycle.check_writable();
        }
        let res = self.merge();
        self.lifecycle.end_compaction();
        res
    }

    fn merge(&self) -> Result<()> {
        self.gc_all();
        {
            let mut w = self.writer.lock();
            if w.active.size > 0 {
                self.rotate(&mut w)?;
            }
        }
        // Everything older than the active segment; segments sealed by writers while
        // the merge runs have higher ids and are left alone.
        let active_id = self.writer.lock().active.seg.id;
        let mut merge_set: Vec<u32> = self
            .segments
            .all()
            .iter()
            .map(|s| s.id)
            .filter(|&id| id < active_id)
            .collect();
        merge_set.sort_unstable();
        // Hints not yet written for segments this merge replaces would be written only
        // to be deleted; they go back in the queue if the merge gives up before its
        // marker.
        let held = self.take_pending_hints(&merge_set);
        // Rewriting sealed segments that hold no garbage would only copy them.
        let reclaimable = merge_set.iter().any(|&id| {
            self.segments
                .get(id)
                .is_some_and(|s| s.garbage.load(Ordering::Relaxed) > 0)
        });
        if merge_set.is_empty() || (!reclaimable && merge_set.len() == 1) {
            self.requeue_hints(held);
            return Ok(());
        }
        let res = self.merge_set(&merge_set);
        match res {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.requeue_hints(held);
                Ok(())
            }
            Err(e) => {
                if !marker::merge_dir(&self.dir)
                    .join(marker::MARKER_FILE)
                    .exists()
                {
                    self.requeue_hints(held);
                }
                Err(e)
            }
        }
    }

    /// Pending hint jobs of the segments `ids` (ascending), taken out of the queue.
    fn take_pending_hints(&self, ids: &[u32]) -> Vec<SealJob> {
        let mut q = self.pending_hints.lock();
        let (taken, kept): (Vec<SealJob>, Vec<SealJob>) = std::mem::take(&mut *q)
            .into_iter()
            .partition(|j| ids.binary_search(&j.id).is_ok());
        *q = kept;
        taken
    }

    fn requeue_hints(&self, jobs: Vec<SealJob>) {
        if !jobs.is_empty() {
            self.pending_hints.lock().extend(jobs);
        }
    }

    /// Merges `merge_set`; Ok(false) when it stopped (in tests) before committing.
    fn merge_set(&self, merge_set: &[u32]) -> Result<bool> {
        let mdir = marker::merge_dir(&self.dir);
        marker::remove_merge_dir(&self.dir)?;
        std::fs::create_dir(&mdir).ctx("create merge directory", &mdir)?;
        let written = self.write_output(merge_set);
        let (finished, plan) = match written {
            Ok(w) => w,
            Err(e) => {
                let _ = marker::remove_merge_dir(&self.dir);
                return Err(e);
            }
        };
        #[cfg(test)]
        if self.faults.stop_merge_at() == Some(StopAt::BeforeMarker) {
            return Ok(false);
        }

        // Reserve the final ids and move the active segment past them, so the newest
        // segment is always the one being appended to.
        let k = finished.len() as u32;
        let first = {
            let mut w = self.writer.lock();
            let first = w.next_id;
            w.next_id = first
                .checked_add(k)
                .ok_or_else(|| StorageError::InvalidArgument("segment ids exhausted".into()))?;
            if let Err(e) = self.rotate(&mut w) {
                drop(w);
                let _ = marker::remove_merge_dir(&self.dir);
                return Err(e);
            }
            first
        };
        self.flush_pending_hints();
        let m = Marker {
            replaced: merge_set.to_vec(),
            installs: finished
                .iter()
                .enumerate()
                .map(|(i, f)| (f.id, first + i as u32))
                .collect(),
        };
        if let Err(e) = marker::write(&self.dir, &m) {
            let _ = marker::remove_merge_dir(&self.dir);
            return Err(e);
        }
        #[cfg(test)]
        if self.faults.stop_merge_at() == Some(StopAt::AfterMarker) {
            return Ok(true);
        }

        // From here on the marker makes the install the only way forward: a failure
        // moves the store to Failed and the next open finishes the job.
        let res = self.install(&m, &finished, plan);
        self.lifecycle.guard(res).map(|()| true)
    }

    /// Lists, in key order, what the index references in `merge_set` over the pieces of
    /// the key space it takes from `next` (piece `i` runs from `bounds[i]` to below
    /// `bounds[i + 1]`, None meaning the ends), then sorts each segment's records by
    /// offset. Several threads can share `next`; each gets its pieces in rising order.
    fn walk(
        &self,
        merge_set: &[u32],
        bounds: &[Option<Vec<u8>>],
        next: &std::sync::atomic::AtomicUsize,
    ) -> Result<Part> {
        let mut part = Part {
            jobs: vec![Vec::new(); merge_set.len()],
            bytes: vec![0; merge_set.len()],
            ..Part::default()
        };
        loop {
            let piece = next.fetch_add(1, Ordering::Relaxed);
            let (Some(from), Some(to)) = (bounds.get(piece), bounds.get(piece + 1)) else {
                break;
            };
            let start = part.relocs.len();
            self.walk_piece(merge_set, from.as_deref(), to.as_deref(), &mut part)?;
            part.pieces.push((piece, start, part.relocs.len()));
        }
        if part.relocs.len() > u32::MAX as usize {
            return Err(StorageError::InvalidArgument(
                "too many versions for one merge".into(),
            ));
        }
        for jobs in &mut part.jobs {
            *jobs = sorted_by_offset(jobs);
        }
        part.placed = part
            .jobs
            .iter()
            .map(|j| (0..j.len()).map(|_| AtomicU64::new(0)).collect())
            .collect();
        Ok(part)
    }

    /// Adds to `part`, in key order, what the index references in `merge_set` over the
    /// keys from `from` and below `to`.
    fn walk_piece(
        &self,
        merge_set: &[u32],
        from: Option<&[u8]>,
        to: Option<&[u8]>,
        part: &mut Part,
    ) -> Result<()> {
        let mut resume: Option<Vec<u8>> = None;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(StorageError::Closed);
            }
            let lo = match (&resume, from) {
                (Some(r), _) => Bound::Excluded(r.as_slice()),
                (None, Some(f)) => Bound::Included(f),
                (None, None) => Bound::Unbounded,
            };
            let last = self
                .index
                .visit_versions_in(lo, to, CHUNK, |key, versions| {
                    let mut key_at = None;
                    let mut fp = 0;
                    let key_len = key.len() as u32;
                    for (seq, v) in versions {
                        match v {
                            Some(loc) => {
                                let Ok(pos) = merge_set.binary_search(&loc.segment) else {
                                    continue;
                                };
                                let at = match key_at {
                                    Some(at) => at,
                                    None => {
                                        let at = part.keys.len();
                                        part.keys.extend_from_slice(key);
                                        fp = fingerprint(key);
                                        key_at = Some(at);
                                        at
                                    }
                                };
                                let job = Job {
                                    offset: loc.offset,
                                    reloc: part.jobs.get(pos).map_or(0, |j| j.len() as u32),
                                    seq: *seq,
                                    fp,
                                    klen: key_len,
                                    vlen: loc.vlen,
                                };
                                if let (Some(jobs), Some(bytes)) =
                                    (part.jobs.get_mut(pos), part.bytes.get_mut(pos))
                                {
                                    *bytes += job.len();
                                    jobs.push(job);
                                }
                                part.relocs.push(Reloc {
                                    key_at: at,
                                    key_len,
                                    old: *loc,
                                });
                            }
                            // A deletion matters only above a version being rewritten.
                            None => {
                                if let Some(at) = key_at {
                                    part.tombs.push((at, key_len, *seq));
                                }
                            }
                        }
                    }
                });
            match last {
                Some(k) => resume = Some(k),
                None => break,
            }
        }
        Ok(())
    }

    /// Copies what the index references in `merge_set` into `merge/`: one walk over
    /// the index in key order finds the live versions, then each segment is read once,
    /// front to back in big windows, and its live records are copied as they are.
    fn write_output(&self, merge_set: &[u32]) -> Result<(Vec<Finished>, Plan)> {
        let mdir = marker::merge_dir(&self.dir);
        let watermark = self.index.registry().visible();

        // Two walkers for a large index, taking turns at pieces of the key space cut
        // between its first and last key.
        let points = if self.index.entries() >= PARALLEL_MIN {
            self.index
                .first_and_last_keys()
                .map_or_else(Vec::new, |(a, b)| split_points(&a, &b, WALK_PIECES))
        } else {
            Vec::new()
        };
        let mut bounds: Vec<Option<Vec<u8>>> = vec![None];
        bounds.extend(points.into_iter().map(Some));
        bounds.push(None);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let plan: Plan = if bounds.len() <= 2 {
            vec![self.walk(merge_set, &bounds, &next)?, Part::default()]
        } else {
            let (a, b) = std::thread::scope(|s| {
                let other = s.spawn(|| self.walk(merge_set, &bounds, &next));
                let this = self.walk(merge_set, &bounds, &next);
                (this, join(other, "a merge walk thread panicked"))
            });
            vec![a?, b?]
        };

        // Per segment, the two parts' lists of records; a large merge is split between
        // two copy threads in file order (segment, offset) where half of the bytes to
        // copy are behind.
        let (p0, p1) = match plan.as_slice() {
            [p0, p1] => (p0, p1),
            _ => {
                return Err(StorageError::InvalidArgument(
                    "merge walk produced no parts".into(),
                ))
            }
        };
        fn list(p: &Part, i: usize) -> &[Job] {
            p.jobs.get(i).map_or(&[], |v| v.as_slice())
        }
        let seg_bytes = |i: usize| -> u64 {
            p0.bytes.get(i).copied().unwrap_or(0) + p1.bytes.get(i).copied().unwrap_or(0)
        };
        let total: u64 = (0..merge_set.len()).map(seg_bytes).sum();
        let copies = p0.relocs.len() + p1.relocs.len();
        let half = if copies >= PARALLEL_MIN {
            total / 2
        } else {
            total
        };
        let mut first: Vec<SegWork> = Vec::new();
        let mut second: Vec<SegWork> = Vec::new();
        let mut before = 0u64;
        for (i, &id) in merge_set.iter().enumerate() {
            let (a, b) = (list(p0, i), list(p1, i));
            if a.is_empty() && b.is_empty() {
                continue;
            }
            let bytes = seg_bytes(i);
            if before >= half {
                second.push((id, i, [(a, p0), (b, p1)]));
            } else if before + bytes <= half {
                first.push((id, i, [(a, p0), (b, p1)]));
            } else {
                // The split falls in this segment: find the offset where it does.
                let (mut x, mut y) = (0usize, 0usize);
                let mut acc = before;
                while acc < half {
                    let next = match (a.get(x), b.get(y)) {
                        (Some(j), Some(k)) if j.offset <= k.offset => {
                            x += 1;
                            j
                        }
                        (Some(j), None) => {
                            x += 1;
                            j
                        }
                        (_, Some(k)) => {
                            y += 1;
                            k
                        }
                        (None, None) => break,
                    };
                    acc += next.len();
                }
                let (a1, a2) = a.split_at(x);
                let (b1, b2) = b.split_at(y);
                first.push((id, i, [(a1, p0), (b1, p1)]));
                second.push((id, i, [(a2, p0), (b2, p1)]));
            }
            before += bytes;
        }
        let (r1, r2) = std::thread::scope(|s| {
            let second_run = (!second.is_empty())
                .then(|| s.spawn(|| self.copy_run(&mdir, SECOND_RUN_ID, watermark, &second, None)));
            let r1 = self.copy_run(&mdir, 1, watermark, &first, Some(&plan));
            let r2 = match second_run {
                Some(h) => join(h, "a merge copy thread panicked"),
                None => Ok(Vec::new()),
            };
            (r1, r2)
        });
        let mut finished = r1?;
        finished.extend(r2?);
        Ok((finished, plan))
    }

    /// Copies the records of `work` (in file order) into output files numbered from
    /// `first_id` in `mdir`, then, with `tombs_of`, that plan's tombstones, noting where
    /// each record went. Returns the finished files.
    fn copy_run(
        &self,
        mdir: &std::path::Path,
        first_id: u32,
        watermark: u64,
        work: &[SegWork<'_>],
        tombs_of: Option<&Plan>,
    ) -> Result<Vec<Finished>> {
        let mut out = OutputWriter::new(mdir, first_id, self.opts.max_segment_bytes, watermark);
        let mut win = Vec::new();
        let mut side = Vec::new();
        for &(seg_id, pos, lists) in work {
            if self.closed.load(Ordering::Acquire) {
                return Err(StorageError::Closed);
            }
            let Some(seg) = self.segments.get(seg_id) else {
                return Err(StorageError::corrupt(
                    segment::data_path(&self.dir, seg_id),
                    0,
                    "segment being merged is not open",
                ));
            };
            let mut src = Source {
                seg: &seg,
                size: seg.size.load(Ordering::Acquire),
                win: &mut win,
                win_start: 0,
                win_len: 0,
                side: &mut side,
                run: None,
            };
            copy_segment(&mut src, pos, lists, &mut out)?;
        }
        if let Some(plan) = tombs_of {
            for part in plan {
                for &(key_at, key_len, seq) in &part.tombs {
                    let key = part.key(key_at, key_len);
                    out.append(seq, FLAG_BATCH_END | FLAG_TOMBSTONE, key, &[])?;
                }
            }
        }
        out.finish()
    }

    fn install(&self, m: &Marker, finished: &[Finished], plan: Plan) -> Result<()> {
        // The replaced segments' hint files are no longer needed by anyone (the marker
        // commits the merge), so they are deleted on a thread of their own while the
        // index is relocated; their data files must stay until readers have moved on.
        {
            let _h = self.hint_lock.lock();
            for id in &m.replaced {
                if let Some(seg) = self.segments.get(*id) {
                    seg.replaced.store(true, Ordering::Release);
                }
            }
        }
        let (res, hints) = std::thread::scope(|s| {
            let hints = s.spawn(|| marker::delete_replaced_hints(&self.dir, m));
            let res = self.install_outputs(m, finished, &plan);
            (res, join(hints, "a thread deleting hint files panicked"))
        });
        res?;
        hints?;
        marker::delete_replaced(&self.dir, m)?;
        marker::remove_merge_dir(&self.dir)?;
        tracing::info!(dir = %self.dir.display(), replaced = m.replaced.len(),
            written = m.installs.len(), "merge installed");
        Ok(())
    }

    /// Moves the output files in, relocates the index to them and drops the replaced
    /// segments from the set readers go through.
    fn install_outputs(&self, m: &Marker, finished: &[Finished], plan: &Plan) -> Result<()> {
        marker::move_outputs(&self.dir, m)?;
        // (id in merge/, final id), by the first.
        let mut new_ids: Vec<(u32, u32)> = Vec::with_capacity(finished.len());
        for (f, &(from, to)) in finished.iter().zip(&m.installs) {
            debug_assert_eq!(f.id, from);
            let path = segment::data_path(&self.dir, to);
            let file = std::fs::File::open(&path).ctx("open merged segment", &path)?;
            let seg = Segment::new(to, path, file, f.size);
            seg.hint_bytes.store(f.hint_bytes, Ordering::Relaxed);
            seg.add_garbage(f.garbage);
            self.segments.insert(seg);
            new_ids.push((from, to));
        }
        new_ids.sort_unstable();
        let final_id = |out_id: u32| {
            new_ids
                .binary_search_by_key(&out_id, |&(from, _)| from)
                .ok()
                .and_then(|i| new_ids.get(i))
                .map(|&(_, to)| to)
        };
        // Key order, in chunks: each holds the index's write lock only briefly, and walks
        // the tree alongside the (key-ordered) relocations instead of searching it.
        // The pieces of the key space in key order, whichever part walked them; a
        // relocation's copy is the next one of its part's list for its segment.
        let mut pieces: Vec<(usize, usize, usize, usize)> = plan
            .iter()
            .enumerate()
            .flat_map(|(pi, p)| p.pieces.iter().map(move |&(n, a, b)| (n, pi, a, b)))
            .collect();
        pieces.sort_unstable();
        let mut cursors = vec![vec![0usize; m.replaced.len()]; plan.len()];
        let mut unplaced = 0usize;
        for (_, pi, start, end) in pieces {
            let (Some(part), Some(next)) = (plan.get(pi), cursors.get_mut(pi)) else {
                continue;
            };
            let relocs = part.relocs.get(start..end).unwrap_or(&[]);
            for chunk in relocs.chunks(CHUNK) {
                let moves = chunk.iter().filter_map(|r| {
                    let placed = m
                        .replaced
                        .binary_search(&r.old.segment)
                        .ok()
                        .and_then(|pos| Some((next.get_mut(pos)?, part.placed.get(pos)?)));
                    let Some((i, slots)) = placed else {
                        unplaced += 1;
                        return None;
                    };
                    let p = slots.get(*i).map_or(0, |s| s.load(Ordering::Relaxed));
                    *i += 1;
                    let Some(segment) = final_id((p >> 32) as u32) else {
                        unplaced += 1;
                        return None;
                    };
                    let new = Loc {
                        segment,
                        offset: p as u32,
                        vlen: r.old.vlen,
                    };
                    Some((part.key(r.key_at, r.key_len), r.old, new))
                });
                // A version that left the index while we copied it is garbage in the output.
                let mut gone: Vec<(u32, u64)> = Vec::new();
                self.index.relocate_sorted(moves, |key, new| {
                    gone.push((new.segment, record::record_len(key.len(), new.vlen)));
                });
                for (id, bytes) in gone {
                    self.segments.add_garbage(id, bytes);
                }
            }
        }
        if unplaced > 0 {
            // Deleting the old segments now would leave versions pointing nowhere; the
            // store goes Failed and the next open rebuilds the index from the files.
            return Err(StorageError::InvalidArgument(format!(
                "{unplaced} merged versions have no copy to relocate to"
            )));
        }
        let _h = self.hint_lock.lock();
        self.segments.remove(&m.replaced);
        Ok(())
    }
}

/// Joins a scoped thread, turning a panic into an error.
fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>, what: &str) -> Result<T> {
    h.join()
        .unwrap_or_else(|_| Err(StorageError::InvalidArgument(what.into())))
}

/// Copies the records of `lists` (each ascending by offset) of `src` to `out` in
/// offset order, checking each one against what the index said, and notes where each
/// went.
fn copy_segment(
    src: &mut Source<'_>,
    pos: usize,
    lists: [(&[Job], &Part); 2],
    out: &mut OutputWriter,
) -> Result<()> {
    let path = &src.seg.path;
    let [(a, pa), (b, pb)] = lists;
    let (mut x, mut y) = (0usize, 0usize);
    let mut pending: Option<Pending<'_>> = None;
    let mut end = 0u64;
    loop {
        let (job, part) = match (a.get(x), b.get(y)) {
            (Some(j), Some(k)) if j.offset <= k.offset => {
                x += 1;
                (j, pa)
            }
            (Some(j), None) => {
                x += 1;
                (j, pa)
            }
            (_, Some(k)) => {
                y += 1;
                (k, pb)
            }
            (None, None) => break,
        };
        let offset = u64::from(job.offset);
        let len = job.len();
        if offset < end {
            return Err(StorageError::corrupt(
                path,
                offset,
                "the key directory points at overlapping records",
            ));
        }
        if offset + len > src.size {
            return Err(StorageError::corrupt(
                path,
                offset,
                "the key directory points past the end of the segment",
            ));
        }
        let Some(placed) = part.placed.get(pos).and_then(|p| p.get(job.reloc as usize)) else {
            return Err(StorageError::InvalidArgument(
                "merge job without its relocation".into(),
            ));
        };
        end = offset + len;
        src.load(offset, len, &mut pending, out)?;
        let bytes = src.window(offset, len);
        let parsed = record::parse(bytes, src.size - offset)
            .map_err(|reason| StorageError::corrupt(path, offset, reason))?;
        // seq 0: the index's "visible to all" version, whose record knows its seq.
        let h = parsed.header;
        if h.klen != job.klen
            || h.vlen != job.vlen
            || fingerprint(parsed.key) != job.fp
            || h.is_tombstone()
            || (job.seq != 0 && h.seq != job.seq)
        {
            return Err(StorageError::corrupt(
                path,
                offset,
                "record does not hold the version the key directory points at",
            ));
        }
        let cur = Pending {
            src: offset,
            len,
            seq: h.seq,
            flags: h.flags,
            klen: h.klen,
            vlen: h.vlen,
            placed,
            side: false,
        };
        if let Some(p) = &pending {
            src.emit(p, Some(&cur), out)?;
        }
        pending = Some(cur);
    }
    if let Some(p) = &pending {
        src.emit(p, None, out)?;
    }
    src.flush(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_points_rise_between_the_ends() {
        let p = split_points(b"key000000", b"key999999", 4);
        assert_eq!(p.len(), 3);
        assert!(p[0].as_slice() > b"key2".as_slice() && p[0].as_slice() < b"key3".as_slice());
        assert!(p[1].as_slice() > b"key4".as_slice() && p[1].as_slice() < b"key5".as_slice());
        for (a, b) in [
            (&b"a"[..], &b"b"[..]),
            (b"a", b"a\0"),
            (b"", b"\x01"),
            (b"abc", b"abd"),
            (b"x\xff\xff", b"y"),
            (b"0000", b"ffff"),
        ] {
            let p = split_points(a, b, 32);
            let mut prev = a.to_vec();
            for k in &p {
                assert!(
                    prev.as_slice() < k.as_slice() && k.as_slice() <= b,
                    "{a:?} {k:?} {b:?}"
                );
                prev = k.clone();
            }
        }
        assert!(split_points(b"b", b"a", 8).is_empty());
        assert!(split_points(b"a", b"a", 8).is_empty());
        assert!(split_points(b"a", b"z", 1).is_empty());
    }

    #[test]
    fn radix_sort_orders_by_offset_and_keeps_every_job() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for n in [0usize, 1, 63, 64, 1000, 20_000] {
            for mask in [0xffu32, 0xff_ffff, u32::MAX] {
                let jobs: Vec<Job> = (0..n)
                    .map(|i| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        Job {
                            offset: (x as u32) & mask,
                            reloc: i as u32,
                            ..Job::default()
                        }
                    })
                    .collect();
                let sorted = sorted_by_offset(&jobs);
                let mut want: Vec<(u32, u32)> = jobs.iter().map(|j| (j.offset, j.reloc)).collect();
                want.sort_unstable();
                let mut got: Vec<(u32, u32)> = sorted.iter().map(|j| (j.offset, j.reloc)).collect();
                assert!(
                    got.windows(2).all(|w| w[0].0 <= w[1].0),
                    "n {n} mask {mask:#x}"
                );
                got.sort_unstable();
                assert_eq!(got, want, "n {n} mask {mask:#x}");
            }
        }
    }
}
