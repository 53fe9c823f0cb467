//! The copy of a merge: each merged segment is read front to back in windows, and its
//! live records are checked and written to the output as they are, adjacent ones as one
//! run (see the parent module for what is checked and why).

use std::sync::atomic::{AtomicU64, Ordering};

use super::super::output::{Finished, OutputWriter};
use super::super::record::{self, FLAG_BATCH_END, FLAG_TOMBSTONE, HEADER_LEN};
use super::super::segment::{self, Segment};
use super::super::Inner;
use super::plan::{fingerprint, Job, Part, Plan, SegWork};
use crate::error::{Result, StorageError};

/// Bytes read from a merged segment at a time (tiny in unit tests, so their small
/// stores cross window edges in the middle of batches).
#[cfg(not(test))]
const WINDOW: usize = 4 << 20;
#[cfg(test)]
const WINDOW: usize = 300;

/// A record read and checked, held back until the next one shows whether it may keep
/// its flags.
#[derive(Clone, Copy)]
struct Pending<'a> {
    /// Offset in the source segment.
    src: u64,
    len: u64,
    seq: u64,
    flags: u8,
    klen: u32,
    vlen: u32,
    /// Where to note its new place.
    placed: &'a AtomicU64,
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
        p: &Pending<'_>,
        next: Option<&Pending<'_>>,
        out: &mut OutputWriter,
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
                .bytes_of(p)
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
            let bytes = self.bytes_of(p);
            let key = bytes.get(HEADER_LEN..HEADER_LEN + klen).unwrap_or(&[]);
            let value = bytes.get(HEADER_LEN + klen..).unwrap_or(&[]);
            out.append(p.seq, p.flags | FLAG_BATCH_END, key, value)?
        };
        p.placed
            .store((u64::from(at.0) << 32) | u64::from(at.1), Ordering::Relaxed);
        Ok(())
    }
}

impl Inner {
    /// Copies the records of `work` (in file order) into output files numbered from
    /// `first_id` in `mdir`, then, with `tombs_of`, that plan's tombstones, noting where
    /// each record went. Returns the finished files.
    pub(super) fn copy_run(
        &self,
        mdir: &std::path::Path,
        first_id: u32,
        watermark: u64,
        work: &[SegWork<'_>],
        tombs_of: Option<&Plan>,
    ) -> Result<Vec<Finished>> {
        let mut out = OutputWriter::new(mdir, first_id, self.opts.max_segment_bytes, watermark);
        let mut win = Vec::new();
        let mut side = Vec::new();
        for &(seg_id, pos, lists) in work {
            if self.closed.load(Ordering::Acquire) {
                return Err(StorageError::Closed);
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
            copy_segment(&mut src, pos, lists, &mut out)?;
        }
        if let Some(plan) = tombs_of {
            for part in plan {
                for &(key_at, key_len, seq) in &part.tombs {
                    let key = part.key(key_at, key_len);
                    out.append(seq, FLAG_BATCH_END | FLAG_TOMBSTONE, key, &[])?;
                }
            }
        }
        out.finish()
    }
}

/// Copies the records of `lists` (each ascending by offset) of `src` to `out` in
/// offset order, checking each one against what the index said, and notes where each
/// went.
fn copy_segment(
    src: &mut Source<'_>,
    pos: usize,
    lists: [(&[Job], &Part); 2],
    out: &mut OutputWriter,
) -> Result<()> {
    let path = &src.seg.path;
    let [(a, pa), (b, pb)] = lists;
    let (mut x, mut y) = (0usize, 0usize);
    let mut pending: Option<Pending<'_>> = None;
    let mut end = 0u64;
    loop {
        let (job, part) = match (a.get(x), b.get(y)) {
            (Some(j), Some(k)) if j.offset <= k.offset => {
                x += 1;
                (j, pa)
            }
            (Some(j), None) => {
                x += 1;
                (j, pa)
            }
            (_, Some(k)) => {
                y += 1;
                (k, pb)
            }
            (None, None) => break,
        };
        let offset = u64::from(job.offset);
        let len = job.len();
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
        let Some(placed) = part.placed.get(pos).and_then(|p| p.get(job.reloc as usize)) else {
            return Err(StorageError::InvalidArgument(
                "merge job without its relocation".into(),
            ));
        };
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
            placed,
            side: false,
        };
        if let Some(p) = &pending {
            src.emit(p, Some(&cur), out)?;
        }
        pending = Some(cur);
    }
    if let Some(p) = &pending {
        src.emit(p, None, out)?;
    }
    src.flush(out)
}
