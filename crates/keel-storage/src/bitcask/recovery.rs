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
    /// Live keys (ascending) and where their latest values are, with their sequence
    /// numbers.
    pub live: Vec<(IndexKey, u64, Loc)>,
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
    let hints = load_hints(
        dir,
        &files
            .iter()
            .map(|(id, path, file, len)| (*id, path.as_path(), file, *len))
            .collect::<Vec<_>>(),
    );

    // Every record found; after sorting by (key, seq, segment, offset) the last record
    // of each key is the one that wins: highest sequence number, and within one batch
    // (same key twice) the later record.
    let mut found: Vec<Found> = Vec::new();
    let mut max_seq = 0u64;
    let mut dropped_bytes = 0u64;
    let mut segments = Vec::with_capacity(ids.len());
    let n = files.len();
    for (i, ((id, path, file, len), hint)) in files.into_iter().zip(hints).enumerate() {
        let last = i + 1 == n;
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
        let (hinted, hint_bytes, builder, size) = match hint {
            Some(h) => {
                let hint_max = h.max_seq;
                for e in h.entries {
                    push(e.key, e.seq, e.flags, e.vlen, e.offset);
                }
                max_seq = max_seq.max(hint_max);
                (true, h.file_bytes, None, len)
            }
            None => {
                segment::remove_if_exists(&segment::hint_path(dir, id))?;
                // The active segment's hint is built when it is sealed.
                let mut builder = (!last).then(HintBuilder::new);
                let end = scan(&path, &file, len, last, repair, |r| {
                    if let Some(b) = builder.as_mut() {
                        b.push(r.seq, r.flags, &r.key, r.vlen, r.offset);
                    }
                    push(r.key, r.seq, r.flags, r.vlen, r.offset);
                })?;
                if end.dropped > 0 {
                    file.set_len(end.valid_len).ctx("truncate segment", &path)?;
                    file.sync_all().ctx("fsync segment", &path)?;
                    dropped_bytes += end.dropped;
                }
                (false, 0, builder, end.valid_len)
            }
        };
        let seg = Segment::new(id, path, file, size);
        seg.hint_bytes
            .store(hint_bytes, std::sync::atomic::Ordering::Relaxed);
        segments.push(LoadedSegment {
            segment: seg,
            hinted,
            hint: builder,
        });
    }

    found.sort_unstable_by(|a, b| {
        a.key
            .cmp(&b.key)
            .then(a.seq.cmp(&b.seq))
            .then(a.loc.segment.cmp(&b.loc.segment))
            .then(a.loc.offset.cmp(&b.loc.offset))
    });
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
            live.push((best.key, best.seq, loc));
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

/// Loads the hint files of `(id, data path, data file, data length)` segments and checks
/// each against its data file's CRC, a few threads at a time.
fn load_hints(dir: &Path, segs: &[(u32, &Path, &File, u64)]) -> Vec<Option<hint::Hint>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(segs.len().max(1));
    let load = |&(id, path, file, len): &(u32, &Path, &File, u64)| {
        let h = hint::load(&segment::hint_path(dir, id), len)?;
        match hint::data_crc(file, path, len).map(|c| c.finalize()) {
            Ok(crc) if crc == h.data_crc => Some(h),
            Ok(_) => {
                tracing::warn!(path = %path.display(), "data file does not match the CRC in its hint; scanning it");
                None
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot check data file against its hint; scanning it");
                None
            }
        }
    };
    if threads <= 1 {
        return segs.iter().map(load).collect();
    }
    let mut out: Vec<Option<hint::Hint>> = segs.iter().map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    segs.iter()
                        .enumerate()
                        .skip(t)
                        .step_by(threads)
                        .map(|(i, seg)| (i, load(seg)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            // A panicking loader only costs its hints: those segments get scanned.
            if let Ok(done) = h.join() {
                for (i, hint) in done {
                    out[i] = hint;
                }
            }
        }
    });
    out
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
