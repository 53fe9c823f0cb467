//! The data record format of Bitcask segments (a file-layout contract other tools test
//! against): a 21-byte little-endian header `crc32 u32 | seq u64 | flags u8 | klen u32 |
//! vlen u32`, then the key, then the value. The CRC covers every byte after the CRC field.

use bytes::Bytes;

use crate::batch::BatchOp;
use crate::error::{Result, StorageError};

/// Size of a record header.
pub const HEADER_LEN: usize = 21;
/// Flag: the record deletes its key (its value is empty).
pub const FLAG_TOMBSTONE: u8 = 0b01;
/// Flag: the record is the last of its write batch.
pub const FLAG_BATCH_END: u8 = 0b10;
/// Every flag bit a data record may carry; any other bit means the bytes are not a record.
pub const KNOWN_FLAGS: u8 = FLAG_TOMBSTONE | FLAG_BATCH_END;
/// Largest key or value a record may hold; larger lengths in a file mean corruption.
pub const MAX_FIELD: u32 = 512 * 1024 * 1024;

/// A decoded record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The stored checksum.
    pub crc: u32,
    /// Sequence number of the record's batch.
    pub seq: u64,
    /// Flag bits ([`FLAG_TOMBSTONE`], [`FLAG_BATCH_END`]).
    pub flags: u8,
    /// Key length.
    pub klen: u32,
    /// Value length.
    pub vlen: u32,
}

impl Header {
    /// Decodes the first [`HEADER_LEN`] bytes of `b`; None if `b` is shorter.
    pub fn decode(b: &[u8]) -> Option<Header> {
        let h = b.get(..HEADER_LEN)?;
        Some(Header {
            crc: u32::from_le_bytes(h[0..4].try_into().ok()?),
            seq: u64::from_le_bytes(h[4..12].try_into().ok()?),
            flags: h[12],
            klen: u32::from_le_bytes(h[13..17].try_into().ok()?),
            vlen: u32::from_le_bytes(h[17..21].try_into().ok()?),
        })
    }

    /// Whole record length (header, key and value).
    pub fn record_len(&self) -> u64 {
        record_len(self.klen as usize, self.vlen)
    }

    /// True for a deletion.
    pub fn is_tombstone(&self) -> bool {
        self.flags & FLAG_TOMBSTONE != 0
    }

    /// True on the last record of a batch.
    pub fn is_batch_end(&self) -> bool {
        self.flags & FLAG_BATCH_END != 0
    }

    /// Checks the header's shape against the `remaining` bytes of the file from the
    /// record's start, before anything is allocated from its lengths.
    pub fn check_shape(&self, remaining: u64) -> Result<(), String> {
        if self.flags & !KNOWN_FLAGS != 0 {
            return Err(format!("unknown flag bits {:#04x}", self.flags));
        }
        if self.seq == 0 {
            return Err("sequence number 0".into());
        }
        if self.klen > MAX_FIELD || self.vlen > MAX_FIELD {
            return Err(format!(
                "impossible lengths (key {}, value {})",
                self.klen, self.vlen
            ));
        }
        if self.is_tombstone() && self.vlen != 0 {
            return Err(format!("tombstone with a {}-byte value", self.vlen));
        }
        if self.record_len() > remaining {
            return Err(format!(
                "record of {} bytes runs past the end of the file ({} bytes left)",
                self.record_len(),
                remaining
            ));
        }
        Ok(())
    }
}

/// Length of a record with a `klen`-byte key and a `vlen`-byte value.
pub fn record_len(klen: usize, vlen: u32) -> u64 {
    HEADER_LEN as u64 + klen as u64 + u64::from(vlen)
}

/// The CRC a record with this header body, key and value must carry.
pub fn checksum(seq: u64, flags: u8, key: &[u8], value: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(&[flags]);
    h.update(&(key.len() as u32).to_le_bytes());
    h.update(&(value.len() as u32).to_le_bytes());
    h.update(key);
    h.update(value);
    h.finalize()
}

/// Appends one complete record to `out`.
pub fn encode_into(out: &mut Vec<u8>, seq: u64, flags: u8, key: &[u8], value: &[u8]) {
    let crc = checksum(seq, flags, key, value);
    put_record(out, crc, seq, flags, key, value);
}

fn put_record(out: &mut Vec<u8>, crc: u32, seq: u64, flags: u8, key: &[u8], value: &[u8]) {
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(flags);
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// A record parsed from bytes that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Its header.
    pub header: Header,
    /// Its key.
    pub key: &'a [u8],
    /// Its value (empty for a tombstone).
    pub value: &'a [u8],
}

/// Parses the record at the start of `b` (which holds the rest of the file from the
/// record on, or at least the whole record), checking shape and CRC.
pub fn parse(b: &[u8], remaining_in_file: u64) -> Result<Parsed<'_>, String> {
    let header = Header::decode(b).ok_or_else(|| {
        format!(
            "short record header ({} of {HEADER_LEN} bytes)",
            b.len().min(HEADER_LEN)
        )
    })?;
    header.check_shape(remaining_in_file)?;
    let klen = header.klen as usize;
    let vlen = header.vlen as usize;
    // Header fields and body are contiguous: one CRC pass over both.
    let covered = b
        .get(4..HEADER_LEN + klen + vlen)
        .ok_or_else(|| "record body shorter than its lengths".to_string())?;
    if crc32fast::hash(covered) != header.crc {
        return Err("checksum mismatch".into());
    }
    let body = &covered[HEADER_LEN - 4..];
    Ok(Parsed {
        header,
        key: &body[..klen],
        value: &body[klen..],
    })
}

/// A write batch encoded as one contiguous run of records, waiting for its sequence
/// number. Encoding happens before the writer lock is taken; [`EncodedBatch::seal`]
/// stamps the sequence number and checksums under it.
#[derive(Debug)]
pub struct EncodedBatch {
    /// The records, back to back.
    pub buf: Vec<u8>,
    /// Per operation: its key, the record's offset in `buf` and its value (None =
    /// tombstone), kept so the writer can put it in the value cache.
    pub ops: Vec<(Bytes, u32, Option<Bytes>)>,
}

impl EncodedBatch {
    /// Encodes `ops` (sequence number still zero). Fails on a key or value over
    /// [`MAX_FIELD`] or a batch too large for one segment.
    pub fn encode(ops: Vec<BatchOp>) -> Result<EncodedBatch> {
        let mut total: u64 = 0;
        for op in &ops {
            let (k, vlen) = match op {
                BatchOp::Put(k, v) => (k, v.len()),
                BatchOp::Delete(k) => (k, 0),
            };
            if k.len() > MAX_FIELD as usize || vlen > MAX_FIELD as usize {
                return Err(StorageError::InvalidArgument(format!(
                    "key or value too large ({} / {} bytes, limit {MAX_FIELD})",
                    k.len(),
                    vlen
                )));
            }
            total += record_len(k.len(), vlen as u32);
        }
        if total > u64::from(u32::MAX) {
            return Err(StorageError::InvalidArgument(format!(
                "write batch of {total} bytes exceeds the 4 GiB segment limit"
            )));
        }
        let n = ops.len();
        let mut buf = Vec::with_capacity(total as usize);
        let mut metas = Vec::with_capacity(n);
        for (i, op) in ops.into_iter().enumerate() {
            let last = i + 1 == n;
            let off = buf.len() as u32;
            let end_flag = if last { FLAG_BATCH_END } else { 0 };
            match op {
                // Sequence number and checksum are stamped by `seal`.
                BatchOp::Put(k, v) => {
                    put_record(&mut buf, 0, 0, end_flag, &k, &v);
                    metas.push((k, off, Some(v)));
                }
                BatchOp::Delete(k) => {
                    put_record(&mut buf, 0, 0, end_flag | FLAG_TOMBSTONE, &k, &[]);
                    metas.push((k, off, None));
                }
            }
        }
        Ok(EncodedBatch { buf, ops: metas })
    }

    /// Stamps `seq` into every record and recomputes its checksum.
    pub fn seal(&mut self, seq: u64) {
        for (k, off, value) in &self.ops {
            let start = *off as usize;
            let vlen = value.as_ref().map_or(0, |v| v.len() as u32);
            let end = start + record_len(k.len(), vlen) as usize;
            if let Some(rec) = self.buf.get_mut(start..end) {
                rec[4..12].copy_from_slice(&seq.to_le_bytes());
                let crc = crc32fast::hash(&rec[4..]);
                rec[0..4].copy_from_slice(&crc.to_le_bytes());
            }
        }
    }
}

/// Checks a record read back for `key` at `offset` of `path` and returns its value.
/// `buf` holds exactly the record.
pub fn verify_read(buf: Bytes, key: &[u8], path: &std::path::Path, offset: u64) -> Result<Bytes> {
    let parsed = parse(&buf, buf.len() as u64)
        .map_err(|reason| StorageError::corrupt(path, offset, reason))?;
    if parsed.key != key || parsed.header.is_tombstone() {
        return Err(StorageError::corrupt(
            path,
            offset,
            "record does not hold the key the index points at",
        ));
    }
    let start = HEADER_LEN + key.len();
    Ok(buf.slice(start..start + parsed.value.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_flags() {
        let mut b = EncodedBatch::encode(vec![
            BatchOp::Put(Bytes::from_static(b"k1"), Bytes::from_static(b"value")),
            BatchOp::Delete(Bytes::from_static(b"k2")),
        ])
        .unwrap();
        b.seal(42);
        let len = b.buf.len() as u64;
        let r1 = parse(&b.buf, len).unwrap();
        assert_eq!(r1.header.seq, 42);
        assert_eq!(r1.key, b"k1");
        assert_eq!(r1.value, b"value");
        assert!(!r1.header.is_batch_end());
        assert!(!r1.header.is_tombstone());
        let off2 = b.ops[1].1 as usize;
        assert_eq!(off2 as u64, r1.header.record_len());
        let r2 = parse(&b.buf[off2..], len - off2 as u64).unwrap();
        assert_eq!(r2.key, b"k2");
        assert!(r2.header.is_tombstone());
        assert!(r2.header.is_batch_end());
        assert_eq!(r2.header.seq, 42);
    }

    #[test]
    fn single_op_batch_has_batch_end() {
        let mut b = EncodedBatch::encode(vec![BatchOp::Put(
            Bytes::from_static(b"a"),
            Bytes::from_static(b"b"),
        )])
        .unwrap();
        b.seal(1);
        let r = parse(&b.buf, b.buf.len() as u64).unwrap();
        assert!(r.header.is_batch_end());
    }

    #[test]
    fn rejects_bad_crc_and_impossible_lengths() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 7, FLAG_BATCH_END, b"key", b"val");
        let len = buf.len() as u64;
        assert!(parse(&buf, len).is_ok());
        for i in 0..buf.len() {
            let mut bad = buf.clone();
            bad[i] ^= 0x40;
            assert!(parse(&bad, len).is_err(), "flip at byte {i} accepted");
        }
        // A huge length must be refused from the header alone.
        let mut huge = buf.clone();
        huge[13..17].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(parse(&huge, len).unwrap_err().contains("impossible"));
        // A length that fits the cap but not the file.
        let mut long = buf.clone();
        long[17..21].copy_from_slice(&1000u32.to_le_bytes());
        assert!(parse(&long, len).unwrap_err().contains("past the end"));
        // Truncated input.
        assert!(parse(&buf[..10], 10).is_err());
        assert!(parse(&buf[..len as usize - 1], len - 1).is_err());
        // Sequence 0 and tombstones with values are not records.
        let mut zero = Vec::new();
        encode_into(&mut zero, 0, FLAG_BATCH_END, b"k", b"v");
        assert!(parse(&zero, zero.len() as u64).is_err());
        let mut tomb = Vec::new();
        encode_into(&mut tomb, 3, FLAG_TOMBSTONE, b"k", b"v");
        assert!(parse(&tomb, tomb.len() as u64).is_err());
    }

    #[test]
    fn verify_read_checks_key() {
        let mut buf = Vec::new();
        encode_into(&mut buf, 7, FLAG_BATCH_END, b"key", b"val");
        let p = std::path::Path::new("x");
        let v = verify_read(Bytes::from(buf.clone()), b"key", p, 0).unwrap();
        assert_eq!(&v[..], b"val");
        assert!(matches!(
            verify_read(Bytes::from(buf.clone()), b"kez", p, 5),
            Err(StorageError::Corrupt { offset: 5, .. })
        ));
        buf[25] ^= 1;
        assert!(verify_read(Bytes::from(buf), b"key", p, 0).is_err());
    }
}
