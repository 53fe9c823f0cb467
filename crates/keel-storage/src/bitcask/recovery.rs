//! Opening a store's segments: per segment, load its hint file or scan its data file;
//! tell a torn tail (cut back and carry on) from corruption (refuse to open, naming file
//! and offset); and build the key directory, where the highest sequence number wins.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::hint::{self, HintBuilder};
use super::record::{self, Header, HEADER_LEN};
use super::segment::{self, Segment};
use super::Loc;
use crate::error::{IoContext, Result, StorageError};
use crate::mvcc::IndexKey;

/// Bytes a scan reads at a time.
const WINDOW: usize = 4 << 20;

/// A record of a complete batch, as found by a scan or a hint.
#[derive(Debug)]
pub struct FoundRecord {
    /// Its key.
    pub key: IndexKey,
    /// Its sequence number.
    pub seq: u64,
    /// Its flags.
    pub flags: u8,
    /// Its value length.
    pub vlen: u32,
    /// Its offset in the data file.
    pub offset: u64,
}

/// How a scan of a data file ended.
#[derive(Debug, PartialEq, Eq)]
pub struct ScanEnd {
    /// Length the file must have: the end of its last complete batch.
    pub valid_len: u64,
    /// Bytes past `valid_len` that are to be dropped (torn tail or repair).
    pub dropped: u64,
}

/// Reads a file through a sliding window so scans need few system calls.
pub(crate) struct Window<'a> {
    file: &'a File,
    path: &'a Path,
    len: u64,
    start: u64,
    buf: Vec<u8>,
    big: Vec<u8>,
}

impl<'a> Window<'a> {
    /// A window over the first `len` bytes of `file`.
    pub(crate) fn new(file: &'a File, path: &'a Path, len: u64) -> Self {
        Window {
            file,
            path,
            len,
            start: 0,
            buf: Vec::new(),
            big: Vec::new(),
        }
    }

    /// `n` bytes at `off`; the caller has checked `off + n <= len`.
    pub(crate) fn bytes(&mut self, off: u64, n: usize) -> Result<&[u8]> {
        let end = off + n as u64;
        if off >= self.start && end <= self.start + self.buf.len() as u64 {
            let s = (off - self.start) as usize;
            return Ok(&self.buf[s..s + n]);
        }
        if n > WINDOW {
            self.big.resize(n, 0);
            self.file
                .read_exact_at(&mut self.big, off)
                .ctx("read segment", self.path)?;
            return Ok(&self.big);
        }
        let want = (self.len - off).min(WINDOW as u64) as usize;
        self.buf.resize(want, 0);
        self.file
            .read_exact_at(&mut self.buf, off)
            .ctx("read segment", self.path)?;
        self.start = off;
        Ok(&self.buf[..n])
    }

    /// Parses the record at `off`, or says what is wrong with it.
    fn record_at(&mut self, off: u64) -> Result<Result<(Header, IndexKey), String>> {
        let remaining = self.len - off;
        if remaining < HEADER_LEN as u64 {
            return Ok(Err(format!(
                "short record header ({remaining} of {HEADER_LEN} bytes)"
            )));
        }
        let Some(header) = Header::decode(self.bytes(off, HEADER_LEN)?) else {
            return Ok(Err("short record header".into()));
        };
        if let Err(reason) = header.check_shape(remaining) {
            return Ok(Err(reason));
        }
        let b = self.bytes(off, header.record_len() as usize)?;
        Ok(record::parse(b, remaining).map(|p| (p.header, IndexKey::new(p.key))))
    }

    /// Whether any offset in `from..len` starts a valid record (header shape and CRC).
    fn valid_record_after(&mut self, from: u64) -> Result<Option<u64>> {
        let mut off = from;
        while off + HEADER_LEN as u64 <= self.len {
            let remaining = self.len - off;
            if let Some(h) = Header::decode(self.bytes(off, HEADER_LEN)?) {
                if h.check_shape(remaining).is_ok() {
                    let b = self.bytes(off, h.record_len() as usize)?;
                    if record::parse(b, remaining).is_ok() {
                        return Ok(Some(off));
                    }
                }
            }
            off += 1;
        }
        Ok(None)
    }
}

/// Scans the data file `path` of `len` bytes, handing every record of every complete
/// batch to `emit` in file order. `last` marks the newest segment, whose bad tail is cut
/// as torn when no valid record follows it; anywhere else a bad record fails the scan
/// with its offset unless `repair` is set. The caller truncates to `valid_len`.
pub fn scan(
    path: &Path,
    file: &File,
    len: u64,
    last: bool,
    repair: bool,
    mut emit: impl FnMut(FoundRecord),
) -> Result<ScanEnd> {
    let mut win = Window::new(file, path, len);
    let mut off = 0u64;
    let mut batch_start = 0u64;
    let mut pending: Vec<FoundRecord> = Vec::new();
    // `trailing`: every record is intact but the last batch never got its BATCH_END
    // record (the writer died between records), so there is no bad record to look past.
    let (bad_off, reason, trailing) = loop {
        if off == len {
            if pending.is_empty() {
                return Ok(ScanEnd {
                    valid_len: len,
                    dropped: 0,
                });
            }
            break (
                batch_start,
                "last batch of the file has no BATCH_END record".to_string(),
                true,
            );
        }
        let (header, key) = match win.record_at(off)? {
            Ok(r) => r,
            Err(reason) => break (off, reason, false),
        };
        if pending.first().is_some_and(|p| p.seq != header.seq) {
            break (off, "sequence number changes inside a batch".into(), false);
        }
        pending.push(FoundRecord {
            key,
            seq: header.seq,
            flags: header.flags,
            vlen: header.vlen,
            offset: off,
        });
        off += header.record_len();
        if header.is_batch_end() {
            for r in pending.drain(..) {
                emit(r);
            }
            batch_start = off;
        }
    };
    let follows = if trailing {
        None
    } else {
        win.valid_record_after(bad_off + 1)?
    };
    let dropped = len - batch_start;
    if last && follows.is_none() {
        tracing::warn!(path = %path.display(), offset = batch_start, bad_record = bad_off,
            bytes_dropped = dropped, %reason, "torn tail: truncating the segment to its last complete batch");
        return Ok(ScanEnd {
            valid_len: batch_start,
            dropped,
        });
    }
    if repair {
        tracing::warn!(path = %path.display(), offset = bad_off, truncated_at = batch_start,
            bytes_dropped = dropped, %reason, "repair: truncating the segment at a corrupt record, dropping what follows");
        return Ok(ScanEnd {
            valid_len: batch_start,
            dropped,
        });
    }
    let reason = match follows {
        Some(at) => format!("{reason}; valid records follow at offset {at}"),
        None => reason,
    };
    Err(StorageError::corrupt(path, bad_off, reason))
}

/// A record seen by the open, from a hint or a scan.
struct Found {
    key: IndexKey,
    seq: u64,
    loc: Loc,
    tombstone: bool,
}

/// What a per-segment load produced.
#[derive(Debug)]
pub struct LoadedSegment {
    /// The open segment.
    pub segment: Arc<Segment>,
    /// Whether a valid hint file described it (a sealed segment).
    pub hinted: bool,
    /// For an unhinted segment: the hint entries of its records (to seal it later).
    pub hint: Option<HintBuilder>,
}

/// The result of opening every segment.
#[derive(Debug)]
pub struct Recovered {
    /// Segments ascending by id, with garbage accounting filled in.
    pub segments: Vec<LoadedSegment>,
    /// Live keys (ascending) and where their latest values are.
    pub live: Vec<(IndexKey, Loc)>,
    /// The highest sequence number found.
    pub max_seq: u64,
    /// Bytes cut from torn tails or by repair.
    pub dropped_bytes: u64,
    /// Segments loaded from their hint files.
    pub from_hints: usize,
}

/// Opens the segments `ids` (ascending) in `dir` and rebuilds the key directory.
pub fn recover(dir: &Path, ids: &[u32], repair: bool) -> Result<Recovered> {
    let mut files = Vec::with_capacity(ids.len());
    for &id in ids {
        let path = segment::data_path(dir, id);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .ctx("open segment", &path)?;
        let len = file.metadata().ctx("stat segment", &path)?.len();
        if len > u64::from(u32::MAX) {
            return Err(StorageError::corrupt(
                &path,
                u64::from(u32::MAX),
                "segment larger than 4 GiB",
            ));
        }
        files.push((id, path, file, len));
    }
    let n = files.len();
    let loads = parallel_map(&files, |i, (id, path, file, len)| {
        load_segment(dir, *id, path, file, *len, i + 1 == n, repair)
    });

    // Each segment's records come sorted by (key, seq, offset); in segment order they
    // form sorted runs of (key, seq, segment, offset), which the stable sort merges.
    // After it the last record of each key wins: highest sequence number, and within
    // one batch (same key twice) the later record.
    let mut found: Vec<Found> = Vec::new();
    let mut max_seq = 0u64;
    let mut dropped_bytes = 0u64;
    let mut segments = Vec::with_capacity(ids.len());
    for ((id, path, file, _), load) in files.into_iter().zip(loads) {
        let load = load?;
        // Cut here, in segment order, so an open that fails on an earlier segment has
        // changed nothing after it.
        if load.dropped > 0 {
            file.set_len(load.size).ctx("truncate segment", &path)?;
            file.sync_all().ctx("fsync segment", &path)?;
        }
        max_seq = max_seq.max(load.max_seq);
        dropped_bytes += load.dropped;
        if found.is_empty() {
            found = load.found;
        } else {
            found.extend(load.found);
        }
        let seg = Segment::new(id, path, file, load.size);
        seg.hint_bytes
            .store(load.hint_bytes, std::sync::atomic::Ordering::Relaxed);
        segments.push(LoadedSegment {
            segment: seg,
            hinted: load.hinted,
            hint: load.builder,
        });
    }
    found.sort_by(found_order);
    let seg_ids: Vec<u32> = segments.iter().map(|s| s.segment.id).collect();
    let mut live_per_seg = vec![0u64; seg_ids.len()];
    let mut live = Vec::with_capacity(found.len());
    let mut records = found.into_iter().peekable();
    while let Some(mut best) = records.next() {
        while let Some(next) = records.next_if(|r| r.key == best.key) {
            best = next;
        }
        if !best.tombstone {
            let loc = best.loc;
            if let Ok(i) = seg_ids.binary_search(&loc.segment) {
                live_per_seg[i] += record::record_len(best.key.len(), loc.vlen);
            }
            live.push((best.key, loc));
        }
    }
    for s in &segments {
        let size = s.segment.size.load(std::sync::atomic::Ordering::Relaxed);
        let used = seg_ids
            .binary_search(&s.segment.id)
            .map_or(0, |i| live_per_seg[i]);
        s.segment.add_garbage(size.saturating_sub(used));
    }
    let from_hints = segments.iter().filter(|s| s.hinted).count();
    Ok(Recovered {
        segments,
        live,
        max_seq,
        dropped_bytes,
        from_hints,
    })
}

fn found_order(a: &Found, b: &Found) -> std::cmp::Ordering {
    a.key
        .cmp(&b.key)
        .then(a.seq.cmp(&b.seq))
        .then(a.loc.segment.cmp(&b.loc.segment))
        .then(a.loc.offset.cmp(&b.loc.offset))
}

/// What loading one segment produced.
struct SegmentLoad {
    /// Its records, sorted by [`found_order`].
    found: Vec<Found>,
    max_seq: u64,
    hinted: bool,
    hint_bytes: u64,
    builder: Option<HintBuilder>,
    /// Its length after any cut.
    size: u64,
    dropped: u64,
}

/// Loads one segment: from its hint file if that is valid and matches the data file
/// (the data file's CRC is checked on a second thread while the hint is parsed), else
/// by scanning the data file (cutting a torn tail if `last`).
fn load_segment(
    dir: &Path,
    id: u32,
    path: &Path,
    file: &File,
    len: u64,
    last: bool,
    repair: bool,
) -> Result<SegmentLoad> {
    let hint_path = segment::hint_path(dir, id);
    let (hint, crc) = std::thread::scope(|s| {
        let crc = s.spawn(|| {
            hint_path
                .exists()
                .then(|| hint::data_crc(file, path, len).map(|c| c.finalize()))
        });
        let hint = hint::load(&hint_path, len);
        // A panicking CRC thread only costs the hint: the segment gets scanned.
        (hint, crc.join().ok().flatten())
    });
    let hint = match (hint, crc) {
        (Some(h), Some(Ok(c))) if c == h.data_crc => Some(h),
        (Some(_), Some(Ok(_))) => {
            tracing::warn!(path = %path.display(), "data file does not match the CRC in its hint; scanning it");
            None
        }
        (Some(_), Some(Err(e))) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot check data file against its hint; scanning it");
            None
        }
        _ => None,
    };
    let mut found = Vec::new();
    let mut max_seq = 0u64;
    let mut push = |key: IndexKey, seq: u64, flags: u8, vlen: u32, offset: u64| {
        max_seq = max_seq.max(seq);
        found.push(Found {
            key,
            seq,
            loc: Loc {
                segment: id,
                offset: offset as u32,
                vlen,
            },
            tombstone: flags & record::FLAG_TOMBSTONE != 0,
        });
    };
    let mut load = match hint {
        Some(h) => {
            let hint_max = h.max_seq;
            for e in h.entries {
                push(e.key, e.seq, e.flags, e.vlen, e.offset);
            }
            SegmentLoad {
                found: Vec::new(),
                max_seq: hint_max,
                hinted: true,
                hint_bytes: h.file_bytes,
                builder: None,
                size: len,
                dropped: 0,
            }
        }
        None => {
            segment::remove_if_exists(&hint_path)?;
            // The active segment's hint is built when it is sealed.
            let mut builder = (!last).then(HintBuilder::new);
            let end = scan(path, file, len, last, repair, |r| {
                if let Some(b) = builder.as_mut() {
                    b.push(r.seq, r.flags, &r.key, r.vlen, r.offset);
                }
                push(r.key, r.seq, r.flags, r.vlen, r.offset);
            })?;
            SegmentLoad {
                found: Vec::new(),
                max_seq: 0,
                hinted: false,
                hint_bytes: 0,
                builder,
                size: end.valid_len,
                dropped: end.dropped,
            }
        }
    };
    found.sort_unstable_by(found_order);
    load.found = found;
    load.max_seq = load.max_seq.max(max_seq);
    Ok(load)
}

/// `f` over every item on a few threads (items are taken in order by whichever thread
/// is free), results in item order. A panicking item becomes an error for it.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    f: impl Fn(usize, &T) -> Result<R> + Sync,
) -> Vec<Result<R>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(2, 4)
        .min(items.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<Option<Result<R>>> = items.iter().map(|_| None).collect();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        done.push((i, f(i, item)));
                    }
                    done
                })
            })
            .collect();
        for w in workers {
            if let Ok(done) = w.join() {
                for (i, r) in done {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = Some(r);
                    }
                }
            }
        }
    });
    out.into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                Err(StorageError::InvalidArgument(
                    "a segment loader thread panicked".into(),
                ))
            })
        })
        .collect()
}

/// Removes leftovers of interrupted hint writes and hints without a data file.
pub fn clean_strays(dir: &Path, data_ids: &[u32], hint_ids: &[u32]) -> Result<()> {
    for id in hint_ids {
        if data_ids.binary_search(id).is_err() {
            segment::remove_if_exists(&segment::hint_path(dir, *id))?;
        }
    }
    for entry in std::fs::read_dir(dir).ctx("list data directory", dir)? {
        let entry = entry.ctx("list data directory", dir)?;
        let name = entry.file_name();
        if name.to_str().is_some_and(|n| n.ends_with(".hint.tmp")) {
            let p: PathBuf = entry.path();
            segment::remove_if_exists(&p)?;
        }
    }
    Ok(())
}
