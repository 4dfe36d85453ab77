//! What `parmap!` maps over, and how each element reaches the mapped function.
//!
//! A *source* is anything that derefs to a slice (`Vec<T>`, `[T; N]`, `&[T]`, `&x[2..]`, ...)
//! or an integer range (`a..b`, `a..=b`, of any primitive integer type). The macro borrows
//! each source once, turns it into a [`Source`] with the [`AsSource`] method (found by
//! auto-deref, so every type that derefs to `[T]` is accepted without being listed), and asks
//! it for the element at each index the runtime's odometer produces:
//!
//! * a slice source yields `&T`, without a copy;
//! * a range source yields the integer by value.
//!
//! Elements then pass through [`Arg`], whose target type is inferred from the mapped
//! function's parameter: a parameter of a `Copy` type `T` receives `*elem`, a parameter `&T`
//! receives the reference itself. So `fn hypot(a: f64, b: f64)` and `fn analyze(img: &Image)`
//! both work, and a large element is never copied or cloned.
//!
//! Closures whose parameters carry no type annotation cannot drive that inference; the macro
//! gives them the element as the source yields it (`&T` for slices, the integer for ranges)
//! through the `sig*` helpers, which hand the closure its signature.

use crate::wire::Probe;
use std::ops::{Range, RangeInclusive};

/// A borrowed source: its length and its elements by index.
pub trait Source: Copy + Sync {
    /// What one element is: `&T` for slices, the integer for ranges.
    type Item;

    /// The number of elements.
    fn len(&self) -> usize;

    /// Whether there are no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i`.
    ///
    /// # Panics
    /// When `i >= self.len()` (slices).
    fn get(&self, i: usize) -> Self::Item;
}

impl<'a, T: Sync> Source for &'a [T] {
    type Item = &'a T;

    #[inline(always)]
    fn len(&self) -> usize {
        <[T]>::len(self)
    }

    #[inline(always)]
    fn get(&self, i: usize) -> &'a T {
        &self[i]
    }
}

/// The integers `start, start + 1, ...` (`len` of them): a borrowed integer range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntRange<T> {
    start: T,
    len: usize,
}

/// Turns a borrowed value into a [`Source`].
///
/// The macro calls the method as `borrowed.parmap_source_must_be_a_slice_or_an_integer_range()`, so auto-deref finds the
/// implementation for `[T]` from any type that derefs to a slice.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a `parmap!` source",
    label = "not a slice, a collection that derefs to one, or an integer range",
    note = "sources are slices, arrays, `Vec`s (anything that derefs to `[T]`) and integer \
            ranges `a..b` / `a..=b`"
)]
pub trait AsSource<'a> {
    /// The borrowed source.
    type Source: Source;

    /// Borrows `self` as a source.
    fn parmap_source_must_be_a_slice_or_an_integer_range(&'a self) -> Self::Source;

    /// The same, under the name a call with a single source uses (see
    /// [`crate::stream::single`]).
    #[inline(always)]
    fn parmap_source_must_be_a_slice_a_range_an_iterator_or_a_parfor_source(
        &'a self,
    ) -> Self::Source {
        self.parmap_source_must_be_a_slice_or_an_integer_range()
    }
}

impl<'a, T: Sync + 'a> AsSource<'a> for [T] {
    type Source = &'a [T];

    #[inline(always)]
    fn parmap_source_must_be_a_slice_or_an_integer_range(&'a self) -> &'a [T] {
        self
    }
}

/// A slice's iterator is its slice (`v.iter()` as `&v`), with random access.
impl<'a, T: Sync + 'a> AsSource<'_> for std::slice::Iter<'a, T> {
    type Source = &'a [T];

    #[inline(always)]
    fn parmap_source_must_be_a_slice_or_an_integer_range(&self) -> &'a [T] {
        self.as_slice()
    }
}

/// Converts a source element (or a fixed `args` value) into the type the mapped function's
/// parameter asks for.
///
/// * `&T` → `T` when `T: Copy` (by value),
/// * `&T` → `&T` (by reference, no copy),
/// * `&String` → `&str`, `&Vec<T>` → `&[T]`,
/// * an integer → itself (range items).
#[diagnostic::on_unimplemented(
    message = "a `parmap!` element of type `{Self}` cannot be passed as `{A}`",
    label = "the function's parameter does not take this element",
    note = "a slice element `&T` is passed as `T` when `T: Copy`, or as `&T`; a range item is \
            passed as its integer type"
)]
pub trait Arg<A> {
    /// The converted value.
    fn arg(self) -> A;
}

impl<T: Copy> Arg<T> for &T {
    #[inline(always)]
    fn arg(self) -> T {
        *self
    }
}

impl<'a, T: ?Sized> Arg<&'a T> for &'a T {
    #[inline(always)]
    fn arg(self) -> &'a T {
        self
    }
}

impl<'a> Arg<&'a str> for &'a String {
    #[inline(always)]
    fn arg(self) -> &'a str {
        self
    }
}

impl<'a, T> Arg<&'a [T]> for &'a Vec<T> {
    #[inline(always)]
    fn arg(self) -> &'a [T] {
        self
    }
}

/// Integer types a range source may count in (sealed).
pub trait Int: Copy + Send + Sync + PartialOrd + std::fmt::Debug + sealed::Sealed {
    /// The number of integers in `start..end`.
    fn span(start: Self, end: Self) -> usize;
    /// The number of integers in `start..=end`.
    fn span_inclusive(start: Self, end: Self) -> usize;
    /// `start + i`, knowing the sum is in range.
    fn offset(start: Self, i: usize) -> Self;
}

mod sealed {
    pub trait Sealed {}
}

fn too_long(what: &dyn std::fmt::Debug) -> ! {
    panic!("parmap!: the range {what:?} has more than usize::MAX elements")
}

macro_rules! ints {
    ($($t:ty => $wide:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}

        impl Int for $t {
            #[inline]
            fn span(start: $t, end: $t) -> usize {
                if end <= start {
                    return 0;
                }
                // Two's complement: the difference of the wide values fits the unsigned type.
                let d = (end as $wide).wrapping_sub(start as $wide);
                usize::try_from(d).unwrap_or_else(|_| too_long(&(start..end)))
            }

            #[inline]
            fn span_inclusive(start: $t, end: $t) -> usize {
                if end < start {
                    return 0;
                }
                let d = (end as $wide).wrapping_sub(start as $wide);
                usize::try_from(d)
                    .ok()
                    .and_then(|d| d.checked_add(1))
                    .unwrap_or_else(|| too_long(&(start..=end)))
            }

            #[inline(always)]
            fn offset(start: $t, i: usize) -> $t {
                // `i` < the range's length, so the true sum is in range and wrapping
                // arithmetic (modulo the type's width) gives exactly it.
                start.wrapping_add(i as $t)
            }
        }

        impl Arg<$t> for $t {
            #[inline(always)]
            fn arg(self) -> $t {
                self
            }
        }
    )*};
}

ints! {
    i8 => u8, i16 => u16, i32 => u32, i64 => u64, i128 => u128, isize => usize,
    u8 => u8, u16 => u16, u32 => u32, u64 => u64, u128 => u128, usize => usize,
}

impl IntRange<usize> {
    /// The positions `0..n`.
    #[inline(always)]
    pub fn positions(n: usize) -> IntRange<usize> {
        IntRange { start: 0, len: n }
    }
}

impl<T: Int> Source for IntRange<T> {
    type Item = T;

    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    fn get(&self, i: usize) -> T {
        debug_assert!(i < self.len);
        T::offset(self.start, i)
    }
}

impl<T: Int> AsSource<'_> for Range<T> {
    type Source = IntRange<T>;

    #[inline]
    fn parmap_source_must_be_a_slice_or_an_integer_range(&self) -> IntRange<T> {
        IntRange { start: self.start, len: T::span(self.start, self.end) }
    }
}

impl<T: Int> AsSource<'_> for RangeInclusive<T> {
    type Source = IntRange<T>;

    #[inline]
    fn parmap_source_must_be_a_slice_or_an_integer_range(&self) -> IntRange<T> {
        // An exhausted `RangeInclusive` (after iteration) is empty whatever its bounds say.
        let len = if self.is_empty() { 0 } else { T::span_inclusive(*self.start(), *self.end()) };
        IntRange { start: *self.start(), len }
    }
}

/// The witness for the element type of a source (for closures with unannotated parameters).
#[inline(always)]
pub fn probe_item<S: Source>(_: &S) -> Probe<S::Item> {
    Probe::new()
}

/// The witness for `&T` given a `&T` (fixed `args` of closures with unannotated parameters).
#[inline(always)]
pub fn probe_ref<T: ?Sized>(_: &T) -> Probe<&T> {
    Probe::new()
}

/// A witness whose type is inferred (annotated closure parameters).
#[inline(always)]
pub fn probe_any<T>() -> Probe<T> {
    Probe::new()
}

/// Results that can cross a process boundary (the fork engine's requirement).
#[diagnostic::on_unimplemented(
    message = "`engine = \"fork\"` needs results that implement serde's `Serialize` and \
               `DeserializeOwned`; `{Self}` does not",
    label = "the fork engine sends every result back from a worker process",
    note = "derive `serde::Serialize` and `serde::Deserialize` for `{Self}`, or use \
            `engine = \"threads\"`"
)]
pub trait ForkResult {}

impl<T: serde::Serialize + serde::de::DeserializeOwned> ForkResult for T {}

/// What a `#[parfor(engine = "fork")]` loop sends back from its worker processes: the values
/// of its reductions and the elements of its sliced outputs.
#[diagnostic::on_unimplemented(
    message = "`engine = \"fork\"` sends this loop's reductions and sliced outputs back from \
               worker processes, so `{Self}` must implement serde's `Serialize` and \
               `DeserializeOwned`",
    label = "a value of type `{Self}` crosses a process boundary",
    note = "derive `serde::Serialize` and `serde::Deserialize` for `{Self}`; in a generic \
            function, add the bound `{Self}: serde::Serialize + serde::de::DeserializeOwned`; \
            or use `engine = \"threads\"`"
)]
pub trait ForkState {}

impl<T: serde::Serialize + serde::de::DeserializeOwned> ForkState for T {}

/// Requires a loop value of the probed type that can cross a process boundary, for loops
/// that choose `engine = "fork"` literally.
#[inline(always)]
pub fn fork_state<T: ForkState>(_: &Probe<T>) {}

/// Requires results that can cross a process boundary, for calls that choose
/// `engine = "fork"` literally (other engines, and an engine chosen at run time, report a
/// missing wire only when the fork engine runs).
#[inline(always)]
pub fn fork_result<A, R: ForkResult, F: Fn(A) -> R>(_: &F) {}

/// Results that the ranks of the mpi engine can exchange.
#[diagnostic::on_unimplemented(
    message = "`engine = \"mpi\"` needs results that implement serde's `Serialize` and \
               `DeserializeOwned`; `{Self}` does not",
    label = "the mpi engine sends every result to every other rank",
    note = "derive `serde::Serialize` and `serde::Deserialize` for `{Self}`, or use \
            `engine = \"threads\"`"
)]
pub trait MpiResult {}

impl<T: serde::Serialize + serde::de::DeserializeOwned> MpiResult for T {}

/// What a `#[parfor(engine = "mpi")]` loop sends to the other ranks: the values of its
/// reductions and the elements of its sliced outputs.
#[diagnostic::on_unimplemented(
    message = "`engine = \"mpi\"` sends this loop's reductions and sliced outputs to the \
               other ranks, so `{Self}` must implement serde's `Serialize` and \
               `DeserializeOwned`",
    label = "a value of type `{Self}` goes to the other mpi ranks",
    note = "derive `serde::Serialize` and `serde::Deserialize` for `{Self}`; in a generic \
            function, add the bound `{Self}: serde::Serialize + serde::de::DeserializeOwned`; \
            or use `engine = \"threads\"`"
)]
pub trait MpiState {}

impl<T: serde::Serialize + serde::de::DeserializeOwned> MpiState for T {}

/// Requires a loop value of the probed type that the mpi ranks can exchange, for loops that
/// choose `engine = "mpi"` literally.
#[inline(always)]
pub fn mpi_state<T: MpiState>(_: &Probe<T>) {}

macro_rules! sigs {
    ($($name:ident($($a:ident),*);)*) => {$(
        /// Returns `f` unchanged, giving a closure literal its parameter types (the witnesses'
        /// types) so its unannotated parameters need no annotation.
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        pub fn $name<$($a,)* R, F: Fn($($a),*) -> R>($(_: Probe<$a>,)* f: F) -> F {
            f
        }
    )*};
}

sigs! {
    sig1(A0);
    sig2(A0, A1);
    sig3(A0, A1, A2);
    sig4(A0, A1, A2, A3);
    sig5(A0, A1, A2, A3, A4);
    sig6(A0, A1, A2, A3, A4, A5);
    sig7(A0, A1, A2, A3, A4, A5, A6);
    sig8(A0, A1, A2, A3, A4, A5, A6, A7);
    sig9(A0, A1, A2, A3, A4, A5, A6, A7, A8);
    sig10(A0, A1, A2, A3, A4, A5, A6, A7, A8, A9);
    sig11(A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10);
    sig12(A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10, A11);
}

macro_rules! sigs_with_state {
    ($($name:ident($($a:ident),*);)*) => {$(
        /// Returns `f` unchanged, giving a closure literal its parameter types: `&mut W` (the
        /// per-worker state of `init = ..`, for any lifetime) then the witnesses' types.
        #[inline(always)]
        #[allow(clippy::too_many_arguments)]
        pub fn $name<W, $($a,)* R, F: Fn(&mut W, $($a),*) -> R>(
            _: Probe<W>,
            $(_: Probe<$a>,)*
            f: F,
        ) -> F {
            f
        }
    )*};
}

sigs_with_state! {
    sigw1(A0);
    sigw2(A0, A1);
    sigw3(A0, A1, A2);
    sigw4(A0, A1, A2, A3);
    sigw5(A0, A1, A2, A3, A4);
    sigw6(A0, A1, A2, A3, A4, A5);
    sigw7(A0, A1, A2, A3, A4, A5, A6);
    sigw8(A0, A1, A2, A3, A4, A5, A6, A7);
    sigw9(A0, A1, A2, A3, A4, A5, A6, A7, A8);
    sigw10(A0, A1, A2, A3, A4, A5, A6, A7, A8, A9);
    sigw11(A0, A1, A2, A3, A4, A5, A6, A7, A8, A9, A10);
}

/// `init = make_state`, checked to be a function of no arguments that makes each worker's
/// state.
#[inline(always)]
pub fn init_fn<W, L: Fn() -> W + Sync>(l: L) -> L {
    l
}

/// The witness for the state type that `init` makes (`init = make_state`), which must be a
/// function of no arguments.
#[inline(always)]
pub fn probe_init<W, L: Fn() -> W>(_: &L) -> Probe<W> {
    Probe::new()
}

/// The most parameters a closure with unannotated parameters may have (`sig1` .. `sig12`;
/// with `init`, the state and at most 11 more: `sigw0` .. `sigw11`).
pub const MAX_INFERRED_ARITY: usize = 12;

/// A borrowed user collection ([`crate::Source`]).
pub struct Custom<'a, S: ?Sized>(&'a S);

impl<'a, S: ?Sized> Custom<'a, S> {
    /// Borrows `s`.
    #[inline(always)]
    pub(crate) fn new(s: &'a S) -> Custom<'a, S> {
        Custom(s)
    }
}

impl<S: ?Sized> Clone for Custom<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<S: ?Sized> Copy for Custom<'_, S> {}

impl<'a, S: crate::Source + ?Sized> Source for Custom<'a, S> {
    type Item = &'a S::Item;

    #[inline(always)]
    fn len(&self) -> usize {
        self.0.len()
    }

    #[inline(always)]
    fn get(&self, i: usize) -> &'a S::Item {
        self.0.get(i)
    }
}

impl<'a, S: crate::Source + 'a> AsSource<'a> for S {
    type Source = Custom<'a, S>;

    #[inline(always)]
    fn parmap_source_must_be_a_slice_or_an_integer_range(&'a self) -> Custom<'a, S> {
        Custom(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src<'a, T: AsSource<'a> + ?Sized>(t: &'a T) -> T::Source {
        t.parmap_source_must_be_a_slice_or_an_integer_range()
    }

    fn items<S: Source>(s: S) -> Vec<S::Item> {
        (0..s.len()).map(|i| s.get(i)).collect()
    }

    #[test]
    fn ranges_count_every_integer() {
        assert_eq!(items(src(&(-3i64..2))), [-3, -2, -1, 0, 1]);
        assert_eq!(items(src(&(250u8..=255))), [250, 251, 252, 253, 254, 255]);
        assert_eq!(src(&(i8::MIN..=i8::MAX)).len(), 256);
        assert_eq!(items(src(&(i8::MIN..=i8::MAX)))[255], 127);
        assert_eq!(src(&(5u32..5)).len(), 0);
        let (lo, hi) = (5u32, 3u32);
        assert_eq!(src(&(lo..hi)).len(), 0);
        #[allow(clippy::reversed_empty_ranges)]
        let r = 5i16..=3;
        assert_eq!(src(&r).len(), 0);
        let mut r = 1usize..=1;
        r.next();
        assert_eq!(src(&r).len(), 0);
        assert_eq!(items(src(&(i128::MAX - 1..=i128::MAX))), [i128::MAX - 1, i128::MAX]);
    }

    #[test]
    #[should_panic(expected = "more than usize::MAX elements")]
    fn huge_ranges_panic() {
        let _ = src(&(0u128..=u128::MAX));
    }

    #[test]
    fn slices_yield_references() {
        let v = [1.5, 2.5];
        let s = src(&v[..]);
        assert!(std::ptr::eq(Source::get(&s, 1), &v[1]));
        let a: f64 = Arg::arg(Source::get(&s, 0));
        let r: &f64 = Arg::arg(Source::get(&s, 0));
        assert_eq!((a, *r), (1.5, 1.5));
    }
}
