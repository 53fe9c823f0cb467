//! The memory engine's checkpoint file: every live key/value at one sequence number,
//! each record CRC'd, written to a temporary file, fsynced and renamed into place so a
//! crash leaves either the old checkpoint or the new one.
//!
//! Layout: header `KEELMEM1` + seq (u64 LE) + CRC32 of those 16 bytes; then records
//! `crc32(u32) klen(u32) vlen(u32) key value` (CRC over lengths, key and value); then a
//! trailer record with klen = u32::MAX carrying the record count in vlen's place (u64 LE)
//! and its CRC. A file without its trailer is incomplete and refused.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{IoContext, Result, StorageError};
use crate::storage::KvPair;
use crate::writeback::Progress;

/// File name of the checkpoint inside a data directory.
pub const CHECKPOINT_FILE: &str = "memory.snap";
const MAGIC: &[u8; 8] = b"KEELMEM1";
const TRAILER: u32 = u32::MAX;
/// Largest key or value a checkpoint record may claim; larger lengths mean corruption.
const MAX_FIELD: u32 = 512 * 1024 * 1024;
/// Bytes written after which their writeback is started, so that the fsync at the end
/// finds little left to write (Redis's rdb-save-incremental-fsync does the same every
/// 32 MB): one fsync of a whole large checkpoint holds the disk while the WAL's
/// fdatasyncs, one of them on the funnel's thread, queue behind it.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// Writes `entries` at `seq` to `dir/memory.snap` atomically (temp file + rename + fsync);
/// returns how many writebacks it started on the way.
pub fn write(dir: &Path, seq: u64, entries: impl Iterator<Item = Result<KvPair>>) -> Result<u64> {
    std::fs::create_dir_all(dir).ctx("create checkpoint directory", dir)?;
    let final_path = dir.join(CHECKPOINT_FILE);
    let tmp_path = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let file = File::create(&tmp_path).ctx("create checkpoint", &tmp_path)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut header = Vec::with_capacity(20);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&seq.to_le_bytes());
    let crc = crc32fast::hash(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    w.write_all(&header).ctx("write checkpoint", &tmp_path)?;
    let mut count: u64 = 0;
    let mut written = header.len() as u64;
    let writeback = Progress::new(WRITEBACK_EVERY, 0);
    for item in entries {
        let (k, v) = item?;
        let klen = u32::try_from(k.len()).ok().filter(|l| *l <= MAX_FIELD);
        let vlen = u32::try_from(v.len()).ok().filter(|l| *l <= MAX_FIELD);
        let (Some(klen), Some(vlen)) = (klen, vlen) else {
            return Err(StorageError::InvalidArgument(format!(
                "key or value too large for a checkpoint record ({} / {} bytes)",
                k.len(),
                v.len()
            )));
        };
        let mut h = crc32fast::Hasher::new();
        h.update(&klen.to_le_bytes());
        h.update(&vlen.to_le_bytes());
        h.update(&k);
        h.update(&v);
        w.write_all(&h.finalize().to_le_bytes())
            .and_then(|_| w.write_all(&klen.to_le_bytes()))
            .and_then(|_| w.write_all(&vlen.to_le_bytes()))
            .and_then(|_| w.write_all(&k))
            .and_then(|_| w.write_all(&v))
            .ctx("write checkpoint", &tmp_path)?;
        count += 1;
        written += 12 + u64::from(klen) + u64::from(vlen);
        let in_file = written - w.buffer().len() as u64;
        if writeback.ask(in_file) {
            if let Some(from) = writeback.take(in_file, 0) {
                writeback.start(w.get_ref(), &tmp_path, from, in_file - from);
            }
        }
    }
    let mut trailer = Vec::with_capacity(16);
    trailer.extend_from_slice(&TRAILER.to_le_bytes());
    trailer.extend_from_slice(&count.to_le_bytes());
    let crc = crc32fast::hash(&trailer);
    w.write_all(&crc.to_le_bytes())
        .and_then(|_| w.write_all(&trailer))
        .ctx("write checkpoint", &tmp_path)?;
    let file = w
        .into_inner()
        .map_err(|e| StorageError::io("flush checkpoint", &tmp_path, e.into_error()))?;
    file.sync_all().ctx("fsync checkpoint", &tmp_path)?;
    drop(file);
    std::fs::rename(&tmp_path, &final_path).ctx("rename checkpoint", &final_path)?;
    sync_dir(dir)?;
    Ok(writeback.count())
}

/// Fsyncs a directory so a rename or create inside it is durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("fsync directory", dir)
}

/// What a checkpoint load produced.
#[derive(Debug)]
pub struct Loaded {
    /// Sequence number the checkpoint was taken at.
    pub seq: u64,
    /// The entries, in key order.
    pub entries: Vec<KvPair>,
    /// Set when `repair` cut the file at a bad record: (offset, bytes dropped).
    pub repaired_at: Option<(u64, u64)>,
}

/// Loads `dir/memory.snap` if it exists. A bad record fails with file and offset, unless
/// `repair` is set, in which case the entries before it are kept.
pub fn load(dir: &Path, repair: bool) -> Result<Option<Loaded>> {
    let path = dir.join(CHECKPOINT_FILE);
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(StorageError::io("open checkpoint", &path, e)),
    };
    let len = file.metadata().ctx("stat checkpoint", &path)?.len();
    let mut r = Reader {
        inner: BufReader::with_capacity(1 << 20, file),
        path: path.clone(),
        pos: 0,
        len,
    };
    let header = r.bytes(20, "checkpoint header")?;
    if &header[..8] != MAGIC {
        return Err(StorageError::corrupt(
            &path,
            0,
            "not a keel memory checkpoint (bad magic)",
        ));
    }
    if crc32fast::hash(&header[..16]) != u32_at(&header, 16) {
        return Err(StorageError::corrupt(
            &path,
            0,
            "checkpoint header checksum mismatch",
        ));
    }
    let seq = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
    let mut entries = Vec::new();
    loop {
        let at = r.pos;
        match read_record(&mut r) {
            Ok(Some(kv)) => entries.push(kv),
            Ok(None) => {
                return Ok(Some(Loaded {
                    seq,
                    entries,
                    repaired_at: None,
                }))
            }
            Err(StorageError::Corrupt { offset, reason, .. }) if repair => {
                tracing::warn!(path = %path.display(), offset, %reason, kept = entries.len(),
                    "repair: checkpoint cut at bad record");
                return Ok(Some(Loaded {
                    seq,
                    entries,
                    repaired_at: Some((offset, len.saturating_sub(at))),
                }));
            }
            Err(e) => return Err(e),
        }
    }
}

fn read_record(r: &mut Reader) -> Result<Option<KvPair>> {
    let at = r.pos;
    let head = r.bytes(12, "record header")?;
    let crc = u32_at(&head, 0);
    let klen = u32_at(&head, 4);
    if klen == TRAILER {
        let count = r.bytes(4, "trailer")?;
        let mut t = Vec::with_capacity(12);
        t.extend_from_slice(&head[4..12]);
        t.extend_from_slice(&count);
        if crc32fast::hash(&t) != crc {
            return Err(StorageError::corrupt(
                &r.path,
                at,
                "trailer checksum mismatch",
            ));
        }
        return Ok(None);
    }
    let vlen = u32_at(&head, 8);
    if klen > MAX_FIELD || vlen > MAX_FIELD || u64::from(klen) + u64::from(vlen) > r.len - r.pos {
        return Err(StorageError::corrupt(
            &r.path,
            at,
            format!("impossible record length (key {klen}, value {vlen})"),
        ));
    }
    let key = r.bytes(klen as usize, "record key")?;
    let value = r.bytes(vlen as usize, "record value")?;
    let mut h = crc32fast::Hasher::new();
    h.update(&head[4..12]);
    h.update(&key);
    h.update(&value);
    if h.finalize() != crc {
        return Err(StorageError::corrupt(
            &r.path,
            at,
            "record checksum mismatch",
        ));
    }
    Ok(Some((Bytes::from(key), Bytes::from(value))))
}

struct Reader {
    inner: BufReader<File>,
    path: PathBuf,
    pos: u64,
    len: u64,
}

impl Reader {
    /// Reads exactly `n` bytes; running out of file is corruption (checkpoints are
    /// written whole and renamed, so a short file was damaged after the fact).
    fn bytes(&mut self, n: usize, what: &str) -> Result<Vec<u8>> {
        if (n as u64) > self.len.saturating_sub(self.pos) {
            return Err(StorageError::corrupt(
                &self.path,
                self.pos,
                format!("file ends inside the {what}"),
            ));
        }
        let mut buf = vec![0u8; n];
        self.inner
            .read_exact(&mut buf)
            .ctx("read checkpoint", &self.path)?;
        self.pos += n as u64;
        Ok(buf)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A checkpoint of 20 MiB starts the writeback of its first 8 MiB runs on the way,
    /// and reads back whole.
    #[test]
    fn a_large_checkpoint_starts_writebacks_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let value = Bytes::from(vec![9u8; 10 << 10]);
        let n = 2048u32;
        let entries = (0..n).map(|i| Ok((Bytes::from(format!("k{i:05}")), value.clone())));
        let writebacks = write(dir.path(), 7, entries).expect("write");
        if cfg!(target_os = "linux") {
            assert!(writebacks >= 2, "{writebacks} writebacks for 20 MiB");
        }
        let loaded = load(dir.path(), false)
            .expect("load")
            .expect("a checkpoint");
        assert_eq!(loaded.seq, 7);
        assert_eq!(loaded.entries.len(), n as usize);
        assert!(loaded.entries.iter().all(|(_, v)| *v == value));
        assert_eq!(loaded.entries[n as usize - 1].0.as_ref(), b"k02047");
    }
}
