//! Array reductions of `#[parfor]` loops (`hist[bin] += 1`): each block accumulates into a
//! private partial array, combined into the user's array in block order after the loop, as
//! scalar reductions are.
//!
//! Two representations, chosen from the element type and the operator at compile time
//! (autoref dispatch on [`Probe`], see [`SparseArray`]):
//!
//! - [`DensePart`]: a plain array started from the operator's identity: `0` for integer `+`,
//!   `-`, `|` and `^`, `1` for `*`, `!0` for `&`, `MAX`/`MIN` for `.min(..)`/`.max(..)`,
//!   `false`/`true` for `bool`; `-0.0` for float `+` and `-`, `1.0` for float `*`. Combining
//!   an untouched element with the identity leaves the target's bits as they are
//!   (`x + -0.0` is `x` for every float `x`, `-0.0` and NaN included), so nothing records
//!   which elements a block touched. Float `-=` accumulates `-0.0 - v0 - v1 - ...` and the
//!   merge adds it, for the same reason (subtracting an untouched `-0.0` would turn a target
//!   `-0.0` into `+0.0`).
//! - [`SparsePart`]: `Option` elements, `None` until the block's first contribution, which
//!   becomes the value (no identity needed): any other type, and float `min`/`max` (whose NaN
//!   rules have no identity that leaves every target as it is).

use crate::wire::Probe;
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::marker::PhantomData;

/// One block's partial array of an array reduction, in `Option` elements: element `k` is
/// `None` until the block's first contribution to `k`, which becomes its value (so no identity
/// element is needed, as for scalar reductions). Allocated on the block's first contribution.
#[derive(Clone, Debug)]
pub struct SparsePart<T> {
    vals: Vec<Option<T>>,
}

impl<T> SparsePart<T> {
    /// The accumulator of element `k` of an array of `len` elements.
    ///
    /// # Panics
    /// When `k` is out of bounds, like indexing the array.
    #[inline(always)]
    fn slot(&mut self, len: usize, k: usize) -> &mut Option<T> {
        if k >= len {
            out_of_bounds(k, len);
        }
        if self.vals.len() != len {
            self.grow(len);
        }
        // SAFETY: `k < len` (checked above) and `vals` holds `len` elements (grown above).
        unsafe { self.vals.get_unchecked_mut(k) }
    }

    /// Folds the contribution `v` into element `k` of an array of `len` elements with
    /// `sparse(accumulator, v)` (the accumulator is `None` on the block's first contribution
    /// to `k`). `_dense` is the step a [`DensePart`] would take: the generated code passes both
    /// and the representation picks its own.
    ///
    /// # Panics
    /// When `k` is out of bounds, like indexing the array.
    #[inline(always)]
    pub fn update<V>(
        &mut self,
        len: usize,
        k: usize,
        v: V,
        _dense: impl FnOnce(T, V) -> T,
        sparse: impl FnOnce(Option<T>, V) -> T,
    ) {
        let s = self.slot(len, k);
        *s = Some(sparse(s.take(), v));
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, len: usize) {
        self.vals.resize_with(len, || None);
    }

    /// Combines the block's contributions into `target` with `sparse(target[k], part[k])`
    /// for the elements the block touched. `_dense` is what a [`DensePart`] would do.
    pub fn merge_into(
        self,
        target: &mut [T],
        _dense: impl Fn(T, T) -> T,
        sparse: impl Fn(T, T) -> T,
    ) where
        T: Clone,
    {
        for (t, v) in target.iter_mut().zip(self.vals) {
            if let Some(v) = v {
                *t = sparse(t.clone(), v);
            }
        }
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn out_of_bounds(k: usize, len: usize) -> ! {
    panic!("index out of bounds: the len is {len} but the index is {k}")
}

impl<T: Serialize> Serialize for SparsePart<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.vals.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for SparsePart<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(SparsePart { vals: Vec::deserialize(d)? })
    }
}

/// One block's partial array of an array reduction whose operator has an identity on the
/// element type (see the module docs): plain elements, each starting from the identity, so a
/// contribution is one indexed update. Allocated on the block's first contribution.
#[derive(Clone, Debug)]
pub struct DensePart<T> {
    vals: Vec<T>,
    identity: T,
}

impl<T: DenseElem> DensePart<T> {
    /// Folds the contribution `v` into element `k` of an array of `len` elements with
    /// `dense(accumulator, v)`. `_sparse` is the step a [`SparsePart`] would take.
    ///
    /// # Panics
    /// When `k` is out of bounds, like indexing the array.
    #[inline(always)]
    pub fn update<V>(
        &mut self,
        len: usize,
        k: usize,
        v: V,
        dense: impl FnOnce(T, V) -> T,
        _sparse: impl FnOnce(Option<T>, V) -> T,
    ) {
        // `vals` holds no element or `len`: one comparison decides both that `k` is in bounds
        // and that the array is allocated.
        match self.vals.get_mut(k) {
            Some(a) => *a = dense(*a, v),
            None => self.first_update(len, k, v, dense),
        }
    }

    #[cold]
    #[inline(never)]
    fn first_update<V>(&mut self, len: usize, k: usize, v: V, dense: impl FnOnce(T, V) -> T) {
        if k >= len {
            out_of_bounds(k, len);
        }
        self.vals = vec![self.identity; len];
        self.vals[k] = dense(self.identity, v);
    }

    /// Combines the block's partial array into `target` with `dense(target[k], part[k])`
    /// (an untouched element holds the identity, which leaves the target as it is).
    /// `_sparse` is what a [`SparsePart`] would do.
    pub fn merge_into(
        self,
        target: &mut [T],
        dense: impl Fn(T, T) -> T,
        _sparse: impl Fn(T, T) -> T,
    ) {
        for (t, &v) in target.iter_mut().zip(&self.vals) {
            *t = dense(*t, v);
        }
    }
}

/// The element types of a [`DensePart`]: primitive numbers and `bool`, which cross a process
/// boundary as their bytes (a partial array of a million counts is one copy, not a million
/// encoded numbers).
pub trait DenseElem: Copy + Serialize + for<'de> Deserialize<'de> + 'static {
    /// Whether the operators on this type give the same result in any grouping (integers and
    /// `bool`, whose dense operators wrap; not floats, whose rounding depends on it).
    const EXACT: bool;
    /// The elements' bytes.
    fn as_bytes(vals: &[Self]) -> &[u8];
    /// The elements of `bytes`, if it holds valid ones.
    fn from_bytes(bytes: &[u8]) -> Option<Vec<Self>>;
    /// The elements in the `len` bytes at address `at` of process `pid` (read with
    /// `process_vm_readv`, Linux); `None` when they cannot be read or are not valid elements.
    fn fetch(pid: i32, at: u64, len: usize) -> Option<Vec<Self>> {
        isize::try_from(len).ok()?;
        let mut bytes = Vec::with_capacity(len);
        fetch_bytes(pid, at, len, bytes.spare_capacity_mut().as_mut_ptr().cast())?;
        // SAFETY: `fetch_bytes` initialized the first `len` bytes of the spare capacity.
        unsafe { bytes.set_len(len) };
        Self::from_bytes(&bytes)
    }
}

/// Copies the `len` bytes at address `at` of process `pid` to `into`, with
/// `process_vm_readv` (Linux); `None` when not all of them could be read (the process is gone,
/// the address is not mapped there, the system refuses: [`fetch_refused`] says which).
///
/// Whatever the other process holds, this writes nothing but the `len` bytes at `into`.
fn fetch_bytes(pid: i32, at: u64, len: usize, into: *mut u8) -> Option<()> {
    if len == 0 {
        return Some(());
    }
    if isize::try_from(len).is_err() {
        return None;
    }
    #[cfg(test)]
    if tests::FAIL_FETCHES.with(|n| n.replace(n.get().saturating_sub(1))) > 0 {
        return None;
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let remote_at = usize::try_from(at).ok()?;
        let local = libc::iovec { iov_base: into.cast(), iov_len: len };
        let remote = libc::iovec { iov_base: remote_at as *mut libc::c_void, iov_len: len };
        // SAFETY: writes at most `len` bytes at `into`, which the caller provides room for;
        // the other process's memory is only read (by the kernel, which checks the range).
        let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
        if n < 0 {
            let e = nix::errno::Errno::last();
            if matches!(e, nix::errno::Errno::EPERM | nix::errno::Errno::ENOSYS) {
                FETCH_REFUSED.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            return None;
        }
        (n.unsigned_abs() == len).then_some(())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (pid, at, into);
        FETCH_REFUSED.store(true, std::sync::atomic::Ordering::Relaxed);
        None
    }
}

/// Set once this system refused to let this process read a worker's memory: workers then
/// send their partial arrays through the pipe.
static FETCH_REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether reading a worker's memory was refused (see [`fetch_bytes`]).
pub(crate) fn fetch_refused() -> bool {
    FETCH_REFUSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// How a [`DensePart`] crosses a process boundary on the calling thread (see [`with_mode`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Its elements' bytes, in the encoding.
    Inline,
    /// Encoding, in a fork worker that keeps its state alive and unchanged until its parent
    /// has read it: the address and length of its elements' bytes in this process.
    ByAddress,
    /// Decoding what [`Mode::ByAddress`] encoded in the worker process `.0`: the elements
    /// are read from there (`.1` is set when that failed).
    Fetch(i32),
}

thread_local! {
    static MODE: std::cell::Cell<Mode> = const { std::cell::Cell::new(Mode::Inline) };
    static FETCH_FAILED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with [`DensePart`]s crossing a process boundary in `mode` on this thread; with
/// [`Mode::Fetch`], also whether reading some elements from the worker failed (`f`'s
/// decoding then failed too).
pub(crate) fn with_mode<R>(mode: Mode, f: impl FnOnce() -> R) -> (R, bool) {
    struct Restore(Mode);
    impl Drop for Restore {
        fn drop(&mut self) {
            MODE.with(|m| m.set(self.0));
        }
    }
    let _restore = Restore(MODE.with(|m| m.replace(mode)));
    FETCH_FAILED.with(|f| f.set(false));
    let r = f();
    (r, FETCH_FAILED.with(|f| f.replace(false)))
}

macro_rules! dense_pod {
    ($exact:literal: $($t:ty)*) => {$(
        impl DenseElem for $t {
            const EXACT: bool = $exact;
            fn as_bytes(vals: &[Self]) -> &[u8] {
                bytemuck::cast_slice(vals)
            }
            fn from_bytes(bytes: &[u8]) -> Option<Vec<Self>> {
                if bytes.len() % size_of::<Self>() != 0 {
                    return None;
                }
                let mut vals: Vec<Self> = vec![0 as $t; bytes.len() / size_of::<Self>()];
                bytemuck::cast_slice_mut::<Self, u8>(&mut vals).copy_from_slice(bytes);
                Some(vals)
            }
            fn fetch(pid: i32, at: u64, len: usize) -> Option<Vec<Self>> {
                if len % size_of::<Self>() != 0 {
                    return None;
                }
                isize::try_from(len).ok()?;
                let n = len / size_of::<Self>();
                let mut vals: Vec<Self> = Vec::with_capacity(n);
                fetch_bytes(pid, at, len, vals.spare_capacity_mut().as_mut_ptr().cast())?;
                // SAFETY: `fetch_bytes` initialized the first `n` elements' bytes of the spare
                // capacity, and every bit pattern is a valid `$t`.
                unsafe { vals.set_len(n) };
                Some(vals)
            }
        }
    )*};
}
dense_pod!(true: u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize);
dense_pod!(false: f32 f64);

impl DenseElem for bool {
    const EXACT: bool = true;
    fn as_bytes(vals: &[Self]) -> &[u8] {
        bytemuck::cast_slice(vals)
    }
    fn from_bytes(bytes: &[u8]) -> Option<Vec<Self>> {
        bytes
            .iter()
            .map(|b| match b {
                0 => Some(false),
                1 => Some(true),
                _ => None,
            })
            .collect()
    }
}

/// A slice of bytes that serializes as one byte string.
struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

impl<T: DenseElem> Serialize for DensePart<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.identity)?;
        if MODE.with(std::cell::Cell::get) == Mode::ByAddress {
            let bytes = T::as_bytes(&self.vals);
            t.serialize_element(&(bytes.as_ptr() as usize as u64, bytes.len() as u64))?;
        } else {
            t.serialize_element(&Bytes(T::as_bytes(&self.vals)))?;
        }
        t.end()
    }
}

impl<'de, T: DenseElem> Deserialize<'de> for DensePart<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Part<T>(PhantomData<T>);
        impl<'de, T: DenseElem> Visitor<'de> for Part<T> {
            type Value = DensePart<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an identity element and the bytes of a partial array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let identity: T =
                    seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let vals = match MODE.with(std::cell::Cell::get) {
                    Mode::Fetch(pid) => {
                        let (at, len) = seq
                            .next_element::<(u64, u64)>()?
                            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                        let len = usize::try_from(len)
                            .map_err(|_| de::Error::custom("a partial array too large"))?;
                        let Some(vals) = T::fetch(pid, at, len) else {
                            FETCH_FAILED.with(|f| f.set(true));
                            return Err(de::Error::custom(
                                "cannot read a partial array from the worker",
                            ));
                        };
                        vals
                    }
                    _ => {
                        seq.next_element::<ByteVals<T>>()?
                            .ok_or_else(|| de::Error::invalid_length(1, &self))?
                            .0
                    }
                };
                Ok(DensePart { vals, identity })
            }
        }
        d.deserialize_tuple(2, Part(PhantomData))
    }
}

/// The elements decoded from one byte string.
struct ByteVals<T>(Vec<T>);

impl<'de, T: DenseElem> Deserialize<'de> for ByteVals<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<T: DenseElem> Visitor<'_> for V<T> {
            type Value = ByteVals<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "the bytes of `{}` elements", std::any::type_name::<T>())
            }
            fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Self::Value, E> {
                T::from_bytes(b).map(ByteVals).ok_or_else(|| E::invalid_length(b.len(), &self))
            }
        }
        d.deserialize_bytes(V(PhantomData))
    }
}

/// What [`RowsPart`] needs of a partial array of one row: [`DensePart`] and [`SparsePart`].
pub trait Part<T> {
    /// See [`DensePart::update`] and [`SparsePart::update`].
    fn update<V>(
        &mut self,
        len: usize,
        k: usize,
        v: V,
        dense: impl FnOnce(T, V) -> T,
        sparse: impl FnOnce(Option<T>, V) -> T,
    );
    /// See [`DensePart::merge_into`] and [`SparsePart::merge_into`].
    fn merge_into(self, target: &mut [T], dense: impl Fn(T, T) -> T, sparse: impl Fn(T, T) -> T);
}

impl<T: DenseElem> Part<T> for DensePart<T> {
    #[inline(always)]
    fn update<V>(
        &mut self,
        len: usize,
        k: usize,
        v: V,
        dense: impl FnOnce(T, V) -> T,
        sparse: impl FnOnce(Option<T>, V) -> T,
    ) {
        DensePart::update(self, len, k, v, dense, sparse);
    }
    fn merge_into(self, target: &mut [T], dense: impl Fn(T, T) -> T, sparse: impl Fn(T, T) -> T) {
        DensePart::merge_into(self, target, dense, sparse);
    }
}

impl<T: Clone> Part<T> for SparsePart<T> {
    #[inline(always)]
    fn update<V>(
        &mut self,
        len: usize,
        k: usize,
        v: V,
        dense: impl FnOnce(T, V) -> T,
        sparse: impl FnOnce(Option<T>, V) -> T,
    ) {
        SparsePart::update(self, len, k, v, dense, sparse);
    }
    fn merge_into(self, target: &mut [T], dense: impl Fn(T, T) -> T, sparse: impl Fn(T, T) -> T) {
        SparsePart::merge_into(self, target, dense, sparse);
    }
}

/// A kind of partial array ([`Dense`] or [`Sparse`]): makes the partial arrays of the rows of
/// a two-index array reduction.
pub trait PartKind: Copy {
    /// The element type.
    type Elem;
    /// The partial array of one row.
    type Part: Part<Self::Elem>;
    /// An empty partial array of one row.
    fn row_part(self) -> Self::Part;
}

impl<T: DenseElem> PartKind for Dense<T> {
    type Elem = T;
    type Part = DensePart<T>;
    fn row_part(self) -> DensePart<T> {
        self.part()
    }
}

impl<T: Clone> PartKind for Sparse<T> {
    type Elem = T;
    type Part = SparsePart<T>;
    fn row_part(self) -> SparsePart<T> {
        self.part()
    }
}

/// One block's partial array of a two-index array reduction (`grid[r][c] += w` over a
/// `Vec<Vec<T>>`, an array of arrays, `&mut [Vec<T>]`): one partial array per row, of the
/// row's length (rows may differ), each made on the row's first contribution.
pub struct RowsPart<K: PartKind> {
    kind: K,
    rows: Vec<Option<K::Part>>,
}

impl<K: PartKind> RowsPart<K> {
    /// An empty partial array of rows of the kind `kind`.
    pub fn new(kind: K) -> RowsPart<K> {
        RowsPart { kind, rows: Vec::new() }
    }

    /// Folds the contribution `v` into element `[r][c]` of an array whose rows have the
    /// lengths `lens`; see [`DensePart::update`].
    ///
    /// # Panics
    /// When `r` or `c` is out of bounds, like indexing the array.
    #[inline(always)]
    pub fn update<V>(
        &mut self,
        lens: &[usize],
        r: usize,
        c: usize,
        v: V,
        dense: impl FnOnce(K::Elem, V) -> K::Elem,
        sparse: impl FnOnce(Option<K::Elem>, V) -> K::Elem,
    ) {
        if r >= lens.len() {
            out_of_bounds(r, lens.len());
        }
        if self.rows.len() != lens.len() {
            self.rows.resize_with(lens.len(), || None);
        }
        let kind = self.kind;
        self.rows[r].get_or_insert_with(|| kind.row_part()).update(lens[r], c, v, dense, sparse);
    }

    /// Combines the block's rows into the rows of `target` (see [`DensePart::merge_into`]);
    /// `row(t)` is row `t`'s elements.
    pub fn merge_into<R>(
        self,
        target: &mut [R],
        row: impl Fn(&mut R) -> &mut [K::Elem],
        dense: impl Fn(K::Elem, K::Elem) -> K::Elem,
        sparse: impl Fn(K::Elem, K::Elem) -> K::Elem,
    ) {
        for (t, part) in target.iter_mut().zip(self.rows) {
            if let Some(part) = part {
                part.merge_into(row(t), &dense, &sparse);
            }
        }
    }
}

impl<K: PartKind + Serialize> Serialize for RowsPart<K>
where
    K::Part: Serialize,
{
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.kind, &self.rows).serialize(s)
    }
}

impl<'de, K: PartKind + Deserialize<'de>> Deserialize<'de> for RowsPart<K>
where
    K::Part: Deserialize<'de>,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (kind, rows) = <(K, Vec<Option<K::Part>>)>::deserialize(d)?;
        Ok(RowsPart { kind, rows })
    }
}

impl<T: DenseElem> Serialize for Dense<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: DenseElem> Deserialize<'de> for Dense<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Dense)
    }
}

impl<T> Serialize for Sparse<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

impl<'de, T> Deserialize<'de> for Sparse<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <()>::deserialize(d).map(|()| Sparse(PhantomData))
    }
}

/// How a block's partial array of an array reduction is represented: [`Dense`] or
/// [`Sparse`], chosen by [`SparseArray`] and the `Dense*` traits. `Copy`, so the block
/// state's constructor can capture it.
pub struct Dense<T>(T);

/// See [`Dense`].
pub struct Sparse<T>(PhantomData<fn() -> T>);

impl<T: Copy> Clone for Dense<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T: Copy> Copy for Dense<T> {}
impl<T> Clone for Sparse<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Sparse<T> {}

impl<T: DenseElem> Dense<T> {
    /// An empty partial array.
    #[inline]
    pub fn part(self) -> DensePart<T> {
        DensePart { vals: Vec::new(), identity: self.0 }
    }

    /// Whether partial arrays of this kind can be combined in any grouping, so that a worker
    /// may keep one for all its blocks (integers and `bool`; not floats).
    #[inline]
    pub fn exact(self) -> bool {
        T::EXACT
    }
}

impl<T> Sparse<T> {
    /// An empty partial array.
    #[inline]
    pub fn part(self) -> SparsePart<T> {
        SparsePart { vals: Vec::new() }
    }

    /// `false`: the operator is not known to give the same result in any grouping.
    #[inline]
    pub fn exact(self) -> bool {
        false
    }
}

/// Selects [`Sparse`] partial arrays for every element type and operator that the `Dense*`
/// traits do not cover (autoref dispatch: those are implemented on `&Probe<T>`, so
/// `(&&probe).__parfor_array_add()` finds them first). `__parfor_array_any` is for the
/// operators that are never dense (`max(a, v)` through a function the macro cannot see).
pub trait SparseArray<T> {
    /// `+=`.
    fn __parfor_array_add(&self) -> Sparse<T> {
        Sparse(PhantomData)
    }
    /// `-=`.
    fn __parfor_array_sub(&self) -> Sparse<T> {
        Sparse(PhantomData)
    }
    /// `*=`.
    fn __parfor_array_mul(&self) -> Sparse<T> {
        Sparse(PhantomData)
    }
    /// `|=`.
    fn __parfor_array_or(&self) -> Sparse<T> {
        Sparse(PhantomData)
    }
    /// `&=`.
    fn __parfor_array_and(&self) -> Sparse<T> {
        Sparse(PhantomData)
    }
    /// `^=`.
    fn __parfor_array_xor(&self) -> Sparse<T> {
        Sparse(PhantomData)
    }
    /// `.min(v)`.
    fn __parfor_array_min(&self) -> Sparse<T> {
        Sparse(PhantomData)
    }
    /// `.max(v)`.
    fn __parfor_array_max(&self) -> Sparse<T> {
        Sparse(PhantomData)
    }
    /// Any other operator.
    fn __parfor_array_any(&self) -> Sparse<T> {
        Sparse(PhantomData)
    }
}

impl<T> SparseArray<T> for Probe<T> {}

/// Dense partial arrays for `+=` and `-=` (primitive numbers).
pub trait DenseAddSub<T> {
    /// `+=`, from `0` (`-0.0` for floats).
    fn __parfor_array_add(&self) -> Dense<T>;
    /// `-=`, from `0` (`-0.0` for floats).
    fn __parfor_array_sub(&self) -> Dense<T>;
}

/// Dense partial arrays for `*=` (primitive numbers).
pub trait DenseMul<T> {
    /// `*=`, from `1`.
    fn __parfor_array_mul(&self) -> Dense<T>;
}

/// Dense partial arrays for `|=`, `&=` and `^=` (primitive integers and `bool`).
pub trait DenseBits<T> {
    /// `|=`, from all bits clear.
    fn __parfor_array_or(&self) -> Dense<T>;
    /// `&=`, from all bits set.
    fn __parfor_array_and(&self) -> Dense<T>;
    /// `^=`, from all bits clear.
    fn __parfor_array_xor(&self) -> Dense<T>;
}

/// Dense partial arrays for `.min(v)` and `.max(v)` (primitive integers).
pub trait DenseMinMax<T> {
    /// `.min(v)`, from the largest value.
    fn __parfor_array_min(&self) -> Dense<T>;
    /// `.max(v)`, from the smallest value.
    fn __parfor_array_max(&self) -> Dense<T>;
}

macro_rules! dense_int {
    ($($t:ty)*) => {$(
        impl DenseAddSub<$t> for &Probe<$t> {
            fn __parfor_array_add(&self) -> Dense<$t> { Dense(0) }
            fn __parfor_array_sub(&self) -> Dense<$t> { Dense(0) }
        }
        impl DenseMul<$t> for &Probe<$t> {
            fn __parfor_array_mul(&self) -> Dense<$t> { Dense(1) }
        }
        impl DenseBits<$t> for &Probe<$t> {
            fn __parfor_array_or(&self) -> Dense<$t> { Dense(0) }
            fn __parfor_array_and(&self) -> Dense<$t> { Dense(!0) }
            fn __parfor_array_xor(&self) -> Dense<$t> { Dense(0) }
        }
        impl DenseMinMax<$t> for &Probe<$t> {
            fn __parfor_array_min(&self) -> Dense<$t> { Dense(<$t>::MAX) }
            fn __parfor_array_max(&self) -> Dense<$t> { Dense(<$t>::MIN) }
        }
    )*};
}
dense_int!(u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize);

macro_rules! dense_float {
    ($($t:ty)*) => {$(
        impl DenseAddSub<$t> for &Probe<$t> {
            fn __parfor_array_add(&self) -> Dense<$t> { Dense(-0.0) }
            fn __parfor_array_sub(&self) -> Dense<$t> { Dense(-0.0) }
        }
        impl DenseMul<$t> for &Probe<$t> {
            fn __parfor_array_mul(&self) -> Dense<$t> { Dense(1.0) }
        }
    )*};
}
dense_float!(f32 f64);

impl DenseBits<bool> for &Probe<bool> {
    fn __parfor_array_or(&self) -> Dense<bool> {
        Dense(false)
    }
    fn __parfor_array_and(&self) -> Dense<bool> {
        Dense(true)
    }
    fn __parfor_array_xor(&self) -> Dense<bool> {
        Dense(false)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::Wire;

    thread_local! {
        /// How many of this thread's next reads of a worker's memory fail (as when the worker
        /// is gone).
        pub(crate) static FAIL_FETCHES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn dense_parts_cross_by_address() {
        let wire = Wire::<DensePart<i16>>::serde();
        let mut p = (&&Probe::<i16>::new()).__parfor_array_max().part();
        p.update(3, 2, -7, |a, v: i16| a.max(v), |_, _| unreachable!());
        let mut buf = Vec::new();
        let mut big = (&&Probe::<i16>::new()).__parfor_array_max().part();
        big.update(1000, 2, -7, |a, v: i16| a.max(v), |_, _| unreachable!());
        with_mode(Mode::ByAddress, || wire.encode(&big, &mut buf)).0.unwrap();
        // The address and the length of the elements, not the elements.
        assert!(buf.len() < 24, "{buf:?}");
        buf.clear();
        with_mode(Mode::ByAddress, || wire.encode(&p, &mut buf)).0.unwrap();
        let me = i32::try_from(std::process::id()).unwrap();
        let (back, failed) = with_mode(Mode::Fetch(me), || wire.decode(&mut &buf[..]));
        if fetch_refused() {
            return eprintln!("this system refuses process_vm_readv: not tested");
        }
        assert!(!failed);
        let back = back.unwrap();
        assert_eq!((back.vals, back.identity), (vec![i16::MIN, i16::MIN, -7], i16::MIN));
        let flags = Wire::<DensePart<bool>>::serde();
        let mut f = (&&Probe::<bool>::new()).__parfor_array_or().part();
        f.update(2, 1, true, |a, v: bool| a | v, |_, _| unreachable!());
        buf.clear();
        with_mode(Mode::ByAddress, || flags.encode(&f, &mut buf)).0.unwrap();
        let (back, failed) = with_mode(Mode::Fetch(me), || flags.decode(&mut &buf[..]));
        assert!(!failed);
        assert_eq!(back.unwrap().vals, [false, true]);
        // Bytes that are no `bool`s, and an address not mapped: the decoding fails and says
        // the elements could not be read.
        let junk = [2u8, 1];
        let bad = postcard::to_extend(&(junk.as_ptr() as usize as u64, 2u64), vec![0]).unwrap();
        let (back, failed) = with_mode(Mode::Fetch(me), || flags.decode(&mut &bad[..]));
        assert!(failed && back.is_err());
        let bad = postcard::to_extend(&(0i16, (8u64, 4u64)), Vec::new()).unwrap();
        let (back, failed) = with_mode(Mode::Fetch(me), || wire.decode(&mut &bad[..]));
        assert!(failed && back.is_err());
        // Outside `with_mode`, the elements travel inline again.
        buf.clear();
        wire.encode(&p, &mut buf).unwrap();
        assert_eq!(wire.decode(&mut &buf[..]).unwrap().vals, [i16::MIN, i16::MIN, -7]);
    }

    fn sparse_add(p: &mut SparsePart<i64>, len: usize, k: usize, v: i64) {
        p.update(len, k, v, |a, v| a + v, |a, v| a.map_or(v, |a| a + v));
    }

    #[test]
    fn sparse_contributions_start_from_the_first_and_merge_in_place() {
        let mut p = SparseArray::__parfor_array_add(&Probe::<i64>::new()).part();
        for k in [1, 3, 1] {
            sparse_add(&mut p, 4, k, 10);
        }
        let mut hist = vec![1, 1, 1, 1];
        p.merge_into(&mut hist, |_, _| unreachable!(), |a, b| a + b);
        assert_eq!(hist, [1, 21, 1, 11]);
        let empty = SparseArray::__parfor_array_add(&Probe::<i64>::new()).part();
        empty.merge_into(&mut hist, |a, b| a + b, |a, b| a + b);
        assert_eq!(hist, [1, 21, 1, 11]);
    }

    #[test]
    fn dense_parts_start_from_the_identity() {
        let probe = Probe::<u32>::new();
        let mut p = (&&probe).__parfor_array_and().part();
        for (k, v) in [(1, 0b1110), (3, 0b0111), (1, 0b1011)] {
            p.update(4, k, v, |a, v| a & v, |_, _| unreachable!());
        }
        assert_eq!(p.vals, [!0, 0b1010, !0, 0b0111]);
        let mut masks = vec![0b1111; 4];
        p.merge_into(&mut masks, |a, b| a & b, |_, _| unreachable!());
        assert_eq!(masks, [0b1111, 0b1010, 0b1111, 0b0111]);
        assert_eq!((&&probe).__parfor_array_min().0, u32::MAX);
        assert_eq!((&&probe).__parfor_array_max().0, 0);
        assert_eq!((&&probe).__parfor_array_mul().0, 1);
    }

    #[test]
    fn float_identities_leave_every_target_as_it_is() {
        let probe = Probe::<f64>::new();
        let add = (&&probe).__parfor_array_add().part();
        let targets = [-0.0, 0.0, f64::NAN, -f64::INFINITY, 1e-310, -3.5];
        let mut t = targets.to_vec();
        // An untouched block (no allocation) and a block that touched only element 5.
        add.clone().merge_into(&mut t, |a, b| a + b, |_, _| unreachable!());
        let mut touched = add;
        touched.update(6, 5, 1.0, |a, v| a + v, |_, _| unreachable!());
        touched.merge_into(&mut t, |a, b| a + b, |_, _| unreachable!());
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let mut want = targets.to_vec();
        want[5] += 1.0;
        assert_eq!(bits(&t), bits(&want));
        let mut sub = (&&probe).__parfor_array_sub().part();
        sub.update(6, 1, 2.0, |a, v| a - v, |_, _| unreachable!());
        let mut t = targets.to_vec();
        sub.merge_into(&mut t, |a, b| a + b, |_, _| unreachable!());
        want = targets.to_vec();
        want[1] -= 2.0;
        assert_eq!(bits(&t), bits(&want));
        // Float min/max have no identity that keeps every target: `Option` elements (the
        // dispatch the generated code makes, whose borrows clippy finds needless here).
        #[allow(clippy::needless_borrow)]
        let _: Sparse<f64> = (&&probe).__parfor_array_min();
    }

    #[test]
    fn dense_parts_cross_the_wire_as_bytes() {
        let wire = Wire::<DensePart<i16>>::serde();
        let mut p = (&&Probe::<i16>::new()).__parfor_array_max().part();
        p.update(3, 2, -7, |a, v: i16| a.max(v), |_, _| unreachable!());
        let mut buf = Vec::new();
        wire.encode(&p, &mut buf).unwrap();
        let back = wire.decode(&mut &buf[..]).unwrap();
        assert_eq!((back.vals, back.identity), (vec![i16::MIN, i16::MIN, -7], i16::MIN));
        let flags = Wire::<DensePart<bool>>::serde();
        let mut p = (&&Probe::<bool>::new()).__parfor_array_or().part();
        p.update(2, 0, true, |a, v: bool| a | v, |_, _| unreachable!());
        buf.clear();
        flags.encode(&p, &mut buf).unwrap();
        assert_eq!(flags.decode(&mut &buf[..]).unwrap().vals, [true, false]);
        let bad = [0u8, 2, 1, 7];
        let err = flags.decode(&mut &bad[..]).unwrap_err();
        assert!(err.contains("DensePart"), "{err}");
    }

    #[test]
    fn rows_of_different_lengths() {
        let kind = (&&Probe::<u32>::new()).__parfor_array_add();
        let mut p = RowsPart::new(kind);
        let lens = [2, 0, 3];
        for (r, c) in [(2, 2), (0, 1), (2, 2)] {
            p.update(&lens, r, c, 5u32, |a, v| a + v, |_, _| unreachable!());
        }
        let wire = Wire::<RowsPart<Dense<u32>>>::serde();
        let mut buf = Vec::new();
        wire.encode(&p, &mut buf).unwrap();
        let p = wire.decode(&mut &buf[..]).unwrap();
        let mut grid = vec![vec![1, 1], vec![], vec![1, 1, 1]];
        p.merge_into(&mut grid, |r| &mut r[..], |a, b| a + b, |_, _| unreachable!());
        assert_eq!(grid, [vec![1, 6], vec![], vec![1, 1, 11]]);
    }

    #[test]
    #[should_panic(expected = "the len is 3 but the index is 3")]
    fn rows_out_of_bounds_panic_like_indexing() {
        let mut p = RowsPart::new((&&Probe::<u8>::new()).__parfor_array_add());
        p.update(&[1, 1, 1], 3, 0, 1, |a, v| a + v, |_, _| unreachable!());
    }

    #[test]
    #[should_panic(expected = "the len is 4 but the index is 4")]
    fn out_of_bounds_panics_like_indexing() {
        SparseArray::__parfor_array_add(&Probe::<u8>::new()).part().slot(4, 4);
    }

    #[test]
    #[should_panic(expected = "the len is 4 but the index is 9")]
    fn dense_out_of_bounds_panics_like_indexing() {
        let mut p = (&&Probe::<u8>::new()).__parfor_array_add().part();
        p.update(4, 9, 1, |a, v| a + v, |_, _| unreachable!());
    }
}
