//! [`Val`], an immutable value in one exact-size allocation (a 4-byte length, then the
//! bytes) behind an 8-byte pointer: how the memory engine holds its values and the
//! Bitcask value cache its cached ones.
//!
//! Why not `Bytes`: a `Bytes` handle is 32 bytes, and the first clone of a `Bytes` made
//! from a vector allocates a 32-byte shared header that stays for the value's life, so
//! every key that was once read (or scanned by a snapshot) grew by 32 bytes. Reads copy
//! a `Val` out instead: a 64-byte value costs about as much to copy as two atomic
//! reference-count updates on a cache line other cores read, and a copy leaves nothing
//! shared behind. The length sits on the value's first cache line, so one prefetch of
//! the pointer brings both.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

use bytes::Bytes;

use crate::mvcc::IndexValue;

/// Length header of a value shorter than `u32::MAX` bytes.
const SHORT: usize = 4;
/// Length header of a longer value: the `u32::MAX` marker, then the length as a `u64`.
const LONG: usize = SHORT + 8;

/// An owned, immutable byte string in one allocation addressed by a thin pointer.
pub struct Val(NonNull<u8>);

// SAFETY: a `Val` owns its allocation exclusively and never mutates it after creation,
// like a `Box<[u8]>`.
unsafe impl Send for Val {}
// SAFETY: shared access only reads immutable bytes.
unsafe impl Sync for Val {}

impl Val {
    /// A copy of `bytes`.
    pub fn new(bytes: &[u8]) -> Val {
        let len = bytes.len();
        let header = if len < u32::MAX as usize { SHORT } else { LONG };
        let layout = Self::layout(header, len);
        // SAFETY: the layout has a non-zero size (the header).
        let ptr = unsafe { alloc(layout) };
        let Some(ptr) = NonNull::new(ptr) else {
            handle_alloc_error(layout)
        };
        // SAFETY: the allocation holds `header + len` bytes; the header is written
        // unaligned and the source does not overlap a fresh allocation.
        unsafe {
            if header == SHORT {
                ptr.as_ptr()
                    .cast::<[u8; 4]>()
                    .write((len as u32).to_le_bytes());
            } else {
                ptr.as_ptr().cast::<[u8; 4]>().write(u32::MAX.to_le_bytes());
                ptr.as_ptr()
                    .add(SHORT)
                    .cast::<[u8; 8]>()
                    .write((len as u64).to_le_bytes());
            }
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), ptr.as_ptr().add(header), len);
        }
        Val(ptr)
    }

    fn layout(header: usize, len: usize) -> Layout {
        // A length that fits in memory never overflows `isize` with a 12-byte header
        // (the bytes were already in memory once), so this cannot fail in practice;
        // treat it like a failed allocation if it ever does.
        Layout::from_size_align(header + len, 1)
            .unwrap_or_else(|_| handle_alloc_error(Layout::new::<u8>()))
    }

    /// The header size and the value's length.
    fn header_and_len(&self) -> (usize, usize) {
        // SAFETY: every `Val` starts with at least the 4-byte header, and with the
        // 8-byte length after it when the marker says so.
        unsafe {
            let short = u32::from_le_bytes(self.0.as_ptr().cast::<[u8; 4]>().read());
            if short != u32::MAX {
                (SHORT, short as usize)
            } else {
                let long = self.0.as_ptr().add(SHORT).cast::<[u8; 8]>().read();
                (LONG, u64::from_le_bytes(long) as usize)
            }
        }
    }

    /// The value's bytes.
    pub fn as_slice(&self) -> &[u8] {
        let (header, len) = self.header_and_len();
        // SAFETY: `len` bytes follow the header, written once in `new`.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(header), len) }
    }
}

impl Drop for Val {
    fn drop(&mut self) {
        let (header, len) = self.header_and_len();
        // SAFETY: allocated in `new` with this very layout.
        unsafe { dealloc(self.0.as_ptr(), Self::layout(header, len)) }
    }
}

impl Clone for Val {
    fn clone(&self) -> Val {
        Val::new(self.as_slice())
    }
}

impl AsRef<[u8]> for Val {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl PartialEq for Val {
    fn eq(&self, other: &Val) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl std::fmt::Debug for Val {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Val({:?})", Bytes::copy_from_slice(self.as_slice()))
    }
}

impl IndexValue for Val {
    fn weight(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn prefetch(&self) {
        crate::cache_hint::prefetch_line(self.0.as_ptr());
    }
}

// The entry holds versions of `(seq, Option<Val>)`: the pointer's niche keeps that at
// 16 bytes.
const _: () = assert!(std::mem::size_of::<Option<Val>>() == 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_its_bytes() {
        for len in [0usize, 1, 3, 4, 63, 64, 74, 1000, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let v = Val::new(&data);
            assert_eq!(v.as_slice(), &data[..], "len {len}");
            assert_eq!(v.as_ref(), &data[..], "readers copy out through AsRef");
            assert_eq!(v.weight(), len as u64);
            let c = v.clone();
            drop(v);
            assert_eq!(c.as_slice(), &data[..], "a clone outlives its source");
        }
    }

    #[test]
    fn moves_across_threads() {
        let v = Val::new(b"across");
        let got = std::thread::spawn(move || Bytes::copy_from_slice(v.as_slice()))
            .join()
            .expect("thread");
        assert_eq!(got, Bytes::from_static(b"across"));
    }
}
