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

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::marker::{self, Marker};
use super::output::{Finished, OutputWriter};
use super::record::{self, FLAG_BATCH_END, FLAG_TOMBSTONE};
use super::recovery::Window;
use super::segment::{self, Segment};
use super::{Inner, Loc};
use crate::error::{IoContext, Result, StorageError};

/// Keys visited per hold of the index's read lock, and relocations per write lock.
const CHUNK: usize = 4096;

/// Where a copy went: (relocation index, (output id, offset)).
type Placed = (u32, (u32, u32));

/// Records to copy from which a merge uses a second copy thread.
const PARALLEL_MIN_COPIES: usize = 16 * 1024;

/// First output id of the second copy thread inside `merge/` (the first starts at 1).
const SECOND_RUN_ID: u32 = 1 << 30;

/// A rewritten version waiting to be pointed at its new place. Its key is
/// `keys[key_at..key_at + key_len]` of the [`Plan`].
struct Reloc {
    key_at: usize,
    key_len: u32,
    old: Loc,
}

/// A record to copy, with all the copy needs to check it, so the copy (in file order)
/// touches nothing else that was built in key order.
struct CopyJob {
    /// Segment id << 32 | offset: the sort key.
    pos: u64,
    seq: u64,
    /// [`fingerprint`] of the key the index holds for it.
    fp: u64,
    klen: u32,
    vlen: u32,
    /// Index in `Plan::relocs`.
    reloc: u32,
}

/// FNV-1a of a key: compared against the key in the record read back, in place of the
/// key itself (which sits in key order, far from the record's place in file order).
fn fingerprint(key: &[u8]) -> u64 {
    key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What a merge copies: the versions the index references in the merge set (in key
/// order, with their keys in one buffer), and tombstones snapshots still need.
#[derive(Default)]
struct Plan {
    keys: Vec<u8>,
    relocs: Vec<Reloc>,
    /// Per reloc, where its copy went (output id, offset).
    placed: Vec<Option<(u32, u32)>>,
    /// Copies to make, in key order until sorted into file order.
    copies: Vec<CopyJob>,
    /// (key_at, key_len, seq) of tombstones to rewrite.
    tombs: Vec<(usize, u32, u64)>,
}

impl Plan {
    fn key(&self, at: usize, len: u32) -> &[u8] {
        self.keys.get(at..at + len as usize).unwrap_or(&[])
    }
}

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
        self.flush_pending_hints();
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
        // Rewriting sealed segments that hold no garbage would only copy them.
        let reclaimable = merge_set.iter().any(|&id| {
            self.segments
                .get(id)
                .is_some_and(|s| s.garbage.load(Ordering::Relaxed) > 0)
        });
        if merge_set.is_empty() || (!reclaimable && merge_set.len() == 1) {
            return Ok(());
        }
        let mdir = marker::merge_dir(&self.dir);
        marker::remove_merge_dir(&self.dir)?;
        std::fs::create_dir(&mdir).ctx("create merge directory", &mdir)?;
        let written = self.write_output(&merge_set);
        let (finished, plan) = match written {
            Ok(w) => w,
            Err(e) => {
                let _ = marker::remove_merge_dir(&self.dir);
                return Err(e);
            }
        };
        #[cfg(test)]
        if self.faults.stop_merge_at() == Some(StopAt::BeforeMarker) {
            return Ok(());
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
            replaced: merge_set.clone(),
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
            return Ok(());
        }

        // From here on the marker makes the install the only way forward: a failure
        // moves the store to Failed and the next open finishes the job.
        let res = self.install(&m, &finished, plan);
        self.lifecycle.guard(res)
    }

    /// Copies what the index references in `merge_set` into `merge/`: one walk over
    /// the index in key order finds the live versions, then each segment is read once,
    /// sequentially in big windows, and its live records are copied as they are
    /// (re-encoded only when a record was not the end of its batch).
    fn write_output(&self, merge_set: &[u32]) -> Result<(Vec<Finished>, Plan)> {
        let mdir = marker::merge_dir(&self.dir);
        let in_set = |id: u32| merge_set.binary_search(&id).is_ok();
        let watermark = self.index.registry().visible();
        let mut plan = Plan::default();
        let mut resume: Option<Vec<u8>> = None;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(StorageError::Closed);
            }
            let last = self
                .index
                .visit_versions(resume.as_deref(), CHUNK, |key, versions| {
                    let first = versions
                        .iter()
                        .position(|(_, v)| v.is_some_and(|l| in_set(l.segment)));
                    let Some(first) = first else { return };
                    let key_at = plan.keys.len();
                    let key_len = key.len() as u32;
                    plan.keys.extend_from_slice(key);
                    for (seq, v) in &versions[first..] {
                        match v {
                            Some(loc) if in_set(loc.segment) => {
                                plan.copies.push(CopyJob {
                                    pos: (u64::from(loc.segment) << 32) | u64::from(loc.offset),
                                    seq: *seq,
                                    fp: fingerprint(key),
                                    klen: key_len,
                                    vlen: loc.vlen,
                                    reloc: plan.relocs.len() as u32,
                                });
                                plan.relocs.push(Reloc {
                                    key_at,
                                    key_len,
                                    old: *loc,
                                });
                            }
                            Some(_) => {}
                            None => plan.tombs.push((key_at, key_len, *seq)),
                        }
                    }
                });
            match last {
                Some(k) => resume = Some(k),
                None => break,
            }
        }

        // File order: every segment is read front to back once. A large set is split in
        // two runs of the file order, copied by two threads into separate output files
        // (ids from 1 and from SECOND_RUN_ID); the install order keeps them apart.
        let mut copies = std::mem::take(&mut plan.copies);
        copies.sort_unstable_by_key(|c| c.pos);
        let mid = if copies.len() >= PARALLEL_MIN_COPIES {
            copies.len() / 2
        } else {
            0
        };
        let (first, second) = copies.split_at(mid);
        let plan_ref = &plan;
        let (r1, r2) = std::thread::scope(|s| {
            let second_run =
                s.spawn(|| self.copy_run(&mdir, SECOND_RUN_ID, watermark, second, Some(plan_ref)));
            let r1 = if first.is_empty() {
                Ok((Vec::new(), Vec::new()))
            } else {
                self.copy_run(&mdir, 1, watermark, first, None)
            };
            let r2 = second_run.join().unwrap_or_else(|_| {
                Err(StorageError::InvalidArgument(
                    "a merge copy thread panicked".into(),
                ))
            });
            (r1, r2)
        });
        let ((mut finished, placed1), (finished2, placed2)) = (r1?, r2?);
        drop(copies);
        finished.extend(finished2);
        plan.placed = vec![None; plan.relocs.len()];
        for (reloc, at) in placed1.into_iter().chain(placed2) {
            if let Some(p) = plan.placed.get_mut(reloc as usize) {
                *p = Some(at);
            }
        }
        Ok((finished, plan))
    }

    /// Copies `jobs` (ascending by position) into output files numbered from `first_id`
    /// in `mdir`, then, with `tombs_of`, that plan's tombstones. Returns the finished
    /// files and where each copied relocation went.
    fn copy_run(
        &self,
        mdir: &std::path::Path,
        first_id: u32,
        watermark: u64,
        jobs: &[CopyJob],
        tombs_of: Option<&Plan>,
    ) -> Result<(Vec<Finished>, Vec<Placed>)> {
        let mut out = OutputWriter::new(mdir, first_id, self.opts.max_segment_bytes, watermark);
        let mut placed = Vec::with_capacity(jobs.len());
        for group in jobs.chunk_by(|a, b| a.pos >> 32 == b.pos >> 32) {
            if self.closed.load(Ordering::Acquire) {
                return Err(StorageError::Closed);
            }
            let seg_id = group.first().map_or(0, |c| (c.pos >> 32) as u32);
            let Some(seg) = self.segments.get(seg_id) else {
                return Err(StorageError::corrupt(
                    segment::data_path(&self.dir, seg_id),
                    0,
                    "segment being merged is not open",
                ));
            };
            self.copy_segment(&seg, group, &mut placed, &mut out)?;
        }
        if let Some(plan) = tombs_of {
            for &(key_at, key_len, seq) in &plan.tombs {
                let key = plan.key(key_at, key_len);
                out.append(seq, FLAG_BATCH_END | FLAG_TOMBSTONE, key, &[])?;
            }
        }
        Ok((out.finish()?, placed))
    }

    /// Copies the records `which` (ascending by offset) of `seg` to `out`, checking
    /// each one against what the index said, and notes where each went in `placed`.
    fn copy_segment(
        &self,
        seg: &Segment,
        which: &[CopyJob],
        placed: &mut Vec<Placed>,
        out: &mut OutputWriter,
    ) -> Result<()> {
        let size = seg.size.load(Ordering::Acquire);
        let mut win = Window::new(&seg.file, &seg.path, size);
        for job in which {
            let offset = job.pos & u64::from(u32::MAX);
            let len = record::record_len(job.klen as usize, job.vlen);
            if offset + len > size {
                return Err(StorageError::corrupt(
                    &seg.path,
                    offset,
                    "the key directory points past the end of the segment",
                ));
            }
            let bytes = win.bytes(offset, len as usize)?;
            let parsed = record::parse(bytes, len)
                .map_err(|reason| StorageError::corrupt(&seg.path, offset, reason))?;
            // seq 0: the index's "visible to all" version, whose record knows its seq.
            let seq_ok = job.seq == 0 || parsed.header.seq == job.seq;
            let key = parsed.key;
            if key.len() != job.klen as usize
                || fingerprint(key) != job.fp
                || parsed.header.is_tombstone()
                || !seq_ok
            {
                return Err(StorageError::corrupt(
                    &seg.path,
                    offset,
                    "record does not hold the version the key directory points at",
                ));
            }
            let seq = parsed.header.seq;
            let at = if parsed.header.is_batch_end() {
                out.append_record(bytes, seq, parsed.header.flags, key, job.vlen)?
            } else {
                out.append(seq, FLAG_BATCH_END, key, parsed.value)?
            };
            placed.push((job.reloc, at));
        }
        Ok(())
    }

    fn install(&self, m: &Marker, finished: &[Finished], plan: Plan) -> Result<()> {
        marker::move_outputs(&self.dir, m)?;
        let mut new_ids = std::collections::HashMap::new();
        for (f, &(from, to)) in finished.iter().zip(&m.installs) {
            debug_assert_eq!(f.id, from);
            let path = segment::data_path(&self.dir, to);
            let file = std::fs::File::open(&path).ctx("open merged segment", &path)?;
            let seg = Segment::new(to, path, file, f.size);
            seg.hint_bytes.store(f.hint_bytes, Ordering::Relaxed);
            seg.add_garbage(f.garbage);
            self.segments.insert(Arc::clone(&seg));
            new_ids.insert(from, seg);
        }
        // Key order, in chunks: each holds the index's write lock only briefly, and walks
        // the tree alongside the (key-ordered) relocations instead of searching it.
        for (chunk, placed) in plan.relocs.chunks(CHUNK).zip(plan.placed.chunks(CHUNK)) {
            let moves = chunk.iter().zip(placed).filter_map(|(r, p)| {
                let (out_id, offset) = (*p)?;
                let seg = new_ids.get(&out_id)?;
                let new = Loc {
                    segment: seg.id,
                    offset,
                    vlen: r.old.vlen,
                };
                Some((plan.key(r.key_at, r.key_len), r.old, new))
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
        {
            let _h = self.hint_lock.lock();
            self.segments.remove(&m.replaced);
        }
        marker::delete_replaced(&self.dir, m)?;
        marker::remove_merge_dir(&self.dir)?;
        tracing::info!(dir = %self.dir.display(), replaced = m.replaced.len(),
            written = m.installs.len(), "merge installed");
        Ok(())
    }
}
