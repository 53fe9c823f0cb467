//! The metadata record of a key: its type, expiry, version and size, and a string's
//! value inline.
//!
//! Layout: `type u8 | flags u8 | mod_index u64 LE | [expire_at_ms u64 LE if
//! flags&EXPIRES]` then
//! strings: the value bytes; collections: `version u64 | len u64` and for lists
//! `head i64 | tail i64 | [chunk_shift u8 if flags&CHUNKED]` (element indices: elements
//! live at head..tail, exclusive; see [`ListShape`]).
//!
//! `mod_index` is the log index of the entry that last wrote the record; optimistic
//! transactions compare it with their start index to find write-write conflicts. It is
//! stamped by `Exec::put_meta` and kept out of [`Meta`] so type code never handles it.

use bytes::{Bytes, BytesMut};
use keel_storage::ValueRef;

use crate::error::{EngineError, Result};

const FLAG_EXPIRES: u8 = 1;
/// A list whose elements are packed `1 << chunk_shift` to a record; lists written before
/// packing have no such byte and one element per record (shift 0).
const FLAG_CHUNKED: u8 = 2;

/// Largest chunk shift a record may carry: a chunk's first slot is one byte.
pub const MAX_CHUNK_SHIFT: u8 = 7;

/// Where a list's elements are: absolute indices `head..tail` (exclusive), packed
/// `1 << chunk_shift` indices to a storage record (see `types::list_chunk`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListShape {
    /// Index of the leftmost element.
    pub head: i64,
    /// One past the index of the rightmost element.
    pub tail: i64,
    /// log2 of the indices one record holds.
    pub chunk_shift: u8,
}

/// The Redis type of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// String.
    String,
    /// List.
    List,
    /// Hash.
    Hash,
    /// Set.
    Set,
    /// Sorted set.
    ZSet,
    /// Stream.
    Stream,
}

impl KeyType {
    /// The name TYPE prints.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::String => "string",
            KeyType::List => "list",
            KeyType::Hash => "hash",
            KeyType::Set => "set",
            KeyType::ZSet => "zset",
            KeyType::Stream => "stream",
        }
    }

    /// Parses a TYPE name (SCAN's TYPE option), case-insensitively.
    pub fn from_name(name: &[u8]) -> Option<KeyType> {
        match name.to_ascii_lowercase().as_slice() {
            b"string" => Some(KeyType::String),
            b"list" => Some(KeyType::List),
            b"hash" => Some(KeyType::Hash),
            b"set" => Some(KeyType::Set),
            b"zset" => Some(KeyType::ZSet),
            b"stream" => Some(KeyType::Stream),
            _ => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            KeyType::String => 0,
            KeyType::List => 1,
            KeyType::Hash => 2,
            KeyType::Set => 3,
            KeyType::ZSet => 4,
            KeyType::Stream => 5,
        }
    }

    fn from_code(c: u8) -> Option<KeyType> {
        Some(match c {
            0 => KeyType::String,
            1 => KeyType::List,
            2 => KeyType::Hash,
            3 => KeyType::Set,
            4 => KeyType::ZSet,
            5 => KeyType::Stream,
            _ => return None,
        })
    }
}

/// Type-specific part of a metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A string's value.
    String(Bytes),
    /// A collection's version (sub-keys live under it) and element count.
    Collection {
        /// Version the sub-keys are written under; a new one orphans the old sub-keys.
        version: u64,
        /// Number of members/elements.
        len: u64,
        /// For lists: where the elements are.
        list: Option<ListShape>,
    },
}

/// A decoded metadata record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// The key's type.
    pub kind: KeyType,
    /// Absolute expiry in ms since the epoch; None = persistent.
    pub expire_at: Option<u64>,
    /// Type-specific part.
    pub body: Body,
}

impl Meta {
    /// A persistent string.
    pub fn string(value: Bytes) -> Meta {
        Meta {
            kind: KeyType::String,
            expire_at: None,
            body: Body::String(value),
        }
    }

    /// An empty collection of `kind` under `version` (a list with one element per record).
    pub fn collection(kind: KeyType, version: u64) -> Meta {
        let list = (kind == KeyType::List).then_some(ListShape {
            head: 0,
            tail: 0,
            chunk_shift: 0,
        });
        Meta {
            kind,
            expire_at: None,
            body: Body::Collection {
                version,
                len: 0,
                list,
            },
        }
    }

    /// True if the key is expired at `now_ms`.
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at.is_some_and(|at| at <= now_ms)
    }

    /// The collection version, if a collection.
    pub fn version(&self) -> Option<u64> {
        match self.body {
            Body::Collection { version, .. } => Some(version),
            Body::String(_) => None,
        }
    }

    /// Element count for collections, byte length for strings.
    pub fn len(&self) -> u64 {
        match &self.body {
            Body::Collection { len, .. } => *len,
            Body::String(v) => v.len() as u64,
        }
    }

    /// True when a collection has no element left (it must then be deleted).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Encodes the record with modification index 0 (tests, fixtures).
    pub fn encode(&self) -> Bytes {
        self.encode_at(0)
    }

    /// Encodes the record as written by the log entry `mod_index`.
    ///
    /// The buffer is allocated at its exact size: a `Bytes` made from a vector with
    /// spare capacity takes a second allocation for its reference count, and this
    /// record is what the store keeps for every key.
    pub fn encode_at(&self, mod_index: u64) -> Bytes {
        let mut b = BytesMut::with_capacity(self.encoded_len());
        self.encode_into(mod_index, &mut b);
        b.freeze()
    }

    /// A string's metadata expiring at `expire_at` without its value: its record is this
    /// encoded, then the value (what [`Meta::encode_string_into`] writes from a borrowed
    /// value), and it tells a delete all it reads (type and expiry).
    pub(crate) fn string_record_head(expire_at: Option<u64>) -> Meta {
        Meta {
            kind: KeyType::String,
            expire_at,
            body: Body::String(Bytes::new()),
        }
    }

    /// [`Meta::encoded_len`] of a string of `value_len` bytes expiring at `expire_at`.
    pub fn string_encoded_len(expire_at: Option<u64>, value_len: usize) -> usize {
        Meta::string_record_head(expire_at).encoded_len() + value_len
    }

    /// [`Meta::encode_into`] of a string of `value` expiring at `expire_at`, from a
    /// borrowed value: a `Meta` holding a command's argument clones its `Bytes`, an
    /// atomic increment and decrement (each a full barrier on x86) per SET.
    pub fn encode_string_into(
        mod_index: u64,
        expire_at: Option<u64>,
        value: &[u8],
        out: &mut BytesMut,
    ) {
        Meta::string_record_head(expire_at).encode_into(mod_index, out);
        out.extend_from_slice(value);
    }

    /// The length of the encoded record.
    pub fn encoded_len(&self) -> usize {
        let expiry = if self.expire_at.is_some() { 8 } else { 0 };
        let body = match &self.body {
            Body::String(v) => v.len(),
            Body::Collection { list, .. } => {
                16 + match list {
                    Some(l) if l.chunk_shift > 0 => 17,
                    Some(_) => 16,
                    None => 0,
                }
            }
        };
        10 + expiry + body
    }

    /// Appends the record as written by the log entry `mod_index` to `out`
    /// ([`Meta::encoded_len`] bytes).
    pub fn encode_into(&self, mod_index: u64, out: &mut BytesMut) {
        // kind, flags, mod index, expiry, then version, length, head, tail at most; the
        // header is assembled on the stack and copied once.
        let mut head = [0u8; 2 + 8 + 8 + 33];
        head[0] = self.kind.code();
        let chunked =
            matches!(&self.body, Body::Collection { list: Some(l), .. } if l.chunk_shift > 0);
        head[1] = if self.expire_at.is_some() {
            FLAG_EXPIRES
        } else {
            0
        } | if chunked { FLAG_CHUNKED } else { 0 };
        head[2..10].copy_from_slice(&mod_index.to_le_bytes());
        let mut n = 10;
        let mut put = |v: u64| {
            head[n..n + 8].copy_from_slice(&v.to_le_bytes());
            n += 8;
        };
        if let Some(at) = self.expire_at {
            put(at);
        }
        let tail: &[u8] = match &self.body {
            Body::String(v) => v,
            Body::Collection { version, len, list } => {
                put(*version);
                put(*len);
                if let Some(l) = list {
                    put(l.head as u64);
                    put(l.tail as u64);
                    if l.chunk_shift > 0 {
                        head[n] = l.chunk_shift;
                        n += 1;
                    }
                }
                &[]
            }
        };
        out.extend_from_slice(&head[..n]);
        out.extend_from_slice(tail);
    }

    /// The modification index of an encoded record (None if too short to hold one).
    pub fn mod_index_of(raw: &[u8]) -> Option<u64> {
        let b: [u8; 8] = raw.get(2..10)?.try_into().ok()?;
        Some(u64::from_le_bytes(b))
    }

    /// Decodes a record read from `storage_key` (named in errors). Takes the record by
    /// value: a string's body is the record itself advanced past its header, where a
    /// slice of a `Bytes` made from a vector allocates a shared header (~80 instructions
    /// of a GET).
    pub fn decode(storage_key: &[u8], raw: Bytes) -> Result<Meta> {
        Ok(Meta::decode_parts(storage_key, ValueRef::Owned(raw), true)?.0)
    }

    /// [`Meta::decode`] of a record storage lent or handed over: only a string's body is
    /// copied out of a lent record, a collection's header is read in place.
    pub fn decode_ref(storage_key: &[u8], raw: ValueRef<'_>) -> Result<Meta> {
        Ok(Meta::decode_parts(storage_key, raw, true)?.0)
    }

    /// [`Meta::decode`] without a string's body (left empty in the metadata), for a
    /// caller that needs the type, expiry and collection header, or reads the body where
    /// it lies: it is returned as a slice of `raw` (empty for a collection).
    pub fn decode_head<'r>(storage_key: &[u8], raw: &'r [u8]) -> Result<(Meta, &'r [u8])> {
        let (meta, body_at) = Meta::decode_parts(storage_key, ValueRef::Borrowed(raw), false)?;
        let body = match meta.kind {
            KeyType::String => raw.get(body_at..).unwrap_or_default(),
            _ => &[],
        };
        Ok((meta, body))
    }

    /// The metadata (a string's body only when `body`) and where the header ends.
    // Inlined into each caller so `decode` (owned, with body) compiles as it did before
    // borrowed reads: GET's decode went from 54 to 67 instructions through one shared body.
    #[inline(always)]
    fn decode_parts(storage_key: &[u8], raw: ValueRef<'_>, body: bool) -> Result<(Meta, usize)> {
        let bad = |why: &str| EngineError::corrupt("metadata", storage_key, why);
        let bytes = raw.as_slice();
        if bytes.len() < 2 {
            return Err(bad("record shorter than its header"));
        }
        let kind = KeyType::from_code(bytes[0]).ok_or_else(|| bad("unknown type code"))?;
        let flags = bytes[1];
        let mut pos = 10;
        if bytes.len() < pos {
            return Err(bad("record shorter than its header"));
        }
        let take8 = |pos: &mut usize| -> Result<[u8; 8]> {
            let s = bytes
                .get(*pos..*pos + 8)
                .ok_or_else(|| bad("record truncated"))?;
            *pos += 8;
            let mut a = [0u8; 8];
            a.copy_from_slice(s);
            Ok(a)
        };
        let expire_at = if flags & FLAG_EXPIRES != 0 {
            Some(u64::from_le_bytes(take8(&mut pos)?))
        } else {
            None
        };
        let header_end = pos;
        let body = match kind {
            KeyType::String if !body => Body::String(Bytes::new()),
            KeyType::String => {
                Body::String(raw.tail_from(pos).ok_or_else(|| bad("record truncated"))?)
            }
            _ => {
                let version = u64::from_le_bytes(take8(&mut pos)?);
                let len = u64::from_le_bytes(take8(&mut pos)?);
                let list = if kind == KeyType::List {
                    let head = i64::from_le_bytes(take8(&mut pos)?);
                    let tail = i64::from_le_bytes(take8(&mut pos)?);
                    let chunk_shift = if flags & FLAG_CHUNKED != 0 {
                        let s = *bytes.get(pos).ok_or_else(|| bad("record truncated"))?;
                        if s == 0 || s > MAX_CHUNK_SHIFT {
                            return Err(bad("list chunk shift out of range"));
                        }
                        s
                    } else {
                        0
                    };
                    Some(ListShape {
                        head,
                        tail,
                        chunk_shift,
                    })
                } else if flags & FLAG_CHUNKED != 0 {
                    return Err(bad("chunked flag on a non-list"));
                } else {
                    None
                };
                Body::Collection { version, len, list }
            }
        };
        Ok((
            Meta {
                kind,
                expire_at,
                body,
            },
            header_end,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list of three elements at indices -1..2, packed `2^chunk_shift` to a record.
    fn three_element_list(chunk_shift: u8) -> Meta {
        let mut l = Meta::collection(KeyType::List, 9);
        l.body = Body::Collection {
            version: 9,
            len: 3,
            list: Some(ListShape {
                head: -1,
                tail: 2,
                chunk_shift,
            }),
        };
        l
    }

    #[test]
    fn round_trips() {
        let mut m = Meta::string(Bytes::from_static(b"hello"));
        assert_eq!(Meta::decode(b"k", m.encode()).ok(), Some(m.clone()));
        m.expire_at = Some(12345);
        assert_eq!(Meta::decode(b"k", m.encode()).ok(), Some(m));
        for chunk_shift in [0, 4, MAX_CHUNK_SHIFT] {
            let l = three_element_list(chunk_shift);
            assert_eq!(Meta::decode(b"k", l.encode()).ok(), Some(l));
        }
        let z = Meta::collection(KeyType::ZSet, 4);
        assert_eq!(Meta::decode(b"k", z.encode()).ok(), Some(z));
    }

    /// `encoded_len` is what `encode_into` appends, for every shape of record, and the
    /// appended bytes are `encode_at`'s.
    #[test]
    fn encoded_len_is_what_encode_into_appends() {
        let mut shapes = vec![
            Meta::string(Bytes::new()),
            Meta::string(Bytes::from(vec![7; 70])),
        ];
        shapes.push(three_element_list(0));
        shapes.push(three_element_list(4));
        shapes.push(Meta::collection(KeyType::Hash, 4));
        for expire_at in [None, Some(99)] {
            for m in &shapes {
                let mut m = m.clone();
                m.expire_at = expire_at;
                let mut out = BytesMut::from(&b"before"[..]);
                m.encode_into(7, &mut out);
                assert_eq!(out.len(), 6 + m.encoded_len(), "{m:?}");
                assert_eq!(&out[6..], &m.encode_at(7)[..], "{m:?}");
                assert_eq!(Meta::decode(b"k", m.encode_at(7)).ok(), Some(m.clone()));
            }
        }
    }

    #[test]
    fn rejects_damage() {
        let idx = [0u8; 8];
        let rec = |head: &[u8], tail: &[u8]| Bytes::from([head, &idx[..], tail].concat());
        assert!(Meta::decode(b"k", rec(b"\x09\x00", b"")).is_err());
        assert!(Meta::decode(b"k", rec(b"\x02\x00", b"\x01")).is_err());
        assert!(Meta::decode(b"k", rec(b"\x00\x01", b"\x01")).is_err());
        assert!(Meta::decode(b"k", Bytes::from_static(b"\x00\x00\x01")).is_err());
        let m = Meta::string(Bytes::from_static(b"v"));
        assert_eq!(Meta::mod_index_of(&m.encode_at(42)), Some(42));
        assert!(Meta::decode(b"k", Bytes::from_static(b"")).is_err());
        // A chunked list without its shift byte, with a shift out of range, and the
        // chunked flag on a hash.
        let list = |flags: u8, shift: &[u8]| {
            let mut r = vec![1u8, flags];
            r.extend_from_slice(&[0u8; 8 + 8 + 8 + 8 + 8]);
            r.extend_from_slice(shift);
            Bytes::from(r)
        };
        assert!(Meta::decode(b"k", list(FLAG_CHUNKED, b"\x04")).is_ok());
        assert!(Meta::decode(b"k", list(FLAG_CHUNKED, b"")).is_err());
        assert!(Meta::decode(b"k", list(FLAG_CHUNKED, b"\x00")).is_err());
        assert!(Meta::decode(b"k", list(FLAG_CHUNKED, &[MAX_CHUNK_SHIFT + 1])).is_err());
        let hash = [&[2u8, FLAG_CHUNKED][..], &[0u8; 8 + 8 + 8]].concat();
        assert!(Meta::decode(b"k", Bytes::from(hash)).is_err());
    }
}
