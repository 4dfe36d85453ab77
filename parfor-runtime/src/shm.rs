//! Shared memory: `MAP_SHARED` mappings, which a process and the worker processes it forks
//! see alike (a write in one is visible in the others), unlike ordinary copy-on-write memory.

use nix::sys::mman::{MapFlags, MmapAdvise, ProtFlags, madvise, mmap, mmap_anonymous, munmap};
use std::ffi::c_void;
use std::fs::File;
use std::io;
use std::num::NonZeroUsize;
use std::ptr::NonNull;

/// Transparent huge pages are worth asking for from this size on (one huge page on x86-64).
const HUGE: usize = 2 << 20;

/// One `MAP_SHARED` mapping, unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<c_void>,
    /// The length asked for (the mapping itself is at least one byte long).
    len: usize,
}

// SAFETY: a mapping is plain memory owned by this value; whoever reads or writes through
// `ptr()` synchronizes those accesses (atomics, disjoint ranges, or a pipe hand-off).
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` only hands out the raw pointer.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `len` zeroed bytes of anonymous shared memory, read-write.
    pub(crate) fn anonymous(len: usize) -> io::Result<Mapping> {
        let size = NonZeroUsize::new(len.max(1)).unwrap_or(NonZeroUsize::MIN);
        // SAFETY: a fresh mapping at an address the kernel picks aliases no existing memory.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }?;
        let map = Mapping { ptr, len };
        map.advise_huge();
        Ok(map)
    }

    /// The first `len` bytes of `file`, shared with the file (writes reach it), read-write
    /// when `writable` (the file must then be open for writing), else read-only. The file
    /// must be at least `len` bytes long.
    pub(crate) fn file(file: &File, len: usize, writable: bool) -> io::Result<Mapping> {
        let size = NonZeroUsize::new(len.max(1)).unwrap_or(NonZeroUsize::MIN);
        let prot = if writable {
            ProtFlags::PROT_READ | ProtFlags::PROT_WRITE
        } else {
            ProtFlags::PROT_READ
        };
        // SAFETY: a fresh mapping at an address the kernel picks aliases no memory of this
        // process. Whether the file may change or shrink under the mapping is the contract of
        // the (unsafe) constructors of the mapping's users: see `SharedVec::create`.
        let ptr = unsafe { mmap(None, size, prot, MapFlags::MAP_SHARED, file, 0) }?;
        let map = Mapping { ptr, len };
        map.advise_huge();
        Ok(map)
    }

    /// Asks for transparent huge pages on large mappings: fewer page faults and TLB misses
    /// when workers fill a big buffer. Only advice: the kernel may decline (THP disabled,
    /// shared memory THP off in `/sys/kernel/mm/transparent_hugepage/shmem_enabled`), and
    /// the mapping works the same either way.
    fn advise_huge(&self) {
        if self.len >= HUGE {
            #[cfg(any(target_os = "linux", target_os = "android"))]
            // SAFETY: the range is exactly this mapping; MADV_HUGEPAGE changes no contents.
            let _ = unsafe { madvise(self.ptr, self.len, MmapAdvise::MADV_HUGEPAGE) };
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let _ = (madvise, MmapAdvise::MADV_NORMAL);
    }

    /// The first byte.
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr().cast()
    }

    /// The length asked for.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr` and the length are those of the mapping this value owns, and no
        // reference into it outlives the value (its users borrow it).
        let _ = unsafe { munmap(self.ptr, self.len.max(1)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_mapping_is_zeroed_and_writable() {
        let m = Mapping::anonymous(3 << 20).unwrap();
        assert_eq!(m.len(), 3 << 20);
        // SAFETY: in bounds of a live, zero-filled, exclusively owned mapping.
        unsafe {
            assert_eq!(*m.ptr().add(12345), 0);
            *m.ptr().add(12345) = 7;
            assert_eq!(*m.ptr().add(12345), 7);
        }
        let empty = Mapping::anonymous(0).unwrap();
        assert_eq!(empty.len(), 0);
    }
}
