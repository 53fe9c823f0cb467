//! Hint files: per sealed segment, every record's key, sequence number, flags, value
//! length and offset, so opening a store does not read values.
//!
//! Layout: magic `KEELHNT1`; entries `crc32 u32 | seq u64 | flags u8 | klen u32 |
//! vlen u32 | record_offset u64 | key` (CRC over everything after the CRC field); then a
//! trailer in the same shape with flags = [`FLAG_TRAILER`], seq = the highest sequence
//! number the store had issued when the hint was written, klen = 0, vlen = the CRC32 of
//! the whole data file and record_offset = the data file's length. The file must end
//! right after the trailer. A hint that fails any check is ignored and its data file
//! scanned; so is one whose data file no longer has that CRC (the open reads each data
//! file once, sequentially, to check it, which is what lets damage in a sealed segment
//! stop the open with its file and offset even when a hint exists).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::record::{record_len, FLAG_TOMBSTONE, KNOWN_FLAGS, MAX_FIELD};
use crate::error::{IoContext, Result};
use crate::mvcc::IndexKey;

const MAGIC: &[u8; 8] = b"KEELHNT1";
/// Header length of a hint entry.
pub const ENTRY_HEADER: usize = 29;
/// Flag marking the trailer entry.
pub const FLAG_TRAILER: u8 = 0x80;

/// One record as described by a hint file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HintEntry {
    /// The record's key.
    pub key: IndexKey,
    /// Its sequence number.
    pub seq: u64,
    /// Its flags (data-record flag bits).
    pub flags: u8,
    /// Its value length.
    pub vlen: u32,
    /// Offset of the record in the data file.
    pub offset: u64,
}

/// A loaded, fully validated hint file.
#[derive(Debug)]
pub struct Hint {
    /// The entries in file order.
    pub entries: Vec<HintEntry>,
    /// The store's highest issued sequence number when it was written.
    pub max_seq: u64,
    /// Size of the hint file.
    pub file_bytes: u64,
    /// CRC32 of the whole data file it describes.
    pub data_crc: u32,
}

/// Accumulates hint entries for a segment being written.
#[derive(Debug, Default)]
pub struct HintBuilder {
    buf: Vec<u8>,
}

impl HintBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        HintBuilder {
            buf: MAGIC.to_vec(),
        }
    }

    /// Adds the record at `offset`. Checksums are filled in by [`HintBuilder::finish`],
    /// which runs off the write path.
    pub fn push(&mut self, seq: u64, flags: u8, key: &[u8], vlen: u32, offset: u64) {
        if self.buf.is_empty() {
            self.buf.extend_from_slice(MAGIC);
        }
        put_entry(&mut self.buf, seq, flags, key, vlen, offset);
    }

    /// True if no entry was added.
    pub fn is_empty(&self) -> bool {
        self.buf.len() <= MAGIC.len()
    }

    /// The finished file contents for a data file of `data_len` bytes whose CRC32 is
    /// `data_crc`.
    pub fn finish(mut self, max_seq: u64, data_len: u64, data_crc: u32) -> Vec<u8> {
        if self.buf.is_empty() {
            self.buf.extend_from_slice(MAGIC);
        }
        put_entry(
            &mut self.buf,
            max_seq,
            FLAG_TRAILER,
            &[],
            data_crc,
            data_len,
        );
        // Every entry was written by `put_entry`, so its key length can be trusted.
        let mut pos = MAGIC.len();
        while pos + ENTRY_HEADER <= self.buf.len() {
            let klen = u32::from_le_bytes(field(&self.buf[pos..], 13)) as usize;
            let end = (pos + ENTRY_HEADER + klen).min(self.buf.len());
            let crc = crc32fast::hash(&self.buf[pos + 4..end]);
            self.buf[pos..pos + 4].copy_from_slice(&crc.to_le_bytes());
            pos = end;
        }
        self.buf
    }
}

/// Appends the magic that starts every hint file.
pub fn encode_magic(out: &mut Vec<u8>) {
    out.extend_from_slice(MAGIC);
}

/// Appends one complete entry (checksum included) for the record at `offset`.
pub fn encode_entry(out: &mut Vec<u8>, seq: u64, flags: u8, key: &[u8], vlen: u32, offset: u64) {
    let start = out.len();
    put_entry(out, seq, flags, key, vlen, offset);
    if let Some(entry) = out.get_mut(start..) {
        seal_entry(entry);
    }
}

/// Appends the trailer that ends a hint file for a data file of `data_len` bytes whose
/// CRC32 is `data_crc`.
pub fn encode_trailer(out: &mut Vec<u8>, max_seq: u64, data_len: u64, data_crc: u32) {
    encode_entry(out, max_seq, FLAG_TRAILER, &[], data_crc, data_len);
}

/// Appends an entry with a zero checksum.
fn put_entry(out: &mut Vec<u8>, seq: u64, flags: u8, key: &[u8], vlen: u32, offset: u64) {
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(flags);
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&vlen.to_le_bytes());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(key);
}

/// Writes `contents` to `path` durably: a temporary file, fsync, rename.
pub fn write(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = tmp_path(path);
    let res = (|| {
        let mut f = File::create(&tmp).ctx("create hint file", &tmp)?;
        f.write_all(contents).ctx("write hint file", &tmp)?;
        f.sync_data().ctx("fsync hint file", &tmp)?;
        std::fs::rename(&tmp, path).ctx("rename hint file", path)
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// The CRC32 state of the first `len` bytes of `file`, read sequentially.
pub fn data_crc(file: &File, path: &Path, len: u64) -> Result<crc32fast::Hasher> {
    use std::os::unix::fs::FileExt;
    let mut h = crc32fast::Hasher::new();
    let mut buf = vec![0u8; (1 << 20).min(len as usize)];
    let mut off = 0u64;
    while off < len {
        let n = buf.len().min((len - off) as usize);
        file.read_exact_at(&mut buf[..n], off)
            .ctx("read segment", path)?;
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok(h)
}

/// Writes the hint of the sealed data file `file` (`len` bytes, at `data_path`) into the
/// temporary file of `path`, entry by entry as the data file is read back, and fsyncs
/// it; returns the temporary path and its length. The caller renames it into place
/// ([`install`]). Nothing per record is held in memory. Fails (naming file and offset)
/// if any record is damaged, and then leaves no temporary file behind.
pub fn write_tmp_from_data(
    file: &File,
    data_path: &Path,
    len: u64,
    max_seq: u64,
    path: &Path,
) -> Result<(PathBuf, u64)> {
    let data_crc = data_crc(file, data_path, len)?.finalize();
    let tmp = tmp_path(path);
    let res = (|| {
        let f = File::create(&tmp).ctx("create hint file", &tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
        w.write_all(MAGIC).ctx("write hint file", &tmp)?;
        let mut written = MAGIC.len() as u64;
        let mut entry = Vec::with_capacity(256);
        let mut failed: Option<std::io::Error> = None;
        super::recovery::scan(data_path, file, len, false, false, |r| {
            if failed.is_none() {
                entry.clear();
                put_entry(&mut entry, r.seq, r.flags, &r.key, r.vlen, r.offset);
                seal_entry(&mut entry);
                written += entry.len() as u64;
                failed = w.write_all(&entry).err();
            }
        })?;
        if let Some(e) = failed {
            return Err(crate::error::StorageError::io("write hint file", &tmp, e));
        }
        entry.clear();
        put_entry(&mut entry, max_seq, FLAG_TRAILER, &[], data_crc, len);
        seal_entry(&mut entry);
        written += entry.len() as u64;
        w.write_all(&entry).ctx("write hint file", &tmp)?;
        let f = w
            .into_inner()
            .map_err(|e| crate::error::StorageError::io("write hint file", &tmp, e.into_error()))?;
        f.sync_data().ctx("fsync hint file", &tmp)?;
        Ok(written)
    })();
    match res {
        Ok(n) => Ok((tmp, n)),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Renames a hint written by [`write_tmp_from_data`] into place.
pub fn install(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).ctx("rename hint file", path)
}

/// Fills in the checksum of the one entry in `entry`.
fn seal_entry(entry: &mut [u8]) {
    if entry.len() >= 4 {
        let crc = crc32fast::hash(&entry[4..]);
        entry[..4].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The temporary name a hint file is written under before its rename.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Loads the hint at `path` for a data file of `data_len` bytes. Returns None (after a
/// warning) when it is absent, partial, damaged or describes a different file length.
pub fn load(path: &Path, data_len: u64) -> Option<Hint> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read hint file; scanning the data file");
            return None;
        }
    };
    match parse(&bytes, data_len) {
        Ok(hint) => Some(hint),
        Err(reason) => {
            tracing::warn!(path = %path.display(), %reason, "ignoring hint file; scanning the data file");
            None
        }
    }
}

fn parse(b: &[u8], data_len: u64) -> Result<Hint, String> {
    if b.get(..MAGIC.len()) != Some(MAGIC.as_slice()) {
        return Err("bad magic".into());
    }
    let mut pos = MAGIC.len();
    // A lower bound on the entry count keeps the Vec from reallocating much.
    let mut entries: Vec<HintEntry> = Vec::with_capacity((b.len() - pos) / (ENTRY_HEADER + 8));
    loop {
        let head = b
            .get(pos..pos + ENTRY_HEADER)
            .ok_or_else(|| format!("no trailer (file ends at {})", b.len()))?;
        let crc = u32::from_le_bytes(field(head, 0));
        let seq = u64::from_le_bytes(field(head, 4));
        let flags = head[12];
        let klen = u32::from_le_bytes(field(head, 13));
        let vlen = u32::from_le_bytes(field(head, 17));
        let offset = u64::from_le_bytes(field(head, 21));
        // The trailer's vlen holds a CRC, so only entries have their value length checked.
        if klen > MAX_FIELD || (flags != FLAG_TRAILER && vlen > MAX_FIELD) {
            return Err(format!("impossible lengths at {pos}"));
        }
        let end = pos + ENTRY_HEADER + klen as usize;
        let Some(entry) = b.get(pos..end) else {
            return Err(format!("entry at {pos} runs past the end"));
        };
        if crc32fast::hash(&entry[4..]) != crc {
            return Err(format!("checksum mismatch at {pos}"));
        }
        if flags == FLAG_TRAILER {
            if klen != 0 || offset != data_len {
                return Err(format!(
                    "trailer describes a {offset}-byte data file, found {data_len} bytes"
                ));
            }
            if end != b.len() {
                return Err("bytes after the trailer".into());
            }
            return Ok(Hint {
                entries,
                max_seq: seq,
                file_bytes: b.len() as u64,
                data_crc: vlen,
            });
        }
        if flags & !KNOWN_FLAGS != 0 || seq == 0 {
            return Err(format!("bad entry at {pos}"));
        }
        if flags & FLAG_TOMBSTONE != 0 && vlen != 0 {
            return Err(format!("tombstone with a value at {pos}"));
        }
        let rec_end = offset.checked_add(record_len(klen as usize, vlen));
        if rec_end.is_none_or(|e| e > data_len || e > u64::from(u32::MAX)) {
            return Err(format!("entry at {pos} points past the data file"));
        }
        entries.push(HintEntry {
            key: IndexKey::new(&entry[ENTRY_HEADER..]),
            seq,
            flags,
            vlen,
            offset,
        });
        pos = end;
    }
}

fn field<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(s) = b.get(at..at + N) {
        out.copy_from_slice(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut h = HintBuilder::new();
        h.push(3, 0b10, b"alpha", 10, 0);
        h.push(4, 0b11, b"beta", 0, 36);
        h.finish(9, 100, 0xfedc_ba98)
    }

    #[test]
    fn round_trip() {
        let hint = parse(&sample(), 100).unwrap();
        assert_eq!(hint.max_seq, 9);
        assert_eq!(hint.data_crc, 0xfedc_ba98);
        assert_eq!(hint.entries.len(), 2);
        assert_eq!(&hint.entries[0].key[..], b"alpha");
        assert_eq!(hint.entries[1].offset, 36);
        assert_eq!(hint.entries[1].flags, 0b11);
    }

    #[test]
    fn partial_or_damaged_hints_are_refused() {
        let full = sample();
        for cut in 0..full.len() {
            assert!(parse(&full[..cut], 100).is_err(), "prefix {cut} accepted");
        }
        for i in 0..full.len() {
            let mut bad = full.clone();
            bad[i] ^= 0x08;
            assert!(parse(&bad, 100).is_err(), "flip at {i} accepted");
        }
        assert!(parse(&full, 99).is_err());
        let mut extra = full.clone();
        extra.push(0);
        assert!(parse(&extra, 100).is_err());
    }

    #[test]
    fn hint_written_from_the_data_file_loads_back() {
        use super::super::record::{encode_into, FLAG_BATCH_END};
        let dir = tempfile::tempdir().unwrap();
        let data_path = dir.path().join("0000000001.data");
        let mut data = Vec::new();
        encode_into(&mut data, 5, 0, b"k1", b"v1");
        encode_into(&mut data, 5, FLAG_BATCH_END, b"k2", b"value two");
        encode_into(&mut data, 6, FLAG_BATCH_END | FLAG_TOMBSTONE, b"k1", b"");
        std::fs::write(&data_path, &data).unwrap();
        let file = File::open(&data_path).unwrap();
        let len = data.len() as u64;
        let path = dir.path().join("0000000001.hint");
        let (tmp, bytes) = write_tmp_from_data(&file, &data_path, len, 9, &path).unwrap();
        install(&tmp, &path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), bytes);
        let hint = load(&path, len).unwrap();
        assert_eq!(hint.max_seq, 9);
        assert_eq!(hint.data_crc, crc32fast::hash(&data));
        let got: Vec<_> = hint
            .entries
            .iter()
            .map(|e| (e.key.to_vec(), e.seq, e.flags, e.vlen))
            .collect();
        assert_eq!(
            got,
            vec![
                (b"k1".to_vec(), 5, 0, 2),
                (b"k2".to_vec(), 5, FLAG_BATCH_END, 9),
                (b"k1".to_vec(), 6, FLAG_BATCH_END | FLAG_TOMBSTONE, 0),
            ]
        );
        // A damaged record fails the build and leaves no temporary file.
        data[30] ^= 1;
        std::fs::write(&data_path, &data).unwrap();
        let file = File::open(&data_path).unwrap();
        assert!(write_tmp_from_data(&file, &data_path, len, 9, &path).is_err());
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn entry_past_data_file_is_refused() {
        let mut h = HintBuilder::new();
        h.push(3, 0b10, b"k", 50, 60);
        assert!(parse(&h.finish(3, 100, 0), 100).is_err());
    }
}
