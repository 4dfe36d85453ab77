//! `parmap!`'s runtime: map a function over the Cartesian product (or the zip) of `K`
//! sources, results in row-major order, written in place into the output vector.

use crate::engine;
use crate::error::{Cause, OnError, TaskError};
use crate::job::{Failures, Job, Remote, guarded};
use crate::locals::Locals;
use crate::options::Options;
use crate::plan::Plan;
use crate::protocol::{Decoder, Encoder, Entry};
use crate::wire::{Wire, required};
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

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
        self.lens.iter().try_fold(1usize, |acc, &l| acc.checked_mul(l)).unwrap_or_else(|| {
            panic!("parmap!: the product of the source lengths {:?} overflows usize", self.lens)
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
    pub(crate) fn advance(&self, idx: &mut [usize; K]) {
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
    /// `Slot` is `R` itself.
    const DIRECT: bool;
    fn ok(r: R) -> Self::Slot;
    /// The slot for a failed item, when failures are collected.
    fn err(e: TaskError) -> Option<Self::Slot>;

    /// Stores `n` results read from `src` into `dst` (plain-old-data results of the fork
    /// engine, see [`Remote::store`]).
    ///
    /// # Safety
    /// `src` holds `n` valid values of `R`, which implements [`crate::wire::Pod`] (so reading
    /// them copies them and leaves nothing to drop); `dst` is valid for `n` writes and does
    /// not overlap `src`.
    unsafe fn store_pod(src: *const R, dst: *mut MaybeUninit<Self::Slot>, n: usize) {
        for k in 0..n {
            // SAFETY: `k < n`, in bounds of both by the caller's contract.
            unsafe { (*dst.add(k)).write(Self::ok(src.add(k).read())) };
        }
    }
}

struct FailMode;
struct CollectMode;

impl<R: Send> Mode<R> for FailMode {
    type Slot = R;
    const DIRECT: bool = true;
    #[inline(always)]
    fn ok(r: R) -> R {
        r
    }
    fn err(_: TaskError) -> Option<R> {
        None
    }
    unsafe fn store_pod(src: *const R, dst: *mut MaybeUninit<R>, n: usize) {
        if src == dst.cast::<R>().cast_const() {
            // Read in place (see `Remote::raw_target`).
            return;
        }
        // SAFETY: the slots are the values themselves: one bulk copy, in bounds and
        // non-overlapping by the caller's contract.
        unsafe { std::ptr::copy_nonoverlapping(src, dst.cast::<R>(), n) };
    }
}

impl<R: Send> Mode<R> for CollectMode {
    type Slot = Result<R, TaskError>;
    const DIRECT: bool = false;
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

struct MapJob<'a, const K: usize, R, F, M: Mode<R>, W, L> {
    shape: Shape<K>,
    plan: Plan,
    f: &'a F,
    /// Makes a worker's own state (`parmap!(..; init = make_state)`).
    init: &'a L,
    locals: Locals<W>,
    out: Out<M::Slot>,
    /// Per block, how many of its slots hold a value; a block whose count reaches its length
    /// is complete (complete blocks are dropped if the call fails). Counting items rather
    /// than flagging whole ranges lets the fork engine finish a block in sub-ranges after a
    /// worker process died in it.
    stored: Vec<AtomicUsize>,
    failures: Failures,
    wire: Option<Wire<R>>,
}

impl<const K: usize, R, F, M, W, L> MapJob<'_, K, R, F, M, W, L>
where
    R: Send,
    F: Fn(&mut W, [usize; K]) -> R + Sync,
    M: Mode<R>,
    W: Send,
    L: Fn() -> W + Sync,
{
    /// Runs the items of `sub` in order with the worker's state `w`, handing each result to
    /// `sink`: the loop every way of running a range shares. Sets `*cur` to each item before
    /// running it (for `guarded`) and, in a fork worker (`hook`), tells the parent which item
    /// runs.
    #[inline(always)]
    fn each_item(
        &self,
        w: &mut W,
        sub: Range<usize>,
        cur: &mut usize,
        hook: Option<engine::ItemHook>,
        mut sink: impl FnMut(usize, R),
    ) {
        let mut idx = self.shape.indices(sub.start);
        for i in sub {
            *cur = i;
            if let Some(hook) = hook {
                hook.started(i);
            }
            let r = (self.f)(w, idx);
            if let Some(hook) = hook {
                hook.finished();
            }
            sink(i, r);
            self.shape.advance(&mut idx);
        }
    }

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

    /// Counts `count` more stored slots in `block`.
    fn mark_stored(&self, block: usize, count: usize) {
        self.stored[block].fetch_add(count, Ordering::AcqRel);
    }

    fn complete(&self, block: usize) -> bool {
        self.stored[block].load(Ordering::Acquire) == self.plan.range(block).len()
    }

    /// Stores the outcomes of the first items of `range` (all of them unless a failure
    /// stopped the worker).
    fn store_items(
        &self,
        block: usize,
        range: Range<usize>,
        items: impl Iterator<Item = Result<R, Cause>>,
    ) -> Result<(), Cause> {
        let mut count = 0;
        for (i, item) in range.clone().zip(items) {
            match item {
                Ok(v) => self.write(i, M::ok(v)),
                Err(cause) => {
                    if !self.failed(i, cause) {
                        self.drop_slots(range.start..i);
                        return Ok(());
                    }
                }
            }
            count += 1;
        }
        if count != range.len() {
            self.drop_slots(range.start..range.start + count);
            return Err(Cause::Engine("a worker returned too few results".into()));
        }
        self.mark_stored(block, count);
        Ok(())
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

impl<const K: usize, R, F, M, W, L> Job for MapJob<'_, K, R, F, M, W, L>
where
    R: Send,
    F: Fn(&mut W, [usize; K]) -> R + Sync,
    M: Mode<R>,
    W: Send,
    L: Fn() -> W + Sync,
{
    fn run(&self, block: usize, range: Range<usize>) {
        let mut ok = true;
        self.locals.with(self.init, |w| {
            guarded(
                range.clone(),
                self.failures.catch(),
                |sub, cur| self.each_item(w, sub, cur, None, |i, r| self.write(i, M::ok(r))),
                |i, cause| {
                    let go_on = self.failed(i, cause);
                    if !go_on {
                        // Fail mode never resumes a range, so items `range.start..i` were
                        // written: drop these partial results.
                        self.drop_slots(range.start..i);
                        ok = false;
                    }
                    go_on
                },
            );
        });
        if ok {
            self.mark_stored(block, range.len());
        }
    }

    fn failures(&self) -> &Failures {
        &self.failures
    }

    fn fail(&self, index: usize, cause: Cause) {
        if self.failed(index, cause) {
            self.mark_stored(self.plan.block_of(index), 1);
        }
    }

    fn remote(&self) -> Option<&dyn Remote> {
        Some(self)
    }
}

impl<const K: usize, R, F, M, W, L> MapJob<'_, K, R, F, M, W, L>
where
    R: Send,
    F: Fn(&mut W, [usize; K]) -> R + Sync,
    M: Mode<R>,
    W: Send,
    L: Fn() -> W + Sync,
{
    /// [`Remote::encode`] for encoded results: one entry per item, its value or its failure.
    fn encode_items(
        &self,
        wire: Wire<R>,
        range: Range<usize>,
        hook: engine::ItemHook,
        out: &mut Encoder<'_>,
    ) {
        let out = std::cell::RefCell::new(out);
        // Set when a result failed to encode in `fail` mode: its failure is written, and the
        // range unwinds to stop there like after a panicking item.
        let unencodable = std::cell::Cell::new(false);
        self.locals.with(self.init, |w| {
            guarded(
                range,
                true,
                |sub, cur| {
                    self.each_item(w, sub, cur, Some(hook), |i, r| {
                        let mut out = out.borrow_mut();
                        if let Err(e) = out.value(|buf| wire.encode(&r, buf)) {
                            out.failure(i, &Cause::Engine(e));
                            drop(out);
                            if !self.failures.collect() {
                                unencodable.set(true);
                                std::panic::resume_unwind(Box::new(()));
                            }
                        }
                    });
                },
                |i, cause| {
                    if unencodable.replace(false) {
                        return false;
                    }
                    out.borrow_mut().failure(i, &cause);
                    self.failures.collect()
                },
            )
        });
    }

    /// [`Remote::encode`] for raw results: written to `raw`, failures to `out`.
    fn encode_raw(
        &self,
        range: Range<usize>,
        hook: engine::ItemHook,
        raw: &mut [u8],
        out: &mut Encoder<'_>,
    ) {
        assert!(
            self.raw_size().is_some() && raw.len() == range.len() * size_of::<R>(),
            "parfor: internal error: bad plain-old-data output range"
        );
        let base = raw.as_mut_ptr().cast::<R>();
        assert!(base.is_aligned(), "parfor: internal error: misaligned output range");
        let start = range.start;
        let end = range.end;
        self.locals.with(self.init, |w| {
            guarded(
                range,
                true,
                |sub, cur| {
                    self.each_item(w, sub, cur, Some(hook), |i, r| {
                        debug_assert!(i < end);
                        // SAFETY: `start <= i < end`, so the write lies inside `raw` (asserted to
                        // hold `end - start` values of `R`, aligned); `raw` is borrowed mutably.
                        // `R: Pod` (the wire is the plain-old-data one), so overwriting the
                        // previous bytes drops nothing.
                        unsafe { base.add(i - start).write(r) };
                    });
                },
                |i, cause| {
                    out.failure(i, &cause);
                    self.failures.collect()
                },
            )
        });
    }

    /// [`Remote::store`] for encoded results.
    fn store_items_encoded(
        &self,
        wire: Wire<R>,
        block: usize,
        range: Range<usize>,
        mut entries: Decoder<'_>,
    ) -> Result<(), Cause> {
        let corrupt = |e: String| Cause::Engine(format!("corrupt results from a worker: {e}"));
        // Decode the whole range before storing anything, so a decoding error leaves every
        // slot of the range free for the engine to report.
        let mut items = Vec::with_capacity(range.len());
        while let Some(entry) = entries.next(|input| wire.decode(input).map_err(corrupt)) {
            if items.len() == range.len() {
                return Err(corrupt("trailing bytes".into()));
            }
            items.push(match entry? {
                Entry::Value(v) => Ok(v),
                Entry::Failed(i, cause) if i == range.start + items.len() => Err(cause),
                Entry::Failed(i, _) => {
                    return Err(corrupt(format!("failure of item {i} out of order")));
                }
            });
        }
        // A fail-mode worker stops at its first failure, so `items` may be short.
        self.store_items(block, range, items.into_iter())
    }

    /// [`Remote::store`] for raw results.
    fn store_raw(
        &self,
        block: usize,
        range: Range<usize>,
        raw: &[u8],
        mut entries: Decoder<'_>,
    ) -> Result<(), Cause> {
        assert!(
            self.raw_size().is_some() && raw.len() == range.len() * size_of::<R>(),
            "parfor: internal error: bad plain-old-data output range"
        );
        let base = raw.as_ptr().cast::<R>();
        assert!(base.is_aligned(), "parfor: internal error: misaligned output range");
        let corrupt = || Cause::Engine("corrupt failure records from a worker".into());
        let mut fails = Vec::new();
        while let Some(entry) = entries.next(|_| Err::<(), _>(corrupt())) {
            match entry? {
                Entry::Failed(i, cause) if range.contains(&i) => fails.push((i, cause)),
                _ => return Err(corrupt()),
            }
        }
        if fails.is_empty() {
            assert!(range.end <= self.out.1);
            // SAFETY: the worker wrote `range.len()` values of `R: Pod` to `raw` before sending
            // the frame; the slots of `range` are in bounds (asserted) and written by no one
            // else (each range is stored once); the output is a separate allocation, or `raw`
            // is the slots themselves (`raw_target`), which `M::store_pod` leaves in place.
            unsafe { M::store_pod(base, self.out.0.add(range.start), range.len()) };
            self.mark_stored(block, range.len());
            return Ok(());
        }
        let mut fails = fails.into_iter().peekable();
        let start = range.start;
        let items = range.clone().map(|i| match fails.next_if(|f| f.0 == i) {
            Some((_, cause)) => Err(cause),
            // SAFETY: `i` is in `range`, so inside `raw`; the bytes are a value of `R: Pod`
            // (written by the worker, or zero, which is also a valid `Pod` value).
            None => Ok(unsafe { base.add(i - start).read() }),
        });
        self.store_items(block, range, items)
    }
}

impl<const K: usize, R, F, M, W, L> Remote for MapJob<'_, K, R, F, M, W, L>
where
    R: Send,
    F: Fn(&mut W, [usize; K]) -> R + Sync,
    M: Mode<R>,
    W: Send,
    L: Fn() -> W + Sync,
{
    fn raw_size(&self) -> Option<usize> {
        self.wire.filter(Wire::is_pod).map(|_| size_of::<R>())
    }

    fn encode(
        &self,
        _block: usize,
        range: Range<usize>,
        hook: engine::ItemHook,
        raw: &mut [u8],
        out: &mut Encoder<'_>,
    ) -> Result<(), Cause> {
        let wire = required(self.wire, "results")?;
        if wire.is_pod() {
            self.encode_raw(range, hook, raw, out);
        } else {
            self.encode_items(wire, range, hook, out);
        }
        Ok(())
    }

    fn store(
        &self,
        block: usize,
        range: Range<usize>,
        raw: &[u8],
        entries: Decoder<'_>,
    ) -> Result<(), Cause> {
        let wire = required(self.wire, "results")?;
        if wire.is_pod() {
            self.store_raw(block, range, raw, entries)
        } else {
            self.store_items_encoded(wire, block, range, entries)
        }
    }

    fn raw_target(&self, range: Range<usize>) -> Option<*mut u8> {
        if !M::DIRECT || self.raw_size().is_none() {
            return None;
        }
        assert!(range.start <= range.end && range.end <= self.out.1);
        // SAFETY: in bounds (asserted). The slots are `R` values (`M::DIRECT`), so writing
        // their bytes writes them; the engine writes only the slots of `range`, before it
        // stores `range` once.
        Some(unsafe { self.out.0.add(range.start) }.cast::<u8>())
    }
}

#[track_caller]
fn map_with<const K: usize, R, F, M, W, L>(
    shape: Shape<K>,
    opts: &Options,
    wire: Option<Wire<R>>,
    init: &L,
    f: &F,
) -> Result<Vec<M::Slot>, TaskError>
where
    R: Send,
    F: Fn(&mut W, [usize; K]) -> R + Sync,
    M: Mode<R>,
    W: Send,
    L: Fn() -> W + Sync,
{
    let n = shape.len();
    let plan = Plan::new(n, opts.chunk);
    let run = engine::resolve(opts);
    let mut out: Vec<MaybeUninit<M::Slot>> = Vec::with_capacity(n);
    // SAFETY: `MaybeUninit` needs no initialization and the capacity is `n`.
    unsafe { out.set_len(n) };
    crate::memory::advise_huge(out.as_mut_ptr().cast(), size_of_val(&out[..]));
    let job = MapJob::<K, R, F, M, W, L> {
        shape,
        plan,
        f,
        init,
        locals: Locals::new(),
        out: Out(out.as_mut_ptr(), n),
        stored: (0..plan.blocks()).map(|_| AtomicUsize::new(0)).collect(),
        failures: crate::job::Failures::new(run.engine, opts.on_error),
        wire,
    };
    engine::execute(&job, &plan, &run);
    if let Some((i, cause)) = job.failures.take_first() {
        for b in 0..plan.blocks() {
            if job.complete(b) {
                job.drop_slots(plan.range(b));
            }
        }
        // `out` now holds no live value; dropping it frees the buffer only.
        return Err(TaskError::new(i, shape.indices(i).to_vec(), cause));
    }
    assert!(
        (0..plan.blocks()).all(|b| job.complete(b)),
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
#[track_caller]
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
    map_init(shape, opts, wire, || (), move |_: &mut (), idx| f(idx))
}

/// Maps `f` over `shape`, running every item; one `Result` per item.
#[track_caller]
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
    try_map_init(shape, opts, wire, || (), move |_: &mut (), idx| f(idx))
}

/// As [`map`], with per-worker state: `f(&mut state, index)`, where `state` is made by
/// `init()` exactly once by every worker (thread or worker process) that runs items of the
/// call, and kept for every item that worker runs.
#[track_caller]
pub fn map_init<const K: usize, R, F, W, L>(
    shape: Shape<K>,
    opts: &Options,
    wire: Option<Wire<R>>,
    init: L,
    f: F,
) -> Vec<R>
where
    R: Send,
    F: Fn(&mut W, [usize; K]) -> R + Sync,
    W: Send,
    L: Fn() -> W + Sync,
{
    if opts.on_error == OnError::Collect {
        panic!("parfor: internal error: `map` called with on_error = \"collect\"; use `try_map`");
    }
    match map_with::<K, R, F, FailMode, W, L>(shape, opts, wire, &init, &f) {
        Ok(v) => v,
        Err(e) => panic!("parfor: {e}"),
    }
}

/// As [`try_map`], with per-worker state (see [`map_init`]).
#[track_caller]
pub fn try_map_init<const K: usize, R, F, W, L>(
    shape: Shape<K>,
    opts: &Options,
    wire: Option<Wire<R>>,
    init: L,
    f: F,
) -> Vec<Result<R, TaskError>>
where
    R: Send,
    F: Fn(&mut W, [usize; K]) -> R + Sync,
    W: Send,
    L: Fn() -> W + Sync,
{
    let opts = opts.clone().on_error(OnError::Collect);
    match map_with::<K, R, F, CollectMode, W, L>(shape, &opts, wire, &init, &f) {
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
