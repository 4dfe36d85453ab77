//! [`HugePages`]: a global allocator wrapper that puts large allocations in transparent huge
//! pages, as numpy does for its large arrays.

use std::alloc::{GlobalAlloc, Layout};

/// A global allocator that gives large allocations (at least [`HugePages::THRESHOLD`] bytes)
/// 2 MiB alignment and asks the kernel to back them with transparent huge pages
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
/// The advice is honoured on Linux when transparent huge pages are `always` or `madvise` in
/// `/sys/kernel/mm/transparent_hugepage/enabled` (elsewhere, or when the kernel declines,
/// large allocations are only aligned). Costs: a large allocation may use up to 2 MiB more
/// address space (not memory: untouched pages cost nothing), memory is committed in 2 MiB
/// steps, a large zeroed allocation (`vec![0.0; n]`) is zeroed by writing it rather than by
/// the kernel's fresh pages, and growing a large allocation copies it (the wrapped allocator
/// cannot move an over-aligned block in place).
#[derive(Debug, Default, Clone, Copy)]
pub struct HugePages<A> {
    inner: A,
}

/// The size of a transparent huge page on x86-64 and of the alignment given to large
/// allocations.
const HUGE: usize = 2 << 20;

impl<A> HugePages<A> {
    /// Allocations of at least this many bytes (2 MiB, one huge page) are 2 MiB aligned and
    /// advised to use huge pages.
    pub const THRESHOLD: usize = HUGE;

    /// Wraps `inner`, which serves every allocation (large ones with a larger alignment).
    pub const fn new(inner: A) -> HugePages<A> {
        HugePages { inner }
    }

    /// The layout asked of the wrapped allocator for a block of `layout`: the same, or for a
    /// large block at least 2 MiB aligned. `None` when that layout cannot exist (a size within
    /// 2 MiB of `isize::MAX`): such a block is never allocated. A function of `layout` alone,
    /// so every call about one block (allocation, reallocation, deallocation) agrees.
    fn inner_layout(layout: Layout) -> Option<Layout> {
        if layout.size() < HUGE {
            return Some(layout);
        }
        Layout::from_size_align(layout.size(), layout.align().max(HUGE)).ok()
    }
}

/// Advises huge pages for the whole 2 MiB pages of the `len` bytes at `ptr` (2 MiB aligned).
fn advise(ptr: *mut u8, len: usize) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if !ptr.is_null() && len >= HUGE {
        // SAFETY: `ptr` starts a live block of at least `len` bytes that the caller just got
        // from the allocator; the range (whole 2 MiB pages, rounded down) lies inside it.
        // MADV_HUGEPAGE changes no contents, only how later page faults are served.
        unsafe { libc::madvise(ptr.cast(), len / HUGE * HUGE, libc::MADV_HUGEPAGE) };
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (ptr, len);
}

// SAFETY: every block comes from the wrapped allocator `A` and goes back to it with the layout
// it was allocated with: `inner_layout` maps the caller's layout to the wrapped allocator's
// as a pure function of the layout, and `GlobalAlloc`'s contract makes the caller pass the
// allocation's own layout (for `realloc`, the old one; afterwards, the new size with the same
// alignment) to every later call about the block. The alignment given is at least the
// caller's (`inner_layout` only raises it), the size exactly the caller's, so the returned
// block fits `layout`. `madvise(MADV_HUGEPAGE)` changes no contents. No method unwinds.
unsafe impl<A: GlobalAlloc> GlobalAlloc for HugePages<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(inner) = Self::inner_layout(layout) else { return std::ptr::null_mut() };
        // SAFETY: `inner` has the caller's non-zero size (`GlobalAlloc::alloc`'s contract)
        // and a valid alignment (a `Layout`).
        let ptr = unsafe { self.inner.alloc(inner) };
        advise(ptr, layout.size());
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some(inner) = Self::inner_layout(layout) else { return std::ptr::null_mut() };
        // SAFETY: as in `alloc`.
        let ptr = unsafe { self.inner.alloc_zeroed(inner) };
        advise(ptr, layout.size());
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // `None` cannot occur: a block of such a layout was never allocated (`alloc` returns
        // null for it), so `ptr` could not have come from it.
        if let Some(inner) = Self::inner_layout(layout) {
            // SAFETY: `ptr` was allocated by `self` with `layout` (the caller's contract),
            // hence by the wrapped allocator with `inner`.
            unsafe { self.inner.dealloc(ptr, inner) };
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `GlobalAlloc::realloc`'s contract: `new_size` is non-zero and, rounded up to
        // `layout.align()`, does not overflow `isize`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let (Some(old_inner), Some(new_inner)) =
            (Self::inner_layout(layout), Self::inner_layout(new_layout))
        else {
            // The old layout always maps (the block exists); the new one may be too large.
            return std::ptr::null_mut();
        };
        if old_inner.align() == new_inner.align() {
            // Both small, or both large: the wrapped allocator resizes the block in its own
            // alignment, which is what `inner_layout` gives the new size too.
            // SAFETY: `ptr` was allocated by the wrapped allocator with `old_inner` (see
            // `dealloc`); `new_size` is non-zero and fits `isize` rounded up to
            // `old_inner.align()` (`new_inner` exists with that alignment).
            let new = unsafe { self.inner.realloc(ptr, old_inner, new_size) };
            if new_size > layout.size() {
                advise(new, new_size);
            }
            return new;
        }
        // Across the threshold the alignment changes: a new block, the contents copied.
        // SAFETY: `new_layout` has a non-zero size.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least the smaller size long;
            // then the old block goes back with the layout it was allocated with.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_layouts_get_huge_alignment_small_ones_stay() {
        let small = Layout::from_size_align(HUGE - 1, 8).unwrap();
        assert_eq!(HugePages::<()>::inner_layout(small), Some(small));
        let large = Layout::from_size_align(HUGE, 8).unwrap();
        assert_eq!(HugePages::<()>::inner_layout(large).unwrap().align(), HUGE);
        let aligned = Layout::from_size_align(HUGE, 4 * HUGE).unwrap();
        assert_eq!(HugePages::<()>::inner_layout(aligned).unwrap().align(), 4 * HUGE);
        let too_big = Layout::from_size_align(isize::MAX as usize - 8, 8).unwrap();
        assert_eq!(HugePages::<()>::inner_layout(too_big), None);
    }
}
