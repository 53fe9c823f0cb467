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
//!
//! Small allocations are recycled per thread ([`spare`]): a write replaces values, so
//! the allocation a batch frees is the size the next batch asks for, and it is still in
//! the cache, where the allocator's own free lists hand out blocks freed long ago.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::RefCell;
use std::ptr::NonNull;

use bytes::Bytes;

use crate::mvcc::IndexValue;

/// Length header of a value shorter than `u32::MAX` bytes.
const SHORT: usize = 4;
/// Length header of a longer value: the `u32::MAX` marker, then the length as a `u64`.
const LONG: usize = SHORT + 8;

/// The header of every empty value: an empty [`Val`] points here and owns nothing. Set
/// members and sorted-set score keys store nothing but their keys, so writing one skips
/// the allocator, and deleting one reads this line, which stays in the cache, instead of
/// the cold block it would have had (ZADD's delete of the old score key missed there:
/// a quarter of the store's write samples).
static EMPTY: [u8; SHORT] = [0; SHORT];

/// An owned, immutable byte string in one allocation addressed by a thin pointer (none
/// for the empty string).
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
        if len == 0 {
            // Read through, never written: a `Val` is immutable once made.
            return Val(NonNull::from(&EMPTY).cast());
        }
        let header = if len < u32::MAX as usize { SHORT } else { LONG };
        let layout = Self::layout(header, len);
        let ptr = match spare::take(layout.size()) {
            Some(p) => p,
            // SAFETY: the layout has a non-zero size (the header).
            None => match NonNull::new(unsafe { alloc(layout) }) {
                Some(p) => p,
                None => handle_alloc_error(layout),
            },
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
        block_layout(header + len)
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
        if std::ptr::eq(self.0.as_ptr().cast_const(), EMPTY.as_ptr()) {
            return;
        }
        let (header, len) = self.header_and_len();
        let layout = Self::layout(header, len);
        if !spare::give(self.0, layout.size()) {
            // SAFETY: allocated in `new` with this very layout.
            unsafe { dealloc(self.0.as_ptr(), layout) }
        }
    }
}

/// The layout of a value's allocation of `size` bytes (header and bytes), the one rule
/// both making and releasing a block follow.
fn block_layout(size: usize) -> Layout {
    // A length that fits in memory never overflows `isize` with a 12-byte header (the
    // bytes were already in memory once), so this cannot fail in practice; treat it
    // like a failed allocation if it ever does.
    Layout::from_size_align(size, 1).unwrap_or_else(|_| handle_alloc_error(Layout::new::<u8>()))
}

/// Freed value allocations kept for reuse, per thread and per exact size (so that each
/// is released with the layout it was made with).
mod spare {
    use super::*;

    /// Largest allocation (header and bytes) kept: the records of small strings, hash
    /// fields and set members, where the allocator's miss on a cold block showed (INCR
    /// -P 16: `_mi_theap_malloc_zero` 6.9% of samples, almost all under `Val::new`).
    pub(super) const MAX_SIZE: usize = 256;
    /// Bytes a thread keeps at most: a write round's worth of replaced values.
    const MAX_BYTES: usize = 256 << 10;

    /// One thread's kept blocks.
    struct Spare {
        /// Free blocks by size, most recently freed last.
        stacks: Vec<Vec<NonNull<u8>>>,
        bytes: usize,
    }

    impl Spare {
        /// Releases the blocks of the size holding the most bytes. Called when a size
        /// finds none of its own while the quota is full: the workload has moved on to
        /// other sizes, and the quota would otherwise stay filled with the old ones.
        fn release_largest(&mut self) {
            let Some((size, _)) = self
                .stacks
                .iter()
                .enumerate()
                .max_by_key(|(size, stack)| size * stack.len())
            else {
                return;
            };
            let stack = std::mem::take(&mut self.stacks[size]);
            self.bytes -= size * stack.len();
            release(size, &stack);
        }
    }

    /// Returns `blocks`, each of `size` bytes, to the allocator.
    fn release(size: usize, blocks: &[NonNull<u8>]) {
        let layout = block_layout(size);
        for p in blocks {
            // SAFETY: every kept block of `size` bytes was allocated with this layout.
            unsafe { dealloc(p.as_ptr(), layout) }
        }
    }

    impl Drop for Spare {
        fn drop(&mut self) {
            for (size, stack) in self.stacks.iter().enumerate() {
                release(size, stack);
            }
        }
    }

    thread_local! {
        static SPARE: RefCell<Spare> = const {
            RefCell::new(Spare { stacks: Vec::new(), bytes: 0 })
        };
    }

    /// A kept block of `size` bytes, if this thread has one.
    pub(super) fn take(size: usize) -> Option<NonNull<u8>> {
        if size > MAX_SIZE {
            return None;
        }
        SPARE
            .try_with(|s| {
                let mut s = s.try_borrow_mut().ok()?;
                if s.stacks.is_empty() {
                    // The first value this thread makes: from now on it keeps blocks.
                    // A thread that only frees values (the version GC) never does.
                    s.stacks.resize_with(MAX_SIZE + 1, Vec::new);
                }
                match s.stacks[size].pop() {
                    Some(p) => {
                        s.bytes -= size;
                        Some(p)
                    }
                    None => {
                        if s.bytes + MAX_SIZE > MAX_BYTES {
                            s.release_largest();
                        }
                        None
                    }
                }
            })
            .ok()
            .flatten()
    }

    /// Keeps the freed block `p` of `size` bytes; false when it must be released (too
    /// large, the thread's quota full, a thread that makes no values, or one ending).
    pub(super) fn give(p: NonNull<u8>, size: usize) -> bool {
        if size > MAX_SIZE {
            return false;
        }
        SPARE
            .try_with(|s| {
                let Ok(mut s) = s.try_borrow_mut() else {
                    return false;
                };
                if s.bytes + size > MAX_BYTES {
                    return false;
                }
                let Some(stack) = s.stacks.get_mut(size) else {
                    return false;
                };
                stack.push(p);
                s.bytes += size;
                true
            })
            .unwrap_or(false)
    }

    /// Bytes this thread keeps (for tests).
    #[cfg(test)]
    pub(super) fn kept() -> usize {
        SPARE.with(|s| s.borrow().bytes)
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
    fn empty_values_share_one_header_and_free_nothing() {
        std::thread::spawn(|| {
            let a = Val::new(&[]);
            let b = Val::new(b"");
            assert_eq!(a.0, b.0, "one header for every empty value");
            assert!(a.as_slice().is_empty());
            assert_eq!(a.weight(), 0);
            let c = a.clone();
            assert_eq!(c.0, a.0);
            drop(a);
            drop(b);
            assert_eq!(spare::kept(), 0, "no block was freed");
            assert!(
                c.as_slice().is_empty(),
                "the shared header outlives its holders"
            );
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn a_freed_block_goes_to_the_next_value_of_its_size() {
        // A fresh thread: its pool starts empty whatever other tests did.
        std::thread::spawn(|| {
            let a = Val::new(&[1u8; 60]);
            let at = a.0;
            drop(a);
            assert_eq!(spare::kept(), 64, "header and bytes kept");
            let other = Val::new(&[2u8; 61]);
            assert_ne!(other.0, at, "another size does not take it");
            let b = Val::new(&[3u8; 60]);
            assert_eq!(b.0, at, "the same size takes the freed block");
            assert_eq!(b.as_slice(), &[3u8; 60][..], "and writes its own bytes");
            assert_eq!(spare::kept(), 0);
            drop(Val::new(&[0u8; spare::MAX_SIZE]));
            assert_eq!(spare::kept(), 0, "larger blocks go back to the allocator");
            drop(other);
            drop(b);
            assert_eq!(spare::kept(), 65 + 64);
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn a_thread_keeps_a_bounded_number_of_bytes() {
        std::thread::spawn(|| {
            let vals: Vec<Val> = (0..20_000).map(|_| Val::new(&[7u8; 96])).collect();
            drop(vals);
            let kept = spare::kept();
            assert!(kept > 0 && kept <= 256 << 10, "kept {kept}");
            assert_eq!(kept % 100, 0, "whole blocks only");
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn a_size_in_demand_frees_the_quota_of_a_stale_one() {
        std::thread::spawn(|| {
            drop(
                (0..20_000)
                    .map(|_| Val::new(&[7u8; 96]))
                    .collect::<Vec<Val>>(),
            );
            let full = spare::kept();
            assert!(full + spare::MAX_SIZE > 256 << 10, "quota full: {full}");
            // The next size finds none of its own: the stale size's blocks go.
            drop(Val::new(&[8u8; 40]));
            assert_eq!(spare::kept(), 44, "only the new size's block is kept");
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn a_thread_that_makes_no_values_keeps_none() {
        let vals: Vec<Val> = (0..100).map(|i| Val::new(&[i as u8; 30])).collect();
        std::thread::spawn(move || {
            drop(vals);
            assert_eq!(spare::kept(), 0, "a freeing-only thread holds nothing back");
        })
        .join()
        .expect("thread");
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
