//! Bytewise key order, compared eight bytes at a time, for the ordered indexes whose
//! searches compare a key with dozens of stored keys.
//!
//! Keys of one collection share long prefixes (type tag, database, version, the user's
//! key), so a search compares past them every time. `<[u8]>::cmp` does that with a
//! memcmp call per comparison; an inline comparison of big-endian words costs about
//! half (a list's RPOP removed its element from std's B-tree with ~52 comparisons, ~50
//! instructions each, before the memory engine had its own, `order_tree`).

use std::cmp::Ordering;

/// `a.cmp(b)` for byte strings: the same order, compared a word at a time.
#[inline]
pub fn cmp_keys(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    if n >= 8 {
        let mut at = 0;
        while at + 8 <= n {
            let (x, y) = (word(a, at), word(b, at));
            if x != y {
                return x.cmp(&y);
            }
            at += 8;
        }
        if at < n {
            // The last eight bytes of the common length: they overlap words already
            // found equal, so only the bytes past those can differ.
            let (x, y) = (word(a, n - 8), word(b, n - 8));
            if x != y {
                return x.cmp(&y);
            }
        }
    } else {
        for (x, y) in a[..n].iter().zip(&b[..n]) {
            if x != y {
                return x.cmp(y);
            }
        }
    }
    a.len().cmp(&b.len())
}

/// The eight bytes of `bytes` from `at` as a big-endian word (a fixed-size copy, which
/// compiles to one load; a variable-length one became a memcpy call).
#[inline(always)]
pub(crate) fn word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The same order as the bytes: long shared prefixes, zero bytes, prefixes of
        /// one another, every remainder length.
        #[test]
        fn orders_like_bytes(
            a in proptest::collection::vec(0u8..4, 0..40),
            b in proptest::collection::vec(0u8..4, 0..40),
            shared in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
        ) {
            let a: Vec<u8> = shared.iter().copied().chain(a).collect();
            let b: Vec<u8> = shared.iter().copied().chain(b).collect();
            proptest::prop_assert_eq!(cmp_keys(&a, &b), a.cmp(&b));
            proptest::prop_assert_eq!(cmp_keys(&a, &a), std::cmp::Ordering::Equal);
        }
    }

    #[test]
    fn bytes_above_0x7f_and_prefixes() {
        assert_eq!(cmp_keys(b"a\xff", b"a\x01"), Ordering::Greater);
        assert_eq!(cmp_keys(b"abcdefgh", b"abcdefgh\0"), Ordering::Less);
        assert_eq!(
            cmp_keys(b"abcdefgh\x80", b"abcdefgh\x7f"),
            Ordering::Greater
        );
        assert_eq!(cmp_keys(b"", b""), Ordering::Equal);
    }
}
