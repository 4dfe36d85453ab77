//! Memory advice for large result buffers.

/// From this size on, a buffer is its own `mmap` in glibc's allocator (whose mmap threshold
/// never grows past 32 MiB on 64-bit systems), so advising it touches no other allocation's
/// pages and leaves no lasting split of the heap mapping behind.
#[cfg(any(target_os = "linux", target_os = "android"))]
const LARGE: usize = 32 << 20;

/// Asks for transparent huge pages on the whole 2 MiB pages inside the `len` bytes at `ptr`,
/// when they are many: filling a large result buffer then takes a page fault per 2 MiB rather
/// than per 4 KiB. Advice only; does nothing elsewhere than Linux or when the kernel declines.
pub(crate) fn advise_huge(ptr: *mut u8, len: usize) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if len >= LARGE {
        const HUGE: usize = 2 << 20;
        let start = (ptr as usize).next_multiple_of(HUGE);
        let end = (ptr as usize + len) / HUGE * HUGE;
        if end > start {
            // SAFETY: the range lies inside a live allocation owned by the caller, and
            // MADV_HUGEPAGE changes no contents, only how future page faults are served.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE) };
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (ptr, len);
}
