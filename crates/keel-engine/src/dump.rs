//! The DUMP/RESTORE payload: keel's own serialisation of one key, type-agnostic.
//!
//! ```text
//! version u8 (=1) | type u8 | body | footer
//! body, string:      len u32 LE | value bytes
//! body, collection:  len u64 LE | has_list u8 | [head i64 LE | tail i64 LE]
//!                    [chunk_shift u8 if has_list = 2: a list packed 2^shift elements
//!                    to a sub-key; 1 is a list of one element per sub-key]
//!                    then entries: tag u8 ('S' or 'Z') | suffix len u32 LE | suffix
//!                                  | value len u32 LE | value
//!                    terminated by a tag byte 0
//! footer:            version u16 LE (=1) | crc32 u32 LE of every byte before it
//! ```
//!
//! Entries are a collection's raw sub-keys relative to its (key, version) prefix, so the
//! codec needs no knowledge of how each type lays out its members; a restored key gets
//! a fresh version and its entries are written under the new key's prefixes. Like
//! Redis's payload (RDB version + CRC64), the footer lets RESTORE reject payloads from
//! another format version or damaged in transit before looking at the body.

use bytes::{BufMut, Bytes, BytesMut};

use crate::keys;
use crate::meta::{KeyType, ListShape, MAX_CHUNK_SHIFT};

/// Format version written in both the header byte and the footer.
pub const FORMAT_VERSION: u8 = 1;

const FOOTER_LEN: usize = 2 + 4;
const END: u8 = 0;

fn type_code(k: KeyType) -> u8 {
    match k {
        KeyType::String => 0,
        KeyType::List => 1,
        KeyType::Hash => 2,
        KeyType::Set => 3,
        KeyType::ZSet => 4,
        KeyType::Stream => 5,
    }
}

fn type_from_code(c: u8) -> Option<KeyType> {
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

/// Builds a payload incrementally (a collection's entries are appended as they are
/// scanned).
pub struct Encoder {
    buf: BytesMut,
    collection: bool,
}

impl Encoder {
    /// A payload of a string with `value`.
    pub fn string(value: &[u8]) -> Encoder {
        let mut buf = BytesMut::with_capacity(2 + 4 + value.len() + FOOTER_LEN);
        buf.put_u8(FORMAT_VERSION);
        buf.put_u8(type_code(KeyType::String));
        buf.put_u32_le(value.len() as u32);
        buf.put_slice(value);
        Encoder {
            buf,
            collection: false,
        }
    }

    /// A payload of a collection of `kind` with `len` members (and list bounds).
    pub fn collection(kind: KeyType, len: u64, list: Option<ListShape>) -> Encoder {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_u8(FORMAT_VERSION);
        buf.put_u8(type_code(kind));
        buf.put_u64_le(len);
        match list {
            Some(l) => {
                buf.put_u8(if l.chunk_shift > 0 { 2 } else { 1 });
                buf.put_i64_le(l.head);
                buf.put_i64_le(l.tail);
                if l.chunk_shift > 0 {
                    buf.put_u8(l.chunk_shift);
                }
            }
            None => buf.put_u8(0),
        }
        Encoder {
            buf,
            collection: true,
        }
    }

    /// Appends one sub-key: `tag` is [`keys::SUB`] or [`keys::ZSCORE_IDX`], `suffix` the
    /// part after the (key, version) prefix.
    pub fn entry(&mut self, tag: u8, suffix: &[u8], value: &[u8]) {
        self.buf.put_u8(tag);
        self.buf.put_u32_le(suffix.len() as u32);
        self.buf.put_slice(suffix);
        self.buf.put_u32_le(value.len() as u32);
        self.buf.put_slice(value);
    }

    /// Closes the payload with its footer.
    pub fn finish(mut self) -> Bytes {
        if self.collection {
            self.buf.put_u8(END);
        }
        seal(self.buf)
    }
}

/// Closes a payload body with the footer [`verify`] checks (FUNCTION DUMP's payload
/// has it too).
pub fn seal(mut buf: BytesMut) -> Bytes {
    buf.put_u16_le(u16::from(FORMAT_VERSION));
    let crc = crc32fast::hash(&buf);
    buf.put_u32_le(crc);
    buf.freeze()
}

/// Why a payload was refused; each maps to one of Redis's RESTORE error texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadError {
    /// Footer version or checksum wrong ("DUMP payload version or checksum are wrong").
    VersionOrChecksum,
    /// Checksum fine but the body does not parse ("Bad data format").
    BadFormat,
}

/// A decoded payload; byte fields are slices of the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The key's type.
    pub kind: KeyType,
    /// A string's value (None for collections).
    pub value: Option<Bytes>,
    /// A collection's member count.
    pub len: u64,
    /// A list's shape.
    pub list: Option<ListShape>,
    /// A collection's sub-keys as (tag, suffix, value).
    pub entries: Vec<(u8, Bytes, Bytes)>,
}

/// Checks the footer (version and checksum) of `p` without parsing the body.
pub fn verify(p: &[u8]) -> Result<(), PayloadError> {
    if p.len() < 2 + FOOTER_LEN {
        return Err(PayloadError::VersionOrChecksum);
    }
    let body_end = p.len() - 4;
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&p[body_end..]);
    let mut ver = [0u8; 2];
    ver.copy_from_slice(&p[body_end - 2..body_end]);
    if u16::from_le_bytes(ver) != u16::from(FORMAT_VERSION)
        || crc32fast::hash(&p[..body_end]) != u32::from_le_bytes(crc)
    {
        return Err(PayloadError::VersionOrChecksum);
    }
    Ok(())
}

/// A bounds-checked reader over the payload body.
struct Cursor<'a> {
    src: &'a Bytes,
    pos: usize,
    end: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<Bytes, PayloadError> {
        let stop = self.pos.checked_add(n).ok_or(PayloadError::BadFormat)?;
        if stop > self.end {
            return Err(PayloadError::BadFormat);
        }
        let s = self.src.slice(self.pos..stop);
        self.pos = stop;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8, PayloadError> {
        Ok(self.take(1)?[0])
    }

    fn arr8(&mut self) -> Result<[u8; 8], PayloadError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&s);
        Ok(a)
    }

    fn u32(&mut self) -> Result<u32, PayloadError> {
        let s = self.take(4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(&s);
        Ok(u32::from_le_bytes(a))
    }
}

/// Verifies and parses a payload.
pub fn decode(p: &Bytes) -> Result<Decoded, PayloadError> {
    verify(p)?;
    let mut c = Cursor {
        src: p,
        pos: 0,
        end: p.len() - FOOTER_LEN,
    };
    if c.u8()? != FORMAT_VERSION {
        return Err(PayloadError::VersionOrChecksum);
    }
    let kind = type_from_code(c.u8()?).ok_or(PayloadError::BadFormat)?;
    let mut out = Decoded {
        kind,
        value: None,
        len: 0,
        list: None,
        entries: Vec::new(),
    };
    if kind == KeyType::String {
        let n = c.u32()? as usize;
        out.value = Some(c.take(n)?);
    } else {
        out.len = u64::from_le_bytes(c.arr8()?);
        let has_list = c.u8()?;
        match (has_list, kind == KeyType::List) {
            (1 | 2, true) => {
                let head = i64::from_le_bytes(c.arr8()?);
                let tail = i64::from_le_bytes(c.arr8()?);
                let chunk_shift = if has_list == 2 { c.u8()? } else { 0 };
                if has_list == 2 && !(1..=MAX_CHUNK_SHIFT).contains(&chunk_shift) {
                    return Err(PayloadError::BadFormat);
                }
                out.list = Some(ListShape {
                    head,
                    tail,
                    chunk_shift,
                });
            }
            (0, false) => {}
            _ => return Err(PayloadError::BadFormat),
        }
        loop {
            let tag = c.u8()?;
            if tag == END {
                break;
            }
            if tag != keys::SUB && tag != keys::ZSCORE_IDX {
                return Err(PayloadError::BadFormat);
            }
            let n = c.u32()? as usize;
            let suffix = c.take(n)?;
            let n = c.u32()? as usize;
            let value = c.take(n)?;
            out.entries.push((tag, suffix, value));
        }
        // An empty collection cannot exist (Redis deletes empty keys).
        if out.len == 0 || out.entries.is_empty() {
            return Err(PayloadError::BadFormat);
        }
    }
    if c.pos != c.end {
        return Err(PayloadError::BadFormat);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(chunk_shift: u8) -> ListShape {
        ListShape {
            head: -1,
            tail: 1,
            chunk_shift,
        }
    }

    fn sample() -> Bytes {
        let mut e = Encoder::collection(KeyType::List, 2, Some(shape(0)));
        e.entry(keys::SUB, b"\x00a", b"one");
        e.entry(keys::SUB, b"\x00b", b"two");
        e.finish()
    }

    #[test]
    fn round_trips() {
        let p = Encoder::string(b"hello").finish();
        let d = decode(&p).ok();
        assert_eq!(d.as_ref().map(|d| d.kind), Some(KeyType::String));
        assert_eq!(d.and_then(|d| d.value), Some(Bytes::from_static(b"hello")));
        let d = decode(&sample()).ok();
        assert_eq!(d.as_ref().map(|d| d.list), Some(Some(shape(0))));
        assert_eq!(d.map(|d| d.entries.len()), Some(2));
        // A packed list carries its chunk shift; one out of range is refused.
        for (chunk_shift, ok) in [
            (4, true),
            (MAX_CHUNK_SHIFT, true),
            (MAX_CHUNK_SHIFT + 1, false),
        ] {
            let mut e = Encoder::collection(KeyType::List, 2, Some(shape(chunk_shift)));
            e.entry(keys::SUB, b"\x00a", b"\x0e\x03one\x03two");
            let d = decode(&e.finish());
            assert_eq!(
                d.ok().map(|d| d.list),
                ok.then_some(Some(shape(chunk_shift)))
            );
        }
    }

    #[test]
    fn every_flipped_byte_and_every_truncation_is_rejected() {
        let p = sample();
        for i in 0..p.len() {
            let mut v = p.to_vec();
            v[i] ^= 0x41;
            assert!(decode(&Bytes::from(v)).is_err(), "flip at {i}");
        }
        for n in 0..p.len() {
            assert!(decode(&p.slice(..n)).is_err(), "truncated to {n}");
        }
    }

    #[test]
    fn valid_checksum_over_garbage_body_is_bad_format() {
        // A forged payload whose checksum is right but whose length field lies.
        let mut b = BytesMut::new();
        b.put_u8(FORMAT_VERSION);
        b.put_u8(0);
        b.put_u32_le(u32::MAX);
        b.put_u16_le(1);
        let crc = crc32fast::hash(&b);
        b.put_u32_le(crc);
        assert_eq!(decode(&b.freeze()), Err(PayloadError::BadFormat));
    }
}
