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
    /// Whether every item yields exactly one value (not flattened): a batch's room is then
    /// known before it runs.
    const ONE: bool;
    /// What a failed item yields when failures are collected (`None` in fail mode).
    fn fail(self, e: TaskError) -> Option<Self::Y>;
}

macro_rules! modes {
    ($(
        $(#[$doc:meta])*
        $name:ident, collect = $collect:literal, one = $one:literal, [$($bounds:tt)*], $y:ty,
        |$s:ident, $i:ident, $r:ident, $out:ident| $emit:expr,
        |$e:ident| $fail:expr;
    )*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name;

        impl<R: $($bounds)*> Emit<R> for $name {
            type Y = $y;
            const COLLECT: bool = $collect;
            const ONE: bool = $one;
            #[inline(always)]
            fn emit($s, $i: usize, $r: R, $out: &mut Vec<$y>) {
                $emit
            }
            #[inline]
            fn fail($s, $e: TaskError) -> Option<$y> {
                $fail
            }
        }
    )*};
}

modes! {
    /// Ordered, one result per item, failures stop the stream: yields `R`.
    Plain, collect = false, one = true, [Send], R,
        |self, _i, r, out| out.push(r), |_e| None;
    /// Unordered: yields `(item index, R)`.
    Tagged, collect = false, one = true, [Send], (usize, R),
        |self, i, r, out| out.push((i, r)), |_e| None;
    /// Ordered, failures collected: yields `Result<R, TaskError>`.
    Try, collect = true, one = true, [Send], Result<R, TaskError>,
        |self, _i, r, out| out.push(Ok(r)), |e| Some(Err(e));
    /// Unordered, failures collected: yields `(item index, Result<R, TaskError>)`.
    TryTagged, collect = true, one = true, [Send], (usize, Result<R, TaskError>),
        |self, i, r, out| out.push((i, Ok(r))), |e| Some((e.index(), Err(e)));
    /// Ordered, flattened: yields every element of every item's result.
    Flat, collect = false, one = false, [IntoIterator<Item: Send>], R::Item,
        |self, _i, r, out| out.extend(r), |_e| None;
    /// Unordered, flattened: yields `(item index, element)`.
    FlatTagged, collect = false, one = false, [IntoIterator<Item: Send>], (usize, R::Item),
        |self, i, r, out| out.extend(r.into_iter().map(|x| (i, x))), |_e| None;
    /// Ordered, flattened, failures collected: yields `Result<element, TaskError>` (one `Err`
    /// for a failed item, none of its elements).
    TryFlat, collect = true, one = false, [IntoIterator<Item: Send>], Result<R::Item, TaskError>,
        |self, _i, r, out| out.extend(r.into_iter().map(Ok)), |e| Some(Err(e));
    /// Unordered, flattened, failures collected: yields `(item index, Result<element,
    /// TaskError>)`.
    TryFlatTagged, collect = true, one = false, [IntoIterator<Item: Send>],
        (usize, Result<R::Item, TaskError>),
        |self, i, r, out| out.extend(r.into_iter().map(|x| (i, Ok(x)))),
        |e| Some((e.index(), Err(e)));
}
