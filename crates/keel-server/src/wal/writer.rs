//! The writer: appends go to a buffer, `flush` writes the buffer with one positioned
//! write, `commit` adds one fdatasync under `always`, so the apply loop can append a whole
//! batch of entries, commit once and then answer all of them (group commit).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use keel_storage::SyncPolicy;

use super::error::{Result, WalError};
use super::record::{self, HEADER_LEN, MAX_PAYLOAD};
use super::recovery::{recover, RecoveryReport};
use super::segment::{segment_file_name, sync_dir, SegmentFile};
use super::sync::{spawn_background, Shared};

/// Default size past which a new segment is started.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;

/// A buffer grown past this by a large record is released after the flush.
const KEEP_BUFFER: usize = 8 << 20;

/// Under `always`, the active segment is written with zeros this far ahead of its
/// records, so that an fdatasync after an append finds the file's size unchanged and
/// writes the data alone, not the inode as well. Measured on ext4 here, 2,000-byte
/// appends each followed by an fdatasync: 186-440 µs and 74-146 µs of kernel CPU per
/// fdatasync for a growing file, 139-162 µs and 56-70 µs inside one written with zeros
/// (PostgreSQL zero-fills its WAL segments for the same reason). One fdatasync per this
/// many bytes of log also writes the zeros.
const ZERO_AHEAD: u64 = 1 << 20;

/// How the WAL is opened and when it fsyncs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalOptions {
    /// A segment that would grow past this many bytes is closed and a new one started.
    pub segment_size: u64,
    /// `always`: `commit` fdatasyncs; `everysec`: a background thread does, once a
    /// second; `no`: only rotation and `close` do (under `everysec` and `no` the
    /// background thread starts the writeback of every MiB written).
    pub sync: SyncPolicy,
    /// Truncate at damage before the tail instead of refusing to open.
    pub repair: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
            sync: SyncPolicy::default(),
            repair: false,
        }
    }
}

impl WalOptions {
    /// Sets the segment size.
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// Sets the fsync policy.
    pub fn sync(mut self, policy: SyncPolicy) -> Self {
        self.sync = policy;
        self
    }

    /// Sets repair mode.
    pub fn repair(mut self, repair: bool) -> Self {
        self.repair = repair;
        self
    }
}

/// Counters of the WAL, for INFO and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalStats {
    /// Bytes written to segment files (buffered appends not included).
    pub bytes_on_disk: u64,
    /// Number of segment files.
    pub segments: u64,
    /// Last appended index (0 = none).
    pub last_index: u64,
    /// Last index known to be on stable storage.
    pub last_synced_index: u64,
    /// fdatasync calls made since open.
    pub fsyncs: u64,
    /// How long the last fdatasync took.
    pub last_fsync: Duration,
    /// Writebacks the background thread started ahead of the fdatasyncs (`everysec`
    /// and `no`).
    pub writebacks: u64,
    /// The failure that stopped writes, if any.
    pub failed: Option<String>,
}

/// A handle that reads the WAL's counters from another thread.
#[derive(Clone)]
pub struct WalStatsHandle(Arc<Shared>);

impl WalStatsHandle {
    /// The counters now.
    pub fn get(&self) -> WalStats {
        stats_of(&self.0)
    }
}

/// A handle that makes what the WAL has written durable, from another thread (the
/// acknowledgement thread under `always`: see `coordinator::acks`).
#[derive(Clone)]
pub struct WalSyncHandle(Arc<Shared>);

impl WalSyncHandle {
    /// fdatasyncs everything written so far, unless it is durable already (one
    /// fdatasync serves every caller queued behind it); returns the last durable index.
    /// A failure latches: the WAL refuses writes from then on.
    pub fn sync(&self) -> Result<u64> {
        self.0.sync()
    }
}

fn stats_of(s: &Shared) -> WalStats {
    use std::sync::atomic::Ordering::Relaxed;
    WalStats {
        bytes_on_disk: s.bytes_on_disk.load(Relaxed),
        segments: s.segments.load(Relaxed),
        last_index: s.last_index.load(Relaxed),
        last_synced_index: s.synced_index(),
        fsyncs: s.fsyncs(),
        last_fsync: s.last_fsync(),
        writebacks: s.writebacks(),
        failed: s.failure(),
    }
}

/// The segment receiving appends.
struct Active {
    file: Arc<File>,
    path: PathBuf,
    first_index: u64,
    /// Bytes written to the file.
    written_len: u64,
    /// The file's length: `written_len` plus the zeros written ahead (`ZERO_AHEAD`),
    /// which rotation and `close` cut off again.
    file_len: u64,
}

/// The write-ahead log of one shard. Owned by the apply loop; its fsync state is shared
/// with the `everysec` thread and stats handles.
pub struct Wal {
    pub(super) shared: Arc<Shared>,
    pub(super) opts: WalOptions,
    /// Segments in index order; the last one is the active segment.
    pub(super) segments: Vec<SegmentFile>,
    /// Length of each segment but the active one, for the byte count on deletion.
    pub(super) sealed_lengths: Vec<u64>,
    active: Option<Active>,
    buf: Vec<u8>,
    buf_last_index: u64,
    pub(super) first_index: u64,
    pub(super) last_index: u64,
    /// The background thread (see `sync::spawn_background`).
    background: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal")
            .field("dir", &self.shared.dir)
            .field("first_index", &self.first_index)
            .field("last_index", &self.last_index)
            .field("segments", &self.segments.len())
            .finish()
    }
}

impl Wal {
    /// Opens (creating if needed) the log in `dir`, recovering what is there. Everything
    /// found is fdatasynced before this returns, so it all counts as durable.
    pub fn open(dir: impl AsRef<Path>, opts: WalOptions) -> Result<(Wal, RecoveryReport)> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir)
                .map_err(|e| WalError::io("create wal dir", &dir, 0, e))?;
            // The new directory's entry must survive a crash like the segments in it.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let rec = recover(&dir, opts.repair)?;
        let shared = Arc::new(Shared::new(dir, opts.sync != SyncPolicy::Always));
        let mut lengths = rec.lengths;
        let active = match rec.segments.last() {
            Some(seg) => {
                let len = lengths.pop().unwrap_or(0);
                let file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&seg.path)
                    .map_err(|e| WalError::io("open segment", &seg.path, 0, e))?;
                let file = Arc::new(file);
                shared.set_target(Arc::clone(&file), seg.path.clone(), len);
                Some(Active {
                    file,
                    path: seg.path.clone(),
                    first_index: seg.first_index,
                    written_len: len,
                    file_len: len,
                })
            }
            None => None,
        };
        let total: u64 = lengths.iter().sum::<u64>() + active.as_ref().map_or(0, |a| a.written_len);
        let report = rec.report;
        use std::sync::atomic::Ordering::Relaxed;
        shared.bytes_on_disk.store(total, Relaxed);
        shared.segments.store(rec.segments.len() as u64, Relaxed);
        shared.last_index.store(report.last_index, Relaxed);
        shared.note_written(
            active.as_ref().map_or(0, |a| a.written_len),
            report.last_index,
        );
        // What a crashed process left may still sit in the page cache only.
        if let Some(a) = &active {
            a.file
                .sync_data()
                .map_err(|e| WalError::io("fdatasync", &a.path, a.written_len, e))?;
        }
        shared.set_synced(report.last_index);
        let background = Some(spawn_background(
            &shared,
            opts.sync == SyncPolicy::EverySec,
        )?);
        let first_index = match rec.segments.first() {
            Some(s) if report.last_index > 0 => s.first_index,
            _ => 0,
        };
        Ok((
            Wal {
                shared,
                opts,
                segments: rec.segments,
                sealed_lengths: lengths,
                active,
                buf: Vec::new(),
                buf_last_index: 0,
                first_index,
                last_index: report.last_index,
                background,
            },
            report,
        ))
    }

    /// The WAL directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The options the WAL was opened with.
    pub fn options(&self) -> &WalOptions {
        &self.opts
    }

    /// First index held (0 = empty).
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// Last index appended, buffered or not (0 = empty).
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Last index known to be on stable storage.
    pub fn last_synced_index(&self) -> u64 {
        self.shared.synced_index()
    }

    /// The counters now.
    pub fn stats(&self) -> WalStats {
        stats_of(&self.shared)
    }

    /// A handle for reading the counters from another thread.
    pub fn stats_handle(&self) -> WalStatsHandle {
        WalStatsHandle(Arc::clone(&self.shared))
    }

    /// Latches `err` as a failed write or fdatasync would (tests of callers' failure
    /// paths).
    #[cfg(test)]
    pub(crate) fn inject_failure(&self, err: &WalError) {
        self.shared.fail(err);
    }

    /// A handle for making written entries durable from another thread.
    pub fn sync_handle(&self) -> WalSyncHandle {
        WalSyncHandle(Arc::clone(&self.shared))
    }

    /// Buffers the record of entry `index`, which must follow the last index (any index
    /// from 1 when the log is empty).
    pub fn append(&mut self, index: u64, payload: &[u8]) -> Result<()> {
        self.shared.check()?;
        if payload.len() > MAX_PAYLOAD {
            return Err(WalError::TooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD,
            });
        }
        let expected = if self.last_index == 0 {
            index.max(1)
        } else {
            self.last_index + 1
        };
        if index != expected {
            return Err(WalError::OutOfOrder {
                last: self.last_index,
                expected,
                got: index,
            });
        }
        let rec_len = (HEADER_LEN + payload.len()) as u64;
        let (empty_log_mismatch, full) = match &self.active {
            None => (false, false),
            Some(a) => {
                let used = a.written_len + self.buf.len() as u64;
                (
                    self.last_index == 0 && a.first_index != index,
                    used > 0 && used + rec_len > self.opts.segment_size,
                )
            }
        };
        if self.active.is_none() {
            self.open_segment(index)?;
        } else if empty_log_mismatch {
            // An empty log's leftover segment is named for another index: replace it.
            self.discard_empty_active()?;
            self.open_segment(index)?;
        } else if full {
            self.rotate(index)?;
        }
        record::encode(index, payload, &mut self.buf);
        self.buf_last_index = index;
        self.last_index = index;
        if self.first_index == 0 {
            self.first_index = index;
        }
        self.shared
            .last_index
            .store(index, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Writes everything buffered to the active segment with one positioned write.
    pub fn flush(&mut self) -> Result<()> {
        self.shared.check()?;
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(a) = self.active.as_mut() else {
            // append always opens a segment before buffering.
            return Err(WalError::Failed {
                reason: "buffered records without an active segment".into(),
            });
        };
        let n = self.buf.len() as u64;
        let end = a.written_len + n;
        if self.opts.sync == SyncPolicy::Always && end > a.file_len {
            // Never past the segment's size, where it rotates.
            let ahead = end
                .next_multiple_of(ZERO_AHEAD)
                .min(self.opts.segment_size.max(end));
            let zeros = vec![0u8; (ahead - end) as usize];
            if let Err(e) = a.file.write_all_at(&zeros, end) {
                let err = WalError::io("write zeros ahead", &a.path, end, e);
                self.shared.fail(&err);
                return Err(err);
            }
            a.file_len = ahead;
        }
        if let Err(e) = a.file.write_all_at(&self.buf, a.written_len) {
            let err = WalError::io("write", &a.path, a.written_len, e);
            self.shared.fail(&err);
            return Err(err);
        }
        a.written_len = end;
        a.file_len = a.file_len.max(end);
        self.shared
            .bytes_on_disk
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        self.shared.note_written(a.written_len, self.buf_last_index);
        self.buf.clear();
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// fdatasyncs what has been flushed; returns the last durable index.
    pub fn sync(&self) -> Result<u64> {
        self.shared.sync()
    }

    /// Flushes, and under `always` fdatasyncs once for every entry appended so far.
    /// Returns the last durable index; under `always` that is the last appended one.
    pub fn commit(&mut self) -> Result<u64> {
        self.flush()?;
        if self.opts.sync == SyncPolicy::Always {
            self.shared.sync()
        } else {
            Ok(self.shared.synced_index())
        }
    }

    /// Flushes, fdatasyncs (whatever the policy) and stops the background thread.
    pub fn close(mut self) -> Result<()> {
        self.flush()?;
        self.cut_zeros()?;
        self.shared.sync()?;
        self.stop_background();
        Ok(())
    }

    /// The failure that stopped writes, if any.
    pub fn failure(&self) -> Option<String> {
        self.shared.failure()
    }

    /// Seals the active segment if it holds anything, so the next append starts a new
    /// one: a snapshot covering everything so far can then drop every older segment with
    /// [`Wal::truncate_before`].
    pub fn seal_active(&mut self) -> Result<()> {
        self.shared.check()?;
        let used = self
            .active
            .as_ref()
            .map_or(0, |a| a.written_len + self.buf.len() as u64);
        if used == 0 || self.last_index == 0 {
            return Ok(());
        }
        self.rotate(self.last_index + 1)
    }

    /// Empties the log so the next append may be any index after `index`. For the gap a
    /// crash can leave under `everysec`/`no`: the store already holds every entry up to
    /// `index`, more than the log does, so nothing in the log is needed any more.
    /// Refused (`OutOfOrder`) if the log holds entries after `index`.
    pub fn restart_after(&mut self, index: u64) -> Result<()> {
        self.shared.check()?;
        if self.last_index > index {
            return Err(WalError::OutOfOrder {
                last: self.last_index,
                expected: self.last_index + 1,
                got: index + 1,
            });
        }
        self.flush()?;
        self.active = None;
        self.buf.clear();
        for seg in std::mem::take(&mut self.segments) {
            std::fs::remove_file(&seg.path)
                .map_err(|e| WalError::io("delete segment", &seg.path, 0, e))?;
        }
        self.sealed_lengths.clear();
        sync_dir(&self.shared.dir)?;
        self.first_index = 0;
        self.last_index = 0;
        use std::sync::atomic::Ordering::Relaxed;
        self.shared.bytes_on_disk.store(0, Relaxed);
        self.shared.segments.store(0, Relaxed);
        self.shared.last_index.store(index, Relaxed);
        self.shared.set_synced(index);
        tracing::info!(
            after = index,
            "wal: restarted empty after the store's index"
        );
        Ok(())
    }

    /// Seals the active segment (written and fdatasynced whatever the policy, so the
    /// durable index never has holes behind it) and starts one at `first_index`.
    fn rotate(&mut self, first_index: u64) -> Result<()> {
        self.flush()?;
        self.cut_zeros()?;
        self.shared.sync()?;
        if let Some(a) = self.active.take() {
            self.sealed_lengths.push(a.written_len);
        }
        self.open_segment(first_index)
    }

    /// Cuts the zeros written ahead off the active segment, which then ends at its last
    /// record (before it is sealed or closed: only a crash leaves zeros behind, which
    /// recovery cuts off as a clean end).
    fn cut_zeros(&mut self) -> Result<()> {
        let Some(a) = self.active.as_mut() else {
            return Ok(());
        };
        if a.file_len > a.written_len {
            if let Err(e) = a.file.set_len(a.written_len) {
                let err =
                    WalError::io("cut the zeros after the records", &a.path, a.written_len, e);
                self.shared.fail(&err);
                return Err(err);
            }
            a.file_len = a.written_len;
        }
        Ok(())
    }

    fn open_segment(&mut self, first_index: u64) -> Result<()> {
        let path = self.shared.dir.join(segment_file_name(first_index));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| WalError::io("create segment", &path, 0, e));
        let file = match file.and_then(|f| sync_dir(&self.shared.dir).map(|()| f)) {
            Ok(f) => Arc::new(f),
            Err(err) => {
                self.shared.fail(&err);
                return Err(err);
            }
        };
        self.shared.set_target(Arc::clone(&file), path.clone(), 0);
        self.segments.push(SegmentFile {
            first_index,
            path: path.clone(),
        });
        self.shared.segments.store(
            self.segments.len() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        self.active = Some(Active {
            file,
            path,
            first_index,
            written_len: 0,
            file_len: 0,
        });
        Ok(())
    }

    /// Deletes the active segment of an empty log.
    fn discard_empty_active(&mut self) -> Result<()> {
        let Some(a) = self.active.take() else {
            return Ok(());
        };
        self.segments.retain(|s| s.path != a.path);
        self.sealed_lengths.truncate(self.segments.len());
        std::fs::remove_file(&a.path)
            .map_err(|e| WalError::io("delete empty segment", &a.path, 0, e))?;
        sync_dir(&self.shared.dir)
    }

    /// The active segment's path and written length, for readers.
    pub(super) fn active_extent(&self) -> Option<(&Path, u64)> {
        self.active
            .as_ref()
            .map(|a| (a.path.as_path(), a.written_len))
    }

    fn stop_background(&mut self) {
        self.shared.stop();
        if let Some(h) = self.background.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Buffered, unflushed records are dropped: they were never acknowledged.
        self.stop_background();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_cross_threads() {
        assert_send::<Wal>();
        assert_send_sync::<WalStatsHandle>();
    }

    #[test]
    fn a_failure_latches_and_refuses_writes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut wal, _) =
            Wal::open(tmp.path(), WalOptions::default().sync(SyncPolicy::Always)).expect("open");
        wal.append(1, b"a").expect("append");
        wal.commit().expect("commit");
        let fsyncs = wal.stats().fsyncs;
        let injected = WalError::io(
            "fdatasync",
            tmp.path(),
            7,
            std::io::Error::other("injected"),
        );
        wal.shared.fail(&injected);
        for res in [wal.append(2, b"b"), wal.flush(), wal.commit().map(|_| ())] {
            assert!(matches!(res, Err(WalError::Failed { .. })), "{res:?}");
        }
        assert!(matches!(wal.sync(), Err(WalError::Failed { .. })));
        // No fdatasync is attempted after the failure.
        assert_eq!(wal.stats().fsyncs, fsyncs);
        let reason = wal.failure().expect("failure recorded");
        assert!(
            reason.contains("injected") && reason.contains("offset 7"),
            "{reason}"
        );
        assert_eq!(wal.stats().failed, Some(reason));
    }

    fn collect(wal: &Wal, after: u64) -> Vec<u64> {
        wal.entries_after(after)
            .map(|r| r.expect("entry").0)
            .collect()
    }

    #[test]
    fn seal_then_truncate_keeps_only_the_new_segment() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut wal, _) =
            Wal::open(tmp.path(), WalOptions::default().sync(SyncPolicy::No)).expect("open");
        for i in 1..=5 {
            wal.append(i, b"x").expect("append");
        }
        wal.commit().expect("commit");
        wal.seal_active().expect("seal");
        // Sealing an empty active segment is a no-op.
        wal.seal_active().expect("seal again");
        assert_eq!(wal.stats().segments, 2);
        assert_eq!(wal.truncate_before(6).expect("truncate"), 1);
        wal.append(6, b"y").expect("append after seal");
        wal.commit().expect("commit");
        assert_eq!(collect(&wal, 5), vec![6]);
        drop(wal);
        let (wal, _) = Wal::open(tmp.path(), WalOptions::default()).expect("reopen");
        assert_eq!((wal.first_index(), wal.last_index()), (6, 6));
    }

    #[test]
    fn restart_after_skips_to_a_later_index() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (mut wal, _) =
            Wal::open(tmp.path(), WalOptions::default().sync(SyncPolicy::No)).expect("open");
        for i in 1..=3 {
            wal.append(i, b"x").expect("append");
        }
        wal.commit().expect("commit");
        assert!(matches!(
            wal.restart_after(2),
            Err(WalError::OutOfOrder { .. })
        ));
        wal.restart_after(10).expect("restart");
        assert_eq!(wal.last_index(), 0);
        wal.append(11, b"z").expect("append after the gap");
        wal.commit().expect("commit");
        drop(wal);
        let (wal, _) = Wal::open(tmp.path(), WalOptions::default()).expect("reopen");
        assert_eq!((wal.first_index(), wal.last_index()), (11, 11));
        assert_eq!(collect(&wal, 10), vec![11]);
    }

    #[test]
    fn the_everysec_thread_ends_with_the_wal() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (wal, _) =
            Wal::open(tmp.path(), WalOptions::default().sync(SyncPolicy::EverySec)).expect("open");
        assert!(wal.background.is_some());
        let weak = Arc::downgrade(&wal.shared);
        drop(wal);
        // Drop joined the thread, which held the only other reference between rounds.
        assert!(weak.upgrade().is_none());
    }
}
