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
/// `MAP_SHARED`, so the values also persist in (and can be read back from) that file;
/// [`SharedVec::open_readonly`] maps such a file read-only, as a [`ReadOnlySharedVec`]. The
/// file holds the values' native in-memory bytes, so it is only portable between machines of
/// the same endianness. These three constructors are `unsafe`: nothing in the program can
/// stop another process (or another handle) from truncating or writing the file under the
/// mapping, so the caller promises that nothing does (see their `# Safety` sections).
/// [`SharedVec::zeroed`], [`SharedVec::try_zeroed`] and [`SharedVec::from_slice`] are safe:
/// their memory is anonymous, and a `SharedVec` is not `Clone`, so no safe code can make two
/// handles to one mapping.
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
    /// The buffer is the file's bytes, mapped with `MAP_SHARED`: what it holds when dropped
    /// stays in the file, to be read back with [`SharedVec::open`] or
    /// [`SharedVec::open_readonly`].
    ///
    /// ```
    /// use parfor::SharedVec;
    ///
    /// let path = std::env::temp_dir().join(format!("parfor-doc-create-{}", std::process::id()));
    /// // SAFETY: the file is new and private to this example: nothing else maps, writes or
    /// // truncates it while `v` lives.
    /// let mut v = unsafe { SharedVec::<f64>::create(&path, 3) }.unwrap();
    /// v[1] = 2.5;
    /// drop(v);
    /// // SAFETY: as above, and the writable buffer is gone.
    /// let back = unsafe { SharedVec::<f64>::open_readonly(&path) }.unwrap();
    /// assert_eq!(&back[..], &[0.0, 2.5, 0.0]);
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    ///
    /// # Safety
    /// The buffer hands out `&[T]` and `&mut [T]` over the file's bytes, so until it is
    /// dropped (together with the copies fork workers inherit during a call):
    /// - no process may truncate or shrink the file (touching a page past its new end raises
    ///   `SIGBUS`), which includes calling `create` on the same path again;
    /// - nothing but this buffer may write the file: no other process, `File` handle or
    ///   mapping, and no other `SharedVec` of it;
    /// - no other handle of this program may read the file's bytes while this buffer can
    ///   write them: no [`SharedVec::open`] or [`SharedVec::open_readonly`] of the same file.
    ///
    /// Advisory locks cannot stop another process from truncating or writing a file, so the
    /// caller must guarantee this (as for `memmap2::MmapMut::map_mut`), for example by using a
    /// file that only this program knows about.
    ///
    /// # Errors
    /// The file cannot be created, sized or mapped.
    pub unsafe fn create(path: impl AsRef<Path>, len: usize) -> io::Result<SharedVec<T>> {
        let file =
            OpenOptions::new().read(true).write(true).create(true).truncate(true).open(path)?;
        let size = bytes::<T>(len)?;
        file.set_len(size as u64)?;
        let map = Mapping::file(&file, size, true)?;
        Ok(SharedVec::wrap(map, len))
    }

    /// The buffer stored in the file at `path` (as written through [`SharedVec::create`]),
    /// writable; its length is the file's size over the value size. Use
    /// [`SharedVec::open_readonly`] to only read it.
    ///
    /// ```
    /// use parfor::SharedVec;
    ///
    /// let path = std::env::temp_dir().join(format!("parfor-doc-open-{}", std::process::id()));
    /// std::fs::write(&path, 7u32.to_ne_bytes()).unwrap();
    /// // SAFETY: the file is new and private to this example: nothing else maps, writes or
    /// // truncates it while `v` lives.
    /// let mut v = unsafe { SharedVec::<u32>::open(&path) }.unwrap();
    /// assert_eq!(&v[..], &[7]);
    /// v[0] += 1;
    /// drop(v);
    /// assert_eq!(std::fs::read(&path).unwrap(), 8u32.to_ne_bytes());
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    ///
    /// # Safety
    /// As for [`SharedVec::create`]: until the buffer is dropped, no process truncates the
    /// file, nothing else writes it, and no other handle of this program (another `open` or
    /// `open_readonly` of the same file) reads it.
    ///
    /// # Errors
    /// The file cannot be opened for reading and writing or mapped, or its size is not a
    /// whole number of values.
    pub unsafe fn open(path: impl AsRef<Path>) -> io::Result<SharedVec<T>> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let (len, size) = file_values::<T>(&file)?;
        let map = Mapping::file(&file, size, true)?;
        Ok(SharedVec::wrap(map, len))
    }

    /// The values stored in the file at `path` (as written through [`SharedVec::create`]),
    /// mapped read-only: the result only derefs to `&[T]`. The file is opened read-only, so
    /// this also works on files this program may not write. Its length is the file's size
    /// over the value size.
    ///
    /// Any number of read-only handles of one file may live at once, in this program and in
    /// others, as long as nothing writes the file meanwhile.
    ///
    /// ```
    /// use parfor::SharedVec;
    ///
    /// let path = std::env::temp_dir().join(format!("parfor-doc-ro-{}", std::process::id()));
    /// let bytes: Vec<u8> = [1.5f64, -2.0].iter().flat_map(|x| x.to_ne_bytes()).collect();
    /// std::fs::write(&path, bytes).unwrap();
    /// // SAFETY: the file is private to this example, and nothing writes or truncates it while
    /// // `a` and `b` live.
    /// let (a, b) = unsafe {
    ///     (SharedVec::<f64>::open_readonly(&path).unwrap(), SharedVec::<f64>::open_readonly(&path).unwrap())
    /// };
    /// assert_eq!(&a[..], &[1.5, -2.0]);
    /// assert_eq!(a.as_slice(), b.as_slice());
    /// std::fs::remove_file(&path).unwrap();
    /// ```
    ///
    /// # Safety
    /// The result hands out `&[T]` over the file's bytes, which Rust assumes do not change, so
    /// until it is dropped:
    /// - no process may truncate or shrink the file (reading a page past its new end raises
    ///   `SIGBUS`);
    /// - nothing may write the file: no process, `File` handle or mapping, and no writable
    ///   [`SharedVec`] of it ([`SharedVec::create`] or [`SharedVec::open`] of the same file).
    ///
    /// # Errors
    /// The file cannot be opened or mapped, or its size is not a whole number of values.
    pub unsafe fn open_readonly(path: impl AsRef<Path>) -> io::Result<ReadOnlySharedVec<T>> {
        let file = OpenOptions::new().read(true).open(path)?;
        let (len, size) = file_values::<T>(&file)?;
        let map = Mapping::file(&file, size, false)?;
        assert!(map.ptr().cast::<T>().is_aligned(), "parfor: misaligned shared mapping");
        Ok(ReadOnlySharedVec { map, len, _values: PhantomData })
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

/// The number of values of `T` in `file`, and their size in bytes.
fn file_values<T>(file: &File) -> io::Result<(usize, usize)> {
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
    let len = size / elem;
    Ok((len, bytes::<T>(len)?))
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
        // bit pattern is a valid `T: Pod`) and lives as long as `self`. An anonymous mapping
        // is reachable only through `self` (and, during a call, the fork workers' copies of
        // it, which write disjoint sliced elements); for a file, the caller of `create` or
        // `open` promised that nothing else writes, reads or truncates it meanwhile.
        unsafe { std::slice::from_raw_parts(self.map.ptr().cast::<T>(), self.len) }
    }
}

impl<T: Pod> DerefMut for SharedVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference through this
        // buffer, and no other handle of this program maps the same memory (anonymous memory
        // has no other handle; for a file, the caller of `create` or `open` promised it).
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

/// A read-only buffer of plain-old-data values mapped from a file with `MAP_SHARED` (Unix),
/// made by [`SharedVec::open_readonly`].
///
/// It derefs to `&[T]` only: no safe code can write through it. Fork workers read it in
/// place, like any memory of the caller, and every reader of the file shares its pages.
///
/// ```
/// use parfor::{ReadOnlySharedVec, SharedVec};
///
/// let path = std::env::temp_dir().join(format!("parfor-doc-rsv-{}", std::process::id()));
/// // SAFETY: the file is new and private to this example: nothing else maps, writes or
/// // truncates it while the buffers below live.
/// let mut v = unsafe { SharedVec::<u16>::create(&path, 4) }.unwrap();
/// v.copy_from_slice(&[1, 2, 3, 4]);
/// drop(v);
/// // SAFETY: as above, and the writable buffer is gone.
/// let r: ReadOnlySharedVec<u16> = unsafe { SharedVec::open_readonly(&path) }.unwrap();
/// assert_eq!(r.iter().sum::<u16>(), 10);
/// assert_eq!(r.len(), 4);
/// std::fs::remove_file(&path).unwrap();
/// ```
///
/// Writing through it does not compile:
///
/// ```compile_fail
/// # let path = std::env::temp_dir().join("parfor-doc-rsv-write");
/// // SAFETY: (never runs)
/// let mut r = unsafe { parfor::SharedVec::<u16>::open_readonly(&path) }.unwrap();
/// r[0] = 1; // error: cannot assign through a `ReadOnlySharedVec`
/// ```
pub struct ReadOnlySharedVec<T: Pod> {
    map: Mapping,
    len: usize,
    _values: PhantomData<T>,
}

impl<T: Pod> ReadOnlySharedVec<T> {
    /// The number of values.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("parfor-doc-rsv-len-{}", std::process::id()));
    /// std::fs::write(&path, [0u8; 12]).unwrap();
    /// // SAFETY: the file is private to this example, and nothing writes or truncates it
    /// // while `r` lives.
    /// let r = unsafe { parfor::SharedVec::<u32>::open_readonly(&path) }.unwrap();
    /// assert_eq!(r.len(), 3);
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no values.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("parfor-doc-rsv-empty-{}", std::process::id()));
    /// std::fs::write(&path, []).unwrap();
    /// // SAFETY: the file is private to this example, and nothing writes or truncates it
    /// // while `r` lives.
    /// let r = unsafe { parfor::SharedVec::<f64>::open_readonly(&path) }.unwrap();
    /// assert!(r.is_empty());
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The values.
    ///
    /// ```
    /// # let path = std::env::temp_dir().join(format!("parfor-doc-rsv-slice-{}", std::process::id()));
    /// std::fs::write(&path, [5u8, 6]).unwrap();
    /// // SAFETY: the file is private to this example, and nothing writes or truncates it
    /// // while `r` lives.
    /// let r = unsafe { parfor::SharedVec::<u8>::open_readonly(&path) }.unwrap();
    /// assert_eq!(r.as_slice(), &[5, 6]);
    /// # std::fs::remove_file(&path).unwrap();
    /// ```
    pub fn as_slice(&self) -> &[T] {
        self
    }
}

impl<T: Pod> Deref for ReadOnlySharedVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: the mapping holds the file's first `len * size_of::<T>()` bytes (sized by
        // `file_values`), is aligned (asserted in `open_readonly`), initialized (file contents:
        // every bit pattern is a valid `T: Pod`) and lives as long as `self`. The caller of
        // `open_readonly` promised that nothing writes or truncates the file meanwhile, so the
        // bytes behind this shared reference do not change.
        unsafe { std::slice::from_raw_parts(self.map.ptr().cast::<T>(), self.len) }
    }
}

impl<T: Pod + fmt::Debug> fmt::Debug for ReadOnlySharedVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
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

    /// A path in the temporary directory that no other test (or test process) uses.
    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("parfor-shared-{name}-{}.bin", std::process::id()))
    }

    #[test]
    fn file_backed_buffers_persist() {
        let path = temp_path("persist");
        {
            // SAFETY: the file is private to this test: nothing else maps, writes or
            // truncates it while `v` lives.
            let mut v = unsafe { SharedVec::<i32>::create(&path, 5) }.unwrap();
            v.copy_from_slice(&[1, -2, 3, -4, 5]);
        }
        // SAFETY: as above; the buffer made by `create` is gone.
        let mut v = unsafe { SharedVec::<i32>::open(&path) }.unwrap();
        assert_eq!(&v[..], &[1, -2, 3, -4, 5]);
        v[0] = 10;
        drop(v);
        // SAFETY: as above; no writable buffer of the file is alive, and the open fails.
        let whole = unsafe { SharedVec::<[u8; 3]>::open(&path) };
        assert!(whole.is_err(), "20 bytes are not whole [u8; 3]s");
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes[..4], 10i32.to_ne_bytes());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn read_only_open_reads_what_create_wrote() {
        let path = temp_path("readonly");
        let values: Vec<f64> = (0..1000).map(|i| f64::from(i) * 0.25 - 3.0).collect();
        {
            // SAFETY: the file is private to this test: nothing else maps, writes or
            // truncates it while `v` lives.
            let mut v = unsafe { SharedVec::<f64>::create(&path, values.len()) }.unwrap();
            v.copy_from_slice(&values);
        }
        // SAFETY: as above; the writable buffer is gone, and only readers remain.
        let (a, b) = unsafe {
            (
                SharedVec::<f64>::open_readonly(&path).unwrap(),
                SharedVec::<f64>::open_readonly(&path).unwrap(),
            )
        };
        assert_eq!(a.len(), values.len());
        assert_eq!(a.as_slice(), &values[..]);
        assert_eq!(&b[..], &values[..]);
        assert!(!is_shared(a.as_ptr().cast(), 8), "a read-only buffer is never a sliced output");
        // SAFETY: as above; the open fails before mapping anything.
        let odd = unsafe { SharedVec::<[u8; 3]>::open_readonly(&path) };
        assert_eq!(odd.unwrap_err().kind(), io::ErrorKind::InvalidData);
        drop((a, b));
        std::fs::remove_file(&path).unwrap();
        // SAFETY: the file no longer exists: the open fails.
        let gone = unsafe { SharedVec::<f64>::open_readonly(&path) };
        assert_eq!(gone.unwrap_err().kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn read_only_mapping_is_not_writable() {
        let path = temp_path("prot");
        std::fs::write(&path, [1u8, 2, 3, 4]).unwrap();
        // SAFETY: the file is private to this test, and nothing writes or truncates it while
        // `r` lives.
        let r = unsafe { SharedVec::<u8>::open_readonly(&path) }.unwrap();
        // The mapping itself is read-only and shared: `/proc/self/maps` lists it as `r--s`
        // (checked there, since a write would kill the test with SIGSEGV).
        #[cfg(target_os = "linux")]
        {
            let start = r.as_ptr() as usize;
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            let line = maps
                .lines()
                .find(|l| {
                    let range = l.split_whitespace().next().unwrap_or("");
                    let lo = range.split('-').next().unwrap_or("");
                    usize::from_str_radix(lo, 16) == Ok(start)
                })
                .unwrap_or_else(|| panic!("no mapping at {start:#x} in\n{maps}"));
            let perms = line.split_whitespace().nth(1).unwrap();
            assert!(perms.starts_with("r-") && perms.ends_with('s'), "{line}");
        }
        assert_eq!(&r[..], &[1, 2, 3, 4]);
        drop(r);
        std::fs::remove_file(&path).unwrap();
    }
}
