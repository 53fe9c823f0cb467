//! Dropping the head of the log once a snapshot or checkpoint covers it: whole segments
//! only, oldest first, never the active one. Either here and now, or by the WAL's
//! background thread, which keeps the unlinks and the directory's fsync (18-20 ms for
//! four 16 MiB segments under SET -P 16) off the thread running the write funnel.

use super::error::{Result, WalError};
use super::segment::{sync_dir, SegmentFile};
use super::writer::Wal;

impl Wal {
    /// Deletes every segment whose entries all have indexes below `index` (they are
    /// covered by a snapshot) and returns how many were deleted. The active segment is
    /// always kept. The directory is fsynced after the deletions.
    pub fn truncate_before(&mut self, index: u64) -> Result<usize> {
        let mut deleted = 0;
        while let Some((seg, len)) = self.pop_covered(index) {
            if let Err(e) = std::fs::remove_file(&seg.path) {
                // Keep the books straight: the file is still there.
                self.segments.insert(0, seg.clone());
                self.sealed_lengths.insert(0, len);
                if deleted > 0 {
                    sync_dir(&self.shared.dir)?;
                }
                self.after_truncate();
                return Err(WalError::io("delete segment", &seg.path, 0, e));
            }
            self.shared
                .bytes_on_disk
                .fetch_sub(len, std::sync::atomic::Ordering::Relaxed);
            deleted += 1;
        }
        if deleted > 0 {
            sync_dir(&self.shared.dir)?;
            self.after_truncate();
            tracing::debug!(deleted, before = index, "wal: truncated segments");
        }
        Ok(deleted)
    }

    /// Like [`Wal::truncate_before`], but hands the covered segments to the background
    /// thread to delete, and returns how many it handed over. They leave the log's
    /// books at once; a crash before their deletion leaves them on disk, where recovery
    /// finds them whole and below the store's applied index (replay starts after it),
    /// and the next truncation deletes them.
    pub fn truncate_before_in_background(&mut self, index: u64) -> usize {
        let mut covered = Vec::new();
        let mut bytes = 0;
        while let Some((seg, len)) = self.pop_covered(index) {
            covered.push(seg.path);
            bytes += len;
        }
        let n = covered.len();
        if n > 0 {
            // Counted out now, like the segments: the snapshot trigger measures the
            // log's growth from here.
            self.shared
                .bytes_on_disk
                .fetch_sub(bytes, std::sync::atomic::Ordering::Relaxed);
            self.after_truncate();
            tracing::debug!(
                segments = n,
                before = index,
                "wal: segments handed over for deletion"
            );
            self.shared.delete_later(covered);
        }
        n
    }

    /// Takes the oldest segment off the books if all its entries are below `index`
    /// (segment 0 holds the indexes below segment 1's first), with its length.
    fn pop_covered(&mut self, index: u64) -> Option<(SegmentFile, u64)> {
        if self.segments.len() < 2 || self.segments[1].first_index > index {
            return None;
        }
        let seg = self.segments.remove(0);
        let len = if self.sealed_lengths.is_empty() {
            0
        } else {
            self.sealed_lengths.remove(0)
        };
        Some((seg, len))
    }

    fn after_truncate(&mut self) {
        if self.last_index > 0 {
            if let Some(first) = self.segments.first() {
                self.first_index = first.first_index;
            }
        }
        self.shared.segments.store(
            self.segments.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}
