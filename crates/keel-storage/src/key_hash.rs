//! Hashing of a byte-string key on its own: foldhash over the bytes, without the length
//! that `Hash for [u8]` writes first.
//!
//! Why: every write hashes its key several times (the store's index, the write overlay,
//! the access table), and `BuildHasher::hash_one(&[u8])` feeds the length in as a
//! separate word, which costs foldhash a second multiply in `finish` and the sponge's
//! bookkeeping. foldhash's `write` already mixes the length in (it rotates its state by
//! it), and a lone key needs no prefix to keep it apart from a following field, so the
//! word adds nothing. Keys stay as hard to make collide as before: the seeds are the
//! same.

use std::hash::{BuildHasher, Hasher};

use foldhash::fast::FoldHasher;

/// The hash of `key` under `state`, as [`BytesState`] gives it for a map keyed by byte
/// strings.
#[inline]
pub fn hash_bytes<S: BuildHasher<Hasher = FoldHasher>>(state: &S, key: &[u8]) -> u64 {
    let mut h = state.build_hasher();
    h.write(key);
    h.finish()
}

/// A `BuildHasher` for maps whose keys are byte strings (`Bytes`, `Vec<u8>`, `[u8]`):
/// foldhash with a random seed per map, the length prefix skipped (see the module).
#[derive(Clone, Default)]
pub struct BytesState(foldhash::fast::RandomState);

impl BuildHasher for BytesState {
    type Hasher = BytesHasher;

    #[inline]
    fn build_hasher(&self) -> BytesHasher {
        BytesHasher(self.0.build_hasher())
    }
}

/// The hasher of [`BytesState`].
pub struct BytesHasher(FoldHasher);

impl Hasher for BytesHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }

    /// The length prefix of a byte string (and any other `usize`, which a byte-string
    /// key does not have): skipped. Equal keys still hash alike.
    #[inline]
    fn write_usize(&mut self, _: usize) {}

    #[inline]
    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn a_key_hashes_alike_as_bytes_slice_and_vector() {
        let state = BytesState::default();
        for key in [&b""[..], b"a", b"key:000000012345", &[7u8; 300]] {
            let want = hash_bytes(&state.0, key);
            assert_eq!(state.hash_one(key), want);
            assert_eq!(state.hash_one(Bytes::copy_from_slice(key)), want);
            assert_eq!(state.hash_one(key.to_vec()), want);
        }
    }

    #[test]
    fn lengths_and_contents_tell_keys_apart() {
        let state = BytesState::default();
        let keys: std::collections::BTreeSet<Vec<u8>> = (0..=40u8)
            .map(|n| vec![0u8; usize::from(n)])
            .chain((1..=255u8).map(|b| vec![b; 9]))
            .chain((0..64u8).map(|b| format!("key:{b:012}").into_bytes()))
            .collect();
        let hashes: std::collections::HashSet<u64> =
            keys.iter().map(|k| state.hash_one(k.as_slice())).collect();
        assert_eq!(hashes.len(), keys.len(), "two of these keys hashed alike");
    }
}
