//! Sliced outputs of `#[parfor]` loops: `out[i] = e` where `i` is the loop variable of a range
//! loop, so each iteration owns one element.

use crate::error::Cause;
use crate::wire::Wire;
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
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: `SliceOut` is a `&mut [T]` split among iterations that touch disjoint elements (the
// contract of `SliceOut::slot`); sending `T` values between threads needs `T: Send`.
unsafe impl<T: Send> Sync for SliceOut<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for SliceOut<'_, T> {}

impl<'a, T> SliceOut<'a, T> {
    /// Wraps `slice`, which the loop's iteration at position `p` writes at `offset + p`.
    pub fn new(slice: &'a mut [T], offset: usize, wire: Option<Wire<T>>) -> SliceOut<'a, T> {
        SliceOut {
            ptr: slice.as_mut_ptr(),
            len: slice.len(),
            offset,
            wire,
            _borrow: PhantomData,
        }
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
        assert!(
            i < self.len,
            "index out of bounds: the len is {} but the index is {i}",
            self.len
        );
        // SAFETY: in bounds (asserted); exclusive by the caller's contract; the borrow of the
        // slice outlives `self`.
        unsafe { &mut *self.ptr.add(i) }
    }

    fn elems(&self, pos: &Range<usize>) -> Range<usize> {
        let start = (self.offset + pos.start).min(self.len);
        start..(self.offset + pos.end).min(self.len)
    }
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
        let wire = self.wire.ok_or_else(|| {
            Cause::Engine(format!(
                "the fork engine needs sliced-output elements that implement serde's Serialize \
                 and DeserializeOwned; `{}` does not",
                std::any::type_name::<T>()
            ))
        })?;
        for i in self.elems(&pos) {
            // SAFETY: called after the iterations `pos` ran, by the one thread that ran them.
            let v = unsafe { &*self.ptr.add(i) };
            wire.encode(v, out).map_err(Cause::Engine)?;
        }
        Ok(())
    }

    fn decode(&self, pos: Range<usize>, input: &mut &[u8]) -> Result<(), Cause> {
        let wire = self
            .wire
            .ok_or_else(|| Cause::Engine("no wire for sliced output".into()))?;
        for i in self.elems(&pos) {
            let v = wire.decode(input).map_err(Cause::Engine)?;
            // SAFETY: the parent stores each range once, from one thread, while no worker of
            // this process runs the loop's iterations.
            unsafe { *self.slot(i) = v };
        }
        Ok(())
    }
}
