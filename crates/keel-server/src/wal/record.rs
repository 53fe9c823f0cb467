//! The record format: `crc32 u32 LE | len u32 LE | index u64 LE | payload`, the CRC
//! (crc32fast, IEEE) covering `len`, `index` and the payload, so a damaged length or
//! index is caught like damaged data.

/// Bytes before the payload.
pub const HEADER_LEN: usize = 16;

/// Largest payload a record may carry. A length field above it is damage, never an
/// allocation request.
pub const MAX_PAYLOAD: usize = 512 << 20;

/// A record header as read from disk, not yet verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The stored checksum.
    pub crc: u32,
    /// Payload length.
    pub len: u32,
    /// Log index.
    pub index: u64,
}

impl Header {
    /// Splits 16 raw bytes into their fields.
    pub fn parse(raw: &[u8; HEADER_LEN]) -> Header {
        let [c0, c1, c2, c3, l0, l1, l2, l3, i0, i1, i2, i3, i4, i5, i6, i7] = *raw;
        Header {
            crc: u32::from_le_bytes([c0, c1, c2, c3]),
            len: u32::from_le_bytes([l0, l1, l2, l3]),
            index: u64::from_le_bytes([i0, i1, i2, i3, i4, i5, i6, i7]),
        }
    }

    /// Whether `payload` (of this header's length) matches the stored checksum.
    pub fn verify(&self, payload: &[u8]) -> bool {
        payload.len() == self.len as usize && checksum(self.len, self.index, payload) == self.crc
    }

    /// Size of the whole record on disk.
    pub fn record_len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }
}

/// The checksum of a record's `len`, `index` and payload.
pub fn checksum(len: u32, index: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&index.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends one record to `out`. The caller has checked `payload.len() <= MAX_PAYLOAD`.
///
/// The checksummed bytes (`len`, `index`, payload) lie back to back in `out`, so they are
/// summed in one pass after they are written: three separate updates cost the short
/// inputs' slow path twice (~100 instructions of a pipelined SET).
pub fn encode(index: u64, payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    let len = payload.len() as u32;
    let start = out.len();
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(payload);
    if let Some(summed) = out.get(start + 4..) {
        let crc = crc32fast::hash(summed);
        out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_parse_verify() {
        let mut buf = Vec::new();
        encode(42, b"hello", &mut buf);
        assert_eq!(buf.len(), HEADER_LEN + 5);
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(&buf[..HEADER_LEN]);
        let h = Header::parse(&raw);
        assert_eq!((h.len, h.index, h.record_len()), (5, 42, 21));
        assert!(h.verify(&buf[HEADER_LEN..]));
        assert!(!h.verify(b"hellO"));
        // The index and length are under the checksum too.
        let moved = Header { index: 43, ..h };
        assert!(!moved.verify(&buf[HEADER_LEN..]));
    }
}
