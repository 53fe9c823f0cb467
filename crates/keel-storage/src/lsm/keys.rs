//! How keel keys and scan ranges map onto fjall's data keyspace.
//!
//! fjall refuses empty keys (it panics on them), while keel's trait allows any byte
//! string. So every stored key is keel's key behind one constant tag byte: order is
//! preserved, the empty keel key becomes a one-byte fjall key, and the tag is stripped on
//! the way out without copying.

use std::ops::Bound;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Result, StorageError};
use crate::range::ScanRange;

/// Tag byte in front of every stored data key.
const TAG: u8 = 0x00;

/// Longest keel key: fjall keys hold at most `u16::MAX` bytes, one of which is the tag.
pub const MAX_KEY_LEN: usize = u16::MAX as usize - 1;

/// Longest value fjall can store.
pub const MAX_VALUE_LEN: usize = u32::MAX as usize;

/// The stored form of `key`.
pub fn encode(key: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(key.len() + 1);
    b.put_u8(TAG);
    b.put_slice(key);
    b.freeze()
}

/// The stored form of `key` followed by a 0 byte: the smallest stored key strictly
/// greater than `key`'s, which turns an excluded start into an included one.
fn encode_successor(key: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(key.len() + 2);
    b.put_u8(TAG);
    b.put_slice(key);
    b.put_u8(0);
    b.freeze()
}

/// keel's key from a stored key (tag stripped, no copy).
pub fn decode(stored: Bytes) -> Bytes {
    if stored.first() == Some(&TAG) {
        stored.slice(1..)
    } else {
        // Only keel writes this keyspace; a key without the tag is returned whole rather
        // than guessed at, so it stays visible instead of silently vanishing.
        stored
    }
}

/// Refuses keys and values fjall cannot store (it would panic or truncate them).
pub fn check_sizes(key: &[u8], value: Option<&[u8]>) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(StorageError::InvalidArgument(format!(
            "key of {} bytes is longer than the lsm engine's limit of {MAX_KEY_LEN}",
            key.len()
        )));
    }
    if let Some(v) = value {
        if v.len() > MAX_VALUE_LEN {
            return Err(StorageError::InvalidArgument(format!(
                "value of {} bytes is longer than the lsm engine's limit of {MAX_VALUE_LEN}",
                v.len()
            )));
        }
    }
    Ok(())
}

/// Stored-key bounds for `range`, or None when it holds no key. The start is always
/// Included or Unbounded (an Excluded start becomes its successor), because not every
/// range API of the library handles an excluded start.
pub fn stored_bounds(range: &ScanRange) -> Option<(Bound<Bytes>, Bound<Bytes>)> {
    if range.is_empty() {
        return None;
    }
    let start = match &range.start {
        Bound::Included(k) => Bound::Included(encode(k)),
        Bound::Excluded(k) => Bound::Included(encode_successor(k)),
        Bound::Unbounded => Bound::Unbounded,
    };
    let end = match &range.end {
        Bound::Included(k) => Bound::Included(encode(k)),
        Bound::Excluded(k) => Bound::Excluded(encode(k)),
        Bound::Unbounded => Bound::Unbounded,
    };
    // `is_empty` cannot see that (a, a\0) holds no key; the stored form can, and the
    // library must never see start > end.
    if let (Bound::Included(s), Bound::Included(e)) = (&start, &end) {
        if s > e {
            return None;
        }
    }
    if let (Bound::Included(s), Bound::Excluded(e)) = (&start, &end) {
        if s >= e {
            return None;
        }
    }
    Some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_order_and_round_trips() {
        let keys: [&[u8]; 5] = [b"", b"\x00", b"\x00\x00", b"a", b"a\xff"];
        for w in keys.windows(2) {
            assert!(encode(w[0]) < encode(w[1]));
        }
        for k in keys {
            assert_eq!(decode(encode(k)).as_ref(), k);
        }
    }

    #[test]
    fn excluded_start_becomes_successor() {
        let r = ScanRange {
            start: Bound::Excluded(Bytes::from_static(b"a")),
            end: Bound::Included(Bytes::from_static(b"a\x00")),
        };
        let (s, e) = stored_bounds(&r).expect("a\\0 lies in (a, a\\0]");
        assert_eq!(s, Bound::Included(encode(b"a\x00")));
        assert_eq!(e, Bound::Included(encode(b"a\x00")));
        let r = ScanRange {
            start: Bound::Excluded(Bytes::from_static(b"a")),
            end: Bound::Excluded(Bytes::from_static(b"a\x00")),
        };
        assert!(stored_bounds(&r).is_none());
    }

    #[test]
    fn oversized_keys_are_refused() {
        assert!(check_sizes(&vec![0u8; MAX_KEY_LEN], None).is_ok());
        assert!(matches!(
            check_sizes(&vec![0u8; MAX_KEY_LEN + 1], None),
            Err(StorageError::InvalidArgument(_))
        ));
    }
}
