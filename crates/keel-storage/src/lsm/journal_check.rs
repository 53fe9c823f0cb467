//! A read-only walk over fjall's journal files, run before fjall opens them.
//!
//! fjall 3.1 replays a journal until the first entry it cannot decode and then truncates
//! the file there, whatever follows. That is right for a torn tail, but a single flipped
//! framing byte (an entry tag, a length, an end-marker trailer) in the middle of a
//! journal looks the same to it, so every later batch, fsynced or not, is dropped without
//! an error. This walk mirrors fjall's framing (format V3: `Start{tag 1, u32 count, u64
//! seqno}`, `Item{tag 2, value type, compression, u64 keyspace, u16 key len, u32 value
//! len, u32 stored len, key, value}`, `Clear{tag 4, u64 keyspace}`, `End{tag 3, u64
//! checksum, "FJL\x03"}`) to find where fjall will cut, then looks past the cut for
//! complete batches. Complete batches after the cut mean damage before the tail, unless
//! an unwritten sector (a run of zeros in the preallocated file) explains the cut, which
//! is what a crash leaves when unsynced pages reach the disk out of order.
//!
//! The layout is fjall's private format, read from its 3.1 source; a fjall upgrade must
//! re-check it (the unit tests here and the journal tests in `tests/lsm.rs` fail if the
//! framing moves).
//!
//! It also verifies each batch's checksum (xxh3-64 over its item entries, as fjall
//! writes it), so a mismatch is reported with file and offset and can be repaired by
//! cutting the journal there (fjall alone fails the open with neither and cannot repair),
//! and checks that batch sequence numbers rise, which fjall does not checksum.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

/// Journal file suffix.
const JOURNAL_EXT: &str = "jnl";
const TAG_START: u8 = 1;
const TAG_ITEM: u8 = 2;
const TAG_END: u8 = 3;
const TAG_CLEAR: u8 = 4;
const START_LEN: usize = 13;
const END_LEN: usize = 13;
const CLEAR_LEN: usize = 9;
const ITEM_HEADER_LEN: usize = 21;
const END_MAGIC: &[u8; 4] = b"FJL\x03";
/// A run of zeros at least one sector long is an unwritten sector, not a flipped byte.
const HOLE_LEN: usize = 512;
/// Files larger than this are not walked (fjall rotates journals long before).
const MAX_WALKED_FILE: u64 = 1 << 30;

/// What the walk found in one journal file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalReport {
    /// The journal file.
    pub path: PathBuf,
    /// End of the last complete batch: fjall keeps the file up to here.
    pub valid_end: u64,
    /// End of the written content (past it the preallocated file is all zeros).
    pub content_end: u64,
    /// Offset of the first complete batch found after the cut, if any.
    pub resumes_at: Option<u64>,
    /// Complete batches found from `resumes_at` on.
    pub batches_after_cut: u64,
    /// The region between cut and `resumes_at` holds an unwritten (all-zero) sector.
    pub hole_before_resume: bool,
    /// Start of the first batch fjall would refuse (checksum or item count mismatch),
    /// and what is wrong with it.
    pub bad_batch: Option<(u64, &'static str)>,
    /// That batch is the journal's last and holds an unwritten sector: a crash tore it
    /// (sectors of one page reach the disk independently), so it is cut like a torn tail.
    pub bad_batch_is_torn_tail: bool,
    /// Where sequence numbers stop rising: the start of the batch before the first one
    /// whose number is not above its predecessor's (either of the two may be the
    /// damaged one, so a repair cuts before both).
    pub seqno_regression_at: Option<u64>,
}

impl JournalReport {
    /// Bytes fjall will drop from this file on open.
    pub fn dropped_bytes(&self) -> u64 {
        self.content_end.saturating_sub(self.valid_end)
    }

    /// True when fjall would silently drop complete batches that no crash explains.
    pub fn damaged_before_tail(&self) -> bool {
        self.batches_after_cut > 0 && !self.hole_before_resume
    }
}

enum Entry {
    Start { count: u32, seqno: u64 },
    Item,
    Clear,
    End,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The entry at `at` and its length, or None where fjall's decoder would fail.
fn decode(buf: &[u8], at: usize) -> Option<(Entry, usize)> {
    match *buf.get(at)? {
        TAG_START => {
            let count = u32_at(buf, at + 1)?;
            let seqno = u64_at(buf, at + 5)?;
            Some((Entry::Start { count, seqno }, START_LEN))
        }
        TAG_ITEM => {
            let value_type = *buf.get(at + 1)?;
            let compression = *buf.get(at + 2)?;
            if !matches!(value_type, 0 | 1 | 2 | 4) || compression > 1 {
                return None;
            }
            let key_len = usize::from(u16_at(buf, at + 11)?);
            let stored_len = usize::try_from(u32_at(buf, at + 17)?).ok()?;
            let len = ITEM_HEADER_LEN
                .checked_add(key_len)?
                .checked_add(stored_len)?;
            buf.get(at..at.checked_add(len)?)?;
            Some((Entry::Item, len))
        }
        TAG_END => {
            if buf.get(at + 9..at + END_LEN)? != END_MAGIC {
                return None;
            }
            Some((Entry::End, END_LEN))
        }
        TAG_CLEAR => {
            buf.get(at..at + CLEAR_LEN)?;
            Some((Entry::Clear, CLEAR_LEN))
        }
        _ => None,
    }
}

/// A complete batch starting at `at`: its end offset and sequence number.
fn batch_at(buf: &[u8], at: usize) -> Option<(usize, u64)> {
    let (Entry::Start { count, seqno }, len) = decode(buf, at)? else {
        return None;
    };
    let mut pos = at + len;
    for _ in 0..count {
        match decode(buf, pos)? {
            (Entry::Item | Entry::Clear, len) => pos += len,
            _ => return None,
        }
    }
    match decode(buf, pos)? {
        (Entry::End, len) => Some((pos + len, seqno)),
        _ => None,
    }
}

/// How the sequential walk ended.
enum Walk {
    /// fjall will stop (and truncate) at `valid_end`.
    Cut {
        valid_end: usize,
        seqno_regression_at: Option<usize>,
    },
    /// The batch starting at `start` is one fjall will refuse the file for; the next
    /// batch can start no earlier than `next`.
    BadBatch {
        start: usize,
        next: usize,
        reason: &'static str,
        seqno_regression_at: Option<usize>,
    },
}

fn walk(buf: &[u8]) -> Walk {
    let mut pos = 0;
    let mut valid_end = 0;
    let mut batch: Option<(usize, u32, u64)> = None;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    // Start offset and sequence number of the last complete batch.
    let mut last: Option<(usize, u64)> = None;
    let mut regression = None;
    while let Some((entry, len)) = decode(buf, pos) {
        match (entry, batch.as_mut()) {
            (Entry::Start { count, seqno }, None) => {
                batch = Some((pos, count, seqno));
                hasher.reset();
            }
            (Entry::Item | Entry::Clear, Some((start, remaining, _))) => {
                if *remaining == 0 {
                    return Walk::BadBatch {
                        start: *start,
                        next: pos + len,
                        reason: "journal batch holds more items than its header says",
                        seqno_regression_at: regression,
                    };
                }
                *remaining -= 1;
                hasher.update(buf.get(pos..pos + len).unwrap_or_default());
            }
            (Entry::End, Some((start, remaining, seqno))) => {
                if *remaining > 0 {
                    return Walk::BadBatch {
                        start: *start,
                        next: pos + len,
                        reason: "journal batch holds fewer items than its header says",
                        seqno_regression_at: regression,
                    };
                }
                if u64_at(buf, pos + 1) != Some(hasher.digest()) {
                    return Walk::BadBatch {
                        start: *start,
                        next: pos + len,
                        reason: "journal batch checksum mismatch",
                        seqno_regression_at: regression,
                    };
                }
                if let Some((prev_start, prev_seqno)) = last {
                    if regression.is_none() && *seqno <= prev_seqno {
                        regression = Some(prev_start);
                    }
                }
                last = Some((*start, *seqno));
                batch = None;
                valid_end = pos + len;
            }
            // A start inside a batch, or an item or end outside one: fjall cuts here.
            _ => break,
        }
        pos += len;
    }
    Walk::Cut {
        valid_end,
        seqno_regression_at: regression,
    }
}

/// True if `region` holds a run of zeros at least a sector long.
fn has_hole(region: &[u8]) -> bool {
    region.split(|b| *b != 0).any(|run| run.len() >= HOLE_LEN)
}

/// The first complete batch at or after `from` and how many follow back to back.
fn batches_from(buf: &[u8], from: usize) -> Option<(usize, u64)> {
    let first = (from..buf.len())
        .filter(|&o| buf.get(o) == Some(&TAG_START))
        .find(|&o| batch_at(buf, o).is_some())?;
    let mut pos = first;
    let mut count = 0;
    while let Some((end, _)) = batch_at(buf, pos) {
        count += 1;
        pos = end;
    }
    Some((first, count))
}

/// Walks one journal file held in `buf`.
pub fn check_buffer(path: &Path, buf: &[u8]) -> JournalReport {
    let content_end = buf.iter().rposition(|b| *b != 0).map_or(0, |p| p + 1);
    let tail = buf.get(..content_end).unwrap_or(buf);
    let mut report = JournalReport {
        path: path.to_path_buf(),
        valid_end: 0,
        content_end: content_end as u64,
        resumes_at: None,
        batches_after_cut: 0,
        hole_before_resume: false,
        bad_batch: None,
        bad_batch_is_torn_tail: false,
        seqno_regression_at: None,
    };
    match walk(buf) {
        Walk::BadBatch {
            start,
            next,
            reason,
            seqno_regression_at,
        } => {
            report.valid_end = start as u64;
            report.seqno_regression_at = seqno_regression_at.map(|p| p as u64);
            report.bad_batch = Some((start as u64, reason));
            report.bad_batch_is_torn_tail = batches_from(tail, next).is_none()
                && has_hole(tail.get(start..next).unwrap_or_default());
        }
        Walk::Cut {
            valid_end,
            seqno_regression_at,
        } => {
            report.valid_end = valid_end as u64;
            report.seqno_regression_at = seqno_regression_at.map(|p| p as u64);
            if let Some((first, count)) = batches_from(tail, valid_end) {
                report.resumes_at = Some(first as u64);
                report.batches_after_cut = count;
                report.hole_before_resume =
                    has_hole(tail.get(valid_end..first).unwrap_or_default());
            }
        }
    }
    report
}

/// The journal files in fjall's directory (none if it does not exist yet), unordered.
pub(crate) fn journal_files(fjall_dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(fjall_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut files = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|e| e.to_str()) == Some(JOURNAL_EXT) {
            files.push(path);
        }
    }
    Ok(files)
}

/// Walks every journal file in fjall's directory (none if it does not exist yet).
pub fn check_dir(fjall_dir: &Path) -> std::io::Result<Vec<JournalReport>> {
    let mut reports = Vec::new();
    for path in journal_files(fjall_dir)? {
        let mut file = std::fs::File::open(&path)?;
        let len = written_extent(&file)?;
        // Probing for holes moved the file position.
        file.seek(std::io::SeekFrom::Start(0))?;
        if len > MAX_WALKED_FILE {
            tracing::warn!(path = %path.display(), len, "lsm: journal too large to pre-check; relying on fjall alone");
            continue;
        }
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.take(len).read_to_end(&mut buf)?;
        reports.push(check_buffer(&path, &buf));
    }
    reports.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(reports)
}

/// End of the last written region of `file`. fjall preallocates journals sparsely (64
/// MiB), so this saves reading the unwritten rest; without hole support it is the length.
fn written_extent(file: &std::fs::File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{seek, SeekFrom};
        let mut pos = 0;
        let mut end = 0;
        while pos < len {
            let data = match seek(file, SeekFrom::Data(pos)) {
                Ok(d) => d,
                Err(rustix::io::Errno::NXIO) => break,
                Err(_) => return Ok(len),
            };
            let hole = seek(file, SeekFrom::Hole(data)).unwrap_or(len);
            if hole <= pos {
                return Ok(len);
            }
            end = hole.min(len);
            pos = hole;
        }
        Ok(end)
    }
    #[cfg(not(target_os = "linux"))]
    Ok(len)
}

/// Cuts `path` at `offset` and makes the cut durable (repair of a bad sequence number).
pub fn truncate_at(path: &Path, offset: u64) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.set_len(offset)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(count: u32, seqno: u64) -> Vec<u8> {
        let mut v = vec![TAG_START];
        v.extend_from_slice(&count.to_le_bytes());
        v.extend_from_slice(&seqno.to_le_bytes());
        v
    }

    fn item(key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut v = vec![TAG_ITEM, 0, 0];
        v.extend_from_slice(&1u64.to_le_bytes());
        v.extend_from_slice(&(key.len() as u16).to_le_bytes());
        v.extend_from_slice(&(value.len() as u32).to_le_bytes());
        v.extend_from_slice(&(value.len() as u32).to_le_bytes());
        v.extend_from_slice(key);
        v.extend_from_slice(value);
        v
    }

    fn end(items: &[u8]) -> Vec<u8> {
        let mut v = vec![TAG_END];
        v.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(items).to_le_bytes());
        v.extend_from_slice(END_MAGIC);
        v
    }

    fn batch(seqno: u64) -> Vec<u8> {
        let mut items = item(b"key", b"value");
        items.extend(item(b"k2", b""));
        let mut v = start(2, seqno);
        v.extend_from_slice(&items);
        v.extend(end(&items));
        v
    }

    fn journal(seqnos: &[u64]) -> (Vec<u8>, Vec<usize>) {
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for s in seqnos {
            starts.push(buf.len());
            buf.extend(batch(*s));
        }
        (buf, starts)
    }

    fn check(buf: &[u8]) -> JournalReport {
        check_buffer(Path::new("t.jnl"), buf)
    }

    #[test]
    fn clean_journal_with_zero_tail() {
        let (mut buf, _) = journal(&[1, 2, 3]);
        let len = buf.len() as u64;
        buf.extend(vec![0u8; 4096]);
        let r = check(&buf);
        assert_eq!((r.valid_end, r.content_end), (len, len));
        assert_eq!(r.dropped_bytes(), 0);
        assert!(!r.damaged_before_tail());
        assert_eq!(r.seqno_regression_at, None);
    }

    #[test]
    fn torn_tail_is_not_damage() {
        let (mut buf, starts) = journal(&[1, 2, 3]);
        buf.truncate(buf.len() - 5);
        let r = check(&buf);
        assert_eq!(r.valid_end, starts[2] as u64);
        assert!(r.dropped_bytes() > 0);
        assert!(!r.damaged_before_tail());
    }

    #[test]
    fn flipped_tag_before_complete_batches_is_damage() {
        let (mut buf, starts) = journal(&[1, 2, 3, 4]);
        buf[starts[1] + START_LEN] ^= 0x40; // first item tag of batch 2
        let r = check(&buf);
        assert_eq!(r.valid_end, starts[1] as u64);
        assert_eq!(r.resumes_at, Some(starts[2] as u64));
        assert_eq!(r.batches_after_cut, 2);
        assert!(r.damaged_before_tail());
    }

    #[test]
    fn flipped_end_magic_is_damage() {
        let (mut buf, starts) = journal(&[1, 2, 3]);
        buf[starts[1] - 2] ^= 0x01; // trailer of batch 1
        let r = check(&buf);
        assert_eq!(r.valid_end, 0);
        assert_eq!(r.batches_after_cut, 2);
        assert!(r.damaged_before_tail());
    }

    #[test]
    fn unwritten_sector_before_later_batches_is_a_crash_not_damage() {
        let (mut buf, starts) = journal(&[1, 2]);
        buf.truncate(starts[1] + 4);
        buf.extend(vec![0u8; 600]);
        buf.extend(batch(3));
        let r = check(&buf);
        assert_eq!(r.valid_end, starts[1] as u64);
        assert_eq!(r.batches_after_cut, 1);
        assert!(r.hole_before_resume);
        assert!(!r.damaged_before_tail());
    }

    #[test]
    fn falling_seqno_is_reported() {
        let (buf, starts) = journal(&[1, 9, 3, 4]);
        let r = check(&buf);
        assert_eq!(r.seqno_regression_at, Some(starts[1] as u64));
        assert!(!r.damaged_before_tail());
    }

    #[test]
    fn checksum_mismatch_is_located() {
        let (mut buf, starts) = journal(&[1, 2, 3]);
        buf[starts[1] + START_LEN + 22] ^= 0x01; // a byte of batch 2's first value
        let r = check(&buf);
        assert_eq!(
            r.bad_batch,
            Some((starts[1] as u64, "journal batch checksum mismatch"))
        );
        assert!(!r.bad_batch_is_torn_tail);
    }

    #[test]
    fn torn_sector_in_the_last_batch_is_a_torn_tail() {
        let mut items = item(b"key", &[7u8; 2000]);
        items.extend(item(b"k2", b"v"));
        let (mut buf, _) = journal(&[1]);
        let last = buf.len();
        buf.extend(start(2, 2));
        buf.extend_from_slice(&items);
        buf.extend(end(&items));
        for b in &mut buf[last + 600..last + 1200] {
            *b = 0; // an unwritten sector inside the value
        }
        let r = check(&buf);
        assert_eq!(r.bad_batch.map(|b| b.0), Some(last as u64));
        assert!(r.bad_batch_is_torn_tail);
        // The same tear followed by a complete batch is damage, not a tail.
        buf.extend(batch(3));
        assert!(!check(&buf).bad_batch_is_torn_tail);
    }

    #[test]
    fn count_mismatch_is_located() {
        let (mut buf, starts) = journal(&[1, 2, 3]);
        buf[starts[1] + 1] = 5; // batch 2 claims 5 items
        assert_eq!(r_bad(&buf), Some(starts[1] as u64));
        let (mut buf, starts) = journal(&[1, 2, 3]);
        buf[starts[1] + 1] = 1; // batch 2 claims 1 item
        assert_eq!(r_bad(&buf), Some(starts[1] as u64));
    }

    fn r_bad(buf: &[u8]) -> Option<u64> {
        check(buf).bad_batch.map(|b| b.0)
    }

    #[test]
    fn huge_lengths_do_not_panic() {
        let mut buf = start(1, 1);
        let mut it = item(b"k", b"v");
        it[17..21].copy_from_slice(&u32::MAX.to_le_bytes());
        buf.extend(it);
        let r = check(&buf);
        assert_eq!(r.valid_end, 0);
    }
}
