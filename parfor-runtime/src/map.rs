//! `parmap!`'s runtime: map a function over the Cartesian product (or the zip) of `K`
//! sources, results in row-major order, written in place into the output vector.

use crate::engine;
use crate::error::{Cause, OnError, TaskError};
use crate::job::{Failures, Job, decode_cause, encode_cause, guarded, stop_error};
use crate::options::Options;
use crate::plan::Plan;
use crate::wire::Wire;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

/// The index space of `K` sources: their Cartesian product (first source outermost) or,
/// zipped, their element-wise pairing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape<const K: usize> {
    lens: [usize; K],
    zip: bool,
}

impl<const K: usize> Shape<K> {
    /// The Cartesian product of sources of lengths `lens`.
    pub fn product(lens: [usize; K]) -> Shape<K> {
        Shape { lens, zip: false }
    }

    /// The element-wise pairing of sources of lengths `lens`.
    ///
    /// # Panics
    /// When the lengths differ: zipping would silently drop items.
    pub fn zip(lens: [usize; K]) -> Shape<K> {
        if lens.iter().any(|&l| l != lens[0]) {
            panic!("parmap!: `zip = true` needs sources of equal length, got lengths {lens:?}");
        }
        Shape { lens, zip: true }
    }

    /// The number of items.
    ///
    /// # Panics
    /// When the product overflows `usize`.
    pub fn len(&self) -> usize {
        if K == 0 {
            return 0;
        }
        if self.zip {
            return self.lens[0];
        }
        self.lens
            .iter()
            .try_fold(1usize, |acc, &l| acc.checked_mul(l))
            .unwrap_or_else(|| {
                panic!(
                    "parmap!: the product of the source lengths {:?} overflows usize",
                    self.lens
                )
            })
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The index in each source of flat item `flat`.
    pub fn indices(&self, flat: usize) -> [usize; K] {
        let mut idx = [flat; K];
        if !self.zip {
            let mut rest = flat;
            for k in (0..K).rev() {
                idx[k] = rest % self.lens[k];
                rest /= self.lens[k];
            }
        }
        idx
    }

    /// Steps `idx` to the next item in row-major order.
    #[inline(always)]
    fn advance(&self, idx: &mut [usize; K]) {
        if self.zip {
            for i in idx.iter_mut() {
                *i += 1;
            }
            return;
        }
        for k in (0..K).rev() {
            idx[k] += 1;
            if idx[k] < self.lens[k] || k == 0 {
                return;
            }
            idx[k] = 0;
        }
    }

    fn error(&self, flat: usize, cause: Cause) -> TaskError {
        TaskError::new(flat, self.indices(flat).to_vec(), cause)
    }
}

/// How a call's results are stored: `R` itself (`fail`), or `Result<R, TaskError>` (`collect`).
trait Mode<R>: Sync {
    type Slot: Send;
    fn ok(r: R) -> Self::Slot;
    /// The slot for a failed item, when failures are collected.
    fn err(e: TaskError) -> Option<Self::Slot>;
}

struct FailMode;
struct CollectMode;

impl<R: Send> Mode<R> for FailMode {
    type Slot = R;
    #[inline(always)]
    fn ok(r: R) -> R {
        r
    }
    fn err(_: TaskError) -> Option<R> {
        None
    }
}

impl<R: Send> Mode<R> for CollectMode {
    type Slot = Result<R, TaskError>;
    #[inline(always)]
    fn ok(r: R) -> Self::Slot {
        Ok(r)
    }
    fn err(e: TaskError) -> Option<Self::Slot> {
        Some(Err(e))
    }
}

/// The output vector's buffer, written from many workers at disjoint indices.
struct Out<S>(*mut MaybeUninit<S>, usize);

// SAFETY: workers write disjoint slots (each item index is run by exactly one worker at a
// time, see `MapJob::write`), so sharing the pointer is like sharing `&mut` to disjoint
// sub-slices; `S: Send` because the values move to the caller's thread.
unsafe impl<S: Send> Sync for Out<S> {}
// SAFETY: as above.
unsafe impl<S: Send> Send for Out<S> {}

struct MapJob<'a, const K: usize, R, F, M: Mode<R>> {
    shape: Shape<K>,
    plan: Plan,
    f: &'a F,
    out: Out<M::Slot>,
    /// Blocks whose every slot holds a value (used to drop them if the call fails).
    complete: Vec<AtomicBool>,
    failures: Failures,
    wire: Option<Wire<R>>,
}

impl<const K: usize, R, F, M> MapJob<'_, K, R, F, M>
where
    R: Send,
    F: Fn([usize; K]) -> R + Sync,
    M: Mode<R>,
{
    /// Writes slot `i`.
    ///
    /// Every slot is written at most once: the plan's blocks are disjoint, an engine runs a
    /// range of a block only once, and only re-runs the unfinished tail of a range whose
    /// worker died (whose results never reached this process).
    #[inline(always)]
    fn write(&self, i: usize, v: M::Slot) {
        assert!(i < self.out.1, "parfor: item {i} out of range");
        // SAFETY: `i` is in bounds (asserted above) and no other worker writes slot `i`
        // (see the doc comment), so this is an exclusive write to a live allocation.
        unsafe { (*self.out.0.add(i)).write(v) };
    }

    /// Drops slots `range`, which were written.
    fn drop_slots(&self, range: Range<usize>) {
        assert!(range.end <= self.out.1);
        for i in range {
            // SAFETY: the caller says slot `i` was written, and it is dropped only once: the
            // slot belongs to a block that this call then reports as incomplete.
            unsafe { (*self.out.0.add(i)).assume_init_drop() };
        }
    }

    fn mark_complete(&self, block: usize, range: &Range<usize>) {
        if *range == self.plan.range(block) {
            self.complete[block].store(true, Ordering::Release);
        }
    }

    /// Records the failure of item `i` and stores its error slot when collecting; whether to
    /// go on.
    fn failed(&self, i: usize, cause: Cause) -> bool {
        match M::err(self.shape.error(i, cause.clone())) {
            Some(slot) => {
                self.write(i, slot);
                true
            }
            None => {
                self.failures.record(i, cause);
                false
            }
        }
    }
}

impl<const K: usize, R, F, M> Job for MapJob<'_, K, R, F, M>
where
    R: Send,
    F: Fn([usize; K]) -> R + Sync,
    M: Mode<R>,
{
    fn run(&self, block: usize, range: Range<usize>) {
        let mut ok = true;
        guarded(
            range.clone(),
            self.failures.catch(),
            |sub, cur| {
                let mut idx = self.shape.indices(sub.start);
                for i in sub {
                    *cur = i;
                    let r = (self.f)(idx);
                    self.write(i, M::ok(r));
                    self.shape.advance(&mut idx);
                }
            },
            |i, cause| {
                let go_on = self.failed(i, cause);
                if !go_on {
                    // Fail mode never resumes a range, so items `range.start..i` were written:
                    // drop these partial results.
                    self.drop_slots(range.start..i);
                    ok = false;
                }
                go_on
            },
        );
        if ok {
            self.mark_complete(block, &range);
        }
    }

    fn run_encoded(
        &self,
        _block: usize,
        range: Range<usize>,
        out: &mut Vec<u8>,
    ) -> Result<(), Cause> {
        let wire = self.wire.ok_or_else(|| {
            Cause::Engine(format!(
                "the fork engine needs results that implement serde's Serialize and \
                 DeserializeOwned; `{}` does not",
                std::any::type_name::<R>()
            ))
        })?;
        let mut err = None;
        let out = std::cell::RefCell::new(out);
        guarded(
            range,
            true,
            |sub, cur| {
                let mut idx = self.shape.indices(sub.start);
                for i in sub {
                    *cur = i;
                    let r = (self.f)(idx);
                    let mut out = out.borrow_mut();
                    out.push(0);
                    if let Err(e) = wire.encode(&r, &mut out) {
                        err = Some(Cause::Engine(e));
                    }
                    self.shape.advance(&mut idx);
                }
            },
            |_, cause| {
                let mut out = out.borrow_mut();
                out.push(1);
                encode_cause(&cause, &mut out);
                self.failures.collect()
            },
        );
        err.map_or(Ok(()), Err)
    }

    fn store_encoded(&self, block: usize, range: Range<usize>, bytes: &[u8]) -> Result<(), Cause> {
        let wire = self
            .wire
            .ok_or_else(|| Cause::Engine("no wire for results".into()))?;
        let mut input = bytes;
        let corrupt = |e: String| Cause::Engine(format!("corrupt results from a worker: {e}"));
        for i in range.clone() {
            let Some((&tag, rest)) = input.split_first() else {
                // A fail-mode worker stops at its first failure.
                self.drop_slots(range.start..i);
                return Ok(());
            };
            input = rest;
            if tag == 0 {
                let v = wire.decode(&mut input).map_err(corrupt)?;
                self.write(i, M::ok(v));
            } else {
                let cause = decode_cause(&mut input)?;
                if !self.failed(i, cause) {
                    self.drop_slots(range.start..i);
                    return Ok(());
                }
            }
        }
        self.mark_complete(block, &range);
        Ok(())
    }

    fn failures(&self) -> &Failures {
        &self.failures
    }

    fn fail(&self, index: usize, cause: Cause) {
        self.failed(index, cause);
    }
}

fn map_with<const K: usize, R, F, M>(
    shape: Shape<K>,
    opts: &Options,
    wire: Option<Wire<R>>,
    f: &F,
) -> Result<Vec<M::Slot>, TaskError>
where
    R: Send,
    F: Fn([usize; K]) -> R + Sync,
    M: Mode<R>,
{
    let n = shape.len();
    let plan = Plan::new(n, opts.chunk);
    let run = engine::resolve(opts);
    let mut out: Vec<MaybeUninit<M::Slot>> = Vec::with_capacity(n);
    // SAFETY: `MaybeUninit` needs no initialization and the capacity is `n`.
    unsafe { out.set_len(n) };
    let job = MapJob::<K, R, F, M> {
        shape,
        plan,
        f,
        out: Out(out.as_mut_ptr(), n),
        complete: (0..plan.blocks()).map(|_| AtomicBool::new(false)).collect(),
        failures: crate::job::Failures::new(run.engine, opts.on_error),
        wire,
    };
    engine::execute(&job, &plan, &run);
    if let Some((i, cause)) = job.failures.take_first() {
        for b in 0..plan.blocks() {
            if job.complete[b].load(Ordering::Acquire) {
                job.drop_slots(plan.range(b));
            }
        }
        // `out` now holds no live value; dropping it frees the buffer only.
        return Err(stop_error(i, shape.indices(i).to_vec(), cause));
    }
    assert!(
        job.complete.iter().all(|c| c.load(Ordering::Acquire)),
        "parfor: internal error: an engine returned with unfinished blocks"
    );
    let mut out = std::mem::ManuallyDrop::new(out);
    let (ptr, len, cap) = (out.as_mut_ptr(), out.len(), out.capacity());
    // SAFETY: every slot was written (every block is complete), `MaybeUninit<S>` has the
    // layout of `S`, and the buffer came from a `Vec` of the same element layout.
    Ok(unsafe { Vec::from_raw_parts(ptr.cast::<M::Slot>(), len, cap) })
}

/// Maps `f` over `shape`; in `fail` mode, panics naming the failed item.
///
/// `f` receives each item's index in every source. `wire` lets the fork engine ship results
/// back (see [`crate::wire`]).
pub fn map<const K: usize, R, F>(
    shape: Shape<K>,
    opts: &Options,
    wire: Option<Wire<R>>,
    f: F,
) -> Vec<R>
where
    R: Send,
    F: Fn([usize; K]) -> R + Sync,
{
    if opts.on_error == OnError::Collect {
        panic!("parfor: internal error: `map` called with on_error = \"collect\"; use `try_map`");
    }
    match map_with::<K, R, F, FailMode>(shape, opts, wire, &f) {
        Ok(v) => v,
        Err(e) => panic!("parfor: {e}"),
    }
}

/// Maps `f` over `shape`, running every item; one `Result` per item.
pub fn try_map<const K: usize, R, F>(
    shape: Shape<K>,
    opts: &Options,
    wire: Option<Wire<R>>,
    f: F,
) -> Vec<Result<R, TaskError>>
where
    R: Send,
    F: Fn([usize; K]) -> R + Sync,
{
    let opts = opts.clone().on_error(OnError::Collect);
    match map_with::<K, R, F, CollectMode>(shape, &opts, wire, &f) {
        Ok(v) => v,
        Err(e) => panic!("parfor: internal error: a collecting call stopped: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odometer_matches_division() {
        let s = Shape::product([3, 1, 4]);
        let mut idx = s.indices(0);
        for flat in 0..s.len() {
            assert_eq!(idx, s.indices(flat), "flat {flat}");
            s.advance(&mut idx);
        }
        let z = Shape::zip([5, 5]);
        assert_eq!(z.len(), 5);
        assert_eq!(z.indices(3), [3, 3]);
    }

    #[test]
    #[should_panic(expected = "equal length, got lengths [3, 4]")]
    fn zip_of_unequal_lengths_panics() {
        let _ = Shape::zip([3, 4]);
    }
}
