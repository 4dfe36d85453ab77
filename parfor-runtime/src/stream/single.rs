//! A call with a single source, which may be lazy: how the macros tell an indexed source
//! (slice, range, [`crate::Source`] collection) from an iterator, and run either.
//!
//! The macro holds the source in an [`Own`] and calls one method on `&mut own`, found by
//! method resolution in this order (autoref specialization):
//!
//! 1. an integer range, by value on `&mut Own<Range<T>>` ([`SingleRange`]): ranges are
//!    iterators too, but keep random access;
//! 2. an iterator, by mutable autoref on `&mut Own<I>` ([`SingleLazy`]): taken out of the
//!    holder, pulled lazily;
//! 3. anything that derefs to a slice or implements [`crate::Source`], through `Own`'s
//!    `Deref` ([`AsSource`]).
//!
//! Each returns a value implementing [`SingleSource`], which runs the call. The mapped
//! function gets each element wrapped ([`Ix`] for indexed sources, [`Lz`] for lazy ones), and
//! [`Pass`] converts it to the parameter's type (`Arg` rules for indexed elements, unchanged
//! for lazy ones); [`Natural`] unwraps it for closures with unannotated parameters.

use super::emit::{Plain, Try};
use super::{Cfg, Emit, ParIter, Spawner, iter_lazy, iter_shape};
use crate::error::TaskError;
use crate::map::Shape;
use crate::options::Options;
use crate::source::{Arg, AsSource, Int, IntRange, Source};
use crate::wire::{Probe, Wire};
use std::ops::{Deref, Range, RangeInclusive};

/// The holder of a call's single source.
pub struct Own<S>(Option<S>);

impl<S> Own<S> {
    /// Holds `s`.
    #[inline(always)]
    pub fn new(s: S) -> Own<S> {
        Own(Some(s))
    }
}

impl<S> Deref for Own<S> {
    type Target = S;

    #[inline(always)]
    fn deref(&self) -> &S {
        match &self.0 {
            Some(s) => s,
            None => unreachable!("parfor: an indexed source is never taken"),
        }
    }
}

/// An integer range as the single source (before the iterator rule: it keeps random access).
pub trait SingleRange {
    /// The borrowed range.
    type Source;
    /// The source.
    fn parmap_source_must_be_a_slice_a_range_an_iterator_or_a_parfor_source(
        &mut self,
    ) -> Self::Source;
}

impl<T: Int> SingleRange for Own<Range<T>> {
    type Source = IntRange<T>;
    #[inline]
    fn parmap_source_must_be_a_slice_a_range_an_iterator_or_a_parfor_source(
        &mut self,
    ) -> IntRange<T> {
        (**self).parmap_source_must_be_a_slice_or_an_integer_range()
    }
}

impl<T: Int> SingleRange for Own<RangeInclusive<T>> {
    type Source = IntRange<T>;
    #[inline]
    fn parmap_source_must_be_a_slice_a_range_an_iterator_or_a_parfor_source(
        &mut self,
    ) -> IntRange<T> {
        (**self).parmap_source_must_be_a_slice_or_an_integer_range()
    }
}

// A slice's iterator keeps random access too (`v.iter()` as `&v`).
impl<'a, T: Sync> SingleRange for Own<std::slice::Iter<'a, T>> {
    type Source = &'a [T];
    #[inline]
    fn parmap_source_must_be_a_slice_a_range_an_iterator_or_a_parfor_source(&mut self) -> &'a [T] {
        self.as_slice()
    }
}

/// An iterator as the single source.
pub trait SingleLazy {
    /// The iterator.
    type Source;
    /// Takes the iterator out of the holder.
    fn parmap_source_must_be_a_slice_a_range_an_iterator_or_a_parfor_source(
        &mut self,
    ) -> Self::Source;
}

impl<I: Iterator> SingleLazy for &mut Own<I> {
    type Source = LazySource<I>;
    #[inline]
    fn parmap_source_must_be_a_slice_a_range_an_iterator_or_a_parfor_source(
        &mut self,
    ) -> LazySource<I> {
        match self.0.take() {
            Some(it) => LazySource(it),
            None => unreachable!("parfor: a lazy source is taken once"),
        }
    }
}

/// A lazy single source.
pub struct LazySource<I>(I);

/// An iterator held in a variable, as the single source: the call borrows a variable, so it
/// cannot consume the iterator (rejected, with the fix, by [`SingleSource`]).
pub trait SingleBorrowedIterator {
    /// The marker.
    type Source;
    /// Marks the iterator.
    fn parmap_source_must_be_a_slice_a_range_an_iterator_or_a_parfor_source(
        &mut self,
    ) -> Self::Source;
}

impl<I: Iterator> SingleBorrowedIterator for &mut Own<&I> {
    type Source = IteratorInAVariableIsBorrowed<I>;
    fn parmap_source_must_be_a_slice_a_range_an_iterator_or_a_parfor_source(
        &mut self,
    ) -> IteratorInAVariableIsBorrowed<I> {
        IteratorInAVariableIsBorrowed(std::marker::PhantomData)
    }
}

/// An iterator in a variable given as a single source.
pub struct IteratorInAVariableIsBorrowed<I>(std::marker::PhantomData<fn() -> I>);

/// The element type a single source gives the mapped function.
pub trait HasElem {
    /// What the function gets per element ([`Ix`] or [`Lz`]).
    type Elem: Send;
    /// The element, unwrapped.
    type Natural;
}

impl<S: Source> HasElem for S
where
    S::Item: Send,
{
    type Elem = Ix<S::Item>;
    type Natural = S::Item;
}

impl<I: Iterator<Item: Send>> HasElem for LazySource<I> {
    type Elem = Lz<I::Item>;
    type Natural = I::Item;
}

impl<I: Iterator<Item: Send>> HasElem for IteratorInAVariableIsBorrowed<I> {
    type Elem = Lz<I::Item>;
    type Natural = I::Item;
}

/// A witness for the unwrapped element type of a single source (closures with unannotated
/// parameters).
#[inline(always)]
pub fn probe_single<S: HasElem>(_: &S) -> Probe<S::Natural> {
    Probe::new()
}

/// An element of an indexed source, on its way to the mapped function.
pub struct Ix<E>(pub E);

/// An element of a lazy source, on its way to the mapped function.
pub struct Lz<E>(pub E);

/// Prepares a wrapped element for [`Arg`]: an indexed element is unwrapped (then converted
/// by the `Arg` rules of slices and ranges), a lazy one stays wrapped (then passed unchanged
/// by `Arg`'s identity for [`Lz`]).
pub trait Pass {
    /// What goes to [`Arg::arg`].
    type Out;
    /// The element, for [`Arg::arg`].
    fn pass(self) -> Self::Out;
}

impl<E> Pass for Ix<E> {
    type Out = E;
    #[inline(always)]
    fn pass(self) -> E {
        self.0
    }
}

impl<E> Pass for Lz<E> {
    type Out = Lz<E>;
    #[inline(always)]
    fn pass(self) -> Lz<E> {
        self
    }
}

impl<E> Arg<E> for Lz<E> {
    #[inline(always)]
    fn arg(self) -> E {
        self.0
    }
}

/// Unwraps an element for a closure with unannotated parameters.
pub trait Natural {
    /// The element as the source yields it.
    type E;
    /// The element.
    fn natural(self) -> Self::E;
}

impl<E> Natural for Ix<E> {
    type E = E;
    #[inline(always)]
    fn natural(self) -> E {
        self.0
    }
}

impl<E> Natural for Lz<E> {
    type E = E;
    #[inline(always)]
    fn natural(self) -> E {
        self.0
    }
}

/// A single source, indexed or lazy: runs a `parmap!` or `parmap_iter!` call over it.
#[diagnostic::on_unimplemented(
    message = "`parmap!` cannot consume an iterator held in a variable: the call borrows a \
               variable",
    label = "borrowed, so it cannot be pulled",
    note = "move the iterator into the call with a block, `{{ it }}`, or pass `it.by_ref()` \
            to leave it usable after the call"
)]
pub trait SingleSource<'a>: HasElem + Sized {
    /// What reaches the workers of a stream over it: the source itself when indexed, its
    /// items when lazy (a lazy source stays on the caller's thread).
    type Sent;

    /// `parmap!`: every result, in order; panics naming the first failed item.
    fn map<R: Send, G: Fn(Self::Elem) -> R + Send + Sync>(
        self,
        opts: &Options,
        wire: Option<Wire<R>>,
        g: G,
    ) -> Vec<R>;

    /// `parmap!` with `on_error = "collect"`.
    fn try_map<R: Send, G: Fn(Self::Elem) -> R + Send + Sync>(
        self,
        opts: &Options,
        wire: Option<Wire<R>>,
        g: G,
    ) -> Vec<Result<R, TaskError>>;

    /// `parmap!` with `init = make_state`: `g(&mut state, elem)`, one state per worker.
    /// An indexed source only (a lazy one is refused at compile time by [`init_source`]).
    fn map_init<R: Send, W: Send, L: Fn() -> W + Sync, G: Fn(&mut W, Self::Elem) -> R + Sync>(
        self,
        opts: &Options,
        wire: Option<Wire<R>>,
        init: L,
        g: G,
    ) -> Vec<R>;

    /// `parmap!` with `init = make_state` and `on_error = "collect"`.
    fn try_map_init<R: Send, W: Send, L: Fn() -> W + Sync, G: Fn(&mut W, Self::Elem) -> R + Sync>(
        self,
        opts: &Options,
        wire: Option<Wire<R>>,
        init: L,
        g: G,
    ) -> Vec<Result<R, TaskError>>;

    /// `parmap_iter!`: workers on `spawn` live for `'s`.
    #[allow(clippy::too_many_arguments)]
    fn stream<'s: 'a, R, G, M, S>(
        self,
        spawn: S,
        opts: &Options,
        cfg: Cfg,
        wire: Option<Wire<R>>,
        mode: M,
        g: G,
    ) -> ParIter<'a, M::Y>
    where
        S: Spawner<'s>,
        Self::Sent: 's,
        R: Send + 's,
        G: Fn(Self::Elem) -> R + Send + Sync + 's,
        M: Emit<R>,
        M::Y: 's;
}

impl<'a, S> SingleSource<'a> for S
where
    S: Source + Send + 'a,
    S::Item: Send,
{
    type Sent = S;

    fn map<R: Send, G: Fn(Ix<S::Item>) -> R + Send + Sync>(
        self,
        opts: &Options,
        wire: Option<Wire<R>>,
        g: G,
    ) -> Vec<R> {
        crate::map::map(Shape::product([self.len()]), opts, wire, |[i]| g(Ix(self.get(i))))
    }

    fn try_map<R: Send, G: Fn(Ix<S::Item>) -> R + Send + Sync>(
        self,
        opts: &Options,
        wire: Option<Wire<R>>,
        g: G,
    ) -> Vec<Result<R, TaskError>> {
        crate::map::try_map(Shape::product([self.len()]), opts, wire, |[i]| g(Ix(self.get(i))))
    }

    fn map_init<R: Send, W: Send, L: Fn() -> W + Sync, G: Fn(&mut W, Ix<S::Item>) -> R + Sync>(
        self,
        opts: &Options,
        wire: Option<Wire<R>>,
        init: L,
        g: G,
    ) -> Vec<R> {
        let shape = Shape::product([self.len()]);
        crate::map::map_init(shape, opts, wire, init, |w: &mut W, [i]| g(w, Ix(self.get(i))))
    }

    fn try_map_init<
        R: Send,
        W: Send,
        L: Fn() -> W + Sync,
        G: Fn(&mut W, Ix<S::Item>) -> R + Sync,
    >(
        self,
        opts: &Options,
        wire: Option<Wire<R>>,
        init: L,
        g: G,
    ) -> Vec<Result<R, TaskError>> {
        let shape = Shape::product([self.len()]);
        crate::map::try_map_init(shape, opts, wire, init, |w: &mut W, [i]| g(w, Ix(self.get(i))))
    }

    fn stream<'s: 'a, R, G, M, Sp>(
        self,
        spawn: Sp,
        opts: &Options,
        cfg: Cfg,
        wire: Option<Wire<R>>,
        mode: M,
        g: G,
    ) -> ParIter<'a, M::Y>
    where
        Sp: Spawner<'s>,
        S: 's,
        R: Send + 's,
        G: Fn(Ix<S::Item>) -> R + Send + Sync + 's,
        M: Emit<R>,
        M::Y: 's,
    {
        let shape = Shape::product([self.len()]);
        iter_shape(spawn, shape, opts, cfg, wire, mode, move |[i]| g(Ix(self.get(i))))
    }
}

impl<'a, I> SingleSource<'a> for LazySource<I>
where
    I: Iterator + 'a,
    I::Item: Send + 'a,
{
    type Sent = I::Item;

    fn map<R: Send, G: Fn(Lz<I::Item>) -> R + Send + Sync>(
        self,
        opts: &Options,
        wire: Option<Wire<R>>,
        g: G,
    ) -> Vec<R> {
        // Collecting the stream, on scoped threads: nothing outlives this call.
        super::scope(|s| {
            iter_lazy(s, self.0, opts, Cfg::new(), wire, Plain, |x| g(Lz(x))).collect()
        })
    }

    fn try_map<R: Send, G: Fn(Lz<I::Item>) -> R + Send + Sync>(
        self,
        opts: &Options,
        wire: Option<Wire<R>>,
        g: G,
    ) -> Vec<Result<R, TaskError>> {
        let opts = opts.clone().on_error(crate::error::OnError::Collect);
        super::scope(|s| iter_lazy(s, self.0, &opts, Cfg::new(), wire, Try, |x| g(Lz(x))).collect())
    }

    fn map_init<R: Send, W: Send, L: Fn() -> W + Sync, G: Fn(&mut W, Lz<I::Item>) -> R + Sync>(
        self,
        opts: &Options,
        wire: Option<Wire<R>>,
        init: L,
        g: G,
    ) -> Vec<R> {
        let _ = (opts, wire, init, g);
        unreachable!("refused at compile time by `init_source`")
    }

    fn try_map_init<
        R: Send,
        W: Send,
        L: Fn() -> W + Sync,
        G: Fn(&mut W, Lz<I::Item>) -> R + Sync,
    >(
        self,
        opts: &Options,
        wire: Option<Wire<R>>,
        init: L,
        g: G,
    ) -> Vec<Result<R, TaskError>> {
        let _ = (opts, wire, init, g);
        unreachable!("refused at compile time by `init_source`")
    }

    fn stream<'s: 'a, R, G, M, Sp>(
        self,
        spawn: Sp,
        opts: &Options,
        cfg: Cfg,
        wire: Option<Wire<R>>,
        mode: M,
        g: G,
    ) -> ParIter<'a, M::Y>
    where
        Sp: Spawner<'s>,
        I::Item: 's,
        R: Send + 's,
        G: Fn(Lz<I::Item>) -> R + Send + Sync + 's,
        M: Emit<R>,
        M::Y: 's,
    {
        iter_lazy(spawn, self.0, opts, cfg, wire, mode, move |x| g(Lz(x)))
    }
}

/// An iterator among several sources, which need random access: the macro's multi-source
/// path finds this for an iterator, and [`indexed`] rejects it with an explanation.
pub trait LazyInProduct {
    /// The iterator, marked.
    type Source;
    /// Marks the iterator.
    fn parmap_source_must_be_a_slice_or_an_integer_range(&self) -> Self::Source;
}

impl<I: Iterator> LazyInProduct for &I {
    type Source = IteratorAmongSeveralSources<I>;
    fn parmap_source_must_be_a_slice_or_an_integer_range(&self) -> Self::Source {
        IteratorAmongSeveralSources(std::marker::PhantomData)
    }
}

/// An iterator given to `parmap!` next to other sources.
pub struct IteratorAmongSeveralSources<I>(std::marker::PhantomData<fn() -> I>);

/// A source with random access, as a Cartesian product or a zip of several sources needs.
#[diagnostic::on_unimplemented(
    message = "an iterator cannot be combined with other sources: their Cartesian product or \
               zip needs random access",
    label = "a lazy source next to other sources",
    note = "collect it first (`.collect::<Vec<_>>()`), or make it the only source of the call \
            (a single source may be any iterator)"
)]
pub trait Indexed {}

impl<T: Sync> Indexed for &[T] {}
impl<T: Int> Indexed for IntRange<T> {}
impl<S: crate::Source + ?Sized> Indexed for crate::source::Custom<'_, S> {}

/// Requires an indexed source (a source of a call with several sources).
#[inline(always)]
pub fn indexed<S: Indexed>(s: S) -> S {
    s
}

/// An iterator held in a variable, given as the only source of a `parmap!` call that keeps
/// random access (so that an async function can run over it): the macro's single indexed path
/// finds this for an iterator, and [`indexed_single`] rejects it with the fix.
pub trait LazyInVariable {
    /// The iterator, marked.
    type Source;
    /// Marks the iterator.
    fn parmap_source_must_be_a_slice_or_an_integer_range(&self) -> Self::Source;
}

impl<I: Iterator> LazyInVariable for &I {
    type Source = IteratorInAVariableIsBorrowed<I>;
    fn parmap_source_must_be_a_slice_or_an_integer_range(&self) -> Self::Source {
        IteratorInAVariableIsBorrowed(std::marker::PhantomData)
    }
}

/// A single source held in a variable, a reference or a range: it must have random access.
#[diagnostic::on_unimplemented(
    message = "`parmap!` cannot consume an iterator held in a variable: the call borrows a \
               variable",
    label = "borrowed, so it cannot be pulled",
    note = "move the iterator into the call with a block, `{{ it }}`, or pass `it.by_ref()` \
            to leave it usable after the call"
)]
pub trait IndexedSingle {}

impl<S: Indexed> IndexedSingle for S {}

/// Requires an indexed source (the only source, held in a variable).
#[inline(always)]
pub fn indexed_single<S: IndexedSingle>(s: S) -> S {
    s
}

impl<I> Clone for IteratorAmongSeveralSources<I> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<I> Copy for IteratorAmongSeveralSources<I> {}

// Only so that the call's other uses of the source type-check: [`indexed`] has already
// reported the mistake, and such a call never compiles.
impl<I: Iterator> Source for IteratorAmongSeveralSources<I> {
    type Item = I::Item;
    fn len(&self) -> usize {
        0
    }
    fn get(&self, _: usize) -> I::Item {
        unreachable!("an iterator among several sources is rejected at compile time")
    }
}

/// Returns `g` unchanged, giving a closure literal its parameter type: the element type of
/// the single source `s`.
#[inline(always)]
pub fn single_fn<S: HasElem, R, G: Fn(S::Elem) -> R>(_: &S, g: G) -> G {
    g
}

/// Returns `g` unchanged, giving a closure literal its parameter types: the per-worker state
/// `&mut W` (for any lifetime), then the element type of the single source `s`.
#[inline(always)]
pub fn single_fn_init<S: HasElem, W, R, G: Fn(&mut W, S::Elem) -> R>(
    _: &S,
    _: Probe<W>,
    g: G,
) -> G {
    g
}

/// A single source of a call with `init`: an indexed one (a lazy iterator runs on the stream
/// engines, whose workers do not keep a state across the whole call).
#[diagnostic::on_unimplemented(
    message = "`init` needs a source with random access (a slice, `Vec`, array, range or \
               `parfor::Source`), but this source is an iterator",
    label = "a lazy source",
    note = "collect the items first (`.collect::<Vec<_>>()`) and call `parmap!` on the `Vec`"
)]
pub trait InitSource {}

impl<S: Source> InitSource for S {}

/// Requires a single source that `init` supports (see [`InitSource`]).
#[inline(always)]
pub fn init_source<S: InitSource>(_: &S) {}
