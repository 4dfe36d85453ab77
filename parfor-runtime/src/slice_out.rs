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
    /// The element of the iteration at position 0 (the first value of a range loop's
    /// variable, which may be negative or not fit a `usize`).
    offset: i128,
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
    pub fn new(slice: &'a mut [T], offset: i128, wire: Option<Wire<T>>) -> SliceOut<'a, T> {
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
    pub fn shared(vec: &'a mut crate::SharedVec<T>, offset: i128) -> SliceOut<'a, T>
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

    /// The elements that the iterations at positions `pos` write (clamped to the slice).
    fn elems(&self, pos: &Range<usize>) -> Range<usize> {
        let clamp = |p: usize| {
            let e = self.offset.saturating_add(p as i128).clamp(0, self.len as i128);
            e as usize
        };
        clamp(pos.start)..clamp(pos.end)
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

/// One iteration's handle on its own element of a sliced output.
///
/// `#[parfor]` creates one per sliced output at the start of every iteration, as a local the
/// user's code cannot name, and rewrites every `out[i]` of the body to `*out.get()` (a read)
/// or `*out.get_mut()` (a write, a `&mut` borrow, a method receiver). So the borrow checker
/// sees the element as one local place per iteration: two overlapping borrows of `out[i]` in
/// one iteration are rejected as they are in a plain loop, and no reference to the element
/// can outlive the iteration (it borrows this local).
///
/// The element is found lazily, so an iteration that never touches its element does not
/// check its bounds, as in a plain loop.
pub struct SlotCell<'a, T> {
    slots: Slots<'a, T>,
    i: usize,
}

// SAFETY: a `SlotCell` is an exclusive handle on one element, like `&mut T`: sending it to
// another thread sends access to a `T` (`T: Send`); sharing it shares `&T` (`T: Sync`).
unsafe impl<T: Send> Send for SlotCell<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for SlotCell<'_, T> {}

impl<'a, T> SlotCell<'a, T> {
    /// The handle on element `i` of `slots`.
    ///
    /// # Safety
    /// While the handle lives, no other handle on element `i` of the same output exists and
    /// nothing else accesses element `i`: the generated code derives `i` from the position of
    /// the iteration in the plan, which the engines hand out once per call, through an
    /// injective map (`i = offset + pos`; an index that does not fit a `usize` becomes
    /// `usize::MAX`, which no slice reaches).
    #[inline(always)]
    pub unsafe fn new(slots: Slots<'a, T>, i: usize) -> SlotCell<'a, T> {
        SlotCell { slots, i }
    }

    /// The element, to read.
    ///
    /// # Panics
    /// When the index is out of bounds, like slice indexing.
    #[inline(always)]
    pub fn get(&self) -> &T {
        if self.i >= self.slots.len {
            out_of_bounds(self.i, self.slots.len);
        }
        // SAFETY: in bounds (checked); exclusive to this handle by `new`'s contract, and the
        // returned borrow of `self` keeps `get_mut` from handing out a `&mut` meanwhile.
        unsafe { &*self.slots.ptr.add(self.i) }
    }

    /// The element, to write.
    ///
    /// # Panics
    /// When the index is out of bounds, like slice indexing.
    #[inline(always)]
    pub fn get_mut(&mut self) -> &mut T {
        if self.i >= self.slots.len {
            out_of_bounds(self.i, self.slots.len);
        }
        // SAFETY: in bounds (checked); exclusive to this handle by `new`'s contract, and the
        // returned borrow of `self` is unique.
        unsafe { &mut *self.slots.ptr.add(self.i) }
    }
}

/// The panic of an out-of-bounds sliced output, like slice indexing's. Kept out of line and
/// given copies, so the hot loop never lends the output's fields to a call (which would make
/// the compiler reload them after every store).
#[cold]
#[inline(never)]
#[track_caller]
fn out_of_bounds(i: usize, len: usize) -> ! {
    if i == usize::MAX {
        panic!("index out of bounds: the len is {len} but the loop variable is not a valid index")
    }
    panic!("index out of bounds: the len is {len} but the index is {i}")
}

/// The first byte of a plain-old-data sliced output's part of a range's message: the
/// elements' bytes follow (`SHIPPED`), or the fork worker wrote them into the caller's slice
/// itself (`PLACED`).
const SHIPPED: u8 = 0;
const PLACED: u8 = 1;

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
            // In a fork worker, straight into the caller's output (no pipe, no copy in the
            // caller, which would also break copy-on-write sharing page by page); else, or
            // when that is refused, through the message.
            // SAFETY: the slice was allocated by the caller before the fork (it is the
            // call's output), so the same addresses are its elements `elems` there, which
            // only the worker that ran `pos` writes, and which the caller reads only after
            // this range's frame arrived (the caller's `decode` of it).
            if unsafe { crate::engine::write_into_parent(bytes.as_ptr(), bytes.len()) } {
                out.push(PLACED);
            } else {
                out.push(SHIPPED);
                out.extend_from_slice(bytes);
            }
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
            let Some((&mark, rest)) = input.split_first() else {
                return Err(Cause::Engine("corrupt sliced output from a worker".into()));
            };
            *input = rest;
            if mark == PLACED {
                // The worker wrote them into this process's slice.
                return Ok(());
            }
            let len = elems.len() * size_of::<T>();
            if mark != SHIPPED || input.len() < len {
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
