//! Sliced outputs of `#[parfor]` loops: `out[i] = e` where `i` is the loop variable of a range
//! loop, so each iteration owns one element.

use crate::error::Cause;
use crate::wire::{Wire, required};
use std::marker::PhantomData;
use std::ops::Range;

/// A slice that the iterations of one loop write at disjoint indices.
///
/// Built by `#[parfor]` for every sliced output; the loop's iteration at position `p` of the
/// domain writes element `offset + p` only.
pub struct SliceOut<'a, T> {
    ptr: *mut T,
    len: usize,
    offset: usize,
    wire: Option<Wire<T>>,
    /// The slice lies in shared memory (a [`crate::SharedVec`]): fork workers' writes reach
    /// the parent directly, so nothing is shipped back.
    shared: bool,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: `SliceOut` is a `&mut [T]` split among iterations that touch disjoint elements (the
// contract of `SliceOut::slot`); sending `T` values between threads needs `T: Send`.
unsafe impl<T: Send> Sync for SliceOut<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for SliceOut<'_, T> {}

impl<'a, T> SliceOut<'a, T> {
    /// Wraps `slice`, which the loop's iteration at position `p` writes at `offset + p`.
    ///
    /// When `slice` lies inside a live [`crate::SharedVec`] (for example `&mut v[..]`), the
    /// fork engine ships nothing back for it: its workers write the shared memory itself.
    pub fn new(slice: &'a mut [T], offset: usize, wire: Option<Wire<T>>) -> SliceOut<'a, T> {
        #[cfg(unix)]
        let shared = crate::shared_vec::is_shared(slice.as_ptr().cast(), size_of_val(slice));
        #[cfg(not(unix))]
        let shared = false;
        SliceOut {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
            offset,
            wire,
            shared,
            _borrow: PhantomData,
        }
    }

    /// Wraps a shared buffer, which the loop's iteration at position `p` writes at
    /// `offset + p`; the fork engine ships nothing back for it.
    #[cfg(unix)]
    pub fn shared(vec: &'a mut crate::SharedVec<T>, offset: usize) -> SliceOut<'a, T>
    where
        T: crate::Pod,
    {
        SliceOut { shared: true, ..SliceOut::new(vec, offset, Some(Wire::pod())) }
    }

    /// Whether the fork engine leaves this output alone because it lies in shared memory.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// The element at `i`.
    ///
    /// # Panics
    /// When `i` is out of bounds, like slice indexing.
    ///
    /// # Safety
    /// No other reference to element `i` may be live while the returned one is: in a loop,
    /// only the iteration whose loop variable is `i` calls this with `i`.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slot(&self, i: usize) -> &mut T {
        // SAFETY: the same contract as `Slots::slot`, which the caller upholds.
        unsafe { self.slots().slot(i) }
    }

    /// The elements, as a `Copy` handle that the loop body receives by value with each block
    /// of iterations, so the compiler keeps its pointer and length in registers.
    pub fn slots(&self) -> Slots<'a, T> {
        Slots { ptr: self.ptr, len: self.len, _borrow: PhantomData }
    }

    fn elems(&self, pos: &Range<usize>) -> Range<usize> {
        let start = (self.offset + pos.start).min(self.len);
        start..(self.offset + pos.end).min(self.len)
    }
}

/// The elements of a [`SliceOut`], for the loop body: see [`SliceOut::slots`].
pub struct Slots<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

impl<T> Clone for Slots<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Slots<'_, T> {}

// SAFETY: as for `SliceOut`: iterations touch disjoint elements (the contract of
// `Slots::slot`), and the values cross threads, hence `T: Send`.
unsafe impl<T: Send> Sync for Slots<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Slots<'_, T> {}

impl<'a, T> Slots<'a, T> {
    /// The element at `i`.
    ///
    /// # Panics
    /// When `i` is out of bounds, like slice indexing.
    ///
    /// # Safety
    /// As for [`SliceOut::slot`]: only the iteration whose loop variable is `i` calls this
    /// with `i`, and the reference is dead before another iteration touches element `i`.
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slot(&self, i: usize) -> &'a mut T {
        if i >= self.len {
            out_of_bounds(i, self.len);
        }
        // SAFETY: in bounds (checked); exclusive by the caller's contract; the slice's borrow
        // lasts for `'a`.
        unsafe { &mut *self.ptr.add(i) }
    }
}

/// The panic of an out-of-bounds sliced output, like slice indexing's. Kept out of line and
/// given copies, so the hot loop never lends the output's fields to a call (which would make
/// the compiler reload them after every store).
#[cold]
#[inline(never)]
#[track_caller]
fn out_of_bounds(i: usize, len: usize) -> ! {
    panic!("index out of bounds: the len is {len} but the index is {i}")
}

/// A sliced output as the engines see it: for the fork engine, the elements a range of
/// iterations wrote in a worker process are shipped back and stored in the parent's slice.
pub trait Sliced: Sync {
    /// Appends the elements written by iterations `pos` to `out`.
    ///
    /// # Errors
    /// The element type cannot cross a process boundary.
    fn encode(&self, pos: Range<usize>, out: &mut Vec<u8>) -> Result<(), Cause>;

    /// Stores elements for iterations `pos`, consuming them from `input`.
    ///
    /// # Errors
    /// The bytes do not decode.
    fn decode(&self, pos: Range<usize>, input: &mut &[u8]) -> Result<(), Cause>;
}

impl<T: Send> Sliced for SliceOut<'_, T> {
    fn encode(&self, pos: Range<usize>, out: &mut Vec<u8>) -> Result<(), Cause> {
        if self.shared {
            return Ok(());
        }
        let wire = required(self.wire, "sliced-output elements")?;
        let elems = self.elems(&pos);
        if wire.is_pod() {
            // Plain old data: the elements' bytes, in one copy.
            // SAFETY: `elems` lies inside the slice (`elems` clamps it); the pod wire
            // guarantees `T: Pod`, so every byte is initialized; called after the iterations
            // `pos` ran, by the one thread that ran them.
            let bytes = unsafe {
                std::slice::from_raw_parts(
                    self.ptr.add(elems.start).cast::<u8>(),
                    elems.len() * size_of::<T>(),
                )
            };
            out.extend_from_slice(bytes);
            return Ok(());
        }
        for i in elems {
            // SAFETY: called after the iterations `pos` ran, by the one thread that ran them.
            let v = unsafe { &*self.ptr.add(i) };
            wire.encode(v, out).map_err(Cause::Engine)?;
        }
        Ok(())
    }

    fn decode(&self, pos: Range<usize>, input: &mut &[u8]) -> Result<(), Cause> {
        if self.shared {
            return Ok(());
        }
        let wire = required(self.wire, "sliced-output elements")?;
        let elems = self.elems(&pos);
        if wire.is_pod() {
            let len = elems.len() * size_of::<T>();
            if input.len() < len {
                return Err(Cause::Engine("corrupt sliced output from a worker".into()));
            }
            // SAFETY: `len` bytes are readable from `input` (checked) and writable at the
            // slice's elements `elems` (inside the slice); the pod wire guarantees `T: Pod`,
            // so any bytes are valid values and nothing is dropped. The parent stores each
            // range once, from one thread, while no worker of this process runs the loop's
            // iterations; the two buffers do not overlap (one is the parent's slice, the
            // other a received message).
            unsafe {
                std::ptr::copy_nonoverlapping(
                    input.as_ptr(),
                    self.ptr.add(elems.start).cast::<u8>(),
                    len,
                );
            }
            *input = &input[len..];
            return Ok(());
        }
        for i in elems {
            let v = wire.decode(input).map_err(Cause::Engine)?;
            // SAFETY: the parent stores each range once, from one thread, while no worker of
            // this process runs the loop's iterations.
            unsafe { *self.slot(i) = v };
        }
        Ok(())
    }
}
