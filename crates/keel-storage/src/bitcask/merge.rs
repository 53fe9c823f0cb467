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

use bytes::Bytes;

use super::marker::{self, Marker};
use super::output::OutputWriter;
use super::record::{self, FLAG_BATCH_END, FLAG_TOMBSTONE};
use super::segment::{self, Segment};
use super::{Inner, Loc};
use crate::error::{IoContext, Result, StorageError};
use crate::range::ScanRange;

/// Keys read from the index per step.
const CHUNK: usize = 1024;

/// A rewritten version waiting to be pointed at its new place.
struct Reloc {
    key: Bytes,
    seq: u64,
    old: Loc,
    out_id: u32,
    offset: u32,
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
        let (finished, relocs) = match written {
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
        let res = self.install(&m, &finished, relocs);
        self.lifecycle.guard(res)
    }

    /// Copies what the index references in `merge_set` into `merge/`.
    fn write_output(
        &self,
        merge_set: &[u32],
    ) -> Result<(Vec<super::output::Finished>, Vec<Reloc>)> {
        let mdir = marker::merge_dir(&self.dir);
        let in_set = |id: u32| merge_set.binary_search(&id).is_ok();
        let watermark = self.index.registry().visible();
        let mut out = OutputWriter::new(&mdir, 1, self.opts.max_segment_bytes, watermark);
        let mut relocs = Vec::new();
        let mut resume: Option<Bytes> = None;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(StorageError::Closed);
            }
            let chunk = self
                .index
                .versions_chunk(&ScanRange::all(), resume.as_deref(), CHUNK);
            let Some((last, _)) = chunk.last() else { break };
            resume = Some(last.clone());
            for (key, versions) in chunk {
                let first = versions
                    .iter()
                    .position(|(_, v)| v.is_some_and(|l| in_set(l.segment)));
                let Some(first) = first else { continue };
                for (seq, v) in &versions[first..] {
                    match v {
                        Some(loc) if in_set(loc.segment) => {
                            let value = self.read_value(&key, *loc, || None, false)?;
                            let Some(value) = value else {
                                return Err(StorageError::corrupt(
                                    segment::data_path(&self.dir, loc.segment),
                                    u64::from(loc.offset),
                                    "segment being merged is not open",
                                ));
                            };
                            let (out_id, offset) =
                                out.append(*seq, FLAG_BATCH_END, &key, &value)?;
                            relocs.push(Reloc {
                                key: key.clone(),
                                seq: *seq,
                                old: *loc,
                                out_id,
                                offset,
                            });
                        }
                        Some(_) => {}
                        None => {
                            out.append(*seq, FLAG_BATCH_END | FLAG_TOMBSTONE, &key, &[])?;
                        }
                    }
                }
            }
        }
        Ok((out.finish()?, relocs))
    }

    fn install(
        &self,
        m: &Marker,
        finished: &[super::output::Finished],
        relocs: Vec<Reloc>,
    ) -> Result<()> {
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
        for r in relocs {
            let Some(seg) = new_ids.get(&r.out_id) else {
                continue;
            };
            let new = Loc {
                segment: seg.id,
                offset: r.offset,
                vlen: r.old.vlen,
            };
            let old = r.old;
            if !self
                .index
                .replace_version(&r.key, r.seq, |cur| *cur == old, new)
            {
                // The version left the index while we copied it.
                seg.add_garbage(record::record_len(r.key.len(), r.old.vlen));
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
