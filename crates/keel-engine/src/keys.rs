//! How Redis keys map onto the ordered storage keyspace.
//!
//! ```text
//! M db key                                metadata of a key (type, expiry, version, size; a string's value)
//! S version(u64 BE) suffix                a collection member / list element
//! Z version(u64 BE) score(8, order-preserving) member     sorted-set score index
//! E db expire_at_ms(u64 BE) key           expiry index, for the active expiry cycle
//! G version(u64 BE)                       orphaned sub-keys awaiting background GC
//! X name                                  engine-internal records (applied log index, …)
//! ```
//!
//! A collection's sub-keys hang off its *version* alone, which is unique across every
//! key and database (log index in the high bits, see `Exec::new_version`). The key name
//! is not part of them, so RENAME, MOVE and SWAPDB move only the metadata record: O(1)
//! whatever the collection's size; COPY and RESTORE write under a fresh version. The
//! sub-key helpers still take the owning `db` and `key`: call sites read as "member m of
//! key k", and the layout may add them back (e.g. for cluster slot migration) without
//! touching the type modules.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use keel_storage::ScanRange;

use crate::error::EngineError;

/// Prefix byte of metadata records.
pub const META: u8 = b'M';
/// Prefix byte of collection sub-keys.
pub const SUB: u8 = b'S';
/// Prefix byte of the sorted-set score index.
pub const ZSCORE_IDX: u8 = b'Z';
/// Prefix byte of the expiry index.
pub const EXPIRY_IDX: u8 = b'E';
/// Prefix byte of the orphan GC queue.
pub const GC_QUEUE: u8 = b'G';
/// Prefix byte of engine-internal records.
pub const INTERNAL: u8 = b'X';

/// Number of logical databases (SELECT 0–15).
pub const DATABASES: u8 = 16;

/// Bytes before the user's key in a [`meta_key`]: the kind tag and the database.
pub const META_PREFIX_LEN: usize = 2;

/// The bytes a [`meta_key`] starts with, before the user's key: the layout's one copy.
pub const fn meta_prefix(db: u8) -> [u8; META_PREFIX_LEN] {
    [META, db]
}

/// Storage key of the metadata record of `key` in `db`.
pub fn meta_key(db: u8, key: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(META_PREFIX_LEN + key.len());
    write_meta_key(&mut b, db, key);
    b.freeze()
}

/// Writes [`meta_key`]'s bytes (`META_PREFIX_LEN + key.len()` of them) to `b`.
pub fn write_meta_key(b: &mut impl BufMut, db: u8, key: &[u8]) {
    b.put_slice(&meta_prefix(db));
    b.put_slice(key);
}

/// [`meta_key`] on the stack, for look-ups: every command reads its key's metadata, and
/// most keys fit in 64 bytes, so the common case allocates nothing.
pub fn meta_key_buf(db: u8, key: &[u8]) -> smallvec::SmallVec<[u8; 64]> {
    let len = META_PREFIX_LEN + key.len();
    if len > 64 {
        let mut b = smallvec::SmallVec::with_capacity(len);
        b.extend_from_slice(&meta_prefix(db));
        b.extend_from_slice(key);
        return b;
    }
    // Two plain copies into an array: `SmallVec::extend_from_slice` (a reserve and an
    // insert each) was about 70 instructions of every read's metadata look-up.
    let mut buf = [0u8; 64];
    buf[..META_PREFIX_LEN].copy_from_slice(&meta_prefix(db));
    buf[META_PREFIX_LEN..len].copy_from_slice(key);
    smallvec::SmallVec::from_buf_and_len(buf, len)
}

/// Appends [`meta_key`]'s bytes to `buf` (building several keys in one buffer).
pub fn push_meta_key(buf: &mut Vec<u8>, db: u8, key: &[u8]) {
    buf.reserve(META_PREFIX_LEN + key.len());
    write_meta_key(buf, db, key);
}

/// Range of all metadata records of `db`.
pub fn meta_range(db: u8) -> ScanRange {
    ScanRange::prefix(meta_prefix(db))
}

/// Range of every metadata record of every database.
pub fn all_meta_range() -> ScanRange {
    ScanRange::prefix([META])
}

/// The user key of a metadata storage key, or None if it is not one of `db`.
pub fn user_key_of_meta(db: u8, storage_key: &[u8]) -> Option<&[u8]> {
    match storage_key {
        [META, d, rest @ ..] if *d == db => Some(rest),
        _ => None,
    }
}

/// Length of every sub-key prefix (tag + version).
pub const SUB_PREFIX_LEN: usize = 1 + 8;

/// The prefix shared by every sub-key with `tag` (SUB or ZSCORE_IDX) of the collection
/// `version` (owned by `key` in `db`; see the module doc for why those are unused).
pub fn sub_prefix(tag: u8, _db: u8, _key: &[u8], version: u64) -> BytesMut {
    let mut b = BytesMut::with_capacity(SUB_PREFIX_LEN + 24);
    put_sub_prefix(&mut b, tag, version);
    b
}

/// The layout of a sub-key prefix: the tag, then the version big-endian (so a
/// collection's members sort together).
fn put_sub_prefix(b: &mut impl BufMut, tag: u8, version: u64) {
    b.put_u8(tag);
    b.put_u64(version);
}

/// Storage key of the member/element `suffix` of collection `version` of `key`.
pub fn sub_key(_db: u8, _key: &[u8], version: u64, suffix: &[u8]) -> Bytes {
    // Exact size: a `Bytes` from a buffer with spare room takes a second allocation.
    let mut b = Vec::with_capacity(SUB_PREFIX_LEN + suffix.len());
    push_sub_key(&mut b, version, suffix);
    Bytes::from(b)
}

/// Length of a sub-key with an 8-byte suffix (a list record's index).
pub const INDEXED_SUB_KEY_LEN: usize = SUB_PREFIX_LEN + 8;

/// [`sub_key`] of an 8-byte suffix, built on the stack: a list's end record, which every
/// push and pop of a group rewrites, is usually in the transaction's overlay already and
/// needs no key of its own (see `WriteTx::put_slice`).
pub fn indexed_sub_key(version: u64, suffix: [u8; 8]) -> [u8; INDEXED_SUB_KEY_LEN] {
    let mut k = [0u8; INDEXED_SUB_KEY_LEN];
    let mut b = &mut k[..];
    put_sub_prefix(&mut b, SUB, version);
    b.put_slice(&suffix);
    k
}

/// Storage key of `member`'s entry in the score index of sorted set `version`: the
/// prefix, the score in sortable form, the member. Exact size, like [`sub_key`]: built
/// on [`sub_prefix`]'s buffer, a member longer than its spare room reallocated it
/// (ZADD -P 16: ~1,000 of 14,600 instructions per request in mimalloc's realloc).
pub fn score_key(version: u64, score: f64, member: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(SUB_PREFIX_LEN + 8 + member.len());
    put_sub_prefix(&mut b, ZSCORE_IDX, version);
    b.extend_from_slice(&score_to_sortable(score));
    b.extend_from_slice(member);
    Bytes::from(b)
}

/// Appends the [`sub_key`] of `suffix` in collection `version` to `buf`.
pub fn push_sub_key(buf: &mut Vec<u8>, version: u64, suffix: &[u8]) {
    buf.reserve(SUB_PREFIX_LEN + suffix.len());
    put_sub_prefix(buf, SUB, version);
    buf.extend_from_slice(suffix);
}

/// Range of every member sub-key of collection `version` of `key`.
pub fn sub_range(db: u8, key: &[u8], version: u64) -> ScanRange {
    ScanRange::prefix(sub_prefix(SUB, db, key, version))
}

/// Length of the sub-key prefix, to strip it from scanned sub-keys of `key`.
pub fn sub_prefix_len(_key: &[u8]) -> usize {
    SUB_PREFIX_LEN
}

/// The member or field a scanned sub-key holds: the sub-key advanced in place past its
/// prefix of `plen` bytes ([`sub_prefix_len`]), not sliced. A slice and the drop of the
/// whole sub-key were two atomic read-modify-writes of the scan chunk's shared count
/// (perf, HGETALL of 10 fields -P 16: 4.8% of the server's samples). `what` names it in
/// the error for a sub-key shorter than its prefix.
pub fn sub_suffix(
    mut sub_key: Bytes,
    plen: usize,
    what: &'static str,
) -> Result<Bytes, EngineError> {
    if sub_key.len() < plen {
        return Err(EngineError::corrupt(
            what,
            &sub_key,
            "sub-key shorter than its prefix",
        ));
    }
    sub_key.advance(plen);
    Ok(sub_key)
}

/// Storage key of the expiry-index entry of `key` expiring at `at_ms`.
pub fn expiry_key(db: u8, at_ms: u64, key: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(2 + 8 + key.len());
    b.put_u8(EXPIRY_IDX);
    b.put_u8(db);
    b.put_u64(at_ms);
    b.put_slice(key);
    b.freeze()
}

/// Splits an expiry-index storage key into (db, at_ms, user key).
pub fn parse_expiry_key(k: &[u8]) -> Option<(u8, u64, &[u8])> {
    if k.len() < 10 || k[0] != EXPIRY_IDX {
        return None;
    }
    let mut at = [0u8; 8];
    at.copy_from_slice(&k[2..10]);
    Some((k[1], u64::from_be_bytes(at), &k[10..]))
}

/// Storage key of a GC-queue entry for the orphaned sub-keys of collection `version`
/// (last owned by `key` in `db`).
pub fn gc_key(_db: u8, _key: &[u8], version: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(9);
    b.put_u8(GC_QUEUE);
    b.put_u64(version);
    b.freeze()
}

/// The collection version of a GC-queue storage key.
pub fn parse_gc_key(k: &[u8]) -> Option<u64> {
    match k {
        [GC_QUEUE, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// Storage key of an engine-internal record.
pub fn internal_key(name: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(1 + name.len());
    b.put_u8(INTERNAL);
    b.put_slice(name.as_bytes());
    b.freeze()
}

/// Storage key of a cached script, by the lower-case hex SHA1 of its body (all scripts
/// share the prefix `script_key("")`).
pub fn script_key(sha: &str) -> Bytes {
    named_record(SCRIPT, sha.as_bytes())
}

/// Storage key of a function library, by its name (all libraries share the prefix
/// `library_key(b"")`); the record holds the library's whole payload.
pub fn library_key(name: &[u8]) -> Bytes {
    named_record(LIBRARY, name)
}

/// Storage key naming the library of the function `name` (function names are
/// case-insensitive: the caller lower-cases it; all share `function_key(b"")`).
pub fn function_key(name: &[u8]) -> Bytes {
    named_record(FUNCTION, name)
}

/// An internal record's key: its kind's prefix, then its name.
fn named_record(prefix: &str, name: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(1 + prefix.len() + name.len());
    b.put_u8(INTERNAL);
    b.put_slice(prefix.as_bytes());
    b.put_slice(name);
    b.freeze()
}

/// The internal-record name prefix of cached scripts.
const SCRIPT: &str = "script:";
/// The internal-record name prefix of function libraries.
const LIBRARY: &str = "library:";
/// The internal-record name prefix of the function-to-library index.
const FUNCTION: &str = "function:";

/// Maps an f64 to 8 bytes whose bytewise order is the numeric order (−inf < … < +inf).
pub fn score_to_sortable(score: f64) -> [u8; 8] {
    // -0.0 and 0.0 are the same score in Redis; normalise so they share one position.
    let score = if score == 0.0 { 0.0 } else { score };
    let bits = score.to_bits();
    let ordered = if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    };
    ordered.to_be_bytes()
}

/// Inverse of [`score_to_sortable`].
pub fn sortable_to_score(b: [u8; 8]) -> f64 {
    let ordered = u64::from_be_bytes(b);
    let bits = if ordered >> 63 == 1 {
        ordered & !(1 << 63)
    } else {
        !ordered
    };
    f64::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_meta_key_matches_the_shared_one_at_every_length() {
        // 62 bytes of key fill the 64-byte array exactly; 63 takes the heap path.
        for len in [0usize, 1, 12, 61, 62, 63, 64, 200] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            for db in [0u8, 5, 15] {
                assert_eq!(
                    &meta_key_buf(db, &key)[..],
                    &meta_key(db, &key)[..],
                    "len {len}"
                );
            }
        }
    }

    #[test]
    fn indexed_sub_keys_are_sub_keys() {
        for (version, suffix) in [
            (0, [0u8; 8]),
            (7 << 20 | 3, *b"\x80\0\0\0\0\0\0\x01"),
            (u64::MAX, [0xff; 8]),
        ] {
            assert_eq!(
                &indexed_sub_key(version, suffix)[..],
                &sub_key(0, b"k", version, &suffix)[..]
            );
        }
    }

    #[test]
    fn score_order_is_numeric_order() {
        let scores = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -1.0,
            -f64::MIN_POSITIVE,
            0.0,
            f64::MIN_POSITIVE,
            1.0,
            2.5,
            1e300,
            f64::INFINITY,
        ];
        for w in scores.windows(2) {
            assert!(
                score_to_sortable(w[0]) < score_to_sortable(w[1]),
                "{} < {}",
                w[0],
                w[1]
            );
        }
        for s in scores {
            assert_eq!(sortable_to_score(score_to_sortable(s)), s);
        }
        assert_eq!(score_to_sortable(-0.0), score_to_sortable(0.0));
    }

    #[test]
    fn sub_ranges_of_different_versions_never_overlap() {
        let r1 = sub_range(0, b"a", 1);
        assert!(r1.contains(&sub_key(0, b"a", 1, b"zzz")));
        assert!(r1.contains(&sub_key(0, b"a", 1, b"")));
        assert!(!r1.contains(&sub_key(0, b"a", 2, b"")));
        assert!(!r1.contains(&sub_key(0, b"a", 256, b"\x01")));
        assert!(!r1.contains(&sub_prefix(ZSCORE_IDX, 0, b"a", 1)));
        // The owner is not part of the layout: a renamed key keeps its members.
        assert_eq!(sub_key(0, b"a", 9, b"m"), sub_key(3, b"b", 9, b"m"));
    }

    /// A score-index key is its collection's score-index prefix, the sortable score and
    /// the member, and sorts by score first.
    #[test]
    fn score_keys_extend_the_score_index_prefix() {
        let k = score_key(7, -1.5, b"member");
        let mut want = sub_prefix(ZSCORE_IDX, 0, b"z", 7).to_vec();
        want.extend_from_slice(&score_to_sortable(-1.5));
        want.extend_from_slice(b"member");
        assert_eq!(&k[..], &want[..]);
        assert!(score_key(7, -1.5, b"zz") < score_key(7, 2.0, b"a"));
        let range = ScanRange::prefix(sub_prefix(ZSCORE_IDX, 0, b"z", 7));
        assert!(range.contains(&k));
        assert!(!range.contains(&score_key(8, -1.5, b"member")));
    }

    #[test]
    fn gc_and_expiry_keys_round_trip() {
        assert_eq!(parse_gc_key(&gc_key(3, b"k", 77)), Some(77));
        assert_eq!(parse_gc_key(b"G\x00"), None);
        let e = expiry_key(2, 123, b"key");
        assert_eq!(parse_expiry_key(&e), Some((2, 123, &b"key"[..])));
        assert_eq!(user_key_of_meta(1, &meta_key(1, b"x")), Some(&b"x"[..]));
        assert_eq!(user_key_of_meta(2, &meta_key(1, b"x")), None);
    }
}
