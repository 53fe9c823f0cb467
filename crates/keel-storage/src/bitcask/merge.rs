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
//! How the copy works, and what it checks. One walk over the index in key order (two
//! threads, each over one half of the keys, for large merges) lists every referenced
//! version of the merge set with its location, length, sequence number and a key
//! fingerprint. Each segment's list is sorted by offset, and each segment is then read
//! front to back once in big windows. A live record is copied byte for byte, so its own
//! CRC travels with it: adjacent live records become one run that goes out with one
//! write, and only a record whose batch ends with a record that is not copied gets
//! re-encoded (with BATCH_END), because recovery reads a file as batches that each end
//! with that flag and carry one sequence number.
//!
//! Each copied record is still checked before it is written, because relocation trusts
//! the copy: its CRC (so damage is reported now, naming the old file and offset,
//! instead of being sealed into a new file whose hint-file CRC would then vouch for
//! it), its lengths, sequence number and key fingerprint against what the index holds
//! (so a stale or wrong location can never be relocated to some other record), and
//! that no two locations overlap. The bytes have to be in memory anyway, because the
//! hint trailer carries the CRC of the whole new file. That is also why runs are read and written rather than handed to
//! `copy_file_range`: the kernel-side copy would save nothing once the bytes were read
//! to be checked and summed, and skipping the read would mean trusting the index and
//! the old file blindly.
//!
//! Durability: each output file is fsynced, and its hint written and fsynced, on a
//! sealing thread while the copy goes on into the next file; the marker is written only
//! after all of them, so a crash before it leaves an unreferenced `merge/` that open
//! discards, and a crash after it an install that open finishes.

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

/// Bytes read from a merged segment at a time.
const WINDOW: usize = 4 << 20;

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
    /// Index of its relocation across all parts ([`Plan::placed`]).
    reloc: u32,
    seq: u64,
    /// [`fingerprint`] of the key the index holds for it.
    fp: u64,
    klen: u32,
    vlen: u32,
}

/// FNV-1a of a key: compared against the key in the record read back, in place of the
/// key itself (which sits in key order, far from the record's place in file order).
fn fingerprint(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What one walk over a range of keys found.
#[derive(Default)]
struct Part {
    keys: Vec<u8>,
    relocs: Vec<Reloc>,
    /// Per segment of the merge set (by position in it): the records to copy from it,
    /// in key order; `Job::reloc` indexes this part's `relocs` until [`Plan`] gathers
    /// the parts.
    jobs: Vec<Vec<Job>>,
    /// (key_at, key_len, seq) of tombstones to rewrite.
    tombs: Vec<(usize, u32, u64)>,
}

impl Part {
    fn key(&self, at: usize, len: u32) -> &[u8] {
        self.keys.get(at..at + len as usize).unwrap_or(&[])
    }
}

/// What a merge copies, and where each copy went.
#[derive(Default)]
struct Plan {
    /// The walk's parts, in key order.
    parts: Vec<Part>,
    /// Per relocation (the parts' relocations one after the other): where its copy went,
    /// as output id << 32 | offset (output ids start at 1, so 0 means not copied). The
    /// copy threads store into it directly.
    placed: Vec<AtomicU64>,
}

/// A record read and checked, held back until the next one shows whether it may keep
/// its flags.
#[derive(Clone, Copy)]
struct Pending {
    /// Offset in the source segment.
    src: u64,
    len: u64,
    seq: u64,
    flags: u8,
    klen: u32,
    vlen: u32,
    reloc: u32,
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
        p: Pending,
        next: Option<&Pending>,
        out: &mut OutputWriter,
        placed: &[AtomicU64],
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
                .bytes_of(&p)
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
            let bytes = self.bytes_of(&p);
            let key = bytes.get(HEADER_LEN..HEADER_LEN + klen).unwrap_or(&[]);
            let value = bytes.get(HEADER_LEN + klen..).unwrap_or(&[]);
            out.append(p.seq, p.flags | FLAG_BATCH_END, key, value)?
        };
        if let Some(slot) = placed.get(p.reloc as usize) {
            slot.store((u64::from(at.0) << 32) | u64::from(at.1), Ordering::Relaxed);
        }
        Ok(())
    }
}

/// Sorts `jobs` by offset: a least-significant-digit radix sort, 8 bits a pass, skipping
/// digits every offset shares (a segment's offsets are random in key order, and a
/// comparison sort of them was a tenth of the merge).
fn sort_by_offset(jobs: &mut [Job], scratch: &mut Vec<Job>) {
    let n = jobs.len();
    if n < 64 {
        jobs.sort_unstable_by_key(|j| j.offset);
        return;
    }
    scratch.clear();
    scratch.resize(n, Job::default());
    let mut in_jobs = true;
    for shift in [0u32, 8, 16, 24] {
        let (src, dst): (&[Job], &mut [Job]) = if in_jobs {
            (&*jobs, scratch.as_mut_slice())
        } else {
            (scratch.as_slice(), &mut *jobs)
        };
        let mut counts = [0usize; 256];
        for j in src {
            counts[((j.offset >> shift) & 0xff) as usize] += 1;
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
        for j in src {
            let d = ((j.offset >> shift) & 0xff) as usize;
            if let Some(slot) = dst.get_mut(counts[d]) {
                *slot = *j;
            }
            counts[d] += 1;
        }
        in_jobs = !in_jobs;
    }
    if !in_jobs {
        jobs.copy_from_slice(scratch);
    }
}

/// One copy thread's share: per segment, its jobs and whether they are sorted yet.
type Share<'a> = Vec<(u32, &'a mut [Job], bool)>;

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

    /// Lists, in key order, what the index references in `merge_set` over the keys from
    /// `from` and below `to`.
    fn walk(&self, merge_set: &[u32], from: Option<&[u8]>, to: Option<&[u8]>) -> Result<Part> {
        let mut part = Part {
            jobs: vec![Vec::new(); merge_set.len()],
            ..Part::default()
        };
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
                                if let Some(jobs) = part.jobs.get_mut(pos) {
                                    jobs.push(Job {
                                        offset: loc.offset,
                                        reloc: part.relocs.len() as u32,
                                        seq: *seq,
                                        fp,
                                        klen: key_len,
                                        vlen: loc.vlen,
                                    });
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
        Ok(part)
    }

    /// Copies what the index references in `merge_set` into `merge/`: one walk over
    /// the index in key order finds the live versions, then each segment is read once,
    /// front to back in big windows, and its live records are copied as they are.
    fn write_output(&self, merge_set: &[u32]) -> Result<(Vec<Finished>, Plan)> {
        let mdir = marker::merge_dir(&self.dir);
        let watermark = self.index.registry().visible();

        // Two walkers for a large index, split near its middle key.
        let entries = self.index.entries();
        let split = if entries >= PARALLEL_MIN {
            self.index.key_near_rank(entries / 2, 64 * 1024)
        } else {
            None
        };
        let parts = match split.as_deref() {
            None => vec![self.walk(merge_set, None, None)?],
            Some(mid) => {
                let (a, b) = std::thread::scope(|s| {
                    let upper = s.spawn(|| self.walk(merge_set, Some(mid), None));
                    let lower = self.walk(merge_set, None, Some(mid));
                    (lower, join(upper, "a merge walk thread panicked"))
                });
                vec![a?, b?]
            }
        };

        // Gather each segment's jobs from the parts, numbering relocations across them.
        let mut plan = Plan {
            parts,
            placed: Vec::new(),
        };
        let mut per_seg: Vec<Vec<Job>> = vec![Vec::new(); merge_set.len()];
        let mut base = 0usize;
        for part in &mut plan.parts {
            for (all, jobs) in per_seg.iter_mut().zip(part.jobs.iter_mut()) {
                if base == 0 && all.is_empty() {
                    std::mem::swap(all, jobs);
                } else {
                    all.extend(jobs.drain(..).map(|mut j| {
                        j.reloc += base as u32;
                        j
                    }));
                }
            }
            part.jobs = Vec::new();
            base += part.relocs.len();
        }
        if base > u32::MAX as usize {
            return Err(StorageError::InvalidArgument(
                "too many versions for one merge".into(),
            ));
        }
        plan.placed = (0..base).map(|_| AtomicU64::new(0)).collect();

        // Two copy threads over the file order (segment, offset) for a large merge, split
        // where half of the bytes to copy are behind: the segment the split falls into is
        // sorted here and cut in two.
        let seg_bytes: Vec<u64> = per_seg
            .iter()
            .map(|jobs| {
                jobs.iter()
                    .map(|j| record::record_len(j.klen as usize, j.vlen))
                    .sum()
            })
            .collect();
        let total: u64 = seg_bytes.iter().sum();
        let mut first: Share = Vec::new();
        let mut second: Share = Vec::new();
        let mut scratch = Vec::new();
        if base >= PARALLEL_MIN {
            let mut before = 0u64;
            let mut crossed = false;
            for ((&id, jobs), &bytes) in merge_set.iter().zip(per_seg.iter_mut()).zip(&seg_bytes) {
                if crossed {
                    second.push((id, jobs.as_mut_slice(), false));
                } else if before + bytes <= total / 2 {
                    before += bytes;
                    first.push((id, jobs.as_mut_slice(), false));
                } else {
                    crossed = true;
                    sort_by_offset(jobs, &mut scratch);
                    let mut cut = 0;
                    while before < total / 2 {
                        let Some(j) = jobs.get(cut) else { break };
                        before += record::record_len(j.klen as usize, j.vlen);
                        cut += 1;
                    }
                    let (a, b) = jobs.split_at_mut(cut);
                    first.push((id, a, true));
                    second.push((id, b, true));
                }
            }
        } else {
            for (&id, jobs) in merge_set.iter().zip(per_seg.iter_mut()) {
                first.push((id, jobs.as_mut_slice(), false));
            }
        }
        drop(scratch);
        let plan_ref = &plan;
        let (r1, r2) = std::thread::scope(|s| {
            let second_run = (!second.is_empty()).then(|| {
                s.spawn(|| self.copy_run(&mdir, SECOND_RUN_ID, watermark, second, None, plan_ref))
            });
            let r1 = self.copy_run(&mdir, 1, watermark, first, Some(plan_ref), plan_ref);
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

    /// Copies the records of `share` (in file order) into output files numbered from
    /// `first_id` in `mdir`, then, with `tombs_of`, that plan's tombstones, noting in
    /// `plan.placed` where each record went. Returns the finished files.
    fn copy_run(
        &self,
        mdir: &std::path::Path,
        first_id: u32,
        watermark: u64,
        share: Share,
        tombs_of: Option<&Plan>,
        plan: &Plan,
    ) -> Result<Vec<Finished>> {
        let mut out = OutputWriter::new(mdir, first_id, self.opts.max_segment_bytes, watermark);
        let mut scratch = Vec::new();
        let mut win = Vec::new();
        let mut side = Vec::new();
        for (seg_id, jobs, sorted) in share {
            if jobs.is_empty() {
                continue;
            }
            if self.closed.load(Ordering::Acquire) {
                return Err(StorageError::Closed);
            }
            if !sorted {
                sort_by_offset(jobs, &mut scratch);
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
            copy_segment(&mut src, jobs, &plan.placed, &mut out)?;
        }
        if let Some(plan) = tombs_of {
            for part in &plan.parts {
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
        let mut base = 0usize;
        for part in &plan.parts {
            let placed = plan
                .placed
                .get(base..base + part.relocs.len())
                .unwrap_or(&[]);
            base += part.relocs.len();
            for (chunk, placed) in part.relocs.chunks(CHUNK).zip(placed.chunks(CHUNK)) {
                let moves = chunk.iter().zip(placed).filter_map(|(r, p)| {
                    let p = p.load(Ordering::Relaxed);
                    let segment = final_id((p >> 32) as u32)?;
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

/// Copies the records `jobs` (ascending by offset) of `src` to `out`, checking each one
/// against what the index said, and notes where each went in `placed`.
fn copy_segment(
    src: &mut Source<'_>,
    jobs: &[Job],
    placed: &[AtomicU64],
    out: &mut OutputWriter,
) -> Result<()> {
    let path = &src.seg.path;
    let mut pending: Option<Pending> = None;
    let mut end = 0u64;
    for job in jobs {
        let offset = u64::from(job.offset);
        let len = record::record_len(job.klen as usize, job.vlen);
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
            reloc: job.reloc,
            side: false,
        };
        if let Some(p) = pending.take() {
            src.emit(p, Some(&cur), out, placed)?;
        }
        pending = Some(cur);
    }
    if let Some(p) = pending.take() {
        src.emit(p, None, out, placed)?;
    }
    src.flush(out)
}
