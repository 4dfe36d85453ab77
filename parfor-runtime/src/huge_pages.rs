//! [`HugePages`]: a global allocator wrapper that puts large allocations in transparent huge
//! pages, as numpy does for its large arrays.

use std::alloc::{GlobalAlloc, Layout};

/// A global allocator that puts large allocations (at least [`HugePages::THRESHOLD`] bytes)
/// in memory of their own, 2 MiB aligned and advised to use transparent huge pages
/// (`madvise(MADV_HUGEPAGE)`); smaller ones go to the wrapped allocator unchanged.
///
/// Why: the fork engine forks worker processes that see the caller's memory copy-on-write.
/// `fork()` copies one page-table entry per 4 KiB page of the parent, and each worker tears
/// them down again when it ends: for a 1 GiB input that is 262,144 entries per worker (tens
/// of milliseconds each way). In 2 MiB pages the same input has 512. numpy asks for huge
/// pages on its large arrays; a Rust program opts in with this allocator:
///
/// ```
/// #[global_allocator]
/// static ALLOC: parfor::HugePages<std::alloc::System> = parfor::HugePages::new(std::alloc::System);
///
/// fn main() {
///     let images: Vec<Vec<f64>> = (0..4).map(|k| vec![k as f64; 1 << 20]).collect(); // 8 MiB each
///     let means = parfor::parmap!(|img: &Vec<f64>| img[0], images; engine = "fork");
///     assert_eq!(means, [0.0, 1.0, 2.0, 3.0]);
/// }
/// ```
///
/// On Linux, a large allocation is an anonymous private mapping of its own (zero filled by
/// the kernel, so `vec![0.0; n]` touches nothing until written, and freed with `munmap`),
/// and growing it moves its pages with `mremap` instead of copying them (the grown block may
/// then start off a 2 MiB boundary: its whole 2 MiB pages still get the advice). The advice is
/// honoured when transparent huge pages are `always` or `madvise` in
/// `/sys/kernel/mm/transparent_hugepage/enabled`; when the kernel declines, the memory works
/// the same in 4 KiB pages. Costs: memory is committed 2 MiB at a time, and every large
/// allocation is a system call and fresh pages (an allocator's free lists would reuse warm
/// memory). Elsewhere than Linux, every allocation goes to the wrapped allocator.
#[derive(Debug, Default, Clone, Copy)]
pub struct HugePages<A> {
    inner: A,
}

/// The size of a transparent huge page on x86-64, and the alignment of large allocations.
const HUGE: usize = 2 << 20;

impl<A> HugePages<A> {
    /// Allocations of at least this many bytes (2 MiB, one huge page) get memory of their
    /// own, 2 MiB aligned and advised to use huge pages.
    pub const THRESHOLD: usize = HUGE;

    /// Wraps `inner`, which serves the allocations below [`HugePages::THRESHOLD`] (and all of
    /// them elsewhere than Linux).
    pub const fn new(inner: A) -> HugePages<A> {
        HugePages { inner }
    }
}

/// Whether a block of `layout` is a mapping of its own: a function of the layout alone, so
/// every call about one block (allocation, reallocation, deallocation) agrees.
fn large(layout: Layout) -> bool {
    cfg!(any(target_os = "linux", target_os = "android")) && layout.size() >= HUGE
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod map {
    use super::HUGE;

    fn page() -> usize {
        // SAFETY: `sysconf` only reads a system value.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(p).ok().filter(|p| p.is_power_of_two()).unwrap_or(4096)
    }

    /// The length of the mapping of a block of `size` bytes: whole pages.
    pub(super) fn length(size: usize) -> Option<usize> {
        size.checked_next_multiple_of(page())
    }

    /// Advises huge pages for the mapping of `len` bytes (whole pages) at `ptr`: all of it,
    /// so that it stays one mapping for the kernel (which `mremap` needs); the kernel uses
    /// huge pages for the 2 MiB pages inside it.
    fn advise(ptr: *mut u8, len: usize) {
        // SAFETY: the range is exactly the block's own mapping; MADV_HUGEPAGE changes no
        // contents, only how later page faults are served.
        unsafe { libc::madvise(ptr.cast(), len, libc::MADV_HUGEPAGE) };
    }

    /// A fresh zero-filled mapping for `size` bytes aligned to `align` (at least 2 MiB), or
    /// null.
    pub(super) fn alloc(size: usize, align: usize) -> *mut u8 {
        let align = align.max(HUGE);
        let Some(len) = length(size) else { return std::ptr::null_mut() };
        let Some(total) = len.checked_add(align) else { return std::ptr::null_mut() };
        // SAFETY: a new private mapping at an address the kernel picks aliases nothing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let base = p as usize;
        let start = base.next_multiple_of(align);
        // SAFETY: the unmapped ranges are the parts of the new mapping before and after the
        // aligned block (page aligned: `start` and `len` are), which nothing uses.
        unsafe {
            if start > base {
                libc::munmap(p, start - base);
            }
            if base + total > start + len {
                libc::munmap((start + len) as *mut libc::c_void, base + total - start - len);
            }
        }
        advise(start as *mut u8, len);
        start as *mut u8
    }

    /// Unmaps the block of `size` bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` was returned by [`alloc`] (or [`realloc`]) for `size` bytes, and is not used
    /// afterwards.
    pub(super) unsafe fn dealloc(ptr: *mut u8, size: usize) {
        if let Some(len) = length(size) {
            // SAFETY: the block's own mapping (the caller's contract), exactly.
            unsafe { libc::munmap(ptr.cast(), len) };
        }
    }

    /// Resizes the block of `old` bytes at `ptr` to `new` bytes (both large), moving its
    /// pages if need be; its alignment stays at least `align`. Null on failure (the old block
    /// then stays).
    ///
    /// # Safety
    /// As for [`dealloc`], with `old` the block's size.
    pub(super) unsafe fn realloc(ptr: *mut u8, old: usize, new: usize, align: usize) -> *mut u8 {
        let (Some(old_len), Some(new_len)) = (length(old), length(new)) else {
            return std::ptr::null_mut();
        };
        if old_len == new_len {
            return ptr;
        }
        if align <= page() {
            // SAFETY: resizes (and may move) the block's own mapping; page alignment, which
            // any address `mremap` returns has, is at least `align`.
            let p = unsafe { libc::mremap(ptr.cast(), old_len, new_len, libc::MREMAP_MAYMOVE) };
            if p == libc::MAP_FAILED {
                return std::ptr::null_mut();
            }
            advise(p.cast(), new_len);
            return p.cast();
        }
        // An alignment above the page size: a new block, the contents copied.
        let p = alloc(new, align);
        if !p.is_null() {
            // SAFETY: two live, distinct blocks of at least the smaller size; the old one is
            // unmapped afterwards, as the caller allows.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, p, old.min(new));
                dealloc(ptr, old);
            }
        }
        p
    }
}

// SAFETY: a block is either the wrapped allocator's, allocated and freed with the caller's
// layout, or (on Linux) a mapping of its own, and `large` tells which from the layout alone;
// `GlobalAlloc`'s contract makes the caller pass the block's own layout (for `realloc`, the
// old one; afterwards the new size with the same alignment) to every later call about it, so
// a block always goes back where it came from. Mappings are page aligned and at least 2 MiB
// aligned when made (`mremap` keeps page alignment; larger alignments are copied instead),
// hence aligned for the layout, and at least its size long; the kernel zero fills them, which
// `alloc_zeroed` promises. `madvise(MADV_HUGEPAGE)` changes no contents. No method unwinds.
unsafe impl<A: GlobalAlloc> GlobalAlloc for HugePages<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if large(layout) {
            return map::alloc(layout.size(), layout.align());
        }
        // SAFETY: `layout` has a non-zero size (`GlobalAlloc::alloc`'s contract).
        unsafe { self.inner.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if large(layout) {
            // Fresh anonymous memory reads as zeros.
            return map::alloc(layout.size(), layout.align());
        }
        // SAFETY: as in `alloc`.
        unsafe { self.inner.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if large(layout) {
            // SAFETY: a large block is a mapping made by `map::alloc`/`map::realloc` for
            // `layout.size()` bytes (see the impl's SAFETY), given back once.
            return unsafe { map::dealloc(ptr, layout.size()) };
        }
        // SAFETY: a small block comes from the wrapped allocator with this layout.
        unsafe { self.inner.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `GlobalAlloc::realloc`'s contract: `new_size` is non-zero and, rounded up to
        // `layout.align()`, does not overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (large(layout), large(new_layout)) {
            (false, false) => {
                // SAFETY: a small block of the wrapped allocator, resized by it.
                unsafe { self.inner.realloc(ptr, layout, new_size) }
            }
            #[cfg(any(target_os = "linux", target_os = "android"))]
            (true, true) => {
                // SAFETY: a large block of `layout.size()` bytes, a mapping of its own.
                unsafe { map::realloc(ptr, layout.size(), new_size, layout.align()) }
            }
            _ => {
                // Across the threshold: a new block, the contents copied, the old one freed.
                // SAFETY: `new_layout` has a non-zero size.
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: two live, distinct blocks of at least the smaller size; the old
                    // one goes back with the layout it was allocated with.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;

    #[test]
    fn large_is_a_function_of_the_size() {
        assert!(!large(Layout::from_size_align(HUGE - 1, 8).unwrap()));
        assert!(large(Layout::from_size_align(HUGE, 8).unwrap()));
        assert!(large(Layout::from_size_align(HUGE, 4 * HUGE).unwrap()));
    }

    #[test]
    fn mappings_are_aligned_zeroed_and_resizable() {
        for align in [8, HUGE, 4 * HUGE] {
            let p = map::alloc(3 * HUGE + 5, align);
            assert!(!p.is_null() && (p as usize).is_multiple_of(align.max(HUGE)));
            // SAFETY: the block is 3 * HUGE + 5 bytes long, zero filled, ours.
            unsafe {
                assert_eq!(*p.add(3 * HUGE + 4), 0);
                *p.add(HUGE + 7) = 42;
                let q = map::realloc(p, 3 * HUGE + 5, 9 * HUGE, align);
                assert!(!q.is_null() && (q as usize).is_multiple_of(align.max(4096)));
                assert_eq!(*q.add(HUGE + 7), 42);
                let r = map::realloc(q, 9 * HUGE, 2 * HUGE, align);
                assert_eq!(*r.add(HUGE + 7), 42);
                map::dealloc(r, 2 * HUGE);
            }
        }
    }
}
