//! CPU cache hints. A lookup in a large table costs a few cache misses that the CPU pays
//! one after another; a caller holding several keys can ask for their lines first and
//! have the misses overlap.

/// Keys to hand to [`crate::Storage::prefetch`] at a time: about as many misses as a
/// core keeps in flight; more only evict each other's lines sooner.
pub const PREFETCH_WINDOW: usize = 16;

/// Asks the CPU to bring the cache line holding `p` into its caches. A hint: it reads
/// nothing a program can observe and never faults, whatever the address.
#[inline(always)]
pub fn prefetch_line<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 has no architectural effect and does not fault on any address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
