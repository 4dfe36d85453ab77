//! [`SharedVec`]: a buffer in shared memory, which fork workers write in place.

use crate::shm::Mapping;
use crate::wire::Pod;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fixed-length buffer of plain-old-data values in `MAP_SHARED` memory (Unix).
///
/// Ordinary memory is copy-on-write across `fork()`: what a fork worker writes stays in the
/// worker, so the fork engine ships sliced outputs back to the parent element by element.
/// A `SharedVec` is the same physical memory in the parent and its workers: a worker's writes
/// are seen by the parent directly, and a `#[parfor]` loop writing it as a sliced output
/// ships nothing back. It works the same on the serial and threads engines.
///
/// It derefs to a slice, so index it, iterate it, or pass `&mut v[..]` on.
///
/// ```
/// use parfor::SharedVec;
///
/// let mut v = SharedVec::<f64>::zeroed(4);
/// v[2] = 1.5;
/// assert_eq!(&v[..], &[0.0, 0.0, 1.5, 0.0]);
/// let w = SharedVec::from_slice(&[1u32, 2, 3]);
/// assert_eq!(w.iter().sum::<u32>(), 6);
/// ```
///
/// Buffers of 2 MiB or more ask the kernel for transparent huge pages (`MADV_HUGEPAGE`):
/// fewer page faults when workers fill them. This is advice only; whether shared memory gets
/// huge pages depends on `/sys/kernel/mm/transparent_hugepage/shmem_enabled`.
///
/// With [`SharedVec::create`] and [`SharedVec::open`] the buffer is a file mapped with
/// `MAP_SHARED`, so the values also persist in (and can be read back from) that file. The
/// file holds the values' native in-memory bytes, so it is only portable between machines of
/// the same endianness.
pub struct SharedVec<T: Pod> {
    map: Mapping,
    len: usize,
    _values: PhantomData<T>,
}

impl<T: Pod> SharedVec<T> {
    /// `len` zero values (zero bytes are a valid value of every [`Pod`] type).
    ///
    /// # Panics
    /// When the memory cannot be mapped (like `Vec` on allocation failure, but as a panic).
    pub fn zeroed(len: usize) -> SharedVec<T> {
        SharedVec::try_zeroed(len)
            .unwrap_or_else(|e| panic!("parfor: cannot map {len} values of shared memory: {e}"))
    }

    /// `len` zero values.
    ///
    /// # Errors
    /// The memory cannot be mapped.
    pub fn try_zeroed(len: usize) -> io::Result<SharedVec<T>> {
        let map = Mapping::anonymous(bytes::<T>(len)?)?;
        Ok(SharedVec::wrap(map, len))
    }

    /// A copy of `values`.
    ///
    /// # Panics
    /// When the memory cannot be mapped.
    pub fn from_slice(values: &[T]) -> SharedVec<T> {
        let mut v = SharedVec::zeroed(values.len());
        v.copy_from_slice(values);
        v
    }

    /// A buffer of `len` zero values backed by the file at `path`, created or truncated.
    ///
    /// # Errors
    /// The file cannot be created, sized or mapped.
    pub fn create(path: impl AsRef<Path>, len: usize) -> io::Result<SharedVec<T>> {
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        let size = bytes::<T>(len)?;
        file.set_len(size as u64)?;
        SharedVec::map_file(&file, len)
    }

    /// The buffer stored in the file at `path` (as written through [`SharedVec::create`]);
    /// its length is the file's size over the value size.
    ///
    /// # Errors
    /// The file cannot be opened or mapped, or its size is not a whole number of values.
    pub fn open(path: impl AsRef<Path>) -> io::Result<SharedVec<T>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let size = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
        let elem = size_of::<T>().max(1);
        if size % elem != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "file size {size} is not a multiple of the size of `{}` ({elem})",
                    std::any::type_name::<T>()
                ),
            ));
        }
        SharedVec::map_file(&file, size / elem)
    }

    fn map_file(file: &File, len: usize) -> io::Result<SharedVec<T>> {
        let map = Mapping::file(file, bytes::<T>(len)?)?;
        Ok(SharedVec::wrap(map, len))
    }

    fn wrap(map: Mapping, len: usize) -> SharedVec<T> {
        assert!(map.ptr().cast::<T>().is_aligned(), "parfor: misaligned shared mapping");
        register(map.ptr() as usize, map.len());
        SharedVec { map, len, _values: PhantomData }
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The values.
    pub fn as_slice(&self) -> &[T] {
        self
    }

    /// The values, writable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        self
    }
}

/// The bytes of `len` values of `T`.
fn bytes<T>(len: usize) -> io::Result<usize> {
    len.checked_mul(size_of::<T>())
        .filter(|&b| b <= isize::MAX as usize)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "shared buffer too large"))
}

impl<T: Pod> Deref for SharedVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the mapping holds `len` values of `T` (sized by `bytes`), is aligned
        // (asserted in `wrap`), initialized (zero filled, copied in, or file contents: every
        // bit pattern is a valid `T: Pod`) and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.map.ptr().cast::<T>(), self.len) }
    }
}

impl<T: Pod> DerefMut for SharedVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference in this process.
        unsafe { std::slice::from_raw_parts_mut(self.map.ptr().cast::<T>(), self.len) }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for SharedVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T: Pod> Drop for SharedVec<T> {
    fn drop(&mut self) {
        unregister(self.map.ptr() as usize);
        // The mapping unmaps itself.
    }
}

/// How many live shared buffers [`is_shared`] can recognize; more still work, but sliced
/// outputs over them are shipped back like ordinary memory.
const REGIONS: usize = 64;

/// The address ranges (start, length) of live shared buffers, for [`is_shared`]. Lock-free,
/// because fork workers look it up and a lock held by another thread at `fork()` would stay
/// held forever in the worker. A start of 0 marks a free entry.
static STARTS: [AtomicUsize; REGIONS] = [const { AtomicUsize::new(0) }; REGIONS];
static LENS: [AtomicUsize; REGIONS] = [const { AtomicUsize::new(0) }; REGIONS];

fn register(start: usize, len: usize) {
    for (s, l) in STARTS.iter().zip(&LENS) {
        // Claim a free entry by writing its length first, then publishing the start.
        if s.load(Ordering::Relaxed) == 0
            && s.compare_exchange(0, usize::MAX, Ordering::Acquire, Ordering::Relaxed).is_ok()
        {
            l.store(len, Ordering::Relaxed);
            s.store(start, Ordering::Release);
            return;
        }
    }
}

fn unregister(start: usize) {
    for s in &STARTS {
        if s.compare_exchange(start, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            return;
        }
    }
}

/// Whether the `len` bytes at `ptr` lie inside one live [`SharedVec`].
pub(crate) fn is_shared(ptr: *const u8, len: usize) -> bool {
    let (a, b) = (ptr as usize, (ptr as usize).saturating_add(len));
    STARTS.iter().zip(&LENS).any(|(s, l)| {
        let start = s.load(Ordering::Acquire);
        start != 0 && start != usize::MAX && start <= a && b <= start + l.load(Ordering::Relaxed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_follows_live_buffers() {
        let v = SharedVec::<u64>::zeroed(100);
        let p = v.as_ptr().cast::<u8>();
        assert!(is_shared(p, 800));
        // SAFETY: one past the start, still inside the buffer.
        assert!(is_shared(unsafe { p.add(8) }, 792));
        assert!(!is_shared(p, 801 + 4096));
        let heap = vec![0u64; 100];
        assert!(!is_shared(heap.as_ptr().cast(), 800));
        drop(v);
        assert!(!is_shared(p, 800));
    }

    #[test]
    fn file_backed_buffers_persist() {
        let path = std::env::temp_dir().join(format!("parfor-shared-{}.bin", std::process::id()));
        {
            let mut v = SharedVec::<i32>::create(&path, 5).unwrap();
            v.copy_from_slice(&[1, -2, 3, -4, 5]);
        }
        let v = SharedVec::<i32>::open(&path).unwrap();
        assert_eq!(&v[..], &[1, -2, 3, -4, 5]);
        assert!(SharedVec::<[u8; 3]>::open(&path).is_err(), "20 bytes are not whole [u8; 3]s");
        drop(v);
        std::fs::remove_file(&path).unwrap();
    }
}
