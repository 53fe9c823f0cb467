//! Opening an existing log: every segment is read in order and every record checked
//! (checksum, index continuity). Zeros after the last segment's last record (written
//! ahead under `always`, left by a crash) are cut off as a clean end. A torn tail of the
//! last segment, the leftovers of a write that a crash interrupted, is cut back to the
//! last good record. Damage anywhere else stops the open with the file and offset,
//! unless `repair` is set: then the log is truncated there and later segments are
//! dropped, loudly.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::{Result, WalError};
use super::record::{Header, HEADER_LEN, MAX_PAYLOAD};
use super::segment::{list_segments, sync_dir, BadKind, Next, SegmentFile, SegmentReader};

/// A torn tail that recovery cut off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The last segment.
    pub path: PathBuf,
    /// Where the file now ends (offset of the first bad byte).
    pub offset: u64,
    /// How many bytes were dropped.
    pub bytes_dropped: u64,
    /// What the first bad record looked like.
    pub reason: String,
}

/// Damage before the tail that `repair` truncated away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The segment holding the damage.
    pub path: PathBuf,
    /// Offset where that segment now ends.
    pub offset: u64,
    /// What was wrong.
    pub reason: String,
    /// Bytes dropped from this segment.
    pub bytes_dropped: u64,
    /// Later segments deleted whole.
    pub segments_dropped: Vec<PathBuf>,
}

/// What opening the log found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Segments kept.
    pub segments: usize,
    /// Records found.
    pub records: u64,
    /// First index in the log (0 = empty).
    pub first_index: u64,
    /// Last index in the log (0 = empty).
    pub last_index: u64,
    /// The torn tail cut off, if any.
    pub torn_tail: Option<TornTail>,
    /// Damage truncated by `repair`, if any.
    pub repair: Option<Repair>,
}

/// The log as recovery left it.
pub(crate) struct Recovered {
    pub segments: Vec<SegmentFile>,
    /// Length of each kept segment, in the same order.
    pub lengths: Vec<u64>,
    pub report: RecoveryReport,
}

/// Scans, checks and if needed truncates the log in `dir`.
pub(crate) fn recover(dir: &Path, repair: bool) -> Result<Recovered> {
    let segs = list_segments(dir)?;
    let mut out = Recovered {
        segments: Vec::new(),
        lengths: Vec::new(),
        report: RecoveryReport::default(),
    };
    let mut expected: Option<u64> = None;
    for (i, seg) in segs.iter().enumerate() {
        let is_last = i + 1 == segs.len();
        let start_problem = if seg.first_index == 0 {
            Some("segment name carries index 0 (indexes start at 1)".to_string())
        } else {
            expected.filter(|e| *e != seg.first_index).map(|e| {
                format!(
                    "index gap: segment starts at index {} but the log before it ends before index {e}",
                    seg.first_index
                )
            })
        };
        if let Some(reason) = start_problem {
            if !repair {
                return Err(WalError::corrupt(&seg.path, 0, reason));
            }
            let dropped = drop_segments(dir, &segs[i..])?;
            let bytes = dropped.first().map_or(0, |(_, len)| *len);
            warn_repair(&seg.path, 0, &reason, bytes, dropped.len());
            out.report.repair = Some(Repair {
                path: seg.path.clone(),
                offset: 0,
                reason,
                bytes_dropped: bytes,
                segments_dropped: dropped.into_iter().map(|(p, _)| p).collect(),
            });
            break;
        }

        let mut rd = SegmentReader::open(&seg.path, None)?;
        let file_len = rd.limit();
        let mut next = seg.first_index;
        let bad = loop {
            match rd.next_record(next)? {
                Next::Record { index, .. } => {
                    out.report.records += 1;
                    if out.report.first_index == 0 {
                        out.report.first_index = index;
                    }
                    out.report.last_index = index;
                    next = index + 1;
                }
                Next::End => break None,
                Next::Bad {
                    offset,
                    kind,
                    reason,
                } => break Some((offset, kind, reason)),
            }
        };
        drop(rd);
        expected = Some(next);
        out.segments.push(seg.clone());
        let Some((offset, kind, reason)) = bad else {
            out.lengths.push(file_len);
            continue;
        };
        out.lengths.push(offset);
        let dropped_bytes = file_len - offset;
        // Zeros hold no record (none has index 0), so they need no search for one.
        let zeros = is_last && kind == BadKind::Damaged && zeros_only(&seg.path, offset, file_len)?;
        let valid_after = if kind == BadKind::Damaged && !zeros {
            find_valid_record(&seg.path, offset, file_len, next)?
        } else {
            None
        };
        if is_last && kind == BadKind::Damaged && valid_after.is_none() {
            truncate_file(&seg.path, offset)?;
            if zeros {
                // The zeros `always` writes ahead of the records: a clean end.
                tracing::info!(
                    file = %seg.path.display(),
                    offset,
                    bytes = dropped_bytes,
                    "wal: zeros written ahead of the last record cut off"
                );
                continue;
            }
            tracing::warn!(
                file = %seg.path.display(),
                offset,
                bytes_dropped = dropped_bytes,
                reason = %reason,
                "wal: torn tail cut back to the last good record"
            );
            out.report.torn_tail = Some(TornTail {
                path: seg.path.clone(),
                offset,
                bytes_dropped: dropped_bytes,
                reason,
            });
            continue;
        }
        let reason = match (valid_after, is_last) {
            (Some(at), _) => format!("{reason}; a valid record follows at offset {at}"),
            (None, false) if kind == BadKind::Damaged => {
                format!("{reason}, in a segment that is not the last")
            }
            _ => reason,
        };
        if !repair {
            return Err(WalError::corrupt(&seg.path, offset, reason));
        }
        truncate_file(&seg.path, offset)?;
        let later = drop_segments(dir, &segs[i + 1..])?;
        warn_repair(&seg.path, offset, &reason, dropped_bytes, later.len());
        out.report.repair = Some(Repair {
            path: seg.path.clone(),
            offset,
            reason,
            bytes_dropped: dropped_bytes,
            segments_dropped: later.into_iter().map(|(p, _)| p).collect(),
        });
        break;
    }
    out.report.segments = out.segments.len();
    Ok(out)
}

fn warn_repair(path: &Path, offset: u64, reason: &str, bytes: u64, segments: usize) {
    tracing::warn!(
        file = %path.display(),
        offset,
        reason,
        bytes_dropped = bytes,
        segments_dropped = segments,
        "wal: repair truncated the log at damage before its tail"
    );
}

/// Whether `path` holds only zero bytes in `[from, end)` (read before any cut).
fn zeros_only(path: &Path, from: u64, end: u64) -> Result<bool> {
    const CHUNK: u64 = 1 << 16;
    let file = File::open(path).map_err(|e| WalError::io("open segment", path, from, e))?;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut at = from;
    while at < end {
        let n = (end - at).min(CHUNK) as usize;
        file.read_exact_at(&mut buf[..n], at)
            .map_err(|e| WalError::io("read", path, at, e))?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Cuts `path` to `len` bytes and makes that durable.
fn truncate_file(path: &Path, len: u64) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| WalError::io("open segment to truncate", path, len, e))?;
    f.set_len(len)
        .map_err(|e| WalError::io("truncate segment", path, len, e))?;
    f.sync_all()
        .map_err(|e| WalError::io("fsync truncated segment", path, len, e))
}

/// Deletes `segs` (newest first, so a crash midway leaves a contiguous log) and returns
/// their paths and lengths in the original order.
fn drop_segments(dir: &Path, segs: &[SegmentFile]) -> Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::with_capacity(segs.len());
    for seg in segs {
        let len = std::fs::metadata(&seg.path)
            .map_err(|e| WalError::io("stat segment", &seg.path, 0, e))?
            .len();
        out.push((seg.path.clone(), len));
    }
    for seg in segs.iter().rev() {
        std::fs::remove_file(&seg.path)
            .map_err(|e| WalError::io("delete segment", &seg.path, 0, e))?;
    }
    if !segs.is_empty() {
        sync_dir(dir)?;
    }
    Ok(out)
}

/// Looks for a valid record starting anywhere in `(from, end)` whose index could follow
/// the log (`>= expected`). Finding one means the damage at `from` is not a torn tail.
/// Candidates are filtered by index before any checksum is computed, so a long tail of
/// garbage costs one pass over its bytes.
pub(crate) fn find_valid_record(
    path: &Path,
    from: u64,
    end: u64,
    expected: u64,
) -> Result<Option<u64>> {
    const CHUNK: u64 = 1 << 20;
    let file = File::open(path).map_err(|e| WalError::io("open segment", path, from, e))?;
    let header = HEADER_LEN as u64;
    // Every record takes at least a header, which bounds the indexes that can follow.
    let max_index = expected.saturating_add((end - from) / header);
    let mut buf = Vec::new();
    let mut start = from + 1;
    while start + header <= end {
        let chunk_end = (start + CHUNK + header - 1).min(end);
        // At most CHUNK + header bytes.
        buf.resize((chunk_end - start) as usize, 0);
        file.read_exact_at(&mut buf, start)
            .map_err(|e| WalError::io("read", path, start, e))?;
        for (off, w) in buf.windows(HEADER_LEN).enumerate() {
            let mut raw = [0u8; HEADER_LEN];
            raw.copy_from_slice(w);
            let h = Header::parse(&raw);
            let at = start + off as u64;
            if h.index < expected
                || h.index > max_index
                || h.len as usize > MAX_PAYLOAD
                || h.record_len() > end - at
            {
                continue;
            }
            // Bounded by the file's remaining length just above.
            let mut payload = vec![0u8; h.len as usize];
            file.read_exact_at(&mut payload, at + header)
                .map_err(|e| WalError::io("read", path, at + header, e))?;
            if h.verify(&payload) {
                return Ok(Some(at));
            }
        }
        start = chunk_end + 1 - header;
    }
    Ok(None)
}
