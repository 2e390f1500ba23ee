//! Memory hints for big per-core tables: prefetch and transparent huge
//! pages. Neither changes what memory holds, so both are safe to offer;
//! they live here because the calls underneath need `unsafe`.

/// Asks the CPU to bring the cache line holding `value` into L1 ahead of
/// use, as DPDK's `rte_prefetch0` does. A hint only: it never faults.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: PREFETCHT0 is a hint that cannot fault or write, and SSE is
        // part of the x86_64 baseline; the pointer comes from a live reference.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((value as *const T).cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = value;
    }
}

/// Asks the kernel to back the whole allocation of `v` (its capacity, used
/// or not) with transparent huge pages where it can: a table of tens of
/// megabytes read at random then needs one TLB entry per 2 MiB instead of
/// one per 4 KiB. Call it before the memory is first written, so the pages
/// are huge when they fault in. Returns whether the kernel accepted the
/// advice (it refuses where THP is off; the table works either way).
pub fn advise_huge_pages<T>(v: &mut Vec<T>) -> bool {
    const HUGE: usize = 2 << 20;
    let bytes = v.capacity() * core::mem::size_of::<T>();
    let start = v.as_mut_ptr() as usize;
    // Only whole 2 MiB pages inside the allocation can become huge.
    let first = start.next_multiple_of(HUGE);
    let end = (start + bytes) & !(HUGE - 1);
    if end <= first {
        return false;
    }
    // SAFETY: [first, end) lies inside the allocation `v` owns (page-aligned
    // sub-range of its capacity); MADV_HUGEPAGE changes how the kernel backs
    // those pages, never their contents, so no Rust-visible memory changes.
    let rc = unsafe { libc::madvise(first as *mut libc::c_void, end - first, libc::MADV_HUGEPAGE) };
    rc == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_on_a_big_vector_keeps_its_contents() {
        let mut v: Vec<u64> = Vec::with_capacity(4 << 20);
        let _accepted = advise_huge_pages(&mut v);
        v.resize(4 << 20, 7);
        prefetch(&v[12345]);
        assert!(v.iter().all(|&x| x == 7));
    }

    #[test]
    fn a_small_vector_gets_no_advice() {
        let mut v: Vec<u8> = Vec::with_capacity(100);
        assert!(!advise_huge_pages(&mut v));
    }
}
