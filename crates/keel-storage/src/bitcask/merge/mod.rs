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

mod copy;
mod plan;

use std::sync::atomic::Ordering;

use super::marker::{self, Marker};
use super::output::Finished;
use super::record;
use super::segment::{self, Segment};
use super::writer::SealJob;
use super::{Inner, Loc};
use crate::error::{IoContext, Result, StorageError};
use plan::Plan;

/// Keys visited per hold of the index's read lock, and relocations per write lock.
const CHUNK: usize = 4096;

/// Index entries from which the walk, and versions to copy from which the copy, use
/// two threads.
const PARALLEL_MIN: usize = 16 * 1024;

/// First output id of the second copy thread inside `merge/` (the first starts at 1).
const SECOND_RUN_ID: u32 = 1 << 30;

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

    /// Copies what the index references in `merge_set` into `merge/`: one walk over
    /// the index in key order finds the live versions, then each segment is read once,
    /// front to back in big windows, and its live records are copied as they are.
    fn write_output(&self, merge_set: &[u32]) -> Result<(Vec<Finished>, Plan)> {
        let mdir = marker::merge_dir(&self.dir);
        let watermark = self.index.registry().visible();
        let plan = self.plan(merge_set)?;
        let (first, second) = plan::copy_shares(&plan, merge_set)?;
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
        let old = res?;
        hints?;
        // Unlinked while still open, the old data files cost little to delete; their
        // blocks are freed when the last handle closes, which on this kind of disk takes
        // milliseconds per file (ext4 with online discard). Nothing waits for that: the
        // handles are closed on a detached thread, and the merge is done once `merge/`
        // is removed. A failed spawn drops the closure, and the handles, right here.
        marker::delete_replaced(&self.dir, m)?;
        let spawned = std::thread::Builder::new()
            .name("keel-merge-close".into())
            .spawn(move || drop(old));
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "closed replaced segments inline");
        }
        marker::remove_merge_dir(&self.dir)?;
        tracing::info!(dir = %self.dir.display(), replaced = m.replaced.len(),
            written = m.installs.len(), "merge installed");
        Ok(())
    }

    /// Moves the output files in, relocates the index to them and drops the replaced
    /// segments from the set readers go through, returning them (still open).
    fn install_outputs(
        &self,
        m: &Marker,
        finished: &[Finished],
        plan: &Plan,
    ) -> Result<Vec<std::sync::Arc<Segment>>> {
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
                self.index.relocate(moves, |key, new| {
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
        Ok(self.segments.remove(&m.replaced))
    }
}

/// Joins a scoped thread, turning a panic into an error.
pub(super) fn join<T>(h: std::thread::ScopedJoinHandle<'_, Result<T>>, what: &str) -> Result<T> {
    h.join()
        .unwrap_or_else(|_| Err(StorageError::InvalidArgument(what.into())))
}
