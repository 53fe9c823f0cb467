//! How keel's versions map onto fjall keys, and scan ranges onto fjall key ranges.
//!
//! keel does its own MVCC on top of fjall (see the engine docs): every version of a keel
//! key is a fjall key of its own, written once and never overwritten,
//!
//! ```text
//! TAG | escape(user_key) | 0x00 0x01 | !seq (u64, big-endian) | kind
//! ```
//!
//! with an empty fjall value for a tombstone and the keel value as is for a put.
//! `escape` turns every 0x00 into 0x00 0xFF, so the terminator 0x00 0x01 cannot occur
//! inside an escaped key. Under fjall's bytewise order this sorts by user key ascending
//! (escaping keeps the order, and a key's encoding is never a prefix of another key's
//! encoding: where a shorter key ends with `00 01`, a longer one continues with `00 FF` or a
//! byte above 0x00), then by sequence number descending (the complement of the number),
//! so the first entry at or after `TAG | escape(k) | 00 01 | !S` is the newest version of
//! `k` at or below `S`. The kind byte follows the number, so two versions of one key never
//! compare on it (a key has at most one version per sequence number).
//!
//! The tag byte doubles as a layout marker: 0x00 was the unversioned layout (one fjall key
//! per keel key), 0x01 is this one.

use std::ops::Bound;

use crate::error::{Result, StorageError};
use crate::range::ScanRange;

/// Tag byte in front of every stored version (layout 2: versioned keys).
pub const TAG: u8 = 0x01;
/// Tag byte of the earlier, unversioned layout; a store holding it is refused.
pub const OLD_TAG: u8 = 0x00;
/// Escape and terminator bytes after a 0x00 in the encoded user key.
const ESCAPED_ZERO: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;
/// What follows the encoded user key: the complemented sequence number and the kind.
const SUFFIX_LEN: usize = 8 + 1;
/// Tag, terminator and suffix.
const OVERHEAD: usize = 1 + 2 + SUFFIX_LEN;

/// Longest keel key: fjall keys hold at most `u16::MAX` bytes, and a key of zero bytes
/// doubles in length when escaped.
pub const MAX_KEY_LEN: usize = (u16::MAX as usize - OVERHEAD) / 2;

/// Longest value fjall can store.
pub const MAX_VALUE_LEN: usize = u32::MAX as usize;

/// Whether a version holds a value or deletes the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The version deletes the key.
    Tombstone = 0,
    /// The version holds the fjall value as the keel value.
    Put = 1,
}

/// The encoded user key (tag, escaped key, terminator), shared by all its versions.
pub fn key_prefix(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + OVERHEAD + key.len() / 16);
    push_prefix(&mut out, key);
    out
}

fn push_prefix(out: &mut Vec<u8>, key: &[u8]) {
    out.push(TAG);
    // Runs without a zero byte are copied whole: pushing byte by byte cost about 40
    // instructions per key byte, on every read and write.
    let mut rest = key;
    while let Some(i) = rest.iter().position(|&b| b == 0) {
        out.extend_from_slice(&rest[..=i]);
        out.push(ESCAPED_ZERO);
        rest = &rest[i + 1..];
    }
    out.extend_from_slice(rest);
    out.extend_from_slice(&[0, TERMINATOR]);
}

/// The stored key of `key`'s version `seq`.
pub fn version_key(key: &[u8], seq: u64, kind: Kind) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + OVERHEAD + key.len() / 16);
    push_prefix(&mut out, key);
    out.extend_from_slice(&(!seq).to_be_bytes());
    out.push(kind as u8);
    out
}

/// Rewrites the sequence number of a stored key built by [`version_key`].
pub fn set_seq(stored: &mut [u8], seq: u64) {
    let len = stored.len();
    if len >= OVERHEAD {
        stored[len - SUFFIX_LEN..len - 1].copy_from_slice(&(!seq).to_be_bytes());
    }
}

/// The first stored key of `key`'s versions at or below `seq` (the seek target of a read).
pub fn seek_key(key: &[u8], seq: u64) -> Vec<u8> {
    prefix_seek(key_prefix(key), seq)
}

/// [`seek_key`] of the key whose stored prefix ([`key_prefix`]) is `prefix`.
pub fn prefix_seek(mut prefix: Vec<u8>, seq: u64) -> Vec<u8> {
    prefix.extend_from_slice(&(!seq).to_be_bytes());
    prefix
}

/// A stored key greater than every version of `key` and not above any version of a
/// greater key: the prefix with the terminator raised by one (no stored key holds
/// 0x00 0x02 at a byte pair boundary of the escaped key).
pub fn key_upper(key: &[u8]) -> Vec<u8> {
    prefix_upper(key_prefix(key))
}

/// [`key_upper`] of the key whose stored prefix is `prefix`.
pub fn prefix_upper(mut prefix: Vec<u8>) -> Vec<u8> {
    if let Some(last) = prefix.last_mut() {
        *last = TERMINATOR + 1;
    }
    prefix
}

/// A stored key split into its parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Tag, escaped user key and terminator: equal for all versions of one key.
    pub prefix: &'a [u8],
    /// The version's sequence number.
    pub seq: u64,
    /// Put or tombstone.
    pub kind: Kind,
}

/// Splits a stored key; None when it is not a well-formed versioned key.
pub fn parse(stored: &[u8]) -> Option<Parsed<'_>> {
    if stored.len() < OVERHEAD || stored.first() != Some(&TAG) {
        return None;
    }
    let (prefix, suffix) = stored.split_at(stored.len() - SUFFIX_LEN);
    if !prefix.ends_with(&[0, TERMINATOR]) {
        return None;
    }
    let (seq, kind) = suffix.split_at(8);
    let seq = !u64::from_be_bytes(seq.try_into().ok()?);
    let kind = match kind {
        [0] => Kind::Tombstone,
        [1] => Kind::Put,
        _ => return None,
    };
    Some(Parsed { prefix, seq, kind })
}

/// keel's key from a prefix returned by [`parse`]; None when the escaping is broken.
pub fn decode_prefix(prefix: &[u8]) -> Option<Vec<u8>> {
    let body = prefix.get(1..prefix.len().checked_sub(2)?)?;
    let mut out = Vec::with_capacity(body.len());
    let mut it = body.iter();
    while let Some(&b) = it.next() {
        out.push(b);
        if b == 0 && it.next() != Some(&ESCAPED_ZERO) {
            return None;
        }
    }
    Some(out)
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

/// The half-open stored-key range `start..end` covering every version of every key in
/// `range`, or None when the range holds no key. (Always half-open: not every range API
/// of the library handles an excluded start.)
pub fn stored_bounds(range: &ScanRange) -> Option<std::ops::Range<Vec<u8>>> {
    if range.is_empty() {
        return None;
    }
    let start = match &range.start {
        Bound::Included(k) => key_prefix(k),
        Bound::Excluded(k) => key_upper(k),
        Bound::Unbounded => vec![TAG],
    };
    let end = match &range.end {
        Bound::Included(k) => key_upper(k),
        Bound::Excluded(k) => key_prefix(k),
        Bound::Unbounded => vec![TAG + 1],
    };
    // `is_empty` cannot see that (a, a\0) holds no key; the stored form can, and the
    // library must never see start > end.
    if start >= end {
        return None;
    }
    Some(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    #[test]
    fn versions_round_trip() {
        let keys: [&[u8]; 6] = [b"", b"\x00", b"\x00\x00", b"\x00\x01", b"a", b"a\xff"];
        for k in keys {
            for (seq, kind) in [(0, Kind::Put), (7, Kind::Tombstone), (u64::MAX, Kind::Put)] {
                let stored = version_key(k, seq, kind);
                let p = parse(&stored).expect("well-formed");
                assert_eq!((p.seq, p.kind), (seq, kind));
                assert_eq!(decode_prefix(p.prefix).as_deref(), Some(k));
                assert_eq!(p.prefix, key_prefix(k).as_slice());
            }
        }
        let mut stored = version_key(b"k", 1, Kind::Put);
        set_seq(&mut stored, 99);
        assert_eq!(parse(&stored).map(|p| p.seq), Some(99));
        assert_eq!(parse(b"\x01k"), None);
        assert_eq!(parse(&[OLD_TAG; 20]), None);
    }

    fn short_key() -> impl Strategy<Value = Vec<u8>> {
        // Mostly 0x00, 0x01, 0x02 and 0xFF: the bytes the escaping is about.
        proptest::collection::vec(
            prop_oneof![Just(0u8), Just(1u8), Just(2u8), Just(0xFFu8), any::<u8>()],
            0..6,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn encoded_order_is_key_ascending_then_seq_descending(
            a in short_key(), sa in any::<u64>(), ka in any::<bool>(),
            b in short_key(), sb in any::<u64>(), kb in any::<bool>(),
        ) {
            let kind = |t: bool| if t { Kind::Put } else { Kind::Tombstone };
            let (ea, eb) = (version_key(&a, sa, kind(ka)), version_key(&b, sb, kind(kb)));
            // The kind byte only decides between two versions with one seq.
            let expected = a.cmp(&b).then(sb.cmp(&sa));
            if expected != std::cmp::Ordering::Equal {
                prop_assert_eq!(ea.cmp(&eb), expected);
            }
            // Seek targets and bounds sit between the versions as documented.
            let seek = seek_key(&a, sb);
            prop_assert_eq!(seek <= ea, sa <= sb);
            prop_assert!(key_prefix(&a) < ea && ea < key_upper(&a));
            if a < b {
                prop_assert!(key_upper(&a) <= key_prefix(&b));
                prop_assert!(key_upper(&a) < eb);
            }
        }
    }

    #[test]
    fn bounds_cover_exactly_the_range() {
        let b = |k: &'static [u8]| Bytes::from_static(k);
        let r = ScanRange {
            start: Bound::Excluded(b(b"a")),
            end: Bound::Included(b(b"a\x00")),
        };
        let stored = stored_bounds(&r).expect("a\\0 lies in (a, a\\0]");
        let inside = version_key(b"a\x00", 5, Kind::Put);
        let below = version_key(b"a", 0, Kind::Put);
        let above = version_key(b"a\x00\x00", u64::MAX, Kind::Put);
        let contains = |k: &Vec<u8>| stored.contains(k);
        assert!(contains(&inside));
        assert!(!contains(&below));
        assert!(!contains(&above));
        let r = ScanRange {
            start: Bound::Excluded(b(b"a")),
            end: Bound::Excluded(b(b"a\x00")),
        };
        // No keel key lies strictly between a and a\0; the stored range may be non-empty
        // as bytes, but holds no version of either neighbour.
        if let Some(stored) = stored_bounds(&r) {
            for k in [
                version_key(b"a", 0, Kind::Put),
                version_key(b"a", u64::MAX, Kind::Tombstone),
                version_key(b"a\x00", 0, Kind::Put),
                version_key(b"a\x00", u64::MAX, Kind::Tombstone),
            ] {
                assert!(!stored.contains(&k));
            }
        }
        let r = ScanRange {
            start: Bound::Included(b(b"b")),
            end: Bound::Excluded(b(b"b")),
        };
        assert!(stored_bounds(&r).is_none());
    }

    #[test]
    fn oversized_keys_are_refused() {
        assert!(check_sizes(&vec![0u8; MAX_KEY_LEN], None).is_ok());
        assert!(version_key(&vec![0u8; MAX_KEY_LEN], 1, Kind::Put).len() <= u16::MAX as usize);
        assert!(matches!(
            check_sizes(&vec![0u8; MAX_KEY_LEN + 1], None),
            Err(StorageError::InvalidArgument(_))
        ));
    }
}
