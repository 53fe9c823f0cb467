//! [`KeelAlloc`], the binary's global allocator: mimalloc, entered through its plain
//! `mi_malloc` family wherever that already gives the alignment asked for.
//!
//! Why not the `mimalloc` crate's `MiMalloc`: it passes every request to
//! `mi_malloc_aligned`. That is as fast as `mi_malloc` while the thread's page for the
//! size class has a free block, but when it has none (often here: a value or argument
//! allocated on one thread is freed on another, so pages run dry until their foreign
//! frees are collected) it takes mimalloc's generic aligned path before the generic
//! malloc path, about 80 instructions more per such allocation, and it may over-allocate
//! by `align - 1` bytes. Callgrind of SET -P 1 counted 2.5 such allocations per request.
//!
//! Every mimalloc block is at least 8-aligned (the smallest size class is one word and
//! all classes are multiples of it), so a request aligned to at most 8 needs nothing
//! more than `mi_malloc`; larger alignments keep the aligned entry points.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};

use libmimalloc_sys as mi;

/// The alignment every mimalloc block has.
const PLAIN_ALIGN: usize = 8;

/// mimalloc as the global allocator, with the fast entry points for ordinary alignments.
pub struct KeelAlloc;

/// The process's global allocator is [`KeelAlloc`] (see [`announce`]).
static IN_USE: AtomicBool = AtomicBool::new(false);

/// Notes that this process allocates through [`KeelAlloc`]: the binary, which installs
/// it, calls this first. A library cannot see which global allocator its host chose.
pub fn announce() {
    IN_USE.store(true, Ordering::Relaxed);
}

/// INFO's `mem_allocator`: "mimalloc" in the binary, "libc" in a host that kept the
/// system's allocator (an embedded server, the tests).
pub fn name() -> &'static str {
    if IN_USE.load(Ordering::Relaxed) {
        "mimalloc"
    } else {
        "libc"
    }
}

// SAFETY: every method forwards to the mimalloc function of the same contract: a block of
// at least the requested size and alignment (plain calls only where the alignment is at
// most `PLAIN_ALIGN`, which every mimalloc block has), null on failure, and `mi_free` /
// `mi_realloc*` accept any block from any of them.
unsafe impl GlobalAlloc for KeelAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= PLAIN_ALIGN {
            // SAFETY: see the impl's comment.
            unsafe { mi::mi_malloc(layout.size()).cast() }
        } else {
            // SAFETY: see the impl's comment.
            unsafe { mi::mi_malloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= PLAIN_ALIGN {
            // SAFETY: see the impl's comment.
            unsafe { mi::mi_zalloc(layout.size()).cast() }
        } else {
            // SAFETY: see the impl's comment.
            unsafe { mi::mi_zalloc_aligned(layout.size(), layout.align()).cast() }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, hence from mimalloc.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if layout.align() <= PLAIN_ALIGN {
            // SAFETY: see the impl's comment; `ptr` came from this allocator.
            unsafe { mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast() }
        } else {
            // SAFETY: see the impl's comment; `ptr` came from this allocator.
            unsafe { mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast() }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocates, writes, grows and frees blocks of every alignment up to 4 KiB and many
    /// sizes, checking each address's alignment and that realloc keeps the contents.
    #[test]
    fn blocks_have_the_alignment_asked_for_and_keep_contents_across_realloc() {
        let a = KeelAlloc;
        for align_log in 0..=12 {
            let align = 1usize << align_log;
            for size in [
                1usize, 7, 8, 9, 15, 16, 24, 40, 68, 80, 100, 1000, 5000, 70_000,
            ] {
                let Ok(layout) = Layout::from_size_align(size, align) else {
                    panic!("layout {size}/{align}");
                };
                // SAFETY: a non-zero-size layout; the block is written within its size,
                // reallocated with the layout it was allocated with, and freed once.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "alloc {size}/{align}");
                    std::ptr::write_bytes(p, 0xA5, size);
                    let q = a.realloc(p, layout, size * 3);
                    assert!(!q.is_null());
                    assert_eq!(q as usize % align, 0, "realloc {size}/{align}");
                    assert!(
                        (0..size).all(|i| *q.add(i) == 0xA5),
                        "contents {size}/{align}"
                    );
                    a.dealloc(q, Layout::from_size_align_unchecked(size * 3, align));
                    let z = a.alloc_zeroed(layout);
                    assert!(!z.is_null());
                    assert_eq!(z as usize % align, 0, "zeroed {size}/{align}");
                    assert!(
                        (0..size).all(|i| *z.add(i) == 0),
                        "zeroed contents {size}/{align}"
                    );
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
