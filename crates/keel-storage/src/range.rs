//! Key ranges for scans: bounds on byte keys, with prefix and "everything" helpers.

use std::ops::{Bound, RangeBounds};

use bytes::Bytes;

/// Scan order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Ascending key order.
    Forward,
    /// Descending key order.
    Reverse,
}

/// A range of keys, each end included, excluded or open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanRange {
    /// Lower end.
    pub start: Bound<Bytes>,
    /// Upper end.
    pub end: Bound<Bytes>,
}

impl ScanRange {
    /// Every key.
    pub fn all() -> Self {
        ScanRange {
            start: Bound::Unbounded,
            end: Bound::Unbounded,
        }
    }

    /// Keys in `range` (any Rust range of byte strings).
    pub fn new<K: AsRef<[u8]>>(range: impl RangeBounds<K>) -> Self {
        let conv = |b: Bound<&K>| match b {
            Bound::Included(k) => Bound::Included(Bytes::copy_from_slice(k.as_ref())),
            Bound::Excluded(k) => Bound::Excluded(Bytes::copy_from_slice(k.as_ref())),
            Bound::Unbounded => Bound::Unbounded,
        };
        ScanRange {
            start: conv(range.start_bound()),
            end: conv(range.end_bound()),
        }
    }

    /// Keys that start with `prefix`.
    pub fn prefix(prefix: impl AsRef<[u8]>) -> Self {
        let prefix = prefix.as_ref();
        let end = match prefix_successor(prefix) {
            Some(succ) => Bound::Excluded(Bytes::from(succ)),
            None => Bound::Unbounded,
        };
        ScanRange {
            start: Bound::Included(Bytes::copy_from_slice(prefix)),
            end,
        }
    }

    /// True if `key` lies inside the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        let lower = match &self.start {
            Bound::Included(s) => key >= s.as_ref(),
            Bound::Excluded(s) => key > s.as_ref(),
            Bound::Unbounded => true,
        };
        let upper = match &self.end {
            Bound::Included(e) => key <= e.as_ref(),
            Bound::Excluded(e) => key < e.as_ref(),
            Bound::Unbounded => true,
        };
        lower && upper
    }

    /// True if no key can lie in the range (e.g. start after end).
    pub fn is_empty(&self) -> bool {
        let (lo, hi) = self.as_bounds();
        bounds_empty(lo, hi)
    }

    /// The bounds left to visit in `dir` after the key `resume` (exclusive), for chunked
    /// scans that pick up where the previous chunk stopped; None when nothing is left.
    pub fn remaining_bounds<'a>(
        &'a self,
        dir: Direction,
        resume: Option<&'a [u8]>,
    ) -> Option<SliceBounds<'a>> {
        let (mut lo, mut hi) = self.as_bounds();
        if let Some(r) = resume {
            match dir {
                Direction::Forward => lo = Bound::Excluded(r),
                Direction::Reverse => hi = Bound::Excluded(r),
            }
        }
        (!bounds_empty(lo, hi)).then_some((lo, hi))
    }

    /// The bounds as a pair usable with `BTreeMap::range` and friends.
    pub fn as_bounds(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (as_slice(&self.start), as_slice(&self.end))
    }
}

impl Default for ScanRange {
    fn default() -> Self {
        ScanRange::all()
    }
}

fn as_slice(b: &Bound<Bytes>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_ref()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The smallest key greater than every key starting with `prefix`, if any.
pub fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut succ = prefix.to_vec();
    while let Some(last) = succ.pop() {
        if last < u8::MAX {
            succ.push(last + 1);
            return Some(succ);
        }
    }
    None
}

/// A lower and an upper bound over borrowed keys.
pub type SliceBounds<'a> = (Bound<&'a [u8]>, Bound<&'a [u8]>);

/// True if no key can lie between `lo` and `hi`.
fn bounds_empty(lo: Bound<&[u8]>, hi: Bound<&[u8]>) -> bool {
    match (lo, hi) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e))
        | (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_range_bounds() {
        let r = ScanRange::prefix(b"ab");
        assert!(r.contains(b"ab"));
        assert!(r.contains(b"ab\xff\xff"));
        assert!(!r.contains(b"ac"));
        assert!(!r.contains(b"aa\xff"));
        let r = ScanRange::prefix(b"\xff\xff");
        assert!(r.contains(b"\xff\xff\x00"));
        assert!(!r.contains(b"\xff\xfe"));
        assert_eq!(prefix_successor(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_successor(b""), None);
    }

    #[test]
    fn empty_ranges() {
        assert!(ScanRange::new(b"b".as_slice()..b"a".as_slice()).is_empty());
        assert!(ScanRange::new(b"a".as_slice()..b"a".as_slice()).is_empty());
        assert!(!ScanRange::new(b"a".as_slice()..=b"a".as_slice()).is_empty());
    }
}
