//! The domain of a `#[parfor]` loop, dispatched on its type: an indexed source (a slice, a
//! `Vec`, an array, an integer range, a [`crate::Source`] collection) runs as one call of
//! [`fold`](crate::fold::fold); a lazy iterator (`reader.lines()`, `rx.iter()`, a generator)
//! is pulled on the caller's thread, a window of blocks at a time, each window one call of
//! `fold` over the items pulled so far.
//!
//! # How the macro finds the domain
//!
//! * `&v` (and `&v` with `.enumerate()`): [`LoopRef`] on `&(v)`, so `v` may be a slice, a
//!   `Vec`, an array, a [`crate::Source`], or a reference to any of them.
//! * any other expression `e` (`v.iter()`, `lines`, `rx.iter()`, `(0..n).map(f)`): the value
//!   `IntoIterator::into_iter(e)`, held in a [`LoopHold`], and one method on `&mut hold`
//!   (autoref specialization, as for `parmap!`'s single source): a slice's iterator or an
//!   integer range keeps random access ([`LoopHoldIndexed`]), any other iterator is lazy
//!   ([`LoopHoldLazy`]).
//!
//! Both give a [`LoopDomain`], whose [`LoopDomain::run`] runs the loop.
//!
//! # Lazy loops
//!
//! Blocks are [`LAZY_CHUNK`] items (or the `chunk` option), counted from the first item and
//! never derived from a size hint, so the blocks, and therefore every reduction (combined in
//! block order), are the same on every engine and worker count. The caller's thread pulls a
//! window of [`LAZY_BLOCKS_PER_WORKER`] blocks per worker ([`LAZY_FORK_BLOCKS_PER_WORKER`] on
//! the fork engine, whose workers are forked per window), runs it, combines its block states
//! into the loop's variables, and pulls the next: at most one window of items is in memory.
//! Fork workers read the window's items copy-on-write (they are pulled before the fork), so
//! items never need serde; reductions and sliced outputs travel back as for any loop.

use crate::config::Engine;
use crate::fold::{Cursor, LoopCall, fold_with};
use crate::locals::Locals;
use crate::options::Options;
use crate::slice_out::Sliced;
use crate::source::{Custom, Int, IntRange, Source};
use crate::stream::items::{Feed, Work};
use std::ops::{Range, RangeInclusive};

/// Items per block of a `#[parfor]` loop over a lazy iterator without a `chunk` option.
///
/// Every block's items fold into one partial result, and the partial results combine in
/// block order; so the blocks, not the engine or the worker count, decide how a floating-point
/// sum is grouped. 1024 items keep the per-block cost (a hand-out, a state, a combine) well
/// below the work of any loop worth running in parallel.
///
/// ```
/// use parfor::parfor;
///
/// #[parfor]
/// fn total(text: &str) -> usize {
///     let mut n = 0;
///     #[parfor] // blocks of `LAZY_CHUNK` lines; `chunk = 64` would make them 64
///     for line in text.lines() {
///         n += line.len();
///     }
///     n
/// }
///
/// assert_eq!(total("ab\ncde\n"), 5);
/// assert_eq!(parfor::LAZY_CHUNK, 1024);
/// ```
pub const LAZY_CHUNK: usize = 1024;

/// Blocks per worker that a lazy `#[parfor]` loop pulls into memory at a time on the serial
/// and threads engines (a window): enough that the workers rarely wait at the end of a
/// window; the window bounds the items in memory.
///
/// ```
/// // On 2 worker threads with the default chunk, at most this many items are in memory.
/// let window = parfor::LAZY_CHUNK * parfor::LAZY_BLOCKS_PER_WORKER * 2;
/// assert_eq!(window, 16 * 1024);
/// ```
pub const LAZY_BLOCKS_PER_WORKER: usize = 8;

/// Blocks per worker in a window of a lazy `#[parfor]` loop on the fork engine, which forks
/// its workers once per window (a bigger window amortizes the forks).
///
/// ```
/// // On 2 fork workers with the default chunk, a window holds this many items.
/// let window = parfor::LAZY_CHUNK * parfor::LAZY_FORK_BLOCKS_PER_WORKER * 2;
/// assert_eq!(window, 128 * 1024);
/// ```
pub const LAZY_FORK_BLOCKS_PER_WORKER: usize = 64;

/// How iteration `pos` of one call of the loop body gets its item.
pub trait LoopItems: Copy + Sync {
    /// The loop variable (before `.enumerate()`).
    type Item;

    /// The item at position `pos` of the current call.
    ///
    /// # Safety
    /// Called at most once per position per call (each position runs at most once, as the
    /// engines guarantee), and only while the call runs.
    unsafe fn item(self, pos: usize) -> Self::Item;

    /// The index of the item at position `pos` among all the loop's items (what
    /// `.enumerate()` gives).
    fn index(self, pos: usize) -> usize;
}

impl<S: Source> LoopItems for S {
    type Item = S::Item;

    #[inline(always)]
    unsafe fn item(self, pos: usize) -> S::Item {
        self.get(pos)
    }

    #[inline(always)]
    fn index(self, pos: usize) -> usize {
        pos
    }
}

/// The items of one window of a lazy loop, each taken once by the iteration that runs it.
pub struct Window<T> {
    ptr: *mut Option<T>,
    len: usize,
    start: usize,
}

impl<T> Clone for Window<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Window<T> {}

// SAFETY: a `Window` hands each item to the one iteration that runs it (the contract of
// `LoopItems::item`), which may run on another thread: moving a `T` there needs `T: Send`.
unsafe impl<T: Send> Sync for Window<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for Window<T> {}

impl<T: Send> LoopItems for Window<T> {
    type Item = T;

    #[inline(always)]
    unsafe fn item(self, pos: usize) -> T {
        assert!(pos < self.len, "parfor: internal error: position {pos} outside its window");
        let slot = self.ptr.wrapping_add(pos);
        let item = if std::mem::needs_drop::<T>() {
            // SAFETY: in bounds (checked); the window's items live in the window's vector for
            // the whole call, and only the iteration at `pos` touches element `pos` (the
            // caller's contract), so this is the only access. Taking the item leaves `None`,
            // so the vector does not drop it again.
            unsafe { (*slot).take() }
        } else {
            // SAFETY: as above, for reading. A bitwise copy of an item that needs no drop
            // leaves nothing to drop twice; not writing the slot keeps a fork worker from
            // copying the window's pages (copy-on-write) just to mark items taken.
            unsafe { slot.read() }
        };
        match item {
            Some(t) => t,
            None => unreachable!("parfor: an item of a lazy loop is taken once"),
        }
    }

    #[inline(always)]
    fn index(self, pos: usize) -> usize {
        self.start + pos
    }
}

/// A loop's domain: runs the loop.
///
/// `body(state, local, ctx, items, range, cursor)` runs the iterations of `range` (positions
/// in the current call), getting each item from `items`. [`LoopDomain::run`] returns the
/// block states in block order, one vector per window (a single one for an indexed domain),
/// for the caller to combine into the loop's variables as they come: a lazy loop pulls and
/// runs its next window when the caller asks for it.
pub trait LoopDomain {
    /// Where the body gets its items.
    type Items: LoopItems;

    /// Runs the loop `call` describes (see [`LoopCall`]) with `body`, which also gets the
    /// items.
    #[track_caller]
    fn run<'r, S, C, I, B, W, L>(
        self,
        call: LoopCall<'r, S, C, I, L>,
        body: B,
    ) -> impl Iterator<Item = Vec<S>> + 'r
    where
        Self: 'r,
        S: Send + 'r,
        C: Copy + Sync + 'r,
        I: Fn() -> S + Sync + 'r,
        B: Fn(&mut S, &mut W, C, Self::Items, Range<usize>, &mut Cursor<'_>) + Sync + 'r,
        W: Send + 'r,
        L: Fn() -> W + Sync + 'r;
}

impl<D: Source> LoopDomain for D {
    type Items = D;

    #[track_caller]
    fn run<'r, S, C, I, B, W, L>(
        self,
        call: LoopCall<'r, S, C, I, L>,
        body: B,
    ) -> impl Iterator<Item = Vec<S>> + 'r
    where
        Self: 'r,
        S: Send + 'r,
        C: Copy + Sync + 'r,
        I: Fn() -> S + Sync + 'r,
        B: Fn(&mut S, &mut W, C, D, Range<usize>, &mut Cursor<'_>) + Sync + 'r,
        W: Send + 'r,
        L: Fn() -> W + Sync + 'r,
    {
        let n = self.len();
        let ctx = (call.ctx, self);
        let call = call.with_ctx(ctx);
        let body = move |s: &mut S, w: &mut W, (c, d), range, cursor: &mut Cursor<'_>| {
            body(s, w, c, d, range, cursor)
        };
        std::iter::once(fold_with(&Locals::new(), n, call, body))
    }
}

/// A lazy iterator as a loop's domain.
pub struct Lazy<I> {
    it: I,
    /// Its items are `&mut` references: a fork worker's changes through them would be lost.
    mut_items: bool,
}

/// What the items of a lazy loop must be: they are pulled on the caller's thread and run
/// on worker threads.
#[diagnostic::on_unimplemented(
    message = "the items of a lazy `#[parfor]` loop go to worker threads, so `{Self}` must be \
               `Send`",
    label = "an iterator of `{Self}`",
    note = "the iterator itself stays on the caller's thread; make its items `Send` (an `Arc` \
            rather than an `Rc`, owned data), or collect them into a `Vec` and loop over `&v`"
)]
pub trait LoopItem: Send {}

impl<T: Send> LoopItem for T {}

impl<I: Iterator> Lazy<I> {
    /// Requires items that can go to worker threads, with [`LoopItem`]'s message (the
    /// generated code calls it before running the loop; an indexed domain has the no-op of
    /// [`LoopCheck`]).
    #[inline(always)]
    pub fn parfor_check_items(&self)
    where
        I::Item: LoopItem,
    {
    }
}

/// The item check of an indexed domain: nothing to check (see [`Lazy::parfor_check_items`]).
pub trait LoopCheck {
    /// Nothing.
    #[inline(always)]
    fn parfor_check_items(&self) {}
}

impl<D: Source> LoopCheck for D {}

impl<It> LoopDomain for Lazy<It>
where
    It: Iterator,
    It::Item: LoopItem,
{
    type Items = Window<It::Item>;

    #[track_caller]
    fn run<'r, S, C, I, B, W, L>(
        self,
        call: LoopCall<'r, S, C, I, L>,
        body: B,
    ) -> impl Iterator<Item = Vec<S>> + 'r
    where
        Self: 'r,
        S: Send + 'r,
        C: Copy + Sync + 'r,
        I: Fn() -> S + Sync + 'r,
        B: Fn(&mut S, &mut W, C, Window<It::Item>, Range<usize>, &mut Cursor<'_>) + Sync + 'r,
        W: Send + 'r,
        L: Fn() -> W + Sync + 'r,
    {
        let opts = call.opts;
        let run = crate::engine::resolve(opts);
        if run.engine == Engine::Fork && self.mut_items {
            panic!(
                "parfor: this `#[parfor]` loop cannot run on the fork engine: its items are \
                 `&mut` references (`iter_mut()`, `chunks_mut(..)`, `values_mut()`), through \
                 which a worker process would change only its own copy (the change would be \
                 lost); loop over a slice with `&mut v` or `v.iter_mut()` (whose elements the \
                 fork engine sends back), or run the loop on the threads engine"
            );
        }
        if run.engine == Engine::Mpi {
            panic!(
                "parfor: a `#[parfor]` loop over a lazy iterator does not run on the mpi engine \
                 (every rank would have to pull the same iterator); collect it first \
                 (`.collect::<Vec<_>>()`) and loop over `&v`, or choose the threads or fork \
                 engine for this loop"
            );
        }
        let chunk = opts.chunk.unwrap_or(LAZY_CHUNK).max(1);
        let per_worker = match run.engine {
            Engine::Fork => LAZY_FORK_BLOCKS_PER_WORKER,
            _ => LAZY_BLOCKS_PER_WORKER,
        };
        LazyRun {
            feed: Feed::pull(Box::new(self.it)),
            window: chunk.saturating_mul(per_worker.saturating_mul(run.workers.count.max(1))),
            // Every window is cut into blocks of `chunk` items; the loop draws one progress
            // line of its own, without a total.
            opts: opts.clone().chunk(chunk).progress(false),
            bar: if opts.progress { crate::progress::stream_bar(None) } else { None },
            locals: Locals::new(),
            call,
            body,
        }
    }
}

/// A lazy loop, run window by window as its caller asks for the block states.
struct LazyRun<'r, T, S, C, I, B, W, L> {
    feed: Feed<'r, T>,
    window: usize,
    /// The options of each window's call (blocks of `chunk` items, no progress bar).
    opts: Options,
    bar: Option<indicatif::ProgressBar>,
    locals: Locals<W>,
    /// The loop as the caller described it.
    call: LoopCall<'r, S, C, I, L>,
    body: B,
}

impl<T, S, C, I, B, W, L> Iterator for LazyRun<'_, T, S, C, I, B, W, L>
where
    T: Send,
    S: Send,
    C: Copy + Sync,
    I: Fn() -> S + Sync,
    B: Fn(&mut S, &mut W, C, Window<T>, Range<usize>, &mut Cursor<'_>) + Sync,
    W: Send,
    L: Fn() -> W + Sync,
{
    type Item = Vec<S>;

    fn next(&mut self) -> Option<Vec<S>> {
        let Some(Work::Items(start, items)) = self.feed.next(self.window) else {
            if let Some(bar) = self.bar.take() {
                bar.finish();
            }
            return None;
        };
        let mut cells: Vec<Option<T>> = items.into_iter().map(Some).collect();
        let n = cells.len();
        let items = Window { ptr: cells.as_mut_ptr(), len: n, start };
        // Sliced outputs are indexed by the item's index: position `p` of this window writes
        // element `start + p`.
        let shifted: Vec<Shifted<'_>> =
            self.call.outputs.iter().map(|&inner| Shifted { inner, by: start }).collect();
        let shifted: Vec<&dyn Sliced> = shifted.iter().map(|s| s as &dyn Sliced).collect();
        let c = &self.call;
        let (describe, body) = (c.describe, &self.body);
        let call = LoopCall {
            opts: &self.opts,
            per_worker: c.per_worker,
            wire: c.wire,
            outputs: &shifted,
            describe: &|p| describe(start + p),
            ctx: (c.ctx, items),
            init: &c.init,
            local_init: &c.local_init,
        };
        let states = fold_with(
            &self.locals,
            n,
            call,
            |s: &mut S, w: &mut W, (ctx, items), range, cursor: &mut Cursor<'_>| {
                body(s, w, ctx, items, range, cursor)
            },
        );
        // The items no iteration took are dropped here, once every worker is done with the
        // window.
        drop(cells);
        if let Some(bar) = &self.bar {
            bar.inc(n as u64);
        }
        Some(states)
    }
}

/// A sliced output seen from one window of a lazy loop: positions are shifted by the
/// window's first item.
struct Shifted<'a> {
    inner: &'a dyn Sliced,
    by: usize,
}

impl Sliced for Shifted<'_> {
    fn encode(&self, pos: Range<usize>, out: &mut Vec<u8>) -> Result<(), crate::Cause> {
        self.inner.encode(pos.start + self.by..pos.end + self.by, out)
    }

    fn decode(&self, pos: Range<usize>, input: &mut &[u8]) -> Result<(), crate::Cause> {
        self.inner.decode(pos.start + self.by..pos.end + self.by, input)
    }
}

/// `&v` as a loop's domain: a slice, a `Vec`, an array, a reference to one of them, or a
/// [`crate::Source`] collection (or a reference to one). The macro calls
/// `LoopRef::parfor_loop_over_a_slice_vec_array_or_parfor_source(&(v))`.
#[diagnostic::on_unimplemented(
    message = "a `#[parfor]` loop over `&v` cannot iterate over `{Self}`",
    label = "not a slice, `Vec`, array or `parfor::Source` collection",
    note = "`&v` loops read slices, `Vec`s, arrays and collections that implement \
            `parfor::Source` (a length and an indexed get) by index; to run over any iterator \
            lazily, write the iterator (`v.iter()`, `v.values()`); or collect the items first \
            (`.collect::<Vec<_>>()`)"
)]
pub trait LoopRef<'a> {
    /// The borrowed source.
    type Domain: LoopDomain;

    /// Borrows `self` as the domain.
    fn parfor_loop_over_a_slice_vec_array_or_parfor_source(&'a self) -> Self::Domain;
}

macro_rules! loop_ref_slices {
    ($([$($g:tt)*] $t:ty;)*) => {$(
        impl<'a, $($g)*> LoopRef<'a> for $t
        where
            T: Sync + 'a,
        {
            type Domain = &'a [T];

            #[inline(always)]
            fn parfor_loop_over_a_slice_vec_array_or_parfor_source(&'a self) -> &'a [T] {
                &self[..]
            }
        }
    )*};
}

loop_ref_slices! {
    [T] [T];
    [T] Vec<T>;
    [T, const N: usize] [T; N];
    [T] &[T];
    [T] &mut [T];
    [T] &Vec<T>;
    [T] &mut Vec<T>;
    [T, const N: usize] &[T; N];
    [T, const N: usize] &mut [T; N];
}

impl<'a, S: crate::Source + 'a> LoopRef<'a> for S {
    type Domain = Custom<'a, S>;

    #[inline(always)]
    fn parfor_loop_over_a_slice_vec_array_or_parfor_source(&'a self) -> Custom<'a, S> {
        Custom::new(self)
    }
}

/// The holder of a loop's iterator (the domain `e` of `for x in e`, after `into_iter`).
pub struct LoopHold<I>(Option<I>);

impl<I> LoopHold<I> {
    /// Holds `it`.
    #[inline(always)]
    pub fn new(it: I) -> LoopHold<I> {
        LoopHold(Some(it))
    }

    #[inline(always)]
    fn held(&self) -> &I {
        match &self.0 {
            Some(it) => it,
            None => unreachable!("parfor: an indexed domain is never taken"),
        }
    }
}

/// An iterator that keeps random access (a slice's `iter()`, an integer range): found first.
pub trait LoopHoldIndexed {
    /// The domain (a [`LoopDomain`]).
    type Domain;
    /// The domain.
    fn parfor_loop_domain(&mut self) -> Self::Domain;
}

impl<'a, T: Sync> LoopHoldIndexed for LoopHold<std::slice::Iter<'a, T>> {
    type Domain = &'a [T];
    #[inline(always)]
    fn parfor_loop_domain(&mut self) -> &'a [T] {
        self.held().as_slice()
    }
}

impl<T: Int> LoopHoldIndexed for LoopHold<Range<T>> {
    type Domain = IntRange<T>;
    #[inline(always)]
    fn parfor_loop_domain(&mut self) -> IntRange<T> {
        crate::source::AsSource::parmap_source_must_be_a_slice_or_an_integer_range(self.held())
    }
}

impl<T: Int> LoopHoldIndexed for LoopHold<RangeInclusive<T>> {
    type Domain = IntRange<T>;
    #[inline(always)]
    fn parfor_loop_domain(&mut self) -> IntRange<T> {
        crate::source::AsSource::parmap_source_must_be_a_slice_or_an_integer_range(self.held())
    }
}

/// An iterator of `&mut` references: lazy, and refused by the fork engine, whose workers
/// would change only their own copies of the items (found with [`LoopHoldIndexed`]; the two
/// never both apply).
pub trait LoopHoldLazyMut {
    /// The domain (a [`LoopDomain`]).
    type Domain;
    /// Takes the iterator out of the holder.
    fn parfor_loop_domain(&mut self) -> Self::Domain;
}

impl<'a, T, I> LoopHoldLazyMut for LoopHold<I>
where
    T: ?Sized + 'a,
    I: Iterator<Item = &'a mut T>,
{
    type Domain = Lazy<I>;
    #[inline(always)]
    fn parfor_loop_domain(&mut self) -> Lazy<I> {
        match self.0.take() {
            Some(it) => Lazy { it, mut_items: true },
            None => unreachable!("parfor: a lazy domain is taken once"),
        }
    }
}

/// Any other iterator: lazy (found by autoref, after [`LoopHoldIndexed`]).
pub trait LoopHoldLazy {
    /// The domain (a [`LoopDomain`]).
    type Domain;
    /// Takes the iterator out of the holder.
    fn parfor_loop_domain(&mut self) -> Self::Domain;
}

impl<I: Iterator> LoopHoldLazy for &mut LoopHold<I> {
    type Domain = Lazy<I>;
    #[inline(always)]
    fn parfor_loop_domain(&mut self) -> Lazy<I> {
        match self.0.take() {
            Some(it) => Lazy { it, mut_items: false },
            None => unreachable!("parfor: a lazy domain is taken once"),
        }
    }
}
