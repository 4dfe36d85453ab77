//! What each item of a stream yields: its result, or each element of it (`flatten = true`),
//! with or without its item index (`ordered = false`), as `Result`s (`on_error = "collect"`)
//! or bare (`on_error = "fail"`).

use crate::error::TaskError;

/// How an item's result becomes the stream's output values. One unit type per combination of
/// the `ordered`, `flatten` and `on_error` options; the macro picks it.
pub trait Emit<R>: Copy + Send + Sync + 'static {
    /// What the stream yields.
    type Y: Send;
    /// Whether failures become output values (`on_error = "collect"`).
    const COLLECT: bool;
    /// Appends what item `i`, whose result is `r`, yields. May panic (a flattened iterator
    /// runs user code); the caller then discards what it appended for this item.
    fn emit(self, i: usize, r: R, out: &mut Vec<Self::Y>);
    /// Whether every item yields exactly one value (not flattened), [`Emit::value`]: a batch's
    /// room is then known before it runs, and a batch is one `extend`.
    const ONE: bool;
    /// The one value item `i`, whose result is `r`, yields, when [`Emit::ONE`] (what `emit`
    /// appends). Never called otherwise.
    fn value(self, i: usize, r: R) -> Self::Y;
    /// What a failed item yields when failures are collected (`None` in fail mode).
    fn fail(self, e: TaskError) -> Option<Self::Y>;
}

macro_rules! modes {
    ($(
        $(#[$doc:meta])*
        $name:ident, collect = $collect:literal, [$($bounds:tt)*], $y:ty,
        $shape:ident |$s:ident, $i:ident, $r:ident $(, $out:ident)?| $emit:expr,
        |$e:ident| $fail:expr;
    )*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name;

        impl<R: $($bounds)*> Emit<R> for $name {
            type Y = $y;
            const COLLECT: bool = $collect;
            modes!(@$shape $y, |$s, $i, $r $(, $out)?| $emit);
            #[inline]
            fn fail($s, $e: TaskError) -> Option<$y> {
                $fail
            }
        }
    )*};
    // One value per item: `emit` pushes it.
    (@one $y:ty, |$s:ident, $i:ident, $r:ident| $value:expr) => {
        const ONE: bool = true;
        #[inline(always)]
        fn value($s, $i: usize, $r: R) -> $y {
            $value
        }
        #[inline(always)]
        fn emit(self, i: usize, r: R, out: &mut Vec<$y>) {
            out.push(self.value(i, r))
        }
    };
    // Any number of values per item.
    (@many $y:ty, |$s:ident, $i:ident, $r:ident, $out:ident| $emit:expr) => {
        const ONE: bool = false;
        fn value(self, _i: usize, _r: R) -> $y {
            unreachable!("a flattened item yields any number of values")
        }
        #[inline(always)]
        fn emit($s, $i: usize, $r: R, $out: &mut Vec<$y>) {
            $emit
        }
    };
}

modes! {
    /// Ordered, one result per item, failures stop the stream: yields `R`.
    Plain, collect = false, [Send], R,
        one |self, _i, r| r, |_e| None;
    /// Unordered: yields `(item index, R)`.
    Tagged, collect = false, [Send], (usize, R),
        one |self, i, r| (i, r), |_e| None;
    /// Ordered, failures collected: yields `Result<R, TaskError>`.
    Try, collect = true, [Send], Result<R, TaskError>,
        one |self, _i, r| Ok(r), |e| Some(Err(e));
    /// Unordered, failures collected: yields `(item index, Result<R, TaskError>)`.
    TryTagged, collect = true, [Send], (usize, Result<R, TaskError>),
        one |self, i, r| (i, Ok(r)), |e| Some((e.index(), Err(e)));
    /// Ordered, flattened: yields every element of every item's result.
    Flat, collect = false, [IntoIterator<Item: Send>], R::Item,
        many |self, _i, r, out| out.extend(r), |_e| None;
    /// Unordered, flattened: yields `(item index, element)`.
    FlatTagged, collect = false, [IntoIterator<Item: Send>], (usize, R::Item),
        many |self, i, r, out| out.extend(r.into_iter().map(|x| (i, x))), |_e| None;
    /// Ordered, flattened, failures collected: yields `Result<element, TaskError>` (one `Err`
    /// for a failed item, none of its elements).
    TryFlat, collect = true, [IntoIterator<Item: Send>], Result<R::Item, TaskError>,
        many |self, _i, r, out| out.extend(r.into_iter().map(Ok)), |e| Some(Err(e));
    /// Unordered, flattened, failures collected: yields `(item index, Result<element,
    /// TaskError>)`.
    TryFlatTagged, collect = true, [IntoIterator<Item: Send>],
        (usize, Result<R::Item, TaskError>),
        many |self, i, r, out| out.extend(r.into_iter().map(|x| (i, Ok(x)))),
        |e| Some((e.index(), Err(e)));
}
