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

/// A rewritten version waiting to be pointed at its new place. Its key is
/// `keys[key_at..key_at + key_len]` of the [`Plan`].
struct Reloc {
    key_at: usize,
    key_len: u32,
    seq: u64,
    old: Loc,
    new: Option<(u32, u32)>,
}

/// What a merge copies: the versions the index references in the merge set (in key
/// order, with their keys in one buffer), and tombstones snapshots still need.
#[derive(Default)]
struct Plan {
    keys: Vec<u8>,
    relocs: Vec<Reloc>,
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
                            Some(loc) if in_set(loc.segment) => plan.relocs.push(Reloc {
                                key_at,
                                key_len,
                                seq: *seq,
                                old: *loc,
                                new: None,
                            }),
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

        // File order: every segment is read front to back once. Sorting plain integers
        // (position, reloc index) keeps the sort off the relocation records.
        let mut order: Vec<(u64, u32)> = plan
            .relocs
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let pos = (u64::from(r.old.segment) << 32) | u64::from(r.old.offset);
                (pos, i as u32)
            })
            .collect();
        order.sort_unstable();
        let order: Vec<u32> = order.into_iter().map(|(_, i)| i).collect();
        let mut out = OutputWriter::new(&mdir, 1, self.opts.max_segment_bytes, watermark);
        let mut at = 0;
        while at < order.len() {
            if self.closed.load(Ordering::Acquire) {
                return Err(StorageError::Closed);
            }
            let seg_id = plan.relocs[order[at] as usize].old.segment;
            let end = at
                + order[at..]
                    .iter()
                    .take_while(|&&i| plan.relocs[i as usize].old.segment == seg_id)
                    .count();
            let Some(seg) = self.segments.get(seg_id) else {
                return Err(StorageError::corrupt(
                    segment::data_path(&self.dir, seg_id),
                    0,
                    "segment being merged is not open",
                ));
            };
            self.copy_segment(&seg, &order[at..end], &mut plan, &mut out)?;
            at = end;
        }
        for &(key_at, key_len, seq) in &plan.tombs {
            let key = plan.key(key_at, key_len);
            out.append(seq, FLAG_BATCH_END | FLAG_TOMBSTONE, key, &[])?;
        }
        Ok((out.finish()?, plan))
    }

    /// Copies the records `which` (indices into `plan.relocs`, ascending by offset) of
    /// `seg` to `out`, checking each one, and notes where each went.
    fn copy_segment(
        &self,
        seg: &Segment,
        which: &[u32],
        plan: &mut Plan,
        out: &mut OutputWriter,
    ) -> Result<()> {
        let size = seg.size.load(Ordering::Acquire);
        let mut win = Window::new(&seg.file, &seg.path, size);
        for &i in which {
            let r = &plan.relocs[i as usize];
            let key = plan.key(r.key_at, r.key_len);
            let offset = u64::from(r.old.offset);
            let len = record::record_len(key.len(), r.old.vlen);
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
            let seq_ok = r.seq == 0 || parsed.header.seq == r.seq;
            if parsed.key != key || parsed.header.is_tombstone() || !seq_ok {
                return Err(StorageError::corrupt(
                    &seg.path,
                    offset,
                    "record does not hold the version the key directory points at",
                ));
            }
            let seq = parsed.header.seq;
            let placed = if parsed.header.is_batch_end() {
                out.append_record(bytes, seq, parsed.header.flags, key, r.old.vlen)?
            } else {
                out.append(seq, FLAG_BATCH_END, key, parsed.value)?
            };
            plan.relocs[i as usize].new = Some(placed);
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
        for chunk in plan.relocs.chunks(CHUNK) {
            let moves = chunk.iter().filter_map(|r| {
                let (out_id, offset) = r.new?;
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
