//! What the MVCC index ([`crate::hashed_index`], shared by the memory and Bitcask
//! engines) and the engines around it share: the [`IndexValue`] trait a stored value
//! implements, the compact [`IndexKey`] (a key inline when short) that GC queues, hint
//! files and recovery hold, the snapshot registry, and the shape of one version.
//!
//! Snapshots pin a sequence number in the [`SnapshotRegistry`]; versions older than the
//! newest one at or below the oldest pin (the *horizon*) are reclaimed at once on write,
//! and by bounded background steps for keys whose old versions outlived a snapshot.

use std::borrow::Borrow;

use bytes::Bytes;

use crate::key_order::word;
pub use crate::snapshot_registry::{Pin, SnapshotRegistry};

/// What the index needs to know of a stored value.
pub trait IndexValue: Clone + Send + Sync + 'static {
    /// Bytes the value accounts for in `live_bytes` (value length for both engines).
    fn weight(&self) -> u64;

    /// Starts loading the value's bytes into the CPU cache (see
    /// [`crate::Storage::prefetch`]); values without a heap part of their own do nothing.
    fn prefetch(&self) {}
}

impl IndexValue for Bytes {
    fn weight(&self) -> u64 {
        self.len() as u64
    }
}

/// Keys up to this many bytes live inside the tree node instead of their own allocation.
pub const INLINE_KEY: usize = 22;

/// A key as the index stores it: inline when short (no allocation of its own), else
/// one exact-size allocation. Ordered bytewise, like the keys it holds.
#[derive(Clone)]
pub struct IndexKey(KeyRepr);

#[derive(Clone)]
enum KeyRepr {
    Inline { len: u8, data: [u8; INLINE_KEY] },
    Heap(Box<[u8]>),
}

// The tree node holds keys inline; their size is the per-key cost.
const _: () = assert!(std::mem::size_of::<IndexKey>() == 24);

impl IndexKey {
    /// A copy of `key`.
    pub fn new(key: &[u8]) -> IndexKey {
        if key.len() <= INLINE_KEY {
            let mut data = [0u8; INLINE_KEY];
            data[..key.len()].copy_from_slice(key);
            IndexKey(KeyRepr::Inline {
                len: key.len() as u8,
                data,
            })
        } else {
            IndexKey(KeyRepr::Heap(key.into()))
        }
    }

    /// The key's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            KeyRepr::Inline { len, data } => &data[..usize::from(*len).min(INLINE_KEY)],
            KeyRepr::Heap(b) => b,
        }
    }
}

impl std::ops::Deref for IndexKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsRef<[u8]> for IndexKey {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Borrow<[u8]> for IndexKey {
    fn borrow(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for IndexKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for IndexKey {}

impl PartialOrd for IndexKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for IndexKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Inline keys are zero-padded, so their bytes read as big-endian words order
        // like the bytes themselves, and equal words leave the length to decide
        // ("ab" < "ab\0"). Keys of one shape share long prefixes (`m`, the database,
        // then the user's `key:0000…`), so a first-word check alone mostly fell through
        // to memcmp: a bitcask GET spent ~1,500 instructions in keydir comparisons. The
        // words are loaded at fixed offsets, each a plain load and byte swap, and the
        // early returns are predictable (keys of one shape agree on the first word): a
        // loop over the offsets kept a bounds-checked copy per word, and one 128-bit
        // comparison compiled to a longer branch-free sequence, both slower per key.
        if let (KeyRepr::Inline { len: la, data: a }, KeyRepr::Inline { len: lb, data: b }) =
            (&self.0, &other.0)
        {
            let (a0, b0) = (word(a, 0), word(b, 0));
            if a0 != b0 {
                return a0.cmp(&b0);
            }
            let (a1, b1) = (word(a, 8), word(b, 8));
            if a1 != b1 {
                return a1.cmp(&b1);
            }
            let (a2, b2) = (tail(a), tail(b));
            if a2 != b2 {
                return a2.cmp(&b2);
            }
            return la.cmp(lb);
        }
        self.as_slice().cmp(other.as_slice())
    }
}

/// Bytes 16.. of an inline key, zero-padded to a big-endian word.
#[inline(always)]
fn tail(data: &[u8; INLINE_KEY]) -> u64 {
    let mut w = [0u8; 8];
    w[..INLINE_KEY - 16].copy_from_slice(&data[16..]);
    u64::from_be_bytes(w)
}

impl std::fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", Bytes::copy_from_slice(self.as_slice()))
    }
}

/// A version: its batch's sequence number and value (None = deleted).
pub type VersionView<V> = (u64, Option<V>);

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// IndexKey orders exactly like the bytes, inline (word compares) or not.
        #[test]
        fn index_key_orders_like_bytes(
            a in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..30),
            b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..30),
            shared in proptest::collection::vec(0u8..3, 0..24),
        ) {
            // Long shared prefixes and zero bytes are the cases that matter.
            let a: Vec<u8> = shared.iter().copied().chain(a).collect();
            let b: Vec<u8> = shared.iter().copied().chain(b).collect();
            let (ka, kb) = (IndexKey::new(&a), IndexKey::new(&b));
            proptest::prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            proptest::prop_assert_eq!(ka.cmp(&ka.clone()), std::cmp::Ordering::Equal);
        }
    }
}
